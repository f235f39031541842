# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe, fast layer extraction: one pass over the compressed layer into one folder per layer.

``extract_layer`` reads a compressed layer stream once: it decompresses it (decompress.py), hashes the decompressed
bytes into the diff_id and parses the tar (tarstream.py: the whole stream, including anything after the
end-of-archive blocks) and extracts the entries into an empty folder in **overlay form**, so the folder can be an overlayfs lower dir as is:

* a whiteout ``.wh.NAME`` becomes a character device 0/0 named ``NAME`` (``mknod``, needs root); a whiteout whose
  ``NAME`` already exists in the same layer is dropped: files of the same layer survive (OCI image spec, layer.md
  "Whiteouts": a whiteout applies only to lower layers);
* the opaque marker ``.wh..wh..opq`` sets the xattr ``trusted.overlay.opaque=y`` on its directory (needs root);
* a character device 0/0 in the tar is the overlay whiteout already and is handled as ``.wh.NAME``.

Without root (``as_root=False``, or ``as_root=None`` and euid != 0) the folder is in **plain form**: whiteouts stay
regular empty files ``.wh.NAME`` and ``.wh..wh..opq``, device nodes are skipped (counted in ``LayerResult.skipped``),
ownership is not changed, only ``user.*`` xattrs are kept, files get ``u+r`` and directories ``u+rwx`` so that the
owner can read and remove the tree; a folder that got markers also gets ``whiteouts.PLAIN_FORM_MARK`` at its root,
so the runtime knows overlayfs can't use it. The rules of both forms, and the merge of layer folders
(``whiteouts.merge``), live in whiteouts.py, shared with the runtime's copy fallback and the WSL export.

Safety model. Every filesystem operation is relative to a directory file descriptor; a path is never joined into a
string and handed to the kernel. Entry names are cleaned lexically with ``..`` clamped at the root (as containerd
does). Parent directories are opened one component at a time with ``O_NOFOLLOW|O_DIRECTORY``; a symlink met on the
way is resolved by us *inside* the root (absolute targets start at the root, ``..`` stops at the root, at most 40
hops), which is what ``openat2(RESOLVE_IN_ROOT)`` does. Final components are created with ``O_EXCL``/``mkdir``/
``symlink``/``mknod``, which never follow links; an existing object is removed first (tar semantics: the last entry
wins). Metadata calls never follow links: ``fchown``/``fchmod``/``futimens`` on fds we opened with
``O_NOFOLLOW``, ``lchown``/``utimensat(AT_SYMLINK_NOFOLLOW)`` otherwise, and hardlink entries get no metadata at all
(CVE-2021-32760 was a chmod through a hardlink to a symlink). Cached parent fds are dropped whenever an entry
removes a directory or a symlink (a type flip can change what a cached path means). On any error everything written
under ``dest`` is removed.

Bounds (``UnpackLimits``): entries (objects created, implicit parent directories included), bytes written (sparse
files count with their apparent size), decompressed stream size, per-entry extended header bytes (PAX, GNU long
names, sparse maps), path length and depth, and the decompression ratio once more than 16 MiB came out. Path
resolution is bounded too: 40 symlink hops per path and a per-layer budget of steps linear in the number of
entries, so a symlink maze can't make extraction quadratic. The stream bounds (size, ratio, header bytes) are
enforced by tarstream.TarStream as it reads.

The tar dialect is tarstream.py's (Go's archive/tar). The layer root gets mode 0755 unless the tar has a ``./`` entry.

A layer is extracted without its lower layers, so a path in layer 2 whose parent was a symlink in layer 1 becomes
a directory in layer 2's folder and, merged, replaces that symlink, as an overlay mount shows it (Docker's
single-tree applier would write through the link, inside the root). Tars made by diffing never do this.

Speed. A metadata syscall is expensive on the store's disk, so an entry costs as few as possible: a regular file is
``openat``, ``write``, ``futimens``, ``close``; ``fchown`` only when the owner differs from the one the kernel gave
(euid/egid, or the parent's group when the parent is setgid), ``fchmod`` only when the creation mode (after umask)
differs or setuid/setgid/sticky bits are wanted (after ``fchown``, which clears them). Directory times are set last.
gzip is inflated by zlib in a helper thread while the main thread writes files; zstd runs in the ``zstd`` command.
Where the layer goes on disk matters as much: ``dirfd.mark_hierarchy_top`` (used by store_layers for the layer's
temp folder)
lets ext4 place a layer's tree in a fresh block group, away from inodes freed moments ago, which ext4 without a
journal skips one by one on every create.
"""

from __future__ import annotations

import errno
import os
import resource
import stat

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError, UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import (
    compression,
    layer_reader,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.dirfd import O_DIR, O_NEW
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.tarstream import (
    NS_MAX,
    REG_TYPES,
    Member,
    TarStream,
    UnpackLimits,
    clean_path,
    pad,
    show_name,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import (
    OPAQUE_XATTR,
    PLAIN_FORM_MARK,
    WHITEOUT_PREFIX,
    WhiteoutError,
    cleanup_dest,
    marker,
    prepare_dest,
    read_umask,
    remove_at,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

_MAX_SYMLINK_HOPS = 40  # Linux MAXSYMLINKS
_NAME_MAX = 255
_MAX_MAJOR = (1 << 12) - 1  # Linux dev_t: 12-bit major, 20-bit minor (include/linux/kdev_t.h)
_MAX_MINOR = (1 << 20) - 1

_WH = WHITEOUT_PREFIX.encode()
_FORBIDDEN_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.")


class LayerResult(Record):
    """What ``extract_layer`` read and wrote."""

    diff_id: str  # "sha256:<hex>" of the WHOLE decompressed stream (read to EOF, incl. padding after end)
    size: int  # decompressed bytes
    entries: int
    skipped: int = 0  # entries or attributes not reproduced (devices without root, xattrs the fs refused, ...)
    notes: list[str] = Factory(list)
    # With ``record=True`` (a staging folder merged later by move_merge): what the layer deletes from its lower
    # layers, as resolved paths (tuples of names), instead of markers in the folder; and the directories the tar
    # has entries for (their attributes win over a lower layer's; implicit parents keep the lower ones).
    whiteouts: list = Factory(list)
    opaque: list = Factory(list)
    explicit_dirs: set = Factory(set)


def _clamp_ns(ns: int) -> int:
    return max(-NS_MAX, min(NS_MAX, ns))


# --------------------------------------------------------------------------------------------------------------
# Extraction


class _Extractor:
    def __init__(
        self, root: int, stream: TarStream, limits: UnpackLimits, as_root: bool, label: str, merge: bool = False,
        fresh: bool = True, record: bool = False,
    ) -> None:
        self.root = root
        # Record mode: whiteouts and opaque markers go to these lists (for move_merge), never into the folder.
        self.record = record
        self.whiteouts: list[tuple[bytes, ...]] = []
        self.opaque: list[tuple[bytes, ...]] = []
        self.explicit: set[tuple[bytes, ...]] = set()
        # Merge mode: the layer goes onto the tree of its lower layers (see extract_layer); ``made`` holds the
        # resolved paths this layer created (its own content), ``kept`` the lower directories it wrote into.
        self.merge = merge
        self.made: set[tuple[bytes, ...]] = set()
        self.kept: set[tuple[bytes, ...]] = set()
        self.stream = stream
        self.lim = limits
        self.as_root = as_root
        self.label = label
        self.euid = os.geteuid()
        self.egid = os.getegid()
        self.umask = read_umask()
        st = os.fstat(root)
        if fresh and stat.S_IMODE(st.st_mode) != 0o755:
            # The layer root is the overlay lower dir's root and so the container's "/": 0755 unless the tar
            # has a "./" entry, whatever mode the caller's (temporary) directory was created with.
            os.fchmod(root, 0o755)
        self.root_sgid = None
        # lexical dir path -> (fd, resolved components, gid a new child inherits if the dir is setgid, else None)
        self.cache: dict[bytes, tuple[int, tuple[bytes, ...], int | None]] = {}
        # A quarter of the soft fd limit (at most 4096): enough to keep every directory of a usual layer open
        # until its time is set at the end, while leaving room for the caller and for deep walks.
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.cache_size = max(32, min(4096, (soft if soft > 0 else 1024) // 4))
        self.stale: list[int] = []
        self.dir_times: dict[bytes, tuple[int, int]] = {}
        self.entries = 0
        self.created = 0
        self.written = 0
        self.skipped = 0
        self.notes: dict[str, int] = {}
        self.left = 0  # data bytes of the current member not consumed yet
        self.steps = 0  # path components resolved by walk()
        self.entry = b""
        self.plain_marked = False  # PLAIN_FORM_MARK written at the root

    # -- errors ----------------------------------------------------------------------------------------------

    def fail(self, what: str, step: str = "The layer is malformed or hostile: check where the image comes from.") -> UnpackError:
        where = f" entry '{show_name(self.entry)}'" if self.entry else ""
        return UnpackError(f"{self.label}:{where}: {what}. {step}")

    def note(self, text: str) -> None:
        self.skipped += 1
        self.notes[text] = self.notes.get(text, 0) + 1

    # -- fd cache --------------------------------------------------------------------------------------------

    def close_all(self) -> None:
        for fd, _res, _sg in self.cache.values():
            os.close(fd)
        self.cache.clear()
        self.flush_stale()

    def flush_stale(self) -> None:
        while self.stale:
            os.close(self.stale.pop())

    def invalidate(self) -> None:
        """A directory or symlink is being removed: no cached resolution can be trusted any more."""
        self.stale.extend(fd for fd, _res, _sg in self.cache.values())
        self.cache.clear()

    def cache_put(self, key: bytes, value: tuple[int, tuple[bytes, ...], int | None]) -> None:
        old = self.cache.pop(key, None)
        if old is not None:
            self.stale.append(old[0])
        if len(self.cache) >= self.cache_size:
            oldest = next(iter(self.cache))
            self.stale.append(self.cache.pop(oldest)[0])
        self.cache[key] = value

    def dir(self, parts: list[bytes], create: bool) -> tuple[int, tuple[bytes, ...], int | None]:
        """The directory ``parts`` resolved inside the root (symlinks followed as if the root were /)."""
        if not parts:
            return self.root, (), self.root_sgid
        key = b"/".join(parts)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        start = None
        i = len(parts) - 1
        while i > 0:
            start = self.cache.get(b"/".join(parts[:i]))
            if start is not None:
                break
            i -= 1
        if start is None:
            i = 0
            base_fd, resolved = self.root, ()
        else:
            base_fd, resolved = start[0], start[1]
        fd, resolved = self.walk(base_fd, resolved, parts[i:], create)
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        value = (fd, resolved, st.st_gid if st.st_mode & stat.S_ISGID else None)
        self.cache_put(key, value)  # evicted fds are closed only after the current entry: safe to keep using
        return value

    def walk(
        self, base: int, resolved: tuple[bytes, ...], parts: list[bytes], create: bool
    ) -> tuple[int, tuple[bytes, ...]]:
        """Open ``parts`` below ``base`` one component at a time without following links; symlinks are read and
        resolved inside the root. Returns an fd we own."""
        fd = os.dup(base)
        pending = list(reversed(parts))
        hops = 0
        try:
            while pending:
                name = pending.pop()
                if not name or name == b".":
                    continue
                self.steps += 1
                if self.steps > self.max_steps:
                    raise self.fail(
                        "resolving paths through symlinks took too many steps (a symlink maze)",
                        "The layer is hostile: check where the image comes from.",
                    )
                if name == b"..":
                    if resolved:
                        # The parent of a directory we reached from the root by name: ".." is no symlink, and
                        # nothing else writes this tree, so it is resolved[:-1].
                        resolved = resolved[:-1]
                        nfd = os.open(b"..", O_DIR, dir_fd=fd)
                        os.close(fd)
                        fd = nfd
                    continue
                try:
                    nfd = os.open(name, O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    self.count_created()
                    os.mkdir(name, 0o755, dir_fd=fd)
                    self.made.add(resolved + (name,))
                    nfd = os.open(name, O_DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if create and self.merge and resolved + (name,) not in self.made:
                        # A lower layer's symlink or file where this layer has a directory: in the layer's own
                        # folder that directory would exist and, merged, replace it (as an overlay mount shows
                        # it), so it is replaced here too; the lower link is never written through.
                        self.invalidate()
                        remove_at(fd, name, st)
                        self.count_created()
                        os.mkdir(name, 0o755, dir_fd=fd)
                        self.made.add(resolved + (name,))
                        nfd = os.open(name, O_DIR, dir_fd=fd)
                        os.close(fd)
                        fd = nfd
                        resolved = resolved + (name,)
                        continue
                    if not stat.S_ISLNK(st.st_mode):
                        raise self.fail(f"'{show_name(name)}' on the path is not a directory")
                    hops += 1
                    if hops > _MAX_SYMLINK_HOPS:
                        raise self.fail("too many levels of symbolic links (a symlink loop)")
                    target = os.readlink(name, dir_fd=fd)
                    if len(target) > self.lim.max_path_length:
                        raise self.fail("a symlink on the path has a target longer than max_path_length")
                    if target.startswith(b"/"):
                        os.close(fd)
                        fd = -1
                        fd = os.dup(self.root)
                        resolved = ()
                    pending.extend(reversed(target.split(b"/")))
                    continue
                os.close(fd)
                fd = nfd
                resolved = resolved + (name,)
                if create and self.merge and resolved not in self.made:
                    self.kept.add(resolved)
                if len(resolved) > self.lim.max_depth:
                    raise self.fail(f"the path resolves deeper than max_depth ({self.lim.max_depth}) directories")
            return fd, resolved
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise

    @property
    def max_steps(self) -> int:
        """Path-resolution work allowed so far: a constant per entry, so time stays linear in the input."""
        return 65536 + 64 * self.entries

    def count_created(self) -> None:
        self.created += 1
        if self.created > self.lim.max_entries:
            raise self.fail(
                f"more than max_entries ({self.lim.max_entries}) objects",
                "The layer is a bomb or larger than allowed: raise max_entries only for a trusted image.",
            )

    def run(self) -> None:
        stream = self.stream
        max_entries = self.lim.max_entries
        while True:
            m = stream.next_member()
            if m is None:
                return
            self.entries += 1
            if self.entries > max_entries:
                raise self.fail(
                    f"more than max_entries ({max_entries}) entries",
                    "The layer is a bomb or larger than allowed: raise max_entries only for a trusted image.",
                )
            self.entry = m.name
            self.left = m.size
            try:
                self.apply(m)
            except OSError as exc:
                raise self.os_error(exc)
            if self.left:
                stream.skip(self.left)
            stream.skip(pad(m.size))
            self.left = 0
            self.entry = b""
            if self.stale:
                self.flush_stale()

    def os_error(self, exc: OSError) -> UnpackError:
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            return self.fail(f"{exc.strerror}", "Free disk space in the store and pull again.")
        if exc.errno == errno.EPERM and self.as_root and self.euid != 0:
            return self.fail(f"{exc.strerror}", "Run as root, or extract with as_root=False.")
        if exc.errno == errno.ENAMETOOLONG:
            return self.fail("a name is too long for the filesystem")
        return self.fail(f"{exc.strerror or exc}")

    def apply(self, m: Member) -> None:
        lim = self.lim
        if len(m.name) > lim.max_path_length:
            raise self.fail(f"path longer than max_path_length ({lim.max_path_length})")
        parts = clean_path(m.name)
        typ = m.type
        if not parts:
            if typ != b"5":
                raise self.fail("a non-directory entry for the layer root")
            self.meta_dir(self.root, m, b"")
            self.explicit.add(())
            return
        if len(parts) > lim.max_depth:
            raise self.fail(f"path deeper than max_depth ({lim.max_depth})")
        base = parts[-1]
        for part in parts:
            if len(part) > _NAME_MAX:
                raise self.fail(f"a path component longer than {_NAME_MAX} bytes")
        for part in parts[:-1]:
            if part.startswith(_WH):
                raise self.fail("a whiteout name used as a directory")
        if base.startswith(_WH):
            self.whiteout(parts)
            return
        if typ in REG_TYPES:
            self.regular(parts, m)
        elif typ == b"5":
            self.directory(parts, m)
        elif typ == b"2":
            self.symlink(parts, m)
        elif typ == b"1":
            self.hardlink(parts, m)
        elif typ == b"3" or typ == b"4":
            self.device(parts, m)
        elif typ == b"6":
            self.fifo(parts, m)
        elif typ == b"D":
            self.directory(parts, m)  # GNU dumpdir: a directory with a listing as data (skipped)
        elif typ == b"V":
            self.entries -= 1  # GNU volume label: not a file
        else:
            raise self.fail(f"unsupported tar entry type {typ!r}")

    # -- entries ---------------------------------------------------------------------------------------------

    def replace(self, pfd: int, name: bytes, keep_dir: bool = False) -> bool:
        """Make room for a new entry ``name`` in ``pfd``: returns True when an existing directory is kept.

        Removing a directory or a symlink changes what paths resolve to: the fd cache is dropped, and so are the
        pending directory times below the current entry's path."""
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            if keep_dir and stat.S_ISDIR(st.st_mode):
                return True
            self.invalidate()
            key = b"/".join(clean_path(self.entry))
            below = key + b"/"
            for k in [k for k in self.dir_times if k == key or k.startswith(below)]:
                del self.dir_times[k]
        remove_at(pfd, name, st)
        return False

    def want_mode(self, mode: int, is_dir: bool) -> int:
        if self.as_root:
            return mode
        return mode | (0o700 if is_dir else 0o400)

    def check_size(self, size: int) -> None:
        self.written += size
        if self.written > self.lim.max_total_bytes:
            raise self.fail(
                f"more than max_total_bytes ({self.lim.max_total_bytes}) of file data",
                "The layer is a bomb or larger than allowed: raise max_total_bytes only for a trusted image.",
            )

    def regular(self, parts: list[bytes], m: Member) -> None:
        segments = None
        if m.sparse is not None:
            segments = self.sparse_map(m)
            self.check_size(m.realsize)
        else:
            self.check_size(m.size)
        self.count_created()
        pfd, res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        self.made.add(res + (name,))
        perm = m.mode & 0o777
        if not m.size and segments is None:
            # Empty file: mknod(S_IFREG) + utimensat are two syscalls where open/futimens/close are three.
            try:
                os.mknod(name, stat.S_IFREG | perm, 0, dir_fd=pfd)
            except FileExistsError:
                self.replace(pfd, name)
                os.mknod(name, stat.S_IFREG | perm, 0, dir_fd=pfd)
            self.meta_path(pfd, name, m, sgid, is_link=False)
            return
        try:
            fd = os.open(name, O_NEW, perm, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            fd = os.open(name, O_NEW, perm, dir_fd=pfd)
        try:
            if segments is None:
                self.copy_data(fd, m.size)
            else:
                for offset, length in segments:
                    os.lseek(fd, offset, os.SEEK_SET)
                    self.copy_data(fd, length)
                os.ftruncate(fd, m.realsize)
            self.meta_fd(fd, m, self.new_owner(sgid), perm & ~self.umask, False)
        finally:
            os.close(fd)

    def copy_data(self, fd: int, size: int) -> None:
        stream = self.stream
        write = os.write
        while size:
            view = stream.read_upto(size)
            n = len(view)
            size -= n
            self.left -= n
            done = write(fd, view)
            while done < n:
                done += write(fd, view[done:])

    def sparse_map(self, m: Member) -> list[tuple[int, int]]:
        if m.sparse == "pax1":
            # GNU sparse 1.0: the map is at the start of the data, decimal numbers one per line, padded to 512.
            blocks: list[bytes] = []
            size = newlines = 0
            count = -1
            while count < 0 or newlines < 1 + 2 * count:
                if size + 512 > self.lim.max_header_bytes or size + 512 > m.size:
                    raise self.fail("sparse map too large or truncated")
                blk = self.stream.read_exact(512)
                blocks.append(blk)
                size += 512
                self.left -= 512
                newlines += blk.count(b"\n")
                if count < 0 and newlines:
                    first = b"".join(blocks).split(b"\n", 1)[0]
                    if not first.isdigit():
                        raise self.fail("bad number in the sparse map")
                    count = int(first)
            lines = b"".join(blocks).split(b"\n")
            nums = []
            for text in lines[1 : 1 + 2 * count]:
                if not text.isdigit():
                    raise self.fail("bad number in the sparse map")
                nums.append(int(text))
            segments = list(zip(nums[0::2], nums[1::2]))
        else:
            segments = m.sparse
        pos = 0
        total = 0
        for offset, length in segments:
            if offset < pos or offset + length > m.realsize:
                raise self.fail("sparse map entries overlap or lie beyond the file size")
            pos = offset + length
            total += length
        if total != self.left:
            raise self.fail("sparse map does not match the stored data size")
        return segments

    def directory(self, parts: list[bytes], m: Member) -> None:
        pfd, res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        path = res + (name,)
        perm = m.mode & 0o1777
        created = True
        try:
            os.mkdir(name, perm, dir_fd=pfd)
            self.count_created()
        except FileExistsError:
            if self.replace(pfd, name, keep_dir=True):
                created = False
            else:
                os.mkdir(name, perm, dir_fd=pfd)
        if created:
            self.made.add(path)
        elif path not in self.made:
            self.kept.add(path)
        self.explicit.add(path)
        fd = os.open(name, O_DIR, dir_fd=pfd)
        key = b"/".join(parts)
        try:
            if created:
                made = (perm & ~self.umask) | (stat.S_ISGID if sgid is not None else 0)
                self.meta_dir(fd, m, key, self.new_owner(sgid), made)
            else:
                self.meta_dir(fd, m, key)
        except BaseException:
            os.close(fd)
            raise
        self.cache_put(key, (fd, res + (name,), self.child_gid(m)))

    def new_owner(self, sgid: int | None) -> tuple[int, int]:
        """Owner the kernel gives a new object: euid, and egid or the group of a setgid parent."""
        return self.euid, (self.egid if sgid is None else sgid)

    def child_gid(self, m: Member) -> int | None:
        """Group new children of a directory entry inherit (only known, and only needed, as root)."""
        return m.gid if self.as_root and m.mode & stat.S_ISGID else None

    def meta_fd(self, fd: int, m: Member, owner: tuple[int, int], made: int, is_dir: bool) -> None:
        """Owner, then mode (chown clears setuid/setgid), then xattrs, then times, all on an fd we opened."""
        want = self.want_mode(m.mode, is_dir)
        chowned = False
        if self.as_root and (m.uid, m.gid) != owner:
            os.fchown(fd, m.uid, m.gid)
            chowned = True
        if want != made or (chowned and want & 0o7000):
            os.fchmod(fd, want)
        if m.xattrs:
            self.xattrs(fd, m)
        if not is_dir:
            mt = _clamp_ns(m.mtime_ns)
            at = mt if m.atime_ns is None else _clamp_ns(m.atime_ns)
            os.utime(fd, ns=(at, mt))

    def meta_dir(
        self, fd: int, m: Member, key: bytes, owner: tuple[int, int] | None = None, made: int | None = None
    ) -> None:
        if owner is None or made is None:  # an existing directory: ask what it has
            st = os.fstat(fd)
            owner = (st.st_uid, st.st_gid)
            made = stat.S_IMODE(st.st_mode)
        self.meta_fd(fd, m, owner, made, True)
        mt = _clamp_ns(m.mtime_ns)
        self.dir_times[key] = (mt if m.atime_ns is None else _clamp_ns(m.atime_ns), mt)
        if not key:
            self.root_sgid = self.child_gid(m)

    def xattrs(self, target: int | str, m: Member, follow: bool = True, on_link: bool = False) -> None:
        for key, value in m.xattrs or ():
            if key.startswith(_FORBIDDEN_XATTR_PREFIXES):
                raise self.fail(
                    f"the layer sets the overlay attribute {show_name(key)}",
                    "A layer must not forge overlayfs metadata: the layer is hostile.",
                )
            if not self.as_root and not key.startswith(b"user."):
                self.note("extended attributes outside user.* need root")
                continue
            if on_link and key.startswith(b"user."):
                self.note("user.* extended attributes can't be set on symlinks")
                continue
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                self.note(f"extended attributes refused by the filesystem ({exc.strerror})")

    def symlink(self, parts: list[bytes], m: Member) -> None:
        if len(m.linkname) > self.lim.max_path_length:
            raise self.fail(f"symlink target longer than max_path_length ({self.lim.max_path_length})")
        if not m.linkname:
            raise self.fail("a symlink with an empty target")
        self.count_created()
        pfd, res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        self.made.add(res + (name,))
        try:
            os.symlink(m.linkname, name, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            os.symlink(m.linkname, name, dir_fd=pfd)
        self.meta_path(pfd, name, m, sgid, is_link=True)

    def meta_path(self, pfd: int, name: bytes, m: Member, sgid: int | None, is_link: bool) -> None:
        """Metadata of an object we just created without an fd (symlink, device, fifo, empty file), never
        following links."""
        if self.as_root and (m.uid, m.gid) != self.new_owner(sgid):
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            chowned = True
        else:
            chowned = False
        if not is_link:
            want = self.want_mode(m.mode, False)
            if want != (m.mode & 0o777 & ~self.umask) or (chowned and want & 0o7000):
                # We created this object a moment ago in a tree nobody else writes: it is not a link, so
                # fchmodat (which Linux can't do with AT_SYMLINK_NOFOLLOW) follows nothing.
                os.chmod(name, want, dir_fd=pfd)
        if m.xattrs:
            self.xattrs(f"/proc/self/fd/{pfd}/{os.fsdecode(name)}", m, follow=False, on_link=is_link)
        mt = _clamp_ns(m.mtime_ns)
        at = mt if m.atime_ns is None else _clamp_ns(m.atime_ns)
        os.utime(name, ns=(at, mt), dir_fd=pfd, follow_symlinks=False)

    def hardlink(self, parts: list[bytes], m: Member) -> None:
        if len(m.linkname) > self.lim.max_path_length:
            raise self.fail(f"hardlink target longer than max_path_length ({self.lim.max_path_length})")
        target = clean_path(m.linkname)
        if not target:
            raise self.fail("a hardlink to the layer root")
        if len(target) > self.lim.max_depth:
            raise self.fail(f"hardlink target deeper than max_depth ({self.lim.max_depth})")
        self.count_created()
        missing = self.fail(
            f"hardlink target '{show_name(m.linkname)}' does not exist in this layer (hardlink targets are resolved "
            "inside the layer root)"
        )
        try:
            tfd = self.dir(target[:-1], False)[0]
        except (FileNotFoundError, NotADirectoryError):
            raise missing
        pfd, res, _sg = self.dir(parts[:-1], True)
        name = parts[-1]
        self.made.add(res + (name,))
        # Hardlink entries get no metadata: the inode already has its target's (CVE-2021-32760). linkat without
        # AT_SYMLINK_FOLLOW links a symlink itself, never what it points to.
        try:
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise missing
        except PermissionError:
            st_t = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            if stat.S_ISDIR(st_t.st_mode):
                raise self.fail(f"a hardlink to the directory '{show_name(m.linkname)}'")
            raise
        except FileExistsError:
            st_t = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            st_n = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if (st_t.st_dev, st_t.st_ino) == (st_n.st_dev, st_n.st_ino):
                return
            self.replace(pfd, name)
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def device(self, parts: list[bytes], m: Member) -> None:
        if m.devmajor > _MAX_MAJOR or m.devminor > _MAX_MINOR:
            raise self.fail(f"device number {m.devmajor}:{m.devminor} out of range")
        if m.type == b"3" and m.devmajor == 0 and m.devminor == 0:
            self.whiteout(parts[:-1] + [_WH + parts[-1]])  # already an overlay whiteout
            return
        if not self.as_root:
            self.note("device nodes need root")
            return
        self.count_created()
        pfd, res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        self.made.add(res + (name,))
        kind = stat.S_IFCHR if m.type == b"3" else stat.S_IFBLK
        dev = os.makedev(m.devmajor, m.devminor)
        try:
            os.mknod(name, kind | (m.mode & 0o777), dev, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            os.mknod(name, kind | (m.mode & 0o777), dev, dir_fd=pfd)
        self.meta_path(pfd, name, m, sgid, is_link=False)

    def fifo(self, parts: list[bytes], m: Member) -> None:
        self.count_created()
        pfd, res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        self.made.add(res + (name,))
        try:
            os.mkfifo(name, m.mode & 0o777, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            os.mkfifo(name, m.mode & 0o777, dir_fd=pfd)
        self.meta_path(pfd, name, m, sgid, is_link=False)

    def whiteout(self, parts: list[bytes]) -> None:
        base = parts[-1]
        try:
            kind, target = marker(base)  # type: ignore[misc]
        except WhiteoutError:
            raise self.fail("a whiteout of '.', '..' or of nothing") from None
        if kind == "opaque":
            pfd, res, _sg = self.dir(parts[:-1], True)
            if self.record:
                self.opaque.append(res)
            elif self.merge:
                self.invalidate()
                self.hide_lower(pfd, res)
            elif self.as_root:
                os.setxattr(pfd, OPAQUE_XATTR, b"y")
            else:
                self.marker(pfd, base)
            return
        if kind == "meta":
            self.note("AUFS metadata entries (.wh..wh.*) ignored")
            return
        self.count_created()
        pfd, res, _sg = self.dir(parts[:-1], True)
        if self.record:
            path = res + (os.fsencode(target),)
            if path not in self.made:  # as in merge mode: the same layer's own content wins over its whiteout
                self.whiteouts.append(path)
            return
        if self.merge:
            path = res + (os.fsencode(target),)
            if path in self.made or path in self.kept:
                return  # the same layer has this name: its own content wins over its whiteout
            try:
                st = os.stat(target, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
                self.invalidate()
            remove_at(pfd, target, st)
            return
        if not self.as_root:
            self.marker(pfd, base)
            return
        try:
            os.mknod(target, stat.S_IFCHR, 0, dir_fd=pfd)
        except FileExistsError:
            pass  # the same layer has this name: its own content wins over its whiteout

    def hide_lower(self, dfd: int, res: tuple[bytes, ...]) -> None:
        """Merge mode's opaque directory: remove what lower layers put in ``dfd``, keeping this layer's own
        entries (and, in directories this layer wrote into, only its own entries again)."""
        for child in os.listdir(dfd):
            name = os.fsencode(child)
            path = res + (name,)
            if path in self.made:
                continue
            if path in self.kept:
                cfd = os.open(name, O_DIR, dir_fd=dfd)
                try:
                    self.hide_lower(cfd, path)
                finally:
                    os.close(cfd)
                continue
            remove_at(dfd, name)

    def marker(self, pfd: int, name: bytes) -> None:
        if not self.plain_marked:
            # Tells a container start with one lstat that overlayfs can't read this folder's whiteouts.
            os.close(os.open(PLAIN_FORM_MARK, O_NEW, 0o600, dir_fd=self.root))
            self.plain_marked = True
        try:
            os.close(os.open(name, O_NEW, 0o600, dir_fd=pfd))
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                self.replace(pfd, name)
                os.close(os.open(name, O_NEW, 0o600, dir_fd=pfd))

    def finish(self) -> None:
        """Directory times last: creating entries inside a directory changes its mtime."""
        self.entry = b""
        for key, (at, mt) in self.dir_times.items():
            if not key:
                os.utime(self.root, ns=(at, mt))
                continue
            hit = self.cache.get(key)
            if hit is not None:  # the directory's own fd: still valid, the cache is dropped on any removal
                os.utime(hit[0], ns=(at, mt))
                continue
            parts = key.split(b"/")
            try:
                pfd = self.dir(parts[:-1], False)[0]
                st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
            except (OSError, UnpackError):
                continue  # replaced or removed by a later entry
            if stat.S_ISDIR(st.st_mode):
                os.utime(parts[-1], ns=(at, mt), dir_fd=pfd, follow_symlinks=False)
            self.flush_stale()


def extract_layer(
    raw: BinaryIO,
    media_type: str,
    dest: str,
    *,
    limits: UnpackLimits | None = None,
    as_root: bool | None = None,
    merge: bool = False,
    decoded: BinaryIO | None = None,
    record: bool = False,
) -> LayerResult:
    """Extract one compressed layer stream into ``dest`` in overlay form, in one pass.

    ``raw`` is the compressed blob as stored/served (the caller may tee it into the blob store while we read);
    ``dest`` must be an empty directory or not exist. Decompresses, hashes the diff_id over the whole decompressed
    stream (read to EOF) and extracts. ``as_root`` None means "euid is 0". On any error raises ``UnpackError`` (or
    the ``DockerlessError`` the raw stream raised) and removes everything written under ``dest``.

    ``merge=True`` applies the layer onto ``dest`` holding the layers below it (extracted in order the same way),
    giving the flattened tree that merging the layer folders gives: whiteouts and opaque directories delete lower
    content (this layer's own entries stay), a directory of this layer replaces a lower symlink or file on its
    path (never written through), nothing overlay-specific is written. Same fd-relative, no-follow resolution
    inside ``dest``. On error everything under ``dest`` is removed (the caller builds in a private holder).

    ``record=True`` extracts into ``dest`` (empty) as a staging folder for ``move_merge.move_layer``: no markers are
    written; ``LayerResult.whiteouts`` and ``opaque`` list what the layer deletes from its lower layers (a whiteout
    of a name the layer itself made before it is dropped, as in merge mode) and ``explicit_dirs`` the directories
    the tar has entries for.

    ``decoded``: the decompressing reader of ``raw`` (decompress.layer_reader), when the caller started it earlier
    so that inflating this layer overlaps with extracting the one below. The caller closes it too when this
    raises (closing twice is harmless).
    """
    limits = limits or UnpackLimits()
    if as_root is None:
        as_root = os.geteuid() == 0
    mlabel = compression(media_type)[1]
    label = f"extracting {mlabel} into {dest}"
    if merge and os.path.isdir(dest):
        try:
            root, created = os.open(dest, O_DIR), False
        except OSError as exc:
            raise UnpackError(f"{label}: cannot open {dest} ({exc.strerror}). Check the destination and retry.")
        fresh = not os.listdir(root)
    else:
        root, created = prepare_dest(dest, label)
        fresh = True
    try:
        src = decoded if decoded is not None else layer_reader(raw, media_type)
    except BaseException:
        cleanup_dest(dest, root, created)
        raise
    stream = TarStream(src, limits, label)  # type: ignore[arg-type]
    ex = _Extractor(root, stream, limits, as_root, label, merge=merge, fresh=fresh, record=record and not merge)
    try:
        ex.run()
        stream.drain()
        ex.finish()
        ex.close_all()
        src.close()
    except BaseException as exc:
        try:
            ex.close_all()
        except OSError:
            pass
        src.close()
        extra = cleanup_dest(dest, root, created)
        if isinstance(exc, DockerlessError):
            if extra:
                raise type(exc)(f"{exc}{extra}") from exc
            raise
        if isinstance(exc, OSError):
            raise UnpackError(f"{label}: {exc.strerror or exc}.{extra or ' Check the store directory and retry.'}") from exc
        raise
    os.close(root)
    notes = [f"{text}: {count}" for text, count in ex.notes.items()]
    return LayerResult(
        diff_id="sha256:" + stream.hexdigest(), size=stream.size, entries=ex.entries, skipped=ex.skipped, notes=notes,
        whiteouts=ex.whiteouts, opaque=ex.opaque, explicit_dirs=ex.explicit,
    )
