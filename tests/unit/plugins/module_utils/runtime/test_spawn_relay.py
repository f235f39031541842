# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``spawn.relay``: the monitor's signal relay and exit, shared by a container's monitor and an exec's. Real
processes: a monitor forked here relays to a Python child that reports the signals it gets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.runtime import spawn

CHILD = """
import os, signal, sys, time
def on(signum, _frame):
    os.write(1, f"got {signum}\\n".encode())
    if signum == signal.SIGUSR1:
        os._exit(7)
for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGHUP):
    signal.signal(s, on)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
os.write(1, b"ready\\n")
while True:
    time.sleep(0.05)
"""


def start_monitor():
    """A forked monitor whose child runs CHILD with its stdout on a pipe; returns (monitor pid, read end)."""
    read_fd, write_fd = os.pipe()
    monitor = os.fork()
    if monitor == 0:  # pragma: no cover - child, observed through its effects
        try:
            os.close(read_fd)
            child = os.fork()
            if child == 0:
                os.dup2(write_fd, 1)
                os.execv(sys.executable, [sys.executable, "-S", "-c", CHILD])
            os.close(write_fd)
            spawn.relay(child)
        finally:
            os._exit(99)
    os.close(write_fd)
    return monitor, read_fd


def read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        assert time.monotonic() < deadline, data
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def monitor():
    pid, fd = start_monitor()
    assert read_until(fd, b"ready") == b"ready\n"
    yield pid, fd
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    os.close(fd)


def test_signals_reach_the_child_and_the_monitor_exits_with_its_code(monitor):
    pid, fd = monitor
    for sig in (signal.SIGUSR2, signal.SIGWINCH, signal.SIGHUP):
        os.kill(pid, sig)
        assert f"got {int(sig)}".encode() in read_until(fd, f"got {int(sig)}".encode())
    os.kill(pid, signal.SIGUSR1)
    assert f"got {int(signal.SIGUSR1)}".encode() in read_until(fd, b"\n")
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7


def test_a_child_killed_by_a_signal_ends_the_monitor_by_the_same_signal(monitor):
    pid, _fd = monitor
    os.kill(pid, signal.SIGTERM)            # relayed; the child dies of it (default disposition)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert not os.WCOREDUMP(status)


def test_kill_request_becomes_sigkill_of_the_child(monitor):
    pid, _fd = monitor
    os.kill(pid, spawn.KILL_REQUEST)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


RELAY_UNDER_WARNINGS_AS_ERRORS = """
import os
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import spawn
child = os.fork()
if child == 0:
    os._exit(7)
spawn.relay(child)
"""


def test_the_relay_exits_as_its_child_without_a_warning():
    """A container's exit goes through relay; a warning there (signals 32 and 33 in the mask) is formatted and
    written to the monitor's closed stderr on every start. Under ``-W error`` it would end the monitor."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # this test's view of the engine
    proc = subprocess.run([sys.executable, "-S", "-W", "error", "-c", RELAY_UNDER_WARNINGS_AS_ERRORS], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stderr) == (7, "")
