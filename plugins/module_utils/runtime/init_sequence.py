# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container process creation: the fork protocol (parent side) and the init sequence (child side).

How a container starts (``spawn``), and why:

* The caller (the module process, the supervisor of a detached container, or any Python using the engine)
  forks a **monitor** process. No new interpreter is started on this path: a fork of an already-loaded
  process costs about a millisecond, where ``python3 -I -S`` alone costs 9-15 ms here (docs/container_run.md
  has the measurements). Never threads: the container process is always a forked, single-threaded process.
* The caller puts the monitor into the container's cgroup (``before_unshare``), then lets it go. The monitor
  unshares the namespaces (mount, uts, ipc, net, cgroup, pid; cgroup after joining the cgroup so the
  container sees its own cgroup as ``/``) and forks the **init**, which is PID 1 of the new PID namespace.
  Unsharing in a child keeps the caller's own namespaces untouched (``unshare(CLONE_NEWPID)`` would change
  the caller's children for good).
* The init follows runc's order (libcontainer ``rootfs_linux.go`` and ``standard_init_linux.go``): mount
  propagation private, the rootfs (overlayfs over the layer folders, or a copy), /proc, /dev, /sys,
  /sys/fs/cgroup, volumes, ``pivot_root(".", ".")`` and a lazy unmount of the old root, masked and
  read-only paths, hostname, loopback up, rlimits, no_new_privs, bounding set, user and groups,
  capabilities, the seccomp filter (``apply_seccomp``; compiled by ``spawn`` in the caller), close every fd but
  0-2, exec.
* The init reports to the caller on a close-on-exec pipe: newline-separated JSON messages (rootfs mode,
  errors). End of file without an error means ``execve`` succeeded.
* The monitor stays outside the PID namespace, waits for the init and exits with the same status. It is the
  caller's handle on the container: every signal sent to the monitor is forwarded to the init (tini's set:
  all but SIGCHLD and the synchronous fault signals), except ``KILL_REQUEST`` (SIGRTMAX), which becomes a
  SIGKILL of the init and ends the whole PID namespace. The caller only ever signals its own child, so no
  PID can be reused under it. The init dies with the monitor (PDEATHSIG), the monitor with the caller.

Everything the init needs must be imported before ``pivot_root``: once the old root is gone, nothing can be
loaded from the host's library path, so this file imports its few stdlib modules at the top and never lazily.

The config (a JSON-able dict, built by runtime_spec) has these keys: ``id``, ``argv``, ``env`` (list of
``K=V``), ``workdir``, ``user``, ``hostname``, ``namespaces`` (list of linux.NAMESPACE_FLAGS keys),
``isolation`` (``container``/``chroot``), ``rootfs`` (``lower`` top→bottom, ``upper``, ``work``,
``mountpoint``, ``copy``, ``mode`` auto/overlay/copy, ``read_only``), ``volumes`` (source, target,
read_only, the source's pinned ``dev``/``ino``: runtime_spec.parse_volume), ``tmpfs`` (target, options),
``capabilities`` (names), ``privileged``, ``no_new_privileges``,
``masked_paths``, ``readonly_paths``, ``rlimits`` (name, soft, hard), ``stdin_null`` (default true: fd 0
becomes the container's /dev/null), ``terminal`` (fds 0-2 are a pty slave to take as controlling terminal),
``seccomp`` (``default``, a profile path,
or None/``unconfined``: see seccomp.py), ``oom_score_adj`` (the container's, default 0: a supervisor lowers its
own and the init must not keep it).
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import select
import stat

try:
    # The C module behind ``signal``: the same functions and numbers, plain ints instead of enums. ``signal``
    # itself imports enum (and enum functools and collections), a tenth of a container start.
    import _signal as signal
except ImportError:  # pragma: no cover - every CPython has it
    import signal
import time

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import whiteouts
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_dumps, json_loads
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# Docker's masked and read-only paths (moby oci/defaults.go).
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# The only /proc files a volume may cover (lxcfs's), as runc's checkProcMount allows (libcontainer
# rootfs_linux.go): anything else under /proc would hide the procfs the runtime and its masks rely on
# (CVE-2019-19921, CVE-2023-27561).
PROC_BIND_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                     "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid")
# What a volume pins at create time (runtime_spec.parse_volume) and the init checks at every start.
# host_path: the path as given, to notice a relinked one; boot: the kernel's boot_id then (device numbers of
# btrfs subvolumes, LVM or NFS can change with a reboot, inode numbers don't).
VOLUME_PIN_KEYS = ("dev", "ino", "boot", "host_path")
BOOT_ID = "/proc/sys/kernel/random/boot_id"
_MOUNT_ATTRS = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC  # == MOUNT_ATTR_* bits
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The /dev a container gets: (name, major, minor), all 0666 root:root (runc libcontainer/specconv AllowedDevices).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

MAX_ID = (1 << 31) - 1          # runc user.maxId: ids above are refused (and -1 would mean "unchanged")
_PASSWD_LIMIT = 4 << 20          # /etc/passwd and /etc/group are read up to this size
_MAX_SYMLINKS = 255
EXIT_SETUP_FAILED = 125
# What the caller sends the monitor to have the init SIGKILLed (the only signal it does not forward as is).
KILL_REQUEST = signal.SIGRTMAX
# Not forwarded by the monitor: SIGCHLD is its own business; the fault signals are raised by the kernel for the
# monitor's own faults (tini forwards the same set).
_NOT_FORWARDED = frozenset((signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGFPE, signal.SIGILL,
                            signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS,
                            signal.SIGTTIN, signal.SIGTTOU))
PROC_SUPER_MAGIC = 0x9FA0
OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000


def capability_mask(names) -> int:
    """Mask of capability ``names`` (``CAP_`` prefix optional, any case); ValueError on an unknown name."""
    mask = 0
    for name in names:
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        if key not in linux.CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}")
        mask |= 1 << linux.CAPABILITIES[key]
    return mask


# -- pure helpers (unit-tested without the kernel) ---------------------------------------------------------------

def secure_join(root: str, unsafe_path: str) -> str:
    """``root`` joined with ``unsafe_path`` as if ``root`` were ``/``: ``..`` and symlinks (absolute or
    relative) are resolved inside ``root`` and can never leave it (the filepath-securejoin algorithm).
    Components that don't exist yet are kept as they are. Raises RuntimeSetupError on a symlink loop."""
    root = os.path.abspath(root)
    resolved = ""
    parts = [p for p in unsafe_path.split("/") if p]
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = os.path.dirname(resolved) if resolved else ""
            if resolved == "/":
                resolved = ""
            continue
        candidate = resolved + "/" + part
        try:
            st = os.lstat(root + candidate)
        except OSError:
            resolved = candidate
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise RuntimeSetupError(f"resolving {unsafe_path} in {root}: too many symlinks. Fix the image.")
            target = os.readlink(root + candidate)
            if target.startswith("/"):
                resolved = ""
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved = candidate
    return root + resolved if resolved else root


def _parse_colon_file(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        row = line.split(":")
        if len(row) < fields:
            row += [""] * (fields - len(row))
        rows.append(row)
    return rows


def _parse_id(text: str, what: str, spec: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise RuntimeSetupError(f"user {spec!r}: {what} {text!r} is not a number. Fix USER or the 'user' option.")
    if value < 0 or value > MAX_ID:
        raise RuntimeSetupError(
            f"user {spec!r}: {what} {value} is out of range (0-{MAX_ID}); refusing to start rather than run "
            "with an unintended identity. Fix USER or the 'user' option.")
    return value


def resolve_user(spec: str, passwd_text: str, group_text: str) -> dict:
    """Resolve ``user[:group]`` (names or numbers) against the image's passwd and group files, the way runc's
    ``user.GetExecUser`` does: a name must exist; a number may be absent (gid 0, home ``/``); supplementary
    groups are the primary gid plus the groups listing the user by name, unless a group was given.
    Returns ``{"uid", "gid", "groups", "home", "name"}``. Out-of-range ids are refused, never mapped to root."""
    spec = spec or ""
    user_part, sep, group_part = spec.partition(":")
    if sep and not group_part:
        raise RuntimeSetupError(f"user {spec!r}: empty group. Use 'user' or 'user:group'.")
    passwd = _parse_colon_file(passwd_text, 7)
    groups = _parse_colon_file(group_text, 4)

    entry = None
    if user_part == "":
        user_part = "0"
    if user_part.isdigit():
        uid = _parse_id(user_part, "uid", spec)
        entry = next((row for row in passwd if row[2].isdigit() and int(row[2]) == uid), None)
    else:
        entry = next((row for row in passwd if row[0] == user_part), None)
        if entry is None:
            raise RuntimeSetupError(f"user {spec!r}: no user named {user_part!r} in the image's /etc/passwd. "
                                    "Use a numeric uid or add the user to the image.")
        uid = _parse_id(entry[2], "uid", spec)
    gid = _parse_id(entry[3], "gid", spec) if entry is not None and entry[3] else 0
    name = entry[0] if entry is not None else ""
    home = (entry[5] if entry is not None else "") or "/"

    if group_part:
        if group_part.isdigit():
            gid = _parse_id(group_part, "gid", spec)
        else:
            row = next((r for r in groups if r[0] == group_part), None)
            if row is None:
                raise RuntimeSetupError(f"user {spec!r}: no group named {group_part!r} in the image's /etc/group. "
                                        "Use a numeric gid or add the group to the image.")
            gid = _parse_id(row[2], "gid", spec)
        supplementary = [gid]
    else:
        supplementary = [gid]
        if name:
            for row in groups:
                if name in row[3].split(",") and row[2]:
                    extra = _parse_id(row[2], "gid", spec)
                    if extra not in supplementary:
                        supplementary.append(extra)
    return {"uid": uid, "gid": gid, "groups": supplementary, "home": home, "name": name}


def merge_layers(lowers_top_to_bottom: list[str], dest: str) -> None:
    """Flatten the layer folders into ``dest`` (the copy fallback when overlayfs can't be used): the same merge
    as pull's dest (whiteouts.py), both forms of whiteouts, fd-relative, never following a layer's link.
    ``dest`` must not exist or be empty."""
    whiteouts.merge(list(reversed(lowers_top_to_bottom)), dest)


# -- the parent side ----------------------------------------------------------------------------------------------

class InitProcess:
    """Handle on a started container: the monitor process (our child) and what the init reported."""

    def __init__(self, monitor_pid: int, status_fd: int):
        self.monitor_pid = monitor_pid
        self.status_fd = status_fd
        self.pid: int | None = None          # the init's PID on the host
        self.rootfs_mode: str | None = None
        self.error: str | None = None
        self._buffer = b""
        self.exit_status: int | None = None

    def read_status(self, timeout: float | None = None) -> bool:
        """Read the init's reports until end of file (exec done or setup failed). Returns False when
        ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status_fd is not None:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = select.select([self.status_fd], [], [], wait)[0]
            if not ready:
                return False
            chunk = os.read(self.status_fd, 65536)
            if not chunk:
                os.close(self.status_fd)
                self.status_fd = None
                break
            self._buffer += chunk
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                self._message(json_loads(line))
        return True

    def _message(self, msg: dict) -> None:
        if "pid" in msg:
            self.pid = msg["pid"]
        if "rootfs" in msg:
            self.rootfs_mode = msg["rootfs"]
        if "error" in msg and self.error is None:
            self.error = msg["error"]

    def terminate(self) -> None:
        """Ask the container to stop: SIGTERM to its PID 1 (through the monitor)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the container: SIGKILL to its PID 1, which ends every process of its PID namespace."""
        self._signal(KILL_REQUEST)

    def send(self, sig: int) -> None:
        """Send ``sig`` to the container's PID 1 (through the monitor); SIGKILL kills it."""
        self._signal(KILL_REQUEST if sig == signal.SIGKILL else sig)

    def _signal(self, sig: int) -> None:
        if self.exit_status is None:
            try:
                os.kill(self.monitor_pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, block: bool = True) -> int | None:
        """Reap the monitor; returns the container's exit code (128 + signal when killed), None if running."""
        if self.exit_status is None:
            pid, status = os.waitpid(self.monitor_pid, 0 if block else os.WNOHANG)
            if pid == 0:
                return None
            self.exit_status = status
        if os.WIFSIGNALED(self.exit_status):
            return 128 + os.WTERMSIG(self.exit_status)
        return os.WEXITSTATUS(self.exit_status)

    def close(self) -> None:
        if self.status_fd is not None:
            os.close(self.status_fd)
            self.status_fd = None


def namespace_flags(config: dict) -> int:
    flags = 0
    for name in config.get("namespaces") or ():
        flags |= linux.NAMESPACE_FLAGS[name]
    return flags


def spawn(config: dict, stdin: int, stdout: int, stderr: int, before_unshare=None,
          hold_fds: tuple = ()) -> InitProcess:
    """Start the container described by ``config`` with the given stdio fds (they are dup'ed, not closed).
    ``before_unshare(monitor_pid)`` runs in the caller after the fork, before any namespace exists (the
    cgroup is joined there). ``hold_fds`` stay open in the monitor until it exits (after the container's
    namespaces are gone): a one-shot's slot lock (runtime.OneShotDir); the init closes them first thing.
    Returns once the monitor runs; call ``read_status`` to learn how setup went."""
    flags = namespace_flags(config)
    # A container on a terminal needs TIOCSCTTY: looked up here, before the fork (the init must not import after
    # pivot_root), and only then (termios is a shared library to load: 0.3 ms of every other start).
    tiocsctty = None
    if config.get("terminal"):
        import termios

        tiocsctty = termios.TIOCSCTTY
    # The seccomp filter is compiled here, before anything exists, so the init only loads it (seccomp.py).
    seccomp_filter = seccomp.prepare(config.get("seccomp"), config.get("capabilities", DEFAULT_CAPABILITIES),
                                     privileged=bool(config.get("privileged")))
    sync_r, sync_w = os.pipe()
    status_r, status_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, observed through its effects
        try:
            os.close(sync_w)
            os.close(status_r)
            _monitor(config, flags, parent, (stdin, stdout, stderr), sync_r, status_w, seccomp_filter, hold_fds,
                     tiocsctty)
        finally:
            os._exit(EXIT_SETUP_FAILED)
    os.close(sync_r)
    os.close(status_w)
    proc = InitProcess(pid, status_r)
    try:
        if before_unshare is not None:
            before_unshare(pid)
        os.write(sync_w, b"g")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        proc.wait()
        proc.close()
        raise
    finally:
        os.close(sync_w)
    return proc


def open_proc_self(name: str, flags: int = os.O_RDONLY) -> int:
    """An fd on ``/proc/self/<name>``, refused unless fstatfs(2) says procfs: whatever is mounted over /proc
    (a hostile image's bind mount, a FUSE file system) must not feed us. Writes go through linux.write_proc."""
    fd = os.open(f"/proc/self/{name}", flags | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if linux.fstatfs_type(fd) != PROC_SUPER_MAGIC:
            raise OSError(errno.EXDEV, f"/proc/self/{name} is not on procfs")
    except BaseException:
        os.close(fd)
        raise
    return fd


def set_oom_score_adj(value: int) -> None:
    """Write ``value`` to our own oom_score_adj (OSError as the kernel gives it: EACCES when lowering it below
    the floor this process inherited needs CAP_SYS_RESOURCE)."""
    linux.write_proc("/proc/self/oom_score_adj", str(int(value)))


def oom_score_adj() -> int:
    fd = open_proc_self("oom_score_adj", os.O_RDONLY)
    try:
        return int(os.read(fd, 32).decode().strip())
    finally:
        os.close(fd)


def _reset_oom_score_adj(wanted: int) -> None:
    """The container must not keep its supervisor's lowered score (conmon resets it the same way before exec):
    the kernel would pick the supervisor, or nothing, before a runaway container. Raising it always works; a
    lower value than the inherited floor needs CAP_SYS_RESOURCE. Failing is an error, except for the default 0
    when the container is left easier to kill than that (a caller that runs at a raised score itself)."""
    try:
        set_oom_score_adj(wanted)
    except OSError as exc:
        try:
            current = oom_score_adj()
        except OSError:
            current = None
        if current is None or current < wanted or (wanted != 0 and current != wanted):
            raise RuntimeSetupError(f"setting oom_score_adj {wanted}: {exc.strerror or exc}. A value below the "
                                    "caller's needs CAP_SYS_RESOURCE; set a higher oom_score_adj.") from None


def _report(fd: int, **msg) -> None:
    try:
        os.write(fd, json_dumps(msg).encode() + b"\n")
    except OSError:
        pass


def _keep_only_fds(keep: set[int]) -> None:
    """Close every fd not in ``keep`` (listing /proc/self/fd: exact, whatever RLIMIT_NOFILE says)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _reset_signals() -> None:
    """Default dispositions and an empty mask: exec keeps ignored signals (Python ignores SIGPIPE)."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _map_ids(uid: int, gid: int) -> None:
    """Map the caller's uid and gid to root in the new user namespace: one line each, which a process may write
    for itself without newuidmap (user_namespaces(7)); setgroups must be denied first for the gid map. Written
    only through fds proven to be procfs (linux.write_proc, CVE-2025-52881)."""
    linux.write_proc("/proc/self/setgroups", "deny")
    linux.write_proc("/proc/self/uid_map", f"0 {uid} 1")
    linux.write_proc("/proc/self/gid_map", f"0 {gid} 1")


def _monitor(config: dict, flags: int, parent: int, stdio: tuple, sync_r: int, status_w: int,
             seccomp_filter=None, hold_fds: tuple = (), tiocsctty: int | None = None) -> None:
    """The monitor: namespaces, fork the init, forward signals to it, exit with its status."""
    try:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(EXIT_SETUP_FAILED)
        _reset_signals()
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
        _keep_only_fds({0, 1, 2, sync_r, status_w, *hold_fds})
        if os.read(sync_r, 1) != b"g":
            os._exit(EXIT_SETUP_FAILED)
        os.close(sync_r)
        # cgroup v1 directories the monitor joins itself ("0" to ``tasks``, before the cgroup namespace): a thread
        # that moves itself skips the kernel's global threadgroup lock, whose RCU grace period (5-27 ms here) a
        # pid written by the caller waits for. The monitor is a fork, single-threaded: its thread is the process.
        for path in config.get("join_tasks") or ():
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        uid, gid = os.geteuid(), os.getegid()
        if flags:
            linux.unshare(flags)
        if flags & linux.CLONE_NEWUSER:
            _map_ids(uid, gid)
        child = os.fork()
    except BaseException as exc:
        _report(status_w, error=f"creating the namespaces: {exc}")
        os._exit(EXIT_SETUP_FAILED)
    if child == 0:
        try:
            for fd in hold_fds:
                os.close(fd)
            _init(config, status_w, seccomp_filter, tiocsctty)
        except BaseException as exc:
            _report(status_w, error=str(exc) or type(exc).__name__)
        os._exit(EXIT_SETUP_FAILED)
    _report(status_w, pid=child)  # fork() in the monitor returns the host PID: the monitor is outside the ns
    os.close(status_w)
    # Our stdio copies would hold the container's pipes open after it exits.
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)

    def forward(signum, _frame):
        try:
            os.kill(child, signal.SIGKILL if signum == KILL_REQUEST else signum)
        except ProcessLookupError:
            pass

    # Any signal a stop (the image's StopSignal) or `dockerless kill -s` may ask for reaches the init.
    for sig in range(1, signal.NSIG):
        if sig not in _NOT_FORWARDED:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):
                pass
    # WNOWAIT keeps the init a zombie, so its PID can't be reused while a forwarded signal may still come.
    while True:
        try:
            os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)
            break
        except ChildProcessError:
            break
    signal.pthread_sigmask(signal.SIG_BLOCK, range(1, signal.NSIG))
    status = os.waitpid(child, 0)[1]
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


# -- the child side: the init sequence ---------------------------------------------------------------------------

class _Step:
    """Names the step in any error raised inside it: ``mounting /proc: mount(...): Permission denied``."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        if exc is None or isinstance(exc, RuntimeSetupError):
            return False
        raise RuntimeSetupError(f"{self.what}: {exc}") from None


def _mount(source, target, fstype, flags, data, what: str) -> None:
    with _Step(what):
        linux.mount(source, target, fstype, flags, data)


def _mkdir_p(path: str, mode: int = 0o755) -> None:
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except FileExistsError:
        pass


def _real_dir(root: str, name: str, image: str) -> str:
    """``root/name`` for /proc, /sys, /dev: created when missing, refused when a symlink or not a directory."""
    path = os.path.join(root, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return path
    if stat.S_ISLNK(st.st_mode):
        raise RuntimeSetupError(
            f"container {image}: /{name} in the image is a symlink (to {os.readlink(path)!r}); refusing to mount "
            f"over it, a link could send the mount outside the container. Rebuild the image with a real /{name}.")
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeSetupError(f"container {image}: /{name} in the image is not a directory. Rebuild the image.")
    return path


def _mount_rootfs(rootfs: dict, cid: str, nodev: int) -> str:
    target = rootfs["mountpoint"]
    _mkdir_p(target, 0o700)
    mode = rootfs.get("mode") or "auto"
    # overlayfs reads only overlay-form whiteouts: a plain-form folder (or an opaque layer root) would bring
    # deleted files back, so "auto" copies instead and "overlay" says why it can't.
    unfit = whiteouts.overlay_unfit(rootfs["lower"]) if mode in ("auto", "overlay") else None
    if unfit is not None and mode == "overlay":
        raise RuntimeSetupError(f"container {cid}: mounting the overlay rootfs: {unfit}; overlayfs would show "
                                "deleted files. Use rootfs mode 'copy' or 'auto', or pull the image again as root.")
    if unfit is None and mode in ("auto", "overlay"):
        try:
            _mount_overlay(rootfs["lower"], rootfs["upper"], rootfs["work"], target, nodev,
                           volatile=bool(rootfs.get("volatile")))
            return "overlay"
        except OSError as exc:
            if mode == "overlay":
                raise RuntimeSetupError(f"container {cid}: mounting the overlay rootfs: {exc}. Use rootfs mode "
                                        "'copy' or put the store on a filesystem overlayfs supports.") from None
    copy = rootfs["copy"]
    done = copy + ".done"
    if not os.path.exists(done):
        with _Step(f"container {cid}: copying the image layers into {copy}"):
            whiteouts.remove_tree(copy)
            merge_layers(rootfs["lower"], copy)
            with open(done, "w"):
                pass
    # pivot_root needs a mount point: bind the copy onto the mount target. Not recursive: nothing mounted under
    # the copy on the host comes along, so the rootfs is one mount and `read_only` covers all of it.
    _mount(copy, target, None, linux.MS_BIND, None, f"container {cid}: binding the rootfs copy")
    if nodev:
        _mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | nodev | linux.mount_flags_of(target), None,
               f"container {cid}: remounting the rootfs copy nodev")
    return "copy"


def _mount_overlay(lower: list[str], upper: str, work: str, target: str, flags: int = 0,
                   volatile: bool = False) -> None:
    """overlayfs with lowerdir top→bottom. Lower dirs sharing one parent (the store's layers/sha256) are
    given relative to it: the whole option string must fit in one page (4096 bytes).

    ``volatile`` (a one-shot's writable layer, thrown away after the run): overlayfs skips every sync of the
    upper filesystem, above all the syncfs(2) of the whole filesystem when the mount goes away with the
    container's mount namespace (a writeback of every dirty inode of the store's filesystem and a disk cache
    flush, 2-7 ms of each one-shot here). The kernel marks the work dir with ``work/incompat/volatile``
    and refuses a later mount until it is removed (runtime.OneShotDir does). Kernels before 5.10 don't know the
    option: mounted without it."""
    for path in [upper, work] + list(lower):
        if any(c in path for c in ",:\\"):
            raise OSError(errno.EINVAL, f"overlay path {path!r} contains ',', ':' or '\\'")
    _mkdir_p(upper, 0o755)
    _mkdir_p(work, 0o700)
    parents = {os.path.dirname(p) for p in lower}
    if len(parents) == 1 and len(lower) > 1:
        os.chdir(parents.pop())
        lowers = [os.path.basename(p) for p in lower]
    else:
        lowers = list(lower)
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(data) >= 4000:
        raise RuntimeSetupError(f"{len(lower)} layers don't fit in overlayfs' mount options ({len(data)} bytes). "
                                "Squash the image into fewer layers.")
    if volatile:
        try:
            linux.mount("overlay", target, "overlay", flags, data + ",volatile")
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    linux.mount("overlay", target, "overlay", flags, data)


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of the host's cgroup hierarchies under /sys/fs/cgroup."""
    result = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for raw in handle.read().decode("utf-8", "replace").splitlines():
            left, right = (raw.split(" - ", 1) + [""])[:2]
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            point, fstype = fields[4], rfields[0]
            if point.startswith("/sys/fs/cgroup") and fstype in ("cgroup", "cgroup2", "tmpfs"):
                opts = ",".join(o for o in rfields[2].split(",") if o not in ("rw", "ro"))
                result.append((point, fstype, opts))
    return result


def _mount_cgroups(root: str, flags: int) -> None:
    target = os.path.join(root, "sys/fs/cgroup")
    if not os.path.isdir(target):
        return
    mounts = _cgroup_mounts()
    kinds = {m[0]: m[1] for m in mounts}
    if kinds.get("/sys/fs/cgroup") == "cgroup2":
        _mount("cgroup2", target, "cgroup2", flags, None, "mounting /sys/fs/cgroup (cgroup2)")
        return
    # v1 or hybrid: a tmpfs holding one mount per hierarchy, then the tmpfs made read-only.
    _mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, "mode=755",
           "mounting the /sys/fs/cgroup tmpfs")
    for point, fstype, opts in mounts:
        if point == "/sys/fs/cgroup" or os.path.dirname(point) != "/sys/fs/cgroup":
            continue
        dest = os.path.join(target, os.path.basename(point))
        os.mkdir(dest, 0o755)
        try:
            linux.mount("cgroup", dest, fstype, flags, opts if fstype == "cgroup" else None)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EBUSY, errno.EINVAL):
                raise RuntimeSetupError(f"mounting {point}: {exc}") from None
            # Without the right to mount this hierarchy (user namespace): the host's, read-only all the way down.
            _bind_path_tree(point, dest, flags & _MOUNT_ATTRS, f"binding {point}")
    for entry in os.listdir("/sys/fs/cgroup"):
        host = os.path.join("/sys/fs/cgroup", entry)
        if os.path.islink(host) and not os.path.lexists(os.path.join(target, entry)):
            os.symlink(os.readlink(host), os.path.join(target, entry))
    if flags & linux.MS_RDONLY:
        _mount(None, target, None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NOEXEC
               | linux.MS_NODEV, "mode=755", "remounting /sys/fs/cgroup read-only")


def _make_dev(root: str, nodev: int) -> None:
    """/dev as a tmpfs with the standard devices. Without a devices cgroup (Docker has one; v2 needs eBPF), the
    allow-list is made with ``nodev``: the tmpfs is nodev, so a node created inside with CAP_MKNOD can't be
    opened, and the standard devices are bind mounts of the host's nodes, which keep their own mount flags."""
    dev = os.path.join(root, "dev")
    _mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME | nodev, "mode=755,size=65536k",
           "mounting /dev")
    for name, major, minor in DEVICES:
        path = os.path.join(dev, name)
        try:
            if nodev:
                raise PermissionError
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        except PermissionError:
            # On a nodev /dev, or without mknod (user namespace): bind the host's node (runc does the latter).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))
            _mount("/dev/" + name, path, None, linux.MS_BIND, None, f"binding /dev/{name}")
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    try:
        linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=0620,gid=5")
    except OSError:
        # gid 5 may not be mapped in a user namespace.
        _mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620",
               "mounting /dev/pts")
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    _mount("shm", shm, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, "mode=1777,size=65536k",
           "mounting /dev/shm")
    mqueue = os.path.join(dev, "mqueue")
    os.mkdir(mqueue, 0o755)
    try:
        linux.mount("mqueue", mqueue, "mqueue", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, None)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):  # mqueue needs an IPC namespace we own
            raise RuntimeSetupError(f"mounting /dev/mqueue: {exc}") from None
    for name, target in DEV_SYMLINKS:
        os.symlink(target, os.path.join(dev, name))


def _bind_tree(src_fd: int, tgt_fd: int, attrs: int, what: str) -> None:
    """Bind the mount tree at ``src_fd`` (with its submounts) onto ``tgt_fd``, every mount of it with ``attrs``
    (MS_RDONLY/NOSUID/NODEV/NOEXEC, equal to the MOUNT_ATTR_* bits). Both ends are fds: no path is looked up
    again between the checks and the mount.

    Linux 5.12+: a detached copy (open_tree), ``mount_setattr(AT_RECURSIVE)`` on it, then attached: the tree is
    never visible without its flags. Before: ``mount(MS_BIND|MS_REC)`` through /proc/self/fd, then each submount
    remounted from /proc/self/mountinfo; a submount that can't be remounted fails the start (Docker 25's
    recursive read-only: never left writable)."""
    try:
        tree = linux.open_tree(src_fd, "", linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC | linux.AT_RECURSIVE
                               | linux.AT_EMPTY_PATH)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise RuntimeSetupError(f"{what}: {exc}") from None
        tree = None
    if tree is not None:
        try:
            if attrs:
                linux.mount_setattr(tree, "", linux.AT_EMPTY_PATH | linux.AT_RECURSIVE, attrs)
            linux.move_mount(tree, tgt_fd)
            return
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise RuntimeSetupError(f"{what}: {exc}") from None
        finally:
            os.close(tree)
    _mount(f"/proc/self/fd/{src_fd}", f"/proc/self/fd/{tgt_fd}", None, linux.MS_BIND | linux.MS_REC, None, what)
    if attrs:
        _remount_tree(os.readlink(f"/proc/self/fd/{tgt_fd}"), attrs, what)


def _bind_path_tree(source: str, target: str, attrs: int, what: str) -> None:
    """``_bind_tree`` for runtime-owned paths (/sys, the host's cgroup hierarchies): neither is a symlink."""
    with _Step(what):
        src = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            tgt = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                _bind_tree(src, tgt, attrs, what)
            finally:
                os.close(tgt)
        finally:
            os.close(src)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _remount_tree(path: str, attrs: int, what: str) -> None:
    """Kernels without mount_setattr: remount ``path`` and every mount below it (from /proc/self/mountinfo,
    shallow first) with ``attrs`` added to the flags each already has. Any failure refuses the start."""
    prefix = path.rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for raw in handle.read().decode("utf-8", "surrogateescape").splitlines():
            fields = raw.split(" ")
            if len(fields) > 4:
                point = _unescape_mountinfo(fields[4])
                if point == path or point.startswith(prefix):
                    points.append(point)
    for point in sorted(set(points), key=lambda p: p.count("/")):
        try:
            linux.mount(None, point, None, linux.MS_BIND | linux.MS_REMOUNT | attrs | linux.mount_flags_of(point),
                        None)
        except OSError as exc:
            raise RuntimeSetupError(
                f"{what}: this kernel has no mount_setattr (Linux 5.12) and the submount {point} can't be remounted "
                f"with flags 0x{attrs:x} ({exc.strerror}); refusing to leave it writable. Use a newer kernel or a "
                "volume without submounts.") from None


def boot_id(path: str = BOOT_ID) -> str | None:
    """The kernel's boot_id (a new one at every boot), None where it can't be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(64).decode("ascii", "replace").strip() or None
    except OSError:
        return None


def _open_volume_source(vol: dict, cid: str) -> tuple[int, bool]:
    """The volume's source as an O_PATH fd, opened following no symlink, and checked against the device and inode
    pinned when the container was created: a source swapped since (by a container writing a shared parent, as
    ``mv config x; ln -s / config``) fails the start instead of mounting whatever is there now."""
    source, target = vol["source"], vol["target"]
    name = f"container {cid}: volume {source}:{target}"
    try:
        fd = linux.open_no_symlinks(source)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RuntimeSetupError(
                f"{name}: the source changed since the container was created: a symlink now stands in its path "
                "(it was resolved to a real path then); refusing to follow it, it could lead anywhere on the host. "
                f"Check {source}, then recreate the container (recreate: true).") from None
        if exc.errno == errno.ENOENT:
            raise RuntimeSetupError(f"{name}: the source no longer exists. Create it again and recreate the "
                                    "container (recreate: true).") from None
        raise RuntimeSetupError(f"{name}: opening the source: {exc}") from None
    st = os.fstat(fd)
    same_boot = vol.get("boot") is None or vol.get("boot") == boot_id()
    if vol.get("ino") is not None and (st.st_ino != vol["ino"] or (same_boot and st.st_dev != vol.get("dev"))):
        os.close(fd)
        raise RuntimeSetupError(
            f"{name}: the source changed since the container was created (device:inode {vol.get('dev')}:"
            f"{vol['ino']} then, {st.st_dev}:{st.st_ino} now): it was replaced, perhaps by a container writing its "
            f"parent. Check {source}, then recreate the container (recreate: true) to mount what is there now.")
    return fd, stat.S_ISDIR(st.st_mode)


def _open_in_root(root: str, root_fd: int, rel: str) -> int:
    """O_PATH fd of ``rel`` resolved inside ``root`` (``RESOLVE_IN_ROOT``: ``..`` and absolute symlinks stay
    under it; no magic links). Before 5.6: secure_join's path walked component by component without following."""
    try:
        return linux.openat2(root_fd, rel, os.O_PATH, linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    resolved = os.path.relpath(secure_join(root, "/" + rel), os.path.abspath(root))
    fd = os.dup(root_fd)
    try:
        for part in [] if resolved == "." else resolved.split("/"):
            nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, f"{rel}: {part!r} became a symlink")
        fd, result = -1, fd
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def _open_target(root: str, root_fd: int, target: str, is_dir: bool, what: str) -> int:
    """O_PATH fd of the mount point ``target`` inside the rootfs, made when missing: every component created and
    reopened by fd under the root (mkdirat, openat O_CREAT|O_EXCL), never through a symlink out of it."""
    try:
        return _open_in_root(root, root_fd, target.lstrip("/"))
    except FileNotFoundError:
        pass
    # Missing parts: along the path secure_join resolves (the image's own symlinks followed, inside the root).
    resolved = os.path.relpath(secure_join(root, target), os.path.abspath(root))
    parts = resolved.split("/")
    parent = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            rel = "/".join(parts[:i + 1])
            try:
                nxt = _open_in_root(root, root_fd, rel)
            except FileNotFoundError:
                try:
                    if i == len(parts) - 1 and not is_dir:
                        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         0o644, dir_fd=parent))
                    else:
                        os.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                nxt = _open_in_root(root, root_fd, rel)
            os.close(parent)
            parent = nxt
        parent, result = -1, parent
        return result
    except OSError as exc:
        raise RuntimeSetupError(f"{what}: creating the mount point: {exc}") from None
    finally:
        if parent >= 0:
            os.close(parent)


def _check_target_fs(root: str, fd: int, what: str) -> None:
    """A mount point on procfs is refused (runc's checkProcMount), except the few files lxcfs covers: the path was
    checked by the spec, this catches an image symlink leading there (CVE-2019-19921, CVE-2023-27561)."""
    if linux.fstatfs_type(fd) != linux.PROC_SUPER_MAGIC:
        return
    where = "/" + os.path.relpath(os.readlink(f"/proc/self/fd/{fd}"), os.path.abspath(root))
    if where not in PROC_BIND_ALLOWED:
        raise RuntimeSetupError(f"{what}: the mount point resolves to {where}, on procfs; a mount over /proc is "
                                "refused (it would hide the procfs the container's masks rely on). Choose another "
                                "container path, or fix the image's symlink.")


def _mount_volume(root: str, vol: dict, cid: str, nodev: int) -> None:
    """Bind a volume: source pinned and opened without symlinks, target resolved under the rootfs, both by fd;
    read-only (``:ro``) and, unless privileged, nosuid and nodev on every submount."""
    what = f"container {cid}: binding volume {vol['source']} on {vol['target']}"
    src_fd, is_dir = _open_volume_source(vol, cid)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tgt_fd = _open_target(root, root_fd, vol["target"], is_dir, what)
        try:
            _check_target_fs(root, tgt_fd, what)
            attrs = (linux.MS_RDONLY if vol.get("read_only") else 0) | (linux.MS_NOSUID | nodev if nodev else 0)
            _bind_tree(src_fd, tgt_fd, attrs, what)
        finally:
            os.close(tgt_fd)
    finally:
        os.close(root_fd)
        os.close(src_fd)


def _mount_tmpfs(root: str, entry: dict, cid: str) -> None:
    what = f"container {cid}: mounting tmpfs on {entry['target']}"
    flags = linux.MS_NOSUID | linux.MS_NODEV
    options = []
    for opt in (entry.get("options") or "").split(","):
        opt = opt.strip()
        if opt in ("", "rw"):
            continue
        if opt == "ro":
            flags |= linux.MS_RDONLY
        elif opt == "noexec":
            flags |= linux.MS_NOEXEC
        elif opt in ("exec", "suid", "dev", "nosuid", "nodev"):
            continue
        else:
            options.append(opt)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_target(root, root_fd, entry["target"], True, what)
    finally:
        os.close(root_fd)
    try:
        _check_target_fs(root, fd, what)
        _mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", flags, ",".join(options) or None, what)
    finally:
        os.close(fd)


def _pivot(root: str) -> None:
    """pivot_root(".", "."): the old root ends up stacked on the new one and is detached right away, so no
    directory for it is needed in the image (runc's trick, see pivot_root(2) NOTES)."""
    with _Step("pivot_root"):
        os.chdir(root)
        linux.pivot_root(".", ".")
        # Make the old root a slave so the unmount below can't propagate anywhere (belt and braces: all private).
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC, None)
        linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")


def _open_dev_null(path: str = "/dev/null") -> int:
    """An O_PATH fd of ``path``, proven by fstat to be the character device 1:3: the source masked files are
    bound from. Anything else there (a volume over /dev/null, a symlink to a procfs file) fails the start rather
    than being bound over /proc/kcore and the like (CVE-2025-31133)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeSetupError(f"masking paths: opening {path}: {exc.strerror}; refusing to start unmasked.") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != (1, 3):
        os.close(fd)
        raise RuntimeSetupError(
            f"masking paths: {path} in the container is not the character device 1:3 (null); refusing to bind it "
            "over the masked paths. Don't mount a volume over /dev/null.")
    return fd


def _mask_paths(paths) -> None:
    """Masked directories get a read-only tmpfs, files the verified /dev/null; both mounted through fds."""
    null = None
    try:
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode):
                    continue
                if not stat.S_ISDIR(mode) and null is None:
                    null = _open_dev_null()
                with _Step(f"masking {path}"):
                    if stat.S_ISDIR(mode):
                        linux.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", linux.MS_RDONLY, None)
                    else:
                        linux.mount(f"/proc/self/fd/{null}", f"/proc/self/fd/{fd}", None, linux.MS_BIND, None)
            finally:
                os.close(fd)
    finally:
        if null is not None:
            os.close(null)


def _readonly_paths(paths) -> None:
    """Each path bound onto itself read-only, with every submount, through an fd opened without following a
    final symlink (the same _bind_tree as volumes: the clone keeps procfs' nosuid/nodev/noexec)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                continue
            _bind_tree(fd, fd, linux.MS_RDONLY, f"making {path} read-only")
        finally:
            os.close(fd)


def _read_small(path: str) -> str:
    """Read an image file (passwd, group) after pivot_root: regular files only, size-capped, never blocking on
    a FIFO or device the image may have planted there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeSetupError(f"{path} in the image is not a regular file; can't resolve the user. "
                                    "Fix the image or use numeric ids.")
        data = os.read(fd, _PASSWD_LIMIT + 1)
        if len(data) > _PASSWD_LIMIT:
            raise RuntimeSetupError(f"{path} in the image is larger than {_PASSWD_LIMIT} bytes. Fix the image.")
        return data.decode("utf-8", "replace")
    finally:
        os.close(fd)


def _rlimits(limits) -> None:
    for item in limits or ():
        name = item["name"].upper()
        if not name.startswith("RLIMIT_"):
            name = "RLIMIT_" + name
        with _Step(f"setting {name} to {item['soft']}:{item['hard']}"):
            resource.setrlimit(getattr(resource, name), (item["soft"], item["hard"]))


def apply_seccomp(compiled) -> None:
    """The seccomp hook: load the filter ``spawn`` compiled (``seccomp.Filter``; None: nothing to load). Called
    after no_new_privs, the user switch and capset, right before the fds are closed and the command is exec'd
    (runc loads the filter as late as possible when no_new_privs is set). With no_new_privs off, ``_init`` calls
    it before capabilities are dropped instead: loading a filter needs no_new_privs or CAP_SYS_ADMIN."""
    seccomp.apply(compiled)


def _find_executable(name: str, env: dict) -> str:
    if "/" in name:
        return name
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeSetupError(f"exec {name!r}: executable file not found in $PATH. Check 'command' and the image.")


def _init(config: dict, status_w: int, seccomp_filter=None, tiocsctty: int | None = None) -> None:
    """PID 1 of the container until execve. Raises RuntimeSetupError; never returns on success.
    ``tiocsctty``: termios.TIOCSCTTY, for a container on a terminal (``spawn`` looks it up)."""
    cid = config.get("name") or config["id"]
    # Before non-dumpable: a non-dumpable process's /proc/self files belong to root, which a rootless init is not.
    # Nothing but this process runs in the container yet, and /proc is still the host's.
    _reset_oom_score_adj(int(config.get("oom_score_adj") or 0))
    # Non-dumpable until exec: processes of the container can't ptrace us or open /proc/1/exe, which is the
    # host's Python until execve replaces it (CVE-2019-5736).
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # the container never outlives its monitor
    os.setsid()
    if config.get("terminal"):
        # stdio is a pty slave (the CLI's ``run -t``): make it the session's controlling terminal, so the
        # container's line discipline turns Ctrl-C / Ctrl-Z into signals (runc's console setup does this).
        with _Step("taking the terminal"):
            if tiocsctty is None:
                raise RuntimeSetupError("no TIOCSCTTY: the terminal was not prepared by spawn()")
            fcntl.ioctl(0, tiocsctty, 0)
    # Signal dispositions and mask: the monitor reset them right before it forked us (and sets its forwarding
    # handlers only afterwards), so they are the defaults already; 62 more sigaction calls would change nothing.
    os.umask(0)
    namespaces = set(config.get("namespaces") or ())
    container = config.get("isolation", "container") == "container"
    privileged = bool(config.get("privileged"))
    ro = 0 if privileged else linux.MS_RDONLY
    nodev = 0 if privileged else linux.MS_NODEV

    if "mount" in namespaces:
        # Nothing mounted from here on may propagate back to the host.
        _mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE, None, "making / private")
    rootfs = config["rootfs"]
    mode = _mount_rootfs(rootfs, cid, nodev)
    _report(status_w, rootfs=mode)
    root = rootfs["mountpoint"]
    image = config.get("image") or cid

    proc = _real_dir(root, "proc", image)
    _real_dir(root, "dev", image)
    sys_dir = _real_dir(root, "sys", image)
    _mount("proc", proc, "proc", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, None, "mounting /proc")
    _make_dev(root, nodev)
    sys_flags = linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV | ro
    try:
        linux.mount("sysfs", sys_dir, "sysfs", sys_flags, None)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise RuntimeSetupError(f"mounting /sys: {exc}") from None
        # sysfs can only be mounted by the owner of the network namespace: bind the host's. Read-only (unless
        # privileged) on every submount too: the host's cgroupfs sits under it, and with a user namespace mapping
        # our root to the host's, a writable one would be the host's cgroups (/sys/fs/cgroup never writable).
        _bind_path_tree("/sys", sys_dir, sys_flags & _MOUNT_ATTRS, "binding /sys")
    if "cgroup" in namespaces:
        _mount_cgroups(root, sys_flags)
    # User mounts last, shallow before deep, so a volume can sit inside another.
    mounts = [("v", v) for v in config.get("volumes") or ()] + [("t", t) for t in config.get("tmpfs") or ()]
    for kind, entry in sorted(mounts, key=lambda m: os.path.normpath(m[1]["target"]).count("/")):
        if kind == "v":
            _mount_volume(root, entry, cid, nodev)
        else:
            _mount_tmpfs(root, entry, cid)

    if container:
        _pivot(root)
    else:
        with _Step("chroot"):
            os.chdir(root)
            os.chroot(".")
            os.chdir("/")
    # stdin from /dev/null: use the container's node, not the host's (runc reOpenDevNull).
    if config.get("stdin_null", True):
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    if rootfs.get("read_only"):
        with _Step("remounting / read-only"):
            linux.mount(None, "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.mount_flags_of("/"),
                        None)
    os.umask(0o022)
    if "uts" in namespaces and config.get("hostname"):
        with _Step(f"setting the hostname {config['hostname']!r}"):
            linux.sethostname(config["hostname"])
    if not privileged:
        _readonly_paths(config.get("readonly_paths", READONLY_PATHS))
        _mask_paths(config.get("masked_paths", MASKED_PATHS))
    if "net" in namespaces:
        with _Step("bringing up the loopback interface"):
            linux.interface_up("lo")
    _rlimits(config.get("rlimits"))

    user = resolve_user(config.get("user") or "", _read_small("/etc/passwd"), _read_small("/etc/group"))
    env = {}
    for item in config.get("env") or ():
        key, value = (item.split("=", 1) + [""])[:2]
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", user["home"])
    if config.get("hostname"):
        env.setdefault("HOSTNAME", config["hostname"])

    workdir = config.get("workdir") or "/"
    if os.path.normpath(workdir) == "/proc" or os.path.normpath(workdir).startswith("/proc/"):
        # Refused before any chdir, also for a config that never went through build_spec: /proc/self/fd/N is
        # a host directory if an fd leaked (CVE-2024-21626).
        raise RuntimeSetupError(f"working directory {workdir!r} is under /proc: refused. Choose a directory of "
                                "the image.")
    with _Step(f"entering the working directory {workdir}"):
        if not os.path.isdir(workdir):
            os.makedirs(workdir, 0o755)
        os.chdir(workdir)
        cwd = os.getcwd()  # ENOENT for a directory outside our root (CVE-2024-21626: leaked fd as cwd)
        if not cwd.startswith("/") or cwd.startswith("/proc/"):
            raise RuntimeSetupError(f"working directory {workdir!r} resolves to {cwd!r}, outside the container")

    if config.get("no_new_privileges", True):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    else:
        # Without no_new_privs the filter needs CAP_SYS_ADMIN to load: now, before capabilities are dropped
        # (runc's order). Docker's profile allows the prctl/setgroups/setresuid/capset calls that follow.
        apply_seccomp(seccomp_filter)
        seccomp_filter = None
    last = linux.last_cap()
    if privileged:
        caps = linux.capget()[1]  # every capability we have (Docker: all; a host may lack some itself)
    else:
        caps = capability_mask(config.get("capabilities", DEFAULT_CAPABILITIES))
        if not container:
            # chroot isolation: CAP_SYS_CHROOT would let the command chroot into a subdirectory, climb out of
            # it with ".." and chroot into the host's /. build_spec leaves it out; a config stored by an
            # older version may still name it, so the init drops it whatever the config says.
            caps &= ~(1 << linux.CAPABILITIES["CAP_SYS_CHROOT"])
    with _Step("dropping capabilities"):
        linux.drop_bounding_set(caps, last)
    if "user" in namespaces and (user["uid"] or user["gid"]):
        raise RuntimeSetupError(f"user {config.get('user')!r} (uid {user['uid']}, gid {user['gid']}): the user "
                                "namespace maps only root (your own uid). Run as user root, or without userns.")
    with _Step(f"switching to user {config.get('user') or '0'} (uid {user['uid']}, gid {user['gid']})"):
        if "user" not in namespaces:      # setgroups is denied in our user namespace (single-id map)
            os.setgroups(user["groups"])
        os.setresgid(user["gid"], user["gid"], user["gid"])
        os.setresuid(user["uid"], user["uid"], user["uid"])
    # Docker's rule: a non-root user starts with empty effective and permitted sets (the bounding set still
    # limits what setuid binaries and file capabilities can give back).
    granted = caps if user["uid"] == 0 else 0
    with _Step("setting capabilities"):
        linux.capset(granted, granted, 0)
        linux.clear_ambient()
    apply_seccomp(seccomp_filter)

    path = _find_executable(config["argv"][0], env)
    _keep_only_fds({0, 1, 2, status_w})
    try:
        os.execve(path, config["argv"], env)
    except OSError as exc:
        raise RuntimeSetupError(f"exec {config['argv'][0]!r}: {exc.strerror}. Check 'command' and the image.")
