# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge a layer's staging folder onto the tree of its lower layers by moving, not copying.

A pull with ``dest`` extracts its layers in parallel (each in a thread of its own, into a staging folder made by
``extract_layer(record=True)``, which writes no whiteout markers and returns what the layer deletes), then moves
each folder, bottom to top, onto the tree the bottom layer was extracted into. Every file is created once, and
the creates of several layers run at the same time (the kernel's file creation is most of a layer's cost).

The result is the tree merge mode (``extract_layer(merge=True)``) gives, layer by layer:

* first what the layer deletes from the layers below: each opaque directory is emptied in the tree, each
  whiteout's path removed (a whiteout of a name the layer itself made was already dropped by the extractor);
  a path that is missing in the tree, or crosses a non-directory there, deletes nothing;
* then the entries, directory by directory: a name absent below moves with one ``renameat2(RENAME_NOREPLACE)``
  (a whole subtree in one call: a moved directory keeps its mtime, its inside is untouched); a directory in both
  recurses; otherwise the upper entry replaces the lower one (a lower directory or symlink is removed first, a
  lower file is replaced atomically by ``renameat``): a directory of the layer replaces a lower symlink, never
  written through;
* a directory in both gets the layer's owner, mode and xattrs when the tar has an entry for it (an implicit
  parent keeps the lower layer's), its times after the moves into it (a move changes its parent's mtime).

Hard links inside a layer stay links (a move keeps the inode). A hard link to a file of a lower layer can't be
extracted into a staging folder (its target is not there): the extractor refuses it and the caller applies that
layer with merge mode instead.

Hostile names: every operation is relative to a directory fd we hold; directories are opened one component at a
time with ``O_NOFOLLOW|O_DIRECTORY``; ``renameat``/``renameat2``, ``unlinkat`` and ``fstatat(AT_SYMLINK_NOFOLLOW)``
never follow a symlink in the final component; both trees are ours (made by the extractor, in a 0700 holder).
"""

from __future__ import annotations

import errno
import os
import stat

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.dirfd import O_DIR
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import (
    remove_at,
    rmtree_children,
)

_NOREPLACE = [True]  # cleared when libc or the filesystem lacks renameat2(RENAME_NOREPLACE)


def _move_new(src_fd: int, name: bytes, dst_fd: int) -> bool:
    """Move ``name`` when the destination has no such name: True when moved, False when it exists there."""
    if _NOREPLACE[0]:
        try:
            linux.renameat2(src_fd, name, dst_fd, name, linux.RENAME_NOREPLACE)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EINVAL):
                raise
            _NOREPLACE[0] = False
    # Without RENAME_NOREPLACE: nothing else writes these trees (both in the caller's 0700 holder), so a check
    # before a plain renameat has no one to race with.
    try:
        os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
        return False
    except FileNotFoundError:
        os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return True


def _open_in(root: int, path: tuple[bytes, ...]) -> int | None:
    """The directory ``path`` under ``root`` (an fd we own), or None when a component is missing or not a
    directory (a symlink included: never followed)."""
    fd = os.dup(root)
    try:
        for part in path:
            try:
                nfd = os.open(part, O_DIR, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return None
                raise
            os.close(fd)
            fd = nfd
        found, fd = fd, -1
        return found
    finally:
        if fd >= 0:
            os.close(fd)


def _copy_dir_meta(upper: int, ust: os.stat_result, tree: int, as_root: bool) -> tuple[int, int]:
    """The upper directory's owner, mode and xattrs onto the tree's (as merge mode's directory entry sets them);
    returns its (atime, mtime) to set last. ``ust``: its stat from before anything moved out of it (a move
    changes the mtime of the directory it leaves too)."""
    tst = os.fstat(tree)
    chowned = False
    if as_root and (ust.st_uid, ust.st_gid) != (tst.st_uid, tst.st_gid):
        os.fchown(tree, ust.st_uid, ust.st_gid)
        chowned = True
    want = stat.S_IMODE(ust.st_mode)
    if want != stat.S_IMODE(tst.st_mode) or (chowned and want & 0o7000):
        os.fchmod(tree, want)
    try:
        names = os.listxattr(upper)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
        names = []
    for name in names:
        try:
            os.setxattr(tree, name, os.getxattr(upper, name))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise
    return ust.st_atime_ns, ust.st_mtime_ns


def move_layer(tree: int, upper: int, whiteouts, opaque, explicit_dirs, as_root: bool = True) -> None:
    """Move the staging folder open as ``upper`` (``extract_layer(record=True)``, whose result gives
    ``whiteouts``, ``opaque`` and ``explicit_dirs``) onto the tree open as ``tree``; ``upper`` is left empty
    or with what was merged into the tree's directories (its directories in both trees)."""
    for path in opaque:
        fd = _open_in(tree, path)
        if fd is not None:
            try:
                rmtree_children(fd)
            finally:
                os.close(fd)
    for path in whiteouts:
        fd = _open_in(tree, path[:-1])
        if fd is not None:
            try:
                remove_at(fd, path[-1])
            finally:
                os.close(fd)
    # (path in the tree, times) of the directories whose times are set after every move. Paths, not open fds: a
    # layer may touch thousands of directories the tree already has, more than a process may hold open.
    times: list[tuple[tuple[bytes, ...], tuple[int, int]]] = []
    stack: list = []
    try:
        if () in explicit_dirs:
            times.append(((), _copy_dir_meta(upper, os.fstat(upper), tree, as_root)))
        # Depth first; each frame: (upper fd, tree fd, path, names left, upper stat); its fds are closed when it
        # is done (only the path of a directory whose times are due is kept).
        stack.append((os.dup(upper), os.dup(tree), (), os.listdir(upper), None))
        while stack:
            ufd, tfd, rel, names, ust = stack[-1]
            if not names:
                stack.pop()
                try:
                    if rel and rel in explicit_dirs:
                        times.append((rel, _copy_dir_meta(ufd, ust, tfd, as_root)))
                finally:
                    os.close(ufd)
                    os.close(tfd)
                continue
            name = os.fsencode(names.pop())
            if _move_new(ufd, name, tfd):
                continue
            ust = os.stat(name, dir_fd=ufd, follow_symlinks=False)
            tst = os.stat(name, dir_fd=tfd, follow_symlinks=False)
            if stat.S_ISDIR(ust.st_mode) and stat.S_ISDIR(tst.st_mode):
                cu = os.open(name, O_DIR, dir_fd=ufd)
                try:
                    ct = os.open(name, O_DIR, dir_fd=tfd)
                except BaseException:
                    os.close(cu)
                    raise
                stack.append((cu, ct, rel + (name,), os.listdir(cu), os.fstat(cu)))
                continue
            if stat.S_ISDIR(tst.st_mode) or stat.S_ISDIR(ust.st_mode):
                # A type change with a directory on either side: renameat can't replace across it.
                remove_at(tfd, name, tst)
                if not _move_new(ufd, name, tfd):
                    raise FileExistsError(errno.EEXIST, "an entry appeared while merging", os.fsdecode(name))
            else:
                os.rename(name, name, src_dir_fd=ufd, dst_dir_fd=tfd)  # atomic replace of a lower non-directory
        for rel, (atime, mtime) in times:
            fd = _open_in(tree, rel)
            if fd is None:   # the tree is ours alone (a 0700 holder): a directory just merged into is there
                raise FileNotFoundError(errno.ENOENT, "a merged directory vanished", os.fsdecode(b"/".join(rel)))
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
    finally:
        for ufd, tfd, _rel, _names, _st in stack:
            os.close(ufd)
            os.close(tfd)
