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


def of_config(config: dict) -> int:
    """The capabilities a container's processes keep (its bounding set; the effective and permitted sets of root):
    all the caller has when ``privileged``, else the config's ``capabilities`` (Docker's default set when
    absent), never CAP_SYS_CHROOT with ``isolation: chroot``."""
    if config.get("privileged"):
        return linux.capget()[1]  # every capability we have (Docker: all; a host may lack some itself)
    caps = capability_mask(config.get("capabilities", DEFAULT_CAPABILITIES))
    if config.get("isolation", "container") != "container":
        # chroot isolation: CAP_SYS_CHROOT would let the command chroot into a subdirectory, climb out of it with
        # ".." and chroot into the host's /. build_spec leaves it out; a config stored by an older version may
        # still name it, so it is dropped whatever the config says.
        caps &= ~(1 << linux.CAPABILITIES["CAP_SYS_CHROOT"])
    return caps
