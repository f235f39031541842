# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of a controller's rows, and the file parsers and printers the controllers share.

A :class:`Knob` is one setting (a :class:`~limits.Limits` field) on one cgroup version: which files hold it, how
they read into the normal form of limits.py and which writes set it. Each controller file (memory, cpu, cpuset,
pids, io) owns a ``V1`` and a ``V2`` table of these, as runc's fs and fs2 own one file per controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import MAX, page_size

# v1 prints "unlimited" as PAGE_COUNTER_MAX * PAGE_SIZE (9223372036854771712 on 64-bit); anything this large
# can only be that value, so it is read as "max".
_V1_UNLIMITED_FROM = 2**62

Reader = Callable[[str], "str | None"]
Write = tuple  # (file name, text, device or None): device marks a keyed file (one line per device)


def first_line(text: str | None) -> str | None:
    """The first line of a cgroupfs file, stripped; None when the file does not exist."""
    if text is None:
        return None
    return text.strip().split("\n", 1)[0].strip()


def v1_bytes(text: str | None) -> int | str | None:
    """A v1 size file: bytes, or ``"max"`` for v1's unlimited (-1 or PAGE_COUNTER_MAX pages)."""
    line = first_line(text)
    if not line:
        return None
    value = int(line)
    return MAX if value < 0 or value >= _V1_UNLIMITED_FROM else value


def v2_bytes(text: str | None) -> int | str | None:
    """A v2 size or count file: an int, or ``"max"``."""
    line = first_line(text)
    if not line:
        return None
    return MAX if line == "max" else int(line)


def page_floor(value: Any) -> Any:
    """What the kernel stores for a memory size: whole pages (page_counter_memparse rounds down). We write the
    rounded value ourselves so that what we write is exactly what reads back."""
    if isinstance(value, int):
        page = page_size()
        return value - value % page
    return value


def v1_size_text(value: int | str) -> str:
    """A size as v1 takes it: -1 for unlimited, whole pages otherwise."""
    return "-1" if value == MAX else str(page_floor(value))


def v2_size_text(value: int | str) -> str:
    """A size as v2 takes it: ``max`` for unlimited, whole pages otherwise."""
    return "max" if value == MAX else str(page_floor(value))


def count_text(value: int | str) -> str:
    """A count (pids.max) as both versions take it."""
    return "max" if value == MAX else str(value)


def weight_line(text: str | None) -> int | None:
    """``"default 100"`` (v2 io.weight, BFQ) or ``"100"`` -> 100."""
    line = first_line(text)
    if not line:
        return None
    return int(line.split()[-1])


@dataclass(frozen=True)
class Knob:
    """One setting on one cgroup version: ``files`` (the first existing one is used for single-file knobs),
    ``read`` (reader -> normal form or None), ``writes`` (normal form, context -> ordered writes), ``effective``
    (requested normal form -> what ``read`` returns afterwards) and ``why_missing`` (why the file may not exist)."""

    files: tuple[str, ...]
    read: Callable[[Reader], Any]
    writes: Callable[[Any, dict], list]
    effective: Callable[[Any], Any] = lambda value: value
    why_missing: str = ""


def single(name: str, text: Callable[[Any], str]) -> Callable[[Any, dict], list]:
    """The writes of a knob that is one value in one file."""
    return lambda value, ctx: [(name, text(value), None)]


def int_or_none(text: str | None) -> int | None:
    """A statistics file holding one integer; None when missing or not a number."""
    line = first_line(text)
    if not line:
        return None
    try:
        return int(line)
    except ValueError:
        return None


def flat_key(text: str | None, key: str) -> int | None:
    """``oom_kill 3`` out of a flat-keyed file such as memory.events or memory.oom_control."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None
