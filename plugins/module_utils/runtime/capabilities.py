# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capability sets: Docker's default set and the kernel bit mask of a list of names (``linux.CAPABILITIES``)."""

from __future__ import annotations

from ansible_collections.dockerless.containers.plugins.module_utils import linux

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)


def capability_mask(names) -> int:
    """Mask of capability ``names`` (``CAP_`` prefix optional, any case); ValueError on an unknown name."""
    mask = 0
    for name in names:
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        if key not in linux.CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}")
        mask |= 1 << linux.CAPABILITIES[key]
    return mask
