# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cpu controller: ``cpus`` (CFS quota over a 100000 us period, Docker's and runc's) and ``cpu_weight`` on v1
and v2, and the CPU time used (v1 reads it from the cpuacct controller, v2 from ``cpu.stat``).

``cpu_weight`` is a v2 weight (1..10000); on v1 it is written as ``cpu.shares`` with runc's conversion
(opencontainers/cgroups ``ConvertCPUSharesToCgroupV2Value``) and reads back through the same formula.
"""

from __future__ import annotations

import errno

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.knob import (
    Knob,
    Reader,
    first_line,
    flat_key,
    int_or_none,
    single,
    weight_line,
)
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import (
    CPU_PERIOD,
    MAX,
    cpus_to_quota,
    quota_to_cpus,
    shares_to_weight,
    weight_to_shares,
)

NAME = "cpu"
KEYS = ("cpus", "cpu_weight")
_NO_BANDWIDTH = "the kernel was built without CFS bandwidth control (CONFIG_CFS_BANDWIDTH); leave cpus unset"


def _v1_cpus(read: Reader) -> float | str | None:
    quota, period = first_line(read("cpu.cfs_quota_us")), first_line(read("cpu.cfs_period_us"))
    if not quota or not period:
        return None
    return quota_to_cpus(int(quota), int(period))


def _v2_cpus(read: Reader) -> float | str | None:
    line = first_line(read("cpu.max"))
    if not line:
        return None
    quota, _space, period = line.partition(" ")
    return MAX if quota == "max" else quota_to_cpus(int(quota), int(period or CPU_PERIOD))


V1: dict[str, Knob] = {
    "cpus": Knob(
        ("cpu.cfs_quota_us", "cpu.cfs_period_us"),
        _v1_cpus,
        lambda v, ctx: [("cpu.cfs_quota_us", "-1", None)]
        if v == MAX
        else [("cpu.cfs_period_us", str(CPU_PERIOD), None), ("cpu.cfs_quota_us", str(cpus_to_quota(v)), None)],
        why_missing=_NO_BANDWIDTH,
    ),
    "cpu_weight": Knob(
        ("cpu.shares",),
        lambda r: None if first_line(r("cpu.shares")) is None else shares_to_weight(int(first_line(r("cpu.shares")))),
        single("cpu.shares", lambda v: str(weight_to_shares(v))),
    ),
}

V2: dict[str, Knob] = {
    "cpus": Knob(
        ("cpu.max",),
        _v2_cpus,
        single("cpu.max", lambda v: "max" if v == MAX else f"{cpus_to_quota(v)} {CPU_PERIOD}"),
        why_missing=_NO_BANDWIDTH,
    ),
    "cpu_weight": Knob(("cpu.weight",), lambda r: weight_line(r("cpu.weight")), single("cpu.weight", str)),
}

HINTS = {
    ("cpus", errno.EINVAL): "the quota conflicts with the parent cgroup's cpu.cfs_quota_us or is out of range; "
    "check the parent's limit",
}


def usage_usec_v1(read_cpuacct: Reader) -> int | None:
    """CPU time used, in microseconds, from v1's cpuacct.usage (nanoseconds)."""
    ns = int_or_none(read_cpuacct("cpuacct.usage"))
    return None if ns is None else ns // 1000


def usage_usec_v2(cpu_stat: str | None) -> int | None:
    """CPU time used, in microseconds, from the text of v2's cpu.stat."""
    return flat_key(cpu_stat, "usage_usec")
