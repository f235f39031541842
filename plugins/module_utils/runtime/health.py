# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Healthchecks with Docker's semantics (moby daemon/health.go, container/health.go), run by the supervisor.

``resolve(option, image_healthcheck)`` merges container_run's ``healthcheck`` with the image config's
``Healthcheck`` the way Docker merges them: a test given replaces the image's, ``["NONE"]`` (or ``disable``)
turns it off, and every duration or count left unset (or 0) comes from the image, else from Docker's defaults
(interval 30 s, timeout 30 s, retries 3, start period 0, start interval 5 s). Durations are seconds here; the
image config holds nanoseconds.

``Health`` is the state machine: ``starting`` until the first success (failures inside the start period are
logged but not counted), then ``healthy``; ``retries`` consecutive failures make it ``unhealthy``; the last five
results are kept, each output cut to 4096 bytes. ``Probe`` is one check run through the exec path
(runtime/exec.py), non-blocking so the supervisor keeps copying logs while it runs.
"""

from __future__ import annotations

import os
import time

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_START_INTERVAL = 5.0
MIN_DURATION = 0.001      # Docker refuses durations under 1 ms (except 0: "unset")
MAX_LOG_ENTRIES = 5       # moby maxLogEntries
MAX_OUTPUT = 4096         # moby maxOutputLen
STRAGGLER_GRACE = 0.2     # seconds the output pipe is still read after the check exited
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
ON_FAILURE = ("none", "kill", "restart")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value, what: str) -> float | None:
    """Seconds from a number (seconds) or a Go duration string (``1m30s``, ``500ms``); None for unset."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"healthcheck {what} {value!r}: expected seconds or a duration like 30s, 1m30s")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text, seconds, number = str(value).strip(), 0.0, ""
        i = 0
        if not text:
            return None
        try:
            seconds = float(text)
            text = ""
        except ValueError:
            pass
        while i < len(text):
            if text[i].isdigit() or text[i] == ".":
                number += text[i]
                i += 1
                continue
            unit = next((u for u in ("ms", "us", "µs", "ns", "h", "m", "s") if text.startswith(u, i)), None)
            if unit is None or not number:
                raise ValueError(f"healthcheck {what} {value!r}: expected seconds or a duration like 30s, 1m30s")
            seconds += float(number) * _UNITS[unit]
            number = ""
            i += len(unit)
        if number:
            raise ValueError(f"healthcheck {what} {value!r}: a unit is missing after {number} (s, m, h, ms)")
    if seconds < 0 or (0 < seconds < MIN_DURATION):
        raise ValueError(f"healthcheck {what} {value!r}: must be 0 (unset) or at least 1ms")
    return seconds


def _test_of(value, what: str) -> list[str] | None:
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, str):
        return ["CMD-SHELL", value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int, float)) for v in value):
        raise ValueError(f"{what} test {value!r}: use [CMD, ...], [CMD-SHELL, '...'], [NONE] or a string")
    test = [str(v) for v in value]
    kind = test[0]
    if kind == "NONE":
        return ["NONE"]
    if kind == "CMD-SHELL" and len(test) == 2 and test[1]:
        return test
    if kind == "CMD" and len(test) >= 2:
        return test
    raise ValueError(f"{what} test {value!r}: use [CMD, prog, args...], [CMD-SHELL, 'command line'] or [NONE]")


def resolve(option: dict | None, image: dict | None) -> dict | None:
    """The healthcheck a container runs (None: none), from container_run's ``healthcheck`` and the image
    config's ``Healthcheck``. Raises ValueError on a bad value."""
    option = dict(option or {})
    image = dict(image or {})
    unknown = set(option) - {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
    if unknown:
        raise ValueError(f"healthcheck: unknown keys {sorted(unknown)}; use test, interval, timeout, retries, "
                         "start_period, start_interval, disable")
    test = ["NONE"] if option.get("disable") else _test_of(option.get("test"), "healthcheck")
    if test is None:
        test = _test_of(image.get("Test"), "the image's Healthcheck")
    if test is None or test == ["NONE"]:
        return None

    def seconds(key: str, image_key: str, default: float) -> float:
        value = parse_duration(option.get(key), key)
        if not value:
            nanos = image.get(image_key)
            value = float(nanos) / 1e9 if isinstance(nanos, (int, float)) and nanos > 0 else None
        return value or default

    retries = option.get("retries")
    if retries is not None and (isinstance(retries, bool) or int(retries) < 0):
        raise ValueError(f"healthcheck retries {retries!r}: expected a count, 0 or more")
    retries = int(retries or 0) or int(image.get("Retries") or 0) or DEFAULT_RETRIES
    return {"test": test, "interval": seconds("interval", "Interval", DEFAULT_INTERVAL),
            "timeout": seconds("timeout", "Timeout", DEFAULT_TIMEOUT), "retries": retries,
            "start_period": seconds("start_period", "StartPeriod", 0.0),
            "start_interval": seconds("start_interval", "StartInterval", DEFAULT_START_INTERVAL)}


def argv_of(check: dict) -> list[str]:
    """The command a check runs: CMD's arguments, or CMD-SHELL's line through /bin/sh -c (Docker's)."""
    test = check["test"]
    return list(test[1:]) if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class Health:
    """The health of one run of a container (a restart starts a new one)."""

    def __init__(self, check: dict, started: float | None = None):
        self.check = check
        self.started = time.monotonic() if started is None else started
        self.status = STARTING
        self.failing_streak = 0
        self.log: list[dict] = []
        self.in_start_period = check.get("start_period", 0) > 0
        self.next_at = self.started + self._gap()

    def _gap(self) -> float:
        return self.check["start_interval"] if self.in_start_period else self.check["interval"]

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, start: str, end: str, exit_code: int, output: bytes, now: float | None = None) -> str | None:
        """Add one result; returns the new status when it changed."""
        now = time.monotonic() if now is None else now
        text = output[:MAX_OUTPUT].decode("utf-8", "replace")
        self.log = (self.log + [{"start": start, "end": end, "exit_code": exit_code, "output": text}])[-MAX_LOG_ENTRIES:]
        before = self.status
        if self.in_start_period and now - self.started >= self.check["start_period"]:
            self.in_start_period = False
        if exit_code == 0:
            self.status, self.failing_streak = HEALTHY, 0
            self.in_start_period = False     # the first success ends the start period (Docker)
        elif not self.in_start_period:
            self.failing_streak += 1
            if self.failing_streak >= self.check["retries"]:
                self.status = UNHEALTHY
        self.next_at = now + self._gap()
        return self.status if self.status != before else None

    def as_dict(self) -> dict:
        return {"status": self.status, "failing_streak": self.failing_streak, "log": list(self.log)}

    def stopped(self) -> dict:
        """The record once the container's run ended and its checks with it: ``unhealthy``, the streak and the
        log kept, as Docker reports a stopped container (moby's Health.CloseMonitorChannel: "unhealthy when the
        monitor has stopped"); a healthy status would outlive the service it spoke for. The next run starts
        ``starting`` again."""
        self.status = UNHEALTHY
        return self.as_dict()


class Probe:
    """One check running in the container: its combined output on one pipe, killed after the timeout."""

    def __init__(self, exec_module, target, config: dict, timeout: float):
        self.start = now_iso()
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.output = b""
        self.timed_out = False
        self.exited_at: float | None = None
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.proc = exec_module.spawn(target, config, null, write_fd, write_fd)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            os.close(null)
        self.out_fd: int | None = read_fd
        self.pidfd: int | None = os.pidfd_open(self.proc.monitor_pid)

    def fds(self) -> list[int]:
        return [fd for fd in (self.out_fd, self.proc.status_fd, self.pidfd) if fd is not None]

    def on_ready(self, fd: int) -> None:
        if fd == self.out_fd:
            data = os.read(fd, 65536)
            if data:
                if len(self.output) < MAX_OUTPUT:
                    self.output += data[:MAX_OUTPUT - len(self.output)]
            else:
                os.close(fd)
                self.out_fd = None
        elif fd == self.proc.status_fd:
            self.proc.read_status(0)
        elif fd == self.pidfd:
            os.close(fd)
            self.pidfd = None
            self.exited_at = time.monotonic()

    def check_timeout(self, now: float) -> None:
        if not self.timed_out and now >= self.deadline and self.pidfd is not None:
            self.timed_out = True
            self.proc.kill()

    @property
    def wake_at(self) -> float:
        """When the supervisor must look again: the timeout, or the end of the grace after the process exited."""
        return self.deadline if self.exited_at is None else self.exited_at + STRAGGLER_GRACE

    @property
    def done(self) -> bool:
        # The process ended and its output was read; a background child still holding the pipe gets a short
        # grace, then is not waited for (its check exited: that is the result, not a timeout).
        if self.pidfd is not None or self.proc.status_fd is not None:
            return False
        return (self.out_fd is None or self.timed_out
                or time.monotonic() >= (self.exited_at or 0.0) + STRAGGLER_GRACE)

    def finish(self) -> tuple[int, bytes]:
        """Reap it; (exit code, output). A timeout is -1 with Docker's message; a setup error is -1 too."""
        for fd in (self.out_fd, self.pidfd):
            if fd is not None:
                os.close(fd)
        self.out_fd = self.pidfd = None
        self.proc.kill()
        rc = self.proc.wait()
        self.proc.close()
        if self.timed_out:
            return -1, f"Health check exceeded timeout ({self.timeout:g}s)".encode()
        if self.proc.error:
            return -1, self.proc.error.encode()
        return rc, self.output

    def abandon(self) -> None:
        self.timed_out = True
        self.finish()


def wait_healthy(inspect, name: str, timeout: float, poll: float = 0.05):
    """Wait until container ``name`` (``inspect(name)`` → containers.ContainerInfo) reports ``healthy``; returns
    its info. A container without a healthcheck only has to run. Raises TimeoutError (with the last checks'
    outputs) after ``timeout`` seconds, RuntimeError at once when it stopped for good."""
    deadline = time.monotonic() + timeout
    while True:
        info = inspect(name)
        if info is None:
            raise RuntimeError(f"container {name}: removed while waiting for it to become healthy")
        if info.running and (info.health is None or info.health.get("status") == HEALTHY):
            return info
        if not info.supervised:
            raise RuntimeError(f"container {name} is {info.state} (exit code {info.exit_code}) while waiting for it "
                               f"to become healthy.{_last_outputs(info.health)} See its logs (container_info logs).")
        if time.monotonic() >= deadline:
            status = (info.health or {}).get("status", info.state)
            raise TimeoutError(f"container {name}: still {status} after {timeout:g}s.{_last_outputs(info.health)} "
                               "Fix the service or its healthcheck, or raise healthy_wait_timeout.")
        time.sleep(poll)


def _last_outputs(health: dict | None) -> str:
    log = (health or {}).get("log") or []
    if not log:
        return " No check has completed yet."
    shown = "; ".join(f"exit {e['exit_code']}: {e['output'].strip()[:200]!r}" for e in log[-3:])
    return f" Last checks: {shown}."
