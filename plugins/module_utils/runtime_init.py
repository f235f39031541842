# -*- coding: utf-8 -*-
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
  caller's handle on the container: SIGTERM to the monitor is forwarded to the init, SIGUSR1 becomes a
  SIGKILL of the init, which ends the whole PID namespace. The caller only ever signals its own child, so no
  PID can be reused under it. The init dies with the monitor (PDEATHSIG), the monitor with the caller.

Everything the init needs must be imported before ``pivot_root``: once the old root is gone, nothing can be
loaded from the host's library path, so this file imports its few stdlib modules at the top and never lazily.

The config (a JSON-able dict, built by runtime_spec) has these keys: ``id``, ``argv``, ``env`` (list of
``K=V``), ``workdir``, ``user``, ``hostname``, ``namespaces`` (list of linux.NAMESPACE_FLAGS keys),
``isolation`` (``container``/``chroot``), ``rootfs`` (``lower`` top→bottom, ``upper``, ``work``,
``mountpoint``, ``copy``, ``mode`` auto/overlay/copy, ``read_only``), ``volumes`` (source, target,
read_only), ``tmpfs`` (target, options), ``capabilities`` (names), ``privileged``, ``no_new_privileges``,
``masked_paths``, ``readonly_paths``, ``rlimits`` (name, soft, hard), ``stdin_null`` (default true: fd 0
becomes the container's /dev/null), ``terminal`` (fds 0-2 are a pty slave to take as controlling terminal),
``seccomp`` (``default``, a profile path,
or None/``unconfined``: see seccomp.py).
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
    # itself imports enum (and enum functools and collections), a tenth of a container start (issue 6).
    import _signal as signal
except ImportError:  # pragma: no cover - every CPython has it
    import signal
import time

from ansible_collections.dockerless.containers.plugins.module_utils import linux, seccomp
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime_record import json_dumps, json_loads

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
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The /dev a container gets: (name, major, minor), all 0666 root:root (runc libcontainer/specconv AllowedDevices).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

MAX_ID = (1 << 31) - 1          # runc user.maxId: ids above are refused (and -1 would mean "unchanged")
_PASSWD_LIMIT = 4 << 20          # /etc/passwd and /etc/group are read up to this size
_MAX_SYMLINKS = 255
EXIT_SETUP_FAILED = 125


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
    """Flatten overlay-form layer folders into ``dest`` (the copy fallback when overlayfs can't be mounted):
    layers are applied bottom to top; a 0/0 character device is a whiteout, ``trusted.overlay.opaque=y``
    hides the lower contents of a directory. Nothing is ever written through an existing symlink: a target
    of another type is removed before it is replaced."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    for layer in reversed(lowers_top_to_bottom):
        _apply_layer(layer, dest)


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            os.chmod(path, 0o700)   # overlayfs leaves work/work at mode 000; only root could enter it
        for entry in os.listdir(path):
            _remove(os.path.join(path, entry))
        os.rmdir(path)
    else:
        os.unlink(path)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            pass


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    # Owner first, then mode (chown clears setuid bits), then times; never through a link.
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _apply_layer(src_dir: str, dst_dir: str) -> None:
    for entry in os.scandir(src_dir):
        src = entry.path
        dst = os.path.join(dst_dir, entry.name)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            _remove(dst)                                    # whiteout
            continue
        if stat.S_ISDIR(mode):
            try:
                opaque = os.getxattr(src, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
            except OSError:
                opaque = False
            try:
                existing = os.lstat(dst)
            except FileNotFoundError:
                existing = None
            if existing is not None and (opaque or not stat.S_ISDIR(existing.st_mode)):
                _remove(dst)
                existing = None
            if existing is None:
                os.mkdir(dst, 0o700)
            _apply_layer(src, dst)
            _copy_meta(src, dst, st)
            continue
        _remove(dst)
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(mode):
            fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    remaining = st.st_size
                    while remaining > 0:
                        sent = os.sendfile(fout, fin, None, min(remaining, 1 << 30))
                        if sent == 0:
                            break
                        remaining -= sent
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
        else:
            os.mknod(dst, mode, st.st_rdev)
        _copy_meta(src, dst, st)


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
        self._signal(signal.SIGUSR1)

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
    for itself without newuidmap (user_namespaces(7)); setgroups must be denied first for the gid map."""
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"0 {gid} 1")


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
            os.kill(child, signal.SIGKILL if signum == signal.SIGUSR1 else signum)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
        signal.signal(sig, forward)
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
    if mode in ("auto", "overlay"):
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
            _remove(copy)
            merge_layers(rootfs["lower"], copy)
            with open(done, "w"):
                pass
    # pivot_root needs a mount point: bind the copy onto the mount target.
    _mount(copy, target, None, linux.MS_BIND | linux.MS_REC, None, f"container {cid}: binding the rootfs copy")
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
    flush, 2-7 ms of each one-shot here, issue 6). The kernel marks the work dir with ``work/incompat/volatile``
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
            # Without the right to mount this hierarchy (user namespace): the host's, read-only.
            _mount(point, dest, None, linux.MS_BIND | linux.MS_REC, None, f"binding {point}")
            _mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | flags | linux.mount_flags_of(dest), None,
                   f"remounting {point}")
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


def _mount_volume(root: str, vol: dict, cid: str, nodev: int) -> None:
    source = vol["source"]
    target = secure_join(root, vol["target"])
    try:
        is_dir = os.path.isdir(source)
        if not os.path.lexists(target):
            if is_dir:
                _mkdir_p(target)
            else:
                _mkdir_p(os.path.dirname(target))
                with open(target, "a"):
                    pass
    except OSError as exc:
        raise RuntimeSetupError(f"container {cid}: creating the mount point {vol['target']}: {exc}") from None
    what = f"container {cid}: binding volume {source} on {vol['target']}"
    _mount(source, target, None, linux.MS_BIND | linux.MS_REC, None, what)
    extra = nodev | (linux.MS_RDONLY if vol.get("read_only") else 0)
    if extra:
        with _Step(what + (" read-only" if vol.get("read_only") else " nodev")):
            kept = linux.mount_flags_of(target)
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | extra | kept, None)


def _mount_tmpfs(root: str, entry: dict, cid: str) -> None:
    target = secure_join(root, entry["target"])
    _mkdir_p(target)
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
    _mount("tmpfs", target, "tmpfs", flags, ",".join(options) or None,
           f"container {cid}: mounting tmpfs on {entry['target']}")


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


def _mask_paths(paths) -> None:
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        with _Step(f"masking {path}"):
            if stat.S_ISDIR(st.st_mode):
                linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY, None)
            else:
                linux.mount("/dev/null", path, None, linux.MS_BIND, None)


def _readonly_paths(paths) -> None:
    for path in paths:
        if not os.path.exists(path):
            continue
        with _Step(f"making {path} read-only"):
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC, None)
            kept = linux.mount_flags_of(path)
            linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | kept, None)


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
        # sysfs can only be mounted by the owner of the network namespace: bind the host's, read-only.
        _mount("/sys", sys_dir, None, linux.MS_BIND | linux.MS_REC, None, "binding /sys")
        _mount(None, sys_dir, None, linux.MS_BIND | linux.MS_REMOUNT | sys_flags, None, "remounting /sys")
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
