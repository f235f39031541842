# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the parent side and the container's init share about the process itself: the status pipe's messages,
closing inherited fds, default signal dispositions, ``/proc/self`` opened only on procfs, the OOM score.

``spawn`` (the monitor), ``init_sequence`` (the init, before exec) and the supervisor (before it execs a fresh
interpreter) use these; the init calls them after ``pivot_root``, so nothing here imports lazily.
"""

from __future__ import annotations

import errno
import os
import resource
import stat

try:
    import _signal as signal  # plain ints, no enum: the start path's import economies (runtime/__init__.py)
except ImportError:  # pragma: no cover - every CPython has it
    import signal

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_dumps

EXIT_SETUP_FAILED = 125
PROC_SUPER_MAGIC = 0x9FA0
OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def reset_oom_score_adj(wanted: int) -> None:
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


def report(fd: int, **msg) -> None:
    try:
        os.write(fd, json_dumps(msg).encode() + b"\n")
    except OSError:
        pass


def keep_only_fds(keep: set[int]) -> None:
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


def reset_signals() -> None:
    """Default dispositions and an empty mask: exec keeps ignored signals (Python ignores SIGPIPE)."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class Step:
    """Names the step in any error raised inside it: ``mounting /proc: mount(...): Permission denied``."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        if exc is None or isinstance(exc, RuntimeSetupError):
            return False
        raise RuntimeSetupError(f"{self.what}: {exc}") from None


def set_rlimits(limits) -> None:
    """The container's rlimits (``[{"name", "soft", "hard"}]``, names with or without ``RLIMIT_``), set on
    ourselves before execve: the init's and an exec'd process's."""
    for item in limits or ():
        name = item["name"].upper()
        if not name.startswith("RLIMIT_"):
            name = "RLIMIT_" + name
        with Step(f"setting {name} to {item['soft']}:{item['hard']}"):
            resource.setrlimit(getattr(resource, name), (item["soft"], item["hard"]))


def find_executable(name: str, env: dict) -> str:
    """``name`` looked up in ``env``'s PATH (DEFAULT_PATH without one), in the root we are in now."""
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
