# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cpuset controller: ``cpuset_cpus`` and ``cpuset_mems`` (the kernel's list format, compared in canonical
form so ``1,0`` equals ``0-1``). The files are named alike on v1 and v2.

A new v1 cpuset cgroup starts with empty cpus and mems and refuses every process (ENOSPC) until they are set;
:data:`SEED_V1` names the files cgroup.py copies from the parent when it creates one, as runc does.
"""

from __future__ import annotations

import errno

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.knob import Knob, single
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import canonical_cpu_list

NAME = "cpuset"
KEYS = ("cpuset_cpus", "cpuset_mems")
SEED_V1 = ("cpuset.cpus", "cpuset.mems")


def _list_knob(name: str) -> Knob:
    return Knob((name,), lambda r: None if r(name) is None else canonical_cpu_list(r(name)), single(name, str))


V1: dict[str, Knob] = {"cpuset_cpus": _list_knob("cpuset.cpus"), "cpuset_mems": _list_knob("cpuset.mems")}
V2: dict[str, Knob] = {"cpuset_cpus": _list_knob("cpuset.cpus"), "cpuset_mems": _list_knob("cpuset.mems")}

HINTS = {
    ("cpuset_cpus", errno.EINVAL): "CPUs must exist and be a subset of the parent cgroup's cpuset",
    ("cpuset_cpus", errno.ERANGE): "CPUs must exist and be a subset of the parent cgroup's cpuset",
    ("cpuset_mems", errno.EINVAL): "memory nodes must exist and be a subset of the parent cgroup's cpuset",
    ("cpuset_mems", errno.ERANGE): "memory nodes must exist and be a subset of the parent cgroup's cpuset",
}
