# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The measuring part of the benchmark: timed child processes, alternating rounds, ratios.

``timed(argv)`` runs one command and returns its wall time and the RSS high-water mark of that command
(``ru_maxrss`` from ``wait4``, taken by GNU time so our own memory is not counted: see :func:`timed`).
``alternate(contenders, rounds)`` runs a warm-up of each contender, then rounds of A B C … in the same order;
the untimed ``prepare``/``cleanup`` hooks run around each sample.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class BenchError(RuntimeError):
    """A benchmarked command failed: the message names the command, its exit status and its stderr tail."""


@dataclass
class Proc:
    argv: list[str]
    seconds: float
    rss_kib: int
    rc: int
    stdout: str
    stderr: str
    cpu_s: float = 0.0      # user + system CPU of the command and every descendant it waited for (wait4)


GNU_TIME = "/usr/bin/time"


def timed(argv: list[str], *, env: Optional[dict[str, str]] = None, cwd: Optional[str] = None,
          check: bool = True, timeout: float = 600.0, stdin_data: Optional[bytes] = None) -> Proc:
    """Run ``argv``; wall time from fork to reaping, and the command's own peak RSS (KiB).

    A child forked from this Python process starts with our page tables, and Linux keeps that high-water mark
    across ``exec`` (``ru_maxrss`` of a ``true`` started from a 200 MB parent reads 200 MB). So the command is
    started by GNU time (a 1 MB process), which reports the ``wait4`` ``ru_maxrss`` of its own child: the same
    number ``getrusage(RUSAGE_CHILDREN)`` gives in a small parent that waited only for it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp, \
            tempfile.NamedTemporaryFile(mode="r", prefix="bench-rss-") as rss_file:
        if stdin_data:
            inp.write(stdin_data)
            inp.seek(0)
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv] if os.path.exists(GNU_TIME) else list(argv)
        start = time.perf_counter()
        popen = subprocess.Popen(wrapped, stdin=inp, stdout=out, stderr=err, env=env, cwd=cwd)
        timer = threading.Timer(timeout, popen.kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(popen.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        popen.returncode = os.waitstatus_to_exitcode(status)  # reaped here; tell Popen so it does not wait again
        rss = usage.ru_maxrss
        if wrapped is not argv:
            lines = rss_file.read().split()
            rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        out.seek(0)
        err.seek(0)
        proc = Proc(argv, seconds, rss, popen.returncode,
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                    usage.ru_utime + usage.ru_stime)
    if check and proc.rc != 0:
        why = proc.stderr.strip()[-1200:] or proc.stdout.strip()[-1200:]
        raise BenchError(f"{' '.join(argv[:4])} … exited {proc.rc} after {seconds:.1f}s: {why}")
    return proc


@dataclass
class Sample:
    """One timed run: seconds, the largest child's peak RSS (KiB) and anything else worth reporting."""

    seconds: float
    rss_kib: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _noop() -> None:
    return None


@dataclass
class Contender:
    key: str                                    # "ours", "skopeo+umoci", …
    label: str                                  # what exactly runs, for the report
    run: Callable[[], Sample]
    prepare: Callable[[], None] = _noop         # untimed, before each run
    cleanup: Callable[[], None] = _noop         # untimed, after each run
    warmup: bool = True                         # False: nothing to warm (fresh state every run anyway)
    warm: Optional[Callable[[], Sample]] = None  # what the warm-up runs instead of ``run`` (e.g. under a profiler)


def alternate(contenders: list[Contender], rounds: int, warmup: int = 1,
              log: Callable[[str], None] = print, title: str = "") -> dict[str, list[Sample]]:
    """Warm-up runs of each contender, then ``rounds`` rounds of A B C … Returns the timed samples per key."""
    samples: dict[str, list[Sample]] = {c.key: [] for c in contenders}
    for r in range(-warmup, rounds):
        for c in contenders:
            if r < 0 and not c.warmup:
                continue
            c.prepare()
            try:
                sample = (c.warm or c.run)() if r < 0 else c.run()
            finally:
                c.cleanup()
            tag = "warm-up" if r < 0 else f"round {r + 1}/{rounds}"
            log(f"  {title} {tag} {c.key}: {sample.seconds:.3f}s"
                + (f", peak RSS {sample.rss_kib / 1024:.0f} MiB" if sample.rss_kib else "")
                + "".join(f", {k}={v}" for k, v in sample.extra.items() if not isinstance(v, (dict, list))))
            if r >= 0:
                samples[c.key].append(sample)
    return samples


@dataclass
class Row:
    """One line of the report: ours vs a peer over paired rounds (ratio = ours / peer per round)."""

    case: str
    ours: str
    peer: str
    ours_values: list[float]
    peer_values: list[float]
    unit: str = "s"
    notes: str = ""
    group: str = ""
    ours_key: str = "ours"
    peer_key: str = ""
    breakdown: bool = False  # an engine-level timing shown under a shipped-front row, never as a headline

    @property
    def ratios(self) -> list[float]:
        return [o / p for o, p in zip(self.ours_values, self.peer_values) if p > 0]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours_values)

    @property
    def peer_median(self) -> float:
        return statistics.median(self.peer_values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case, "group": self.group, "ours_key": self.ours_key, "peer_key": self.peer_key,
            "ours": self.ours, "peer": self.peer, "unit": self.unit,
            "ours_values": self.ours_values, "peer_values": self.peer_values, "ratios": self.ratios,
            "ratio_median": self.ratio, "ratio_min": min(self.ratios), "ratio_max": max(self.ratios),
            "ours_median": self.ours_median, "peer_median": self.peer_median, "notes": self.notes,
            "breakdown": self.breakdown,
        }


def row(case: str, samples: dict[str, list[Sample]], ours: str, peer: str, labels: dict[str, str],
        unit: str = "s", notes: str = "", group: str = "", breakdown: bool = False) -> Row:
    """A :class:`Row` from :func:`alternate`'s samples (``unit`` "s" for seconds, "MiB" for peak RSS;
    ``breakdown``: an engine-level timing that explains a shipped-front row, not a headline)."""
    def values(key: str) -> list[float]:
        if unit == "MiB":
            return [s.rss_kib / 1024 for s in samples[key]]
        return [s.seconds for s in samples[key]]

    return Row(case, labels[ours], labels[peer], values(ours), values(peer), unit, notes, group, ours, peer, breakdown)


@dataclass
class Target:
    """A goal from a module issue, checked against the measured rows."""

    issue: str
    text: str
    measured: str
    met: Optional[bool]  # None: not measured in this run (the reason is in ``measured``)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_at_start": os.getloadavg(),
    }


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"
