# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cgroups v1, v2 and hybrid behind one interface: read -> compare -> write only what differs.

Values are normalised the same way on every hierarchy so callers compare like with like:

* sizes are bytes (``int``) or ``"max"`` (unlimited); v1's "unlimited" (PAGE_COUNTER_MAX pages, printed as
  9223372036854771712) reads as ``"max"``;
* ``cpus`` is quota/period as a float, or ``"max"``; we always write period 100000 (Docker's, runc's);
* ``cpu_weight`` and ``io_weight`` are cgroup v2 weights (1..10000). On v1 they are converted with runc's formulas
  (opencontainers/cgroups ``ConvertCPUSharesToCgroupV2Value`` / ``ConvertBlkIOToIOWeightValue``) and the read
  value is the v1 value converted back, so a v1 weight reads back as the nearest value the formula can reach;
* ``memory_swap`` has Docker's meaning (memory + swap). v1 stores exactly that (``memory.memsw.limit_in_bytes``);
  v2 stores only the swap part (``memory.swap.max = memory_swap - memory``), as runc's
  ``ConvertMemorySwapToCgroupV2Value`` does.

Per controller, the cgroup lives in the hierarchy the kernel attached that controller to: on a pure v2 host
everything is under the one cgroup2 mount; on v1 each controller has its own mount; on a hybrid host (systemd's
layout: v1 controllers plus a cgroup2 mount at ``<root>/unified``) each controller is used where it is mounted.

Writes happen in a fixed order (memory before/after swap depending on direction, as runc's
``setMemoryAndSwap``); when one is refused, the files already written in the same call are restored from a
snapshot taken just before writing them, and cgroups created by the call are removed again.
"""

from __future__ import annotations

import errno
import math
import os
import re
import signal
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

MAX = "max"
CPU_PERIOD = 100000  # microseconds; Docker and runc use the kernel's default period
CPU_QUOTA_MIN = 1000  # the kernel refuses a CFS quota below 1 ms (kernel/sched/core.c min_cfs_quota_period)
CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144  # v1 cpu.shares range (MIN_SHARES..MAX_SHARES)
CPU_WEIGHT_MIN, CPU_WEIGHT_MAX = 1, 10000  # v2 cpu.weight / io.weight range
BLKIO_WEIGHT_MIN, BLKIO_WEIGHT_MAX = 10, 1000  # v1 blkio.weight range
# v1 prints "unlimited" as PAGE_COUNTER_MAX * PAGE_SIZE (9223372036854771712 on 64-bit); anything this large
# can only be that value, so it is read as "max".
_V1_UNLIMITED_FROM = 2**62
# Controllers this module manages, by their cgroup v2 name; "cpuacct" exists only on v1 (for cpu usage).
MANAGED = ("memory", "cpu", "cpuacct", "cpuset", "pids", "io")
# v1 mounts controllers under their own names; only "io" was called "blkio" there.
_V1_NAME = {"io": "blkio"}
_KNOWN_V1 = frozenset(
    "cpu cpuacct cpuset memory devices freezer net_cls net_prio blkio perf_event hugetlb pids rdma misc".split()
)
_IO_KEYS = ("rbps", "wbps", "riops", "wiops")
_V1_THROTTLE = {
    "rbps": "blkio.throttle.read_bps_device",
    "wbps": "blkio.throttle.write_bps_device",
    "riops": "blkio.throttle.read_iops_device",
    "wiops": "blkio.throttle.write_iops_device",
}
# All checked with fullmatch: "$" also matches before a trailing newline, which the kernel then refuses.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DEVNUM_RE = re.compile(r"(\d+):(\d+)")
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
KEY_CONTROLLER = {
    "memory": "memory",
    "memory_swap": "memory",
    "memory_reservation": "memory",
    "cpus": "cpu",
    "cpu_weight": "cpu",
    "cpuset_cpus": "cpuset",
    "cpuset_mems": "cpuset",
    "pids": "pids",
    "io_weight": "io",
    "io_max": "io",
}


# ---------------------------------------------------------------------------------------------------------------
# Conversions (pure functions, tested by tables)
# ---------------------------------------------------------------------------------------------------------------


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


def container_cgroup_path(name: str) -> str:
    """The cgroup of container ``name`` of container_run: ``dockerless/<name>`` (shared convention)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > 128:
        raise CgroupError(
            f"container name {name!r}: expected letters, digits, '_', '.' or '-' (not first), at most 128 characters"
        )
    return f"dockerless/{name}"


def validate_path(path: str) -> str:
    """A cgroup path relative to the hierarchy root -> its normal form, or :class:`CgroupError`.

    A leading ``/`` is accepted (``/dockerless/web`` as in /proc/PID/cgroup); ``..``, ``.``, empty components,
    NUL and the root itself are refused: this module never manages the root cgroup or leaves the hierarchy.
    """
    if not isinstance(path, str):
        raise CgroupError(f"cgroup path {path!r}: expected a string like 'dockerless/web'")
    parts = path.strip("/").split("/")
    if path.strip("/") == "":
        raise CgroupError("cgroup path '/': refusing to manage the root cgroup; give a path like 'dockerless/web'")
    for part in parts:
        # Control characters too: the kernel refuses a '\n' in a cgroup name, and none is a sane name.
        if part in ("", ".", "..") or len(part.encode()) > 255 or any(c < " " or c == "\x7f" for c in part):
            raise CgroupError(
                f"cgroup path {path!r}: component {part!r} is not allowed (no '..', '.', empty or over-long "
                "components, no control characters); give a path below the hierarchy root like 'dockerless/web'"
            )
    return "/".join(parts)


def _resolve_device(device: Any) -> str:
    """``"8:0"`` or ``"/dev/sda"`` -> ``"8:0"``; the path must be a block device."""
    if not isinstance(device, str) or not device:
        raise CgroupError(f"io_max device {device!r}: expected 'MAJOR:MINOR' (8:0) or a block device path")
    if "\0" in device:  # os.stat would raise ValueError
        raise CgroupError(f"io_max device {device!r}: a NUL is not allowed; give 'MAJOR:MINOR' or a block device path")
    if _DEVNUM_RE.fullmatch(device):
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
                raise CgroupError(f"io_max entry {entry!r}: expected a dict with 'device' and some of {_IO_KEYS}")
            unknown = set(entry) - {"device", *_IO_KEYS}
            if unknown:
                raise CgroupError(f"io_max entry for {entry['device']}: unknown keys {sorted(unknown)}")
            dev = _resolve_device(entry["device"])
            if dev in entries:
                raise CgroupError(f"io_max: device {entry['device']} ({dev}) is listed twice; merge the entries")
            rates = {}
            for key in _IO_KEYS:
                if entry.get(key) is not None:
                    rates[key] = _positive_or_max(f"io_max {key} of {dev}", entry[key], sized=key.endswith("bps"))
            if not rates:
                raise CgroupError(f"io_max entry for {entry['device']}: give at least one of {', '.join(_IO_KEYS)}")
            entries[dev] = rates
        out.io_max = [dict(device=dev, **rates) for dev, rates in sorted(entries.items(), key=_devkey)]
    return out


def _devkey(item: tuple[str, Any]) -> tuple[int, int]:
    major, minor = item[0].split(":")
    return int(major), int(minor)


# ---------------------------------------------------------------------------------------------------------------
# Hierarchy detection
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """Where one controller lives: cgroup ``version`` (1 or 2) and the hierarchy's mount directory."""

    controller: str  # the v2 name (io, not blkio)
    version: int
    path: str


@dataclass
class Hierarchy:
    """The cgroup layout under ``root``: ``mode`` is ``v1``, ``v2`` or ``hybrid``."""

    root: str
    mode: str
    controllers: dict[str, Mount] = field(default_factory=dict)
    unified: str | None = None  # the cgroup2 mount (root on v2, root/unified on hybrid), None on pure v1

    def mount(self, controller: str) -> Mount | None:
        return self.controllers.get(controller)

    def describe(self) -> str:
        names = ", ".join(f"{c} (v{m.version})" for c, m in sorted(self.controllers.items())) or "none"
        return f"{self.mode} hierarchy at {self.root} with controllers: {names}"


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CgroupError(f"reading {path}: {exc.strerror}; check that cgroupfs is mounted and readable (run as root)")


def detect(cgroup_root: str = "/sys/fs/cgroup") -> Hierarchy:
    """Find which hierarchy each controller is on: pure v2 (``cgroup.controllers`` at the root), v1 (one
    directory per controller mount, combined mounts like ``cpu,cpuacct`` included) or hybrid (v1 plus a cgroup2
    mount, usually ``unified``, whose ``cgroup.controllers`` lists what is not bound to v1)."""
    root = os.path.abspath(cgroup_root)
    if not os.path.isdir(root):
        raise CgroupError(f"cgroup root {root}: not a directory; is cgroupfs mounted? Pass cgroup_root to override")
    top = _read_text(os.path.join(root, "cgroup.controllers"))
    if top is not None:
        ctrls = {c: Mount(c, 2, root) for c in top.split()}
        return Hierarchy(root=root, mode="v2", controllers=ctrls, unified=root)
    controllers: dict[str, Mount] = {}
    unified = None
    unified_ctrls: list[str] = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if not os.path.isdir(path):
            continue
        v2 = _read_text(os.path.join(path, "cgroup.controllers"))
        if v2 is not None:
            if unified is None:
                unified, unified_ctrls = path, v2.split()
            continue
        if not os.path.exists(os.path.join(path, "cgroup.procs")):
            continue
        real = os.path.realpath(path)
        for name in os.path.basename(real).split(","):
            if name not in _KNOWN_V1:
                continue  # named hierarchies such as name=systemd carry no controller
            logical = "io" if name == "blkio" else name
            controllers.setdefault(logical, Mount(logical, 1, real))
    for name in unified_ctrls:
        controllers.setdefault(name, Mount(name, 2, unified))
    if not controllers and unified is None:
        raise CgroupError(
            f"cgroup root {root}: no cgroup v1 controller mounts and no cgroup2 mount found; mount cgroupfs or "
            "pass cgroup_root"
        )
    mode = "hybrid" if unified is not None and any(m.version == 1 for m in controllers.values()) else "v1"
    if unified is not None and mode == "v1":
        mode = "v2"  # only a cgroup2 mount below root: treat it as the v2 hierarchy
    return Hierarchy(root=root, mode=mode, controllers=controllers, unified=unified)


# ---------------------------------------------------------------------------------------------------------------
# Knobs: one row per (key, cgroup version): read -> normal form, write <- normal form
# ---------------------------------------------------------------------------------------------------------------

Reader = Callable[[str], "str | None"]
Write = tuple  # (file name, text, device or None): device marks a keyed file (one line per device)


def _first_line(text: str | None) -> str | None:
    if text is None:
        return None
    return text.strip().split("\n", 1)[0].strip()


def _v1_bytes(text: str | None) -> int | str | None:
    line = _first_line(text)
    if not line:
        return None
    value = int(line)
    return MAX if value < 0 or value >= _V1_UNLIMITED_FROM else value


def _v2_bytes(text: str | None) -> int | str | None:
    line = _first_line(text)
    if not line:
        return None
    return MAX if line == "max" else int(line)


def _page_floor(value: Any) -> Any:
    """What the kernel stores for a memory size: whole pages (page_counter_memparse rounds down). We write the
    rounded value ourselves so that what we write is exactly what reads back."""
    if isinstance(value, int):
        page = page_size()
        return value - value % page
    return value


def _v1_size_text(value: int | str) -> str:
    return "-1" if value == MAX else str(_page_floor(value))


def _v2_size_text(value: int | str) -> str:
    return "max" if value == MAX else str(_page_floor(value))


def _count_text(value: int | str) -> str:
    return "max" if value == MAX else str(value)


def _weight_line(text: str | None) -> int | None:
    """``"default 100"`` (v2 io.weight, BFQ) or ``"100"`` -> 100."""
    line = _first_line(text)
    if not line:
        return None
    return int(line.split()[-1])


def _v1_throttle(read: Reader) -> list[dict] | None:
    if read(_V1_THROTTLE["rbps"]) is None:
        return None
    devices: dict[str, dict] = {}
    for key, name in _V1_THROTTLE.items():
        for line in (read(name) or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and _DEVNUM_RE.fullmatch(parts[0]):
                devices.setdefault(parts[0], {k: MAX for k in _IO_KEYS})[key] = int(parts[1])
    return [dict(device=d, **r) for d, r in sorted(devices.items(), key=_devkey)]


def _v2_iomax(read: Reader) -> list[dict] | None:
    text = read("io.max")
    if text is None:
        return None
    devices: dict[str, dict] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or not _DEVNUM_RE.fullmatch(parts[0]):
            continue
        rates = {k: MAX for k in _IO_KEYS}
        for token in parts[1:]:
            key, _eq, value = token.partition("=")
            if key in rates:
                rates[key] = MAX if value == "max" else int(value)
        devices[parts[0]] = rates
    return [dict(device=d, **r) for d, r in sorted(devices.items(), key=_devkey)]


def _v1_cpus(read: Reader) -> float | str | None:
    quota, period = _first_line(read("cpu.cfs_quota_us")), _first_line(read("cpu.cfs_period_us"))
    if not quota or not period:
        return None
    return quota_to_cpus(int(quota), int(period))


def _v2_cpus(read: Reader) -> float | str | None:
    line = _first_line(read("cpu.max"))
    if not line:
        return None
    quota, _space, period = line.partition(" ")
    return MAX if quota == "max" else quota_to_cpus(int(quota), int(period or CPU_PERIOD))


def _v2_swap_total(read: Reader) -> int | str | None:
    swap = _v2_bytes(read("memory.swap.max"))
    memory = _v2_bytes(read("memory.max"))
    if swap is None or memory is None:
        return None
    if swap == MAX or memory == MAX:
        return MAX
    return memory + swap


def _v2_swap_writes(value: Any, ctx: dict) -> list[Write]:
    if value == MAX:
        return [("memory.swap.max", "max", None)]
    memory = ctx.get("memory")
    if not isinstance(memory, int):
        raise CgroupError(
            "memory_swap needs a memory limit on cgroup v2 (memory.swap.max holds memory_swap - memory); "
            "set memory as well"
        )
    return [("memory.swap.max", str(_page_floor(value) - memory), None)]


def _io_rate_text(value: Any) -> str:
    return "max" if value == MAX else str(value)


def _v1_iomax_writes(value: list[dict], ctx: dict) -> list[Write]:
    out = []
    for entry in value:
        for key in _IO_KEYS:
            if key in entry:
                # v1 removes a rule when its value is 0
                out.append((_V1_THROTTLE[key], f"{entry['device']} {0 if entry[key] == MAX else entry[key]}",
                            entry["device"]))
    return out


def _v2_iomax_writes(value: list[dict], ctx: dict) -> list[Write]:
    out = []
    for entry in value:
        tokens = " ".join(f"{k}={_io_rate_text(entry[k])}" for k in _IO_KEYS if k in entry)
        out.append(("io.max", f"{entry['device']} {tokens}", entry["device"]))
    return out


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


def _single(name: str, text: Callable[[Any], str]) -> Callable[[Any, dict], list]:
    return lambda value, ctx: [(name, text(value), None)]


V1_KNOBS: dict[str, Knob] = {
    "memory": Knob(
        ("memory.limit_in_bytes",),
        lambda r: _v1_bytes(r("memory.limit_in_bytes")),
        _single("memory.limit_in_bytes", _v1_size_text),
        _page_floor,
    ),
    "memory_swap": Knob(
        ("memory.memsw.limit_in_bytes",),
        lambda r: _v1_bytes(r("memory.memsw.limit_in_bytes")),
        _single("memory.memsw.limit_in_bytes", _v1_size_text),
        _page_floor,
        "swap accounting is off in this kernel (CONFIG_MEMCG_SWAP, or booted with swapaccount=0); boot with "
        "swapaccount=1 or leave memory_swap unset",
    ),
    "memory_reservation": Knob(
        ("memory.soft_limit_in_bytes",),
        lambda r: _v1_bytes(r("memory.soft_limit_in_bytes")),
        _single("memory.soft_limit_in_bytes", _v1_size_text),
        _page_floor,
    ),
    "cpus": Knob(
        ("cpu.cfs_quota_us", "cpu.cfs_period_us"),
        _v1_cpus,
        lambda v, ctx: [("cpu.cfs_quota_us", "-1", None)]
        if v == MAX
        else [("cpu.cfs_period_us", str(CPU_PERIOD), None), ("cpu.cfs_quota_us", str(cpus_to_quota(v)), None)],
        why_missing="the kernel was built without CFS bandwidth control (CONFIG_CFS_BANDWIDTH); leave cpus unset",
    ),
    "cpu_weight": Knob(
        ("cpu.shares",),
        lambda r: None if _first_line(r("cpu.shares")) is None else shares_to_weight(int(_first_line(r("cpu.shares")))),
        _single("cpu.shares", lambda v: str(weight_to_shares(v))),
    ),
    "cpuset_cpus": Knob(
        ("cpuset.cpus",),
        lambda r: None if r("cpuset.cpus") is None else canonical_cpu_list(r("cpuset.cpus")),
        _single("cpuset.cpus", str),
    ),
    "cpuset_mems": Knob(
        ("cpuset.mems",),
        lambda r: None if r("cpuset.mems") is None else canonical_cpu_list(r("cpuset.mems")),
        _single("cpuset.mems", str),
    ),
    "pids": Knob(("pids.max",), lambda r: _v2_bytes(r("pids.max")), _single("pids.max", _count_text)),
    "io_weight": Knob(
        ("blkio.weight", "blkio.bfq.weight"),
        lambda r: None
        if _weight_line(r("blkio.weight") or r("blkio.bfq.weight")) is None
        else blkio_to_io_weight(_weight_line(r("blkio.weight") or r("blkio.bfq.weight"))),
        lambda v, ctx: [(ctx["_file"], str(io_weight_to_blkio(v)), None)],
        lambda v: blkio_to_io_weight(io_weight_to_blkio(v)),
        "the block devices use no proportional-weight I/O scheduler (CFQ or BFQ); choose BFQ for the disk "
        "(/sys/block/<dev>/queue/scheduler) or leave io_weight unset",
    ),
    "io_max": Knob(
        tuple(_V1_THROTTLE.values()),
        _v1_throttle,
        _v1_iomax_writes,
        why_missing="the kernel was built without block I/O throttling (CONFIG_BLK_DEV_THROTTLING); leave io_max "
        "unset",
    ),
}

V2_KNOBS: dict[str, Knob] = {
    "memory": Knob(("memory.max",), lambda r: _v2_bytes(r("memory.max")), _single("memory.max", _v2_size_text),
                   _page_floor),
    "memory_swap": Knob(
        ("memory.swap.max",),
        _v2_swap_total,
        _v2_swap_writes,
        _page_floor,
        "swap accounting is off in this kernel (CONFIG_MEMCG_SWAP, or booted with swapaccount=0); leave "
        "memory_swap unset",
    ),
    "memory_reservation": Knob(
        ("memory.low",), lambda r: _v2_bytes(r("memory.low")), _single("memory.low", _v2_size_text), _page_floor
    ),
    "cpus": Knob(
        ("cpu.max",),
        _v2_cpus,
        _single("cpu.max", lambda v: "max" if v == MAX else f"{cpus_to_quota(v)} {CPU_PERIOD}"),
        why_missing="the kernel was built without CFS bandwidth control (CONFIG_CFS_BANDWIDTH); leave cpus unset",
    ),
    "cpu_weight": Knob(("cpu.weight",), lambda r: _weight_line(r("cpu.weight")), _single("cpu.weight", str)),
    "cpuset_cpus": Knob(
        ("cpuset.cpus",),
        lambda r: None if r("cpuset.cpus") is None else canonical_cpu_list(r("cpuset.cpus")),
        _single("cpuset.cpus", str),
    ),
    "cpuset_mems": Knob(
        ("cpuset.mems",),
        lambda r: None if r("cpuset.mems") is None else canonical_cpu_list(r("cpuset.mems")),
        _single("cpuset.mems", str),
    ),
    "pids": Knob(("pids.max",), lambda r: _v2_bytes(r("pids.max")), _single("pids.max", _count_text)),
    "io_weight": Knob(
        ("io.weight",),
        lambda r: _weight_line(r("io.weight")),
        _single("io.weight", lambda v: f"default {v}"),
        why_missing="the kernel has no io.weight (CONFIG_BLK_CGROUP_IOCOST) for this cgroup; leave io_weight unset",
    ),
    "io_max": Knob(
        ("io.max",),
        _v2_iomax,
        _v2_iomax_writes,
        why_missing="the kernel was built without block I/O throttling (CONFIG_BLK_DEV_THROTTLING); leave io_max "
        "unset",
    ),
}

# What an errno from the kernel means for a key, and what to do next.
_HINTS = {
    ("memory", errno.EBUSY): "the cgroup already uses more memory than that and the kernel could not reclaim it; "
    "raise the limit or stop some processes first",
    ("memory", errno.EINVAL): "on cgroup v1 memory may not exceed memory_swap (memory.memsw.limit_in_bytes); "
    "raise memory_swap too",
    ("memory_swap", errno.EINVAL): "memory_swap must be at least memory; raise memory_swap or lower memory",
    ("memory_swap", errno.EBUSY): "the cgroup already uses more memory+swap than that; raise the limit",
    ("cpus", errno.EINVAL): "the quota conflicts with the parent cgroup's cpu.cfs_quota_us or is out of range; "
    "check the parent's limit",
    ("cpuset_cpus", errno.EINVAL): "CPUs must exist and be a subset of the parent cgroup's cpuset",
    ("cpuset_cpus", errno.ERANGE): "CPUs must exist and be a subset of the parent cgroup's cpuset",
    ("cpuset_mems", errno.EINVAL): "memory nodes must exist and be a subset of the parent cgroup's cpuset",
    ("cpuset_mems", errno.ERANGE): "memory nodes must exist and be a subset of the parent cgroup's cpuset",
    ("io_max", errno.ENODEV): "no such block device (whole disks only, see /proc/partitions)",
    ("io_max", errno.EINVAL): "the device is not a whole disk or the value is out of range",
    ("io_weight", errno.EINVAL): "the value is out of range for this I/O scheduler",
}


def _errmsg(exc: OSError) -> str:
    return exc.strerror or str(exc)


# ---------------------------------------------------------------------------------------------------------------
# The cgroup
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Written:
    """A write done by apply() and the text that restores it: the previous first line for single-value files, or
    the device's previous line for keyed files (v1 throttle files, v2 io.max)."""

    path: str
    restore: str


class Cgroup:
    """One cgroup, by path relative to the hierarchy root, on whatever hierarchy the host has."""

    def __init__(self, path: str, cgroup_root: str = "/sys/fs/cgroup", hierarchy: Hierarchy | None = None):
        self.path = validate_path(path)
        self.hierarchy = hierarchy if hierarchy is not None else detect(cgroup_root)
        self.root = self.hierarchy.root

    # -- locations --------------------------------------------------------------------------------------------

    def _dir_in(self, mount_path: str) -> str:
        target = os.path.join(mount_path, *self.path.split("/"))
        # cgroupfs has no symlinks; a fake or tampered tree might. Never act outside the mount.
        real_mount = os.path.realpath(mount_path)
        if os.path.commonpath([os.path.realpath(target), real_mount]) != real_mount:
            raise CgroupError(f"cgroup {self.path}: {target} resolves outside {mount_path}; refusing to use it")
        return target

    def _mounts(self) -> list[str]:
        """The distinct hierarchy mounts this cgroup lives in (one on v2, one per controller mount on v1)."""
        mounts = []
        for ctrl in MANAGED:
            mount = self.hierarchy.mount(ctrl)
            if mount is not None and mount.path not in mounts:
                mounts.append(mount.path)
        if self.hierarchy.mode == "v2" and self.hierarchy.unified not in mounts:
            mounts.append(self.hierarchy.unified)
        return mounts

    def controller_dir(self, controller: str) -> str | None:
        """Directory of this cgroup for ``controller`` (v2 name), or None when the controller isn't mounted."""
        mount = self.hierarchy.mount(controller)
        return None if mount is None else self._dir_in(mount.path)

    def dirs(self) -> list[str]:
        """Every directory of this cgroup, one per hierarchy it belongs to."""
        return [self._dir_in(m) for m in self._mounts()]

    def exists(self) -> bool:
        """True when the cgroup exists in at least one of its hierarchies."""
        return any(os.path.isdir(d) for d in self.dirs())

    def missing_dirs(self) -> list[str]:
        """The directories apply() would have to create."""
        return [d for d in self.dirs() if not os.path.isdir(d)]

    def _version(self, controller: str) -> int:
        mount = self.hierarchy.mount(controller)
        return mount.version if mount else 0

    def _knob(self, key: str) -> Knob:
        return (V1_KNOBS if self._version(KEY_CONTROLLER[key]) == 1 else V2_KNOBS)[key]

    def _reader(self, controller: str) -> Reader:
        directory = self.controller_dir(controller)

        def read(name: str) -> str | None:
            return None if directory is None else _read_text(os.path.join(directory, name))

        return read

    # -- reading ----------------------------------------------------------------------------------------------

    def _require_controllers(self, keys: Iterable[str]) -> None:
        for key in keys:
            ctrl = KEY_CONTROLLER[key]
            if self.hierarchy.mount(ctrl) is None:
                raise CgroupError(
                    f"{key} on cgroup {self.path}: the {_V1_NAME.get(ctrl, ctrl)} controller is not available "
                    f"({self.hierarchy.describe()}); enable or mount it, or leave {key} unset"
                )

    def read_limits(self) -> dict:
        """Current values in normal form, keyed like :class:`Limits`; None where unknown or not available."""
        if not self.exists():
            raise CgroupError(f"reading limits of cgroup {self.path}: it does not exist under {self.root}; create it")
        out = {}
        for key in LIMIT_KEYS:
            ctrl = KEY_CONTROLLER[key]
            try:
                out[key] = self._knob(key).read(self._reader(ctrl)) if self.hierarchy.mount(ctrl) else None
            except (ValueError, IndexError) as exc:
                raise CgroupError(f"reading {key} of cgroup {self.path}: unexpected content ({exc}); check the kernel")
        return out

    # -- deciding ---------------------------------------------------------------------------------------------

    def _wanted(self, limits: Limits, current: dict) -> Limits:
        """Validated limits plus runc's rule: unlimited memory with swap left unset also lifts a swap limit
        (on v1 memory above memory.memsw.limit_in_bytes would be refused otherwise). Checks memory_swap against
        the memory limit it will sit on."""
        wanted = normalise_limits(limits)
        self._require_controllers(wanted.requested())
        if wanted.memory == MAX and wanted.memory_swap is None and current.get("memory_swap") not in (None, MAX):
            wanted.memory_swap = MAX
        swap = wanted.memory_swap
        if swap is not None and swap != MAX:
            memory = wanted.memory if wanted.memory is not None else current.get("memory", MAX)
            if self._version("memory") == 2 and not isinstance(memory, int):
                raise CgroupError(
                    f"memory_swap on cgroup {self.path}: cgroup v2 stores swap apart from memory "
                    "(memory.swap.max = memory_swap - memory), so a memory limit is needed; set memory as well"
                )
            if isinstance(memory, int) and swap < memory:
                raise CgroupError(
                    f"memory_swap {swap} on cgroup {self.path} is below its memory limit {memory}: memory_swap is "
                    "memory plus swap; raise memory_swap or lower memory"
                )
        now_swap = current.get("memory_swap")
        if (
            self._version("memory") == 1
            and swap is None
            and isinstance(wanted.memory, int)
            and isinstance(now_swap, int)
            and _page_floor(wanted.memory) > now_swap
        ):
            raise CgroupError(
                f"memory {wanted.memory} on cgroup {self.path} is above its current memory_swap {now_swap}: cgroup "
                "v1 keeps memory <= memory+swap (memory.memsw.limit_in_bytes); set memory_swap as well"
            )
        return wanted

    def _diff(self, wanted: Limits, current: dict) -> dict[str, tuple[Any, Any]]:
        """{key: (before, after)} for every requested key; ``after`` is what read_limits() returns once written.
        For io_max, both sides list only the requested devices (with all four rates)."""
        out = {}
        for key, value in wanted.requested().items():
            if key == "io_max":
                now = {e["device"]: e for e in current.get("io_max") or []}
                unlimited = {k: MAX for k in _IO_KEYS}
                before = [now.get(e["device"], dict(device=e["device"], **unlimited)) for e in value]
                after = [{**b, **e} for b, e in zip(before, value)]
            else:
                before, after = current.get(key), self._knob(key).effective(value)
            out[key] = (before, after)
        return out

    def _missing_file(self, key: str) -> str | None:
        """The knob's file when the controller is active on this cgroup but the file does not exist."""
        ctrl = KEY_CONTROLLER[key]
        directory = self.controller_dir(ctrl)
        if directory is None or not os.path.isdir(directory):
            return None
        knob = self._knob(key)
        if any(os.path.exists(os.path.join(directory, f)) for f in knob.files):
            return None
        if self._version(ctrl) == 2:
            enabled = (_read_text(os.path.join(directory, "cgroup.controllers")) or "").split()
            if ctrl not in enabled:
                return None  # the parent does not enable it yet: apply() will
        return os.path.join(directory, knob.files[0])

    def _check_files(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._missing_file(key)
            if path:
                why = self._knob(key).why_missing or "the controller does not offer it on this kernel"
                raise CgroupError(f"{key} on cgroup {self.path}: {path} does not exist: {why}")

    def plan(self, limits: Limits) -> dict:
        """{key: (before, after)} for the keys apply() would change. When the cgroup does not exist yet, every
        requested key is listed with ``before`` None. Writes nothing."""
        if self.missing_dirs():
            wanted = self._wanted(limits, {})
            return {key: (None, after) for key, (_b, after) in self._diff(wanted, {}).items()}
        current = self.read_limits()
        wanted = self._wanted(limits, current)
        self._check_files(wanted.requested())
        return {key: pair for key, pair in self._diff(wanted, current).items() if pair[0] != pair[1]}

    # -- acting -----------------------------------------------------------------------------------------------

    # The three calls that change cgroupfs. They are static methods so the unit tests' fake cgroupfs can stand in
    # for the kernel (files appearing on mkdir, "+memory" edits, keyed files); nothing else touches the tree.

    @staticmethod
    def _write(path: str, text: str) -> None:
        """One write(2); cgroupfs reports a refused value as the write's error, which buffering would hide."""
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, (text or "\n").encode())
        finally:
            os.close(fd)

    @staticmethod
    def _mkdir(path: str) -> None:
        os.mkdir(path, 0o755)

    @staticmethod
    def _rmdir(path: str) -> None:
        os.rmdir(path)

    def _ordered(self, keys: Iterable[str], targets: dict, current: dict) -> list[str]:
        """Keys in write order. On v1 memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes, so
        memory_swap goes first when it rises above the current memory limit, else memory goes first (runc's
        setMemoryAndSwap)."""
        keys = [k for k in LIMIT_KEYS if k in keys]
        if "memory" in keys and "memory_swap" in keys and self._version("memory") == 1:
            swap, now = targets["memory_swap"], current.get("memory")
            keys.remove("memory_swap")
            swap_first = swap == MAX or (isinstance(now, int) and now < swap)
            keys.insert(keys.index("memory") + (0 if swap_first else 1), "memory_swap")
        return keys

    @staticmethod
    def _snapshot(path: str, device: str | None, unset: str) -> str:
        text = _read_text(path)
        if device is None:
            return _first_line(text) or ""
        for line in (text or "").splitlines():
            if line.split(" ", 1)[0] == device:
                return line.strip()
        return f"{device} {unset}"

    def _needed_v2(self, keys: Iterable[str]) -> tuple[list[str], list[str]]:
        """v2 controllers to enable down to this cgroup: (required by the requested keys, optional). memory and
        pids are optional extras so stats() can report usage; failing to enable them is not an error."""
        required: list[str] = []
        for ctrl in [KEY_CONTROLLER[k] for k in keys]:
            mount = self.hierarchy.mount(ctrl)
            if mount is not None and mount.version == 2 and ctrl not in required:
                required.append(ctrl)
        optional = [
            c for c in ("memory", "pids")
            if c not in required and self.hierarchy.mount(c) is not None and self.hierarchy.mount(c).version == 2
        ]
        return required, optional

    def _ensure(
        self, needed: tuple[list[str], list[str]], created: list[str], enabled: list[tuple[str, str]]
    ) -> None:
        """Create the cgroup's directories. On v2, enable ``needed`` in each ancestor's cgroup.subtree_control on
        the way down (a child only gets the files of controllers its parent enables). On v1, seed a new cpuset
        cgroup's cpus/mems from its parent as runc does: an empty cpuset refuses every process (ENOSPC)."""
        cpuset = self.hierarchy.mount("cpuset")
        for mount in self._mounts():
            v2 = mount == self.hierarchy.unified
            seed = cpuset is not None and cpuset.version == 1 and cpuset.path == mount
            cur = mount
            for part in self.path.split("/"):
                if v2:
                    self._enable(cur, needed[0], enabled)
                    self._enable(cur, needed[1], enabled, optional=True)
                parent, cur = cur, os.path.join(cur, part)
                if os.path.isdir(cur):
                    continue
                try:
                    self._mkdir(cur)
                except OSError as exc:
                    raise CgroupError(
                        f"creating cgroup {self.path} ({cur}): {_errmsg(exc)}; run as root or choose a cgroup "
                        "delegated to this user"
                    )
                created.append(cur)
                if seed:
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        mine = _read_text(os.path.join(cur, name))
                        theirs = _first_line(_read_text(os.path.join(parent, name)))
                        if mine is not None and not mine.strip() and theirs:
                            try:
                                self._write(os.path.join(cur, name), theirs)
                            except OSError as exc:
                                raise CgroupError(
                                    f"creating cgroup {self.path}: copying {name} {theirs!r} from {parent}: "
                                    f"{_errmsg(exc)}; check the parent cpuset"
                                )

    def _enable(self, directory: str, ctrls: list[str], enabled: list[tuple[str, str]], optional: bool = False) -> None:
        """Enable ``ctrls`` for the children of ``directory``; ``optional`` ones are skipped when impossible."""
        if not ctrls:
            return
        have = (_read_text(os.path.join(directory, "cgroup.subtree_control")) or "").split()
        available = (_read_text(os.path.join(directory, "cgroup.controllers")) or "").split()
        path = os.path.join(directory, "cgroup.subtree_control")
        for ctrl in ctrls:
            if ctrl in have:
                continue
            if optional:
                if ctrl in available:
                    try:
                        self._write(path, f"+{ctrl}")
                        enabled.append((path, ctrl))
                    except OSError:
                        pass  # only needed for statistics
                continue
            if ctrl not in available:
                raise CgroupError(
                    f"cgroup {self.path}: the {ctrl} controller is not available in {directory} (cgroup v2; "
                    f"available there: {' '.join(available) or 'none'}); delegate it to that cgroup (systemd "
                    "Delegate=yes) or choose another path"
                )
            try:
                self._write(path, f"+{ctrl}")
            except OSError as exc:
                hint = (
                    "that cgroup has processes of its own, and cgroup v2 lets only leaf cgroups hold processes "
                    "once controllers are enabled; move them into a child cgroup or choose another path"
                    if exc.errno == errno.EBUSY
                    else "run as root or use a delegated cgroup"
                )
                raise CgroupError(f"enabling {ctrl} in {path} for cgroup {self.path}: {_errmsg(exc)}; {hint}")
            enabled.append((path, ctrl))

    def _rollback(self, written: list[_Written], created: list[str], enabled: list[tuple[str, str]]) -> list[str]:
        """Undo in reverse order; returns what could not be undone."""
        problems = []
        for item in reversed(written):
            try:
                self._write(item.path, item.restore)
            except OSError as exc:
                problems.append(f"restoring {item.path} to {item.restore!r}: {_errmsg(exc)}")
        for path in reversed(created):
            try:
                self._rmdir(path)
            except OSError as exc:
                problems.append(f"removing {path}: {_errmsg(exc)}")
        for path, ctrl in reversed(enabled):
            try:
                self._write(path, f"-{ctrl}")
            except OSError as exc:
                problems.append(f"disabling {ctrl} in {path}: {_errmsg(exc)}")
        return problems

    def _write_key(self, key: str, value: Any, ctx: dict, written: list[_Written]) -> None:
        ctrl = KEY_CONTROLLER[key]
        directory = self.controller_dir(ctrl)
        knob = self._knob(key)
        # The first of the knob's files that exists (v1 io_weight: blkio.weight, else BFQ's blkio.bfq.weight).
        ctx["_file"] = next((f for f in knob.files if os.path.exists(os.path.join(directory, f))), knob.files[0])
        unset = "0" if self._version(ctrl) == 1 else " ".join(f"{k}=max" for k in _IO_KEYS)
        for name, text, device in knob.writes(value, ctx):
            path = os.path.join(directory, name)
            restore = self._snapshot(path, device, unset)
            try:
                self._write(path, text)
            except OSError as exc:
                hint = _HINTS.get((key, exc.errno)) or (
                    "run as root or use a delegated cgroup"
                    if exc.errno in (errno.EACCES, errno.EPERM)
                    else "check the value against the kernel's cgroup documentation"
                )
                raise CgroupError(f"setting {key} of cgroup {self.path} ({path} <- {text!r}): {_errmsg(exc)}; {hint}")
            written.append(_Written(path, restore))

    def apply(self, limits: Limits) -> dict:
        """Create the cgroup if needed and write only the settings that differ; returns what plan() returned.

        If the kernel refuses a write, the files already written by this call are restored, directories it
        created are removed and controllers it enabled are disabled again; :class:`CgroupError` then says which
        setting failed, why, and what to do next.
        """
        was_missing = bool(self.missing_dirs())
        seen = {} if was_missing else self.read_limits()
        # Validate everything before touching the tree: a bad value never creates a cgroup.
        self._wanted(limits, seen)
        created: list[str] = []
        enabled: list[tuple[str, str]] = []
        written: list[_Written] = []
        try:
            self._ensure(self._needed_v2(normalise_limits(limits).requested()), created, enabled)
            current = self.read_limits()
            wanted = self._wanted(limits, current)
            self._check_files(wanted.requested())
            diff = self._diff(wanted, current)
            changed = {key: pair for key, pair in diff.items() if pair[0] != pair[1]}
            targets = {key: after for key, (_b, after) in diff.items()}
            ctx = {"memory": targets.get("memory", current.get("memory"))}
            for key in self._ordered(changed, targets, current):
                if key == "io_max":
                    # Only the devices whose rates change, with only the rates that were asked for.
                    before, after = changed[key]
                    value = [e for e, b, a in zip(wanted.io_max, before, after) if b != a]
                else:
                    value = getattr(wanted, key)
                self._write_key(key, value, ctx, written)
        except (CgroupError, OSError) as exc:
            problems = self._rollback(written, created, enabled)
            message = str(exc) if isinstance(exc, CgroupError) else f"applying limits to cgroup {self.path}: {exc}"
            if written or created or enabled:
                message += f". Undone: {len(written)} write(s) restored, {len(created)} created dir(s) removed"
            if problems:
                message += ". Undo FAILED, check by hand: " + "; ".join(problems)
            raise CgroupError(message)
        if was_missing:
            return {key: (None, after) for key, after in targets.items()}
        # Report against what was there before this call, exactly as plan() did: a setting whose controller had
        # to be enabled first (v2) read as None then, even if the kernel's default turned out to match.
        earlier = self._diff(wanted, seen)
        return {key: (earlier[key][0], after) for key, after in targets.items() if earlier[key][0] != after}

    # -- processes --------------------------------------------------------------------------------------------

    def _procs(self, directory: str) -> list[int]:
        text = _read_text(os.path.join(directory, "cgroup.procs"))
        return sorted({int(x) for x in (text or "").split()})

    def pids(self) -> list[int]:
        """Processes (thread-group ids) in this cgroup itself, over all its hierarchies."""
        out: set[int] = set()
        for directory in self.dirs():
            if os.path.isdir(directory):
                out.update(self._procs(directory))
        return sorted(out)

    def pids_to_move(self, pids: Iterable[int], proc: str = "/proc") -> list[int]:
        """The processes of ``pids`` that add_pids() would move (not yet in every hierarchy of this cgroup).

        Each must be a positive integer naming an existing process (checked under ``proc``).
        """
        wanted: list[int] = []
        for pid in pids:
            if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
                raise CgroupError(f"moving {pid!r} into cgroup {self.path}: expected a positive process id")
            if not os.path.exists(os.path.join(proc, str(pid))):
                raise CgroupError(f"moving process {pid} into cgroup {self.path}: no such process; check the pid")
            if pid not in wanted:
                wanted.append(pid)
        inside = [set(self._procs(d)) if os.path.isdir(d) else set() for d in self.dirs()]
        return [pid for pid in wanted if not all(pid in procs for procs in inside)]

    def add_pids(self, pids: Iterable[int], proc: str = "/proc") -> list[int]:
        """Move processes into the cgroup, in every hierarchy it has; returns the pids actually moved.

        The cgroup must exist. Moves are not undone if a later one fails: a process's previous cgroups are not
        ours to restore.
        """
        todo = self.pids_to_move(pids, proc)
        if todo and self.missing_dirs():
            raise CgroupError(f"moving processes into cgroup {self.path}: it does not exist; create it first")
        for pid in todo:
            for directory in self.dirs():
                if pid in self._procs(directory):
                    continue
                try:
                    self._write(os.path.join(directory, "cgroup.procs"), str(pid))
                except OSError as exc:
                    hint = {
                        errno.ESRCH: "the process exited meanwhile",
                        errno.ENOSPC: "the cgroup has no CPUs or memory nodes (cpuset), or on v2 is not a leaf",
                        errno.EBUSY: "on cgroup v2 processes can only join leaf cgroups",
                        errno.EOPNOTSUPP: "on cgroup v2 processes can only join leaf cgroups",
                    }.get(exc.errno, "run as root or use a delegated cgroup")
                    raise CgroupError(f"moving process {pid} into {directory}: {_errmsg(exc)}; {hint}")
        return todo

    # -- stats ------------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """memory_usage, memory_peak (bytes), oom_kills, pids_current, cpu_usage_usec; None when unknown."""
        out: dict[str, int | None] = dict(
            memory_usage=None, memory_peak=None, oom_kills=None, pids_current=None, cpu_usage_usec=None
        )
        mem = self._reader("memory")
        if self._version("memory") == 1:
            out["memory_usage"] = _int_or_none(mem("memory.usage_in_bytes"))
            out["memory_peak"] = _int_or_none(mem("memory.max_usage_in_bytes"))
            out["oom_kills"] = _flat_key(mem("memory.oom_control"), "oom_kill")
        elif self._version("memory") == 2:
            out["memory_usage"] = _int_or_none(mem("memory.current"))
            out["memory_peak"] = _int_or_none(mem("memory.peak"))
            out["oom_kills"] = _flat_key(mem("memory.events"), "oom_kill")
        out["pids_current"] = _int_or_none(self._reader("pids")("pids.current"))
        if self._version("cpuacct") == 1:
            ns = _int_or_none(self._reader("cpuacct")("cpuacct.usage"))
            out["cpu_usage_usec"] = None if ns is None else ns // 1000
        elif self.hierarchy.unified is not None and self.hierarchy.mode == "v2":
            out["cpu_usage_usec"] = _flat_key(
                _read_text(os.path.join(self._dir_in(self.hierarchy.unified), "cpu.stat")), "usage_usec"
            )
        return out

    # -- removal ----------------------------------------------------------------------------------------------

    def _subtree(self, directory: str) -> list[str]:
        """``directory`` and its descendants, deepest first."""
        out = []
        for top, subdirs, _files in os.walk(directory, topdown=False):
            out.extend(os.path.join(top, s) for s in subdirs)
        out.append(directory)
        return out

    def _subtree_pids(self) -> list[int]:
        out: set[int] = set()
        for directory in self.dirs():
            if os.path.isdir(directory):
                for sub in self._subtree(directory):
                    out.update(self._procs(sub))
        return sorted(out)

    def remove(self, force: bool = False, timeout: float = 10.0) -> bool:
        """Remove the cgroup and its empty sub-cgroups in every hierarchy; False when it did not exist.

        With processes inside (anywhere in the subtree) it fails unless ``force``, which kills them (v2
        ``cgroup.kill`` where the kernel has it, else SIGKILL in rounds until the cgroup is empty).
        """
        dirs = [d for d in self.dirs() if os.path.isdir(d)]
        if not dirs:
            return False
        procs = self._subtree_pids()
        if procs and not force:
            shown = " ".join(str(p) for p in procs[:10]) + (" ..." if len(procs) > 10 else "")
            raise CgroupError(
                f"removing cgroup {self.path}: it still has {len(procs)} process(es) ({shown}); stop them, or "
                "use force to kill them"
            )
        deadline = time.monotonic() + timeout
        if procs:
            for directory in dirs:
                kill = os.path.join(directory, "cgroup.kill")
                if os.path.exists(kill):
                    try:
                        self._write(kill, "1")
                    except OSError:
                        pass  # fall back to signals below
            while True:
                procs = self._subtree_pids()
                if not procs:
                    break
                if time.monotonic() > deadline:
                    raise CgroupError(
                        f"removing cgroup {self.path}: processes {procs[:10]} survived SIGKILL for {timeout:.0f}s "
                        "(uninterruptible I/O?); try again later"
                    )
                for pid in procs:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    except OSError as exc:
                        raise CgroupError(f"removing cgroup {self.path}: killing {pid}: {_errmsg(exc)}; run as root")
                time.sleep(0.02)
        for directory in dirs:
            for sub in self._subtree(directory):
                while True:
                    try:
                        self._rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError as exc:
                        # Killed tasks leave the cgroup asynchronously: EBUSY for a short while is normal.
                        if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                            time.sleep(0.02)
                            continue
                        raise CgroupError(
                            f"removing cgroup {self.path} ({sub}): {_errmsg(exc)}; check for processes or "
                            "sub-cgroups left in it"
                        )
        return True

    # -- description ------------------------------------------------------------------------------------------

    def info(self) -> dict:
        """{path, mode, version: {controller: 1|2}, paths: {controller: directory}} for managed controllers."""
        version, paths = {}, {}
        for ctrl in MANAGED:
            mount = self.hierarchy.mount(ctrl)
            if mount is not None:
                version[ctrl] = mount.version
                paths[ctrl] = self._dir_in(mount.path)
        return {"path": self.path, "mode": self.hierarchy.mode, "version": version, "paths": paths}


def _int_or_none(text: str | None) -> int | None:
    line = _first_line(text)
    if not line:
        return None
    try:
        return int(line)
    except ValueError:
        return None


def _flat_key(text: str | None, key: str) -> int | None:
    """``oom_kill 3`` out of a flat-keyed file such as memory.events or memory.oom_control."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None
