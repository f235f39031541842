# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The memory controller: ``memory``, ``memory_swap`` and ``memory_reservation`` on v1 and v2, and its statistics.

``memory_swap`` has Docker's meaning (memory + swap). v1 stores exactly that (``memory.memsw.limit_in_bytes``);
v2 stores only the swap part (``memory.swap.max = memory_swap - memory``), as runc's
``ConvertMemorySwapToCgroupV2Value`` does. Sizes are written in whole pages, which is what the kernel keeps.
"""

from __future__ import annotations

import errno
from typing import Any

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.knob import (
    Knob,
    Reader,
    Write,
    flat_key,
    int_or_none,
    page_floor,
    single,
    v1_bytes,
    v1_size_text,
    v2_bytes,
    v2_size_text,
)
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import MAX
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

NAME = "memory"
KEYS = ("memory", "memory_swap", "memory_reservation")


def _v2_swap_total(read: Reader) -> int | str | None:
    swap = v2_bytes(read("memory.swap.max"))
    memory = v2_bytes(read("memory.max"))
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
    return [("memory.swap.max", str(page_floor(value) - memory), None)]


V1: dict[str, Knob] = {
    "memory": Knob(
        ("memory.limit_in_bytes",),
        lambda r: v1_bytes(r("memory.limit_in_bytes")),
        single("memory.limit_in_bytes", v1_size_text),
        page_floor,
    ),
    "memory_swap": Knob(
        ("memory.memsw.limit_in_bytes",),
        lambda r: v1_bytes(r("memory.memsw.limit_in_bytes")),
        single("memory.memsw.limit_in_bytes", v1_size_text),
        page_floor,
        "swap accounting is off in this kernel (CONFIG_MEMCG_SWAP, or booted with swapaccount=0); boot with "
        "swapaccount=1 or leave memory_swap unset",
    ),
    "memory_reservation": Knob(
        ("memory.soft_limit_in_bytes",),
        lambda r: v1_bytes(r("memory.soft_limit_in_bytes")),
        single("memory.soft_limit_in_bytes", v1_size_text),
        page_floor,
    ),
}

V2: dict[str, Knob] = {
    "memory": Knob(("memory.max",), lambda r: v2_bytes(r("memory.max")), single("memory.max", v2_size_text),
                   page_floor),
    "memory_swap": Knob(
        ("memory.swap.max",),
        _v2_swap_total,
        _v2_swap_writes,
        page_floor,
        "swap accounting is off in this kernel (CONFIG_MEMCG_SWAP, or booted with swapaccount=0); leave "
        "memory_swap unset",
    ),
    "memory_reservation": Knob(
        ("memory.low",), lambda r: v2_bytes(r("memory.low")), single("memory.low", v2_size_text), page_floor
    ),
}

# What an errno from the kernel means for a key, and what to do next.
HINTS = {
    ("memory", errno.EBUSY): "the cgroup already uses more memory than that and the kernel could not reclaim it; "
    "raise the limit or stop some processes first",
    ("memory", errno.EINVAL): "on cgroup v1 memory may not exceed memory_swap (memory.memsw.limit_in_bytes); "
    "raise memory_swap too",
    ("memory_swap", errno.EINVAL): "memory_swap must be at least memory; raise memory_swap or lower memory",
    ("memory_swap", errno.EBUSY): "the cgroup already uses more memory+swap than that; raise the limit",
}


def stats(read: Reader, version: int) -> dict:
    """memory_usage, memory_peak (bytes) and oom_kills of the cgroup whose files ``read`` reads; {} when the
    controller is not mounted (``version`` 0)."""
    if version == 1:
        return dict(
            memory_usage=int_or_none(read("memory.usage_in_bytes")),
            memory_peak=int_or_none(read("memory.max_usage_in_bytes")),
            oom_kills=flat_key(read("memory.oom_control"), "oom_kill"),
        )
    if version == 2:
        return dict(
            memory_usage=int_or_none(read("memory.current")),
            memory_peak=int_or_none(read("memory.peak")),
            oom_kills=flat_key(read("memory.events"), "oom_kill"),
        )
    return {}
