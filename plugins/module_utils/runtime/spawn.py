# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container process creation, the parent side: ``spawn``, the monitor and ``InitProcess``.

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
* The init (``init_sequence.run``) builds the container's file system and process, in runc's order, up to
  ``execve``; the seccomp filter it loads is compiled here by ``spawn``, in the caller.
* The init reports to the caller on a close-on-exec pipe: newline-separated JSON messages (rootfs mode,
  errors). End of file without an error means ``execve`` succeeded.
* The monitor stays outside the PID namespace, waits for the init and exits with the same status. It is the
  caller's handle on the container: every signal sent to the monitor is forwarded to the init (tini's set:
  all but SIGCHLD and the synchronous fault signals), except ``KILL_REQUEST`` (SIGRTMAX), which becomes a
  SIGKILL of the init and ends the whole PID namespace. The caller only ever signals its own child, so no
  PID can be reused under it. The init dies with the monitor (PDEATHSIG), the monitor with the caller.
"""

from __future__ import annotations

import os
import resource
import select
import time

try:
    import _signal as signal  # plain ints, no enum: the start path's import economies (runtime/__init__.py)
except ImportError:  # pragma: no cover - every CPython has it
    import signal

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_loads
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.process import (
    EXIT_SETUP_FAILED,
    keep_only_fds,
    report,
    reset_signals,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp

TYPE_CHECKING = False  # typing only annotates here
if TYPE_CHECKING:
    from collections.abc import Callable

# What the caller sends the monitor to have the init SIGKILLed (the only signal it does not forward as is).
KILL_REQUEST = signal.SIGRTMAX
# Not forwarded by the monitor: SIGCHLD is its own business; the fault signals are raised by the kernel for the
# monitor's own faults (tini forwards the same set).
_NOT_FORWARDED = frozenset((signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGFPE, signal.SIGILL,
                            signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS,
                            signal.SIGTTIN, signal.SIGTTOU))


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

    def read_status(self, timeout: float | None = None, on_rootfs: Callable[[], None] | None = None) -> bool:
        """Read the init's reports until end of file (exec done or setup failed). Returns False when
        ``timeout`` seconds passed first. ``on_rootfs`` is called once the init reported its rootfs mounted,
        while it goes on setting up the container (the caller's own work then overlaps it)."""
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
            if on_rootfs is not None and self.rootfs_mode is not None:
                on_rootfs()
                on_rootfs = None
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
          hold_fds: tuple = (), after_unshare=None) -> InitProcess:
    """Start the container described by ``config`` with the given stdio fds (they are dup'ed, not closed).
    ``before_unshare(monitor_pid)`` runs in the caller after the fork, before any namespace exists (the
    cgroup is joined there). ``hold_fds`` stay open in the monitor until it exits (after the container's
    namespaces are gone): a one-shot's slot lock (runtime.OneShotDir); the init closes them first thing.
    ``after_unshare(monitor_pid)`` runs in the caller once the monitor has its namespaces and before it forks
    the init: ``/proc/<monitor_pid>/ns/net`` is then the container's network namespace, where the network
    attach (network/attach.py) makes eth0 before any process of the image runs; its attribute
    ``while_unsharing``, when set, is called first, in the caller, while the monitor makes the namespaces (a
    one-shot's leases and firewall check: off the start's critical path). Returns once the monitor runs; call
    ``read_status`` to learn how setup went."""
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
    # The init's code (and rootfs, users, the layer code behind it) is loaded here, in the caller before the fork
    # (the init can import nothing after pivot_root), not at the top: an exec (runtime/exec.py) uses this
    # module's monitor relay and InitProcess but never runs an init, and ``dockerless exec`` starts faster without.
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import init_sequence

    sync_r, sync_w = os.pipe()
    status_r, status_w = os.pipe()
    # The monitor says "namespaces made" on ready_w and waits for a second "g" before it forks the init.
    ready_r, ready_w = os.pipe() if after_unshare is not None else (None, None)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, observed through its effects
        try:
            os.close(sync_w)
            os.close(status_r)
            if ready_r is not None:
                os.close(ready_r)
            _monitor(config, flags, parent, (stdin, stdout, stderr), sync_r, status_w, init_sequence.run,
                     seccomp_filter, hold_fds, tiocsctty, ready_w)
        finally:
            os._exit(EXIT_SETUP_FAILED)
    os.close(sync_r)
    os.close(status_w)
    if ready_w is not None:
        os.close(ready_w)
    proc = InitProcess(pid, status_r)
    try:
        if before_unshare is not None:
            before_unshare(pid)
        os.write(sync_w, b"g")
        early = getattr(after_unshare, "while_unsharing", None)
        if early is not None:
            early()   # the caller's own work, meanwhile: the monitor is making the namespaces
        # End of file on ready_r: the monitor failed making the namespaces; its report on the status pipe says why.
        if ready_r is not None and os.read(ready_r, 1) == b"n":
            after_unshare(pid)
            os.write(sync_w, b"g")
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        proc.wait()
        proc.close()
        raise
    finally:
        os.close(sync_w)
        if ready_r is not None:
            os.close(ready_r)
    return proc


def _map_ids(uid: int, gid: int) -> None:
    """Map the caller's uid and gid to root in the new user namespace: one line each, which a process may write
    for itself without newuidmap (user_namespaces(7)); setgroups must be denied first for the gid map. Written
    only through fds proven to be procfs (linux.write_proc, CVE-2025-52881)."""
    linux.write_proc("/proc/self/setgroups", "deny")
    linux.write_proc("/proc/self/uid_map", f"0 {uid} 1")
    linux.write_proc("/proc/self/gid_map", f"0 {gid} 1")


def _monitor(config: dict, flags: int, parent: int, stdio: tuple, sync_r: int, status_w: int, init,
             seccomp_filter=None, hold_fds: tuple = (), tiocsctty: int | None = None,
             ready_w: int | None = None) -> None:
    """The monitor: namespaces, fork the init, forward signals to it, exit with its status."""
    try:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(EXIT_SETUP_FAILED)
        reset_signals()
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
        keep_only_fds({0, 1, 2, sync_r, status_w, *hold_fds} | ({ready_w} if ready_w is not None else set()))
        if os.read(sync_r, 1) != b"g":
            os._exit(EXIT_SETUP_FAILED)
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
        if ready_w is not None:
            # The caller attaches the network namespace now (eth0, its address and route), then lets us go.
            os.write(ready_w, b"n")
            os.close(ready_w)
            if os.read(sync_r, 1) != b"g":
                os._exit(EXIT_SETUP_FAILED)
        os.close(sync_r)
    except BaseException as exc:
        report(status_w, error=f"creating the namespaces: {exc}")
        os._exit(EXIT_SETUP_FAILED)

    def init_main() -> None:
        for fd in hold_fds:
            os.close(fd)
        init(config, status_w, seccomp_filter, tiocsctty)

    monitor_child(status_w, init_main)


def monitor_child(status_w: int, child_main, close_fds: tuple = ()) -> None:
    """The rest of a monitor's life, the container's (``spawn``) and an exec's (``exec.spawn``) alike: fork the
    child, which runs ``child_main()`` (the init, or the exec'd process: it ends in execve, or its exception is
    reported on the status pipe and it exits EXIT_SETUP_FAILED); report the child's host PID (the monitor is
    outside the PID namespace), close the status pipe, ``close_fds`` and our stdio (our copies would hold the
    child's pipes open after it exits), and ``relay`` until it ends. Never returns."""
    try:
        child = os.fork()
    except OSError as exc:
        report(status_w, error=f"forking the container's process: {exc.strerror}")
        os._exit(EXIT_SETUP_FAILED)
    if child == 0:
        try:
            child_main()
        except BaseException as exc:
            report(status_w, error=str(exc) or type(exc).__name__)
        os._exit(EXIT_SETUP_FAILED)
    report(status_w, pid=child)
    # Closed, not pointed at /dev/null: an exec's monitor is in the container's mount namespace by now, where
    # /dev/null is whatever the container made it. Nothing opens an fd in the monitor after this.
    for fd in (status_w, *close_fds, 0, 1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    relay(child)


def relay(child: int) -> None:
    """A monitor's life once its child runs, the container's (``spawn``) and an exec'd process's (``exec.spawn``)
    alike: every signal the monitor gets goes to ``child`` (tini's set: all but SIGCHLD, SIGTTIN, SIGTTOU and the
    synchronous fault signals; ``KILL_REQUEST`` becomes SIGKILL), so any signal a stop (the image's StopSignal),
    ``dockerless kill -s`` or a Ctrl-C may ask for reaches it; then the monitor ends as ``child`` did: its exit
    code, or killed by the same signal (no core dump). Never returns."""
    def forward(signum, _frame):
        try:
            os.kill(child, signal.SIGKILL if signum == KILL_REQUEST else signum)
        except ProcessLookupError:
            pass

    for sig in range(1, signal.NSIG):
        if sig not in _NOT_FORWARDED:
            try:
                signal.signal(sig, forward)
            except (OSError, ValueError):   # 32 and 33: glibc keeps them for its threads
                pass
    # WNOWAIT keeps the child a zombie, so its PID can't be reused while a forwarded signal may still come.
    try:
        os.waitid(os.P_PID, child, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass
    # valid_signals(), not range(1, NSIG): 32 and 33 (glibc's) make CPython warn, and a warning in the monitor is
    # formatted and written to a closed stderr on every container's exit path.
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
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
