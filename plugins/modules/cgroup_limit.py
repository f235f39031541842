#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cgroup_limit
short_description: Create a cgroup, set its resource limits and move processes into it (cgroup v1, v2, hybrid)
version_added: 0.1.0
description:
  - Creates a cgroup (or uses an existing one), sets memory, swap, CPU, cpuset, pids and block I/O limits, and
    optionally moves processes into it. With O(state=absent) removes it.
  - Works on cgroup v2, v1 and hybrid hosts (v1 controllers plus a cgroup2 mount at C(unified)); each setting is
    written to the hierarchy its controller is attached to. On v2, the needed controllers are enabled in the
    parents' C(cgroup.subtree_control).
  - Reads the current values, normalises them (C(max) for unlimited, bytes, quota/period as CPUs) and writes only
    the settings that differ, so a second identical run reports RV(ignore:changed=false).
  - If the kernel refuses a value (for example a memory limit below what the cgroup already uses on v1), the
    settings already written by the same run are restored and a cgroup created by the run is removed again.
  - Values are given in one unit system on every host; see the options for how they map to v1 files.
    Options left unset are left alone.
options:
  path:
    description:
      - Cgroup path relative to the root of each hierarchy, for example V(dockerless/web). A leading C(/) is
        accepted. C(..), C(.) and empty components are refused; the root cgroup itself is never managed.
      - Exactly one of O(path) and O(container) is required.
    type: str
  container:
    description:
      - Name of a container of P(dockerless.containers.container_run#module). Its cgroup path is
        C(dockerless/<container>), the convention the container runtime uses.
      - Exactly one of O(path) and O(container) is required.
    type: str
  state:
    description:
      - V(present) creates the cgroup if needed and sets the limits.
      - V(absent) removes the cgroup and its sub-cgroups. It fails while processes are inside unless O(force).
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), kill the processes inside first (C(cgroup.kill) on v2, SIGKILL otherwise).
    type: bool
    default: false
  memory:
    description:
      - Memory limit, as bytes or a number with a binary unit (V(512m), V(1g), V(1.5g)), or V(max) for no limit.
      - v1 C(memory.limit_in_bytes), v2 C(memory.max). The kernel keeps whole pages, so the value is rounded
        down to the page size.
      - On v1, V(max) with O(memory_swap) unset also lifts the swap limit (as runc does), since v1 does not allow
        memory above memory+swap.
    type: str
  memory_swap:
    description:
      - Memory plus swap, Docker's meaning; at least O(memory). V(max) for unlimited swap.
      - v1 C(memory.memsw.limit_in_bytes). That file exists only with swap accounting on (C(CONFIG_MEMCG_SWAP),
        not booted with C(swapaccount=0)); without it the module fails and says so.
      - v2 C(memory.swap.max), set to O(memory_swap) minus the memory limit; a memory limit is then required.
    type: str
  memory_reservation:
    description:
      - Soft memory limit, bytes or a size with a unit; v1 C(memory.soft_limit_in_bytes), v2 C(memory.low).
    type: str
  cpus:
    description:
      - CPU time as a number of CPUs (V(0.5), V(1.5)), written as a CFS quota per 100000 microsecond period
        (v1 C(cpu.cfs_quota_us)/C(cpu.cfs_period_us), v2 C(cpu.max)). At least V(0.01). V(max) removes the quota.
    type: str
  cpu_weight:
    description:
      - Relative CPU weight in cgroup v2 units, 1 to 10000 (v2 default 100).
      - On v1 it is written to C(cpu.shares) converted with runc's formula
        (C(weight = 1 + (shares - 2) * 9999 / 262142)); the smallest matching share count is used, so the
        value reads back unchanged. v1's default of 1024 shares reads as weight 39.
    type: int
  cpuset_cpus:
    description:
      - CPUs the processes may run on, in the kernel's list format (V(0-3), V(0,2)). Must be a subset of the
        parent's CPUs. V(1,0) and V(0-1) are the same value.
    type: str
  cpuset_mems:
    description:
      - Memory nodes the processes may use, in the same list format as O(cpuset_cpus).
    type: str
  pids:
    description:
      - Maximum number of processes and threads in the cgroup (C(pids.max)), or V(max).
    type: str
  io_weight:
    description:
      - Relative block I/O weight in cgroup v2 units, 1 to 10000 (v2 C(io.weight)).
      - On v1 it is written to C(blkio.weight) (CFQ) or C(blkio.bfq.weight) (BFQ) converted with runc's
        formula (C(io_weight = 1 + (blkio - 10) * 9999 / 990)); v1 has fewer steps, so the value read back is the
        nearest one v1 can hold (for example V(100) reads back as V(102)).
    type: int
  io_max:
    description:
      - Block I/O throttling per device (v1 C(blkio.throttle.*_device), v2 C(io.max)).
      - Only the listed devices and, for each, only the given rates are changed; V(max) removes a rate limit.
    type: list
    elements: dict
    suboptions:
      device:
        description:
          - A whole block device, as a path (V(/dev/sda)) or V(MAJOR:MINOR) (V(8:0)).
        type: str
        required: true
      rbps:
        description: Read bytes per second (a size like V(10m) is accepted), or V(max).
        type: str
      wbps:
        description: Write bytes per second (a size like V(10m) is accepted), or V(max).
        type: str
      riops:
        description: Read operations per second, or V(max).
        type: str
      wiops:
        description: Write operations per second, or V(max).
        type: str
  pids_to_add:
    description:
      - Process ids to move into the cgroup (into every hierarchy it has on v1). Processes already inside are
        not moved again. Each must exist.
    type: list
    elements: int
  cgroup_root:
    description:
      - Where the cgroup hierarchies are mounted. Change it only for tests against a fake tree.
    type: path
    default: /sys/fs/cgroup
notes:
  - Requires root, or a cgroup delegated to the user running the module.
  - Moving processes is not undone if a later move fails.
attributes:
  check_mode:
    support: full
    description: Reads the cgroup and reports what would be created, written or moved; writes nothing.
  diff_mode:
    support: full
    description: Before and after per setting, plus C(exists) and C(processes).
  idempotent:
    support: full
    description: Settings that already hold their value are not written; a second identical run reports no change.
seealso:
  - name: Linux cgroup v2 documentation
    description: The kernel's description of the v2 interface files.
    link: https://docs.kernel.org/admin-guide/cgroup-v2.html
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Limit a container's memory and processes
  dockerless.containers.cgroup_limit:
    container: web
    memory: 512m
    memory_swap: 1g
    pids: 200
    cpus: 1.5

- name: Put a running process into a cgroup of its own
  dockerless.containers.cgroup_limit:
    path: batch/nightly
    memory: 2g
    cpu_weight: 50
    pids_to_add: ["{{ job_pid | int }}"]
  register: cg

- name: Check what it uses
  ansible.builtin.assert:
    that:
      - cg.stats.memory_usage < 2 * 1024 ** 3

- name: Throttle reads from one disk
  dockerless.containers.cgroup_limit:
    path: batch/nightly
    io_max:
      - device: /dev/sda
        rbps: 20m

- name: Remove it, killing what is left inside
  dockerless.containers.cgroup_limit:
    path: batch/nightly
    state: absent
    force: true
"""

RETURN = r"""
cgroup:
  description: Where the cgroup is, per controller.
  returned: always
  type: dict
  contains:
    path:
      description: The cgroup path relative to each hierarchy root.
      type: str
      sample: dockerless/web
    exists:
      description: Whether the cgroup exists after the run (in check mode, whether it would).
      type: bool
      sample: true
    mode:
      description: The host's layout, V(v1), V(v2) or V(hybrid).
      type: str
      sample: hybrid
    version:
      description: Cgroup version (1 or 2) of each managed controller found on the host.
      type: dict
      sample: {memory: 1, cpu: 1, cpuacct: 1, cpuset: 1, pids: 1, io: 1}
    paths:
      description: The cgroup's directory for each managed controller.
      type: dict
      sample: {memory: /sys/fs/cgroup/memory/dockerless/web, pids: /sys/fs/cgroup/pids/dockerless/web}
limits:
  description:
    - The cgroup's settings after the run, normalised (bytes, V(max) for unlimited, CPUs as a float, weights in
      v2 units). In check mode, the values it would have. V(null) where the host does not offer the setting.
    - Empty when the cgroup does not exist.
  returned: always
  type: dict
  sample:
    memory: 536870912
    memory_swap: 1073741824
    memory_reservation: max
    cpus: 1.5
    cpu_weight: 39
    cpuset_cpus: 0-1
    cpuset_mems: "0"
    pids: 200
    io_weight: 910
    io_max: [{device: "254:0", rbps: 20971520, wbps: max, riops: max, wiops: max}]
stats:
  description: Usage counters of the cgroup, V(null) when unknown (or the cgroup does not exist).
  returned: always
  type: dict
  contains:
    memory_usage:
      description: Memory in use, in bytes (v1 C(memory.usage_in_bytes), v2 C(memory.current)).
      type: int
      sample: 1052672
    memory_peak:
      description: Highest memory use seen, in bytes (v1 C(memory.max_usage_in_bytes), v2 C(memory.peak)).
      type: int
      sample: 2105344
    oom_kills:
      description: Processes killed by the OOM killer inside the cgroup.
      type: int
      sample: 0
    pids_current:
      description: Processes and threads in the cgroup (C(pids.current)).
      type: int
      sample: 3
    cpu_usage_usec:
      description: CPU time used, in microseconds.
      type: int
      sample: 52411
pids_added:
  description: Processes moved into the cgroup (in check mode, that would be moved).
  returned: always
  type: list
  elements: int
  sample: [4242]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError

_RATE = dict(type="str")
ARGUMENT_SPEC = dict(
    path=dict(type="str"),
    container=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    force=dict(type="bool", default=False),
    memory=dict(type="str"),
    memory_swap=dict(type="str"),
    memory_reservation=dict(type="str"),
    cpus=dict(type="str"),
    cpu_weight=dict(type="int"),
    cpuset_cpus=dict(type="str"),
    cpuset_mems=dict(type="str"),
    pids=dict(type="str"),
    io_weight=dict(type="int"),
    io_max=dict(
        type="list",
        elements="dict",
        options=dict(device=dict(type="str", required=True), rbps=_RATE, wbps=_RATE, riops=_RATE, wiops=_RATE),
    ),
    pids_to_add=dict(type="list", elements="int"),
    cgroup_root=dict(type="path", default="/sys/fs/cgroup"),
)


def _limits(limits, params: dict):
    """The engine's ``Limits`` (``limits``: cgroups.limits) of the module's parameters."""
    values = {key: params[key] for key in limits.LIMIT_KEYS}
    if values["io_max"] is not None:
        values["io_max"] = [{k: v for k, v in entry.items() if v is not None} for entry in values["io_max"]]
    return limits.Limits(**values)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("path", "container")],
        required_one_of=[("path", "container")],
        supports_check_mode=True,
    )
    limits, manage = engine_loader.load_for(module, "cgroups.limits", "cgroups.manage")
    p = module.params
    try:
        result = manage.apply_limits(
            _limits(limits, p),
            path=p["path"],
            container=p["container"],
            state=p["state"],
            force=p["force"],
            pids_to_add=p["pids_to_add"],
            check_mode=module.check_mode,
            cgroup_root=p["cgroup_root"],
        )
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(
        changed=result.changed,
        pids_added=result.pids_added,
        cgroup=result.cgroup,
        limits=result.limits,
        stats=result.stats,
        diff=result.diff,
    )


if __name__ == "__main__":
    main()
