# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Foreground containers attached to the caller's stdio, and the terminal proxy of ``run -t``.

``Runtime.run`` collects a one-shot container's output into memory (what a module returns). A person at a
terminal needs the opposite: the container's stdin, stdout and stderr are the CLI's own file descriptors (so
``echo hi | dockerless run -i busybox cat`` streams through a pipeline), or, with ``-t``, the slave side of a
pseudo-terminal the CLI allocates and proxies:

* the caller's terminal goes to raw mode, so every key (Ctrl-C, Ctrl-Z, Ctrl-D) reaches the container's line
  discipline as a byte and the container's own terminal settings decide what it means;
* the window size is copied to the pty at start and on every SIGWINCH;
* the container's exit code comes back as the CLI's exit code; the terminal is restored in every case.

The pty is allocated here and its slave fd handed to ``spawn.spawn`` as the container's fds 0-2 with
``config["terminal"] = True``: the init then takes the slave as its session's controlling terminal
(``ioctl(0, TIOCSCTTY)`` right after ``setsid()``, as runc's console setup does), so Ctrl-C and Ctrl-Z become
signals for the container's foreground job and a resize sends it SIGWINCH.

The container's setup mirrors ``Runtime.run`` (a one-shot folder, ``runtime.OneShotDir``, whose spec.json marked
``one_shot`` keeps store GC off its layers, a cgroup when there are limits or no PID namespace, cleaned afterwards). The monitor
process gets its own process group, so a Ctrl-C typed at the caller's terminal (without ``-t``) reaches the CLI
only, which forwards it once; the monitor passes it on to the container's PID 1.
"""

from __future__ import annotations

import errno
import os
import select
import time

try:
    import _signal as signal  # plain ints, no enum: ``dockerless exec`` comes this way (runtime/__init__.py)
except ImportError:  # pragma: no cover - every CPython has it
    import signal

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError

# Only the foreground container needs the container engine, and only a terminal needs termios, tty and fcntl:
# they are imported where used, so an exec without -t loads neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import spawn
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import ContainerSpec

# Signals the CLI passes on to the container while it runs in the foreground (the monitor forwards them to PID 1).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_EXIT_GRACE = 1.0  # seconds the pty is still read after PID 1 exited (stragglers of chroot isolation)


class ForegroundContainer:
    """One foreground container: ``start()``, then ``wait()`` (or the terminal proxy), then ``close()``."""

    def __init__(self, runtime: Runtime, spec: ContainerSpec):
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import new_id
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import ContainerCgroup

        self.runtime = runtime
        self.spec = spec
        self.id = new_id()
        self.folder = runtime.one_shot_dir(spec, self.id)
        self.dir = ""
        self.cgroup = ContainerCgroup(self.id, spec.limits, runtime.cgroup_root, devices=not spec.privileged)
        self.proc: spawn.InitProcess | None = None
        self.network = (None, None)   # the holder and plan of its bridge networks (runtime.containers.one_shot_network)

    def start(self, stdin: int, stdout: int, stderr: int, *, read_stdin: bool, terminal: bool) -> None:
        """Create the container with the given fds as its 0, 1, 2 and wait until its command runs.
        Raises RuntimeSetupError (with the init's reason) when it could not be set up or executed."""
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import spawn
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import (
            one_shot_config,
            one_shot_network,
        )

        self.dir = self.folder.acquire({"id": self.id, "diff_ids": self.spec.diff_ids, "one_shot": True})
        self.cgroup.create(full=bool(self.spec.limits) or "pid" not in self.spec.namespaces)
        config = one_shot_config(self.spec, self.id, self.dir, self.folder.volatile)
        config["stdin_null"] = not read_stdin
        config["terminal"] = terminal
        config["join_tasks"] = self.cgroup.join_tasks

        def before_unshare(pid: int) -> None:
            os.setpgid(pid, pid)  # terminal signals reach the CLI only; it forwards them once
            self.cgroup.join(pid)

        holder, plan, after_unshare = one_shot_network(self.runtime.store_root, self.spec, self.id, self.dir, config)
        self.network = (holder, plan)
        self.proc = spawn.spawn(config, stdin, stdout, stderr, before_unshare=before_unshare,
                                hold_fds=self.folder.hold_fds, after_unshare=after_unshare)
        # The work dirs earlier runs left go while the init sets up the rest of the container (Runtime.run does
        # the same): a short command is often over before the parent would otherwise have started on them.
        self.proc.read_status(on_rootfs=self.folder.rootfs_mounted)
        if self.proc.error:
            raise RuntimeSetupError(f"container {self.id[:12]} ({self.spec.image or '?'}): {self.proc.error}")

    @staticmethod
    def open_pty() -> tuple[int, int]:
        """The pty of ``run -t``: the container's devpts does not exist before its init mounts it, so it is one
        of the host's (runc hands the console out of the container instead)."""
        return os.openpty()

    def signal(self, sig: int) -> None:
        """Pass ``sig`` to the container's PID 1 (through its monitor)."""
        if self.proc is not None and self.proc.exit_status is None:
            try:
                os.kill(self.proc.monitor_pid, sig)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        """The container's exit code (128 + signal number when killed)."""
        if self.proc is None:
            raise RuntimeSetupError(f"container {self.id[:12]}: waited for before it was started.")
        return self.proc.wait()

    def close(self) -> None:
        """Kill what is left, remove the cgroup and clean the one-shot folder."""
        try:
            if self.proc is not None:
                self.proc.kill()
                self.proc.wait()
                self.proc.close()
            self.cgroup.remove()
        finally:
            try:
                from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import (
                    one_shot_network_done,
                )

                one_shot_network_done(self.runtime.store_root, *self.network)
            finally:
                self.folder.release()


class _SignalForwarding:
    """While active, FORWARDED_SIGNALS sent to the CLI go to the container instead of ending the CLI."""

    def __init__(self, container: ForegroundContainer):
        self.container = container
        self.saved: dict[int, object] = {}

    def __enter__(self) -> _SignalForwarding:
        for sig in FORWARDED_SIGNALS:
            self.saved[sig] = signal.signal(sig, lambda signum, _frame: self.container.signal(signum))
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def get_winsize(fd: int) -> bytes | None:
    import fcntl
    import termios

    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class TerminalProxy:
    """Copies the caller's terminal to a pty master and back until the container is gone."""

    def __init__(self, master: int, stdin: int | None, stdout: int):
        self.master = master
        self.stdin = stdin            # None with -t but without -i: nothing is typed into the container
        self.stdout = stdout
        self._pending = b""

    def copy_winsize(self, _signum: int = 0, _frame: object = None) -> None:
        import fcntl
        import termios

        size = None
        for fd in (self.stdin, self.stdout):
            if fd is not None and size is None:
                size = get_winsize(fd)
        if size is not None:
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
            except OSError:
                pass

    def run(self, container: ForegroundContainer) -> int:
        """Proxy until PID 1 exited and the pty is drained; returns the container's exit code."""
        import termios
        import tty

        if container.proc is None:
            raise RuntimeSetupError(f"container {container.id[:12]}: attached to before it was started.")
        pidfd = os.pidfd_open(container.proc.monitor_pid)
        saved_attr = None
        raw_fd = None
        if self.stdin is not None and os.isatty(self.stdin):
            raw_fd, saved_attr = self.stdin, termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin, termios.TCSANOW)
        elif os.isatty(self.stdout):
            # -t without -i: keys stay with this terminal (Ctrl-C signals the CLI, which forwards it), but its
            # output processing is off, or the container pty's "\r\n" would come out as "\r\r\n".
            raw_fd, saved_attr = self.stdout, termios.tcgetattr(self.stdout)
            attrs = termios.tcgetattr(self.stdout)
            attrs[1] &= ~termios.OPOST
            termios.tcsetattr(self.stdout, termios.TCSANOW, attrs)
        old_winch = signal.signal(signal.SIGWINCH, self.copy_winsize)
        os.set_blocking(self.master, False)
        stdin_open = self.stdin is not None
        exited_at: float | None = None
        try:
            while True:
                rlist = [self.master]
                if stdin_open and len(self._pending) < 1 << 16:
                    rlist.append(self.stdin)
                if exited_at is None:
                    rlist.append(pidfd)
                wlist = [self.master] if self._pending else []
                timeout = None
                if exited_at is not None:
                    timeout = exited_at + _EXIT_GRACE - time.monotonic()
                    if timeout <= 0:
                        break
                readable, writable = select.select(rlist, wlist, [], timeout)[:2]
                if pidfd in readable:
                    exited_at = time.monotonic()
                if self.master in writable and self._pending:
                    try:
                        self._pending = self._pending[os.write(self.master, self._pending):]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._pending = b""
                if stdin_open and self.stdin in readable:
                    data = os.read(self.stdin, 1 << 16)
                    if data:
                        self._pending += data
                    else:
                        stdin_open = False  # end of input: the container sees no more keys
                if self.master in readable:
                    try:
                        data = os.read(self.master, 1 << 16)
                    except BlockingIOError:
                        data = None
                    except OSError as exc:
                        if exc.errno != errno.EIO:  # EIO: every slave fd is closed, the container is gone
                            raise
                        data = b""
                    if data == b"":
                        break
                    if data:
                        _write_all(self.stdout, data)
        finally:
            signal.signal(signal.SIGWINCH, old_winch)
            if saved_attr is not None:
                termios.tcsetattr(raw_fd, termios.TCSADRAIN, saved_attr)
            os.close(pidfd)
        return container.wait()


def attach(session, *, interactive: bool, terminal: bool, stdin: int = 0, stdout: int = 1, stderr: int = 2) -> int:
    """Run ``session`` (a ForegroundContainer or an ExecSession: ``start``, ``open_pty``, ``signal``, ``wait``,
    ``close``) attached to ``stdin``/``stdout``/``stderr``, or to a new pty of the caller's window size proxied
    to them when ``terminal``; stdin is /dev/null unless ``interactive``. The signals a user sends the CLI go to
    the session meanwhile. Returns its exit code; raises RuntimeSetupError when it could not start."""
    master = slave = null = None
    try:
        with _SignalForwarding(session):
            if terminal:
                import fcntl
                import termios

                master, slave = session.open_pty()
                proxy = TerminalProxy(master, stdin if interactive else None, stdout)
                size = get_winsize(stdin) or get_winsize(stdout)
                if size is not None:
                    fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
                session.start(slave, slave, slave, read_stdin=True, terminal=True)
                os.close(slave)
                slave = None
                return proxy.run(session)
            if not interactive:
                null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            session.start(stdin if null is None else null, stdout, stderr, read_stdin=interactive, terminal=False)
            return session.wait()
    finally:
        for fd in (master, slave, null):
            if fd is not None:
                os.close(fd)
        session.close()


def run_foreground(runtime: Runtime, spec: ContainerSpec, *, interactive: bool, terminal: bool,
                   stdin: int = 0, stdout: int = 1, stderr: int = 2) -> int:
    """Run ``spec`` attached to ``stdin``/``stdout``/``stderr`` (or a pty when ``terminal``); returns its exit
    code. Raises RuntimeSetupError when the container could not start."""
    return attach(ForegroundContainer(runtime, spec), interactive=interactive, terminal=terminal, stdin=stdin,
                  stdout=stdout, stderr=stderr)


class ExecSession:
    """A process started in a running container (runtime/exec.py) as the terminal proxy and signal forwarding
    see a foreground container: ``proc``, ``id``, ``signal()``, ``wait()``."""

    def __init__(self, target, config: dict):
        self.target = target
        self.config = config
        self.id = target.name
        self.proc: spawn.InitProcess | None = None

    def open_pty(self) -> tuple[int, int]:
        """A pty of the container's own devpts (runtime_exec.open_pty), so the process's ``tty`` is a
        ``/dev/pts/N`` it can see."""
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec

        return runtime_exec.open_pty(self.target)

    def start(self, stdin: int, stdout: int, stderr: int, *, read_stdin: bool, terminal: bool) -> None:
        """Start the process on these fds (``terminal``: they are a pty's slave; ``config["terminal"]`` says so
        already, as ``read_stdin`` is what the caller put on ``stdin``)."""
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec

        self.proc = runtime_exec.spawn(self.target, self.config, stdin, stdout, stderr)
        self.proc.read_status()
        if self.proc.error:
            self.proc.wait()
            raise RuntimeSetupError(f"container {self.target.name}: {self.proc.error}")

    def signal(self, sig: int) -> None:
        if self.proc is not None:
            self.proc.send(sig)

    def wait(self) -> int:
        if self.proc is None:
            raise RuntimeSetupError(f"container {self.id}: exec waited for before it was started.")
        return self.proc.wait()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.close()


def exec_foreground(target, config: dict, *, interactive: bool, terminal: bool, stdin: int = 0, stdout: int = 1,
                    stderr: int = 2) -> int:
    """``dockerless exec``: run ``config["argv"]`` in ``target`` attached to these fds (or to a new pty of the
    container's, its size the caller's, when ``terminal``); returns its exit code. Raises RuntimeSetupError when it
    could not start."""
    return attach(ExecSession(target, config), interactive=interactive, terminal=terminal, stdin=stdin,
                  stdout=stdout, stderr=stderr)
