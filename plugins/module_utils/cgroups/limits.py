# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a caller asks of a cgroup, in one unit system on every hierarchy: :class:`Limits`, the size, CPU-list and
device parsers, runc's weight/shares conversions, and :func:`normalise_limits` (validation into normal form).

Nothing here reads cgroupfs (the page size and block device numbers aside). The controller files (memory, cpu,
cpuset, pids, io) turn the normal form into their v1 and v2 files.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

MAX = "max"
CPU_PERIOD = 100000  # microseconds; Docker and runc use the kernel's default period
CPU_QUOTA_MIN = 1000  # the kernel refuses a CFS quota below 1 ms (kernel/sched/core.c min_cfs_quota_period)
CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144  # v1 cpu.shares range (MIN_SHARES..MAX_SHARES)
CPU_WEIGHT_MIN, CPU_WEIGHT_MAX = 1, 10000  # v2 cpu.weight / io.weight range
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000  # v1 blkio.weight range
IO_KEYS = ("rbps", "wbps", "riops", "wiops")  # the rates of one io_max entry
# All checked with fullmatch: "$" also matches before a trailing newline, which the kernel then refuses.
DEVNUM_RE = re.compile(r"(\d+):(\d+)")
_LIST_RE = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?(?:i?b)?", re.IGNORECASE)
_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def page_size() -> int:
    """The kernel's page size; memory limits are rounded down to it by the kernel."""
    return os.sysconf("SC_PAGE_SIZE")


@dataclass
class Limits:
    """Requested limits. ``None`` leaves a setting alone; ``"max"`` (or ``-1``) means unlimited."""

    memory: int | str | None = None  # bytes or "max"
    memory_swap: int | str | None = None  # Docker semantics: memory+swap total, -1/"max" unlimited
    memory_reservation: int | str | None = None  # v1 memory.soft_limit_in_bytes, v2 memory.low
    cpus: float | str | None = None  # -> quota/period (period 100000); "max" removes the quota
    cpu_weight: int | None = None  # v2 1..10000; v1 cpu.shares via runc's conversion
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids: int | str | None = None
    io_weight: int | None = None  # v2 1..10000; v1 blkio.weight via runc's conversion
    io_max: list[dict] | None = None  # {device: "8:0" or "/dev/sda", rbps, wbps, riops, wiops}

    def requested(self) -> dict[str, Any]:
        """The settings that are not ``None``, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


LIMIT_KEYS = tuple(f.name for f in fields(Limits))


def parse_size(value: Any) -> int | str:
    """``"512m"``, ``"1g"``, ``"1.5g"``, ``"1024"``, ``1024``, ``"max"``, ``-1`` -> bytes or ``"max"``.

    Units are binary like Docker's ``RAMInBytes`` (``k`` = 1024; ``kb``, ``KiB`` accepted); a fraction of a byte
    is dropped. Raises :class:`CgroupError` for anything else.
    """
    if isinstance(value, bool):
        raise CgroupError(f"size {value!r}: expected bytes, a number with a unit (512m, 1g) or 'max'")
    if isinstance(value, int):
        if value == -1:
            return MAX
        if value < 0:
            raise CgroupError(f"size {value}: negative sizes are invalid; use 'max' (or -1) for unlimited")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise CgroupError(f"size {value!r}: expected a non-negative number of bytes or 'max'")
        return int(value)
    if not isinstance(value, str):
        raise CgroupError(f"size {value!r}: expected bytes, a number with a unit (512m, 1g) or 'max'")
    text = value.strip()
    if text.lower() in ("max", "-1", "unlimited"):
        return MAX
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise CgroupError(f"size {value!r}: expected bytes, a number with a unit (512m, 1g) or 'max'")
    number, unit = match.groups()
    scale = _UNITS[unit.lower() if unit else None]
    # Integers stay exact (no float rounding for large byte counts); fractions like 1.5g are floored to bytes.
    return int(float(number) * scale) if "." in number else int(number) * scale


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares -> v2 cpu.weight, runc's linear map of [2, 262144] onto [1, 10000]."""
    if shares <= 0:
        return 0
    shares = min(max(shares, CPU_SHARES_MIN), CPU_SHARES_MAX)
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """v2 cpu.weight -> the smallest v1 cpu.shares that :func:`shares_to_weight` maps back to ``weight``.

    The formula is many-to-one (about 26 share values per weight), so the smallest pre-image makes the round trip
    exact: ``shares_to_weight(weight_to_shares(w)) == w`` for every w in 1..10000.
    """
    return 2 + -((-(weight - 1) * 262142) // 9999)  # ceil without floats


def blkio_to_io_weight(blkio: int) -> int:
    """v1 blkio.weight (10..1000) -> v2 io.weight (1..10000), runc's ``ConvertBlkIOToIOWeightValue``."""
    if blkio <= 0:
        return 0
    return 1 + ((blkio - 10) * 9999) // 990


def io_weight_to_blkio(weight: int) -> int:
    """v2 io.weight -> the nearest v1 blkio.weight; v1 has 991 steps for 10000 weights, so it is approximate."""
    return min(BLKIO_WEIGHT_MAX, max(BLKIO_WEIGHT_MIN, 10 + round((weight - 1) * 990 / 9999)))


def cpus_to_quota(cpus: float, period: int = CPU_PERIOD) -> int:
    """1.5 CPUs -> 150000 us of quota per 100000 us period."""
    return int(round(cpus * period))


def quota_to_cpus(quota: int, period: int) -> float | str:
    """CFS quota/period -> CPUs (``"max"`` when the quota is -1/unlimited)."""
    if quota < 0 or period <= 0:
        return MAX
    return quota / period


def parse_cpu_list(text: str) -> list[int]:
    """``"0-2,4"`` -> ``[0, 1, 2, 4]`` (the kernel's list format, as in cpuset.cpus)."""
    text = text.strip()
    if not text:
        return []
    if not _LIST_RE.fullmatch(text):
        raise CgroupError(f"CPU/memory-node list {text!r}: expected a list like '0-3' or '0,2,4-5'")
    out: set[int] = set()
    for part in text.split(","):
        lo, _dash, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if last < first:
            raise CgroupError(f"CPU/memory-node list {text!r}: range {part} runs backwards")
        if last - first > 65535:
            raise CgroupError(f"CPU/memory-node list {text!r}: range {part} is too large")
        out.update(range(first, last + 1))
    return sorted(out)


def format_cpu_list(items: Iterable[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"0-2,4"`` (canonical, as the kernel prints it)."""
    nums = sorted(set(items))
    parts = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ",".join(parts)


def canonical_cpu_list(text: str) -> str:
    """Normalise a CPU/memory-node list so ``"1,0"`` and ``"0-1"`` compare equal."""
    return format_cpu_list(parse_cpu_list(text))


def _resolve_device(device: Any) -> str:
    """``"8:0"`` or ``"/dev/sda"`` -> ``"8:0"``; the path must be a block device."""
    if not isinstance(device, str) or not device:
        raise CgroupError(f"io_max device {device!r}: expected 'MAJOR:MINOR' (8:0) or a block device path")
    if "\0" in device:  # os.stat would raise ValueError
        raise CgroupError(f"io_max device {device!r}: a NUL is not allowed; give 'MAJOR:MINOR' or a block device path")
    if DEVNUM_RE.fullmatch(device):
        major, minor = device.split(":")
        return f"{int(major)}:{int(minor)}"
    try:
        st = os.stat(device)
    except OSError as exc:
        raise CgroupError(
            f"io_max device {device}: {exc.strerror}; give an existing block device or 'MAJOR:MINOR' "
            "(see /proc/partitions)"
        )
    if not stat.S_ISBLK(st.st_mode):
        raise CgroupError(f"io_max device {device}: not a block device; give a disk like /dev/sda or 'MAJOR:MINOR'")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


def _positive_or_max(key: str, value: Any, sized: bool) -> int | str:
    if sized:
        parsed = parse_size(value)
    elif isinstance(value, bool):
        raise CgroupError(f"{key} {value!r}: expected a positive integer or 'max'")
    elif isinstance(value, int):
        parsed = MAX if value == -1 else value
    elif isinstance(value, str) and value.strip().lower() in ("max", "-1"):
        parsed = MAX
    elif isinstance(value, str) and value.strip().isdigit():
        parsed = int(value.strip())
    else:
        raise CgroupError(f"{key} {value!r}: expected a positive integer or 'max'")
    if parsed != MAX and parsed <= 0:
        raise CgroupError(f"{key} {value!r}: must be positive; use 'max' (or -1) to remove the limit")
    return parsed


def _int_in_range(key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise CgroupError(f"{key} {value!r}: expected an integer from {lo} to {hi}")
    try:
        number = int(value)
    except ValueError:
        raise CgroupError(f"{key} {value!r}: expected an integer from {lo} to {hi}")
    if not lo <= number <= hi:
        raise CgroupError(f"{key} {number}: out of range, expected {lo} to {hi}")
    return number


def normalise_limits(limits: Limits) -> Limits:
    """Validate ``limits`` and return them in normal form (sizes in bytes, ``"max"`` for unlimited, canonical
    CPU lists, io_max devices as ``MAJ:MIN`` with every rate an int or ``"max"``).

    Raises :class:`CgroupError` naming the option for any value out of range.
    """
    page = page_size()
    out = Limits()
    for key in ("memory", "memory_swap"):
        value = getattr(limits, key)
        if value is not None:
            size = parse_size(value)
            if size != MAX and size < page:
                raise CgroupError(
                    f"{key} {value!r}: below one page ({page} bytes), the kernel could not run anything; "
                    "use a larger size or 'max'"
                )
            setattr(out, key, size)
    if limits.memory_reservation is not None:
        out.memory_reservation = parse_size(limits.memory_reservation)
    if (
        isinstance(out.memory, int)
        and isinstance(out.memory_swap, int)
        and out.memory_swap < out.memory
    ):
        raise CgroupError(
            f"memory_swap {out.memory_swap} is below memory {out.memory}: memory_swap is memory plus swap "
            "(Docker's meaning); set it to at least memory, or 'max'"
        )
    if limits.cpus is not None:
        cpus = limits.cpus
        if isinstance(cpus, str) and cpus.strip().lower() in ("max", "-1"):
            out.cpus = MAX
        else:
            try:
                number = float(cpus) if not isinstance(cpus, bool) else float("nan")
            except (TypeError, ValueError):
                number = float("nan")
            if number == -1:
                out.cpus = MAX
            elif not math.isfinite(number) or cpus_to_quota(number) < CPU_QUOTA_MIN:
                raise CgroupError(
                    f"cpus {cpus!r}: expected a number of CPUs of at least {CPU_QUOTA_MIN / CPU_PERIOD} "
                    "(the kernel's 1 ms quota minimum), or 'max'"
                )
            else:
                out.cpus = cpus_to_quota(number) / CPU_PERIOD
    if limits.cpu_weight is not None:
        out.cpu_weight = _int_in_range("cpu_weight", limits.cpu_weight, CPU_WEIGHT_MIN, CPU_WEIGHT_MAX)
    if limits.io_weight is not None:
        out.io_weight = _int_in_range("io_weight", limits.io_weight, CPU_WEIGHT_MIN, CPU_WEIGHT_MAX)
    for key in ("cpuset_cpus", "cpuset_mems"):
        value = getattr(limits, key)
        if value is not None:
            if not isinstance(value, str):
                value = str(value)
            text = canonical_cpu_list(value)
            if not text:
                raise CgroupError(f"{key} {value!r}: an empty list would leave no CPUs or memory nodes to run on")
            setattr(out, key, text)
    if limits.pids is not None:
        out.pids = _positive_or_max("pids", limits.pids, sized=False)
    if limits.io_max is not None:
        if not isinstance(limits.io_max, list):
            raise CgroupError("io_max: expected a list of {device, rbps, wbps, riops, wiops}")
        entries: dict[str, dict] = {}
        for entry in limits.io_max:
            if not isinstance(entry, dict) or "device" not in entry:
                raise CgroupError(f"io_max entry {entry!r}: expected a dict with 'device' and some of {IO_KEYS}")
            unknown = set(entry) - {"device", *IO_KEYS}
            if unknown:
                raise CgroupError(f"io_max entry for {entry['device']}: unknown keys {sorted(unknown)}")
            dev = _resolve_device(entry["device"])
            if dev in entries:
                raise CgroupError(f"io_max: device {entry['device']} ({dev}) is listed twice; merge the entries")
            rates = {}
            for key in IO_KEYS:
                if entry.get(key) is not None:
                    rates[key] = _positive_or_max(f"io_max {key} of {dev}", entry[key], sized=key.endswith("bps"))
            if not rates:
                raise CgroupError(f"io_max entry for {entry['device']}: give at least one of {', '.join(IO_KEYS)}")
            entries[dev] = rates
        out.io_max = [dict(device=dev, **rates) for dev, rates in sorted(entries.items(), key=device_key)]
    return out


def device_key(item: tuple[str, Any]) -> tuple[int, int]:
    """Sort key of a (``MAJ:MIN``, ...) pair: by device number, as the kernel lists its keyed files."""
    major, minor = item[0].split(":")
    return int(major), int(minor)
