# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pids controller: ``pids`` (``pids.max``, the same file and format on v1 and v2) and ``pids.current``."""

from __future__ import annotations

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.knob import (
    Knob,
    Reader,
    count_text,
    int_or_none,
    single,
    v2_bytes,
)

NAME = "pids"
KEYS = ("pids",)

V1: dict[str, Knob] = {"pids": Knob(("pids.max",), lambda r: v2_bytes(r("pids.max")), single("pids.max", count_text))}
V2: dict[str, Knob] = V1
HINTS: dict = {}


def stats(read: Reader) -> dict:
    """pids_current of the cgroup whose files ``read`` reads."""
    return dict(pids_current=int_or_none(read("pids.current")))
