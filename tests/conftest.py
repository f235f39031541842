# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every test session run as root gets a network namespace of its own (loopback only, up).

A container started as root is on the default bridge network unless it says otherwise (as in Docker): its start
makes the ``dockerless0`` bridge, sets ``net.ipv4.ip_forward`` and the firewall's nftables table. Tests must
not do that to the host they run on, nor collide with another session running at the same time on the same
machine (a bridge name, an address, a table are per namespace). Everything the tests start (registries on
127.0.0.1, ansible-playbook, supervisors of detached containers) is a child of this process and stays in the
namespace. ``DOCKERLESS_TEST_HOST_NETWORK=1`` keeps the host's network (to look at what a test made)."""

from __future__ import annotations

import ctypes
import os
import socket
import struct

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def pytest_configure(config) -> None:
    if os.geteuid() != 0 or os.environ.get("DOCKERLESS_TEST_HOST_NETWORK") == "1":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) for the test session")
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
