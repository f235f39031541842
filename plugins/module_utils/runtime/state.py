# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-disk state of named containers, their cgroup, and size-capped logs.

``<store>/containers/<name>/``::

    spec.json        what the container is: {"name", "id", "created_at", "spec" (ContainerSpec), "config"
                     (the init config), "diff_ids" (kept by store GC)}; written by the caller
    state.json       what it is doing: {"state", "pid", "supervisor_pid", "exit_code", "started_at",
                     "finished_at", "restart_count", "rootfs_mode", "cgroup", "oom_killed", "error",
                     "stopped_by_user"}; written by the supervisor (``stopped_by_user``: the last end came from
                     stop/kill/state: stopped, which ``unless-stopped`` and ``start --all`` honour)
    supervisor.lock  flock(2)-held by the supervisor for its whole life: the lock, not a PID, says whether a
                     supervisor is alive (a PID can be reused, a released lock can't lie)
    stdout.log, stderr.log (+ .1 after rotation), supervisor.log
    upper/ work/ rootfs/ rootfs-copy/   the container's filesystem (overlay upper/work, mount point, copy)

Every JSON file is replaced atomically (temp file, fsync, rename). Imported by the supervisor, so stdlib only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError, RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_dumps, json_loads
from ansible_collections.dockerless.containers.plugins.module_utils.store_root import default_store_root

SPEC_FILE = "spec.json"
STATE_FILE = "state.json"
LOCK_FILE = "supervisor.lock"
STOP_FILE = "stop.json"          # {"timeout": seconds, "signal": name}: how the next stop goes, written before SIGTERM
KILL_FILE = "kill.json"          # {"signal": name}: what to send to PID 1, written before SIGUSR2 to the supervisor
START_FILE = "start.json"        # container_run asked the container's systemd unit to start it (runtime/systemd.py)
LOG_FILES = ("stdout.log", "stderr.log")
DEFAULT_LOG_MAX = 10 << 20


def containers_dir(store_root: str | None) -> str:
    """``<store>/containers``: where named containers' folders are (the default store when None)."""
    return os.path.join(os.path.abspath(store_root or default_store_root()), "containers")


def current_state(state: dict, alive: bool) -> str:
    """What a named container is doing, from its state.json and whether its supervisor holds the lock: created,
    running, restarting, exited, or dead (recorded as running while no supervisor is alive)."""
    recorded = state.get("state") or "created"
    if not alive and recorded in ("running", "starting", "restarting"):
        return "dead"       # the supervisor vanished (killed, host reboot): so did the container
    if alive and recorded == "starting":
        return "running"
    return recorded


def parse_signal(value) -> str:
    """A signal as Docker takes it (``SIGUSR1``, ``usr1``, ``10``, ``SIGRTMIN+3``) → its canonical name
    (``SIGUSR1``, ``SIGRTMIN+3``). Raises ValueError for anything else. Names, not numbers, are recorded:
    numbers differ between architectures."""
    import signal  # only when a signal is named (stop_signal, kill -s): runtime/__init__.py

    text = str(value).strip().upper()
    if text.isdigit():
        number = int(text)
        if not 0 < number < signal.NSIG:
            raise ValueError(f"signal {value!r}: out of range 1-{signal.NSIG - 1}")
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return "SIGRTMIN" if number == signal.SIGRTMIN else f"SIGRTMIN+{number - signal.SIGRTMIN}"
        try:
            return signal.Signals(number).name
        except ValueError:
            raise ValueError(f"signal {value!r}: no such signal on this system") from None
    if not text.startswith("SIG"):
        text = "SIG" + text
    signal_number(text)
    return text


def signal_number(name: str) -> int:
    """The number of a canonical signal name (``parse_signal``); ValueError when unknown."""
    import signal

    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name == base or name.startswith(base + "+") or name.startswith(base + "-"):
            offset = name[len(base):]
            if offset and not offset[1:].isdigit():
                break
            number = getattr(signal, base) + (int(offset) if offset else 0)
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
            break
    else:
        if name.startswith("SIG") and name[3:].isalnum() and not name.startswith("SIG_"):
            value = getattr(signal, name, None)
            if isinstance(value, int):
                return int(value)
    raise ValueError(f"signal {name!r}: unknown. Use a name like SIGTERM, SIGUSR1, SIGRTMIN+3 or a number.")


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json_dumps(data, indent=1, sort_keys=True).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_json(path: str) -> dict | None:
    """The JSON object in ``path`` (None when there is no such file). ``records.json_loads``, not json: a
    ``dockerless exec`` reads the container's records, and ``import json`` brings ``re`` (runtime/__init__.py)."""
    try:
        with open(path, "rb") as handle:
            data = json_loads(handle.read(16 << 20))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeSetupError(f"reading {path}: {exc}. Remove the container (state: absent) and create it again.")
    return data if isinstance(data, dict) else None


def supervisor_alive(container_dir: str) -> bool:
    """True while a supervisor holds the container's lock."""
    try:
        fd = os.open(os.path.join(container_dir, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)
    return False


def take_lock(container_dir: str) -> int | None:
    """The supervisor's lock: an fd holding LOCK_EX, or None when another supervisor has it."""
    fd = os.open(os.path.join(container_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class CappedLog:
    """Append-only log file that rotates once (``.1``) when it reaches ``max_size``: at most 2 x max_size."""

    def __init__(self, path: str, max_size: int = DEFAULT_LOG_MAX):
        self.path = path
        self.max_size = max(4096, int(max_size))
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_size - self.size
            if room <= 0:
                self.rotate()
                continue
            chunk = data[:room]
            os.write(self.fd, chunk)
            self.size += len(chunk)
            data = data[len(chunk):]

    def rotate(self) -> None:
        os.close(self.fd)
        os.replace(self.path, self.path + ".1")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self.size = 0

    def close(self) -> None:
        os.close(self.fd)


def read_log(container_dir: str, stream: str, max_bytes: int = 1 << 20) -> bytes:
    """The last ``max_bytes`` of a container's ``stdout``/``stderr`` log (the rotated part first)."""
    data = b""
    for suffix in (".1", ""):
        path = os.path.join(container_dir, f"{stream}.log{suffix}")
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - max_bytes))
                data += handle.read(max_bytes)
        except FileNotFoundError:
            continue
    return data[-max_bytes:]


def limits_of(limits: dict | None):
    """cgroups.Limits for container_run's limit options (memory, memory_swap, cpus, cpu_weight, pids_limit)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import Limits, parse_size

    lim = limits or {}

    def size(key):
        value = lim.get(key)
        return None if value is None else parse_size(value)

    return Limits(memory=size("memory"), memory_swap=size("memory_swap"), cpus=lim.get("cpus"),
                  cpu_weight=lim.get("cpu_weight"), pids=lim.get("pids_limit"))


class ContainerCgroup:
    """The container's cgroup ``dockerless/<name>`` through the cgroups library. Without limits, failing to
    create it (a user without a delegated cgroup) is not an error: the container runs in the caller's.

    ``devices`` (every container but a privileged one): the cgroup also gets the device controller of
    cgroup_devices.py (v1 ``devices`` hierarchy, or a BPF device program on cgroup v2). As root, failing to
    install it fails the start; rootless, there is none (the kernel refuses it, as it refuses runc)."""

    def __init__(self, name: str, limits: dict | None, cgroup_root: str = "/sys/fs/cgroup", devices: bool = True):
        self.name = name
        self.limits = dict(limits or {})
        self.cgroup_root = cgroup_root
        self.devices = devices
        self.device_controller: str | None = None   # "v1", "v2", or None (privileged, rootless)
        self.cgroup = None
        self.path: str | None = None
        self._procs: list[str] = []
        self._made: list[str] = []                  # directories made only for the device controller
        # v1 ``tasks`` files the container's monitor writes "0" to itself (init config ``join_tasks``): cheaper
        # than join() (no RCU grace period in the kernel), possible on v1 only.
        self.join_tasks: list[str] = []

    def create(self, full: bool = True) -> None:
        """Create the cgroup (``full``: in every hierarchy, with the limits) and install the device controller.
        Without ``full`` only the device controller's directory is made: a one-shot without limits has its PID
        namespace to hold its processes, and one directory keeps its start short."""
        if full:
            self._create_full()
        if self.devices:
            self._guard_devices()

    def _guard_devices(self) -> None:
        from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import devices as cgroup_devices

        if cgroup_devices.rootless():
            return
        where = cgroup_devices.locate(self.cgroup_root)
        if where is None:
            raise RuntimeSetupError(f"container {self.name}: no cgroup v1 devices controller and no cgroup2 "
                                    f"hierarchy under {self.cgroup_root} to install the device controller in. "
                                    "Mount one (the kernel needs CONFIG_CGROUP_DEVICE or CONFIG_CGROUP_BPF).")
        version, mount = where
        directory = os.path.join(mount, "dockerless", self.name)
        try:
            for path in (os.path.dirname(directory), directory):
                try:
                    os.mkdir(path, 0o755)
                except FileExistsError:
                    continue
                if path == directory:
                    self._made.append(path)
            if version == 1:
                cgroup_devices.install_v1(directory)
            else:
                cgroup_devices.install_v2(directory)
        except OSError as exc:
            self.remove_device_dirs()
            raise RuntimeSetupError(
                f"container {self.name}: installing the device controller (cgroup v{version}) in {directory}: "
                f"{exc.strerror}. Check that the cgroup hierarchy is writable here (a runtime inside a container "
                "needs its cgroup delegated) and that the kernel allows cgroup BPF device programs.") from None
        if version == 1:
            self.join_tasks.append(os.path.join(directory, "tasks"))     # the monitor joins it (spawn)
        elif os.path.join(directory, "cgroup.procs") not in self._procs:
            self._procs.append(os.path.join(directory, "cgroup.procs"))
        self.device_controller = f"v{version}"

    def remove_device_dirs(self) -> None:
        """Remove the directories made only for the device controller (its processes leave the cgroup at exit,
        asynchronously: EBUSY is retried for a moment)."""
        deadline = time.monotonic() + 2.0
        while self._made:
            try:
                os.rmdir(self._made[-1])
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                return
            self._made.pop()

    def _create_full(self) -> None:
        from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
        from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import (
            container_cgroup_path,
        )

        path = container_cgroup_path(self.name)
        try:
            cgroup = Cgroup(path, self.cgroup_root)
            cgroup.apply(limits_of(self.limits))
            self._procs = [os.path.join(d, "cgroup.procs") for d in cgroup.dirs() if os.path.isdir(d)]
        except (CgroupError, OSError, ValueError) as exc:
            if self.limits:
                raise RuntimeSetupError(f"container {self.name}: applying the limits: {exc}") from None
            return
        self.cgroup, self.path = cgroup, path

    def join(self, pid: int) -> None:
        """Move ``pid`` in (before it unshares its cgroup namespace). The directories were resolved by the
        library when the cgroup was created; writing cgroup.procs here keeps the start path short."""
        for path in self._procs:
            try:
                with open(path, "w") as handle:
                    handle.write(str(pid))
            except OSError as exc:
                raise RuntimeSetupError(f"container {self.name}: moving process {pid} into {path}: "
                                        f"{exc.strerror}. Check the cgroup hierarchy.") from None

    def oom_kills(self) -> int:
        if self.cgroup is None:
            return 0
        try:
            return self.cgroup.stats().get("oom_kills") or 0
        except (CgroupError, OSError):
            return 0

    def stats(self) -> dict:
        if self.cgroup is None:
            return {}
        try:
            return self.cgroup.stats()
        except (CgroupError, OSError):
            return {}

    def remove(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.remove(force=True)
            except (CgroupError, OSError):
                pass
        self.remove_device_dirs()


def remove_device_cgroup(name: str, cgroup_root: str = "/sys/fs/cgroup") -> None:
    """Remove container ``name``'s device-controller directory if one is left (a supervisor that died): on a
    v1 host it is outside the hierarchies the cgroups library manages."""
    from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import devices as cgroup_devices

    where = cgroup_devices.locate(cgroup_root)
    if where is not None:
        cgroup = ContainerCgroup(name, None, cgroup_root)
        cgroup._made.append(os.path.join(where[1], "dockerless", name))
        cgroup.remove_device_dirs()
