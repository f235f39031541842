# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The io controller (``blkio`` on v1): ``io_weight`` and ``io_max`` (per-device bps/iops limits).

``io_weight`` is a v2 weight (1..10000); on v1 it is written as ``blkio.weight`` (or BFQ's
``blkio.bfq.weight``) with runc's ``ConvertBlkIOToIOWeightValue`` and reads back as the nearest value the
formula can reach. ``io_max`` lives in keyed files, one line per device: v1's four throttle files, v2's
``io.max``; a device's line is what apply() snapshots and restores.
"""

from __future__ import annotations

import errno
from typing import Any

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.knob import (
    Knob,
    Reader,
    Write,
    single,
    weight_line,
)
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import (
    DEVNUM_RE,
    IO_KEYS,
    MAX,
    blkio_to_io_weight,
    device_key,
    io_weight_to_blkio,
)

NAME = "io"
KEYS = ("io_weight", "io_max")
_V1_THROTTLE = {
    "rbps": "blkio.throttle.read_bps_device",
    "wbps": "blkio.throttle.write_bps_device",
    "riops": "blkio.throttle.read_iops_device",
    "wiops": "blkio.throttle.write_iops_device",
}
_NO_THROTTLING = "the kernel was built without block I/O throttling (CONFIG_BLK_DEV_THROTTLING); leave io_max unset"


def unset_line(version: int) -> str:
    """What follows ``MAJ:MIN`` in a keyed file to clear a device's rule (v1 takes 0, v2 every rate at max)."""
    return "0" if version == 1 else " ".join(f"{k}=max" for k in IO_KEYS)


def _v1_throttle(read: Reader) -> list[dict] | None:
    if read(_V1_THROTTLE["rbps"]) is None:
        return None
    devices: dict[str, dict] = {}
    for key, name in _V1_THROTTLE.items():
        for line in (read(name) or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and DEVNUM_RE.fullmatch(parts[0]):
                devices.setdefault(parts[0], {k: MAX for k in IO_KEYS})[key] = int(parts[1])
    return [dict(device=d, **r) for d, r in sorted(devices.items(), key=device_key)]


def _v2_iomax(read: Reader) -> list[dict] | None:
    text = read("io.max")
    if text is None:
        return None
    devices: dict[str, dict] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or not DEVNUM_RE.fullmatch(parts[0]):
            continue
        rates = {k: MAX for k in IO_KEYS}
        for token in parts[1:]:
            key, _eq, value = token.partition("=")
            if key in rates:
                rates[key] = MAX if value == "max" else int(value)
        devices[parts[0]] = rates
    return [dict(device=d, **r) for d, r in sorted(devices.items(), key=device_key)]


def _io_rate_text(value: Any) -> str:
    return "max" if value == MAX else str(value)


def _v1_iomax_writes(value: list[dict], ctx: dict) -> list[Write]:
    out = []
    for entry in value:
        for key in IO_KEYS:
            if key in entry:
                # v1 removes a rule when its value is 0
                out.append((_V1_THROTTLE[key], f"{entry['device']} {0 if entry[key] == MAX else entry[key]}",
                            entry["device"]))
    return out


def _v2_iomax_writes(value: list[dict], ctx: dict) -> list[Write]:
    out = []
    for entry in value:
        tokens = " ".join(f"{k}={_io_rate_text(entry[k])}" for k in IO_KEYS if k in entry)
        out.append(("io.max", f"{entry['device']} {tokens}", entry["device"]))
    return out


V1: dict[str, Knob] = {
    "io_weight": Knob(
        ("blkio.weight", "blkio.bfq.weight"),
        lambda r: None
        if weight_line(r("blkio.weight") or r("blkio.bfq.weight")) is None
        else blkio_to_io_weight(weight_line(r("blkio.weight") or r("blkio.bfq.weight"))),
        # ctx["_file"]: the first of the knob's files that exists (blkio.weight, else BFQ's blkio.bfq.weight)
        lambda v, ctx: [(ctx["_file"], str(io_weight_to_blkio(v)), None)],
        lambda v: blkio_to_io_weight(io_weight_to_blkio(v)),
        "the block devices use no proportional-weight I/O scheduler (CFQ or BFQ); choose BFQ for the disk "
        "(/sys/block/<dev>/queue/scheduler) or leave io_weight unset",
    ),
    "io_max": Knob(tuple(_V1_THROTTLE.values()), _v1_throttle, _v1_iomax_writes, why_missing=_NO_THROTTLING),
}

V2: dict[str, Knob] = {
    "io_weight": Knob(
        ("io.weight",),
        lambda r: weight_line(r("io.weight")),
        single("io.weight", lambda v: f"default {v}"),
        why_missing="the kernel has no io.weight (CONFIG_BLK_CGROUP_IOCOST) for this cgroup; leave io_weight unset",
    ),
    "io_max": Knob(("io.max",), _v2_iomax, _v2_iomax_writes, why_missing=_NO_THROTTLING),
}

HINTS = {
    ("io_max", errno.ENODEV): "no such block device (whole disks only, see /proc/partitions)",
    ("io_max", errno.EINVAL): "the device is not a whole disk or the value is out of range",
    ("io_weight", errno.EINVAL): "the value is out of range for this I/O scheduler",
}
