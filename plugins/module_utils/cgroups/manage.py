# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring one cgroup to a wanted state: the engine behind the cgroup_limit module.

:func:`apply_limits` observes (does the cgroup exist, what are its limits and processes), decides (which settings
differ, which processes must move, whether a removal would be refused), acts unless ``check_mode`` and reports a
:class:`Result` with the before/after diff. Errors are :class:`CgroupError` naming the cgroup and the next step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import container_cgroup_path
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import Limits
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

STATES = ("present", "absent")


def empty_stats() -> dict:
    """The statistics of a cgroup that does not exist: every value unknown."""
    return dict(memory_usage=None, memory_peak=None, oom_kills=None, pids_current=None, cpu_usage_usec=None)


@dataclass
class Result:
    """What :func:`apply_limits` did (or, in check mode, would do).

    ``cgroup`` is :meth:`Cgroup.info` plus ``exists`` afterwards; ``limits`` the values in normal form afterwards
    ({} once removed); ``pids_added`` the processes moved; ``diff`` {before, after} with ``exists``, the changed
    settings and, when processes move or go, ``processes``.
    """

    changed: bool = False
    cgroup: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    stats: dict = field(default_factory=empty_stats)
    pids_added: list[int] = field(default_factory=list)
    diff: dict = field(default_factory=dict)


def apply_limits(
    limits: Limits | None = None,
    *,
    path: str | None = None,
    container: str | None = None,
    state: str = "present",
    force: bool = False,
    pids_to_add: Iterable[int] | None = None,
    check_mode: bool = False,
    cgroup_root: str = "/sys/fs/cgroup",
) -> Result:
    """Bring the cgroup ``path`` (or container ``container``'s, ``dockerless/<name>``) to ``state``.

    ``present``: create it if needed, write the settings of ``limits`` that differ (undone if the kernel refuses
    one) and move ``pids_to_add`` into it. ``absent``: remove it; with processes inside only when ``force``,
    which kills them. In ``check_mode`` nothing is written; a removal the real run would refuse fails now.
    """
    if (path is None) == (container is None):
        raise CgroupError("choosing a cgroup: give exactly one of path (like 'dockerless/web') and container")
    if state not in STATES:
        raise CgroupError(f"cgroup state {state!r}: expected one of {', '.join(STATES)}")
    cg = Cgroup(path if path is not None else container_cgroup_path(container), cgroup_root=cgroup_root)
    if state == "absent":
        return _remove(cg, force, check_mode)
    return _present(cg, limits if limits is not None else Limits(), list(pids_to_add or []), check_mode)


def _remove(cg: Cgroup, force: bool, check_mode: bool) -> Result:
    existed = cg.exists()
    before: dict = {"exists": existed}
    after: dict = {"exists": existed}
    changed = False
    if existed:
        procs = cg.pids()
        if procs and not force and check_mode:
            # The real run would refuse; say so now rather than promise a removal.
            raise CgroupError(f"removing cgroup {cg.path}: it still has processes {procs[:10]}; stop them, "
                              "or use force=true to kill them")
        before["processes"] = procs
        changed = True
        if not check_mode:
            cg.remove(force=force)
        after = {"exists": False, "processes": []}
    return Result(changed=changed, cgroup={**cg.info(), "exists": False}, limits={}, stats=empty_stats(),
                  diff=dict(before=before, after=after))


def _present(cg: Cgroup, limits: Limits, pids_to_add: list[int], check_mode: bool) -> Result:
    existed = cg.exists()
    before: dict = {"exists": existed}
    after: dict = {"exists": existed}
    changes = cg.plan(limits)
    to_move = cg.pids_to_move(pids_to_add)
    result = Result(changed=bool(changes) or bool(cg.missing_dirs()) or bool(to_move))
    for key, (old, new) in changes.items():
        before[key], after[key] = old, new
    after["exists"] = True
    if to_move:
        procs = cg.pids() if existed else []
        before["processes"] = procs
        after["processes"] = sorted(set(procs) | set(to_move))
    if check_mode:
        current = cg.read_limits() if existed else {}
        result.limits = {**current, **{key: new for key, (_old, new) in changes.items()}}
        result.pids_added = to_move
        result.stats = cg.stats() if existed else empty_stats()
    else:
        cg.apply(limits)
        result.pids_added = cg.add_pids(pids_to_add)
        result.limits, result.stats = cg.read_limits(), cg.stats()
    result.cgroup = {**cg.info(), "exists": True}
    result.diff = dict(before=before, after=after)
    return result
