# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One cgroup on v1, v2 or hybrid behind one interface: read -> compare -> write only what differs.

The lifecycle lives here (:meth:`Cgroup.read_limits`, :meth:`~Cgroup.plan`, :meth:`~Cgroup.apply` with undo,
:meth:`~Cgroup.add_pids`, :meth:`~Cgroup.stats`, :meth:`~Cgroup.remove`); what a setting means in which file
lives in one file per controller (memory, cpu, cpuset, pids, io), iterated through :data:`CONTROLLERS`. Values
are in the normal form of limits.py on every hierarchy, so callers compare like with like.

Per controller, the cgroup lives in the hierarchy the kernel attached that controller to (hierarchy.py): on a
pure v2 host everything is under the one cgroup2 mount; on v1 each controller has its own mount; on a hybrid
host each controller is used where it is mounted.

Writes happen in a fixed order (memory before/after swap depending on direction, as runc's
``setMemoryAndSwap``); when one is refused, the files already written in the same call are restored from a
snapshot taken just before writing them, and cgroups created by the call are removed again.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import cpu, cpuset, io, memory, pids
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import (
    Hierarchy,
    cgroup_dir,
    detect,
    read_text,
    v1_name,
    validate_path,
)
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.knob import (
    Knob,
    Reader,
    first_line,
    page_floor,
)
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import (
    IO_KEYS,
    LIMIT_KEYS,
    MAX,
    Limits,
    normalise_limits,
)
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

# The controllers whose settings this engine manages, in the order of the Limits fields they own.
CONTROLLERS = (memory, cpu, cpuset, pids, io)
# Every managed controller by its v2 name; "cpuacct" exists only on v1 (where cpu usage is read).
MANAGED = ("memory", "cpu", "cpuacct", "cpuset", "pids", "io")
KEY_CONTROLLER = {key: ctrl.NAME for ctrl in CONTROLLERS for key in ctrl.KEYS}
V1_KNOBS: dict[str, Knob] = {key: knob for ctrl in CONTROLLERS for key, knob in ctrl.V1.items()}
V2_KNOBS: dict[str, Knob] = {key: knob for ctrl in CONTROLLERS for key, knob in ctrl.V2.items()}
# What an errno from the kernel means for a key, and what to do next.
HINTS = {cause: hint for ctrl in CONTROLLERS for cause, hint in ctrl.HINTS.items()}


def _errmsg(exc: OSError) -> str:
    return exc.strerror or str(exc)


@dataclass
class _Written:
    """A write done by apply() and the text that restores it: the previous first line for single-value files, or
    the device's previous line for keyed files (v1 throttle files, v2 io.max)."""

    path: str
    restore: str


class Cgroup:
    """One cgroup, by path relative to the hierarchy root, on whatever hierarchy the host has."""

    def __init__(self, path: str, cgroup_root: str = "/sys/fs/cgroup", hierarchy: Hierarchy | None = None):
        self.path = validate_path(path)
        self.hierarchy = hierarchy if hierarchy is not None else detect(cgroup_root)
        self.root = self.hierarchy.root

    # -- locations --------------------------------------------------------------------------------------------

    def _dir_in(self, mount_path: str) -> str:
        return cgroup_dir(mount_path, self.path)

    def _mounts(self) -> list[str]:
        """The distinct hierarchy mounts this cgroup lives in (one on v2, one per controller mount on v1)."""
        mounts = []
        for ctrl in MANAGED:
            mount = self.hierarchy.mount(ctrl)
            if mount is not None and mount.path not in mounts:
                mounts.append(mount.path)
        if self.hierarchy.mode == "v2" and self.hierarchy.unified not in mounts:
            mounts.append(self.hierarchy.unified)
        return mounts

    def controller_dir(self, controller: str) -> str | None:
        """Directory of this cgroup for ``controller`` (v2 name), or None when the controller isn't mounted."""
        mount = self.hierarchy.mount(controller)
        return None if mount is None else self._dir_in(mount.path)

    def dirs(self) -> list[str]:
        """Every directory of this cgroup, one per hierarchy it belongs to."""
        return [self._dir_in(m) for m in self._mounts()]

    def exists(self) -> bool:
        """True when the cgroup exists in at least one of its hierarchies."""
        return any(os.path.isdir(d) for d in self.dirs())

    def missing_dirs(self) -> list[str]:
        """The directories apply() would have to create."""
        return [d for d in self.dirs() if not os.path.isdir(d)]

    def _version(self, controller: str) -> int:
        mount = self.hierarchy.mount(controller)
        return mount.version if mount else 0

    def _knob(self, key: str) -> Knob:
        return (V1_KNOBS if self._version(KEY_CONTROLLER[key]) == 1 else V2_KNOBS)[key]

    def _reader(self, controller: str) -> Reader:
        directory = self.controller_dir(controller)

        def read(name: str) -> str | None:
            return None if directory is None else read_text(os.path.join(directory, name))

        return read

    # -- reading ----------------------------------------------------------------------------------------------

    def _require_controllers(self, keys: Iterable[str]) -> None:
        for key in keys:
            ctrl = KEY_CONTROLLER[key]
            if self.hierarchy.mount(ctrl) is None:
                raise CgroupError(
                    f"{key} on cgroup {self.path}: the {v1_name(ctrl)} controller is not available "
                    f"({self.hierarchy.describe()}); enable or mount it, or leave {key} unset"
                )

    def read_limits(self) -> dict:
        """Current values in normal form, keyed like :class:`Limits`; None where unknown or not available."""
        if not self.exists():
            raise CgroupError(f"reading limits of cgroup {self.path}: it does not exist under {self.root}; create it")
        out = {}
        for key in LIMIT_KEYS:
            ctrl = KEY_CONTROLLER[key]
            try:
                out[key] = self._knob(key).read(self._reader(ctrl)) if self.hierarchy.mount(ctrl) else None
            except (ValueError, IndexError) as exc:
                raise CgroupError(f"reading {key} of cgroup {self.path}: unexpected content ({exc}); check the kernel")
        return out

    # -- deciding ---------------------------------------------------------------------------------------------

    def _wanted(self, limits: Limits, current: dict) -> Limits:
        """Validated limits plus runc's rule: unlimited memory with swap left unset also lifts a swap limit
        (on v1 memory above memory.memsw.limit_in_bytes would be refused otherwise). Checks memory_swap against
        the memory limit it will sit on."""
        wanted = normalise_limits(limits)
        self._require_controllers(wanted.requested())
        if wanted.memory == MAX and wanted.memory_swap is None and current.get("memory_swap") not in (None, MAX):
            wanted.memory_swap = MAX
        swap = wanted.memory_swap
        if swap is not None and swap != MAX:
            memory = wanted.memory if wanted.memory is not None else current.get("memory", MAX)
            if self._version("memory") == 2 and not isinstance(memory, int):
                raise CgroupError(
                    f"memory_swap on cgroup {self.path}: cgroup v2 stores swap apart from memory "
                    "(memory.swap.max = memory_swap - memory), so a memory limit is needed; set memory as well"
                )
            if isinstance(memory, int) and swap < memory:
                raise CgroupError(
                    f"memory_swap {swap} on cgroup {self.path} is below its memory limit {memory}: memory_swap is "
                    "memory plus swap; raise memory_swap or lower memory"
                )
        now_swap = current.get("memory_swap")
        if (
            self._version("memory") == 1
            and swap is None
            and isinstance(wanted.memory, int)
            and isinstance(now_swap, int)
            and page_floor(wanted.memory) > now_swap
        ):
            raise CgroupError(
                f"memory {wanted.memory} on cgroup {self.path} is above its current memory_swap {now_swap}: cgroup "
                "v1 keeps memory <= memory+swap (memory.memsw.limit_in_bytes); set memory_swap as well"
            )
        return wanted

    def _diff(self, wanted: Limits, current: dict) -> dict[str, tuple[Any, Any]]:
        """{key: (before, after)} for every requested key; ``after`` is what read_limits() returns once written.
        For io_max, both sides list only the requested devices (with all four rates)."""
        out = {}
        for key, value in wanted.requested().items():
            if key == "io_max":
                now = {e["device"]: e for e in current.get("io_max") or []}
                unlimited = {k: MAX for k in IO_KEYS}
                before = [now.get(e["device"], dict(device=e["device"], **unlimited)) for e in value]
                after = [{**b, **e} for b, e in zip(before, value)]
            else:
                before, after = current.get(key), self._knob(key).effective(value)
            out[key] = (before, after)
        return out

    def _missing_file(self, key: str) -> str | None:
        """The knob's file when the controller is active on this cgroup but the file does not exist."""
        ctrl = KEY_CONTROLLER[key]
        directory = self.controller_dir(ctrl)
        if directory is None or not os.path.isdir(directory):
            return None
        knob = self._knob(key)
        if any(os.path.exists(os.path.join(directory, f)) for f in knob.files):
            return None
        if self._version(ctrl) == 2:
            enabled = (read_text(os.path.join(directory, "cgroup.controllers")) or "").split()
            if ctrl not in enabled:
                return None  # the parent does not enable it yet: apply() will
        return os.path.join(directory, knob.files[0])

    def _check_files(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._missing_file(key)
            if path:
                why = self._knob(key).why_missing or "the controller does not offer it on this kernel"
                raise CgroupError(f"{key} on cgroup {self.path}: {path} does not exist: {why}")

    def plan(self, limits: Limits) -> dict:
        """{key: (before, after)} for the keys apply() would change. When the cgroup does not exist yet, every
        requested key is listed with ``before`` None. Writes nothing."""
        if self.missing_dirs():
            wanted = self._wanted(limits, {})
            return {key: (None, after) for key, (_b, after) in self._diff(wanted, {}).items()}
        current = self.read_limits()
        wanted = self._wanted(limits, current)
        self._check_files(wanted.requested())
        return {key: pair for key, pair in self._diff(wanted, current).items() if pair[0] != pair[1]}

    # -- acting -----------------------------------------------------------------------------------------------

    # The three calls that change cgroupfs. They are static methods so the unit tests' fake cgroupfs can stand in
    # for the kernel (files appearing on mkdir, "+memory" edits, keyed files); nothing else touches the tree.

    @staticmethod
    def _write(path: str, text: str) -> None:
        """One write(2); cgroupfs reports a refused value as the write's error, which buffering would hide."""
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, (text or "\n").encode())
        finally:
            os.close(fd)

    @staticmethod
    def _mkdir(path: str) -> None:
        os.mkdir(path, 0o755)

    @staticmethod
    def _rmdir(path: str) -> None:
        os.rmdir(path)

    def _ordered(self, keys: Iterable[str], targets: dict, current: dict) -> list[str]:
        """Keys in write order. On v1 memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes, so
        memory_swap goes first when it rises above the current memory limit, else memory goes first (runc's
        setMemoryAndSwap)."""
        keys = [k for k in LIMIT_KEYS if k in keys]
        if "memory" in keys and "memory_swap" in keys and self._version("memory") == 1:
            swap, now = targets["memory_swap"], current.get("memory")
            keys.remove("memory_swap")
            swap_first = swap == MAX or (isinstance(now, int) and now < swap)
            keys.insert(keys.index("memory") + (0 if swap_first else 1), "memory_swap")
        return keys

    @staticmethod
    def _snapshot(path: str, device: str | None, unset: str) -> str:
        text = read_text(path)
        if device is None:
            return first_line(text) or ""
        for line in (text or "").splitlines():
            if line.split(" ", 1)[0] == device:
                return line.strip()
        return f"{device} {unset}"

    def _needed_v2(self, keys: Iterable[str]) -> tuple[list[str], list[str]]:
        """v2 controllers to enable down to this cgroup: (required by the requested keys, optional). memory and
        pids are optional extras so stats() can report usage; failing to enable them is not an error."""
        required: list[str] = []
        for ctrl in [KEY_CONTROLLER[k] for k in keys]:
            mount = self.hierarchy.mount(ctrl)
            if mount is not None and mount.version == 2 and ctrl not in required:
                required.append(ctrl)
        optional = [
            c for c in ("memory", "pids")
            if c not in required and self.hierarchy.mount(c) is not None and self.hierarchy.mount(c).version == 2
        ]
        return required, optional

    def _ensure(
        self, needed: tuple[list[str], list[str]], created: list[str], enabled: list[tuple[str, str]]
    ) -> None:
        """Create the cgroup's directories. On v2, enable ``needed`` in each ancestor's cgroup.subtree_control on
        the way down (a child only gets the files of controllers its parent enables). On v1, seed a new cpuset
        cgroup's cpus/mems from its parent as runc does: an empty cpuset refuses every process (ENOSPC)."""
        cpuset_mount = self.hierarchy.mount("cpuset")
        for mount in self._mounts():
            v2 = mount == self.hierarchy.unified
            seed = cpuset_mount is not None and cpuset_mount.version == 1 and cpuset_mount.path == mount
            cur = mount
            for part in self.path.split("/"):
                if v2:
                    self._enable(cur, needed[0], enabled)
                    self._enable(cur, needed[1], enabled, optional=True)
                parent, cur = cur, os.path.join(cur, part)
                if os.path.isdir(cur):
                    continue
                try:
                    self._mkdir(cur)
                except OSError as exc:
                    raise CgroupError(
                        f"creating cgroup {self.path} ({cur}): {_errmsg(exc)}; run as root or choose a cgroup "
                        "delegated to this user"
                    )
                created.append(cur)
                if seed:
                    for name in cpuset.SEED_V1:
                        mine = read_text(os.path.join(cur, name))
                        theirs = first_line(read_text(os.path.join(parent, name)))
                        if mine is not None and not mine.strip() and theirs:
                            try:
                                self._write(os.path.join(cur, name), theirs)
                            except OSError as exc:
                                raise CgroupError(
                                    f"creating cgroup {self.path}: copying {name} {theirs!r} from {parent}: "
                                    f"{_errmsg(exc)}; check the parent cpuset"
                                )

    def _enable(self, directory: str, ctrls: list[str], enabled: list[tuple[str, str]], optional: bool = False) -> None:
        """Enable ``ctrls`` for the children of ``directory``; ``optional`` ones are skipped when impossible."""
        if not ctrls:
            return
        have = (read_text(os.path.join(directory, "cgroup.subtree_control")) or "").split()
        available = (read_text(os.path.join(directory, "cgroup.controllers")) or "").split()
        path = os.path.join(directory, "cgroup.subtree_control")
        for ctrl in ctrls:
            if ctrl in have:
                continue
            if optional:
                if ctrl in available:
                    try:
                        self._write(path, f"+{ctrl}")
                        enabled.append((path, ctrl))
                    except OSError:
                        pass  # only needed for statistics
                continue
            if ctrl not in available:
                raise CgroupError(
                    f"cgroup {self.path}: the {ctrl} controller is not available in {directory} (cgroup v2; "
                    f"available there: {' '.join(available) or 'none'}); delegate it to that cgroup (systemd "
                    "Delegate=yes) or choose another path"
                )
            try:
                self._write(path, f"+{ctrl}")
            except OSError as exc:
                hint = (
                    "that cgroup has processes of its own, and cgroup v2 lets only leaf cgroups hold processes "
                    "once controllers are enabled; move them into a child cgroup or choose another path"
                    if exc.errno == errno.EBUSY
                    else "run as root or use a delegated cgroup"
                )
                raise CgroupError(f"enabling {ctrl} in {path} for cgroup {self.path}: {_errmsg(exc)}; {hint}")
            enabled.append((path, ctrl))

    def _rollback(self, written: list[_Written], created: list[str], enabled: list[tuple[str, str]]) -> list[str]:
        """Undo in reverse order; returns what could not be undone."""
        problems = []
        for item in reversed(written):
            try:
                self._write(item.path, item.restore)
            except OSError as exc:
                problems.append(f"restoring {item.path} to {item.restore!r}: {_errmsg(exc)}")
        for path in reversed(created):
            try:
                self._rmdir(path)
            except OSError as exc:
                problems.append(f"removing {path}: {_errmsg(exc)}")
        for path, ctrl in reversed(enabled):
            try:
                self._write(path, f"-{ctrl}")
            except OSError as exc:
                problems.append(f"disabling {ctrl} in {path}: {_errmsg(exc)}")
        return problems

    def _write_key(self, key: str, value: Any, ctx: dict, written: list[_Written]) -> None:
        ctrl = KEY_CONTROLLER[key]
        directory = self.controller_dir(ctrl)
        knob = self._knob(key)
        # The first of the knob's files that exists (v1 io_weight: blkio.weight, else BFQ's blkio.bfq.weight).
        ctx["_file"] = next((f for f in knob.files if os.path.exists(os.path.join(directory, f))), knob.files[0])
        unset = io.unset_line(self._version(ctrl))
        for name, text, device in knob.writes(value, ctx):
            path = os.path.join(directory, name)
            restore = self._snapshot(path, device, unset)
            try:
                self._write(path, text)
            except OSError as exc:
                hint = HINTS.get((key, exc.errno)) or (
                    "run as root or use a delegated cgroup"
                    if exc.errno in (errno.EACCES, errno.EPERM)
                    else "check the value against the kernel's cgroup documentation"
                )
                raise CgroupError(f"setting {key} of cgroup {self.path} ({path} <- {text!r}): {_errmsg(exc)}; {hint}")
            written.append(_Written(path, restore))

    def apply(self, limits: Limits) -> dict:
        """Create the cgroup if needed and write only the settings that differ; returns what plan() returned.

        If the kernel refuses a write, the files already written by this call are restored, directories it
        created are removed and controllers it enabled are disabled again; :class:`CgroupError` then says which
        setting failed, why, and what to do next.
        """
        was_missing = bool(self.missing_dirs())
        seen = {} if was_missing else self.read_limits()
        # Validate everything before touching the tree: a bad value never creates a cgroup.
        self._wanted(limits, seen)
        created: list[str] = []
        enabled: list[tuple[str, str]] = []
        written: list[_Written] = []
        try:
            self._ensure(self._needed_v2(normalise_limits(limits).requested()), created, enabled)
            current = self.read_limits()
            wanted = self._wanted(limits, current)
            self._check_files(wanted.requested())
            diff = self._diff(wanted, current)
            changed = {key: pair for key, pair in diff.items() if pair[0] != pair[1]}
            targets = {key: after for key, (_b, after) in diff.items()}
            ctx = {"memory": targets.get("memory", current.get("memory"))}
            for key in self._ordered(changed, targets, current):
                if key == "io_max":
                    # Only the devices whose rates change, with only the rates that were asked for.
                    before, after = changed[key]
                    value = [e for e, b, a in zip(wanted.io_max, before, after) if b != a]
                else:
                    value = getattr(wanted, key)
                self._write_key(key, value, ctx, written)
        except (CgroupError, OSError) as exc:
            problems = self._rollback(written, created, enabled)
            message = str(exc) if isinstance(exc, CgroupError) else f"applying limits to cgroup {self.path}: {exc}"
            if written or created or enabled:
                message += f". Undone: {len(written)} write(s) restored, {len(created)} created dir(s) removed"
            if problems:
                message += ". Undo FAILED, check by hand: " + "; ".join(problems)
            raise CgroupError(message)
        if was_missing:
            return {key: (None, after) for key, after in targets.items()}
        # Report against what was there before this call, exactly as plan() did: a setting whose controller had
        # to be enabled first (v2) read as None then, even if the kernel's default turned out to match.
        earlier = self._diff(wanted, seen)
        return {key: (earlier[key][0], after) for key, after in targets.items() if earlier[key][0] != after}

    # -- processes --------------------------------------------------------------------------------------------

    def _procs(self, directory: str) -> list[int]:
        text = read_text(os.path.join(directory, "cgroup.procs"))
        return sorted({int(x) for x in (text or "").split()})

    def pids(self) -> list[int]:
        """Processes (thread-group ids) in this cgroup itself, over all its hierarchies."""
        out: set[int] = set()
        for directory in self.dirs():
            if os.path.isdir(directory):
                out.update(self._procs(directory))
        return sorted(out)

    def pids_to_move(self, pids: Iterable[int], proc: str = "/proc") -> list[int]:
        """The processes of ``pids`` that add_pids() would move (not yet in every hierarchy of this cgroup).

        Each must be a positive integer naming an existing process (checked under ``proc``).
        """
        wanted: list[int] = []
        for pid in pids:
            if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
                raise CgroupError(f"moving {pid!r} into cgroup {self.path}: expected a positive process id")
            if not os.path.exists(os.path.join(proc, str(pid))):
                raise CgroupError(f"moving process {pid} into cgroup {self.path}: no such process; check the pid")
            if pid not in wanted:
                wanted.append(pid)
        inside = [set(self._procs(d)) if os.path.isdir(d) else set() for d in self.dirs()]
        return [pid for pid in wanted if not all(pid in procs for procs in inside)]

    def add_pids(self, pids: Iterable[int], proc: str = "/proc") -> list[int]:
        """Move processes into the cgroup, in every hierarchy it has; returns the pids actually moved.

        The cgroup must exist. Moves are not undone if a later one fails: a process's previous cgroups are not
        ours to restore.
        """
        todo = self.pids_to_move(pids, proc)
        if todo and self.missing_dirs():
            raise CgroupError(f"moving processes into cgroup {self.path}: it does not exist; create it first")
        for pid in todo:
            for directory in self.dirs():
                if pid in self._procs(directory):
                    continue
                try:
                    self._write(os.path.join(directory, "cgroup.procs"), str(pid))
                except OSError as exc:
                    hint = {
                        errno.ESRCH: "the process exited meanwhile",
                        errno.ENOSPC: "the cgroup has no CPUs or memory nodes (cpuset), or on v2 is not a leaf",
                        errno.EBUSY: "on cgroup v2 processes can only join leaf cgroups",
                        errno.EOPNOTSUPP: "on cgroup v2 processes can only join leaf cgroups",
                    }.get(exc.errno, "run as root or use a delegated cgroup")
                    raise CgroupError(f"moving process {pid} into {directory}: {_errmsg(exc)}; {hint}")
        return todo

    # -- stats ------------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """memory_usage, memory_peak (bytes), oom_kills, pids_current, cpu_usage_usec; None when unknown."""
        out: dict[str, int | None] = dict(
            memory_usage=None, memory_peak=None, oom_kills=None, pids_current=None, cpu_usage_usec=None
        )
        out.update(memory.stats(self._reader("memory"), self._version("memory")))
        out.update(pids.stats(self._reader("pids")))
        if self._version("cpuacct") == 1:
            out["cpu_usage_usec"] = cpu.usage_usec_v1(self._reader("cpuacct"))
        elif self.hierarchy.unified is not None and self.hierarchy.mode == "v2":
            out["cpu_usage_usec"] = cpu.usage_usec_v2(
                read_text(os.path.join(self._dir_in(self.hierarchy.unified), "cpu.stat"))
            )
        return out

    # -- removal ----------------------------------------------------------------------------------------------

    def _subtree(self, directory: str) -> list[str]:
        """``directory`` and its descendants, deepest first."""
        out = []
        for top, subdirs, _files in os.walk(directory, topdown=False):
            out.extend(os.path.join(top, s) for s in subdirs)
        out.append(directory)
        return out

    def _subtree_pids(self) -> list[int]:
        out: set[int] = set()
        for directory in self.dirs():
            if os.path.isdir(directory):
                for sub in self._subtree(directory):
                    out.update(self._procs(sub))
        return sorted(out)

    def remove(self, force: bool = False, timeout: float = 10.0) -> bool:
        """Remove the cgroup and its empty sub-cgroups in every hierarchy; False when it did not exist.

        With processes inside (anywhere in the subtree) it fails unless ``force``, which kills them (v2
        ``cgroup.kill`` where the kernel has it, else SIGKILL in rounds until the cgroup is empty).
        """
        dirs = [d for d in self.dirs() if os.path.isdir(d)]
        if not dirs:
            return False
        procs = self._subtree_pids()
        if procs and not force:
            shown = " ".join(str(p) for p in procs[:10]) + (" ..." if len(procs) > 10 else "")
            raise CgroupError(
                f"removing cgroup {self.path}: it still has {len(procs)} process(es) ({shown}); stop them, or "
                "use force to kill them"
            )
        deadline = time.monotonic() + timeout
        if procs:
            for directory in dirs:
                kill = os.path.join(directory, "cgroup.kill")
                if os.path.exists(kill):
                    try:
                        self._write(kill, "1")
                    except OSError:
                        pass  # fall back to signals below
            while True:
                procs = self._subtree_pids()
                if not procs:
                    break
                if time.monotonic() > deadline:
                    raise CgroupError(
                        f"removing cgroup {self.path}: processes {procs[:10]} survived SIGKILL for {timeout:.0f}s "
                        "(uninterruptible I/O?); try again later"
                    )
                for pid in procs:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    except OSError as exc:
                        raise CgroupError(f"removing cgroup {self.path}: killing {pid}: {_errmsg(exc)}; run as root")
                time.sleep(0.02)
        for directory in dirs:
            for sub in self._subtree(directory):
                while True:
                    try:
                        self._rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:
                        # Killed tasks leave the cgroup asynchronously: EBUSY for a short while is normal.
                        if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                            time.sleep(0.02)
                            continue
                        raise CgroupError(
                            f"removing cgroup {self.path} ({sub}): {_errmsg(exc)}; check for processes or "
                            "sub-cgroups left in it"
                        )
        return True

    # -- description ------------------------------------------------------------------------------------------

    def info(self) -> dict:
        """{path, mode, version: {controller: 1|2}, paths: {controller: directory}} for managed controllers."""
        version, paths = {}, {}
        for ctrl in MANAGED:
            mount = self.hierarchy.mount(ctrl)
            if mount is not None:
                version[ctrl] = mount.version
                paths[ctrl] = self._dir_in(mount.path)
        return {"path": self.path, "mode": self.hierarchy.mode, "version": version, "paths": paths}
