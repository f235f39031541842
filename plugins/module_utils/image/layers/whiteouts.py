# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whiteout rules, in one place, and the merge that applies layer folders onto one tree.

A layer folder (``extract.extract_layer``) says what it deletes from the layers below it in one of two forms:

* **overlay form** (unpacked as root; an overlayfs lower dir as is): a deleted ``NAME`` is a character device 0/0
  named ``NAME``; an opaque directory carries the xattr ``trusted.overlay.opaque=y``;
* **plain form** (unpacked without root, which can make neither): an empty file ``.wh.NAME``, and
  ``.wh..wh..opq`` in an opaque directory, as in the layer tar. A folder that holds such markers also holds
  ``PLAIN_FORM_MARK`` at its root, so that a container start can tell with one ``lstat`` that overlayfs (which
  reads only the overlay form) can't use it.

Every other ``.wh..wh.*`` name is AUFS metadata (or our mark): never a file of the image. A whiteout of ``''``,
``.`` or ``..`` is refused. As the image spec says (layer.md "Whiteouts"), a whiteout or an opaque directory hides
what the *lower* layers have: entries of the same layer survive, wherever the marker sits in the tar.

Who reads layer folders through this unit: the extractor (``marker`` on tar names), ``merge`` (pull's ``dest``
and the runtime's copy fallback, ``init_sequence.merge_layers``: the same code, so a container on the copy
fallback sees what pull's ``dest`` gets), and ``wsl.MergedTree`` (``read_dir``, in memory). ``overlay_unfit`` tells the
runtime when overlayfs would show something else than those.

``merge`` is fd-relative throughout and never follows a symlink found in a layer folder or in the tree it writes:
every directory is opened one component at a time with ``O_NOFOLLOW|O_DIRECTORY`` under a directory fd we hold;
an upper non-directory replaces a lower directory or symlink by removing it first; files are created with
``O_EXCL``. Layer contents are hostile (the copy fallback runs in a container's init, before ``pivot_root``).

This module is on the container start path: it imports only what runtime_init already imports.
"""

from __future__ import annotations

import errno
import os
import stat

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError, UnpackError

WHITEOUT_PREFIX = ".wh."
META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# Written by the extractor at the root of a plain-form folder that holds markers. A tar can't make it: the
# extractor ignores every ``.wh..wh.*`` entry but the opaque marker.
PLAIN_FORM_MARK = ".wh..wh..plain-form"
_B_WHITEOUT_PREFIX = WHITEOUT_PREFIX.encode()
_B_META_PREFIX = META_PREFIX.encode()
_B_OPAQUE_MARKER = OPAQUE_MARKER.encode()
_FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_CHUNK = 1 << 20

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (this module is on the start path)
if TYPE_CHECKING:
    from collections.abc import Sequence


class WhiteoutError(ValueError):
    """A whiteout that names nothing valid (``.wh.``, ``.wh..``, ``.wh...``)."""

    def __init__(self, name: str | bytes, target: str | bytes) -> None:
        self.name = name
        shown = os.fsdecode(target)
        super().__init__(f"a whiteout of '{shown}'")


# --------------------------------------------------------------------------------------------------------------
# Recognising whiteouts and opaque directories


def marker(name: str | bytes) -> tuple[str, str | bytes | None] | None:
    """What the plain-form name ``name`` (str or bytes) is: None for an ordinary name; ``("opaque", None)`` for
    the opaque marker; ``("meta", None)`` for AUFS metadata and ``PLAIN_FORM_MARK`` (no file of the image);
    ``("whiteout", NAME)`` for ``.wh.NAME``. Raises ``WhiteoutError`` for a whiteout of nothing, ``.`` or ``..``."""
    if isinstance(name, bytes):
        prefix, meta, opaque = _B_WHITEOUT_PREFIX, _B_META_PREFIX, _B_OPAQUE_MARKER
    else:
        prefix, meta, opaque = WHITEOUT_PREFIX, META_PREFIX, OPAQUE_MARKER
    if not name.startswith(prefix):
        return None
    if name == opaque:
        return "opaque", None
    if name.startswith(meta):
        return "meta", None
    target = name[len(prefix):]
    if target in ("", ".", "..", b"", b".", b".."):
        raise WhiteoutError(name, target)
    return "whiteout", target


def is_overlay_whiteout(st: os.stat_result) -> bool:
    """The overlay form of a whiteout: a character device 0/0 (the kernel's own, ``WHITEOUT_DEV``)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def has_opaque_xattr(directory: int | str) -> bool:
    """``trusted.overlay.opaque=y`` on the directory open as fd ``directory`` (or at that path, not followed).
    Without root the trusted namespace is invisible: False."""
    try:
        if isinstance(directory, int):
            return os.getxattr(directory, OPAQUE_XATTR) == b"y"
        return os.getxattr(directory, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LayerDir:
    """One directory of a layer folder, read once: is it opaque, which lower names it deletes, and its entries
    (name, lstat) with every marker and overlay whiteout taken out, in directory order."""

    __slots__ = ("opaque", "deleted", "entries")

    def __init__(self, opaque: bool, deleted: list[str], entries: list[tuple[str, os.stat_result]]) -> None:
        self.opaque = opaque
        self.deleted = deleted
        self.entries = entries


def read_dir(directory: int | str) -> LayerDir:
    """Read the layer directory open as fd ``directory`` (or at that path) in either form. Raises
    ``WhiteoutError`` for a whiteout that names nothing valid."""
    opaque = False
    deleted: list[str] = []
    entries: list[tuple[str, os.stat_result]] = []
    with os.scandir(directory) as it:
        found = list(it)
    for e in found:
        name = e.name
        kind = marker(name)
        if kind is not None:
            if kind[0] == "opaque":
                opaque = True
            elif kind[0] == "whiteout":
                deleted.append(kind[1])  # type: ignore[arg-type]
            continue
        st = e.stat(follow_symlinks=False)
        if is_overlay_whiteout(st):
            deleted.append(name)
            continue
        entries.append((name, st))
    return LayerDir(opaque or has_opaque_xattr(directory), deleted, entries)


def is_plain_form(layer: str) -> bool:
    """The layer folder holds plain-form markers (it says so at its root: see ``PLAIN_FORM_MARK``)."""
    return os.path.lexists(os.path.join(layer, PLAIN_FORM_MARK))


def overlay_unfit(lowers_top_to_bottom: Sequence[str]) -> str | None:
    """Why an overlayfs mount of these layer folders would not show the image, or None when it would.

    A plain-form folder's markers are plain files to overlayfs (the deleted files come back, the markers show);
    and overlayfs ignores the opaque xattr on a lower layer's root, where ``merge`` hides every lower layer (a
    tar with ``.wh..wh..opq`` at its top). One ``lstat`` and one ``getxattr`` per layer."""
    for layer in lowers_top_to_bottom:
        if is_plain_form(layer):
            return (f"layer folder {layer} is in plain form (it was unpacked without root: its whiteouts are .wh. "
                    "files, which overlayfs doesn't read)")
    for layer in list(lowers_top_to_bottom)[:-1]:
        if has_opaque_xattr(layer):
            return (f"layer folder {layer} hides every layer below it (an opaque root), which overlayfs ignores "
                    "at a layer's root")
    return None


# --------------------------------------------------------------------------------------------------------------
# Removing (all relative to directory fds, never following links)


def _listdir(fd: int) -> list[str]:
    return os.listdir(fd)


def _open_dir_to_remove(parent: int, name: str | bytes) -> int:
    """Open the directory ``name`` (never a link) to empty it. overlayfs leaves ``work/work`` at mode 000: an owner
    without CAP_DAC_OVERRIDE gives it u+rwx first, through an ``O_PATH`` fd of that very directory."""
    try:
        return os.open(name, _O_DIR, dir_fd=parent)
    except PermissionError:
        pfd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            os.chmod(f"/proc/self/fd/{pfd}", 0o700)
            return os.open(".", _O_DIR, dir_fd=pfd)
        finally:
            os.close(pfd)


def rmtree_children(top: int) -> None:
    """Remove everything inside the directory open as ``top``, never following symlinks; iterative."""
    stack: list[tuple[int, list[str], str | None]] = [(top, _listdir(top), None)]
    try:
        while stack:
            fd, names, own = stack[-1]
            if names:
                name = names.pop()
                try:
                    os.unlink(name, dir_fd=fd)
                    continue
                except IsADirectoryError:
                    pass
                except FileNotFoundError:
                    continue
                child = _open_dir_to_remove(fd, name)
                try:
                    stack.append((child, _listdir(child), name))
                except BaseException:
                    os.close(child)
                    raise
            else:
                stack.pop()
                if own is not None:
                    os.close(fd)
                    os.rmdir(own, dir_fd=stack[-1][0])
    finally:
        for fd, _names, own in stack:
            if own is not None:
                os.close(fd)


def remove_at(parent: int, name: str | bytes, st: os.stat_result | None = None) -> os.stat_result | None:
    """Remove ``name`` (a whole tree if it is a directory) from the directory ``parent``; None if it did not exist."""
    if st is None:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
    if stat.S_ISDIR(st.st_mode):
        fd = _open_dir_to_remove(parent, name)
        try:
            rmtree_children(fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)
    return st


def remove_tree(path: str) -> None:
    """Remove ``path`` (a whole tree if it is a directory; nothing if it does not exist). Only ``path``'s parent is
    looked up by name (the caller's own directory); below it nothing is followed."""
    parent, name = os.path.split(path.rstrip("/") or "/")
    if not name:
        raise ValueError(f"refusing to remove {path!r}")
    try:
        pfd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_at(pfd, name)
    finally:
        os.close(pfd)


def read_umask() -> int:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def prepare_dest(dest: str, label: str) -> tuple[int, bool]:
    """Open ``dest`` (created 0755 if missing; if present it must be an empty real directory)."""
    created = False
    try:
        os.mkdir(dest, 0o755)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise UnpackError(f"{label}: cannot create {dest}: {exc.strerror}. Check that its parent exists and is writable.")
    try:
        fd = os.open(dest, _O_DIR)
    except OSError as exc:
        raise UnpackError(
            f"{label}: {dest} is not a directory we can open ({exc.strerror}); it must be an empty directory or "
            "not exist. Remove it and retry."
        )
    if not created and os.listdir(fd):
        os.close(fd)
        raise UnpackError(f"{label}: {dest} is not empty. Extract into a new or empty directory.")
    return fd, created


def cleanup_dest(dest: str, fd: int, created: bool) -> str:
    """Remove everything written under dest; returns a note when that failed (never raises)."""
    try:
        rmtree_children(fd)
    except OSError as exc:
        return f" Cleaning up {dest} failed too ({exc.strerror}): remove it by hand."
    finally:
        os.close(fd)
    if created:
        try:
            os.rmdir(dest)
        except OSError as exc:
            return f" Removing {dest} failed too ({exc.strerror}): remove it by hand."
    return ""


# --------------------------------------------------------------------------------------------------------------
# Merging layer folders onto one tree

_copy_file_range_ok = hasattr(os, "copy_file_range")


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes at ``offset`` in the kernel (copy_file_range), or with pread/pwrite where it can't."""
    global _copy_file_range_ok
    while count > 0:
        if _copy_file_range_ok:
            try:
                n = os.copy_file_range(src, dst, min(count, 1 << 30), offset, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                _copy_file_range_ok = False
                continue
        else:
            data = os.pread(src, min(count, _CHUNK), offset)
            n = len(data)
            done = 0
            while done < n:
                done += os.pwrite(dst, data[done:], offset + done)
        if n == 0:
            raise UnpackError("a layer file shrank while it was being copied. Layer folders must not change: retry.")
        offset += n
        count -= n


def _copy_fd(src: int, dst: int, st: os.stat_result) -> None:
    size = st.st_size
    if st.st_blocks * 512 >= size:
        _copy_range(src, dst, 0, size)
        return
    # A sparse file: copy the data extents only, so the copy stays sparse.
    pos = 0
    while pos < size:
        try:
            data = os.lseek(src, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            break
        hole = os.lseek(src, data, os.SEEK_HOLE)
        _copy_range(src, dst, data, hole - data)
        pos = hole
    os.ftruncate(dst, size)


class _Frame:
    __slots__ = ("lfd", "dfd", "rel", "items", "own", "sgid")

    def __init__(self, lfd: int, dfd: int, rel: tuple[str, ...], own: bool, sgid: int | None) -> None:
        self.lfd = lfd
        self.dfd = dfd
        self.rel = rel
        self.own = own
        self.sgid = sgid
        self.items: list[tuple[str, os.stat_result]] = []

    def close(self) -> None:
        if self.own:
            os.close(self.lfd)
            os.close(self.dfd)
            self.own = False


class _Merger:
    def __init__(self, dest: int, as_root: bool, label: str) -> None:
        self.dest = dest
        self.as_root = as_root
        self.label = label
        self.euid = os.geteuid()
        self.egid = os.getegid()
        self.umask = read_umask()
        self.dir_times: dict[tuple[str, ...], tuple[int, int]] = {}
        self.links: dict[tuple[int, int], tuple[str, ...]] = {}
        self.layer_path = ""

    def fail(self, what: str) -> UnpackError:
        return UnpackError(
            f"{self.label}: layer folder {self.layer_path}: {what}. Layer folders are made by extract_layer: "
            "remove this one from the store and pull the image again."
        )

    def layer(self, path: str) -> None:
        self.layer_path = path
        self.links = {}
        try:
            lfd = os.open(path, _O_DIR)
        except OSError as exc:
            raise self.fail(f"cannot open it ({exc.strerror})")
        try:
            st = os.fstat(lfd)
            self.dir_meta(self.dest, lfd, st, None)
            self.dir_times[()] = (st.st_atime_ns, st.st_mtime_ns)
            dst = os.fstat(self.dest)
            self.merge(lfd, dst.st_gid if dst.st_mode & stat.S_ISGID else None)
        finally:
            os.close(lfd)

    def merge(self, lroot: int, sgid: int | None) -> None:
        stack = [self.frame(lroot, self.dest, (), False, sgid)]
        try:
            while stack:
                fr = stack[-1]
                if not fr.items:
                    stack.pop().close()
                    continue
                name, st = fr.items.pop()
                child = self.entry(fr, name, st)
                if child is not None:
                    stack.append(child)
        finally:
            for fr in stack:
                fr.close()

    def frame(self, lfd: int, dfd: int, rel: tuple[str, ...], own: bool, sgid: int | None) -> _Frame:
        """Read one layer directory; apply its opaque marker and whiteouts to dest before copying its entries
        (so entries of the same layer survive them)."""
        fr = _Frame(lfd, dfd, rel, own, sgid)
        try:
            try:
                found = read_dir(lfd)
            except WhiteoutError as exc:
                raise self.fail(str(exc)) from None
            if found.opaque:
                rmtree_children(dfd)
            for name in found.deleted:
                remove_at(dfd, name)
            fr.items = found.entries
            fr.items.reverse()  # popped from the end: keep directory order
        except BaseException:
            fr.close()
            raise
        return fr

    def new_owner(self, sgid: int | None) -> tuple[int, int]:
        return self.euid, (self.egid if sgid is None else sgid)

    def entry(self, fr: _Frame, name: str, st: os.stat_result) -> _Frame | None:
        mode = st.st_mode
        lfd, dfd = fr.lfd, fr.dfd
        if stat.S_ISDIR(mode):
            return self.directory(fr, name, st)
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    self.hardlink(first, fr, name)
                    return None
                self.links[key] = fr.rel + (name,)
            self.copy_file(fr, name, st)
        elif stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=lfd)
            self.create(dfd, name, lambda: os.symlink(target, name, dir_fd=dfd))
            self.path_meta(fr, name, st, is_link=True)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            if not self.as_root:
                return None  # device nodes need root; extract_layer already counted them
            self.create(dfd, name, lambda: os.mknod(name, mode, st.st_rdev, dir_fd=dfd))
            self.path_meta(fr, name, st, is_link=False)
        elif stat.S_ISFIFO(mode):
            self.create(dfd, name, lambda: os.mkfifo(name, stat.S_IMODE(mode) & 0o777, dir_fd=dfd))
            self.path_meta(fr, name, st, is_link=False)
        return None  # sockets can't come from a tar

    def create(self, dfd: int, name: str, make) -> None:
        try:
            make()
        except FileExistsError:
            remove_at(dfd, name)  # an upper non-directory replaces whatever the lower layers had
            make()

    def directory(self, fr: _Frame, name: str, st: os.stat_result) -> _Frame:
        dfd = fr.dfd
        perm = stat.S_IMODE(st.st_mode) & 0o1777
        owner: tuple[int, int] | None = None
        made: int | None = None
        try:
            os.mkdir(name, perm, dir_fd=dfd)
            owner = self.new_owner(fr.sgid)
            made = (perm & ~self.umask) | (stat.S_ISGID if fr.sgid is not None else 0)
        except FileExistsError:
            dst = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISDIR(dst.st_mode):
                remove_at(dfd, name, dst)
                os.mkdir(name, perm, dir_fd=dfd)
                owner = self.new_owner(fr.sgid)
                made = (perm & ~self.umask) | (stat.S_ISGID if fr.sgid is not None else 0)
        cd = os.open(name, _O_DIR, dir_fd=dfd)
        try:
            cl = os.open(name, _O_DIR, dir_fd=fr.lfd)
        except BaseException:
            os.close(cd)
            raise
        try:
            self.dir_meta(cd, cl, st, (owner, made) if owner is not None else None)
            rel = fr.rel + (name,)
            self.dir_times[rel] = (st.st_atime_ns, st.st_mtime_ns)
            sgid = st.st_gid if self.as_root and st.st_mode & stat.S_ISGID else None
            return self.frame(cl, cd, rel, True, sgid)
        except BaseException:
            os.close(cd)
            os.close(cl)
            raise

    def dir_meta(self, dfd: int, lfd: int, st: os.stat_result, new: tuple[tuple[int, int], int] | None) -> None:
        """Upper directory attributes win, as in an overlay mount (a merged directory shows the upper one's)."""
        if new is None:
            dst = os.fstat(dfd)
            owner, made = (dst.st_uid, dst.st_gid), stat.S_IMODE(dst.st_mode)
        else:
            owner, made = new
        self.fd_meta(dfd, lfd, st, owner, made, True, merged=new is None)

    def fd_meta(
        self, dfd: int, sfd: int, st: os.stat_result, owner: tuple[int, int], made: int, is_dir: bool, merged: bool
    ) -> None:
        want = stat.S_IMODE(st.st_mode)
        if not self.as_root and is_dir:
            want |= 0o700  # the tree must stay writable and removable by its (non-root) owner
        chowned = False
        if self.as_root and (st.st_uid, st.st_gid) != owner:
            os.fchown(dfd, st.st_uid, st.st_gid)
            chowned = True
        if want != made or (chowned and want & 0o7000):
            os.fchmod(dfd, want)
        self.copy_xattrs(sfd, dfd, merged)

    def copy_xattrs(self, src: int | str, dst: int | str, merged: bool, follow: bool = True) -> None:
        try:
            names = os.listxattr(src, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EPERM):
                return
            raise
        wanted = [
            n
            for n in names
            if not n.startswith(_FORBIDDEN_XATTR_PREFIXES) and (self.as_root or n.startswith("user."))
        ]
        if merged:
            for n in os.listxattr(dst, follow_symlinks=follow):
                if n not in wanted and not n.startswith(_FORBIDDEN_XATTR_PREFIXES):
                    if self.as_root or n.startswith("user."):
                        os.removexattr(dst, n, follow_symlinks=follow)
        for n in wanted:
            try:
                os.setxattr(dst, n, os.getxattr(src, n, follow_symlinks=follow), follow_symlinks=follow)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def copy_file(self, fr: _Frame, name: str, st: os.stat_result) -> None:
        sfd = os.open(name, _O_SRC, dir_fd=fr.lfd)
        try:
            perm = stat.S_IMODE(st.st_mode) & 0o777
            try:
                dfd = os.open(name, _O_NEW, perm, dir_fd=fr.dfd)
            except FileExistsError:
                remove_at(fr.dfd, name)
                dfd = os.open(name, _O_NEW, perm, dir_fd=fr.dfd)
            try:
                if st.st_size:
                    _copy_fd(sfd, dfd, st)
                self.fd_meta(dfd, sfd, st, self.new_owner(fr.sgid), perm & ~self.umask, False, False)
                os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def hardlink(self, first: tuple[str, ...], fr: _Frame, name: str) -> None:
        """A second name of an inode of this layer: link it to the copy made for the first name (inside dest)."""
        if first[:-1] == fr.rel:
            pfd, own = fr.dfd, False
        else:
            pfd, own = os.dup(self.dest), True
            try:
                for part in first[:-1]:
                    nfd = os.open(part, _O_DIR, dir_fd=pfd)
                    os.close(pfd)
                    pfd = nfd
            except BaseException:
                os.close(pfd)
                raise
        try:
            self.create(
                fr.dfd,
                name,
                lambda: os.link(first[-1], name, src_dir_fd=pfd, dst_dir_fd=fr.dfd, follow_symlinks=False),
            )
        finally:
            if own:
                os.close(pfd)

    def path_meta(self, fr: _Frame, name: str, st: os.stat_result, is_link: bool) -> None:
        """Metadata of a symlink, device or fifo we just created in dest, never following links."""
        dfd = fr.dfd
        chowned = False
        if self.as_root and (st.st_uid, st.st_gid) != self.new_owner(fr.sgid):
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
            chowned = True
        if not is_link:
            want = stat.S_IMODE(st.st_mode)
            if want != (want & 0o777 & ~self.umask) or (chowned and want & 0o7000):
                os.chmod(name, want, dir_fd=dfd)  # just created by us, not a link: nothing to follow
        if self.as_root:
            self.copy_xattrs(f"/proc/self/fd/{fr.lfd}/{name}", f"/proc/self/fd/{dfd}/{name}", False, follow=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def finish(self) -> None:
        _apply_dir_times(self.dest, self.dir_times)


def _apply_dir_times(root: int, times: dict[tuple[str, ...], tuple[int, int]]) -> None:
    """Set directory times last, walking the sorted paths with a stack of open directories (DFS order)."""
    stack: list[tuple[str, int]] = []
    try:
        for rel in sorted(times):
            keep = 0
            while keep < len(stack) and keep < len(rel) and stack[keep][0] == rel[keep]:
                keep += 1
            while len(stack) > keep:
                os.close(stack.pop()[1])
            ok = True
            for part in rel[len(stack) :]:
                try:
                    fd = os.open(part, _O_DIR, dir_fd=stack[-1][1] if stack else root)
                except OSError:
                    ok = False  # removed by an upper layer's whiteout
                    break
                stack.append((part, fd))
            if ok:
                os.utime(stack[-1][1] if rel else root, ns=times[rel])
    finally:
        for _name, fd in stack:
            os.close(fd)


def merge(layer_dirs: Sequence[str], dest: str, *, as_root: bool | None = None) -> None:
    """Merge layer folders (bottom -> top, overlay or plain form) into a plain root filesystem at ``dest``.

    Applies whiteouts and opaque directories (no markers are left), keeps hardlinks within a layer, symlinks as
    symlinks, owners, modes (setuid included) and xattrs (as root; ``trusted.overlay.*`` never), and sets times.
    ``dest`` must be an empty directory or not exist; it is independent of the layer folders (files are copied with
    copy_file_range, never hardlinked). On error, everything written under ``dest`` is removed.
    """
    if as_root is None:
        as_root = os.geteuid() == 0
    label = f"flattening {len(layer_dirs)} layers into {dest}"
    root, created = prepare_dest(dest, label)
    fl = _Merger(root, as_root, label)
    try:
        for path in layer_dirs:
            fl.layer(path)
        fl.finish()
    except BaseException as exc:
        extra = cleanup_dest(dest, root, created)
        if isinstance(exc, DockerlessError):
            if extra:
                raise type(exc)(f"{exc}{extra}") from exc
            raise
        if isinstance(exc, OSError):
            raise UnpackError(
                f"{label}: layer folder {fl.layer_path}: {exc.strerror or exc}"
                f"{' (' + os.fsdecode(exc.filename) + ')' if isinstance(exc.filename, (str, bytes)) else ''}."
                f"{extra or ' Check free space in the destination and that the layer folders are intact, then retry.'}"
            ) from exc
        raise
    os.close(root)
