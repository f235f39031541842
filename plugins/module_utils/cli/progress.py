# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-layer transfer progress for the command line: bytes, rate and ETA, redrawn in place on a terminal.

``Board`` takes the progress events of ``pull.pull_image`` (``start``, ``bytes``, ``layer``) and of the CLI's
push wrapper (``start``, ``bytes``, ``blob``, ``present``, ``mounted``) and keeps one line per layer. On each
redraw it moves the cursor back up over its own lines (``ESC [ n A``) and rewrites them (``ESC [ 2K`` clears a
line), so the block updates in place like ``docker pull``. Lines are cut to the terminal width: a wrapped line
would break the cursor arithmetic.

Only the CLI creates a board, and only when its output stream is a terminal (``wanted``): piped output stays
free of escape sequences. Events come from the download threads, so every entry point takes a lock.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

CURSOR_UP = "\x1b[{n}A"
CLEAR_LINE = "\r\x1b[2K"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(num: float) -> str:
    """``1536`` → ``1.5 KiB``; bytes below 1 KiB stay whole."""
    value = float(num)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def human_duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3725`` → ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def wanted(stream: IO[str] | None, quiet: bool = False, as_json: bool = False) -> bool:
    """Progress is drawn only on a terminal, and never with --quiet or --json."""
    if stream is None or quiet or as_json:
        return False
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


@dataclass
class _Item:
    digest: str
    size: int
    done_bytes: int = 0
    first_at: float | None = None
    last_at: float | None = None
    status: str = "waiting"        # waiting, active, done, present, mounted

    def line(self, verb: str, done_word: str) -> str:
        short = self.digest.split(":", 1)[-1][:12]
        if self.status == "present":
            return f"{short}  Already exists"
        if self.status == "mounted":
            return f"{short}  Mounted from another repository"
        if self.status == "done":
            total = human_size(self.size)
            if self.first_at is not None and self.last_at is not None and self.last_at > self.first_at:
                rate = self.done_bytes / (self.last_at - self.first_at)
                return f"{short}  {done_word}  {total}  {human_size(rate)}/s"
            return f"{short}  {done_word}  {total}"
        if self.status == "waiting":
            return f"{short}  Waiting  {human_size(self.size)}"
        pct = 100.0 * self.done_bytes / self.size if self.size else 100.0
        text = f"{short}  {verb}  {human_size(self.done_bytes)} / {human_size(self.size)}  {pct:3.0f}%"
        if self.first_at is not None and self.last_at is not None and self.last_at > self.first_at:
            rate = self.done_bytes / (self.last_at - self.first_at)
            text += f"  {human_size(rate)}/s"
            if rate > 0 and self.size > self.done_bytes:
                text += f"  ETA {human_duration((self.size - self.done_bytes) / rate)}"
        return text


class Board:
    """One redrawn line per layer on ``stream`` (a terminal). Call it with events; ``close()`` at the end."""

    def __init__(self, stream: IO[str], verb: str = "Downloading", done_word: str = "Pull complete",
                 clock: Callable[[], float] = time.monotonic, min_interval: float = 0.1, width: int | None = None):
        self.stream = stream
        self.verb = verb
        self.done_word = done_word
        self.clock = clock
        self.min_interval = min_interval
        self.width = width
        self.items: dict[str, _Item] = {}
        self.order: list[str] = []
        self.title = ""
        self._drawn = 0
        self._last_draw: float | None = None
        self._lock = threading.Lock()

    # -- events --------------------------------------------------------------------------------------------
    def __call__(self, event: dict) -> None:
        with self._lock:
            kind = event.get("event")
            force = True
            if kind == "start":
                self.title = str(event.get("name") or "")
                for layer in event.get("layers") or ():
                    self._item(layer["digest"], int(layer.get("size") or 0))
            elif kind == "bytes":
                item = self._item(event["digest"], int(event.get("size") or 0))
                now = self.clock()
                if item.first_at is None:
                    item.first_at = now
                item.last_at = now
                item.done_bytes += int(event.get("bytes") or 0)
                if event.get("restart"):
                    item.done_bytes = 0
                force = item.status != "active"  # the first chunk shows at once, the next ones throttled
                item.status = "active"
            elif kind in ("layer", "blob"):
                item = self._item(event["digest"], int(event.get("size") or 0))
                # A layer that never moved a byte was already in the store (or the registry).
                item.status = "done" if item.first_at is not None else "present"
            elif kind in ("present", "mounted"):
                self._item(event["digest"], int(event.get("size") or 0)).status = kind
            else:
                return
            self._draw(force)

    def _item(self, digest: str, size: int) -> _Item:
        item = self.items.get(digest)
        if item is None:
            item = self.items[digest] = _Item(digest, size)
            self.order.append(digest)
        elif size and not item.size:
            item.size = size
        return item

    # -- drawing -------------------------------------------------------------------------------------------
    def lines(self) -> list[str]:
        out = [f"{self.title}:"] if self.title else []
        out += [self.items[d].line(self.verb, self.done_word) for d in self.order]
        return out

    def _draw(self, force: bool) -> None:
        now = self.clock()
        if not force and self._last_draw is not None and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        width = self.width or shutil.get_terminal_size((100, 24)).columns
        parts = []
        if self._drawn:
            parts.append(CURSOR_UP.format(n=self._drawn))
        lines = self.lines()
        for line in lines:
            parts.append(CLEAR_LINE + line[: max(10, width - 1)] + "\n")
        self._drawn = len(lines)
        try:
            self.stream.write("".join(parts))
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not break the transfer

    def close(self) -> None:
        """Draw the final state once more (rates of the last chunks)."""
        with self._lock:
            if self.items:
                self._draw(True)
