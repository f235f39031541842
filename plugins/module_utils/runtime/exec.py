# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process inside a running named container (``container_exec``, ``dockerless exec``, healthchecks).

The order follows runc's ``runc exec`` (nsexec.c, setns_init_linux.go), written for Python:

1. parent: the seccomp filter is compiled (``seccomp.prepare``, same profile and capabilities as the container),
   a pidfd on the container's PID 1 is opened and proved to still be that process (its parent is the recorded
   monitor), and its root directory is opened;
2. the monitor (our child, host PID namespace): oom_score_adj back to the container's (a supervisor runs at
   -1000), **non-dumpable** before anything of the container can see it, fds reduced to 0-2 and its own pipes,
   the container's cgroups joined (it counts against ``pids_limit`` and memory), then every namespace joined:
   one ``setns(pidfd, flags)`` where the kernel has it (5.8+), else the ``/proc/PID/ns/*`` files opened first
   (before the mount namespace changes what /proc is) and joined one by one, user namespace first;
3. the process (the monitor's child, so it is in the container's PID namespace): a new session (and the pty
   as controlling terminal for ``-t``), root and working directory from the container's root fd, the user
   resolved against the container's own /etc/passwd, the container's rlimits, no_new_privs, bounding set,
   uid/gid, Docker's rule for capabilities (a non-root user gets empty effective and permitted sets), the seccomp
   filter last, only fds 0-2, execve. Still non-dumpable until execve replaces the host Python
   (CVE-2019-5736: nothing in the container can ptrace it or open its /proc/PID/exe).

The monitor forwards signals to the process and exits with its status: the container's own monitor's code
(``spawn.relay``); the caller's handle is ``spawn.InitProcess`` (``pid``, ``error``, ``send``, ``kill``, ``wait``).
"""

from __future__ import annotations

import errno
import os
import select
import time

try:
    # The C module behind ``signal`` (plain ints, no enum import): ``dockerless exec`` starts faster without it.
    import _signal as signal
except ImportError:  # pragma: no cover - every CPython has it
    import signal

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import state as runtime_state

# The init's building blocks (capabilities, user resolution, fd closing, seccomp, process handle); they may move
# between the runtime's files, so they are all taken here, in one place.
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import (
    DEFAULT_CAPABILITIES,
    capability_mask,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.process import (
    DEFAULT_PATH,
    EXIT_SETUP_FAILED,
    find_executable,
    keep_only_fds,
    report,
    reset_oom_score_adj,
    reset_signals,
    set_rlimits,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spawn import InitProcess, monitor_child
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.users import (
    read_account_file,
    resolve_user,
)

# setns(2) order when joining by /proc/PID/ns files: the user namespace first (it grants the capabilities the
# others need when we are not root on the host), the mount namespace last (/proc changes under us with it).
NS_ORDER = (("user", "user"), ("ipc", "ipc"), ("uts", "uts"), ("net", "net"), ("pid", "pid"),
            ("cgroup", "cgroup"), ("mount", "mnt"))
EXEC_OUTPUT_LIMIT = 16 << 20      # bytes kept per stream of an exec run by a module
STRAGGLER_GRACE = 0.2             # seconds a pipe is still read after the process exited (its own children)


class ExecResult(Record):
    rc: int
    stdout: bytes
    stderr: bytes
    pid: int | None = None
    timed_out: bool = False
    duration: float = 0.0


class Target(Record):
    """The running container an exec enters: its name, PID 1 on the host, monitor, and init config."""

    name: str
    pid: int
    monitor_pid: int | None
    config: dict
    state: str = "running"


_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def is_name(name) -> bool:
    """spec.NAME_RE without ``re`` (whose import is a sizeable part of a ``dockerless exec``)."""
    return (isinstance(name, str) and 0 < len(name) <= 128 and name[0] in _NAME_FIRST
            and all(c in _NAME_REST for c in name))


def find_target(containers_dir: str, name: str) -> Target:
    """The running container ``name`` in ``containers_dir`` (``state.containers_dir(store)``) as a Target, read
    from its records (spec.json, state.json, the supervisor's lock), or RuntimeSetupError naming it and its
    state. Only the records: ``dockerless exec`` loads nothing of the engine that creates containers."""
    if not is_name(name):
        raise RuntimeSetupError(f"container name {name!r}: use letters, digits, '_', '.' and '-' (not first), at "
                                "most 128 characters.")
    cdir = os.path.join(containers_dir, name)
    record = runtime_state.read_json(os.path.join(cdir, runtime_state.SPEC_FILE))
    if record is None or record.get("one_shot"):
        raise RuntimeSetupError(f"container {name}: no such container in {containers_dir}. Create and start it "
                                "first (container_run state: started).")
    state = runtime_state.read_json(os.path.join(cdir, runtime_state.STATE_FILE)) or {}
    alive = runtime_state.supervisor_alive(cdir)
    current = runtime_state.current_state(state, alive)
    if current != "running" or not alive or not state.get("pid"):
        exit_code = state.get("exit_code")
        detail = current + (f", exit code {exit_code}" if exit_code is not None else "")
        raise RuntimeSetupError(f"container {name} is not running ({detail}): a command can only be executed in "
                                "a running container. Start it first (container_run state: started, dockerless "
                                "start).")
    return Target(name=name, pid=int(state["pid"]), monitor_pid=state.get("monitor_pid"),
                  config=record.get("config") or {})


def exec_config(target_config: dict, argv: list[str], env: dict | None = None, user: str | None = None,
                workdir: str | None = None, terminal: bool = False) -> dict:
    """The container's init config with the exec's own command, environment (added to the container's), user and
    working directory (the container's when not given), as ``docker exec`` does."""
    if not argv:
        raise RuntimeSetupError("exec: no command given. Pass the command to run in the container.")
    config = dict(target_config)
    merged = {}
    for item in config.get("env") or ():
        key, _eq, value = str(item).partition("=")
        merged[key] = value
    for key, value in (env or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in str(value):
            raise RuntimeSetupError(f"exec: environment variable {key!r} is not a valid name or holds NUL. Fix env.")
        merged[key] = str(value)
    config["env"] = [f"{k}={v}" for k, v in merged.items()]
    config["argv"] = [str(a) for a in argv]
    if user is not None:
        config["user"] = user
    if workdir:
        if not workdir.startswith("/"):
            raise RuntimeSetupError(f"exec: working directory {workdir!r} is not absolute. Give a path from /.")
        config["workdir"] = workdir
    config["terminal"] = terminal
    return config


def cgroup_procs_files(pid: int, proc: str = "/proc") -> list[str]:
    """The files to write "0" to for joining the cgroups of ``pid`` that are not ours, one per hierarchy
    (``cgroup.procs`` on cgroup v2, ``tasks`` on v1), found through /proc/PID/cgroup and our mountinfo."""
    def read(path: str) -> str:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()

    theirs = _cgroup_lines(read(f"{proc}/{pid}/cgroup"))
    ours = _cgroup_lines(read(f"{proc}/self/cgroup"))
    mounts = []  # (kind, controllers, mount root, mount point)
    for line in read(f"{proc}/self/mountinfo").splitlines():
        left, _sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(tail[2].split(",")) if tail[0] == "cgroup" else set()
        mounts.append((tail[0], options, _unescape(fields[3]), _unescape(fields[4])))
    out = []
    for key, path in theirs.items():
        if ours.get(key) == path:
            continue
        for kind, options, root, point in mounts:
            if (key == "" and kind == "cgroup2") or (key and kind == "cgroup" and set(key.split(",")) <= options):
                if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
                    continue
                relative = path[len(root):] if root != "/" else path
                # cgroup v1: the thread moves itself through ``tasks`` (the monitor is single-threaded), which
                # skips the kernel's global threadgroup lock and its RCU grace period (init_sequence does the same).
                name = "cgroup.procs" if kind == "cgroup2" else "tasks"
                candidate = os.path.join(point, relative.lstrip("/"), name)
                if os.path.exists(candidate):
                    out.append(candidate)
                    break
    return out


def _cgroup_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2]
    return out


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[1])


def _open_target(target: Target) -> tuple[int, int]:
    """A pidfd on the container's PID 1 and an O_PATH fd on its root directory, both proved to be that process's:
    the pidfd pins it, its parent is the monitor the supervisor recorded (a recycled PID would have another),
    and it is still alive after the root was opened through /proc/PID (so /proc/PID was still it)."""
    try:
        pidfd = os.pidfd_open(target.pid)
    except ProcessLookupError:
        raise RuntimeSetupError(f"container {target.name}: its PID 1 ({target.pid}) is gone; it stopped. Start it "
                                "again.") from None
    try:
        if target.monitor_pid and _parent_of(target.pid) != target.monitor_pid:
            raise RuntimeSetupError(f"container {target.name}: PID {target.pid} is no longer its PID 1; it stopped "
                                    "or restarted. Try again.")
        root_fd = os.open(f"/proc/{target.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            signal.pidfd_send_signal(pidfd, 0)
        except BaseException:
            os.close(root_fd)
            raise
    except ProcessLookupError:
        os.close(pidfd)
        raise RuntimeSetupError(f"container {target.name}: its PID 1 ({target.pid}) is gone; it stopped. Start it "
                                "again.") from None
    except BaseException:
        os.close(pidfd)
        raise
    return pidfd, root_fd


DEVPTS_SUPER_MAGIC = 0x1CD1
PTMX_DEVICE = (5, 2)              # /dev/ptmx and every devpts instance's ptmx
TIOCSPTLCK = 0x40045431           # _IOW('T', 0x31, int): unlock the slave
TIOCGPTPEER = 0x5441              # _IO('T', 0x41), Linux 4.13: the slave's fd from the master, no path looked up


def open_pty(target: Target) -> tuple[int, int]:
    """A pty (master, slave) of the container's own devpts instance, for ``exec -t``: the process's terminal is
    then a ``/dev/pts/N`` it can see (``tty`` names it), as with ``docker exec -t``, not one of the host's.

    Everything under the container's root is the container's to change, so: its ``/dev/pts/ptmx`` is resolved
    with openat2 ``RESOLVE_IN_ROOT`` from the root fd (its symlinks stay inside it) and opened O_PATH, which
    opens nothing; only once fstatfs says devpts and fstat says the ptmx device is it reopened read-write; the
    slave comes from the master (TIOCGPTPEER), never from a path. A container without a devpts of its own, or a
    kernel without openat2 or TIOCGPTPEER, gets a pty of the host's (os.openpty), as before."""
    import fcntl
    import stat

    pidfd, root_fd = _open_target(target)
    try:
        try:
            path_fd = linux.openat2(root_fd, "dev/pts/ptmx", os.O_PATH, linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS)
        except OSError:
            return os.openpty()
    finally:
        os.close(pidfd)
        os.close(root_fd)
    master = None
    try:
        st = os.fstat(path_fd)
        if (linux.fstatfs_type(path_fd) != DEVPTS_SUPER_MAGIC or not stat.S_ISCHR(st.st_mode)
                or (os.major(st.st_rdev), os.minor(st.st_rdev)) != PTMX_DEVICE):
            return os.openpty()
        master = os.open(f"/proc/self/fd/{path_fd}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        if master is not None:
            os.close(master)
        return os.openpty()
    finally:
        os.close(path_fd)
    return master, slave


def spawn(target: Target, config: dict, stdin: int, stdout: int, stderr: int, detach: bool = False) -> InitProcess:
    """Start ``config["argv"]`` inside ``target`` with the given stdio fds (dup'ed, not closed); returns the
    monitor's handle once it runs: ``read_status()`` tells whether the command was executed."""
    tiocsctty = None
    if config.get("terminal"):
        import termios

        tiocsctty = termios.TIOCSCTTY
    seccomp_filter = seccomp.prepare(config.get("seccomp"), config.get("capabilities", DEFAULT_CAPABILITIES),
                                     privileged=bool(config.get("privileged")))
    pidfd, root_fd = _open_target(target)
    fds = [pidfd, root_fd]
    try:
        names = set(config.get("namespaces") or ())
        joins = [(name, file) for name, file in NS_ORDER if name in names]
        cgroups = cgroup_procs_files(target.pid)
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child, observed through its effects
            try:
                os.close(status_r)
                _monitor(target, config, joins, pidfd, root_fd, cgroups, (stdin, stdout, stderr), status_w,
                         seccomp_filter, tiocsctty, None if detach else parent)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        os.close(status_w)
        _own_group(pid)
        return InitProcess(pid, status_r)
    finally:
        for fd in fds:
            os.close(fd)


def _own_group(pid: int) -> None:
    """The monitor in a process group of its own (set by both sides of the fork, as shells do, so no signal
    falls between): a Ctrl-C typed at the caller's terminal reaches the caller only, which forwards it once,
    instead of reaching the process twice (from the caller and from the monitor's relay)."""
    try:
        os.setpgid(pid, 0)
    except OSError:     # the monitor already ended (ESRCH), or set it itself
        pass


def _monitor(target: Target, config: dict, joins: list, pidfd: int, root_fd: int, cgroups: list, stdio: tuple,
             status_w: int, seccomp_filter, tiocsctty, parent: int | None) -> None:
    try:
        _own_group(0)
        if parent is not None:
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(EXIT_SETUP_FAILED)
        reset_signals()
        reset_oom_score_adj(int(config.get("oom_score_adj") or 0))
        # Before any namespace is joined: from then on processes of the container could reach us.
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        for number, fd in enumerate(stdio):
            if fd != number:
                os.dup2(fd, number)
        keep_only_fds({0, 1, 2, status_w, pidfd, root_fd})
        for path in cgroups:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)
            except OSError as exc:
                raise RuntimeSetupError(f"joining the container's cgroup {os.path.dirname(path)}: {exc.strerror}. "
                                        "Run as the user that started the container.") from None
        _join_namespaces(target, joins, pidfd)
        os.close(pidfd)
    except BaseException as exc:
        report(status_w, error=f"entering container {target.name}: {exc}")
        os._exit(EXIT_SETUP_FAILED)
    monitor_child(status_w, lambda: _process(config, root_fd, status_w, seccomp_filter, tiocsctty),
                  close_fds=(root_fd,))


def _join_namespaces(target: Target, joins: list, pidfd: int) -> None:
    flags = 0
    for name, _file in joins:
        flags |= linux.NAMESPACE_FLAGS[name]
    if not flags:
        return
    try:
        linux.setns(pidfd, flags)   # all at once, atomically (Linux 5.8+)
        return
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    # An older kernel: a pidfd is not a namespace file. Open every file first: once the mount namespace is
    # joined, /proc is the container's and /proc/PID no longer names the same process.
    opened = []
    try:
        for name, file in joins:
            opened.append((name, os.open(f"/proc/{target.pid}/ns/{file}", os.O_RDONLY | os.O_CLOEXEC)))
        # The files must still belong to the process the pidfd pins (a PID reused while we opened them would not).
        signal.pidfd_send_signal(pidfd, 0)
        for name, fd in opened:
            linux.setns(fd, linux.NAMESPACE_FLAGS[name])
    finally:
        for _name, fd in opened:
            os.close(fd)


def _process(config: dict, root_fd: int, status_w: int, seccomp_filter, tiocsctty) -> None:
    """The exec'd process, inside every namespace of the container, until execve."""
    os.setsid()
    if config.get("terminal"):
        import fcntl

        fcntl.ioctl(0, tiocsctty, 0)
    # The container's root, from the fd opened on /proc/PID/root before joining: the same directory whether the
    # container pivoted into it (mount namespace) or was chrooted.
    os.fchdir(root_fd)
    os.chroot(".")
    os.close(root_fd)
    os.chdir("/")
    namespaces = set(config.get("namespaces") or ())
    privileged = bool(config.get("privileged"))
    container = config.get("isolation", "container") == "container"
    set_rlimits(config.get("rlimits"))
    user = resolve_user(config.get("user") or "", read_account_file("/etc/passwd"), read_account_file("/etc/group"))
    env = {}
    for item in config.get("env") or ():
        key, _eq, value = str(item).partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", user["home"])
    if config.get("hostname"):
        env.setdefault("HOSTNAME", config["hostname"])
    if config.get("terminal"):
        env.setdefault("TERM", "xterm")
    workdir = os.path.normpath(config.get("workdir") or "/")
    if workdir == "/proc" or workdir.startswith("/proc/"):
        raise RuntimeSetupError(f"working directory {workdir!r} is under /proc: refused. Choose a directory of the "
                                "image.")
    try:
        os.chdir(workdir)
    except OSError as exc:
        raise RuntimeSetupError(f"entering the working directory {workdir}: {exc.strerror}. Choose an existing "
                                "directory of the container.") from None
    cwd = os.getcwd()  # ENOENT if the directory is outside our root (CVE-2024-21626)
    if not cwd.startswith("/") or cwd.startswith("/proc/"):
        raise RuntimeSetupError(f"working directory {workdir!r} resolves to {cwd!r}, outside the container")
    if config.get("no_new_privileges", True):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    else:
        seccomp.apply(seccomp_filter)       # needs CAP_SYS_ADMIN without no_new_privs: before the drop
        seccomp_filter = None
    last = linux.last_cap()
    if privileged:
        caps = linux.capget()[1]
    else:
        caps = capability_mask(config.get("capabilities", DEFAULT_CAPABILITIES))
        if not container:
            caps &= ~(1 << linux.CAPABILITIES["CAP_SYS_CHROOT"])
    linux.drop_bounding_set(caps, last)
    if "user" in namespaces and (user["uid"] or user["gid"]):
        raise RuntimeSetupError(f"user {config.get('user')!r} (uid {user['uid']}, gid {user['gid']}): the user "
                                "namespace maps only root. Run as user root.")
    if "user" not in namespaces:
        os.setgroups(user["groups"])
    os.setresgid(user["gid"], user["gid"], user["gid"])
    os.setresuid(user["uid"], user["uid"], user["uid"])
    granted = caps if user["uid"] == 0 else 0   # Docker's rule for a non-root user
    linux.capset(granted, granted, 0)
    linux.clear_ambient()
    seccomp.apply(seccomp_filter)
    path = find_executable(config["argv"][0], env)
    keep_only_fds({0, 1, 2, status_w})     # status_w is close-on-exec: only 0-2 reach the command
    try:
        os.execve(path, config["argv"], env)
    except OSError as exc:
        raise RuntimeSetupError(f"exec {config['argv'][0]!r}: {exc.strerror}. Check the command.") from None


def run(target: Target, config: dict, stdin_data: bytes | None = None, timeout: float | None = None,
        output_limit: int = EXEC_OUTPUT_LIMIT) -> ExecResult:
    """Run ``config["argv"]`` in ``target`` to its end; stdout and stderr collected (up to ``output_limit`` each),
    ``stdin_data`` fed to it (else /dev/null), killed after ``timeout`` seconds (``timed_out``, rc 137).
    Raises RuntimeSetupError when it could not be started."""
    began = time.monotonic()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if stdin_data is None:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
    else:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = spawn(target, config, in_r, out_w, err_w)
    except BaseException:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, in_r):
            os.close(fd)
    chunks = {out_r: [], err_r: []}
    sizes = {out_r: 0, err_r: 0}
    pending = memoryview(stdin_data or b"")
    if in_w is not None:
        os.set_blocking(in_w, False)
        if not pending:
            os.close(in_w)
            in_w = None
    deadline = None if timeout is None else began + timeout
    timed_out = False
    pidfd = os.pidfd_open(proc.monitor_pid)
    exited_at = None
    open_fds = [out_r, err_r]
    try:
        while open_fds or proc.status_fd is not None:
            rlist = open_fds + ([proc.status_fd] if proc.status_fd is not None else [])
            if exited_at is None:
                rlist.append(pidfd)
            wlist = [in_w] if in_w is not None else []
            now = time.monotonic()
            wait = None
            if deadline is not None and not timed_out:
                wait = max(0.0, deadline - now)
            if exited_at is not None:
                grace = exited_at + STRAGGLER_GRACE - now
                if grace <= 0:
                    break
                wait = grace if wait is None else min(wait, grace)
            readable, writable, _errors = select.select(rlist, wlist, [], wait)
            if not readable and not writable:
                if deadline is not None and not timed_out and time.monotonic() >= deadline:
                    timed_out = True
                    proc.kill()
                continue
            if in_w is not None and in_w in writable:
                try:
                    pending = pending[os.write(in_w, pending[:65536]):]
                except (BlockingIOError, InterruptedError):
                    pass
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    os.close(in_w)
                    in_w = None
            for fd in readable:
                if fd == pidfd:
                    exited_at = time.monotonic()
                elif fd == proc.status_fd:
                    proc.read_status(0)
                else:
                    data = os.read(fd, 1 << 16)
                    if not data:
                        open_fds.remove(fd)
                        continue
                    keep = max(0, min(len(data), output_limit - sizes[fd]))
                    if keep:
                        chunks[fd].append(data[:keep])
                        sizes[fd] += keep
    finally:
        os.close(pidfd)
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        if proc.status_fd is not None:
            proc.read_status(1.0)
        proc.kill()
        rc = proc.wait()
        proc.close()
    if proc.error:
        raise RuntimeSetupError(f"container {target.name}: {proc.error}")
    return ExecResult(rc=rc, stdout=b"".join(chunks[out_r]), stderr=b"".join(chunks[err_r]), pid=proc.pid,
                      timed_out=timed_out, duration=time.monotonic() - began)


def start_detached(target: Target, config: dict) -> int:
    """Start ``config["argv"]`` in ``target`` without waiting for it (stdio on /dev/null); returns its host PID
    once it was executed. Raises RuntimeSetupError when it could not be started."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        proc = spawn(target, config, null, null, null, detach=True)
    finally:
        os.close(null)
    proc.read_status()
    if proc.error:
        proc.wait()
        raise RuntimeSetupError(f"container {target.name}: {proc.error}")
    # The monitor stays until the command ends; it is reaped by whoever waits for it (the caller's exit hands it
    # to init).
    return proc.pid or 0
