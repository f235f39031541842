# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directory-fd primitives of the layer folders: the open flags every fd-relative walk uses, and the ext4 hint
that gives a new layer folder a block group of its own.

The rules they serve (never follow a link found in a layer, create with ``O_EXCL``, act through fds we hold) are
described in extract.py and whiteouts.py. whiteouts.py keeps its own copy of the three flags: it is on the
container start path and imports nothing from the extraction side.
"""

from __future__ import annotations

import fcntl
import os
import sys

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
O_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def _ioc(direction: str, number: int, size: int) -> int:
    """An ioctl request number ``_IOR/_IOW('f', number, long)`` for this architecture (asm-generic/ioctl.h; powerpc,
    mips and sparc encode directions in three bits)."""
    if os.uname().machine.lower().startswith(("ppc", "powerpc", "mips", "sparc")):
        bits = {"r": 2, "w": 4}[direction]
        return (bits << 29) | (size << 16) | (ord("f") << 8) | number
    bits = {"r": 2, "w": 1}[direction]
    return (bits << 30) | (size << 16) | (ord("f") << 8) | number


_LONG = 8 if sys.maxsize > 2**32 else 4
_FS_IOC_GETFLAGS = _ioc("r", 1, _LONG)
_FS_IOC_SETFLAGS = _ioc("w", 2, _LONG)
_FS_TOPDIR_FL = 0x00020000  # chattr +T (include/uapi/linux/fs.h)


def mark_hierarchy_top(path: str) -> bool:
    """Mark the directory ``path`` as the top of unrelated directory hierarchies (``chattr +T``), best effort.

    ext2/3/4's Orlov allocator then places each new subdirectory of ``path`` in a block group of its own choosing
    (spread, starting from a hash of its name) instead of next to ``path``. A layer folder is such a hierarchy: a
    root filesystem unrelated to its siblings. It matters on ext4 without a journal: there the inode allocator
    skips inodes freed in the last 30 s (5 min while their inode table block is dirty) and pays a buffer lookup for
    each one it skips, on every create (``recently_deleted()`` in fs/ext4/ialloc.c), so extracting a layer next
    to a tree that was just removed costs several times more kernel time than in a fresh block group. Returns
    False where the filesystem has no such flag (xfs, btrfs, tmpfs ...) or it could not be set; nothing else
    changes then.
    """
    try:
        fd = os.open(path, O_DIR)
    except OSError:
        return False
    try:
        buf = bytearray(_LONG)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        flags = int.from_bytes(buf[:4], sys.byteorder)  # the kernel reads and writes an int at the pointer
        if not flags & _FS_TOPDIR_FL:
            new = (flags | _FS_TOPDIR_FL).to_bytes(4, sys.byteorder) + bytes(_LONG - 4)
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, new)
        return True
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)
