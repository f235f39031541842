# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tree manifests, for comparing trees in tests: ours against umoci's or GNU tar's, before against after.

Test-only (the engine never describes a whole tree); the unit rooms find it on sys.path through their conftest,
tests/integration through its own.
"""

from __future__ import annotations

import hashlib
import os
import stat

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20

_TYPE_CHAR = (
    (stat.S_ISREG, "f"),
    (stat.S_ISDIR, "d"),
    (stat.S_ISLNK, "l"),
    (stat.S_ISCHR, "c"),
    (stat.S_ISBLK, "b"),
    (stat.S_ISFIFO, "p"),
    (stat.S_ISSOCK, "s"),
)


def _sha256_fd(fd: int) -> str:
    h = hashlib.sha256()
    while True:
        data = os.read(fd, _CHUNK)
        if not data:
            return h.hexdigest()
        h.update(data)


def tree_manifest(root: str) -> dict[str, tuple]:
    """Describe every object under ``root`` (never following links) as
    ``path -> (type, mode, uid, gid, link, content)``.

    ``path`` is relative (``"."`` for the root itself); ``type`` one of ``f d l c b p s``; ``mode`` the permission
    bits including setuid/setgid/sticky; ``link`` the target of a symlink, or, for a regular file with other
    hardlinks inside ``root``, the smallest path of its hardlink group (so hardlinked trees compare equal only if
    the same files are linked); ``content`` the sha256 of a regular file, ``"major:minor"`` of a device, else "".
    """
    out: dict[str, tuple] = {}
    groups: dict[tuple[int, int], list[str]] = {}
    top = os.open(root, _O_DIR)
    st = os.fstat(top)
    out["."] = ("d", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, "", "")
    stack: list[tuple[int, str, list[str]]] = [(top, "", sorted(os.listdir(top), reverse=True))]
    try:
        while stack:
            fd, rel, names = stack[-1]
            if not names:
                os.close(stack.pop()[0])
                continue
            name = names.pop()
            path = f"{rel}{name}"
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            mode = st.st_mode
            kind = next(ch for test, ch in _TYPE_CHAR if test(mode))
            link = content = ""
            if kind == "f":
                ffd = os.open(name, _O_SRC, dir_fd=fd)
                try:
                    content = _sha256_fd(ffd)
                finally:
                    os.close(ffd)
                if st.st_nlink > 1:
                    groups.setdefault((st.st_dev, st.st_ino), []).append(path)
            elif kind == "l":
                link = os.readlink(name, dir_fd=fd)
            elif kind in ("c", "b"):
                content = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            out[path] = (kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, link, content)
            if kind == "d":
                cfd = os.open(name, _O_DIR, dir_fd=fd)
                stack.append((cfd, f"{path}/", sorted(os.listdir(cfd), reverse=True)))
    finally:
        for fd, _rel, _names in stack:
            os.close(fd)
    for paths in groups.values():
        if len(paths) > 1:
            first = min(paths)
            for p in paths:
                kind, mode, uid, gid, _link, content = out[p]
                out[p] = (kind, mode, uid, gid, first, content)
    return out
