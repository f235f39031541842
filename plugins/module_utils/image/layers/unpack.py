# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe, fast layer extraction: one pass over the compressed layer, one folder per layer, and flattening.

``extract_layer`` reads a compressed layer stream once: it decompresses it, hashes the decompressed bytes into the
diff_id (the whole stream, including anything after the end-of-archive blocks) and extracts the tar into an empty
folder in **overlay form**, so the folder can be an overlayfs lower dir as is:

* a whiteout ``.wh.NAME`` becomes a character device 0/0 named ``NAME`` (``mknod``, needs root); a whiteout whose
  ``NAME`` already exists in the same layer is dropped: files of the same layer survive (OCI image spec, layer.md
  "Whiteouts": a whiteout applies only to lower layers);
* the opaque marker ``.wh..wh..opq`` sets the xattr ``trusted.overlay.opaque=y`` on its directory (needs root);
* a character device 0/0 in the tar is the overlay whiteout already and is handled as ``.wh.NAME``.

Without root (``as_root=False``, or ``as_root=None`` and euid != 0) the folder is in **plain form**: whiteouts stay
regular empty files ``.wh.NAME`` and ``.wh..wh..opq``, device nodes are skipped (counted in ``LayerResult.skipped``),
ownership is not changed, only ``user.*`` xattrs are kept, files get ``u+r`` and directories ``u+rwx`` so that the
owner can read and remove the tree; a folder that got markers also gets ``whiteouts.PLAIN_FORM_MARK`` at its root,
so the runtime knows overlayfs can't use it. The rules of both forms, and the merge (``flatten``), live in
whiteouts.py, shared with the runtime's copy fallback and the WSL export.

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
entries, so a symlink maze can't make extraction quadratic. Parsing is linear in the input.

Tar dialect: ustar, GNU (long names, base-256 numbers, old sparse) and PAX (path, linkpath, size, uid, gid, mtime,
atime, ``SCHILY.xattr.*``, GNU sparse 1.0), read like Go's archive/tar (which made the layers Docker hashes): the size
of header-only entries (links, directories, devices, fifos) is ignored, global PAX headers are validated and
ignored, a stream may end without the end-of-archive blocks, anything after them is hashed but not extracted.
The layer root gets mode 0755 unless the tar has a ``./`` entry.

A layer is extracted without its lower layers, so a path in layer 2 whose parent was a symlink in layer 1 becomes
a directory in layer 2's folder and, merged, replaces that symlink, as an overlay mount shows it (Docker's
single-tree applier would write through the link, inside the root). Tars made by diffing never do this.

Speed. A metadata syscall is expensive on the store's disk, so an entry costs as few as possible: a regular file is
``openat``, ``write``, ``futimens``, ``close``; ``fchown`` only when the owner differs from the one the kernel gave
(euid/egid, or the parent's group when the parent is setgid), ``fchmod`` only when the creation mode (after umask)
differs or setuid/setgid/sticky bits are wanted (after ``fchown``, which clears them). Directory times are set last.
gzip is inflated by zlib in a helper thread while the main thread writes files; zstd runs in the ``zstd`` command.
Where the layer goes on disk matters as much: ``mark_hierarchy_top`` (used by pull for the layer's temp folder)
lets ext4 place a layer's tree in a fresh block group, away from inodes freed moments ago, which ext4 without a
journal skips one by one on every create.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import queue
import resource
import shutil
import stat
import sys
import tempfile
import threading
import zlib
from collections.abc import Sequence

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError, UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import (
    OPAQUE_XATTR,
    PLAIN_FORM_MARK,
    WHITEOUT_PREFIX,
    WhiteoutError,
    cleanup_dest,
    marker,
    merge,
    prepare_dest,
    read_umask,
    remove_at,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

MEDIA_TYPE_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_NON_DISTRIBUTABLE = frozenset(
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    )
)
_COMPRESSION = {
    MEDIA_TYPE_TAR: "none",
    MEDIA_TYPE_TAR_GZIP: "gzip",
    MEDIA_TYPE_DOCKER_GZIP: "gzip",
    MEDIA_TYPE_TAR_ZSTD: "zstd",
}

_CHUNK = 1 << 20
_RATIO_FLOOR = 16 << 20  # the ratio check starts once this many bytes were decompressed
_MAX_SYMLINK_HOPS = 40  # Linux MAXSYMLINKS
_NAME_MAX = 255
_MAX_MAJOR = (1 << 12) - 1  # Linux dev_t: 12-bit major, 20-bit minor (include/linux/kdev_t.h)
_MAX_MINOR = (1 << 20) - 1
_MAX_ID = (1 << 32) - 2  # uid/gid 2^32-1 is "-1", "don't change", for chown(2)
_NS_MAX = (1 << 63) - 1

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_SRC = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

_WH = WHITEOUT_PREFIX.encode()
_FORBIDDEN_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.")

_ZERO_BLOCK = bytes(512)
_REG_TYPES = (b"0", b"\0", b"7")
_HEADER_ONLY_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # data size ignored, as Go's archive/tar does


class UnpackLimits(Record):
    """Bounds for one layer. Defaults fit any sane image; lower them for untrusted sources or tests."""

    max_entries: int = 1_000_000
    max_total_bytes: int = 64 * 2**30  # decompressed bytes written (and the decompressed stream)
    max_header_bytes: int = 1 * 2**20  # PAX/GNU long-name/sparse-map bytes per entry
    max_path_length: int = 4096
    max_ratio: int = 1000  # decompressed/compressed, checked once > 16 MiB decompressed
    max_depth: int = 256  # path components after resolution; keeps fd use and recursion bounded


class LayerResult(Record):
    """What ``extract_layer`` read and wrote."""

    diff_id: str  # "sha256:<hex>" of the WHOLE decompressed stream (read to EOF, incl. padding after end)
    size: int  # decompressed bytes
    entries: int
    skipped: int = 0  # entries or attributes not reproduced (devices without root, xattrs the fs refused, ...)
    notes: list[str] = Factory(list)


# --------------------------------------------------------------------------------------------------------------
# Decompression


class _Reader:
    """A minimal binary reader over a layer stream; ``compressed_bytes`` counts raw bytes consumed."""

    def __init__(self, raw: BinaryIO, label: str) -> None:
        self._raw = raw
        self._label = label
        self._compressed = 0
        self.closed = False

    @property
    def compressed_bytes(self) -> int:
        return self._compressed

    def _raw_read(self, n: int = _CHUNK) -> bytes:
        data = self._raw.read(n)
        if data:
            self._compressed += len(data)
        return data or b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def _read_all(self) -> bytes:
        parts = []
        while True:
            chunk = self.read(_CHUNK)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PlainReader(_Reader):
    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._read_all()
        return self._raw_read(n)


class _GzipReader(_Reader):
    """RFC 1952 gzip, several members allowed (like Go's multistream reader); zero padding after a member is
    tolerated, anything else after it is an error."""

    def __init__(self, raw: BinaryIO, label: str) -> None:
        super().__init__(raw, label)
        self._d = zlib.decompressobj(31)
        self._in = b""
        self._state = 1  # 1: inside a member, 0: between members, 2: done

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._read_all()
        while True:
            if self._state == 2:
                return b""
            if self._state == 0:
                self._in = self._in.lstrip(b"\0")
                if len(self._in) < 2:
                    more = self._raw_read()
                    if not more:
                        if self._in:
                            raise UnpackError(
                                f"{self._label}: data after the end of the gzip stream is not gzip. The blob is "
                                "damaged or not a gzip layer: remove it from the store and pull again."
                            )
                        self._state = 2
                        return b""
                    self._in += more
                    continue
                if self._in[:2] != b"\x1f\x8b":
                    raise UnpackError(
                        f"{self._label}: data after the end of the gzip stream is not gzip. The blob is damaged or "
                        "not a gzip layer: remove it from the store and pull again."
                    )
                self._d = zlib.decompressobj(31)
                self._state = 1
            if not self._in:
                self._in = self._raw_read()
                if not self._in:
                    raise UnpackError(
                        f"{self._label}: the gzip stream ends early (truncated). Remove the blob from the store and "
                        "pull again."
                    )
            try:
                out = self._d.decompress(self._in, n)
            except zlib.error as exc:
                raise UnpackError(
                    f"{self._label}: gzip data is corrupt ({exc}). The blob is damaged or its media type is wrong: "
                    "remove it from the store and pull again."
                )
            if self._d.eof:
                self._in = self._d.unused_data
                self._state = 0
            else:
                self._in = self._d.unconsumed_tail
            if out:
                return out


class _ZstdReader(_Reader):
    """zstd through the ``zstd`` command: a feeder thread writes the raw stream into its stdin."""

    def __init__(self, raw: BinaryIO, label: str) -> None:
        super().__init__(raw, label)
        exe = shutil.which("zstd")
        if exe is None:
            raise UnpackError(
                f"{label}: a zstd layer needs the zstd command, which is not installed. Install the zstd package "
                "(apt-get install zstd / dnf install zstd) and retry."
            )
        self._err = tempfile.TemporaryFile()
        import subprocess

        self._proc = subprocess.Popen(
            [exe, "-d", "-c", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err
        )
        self._feed_error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, name="dockerless-zstd-feed", daemon=True)
        self._feeder.start()
        self._done = False

    def _feed(self) -> None:
        stdin = self._proc.stdin
        try:
            while True:
                data = self._raw_read()
                if not data:
                    break
                stdin.write(data)
        except BrokenPipeError:
            pass  # zstd exited; its exit status tells why
        except BaseException as exc:  # handed to the reading thread
            self._feed_error = exc
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._read_all()
        if self._done:
            return b""
        data = self._proc.stdout.read(n)
        if data:
            return data
        self._done = True
        self._feeder.join()
        rc = self._proc.wait()
        if self._feed_error is not None:
            raise self._feed_error
        if rc != 0:
            self._err.seek(0)
            detail = self._err.read(4096).decode("utf-8", "replace").strip().splitlines()
            raise UnpackError(
                f"{self._label}: zstd failed ({detail[-1] if detail else f'exit status {rc}'}). The blob is damaged "
                "or its media type is wrong: remove it from the store and pull again."
            )
        return b""

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._feeder.join()
        self._proc.stdout.close()
        self._err.close()


class _Prefetch(_Reader):
    """Runs another reader in a helper thread (zlib and hashlib release the GIL), so inflating and hashing the
    decompressed stream (``hasher``: every chunk, in order, before it is handed over) overlap with writing files."""

    def __init__(self, inner: _Reader, depth: int = 8) -> None:
        super().__init__(inner._raw, inner._label)
        self._inner = inner
        self.hasher = hashlib.sha256()
        self._q: queue.Queue = queue.Queue(depth)
        self._stop = False
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="dockerless-inflate", daemon=True)
        self._thread.start()

    @property
    def compressed_bytes(self) -> int:
        return self._inner.compressed_bytes

    def _run(self) -> None:
        try:
            while not self._stop:
                chunk = self._inner.read(_CHUNK)
                if chunk:
                    self.hasher.update(chunk)
                self._q.put((chunk, None))
                if not chunk:
                    return
        except BaseException as exc:  # handed to the reading thread
            self._q.put((b"", exc))

    def read(self, n: int = -1) -> bytes:
        # ``n`` is advisory here: chunks come as the helper produced them (at most 1 MiB).
        if self._eof:
            return b""
        chunk, exc = self._q.get()
        if exc is not None:
            self._eof = True
            raise exc
        if not chunk:
            self._eof = True
        return chunk

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop = True
        while self._thread.is_alive():
            try:
                self._q.get(timeout=0.05)
            except queue.Empty:
                pass
        self._inner.close()


def _media_label(media_type: str) -> str:
    return f"layer ({media_type})"


def _compression(media_type: str) -> tuple[str, str]:
    """(kind, label) for a layer media type, or UnpackError for foreign/unknown ones."""
    base = (media_type or "").split(";", 1)[0].strip()
    label = _media_label(base or "no media type")
    if base in _NON_DISTRIBUTABLE:
        raise UnpackError(
            f"{label}: non-distributable (foreign) layers are not supported: their content is not meant to be "
            "fetched from a registry. Use an image built without foreign layers."
        )
    kind = _COMPRESSION.get(base)
    if kind is None:
        raise UnpackError(
            f"{label}: unsupported layer media type. Supported: {', '.join(sorted(_COMPRESSION))}; encrypted or "
            "other layers need to be converted first (for example with skopeo copy)."
        )
    return kind, label


def decompressing_reader(raw: BinaryIO, media_type: str) -> BinaryIO:
    """Return a reader of the decompressed tar stream of a layer blob with media type ``media_type``.

    gzip (OCI ``…tar+gzip`` and Docker ``…rootfs.diff.tar.gzip``) is inflated with zlib, zstd (``…tar+zstd``) by
    the ``zstd`` command, plain tar (``…v1.tar``) is passed through. The reader has ``read(n)``, ``close()`` and
    ``compressed_bytes`` (raw bytes consumed so far). Non-distributable/foreign and unknown media types raise
    ``UnpackError``.
    """
    kind, label = _compression(media_type)
    if kind == "gzip":
        return _GzipReader(raw, label)  # type: ignore[return-value]
    if kind == "zstd":
        return _ZstdReader(raw, label)  # type: ignore[return-value]
    return _PlainReader(raw, label)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# The tar stream


class _Stream:
    """Buffered reader over the decompressed stream that hashes and counts every byte and enforces stream bounds."""

    def __init__(self, src: _Reader, limits: UnpackLimits, label: str) -> None:
        self._src = src
        self._limits = limits
        self._label = label
        self._buf = b""
        self._pos = 0
        self._eof = False
        # A prefetching source hashes in its own thread; the digest is read only after EOF was seen here.
        self._hash = getattr(src, "hasher", None)
        self._own_hash = self._hash is None
        if self._hash is None:
            self._hash = hashlib.sha256()
        self.size = 0

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._src.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        if self._own_hash:
            self._hash.update(chunk)
        self.size += len(chunk)
        lim = self._limits
        if self.size > lim.max_total_bytes:
            raise UnpackError(
                f"{self._label}: the decompressed stream is larger than max_total_bytes ({lim.max_total_bytes}). "
                "The layer is a decompression bomb or larger than allowed: raise the limit only for a trusted image."
            )
        if self.size > _RATIO_FLOOR and self.size > lim.max_ratio * max(1, self._src.compressed_bytes):
            raise UnpackError(
                f"{self._label}: decompression ratio above {lim.max_ratio}:1 ({self.size} bytes out of "
                f"{self._src.compressed_bytes}). This looks like a decompression bomb: raise max_ratio only for a "
                "trusted image."
            )
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + chunk
        else:
            self._buf = chunk
        self._pos = 0
        return True

    def at_eof(self) -> bool:
        return self._pos >= len(self._buf) and not self._fill()

    def read_exact(self, n: int) -> bytes:
        end = self._pos + n
        while end > len(self._buf):
            if not self._fill():
                raise UnpackError(
                    f"{self._label}: the tar stream ends in the middle of an entry (truncated). Remove the blob "
                    "from the store and pull again."
                )
            end = self._pos + n
        data = self._buf[self._pos : end]
        self._pos = end
        return data

    def read_upto(self, n: int) -> memoryview:
        if self._pos >= len(self._buf) and not self._fill():
            raise UnpackError(
                f"{self._label}: the tar stream ends in the middle of a file (truncated). Remove the blob from the "
                "store and pull again."
            )
        end = min(len(self._buf), self._pos + n)
        view = memoryview(self._buf)[self._pos : end]
        self._pos = end
        return view

    def skip(self, n: int) -> None:
        while n > 0:
            n -= len(self.read_upto(n))

    def drain(self) -> None:
        """Read (and hash) everything up to EOF. After the end-of-archive only zero padding may follow (tar
        writers pad to a record size); anything else is a malformed or smuggled payload and is refused
        (HOSTILE.md: data after the end is rejected)."""
        while True:
            rest = memoryview(self._buf)[self._pos :]
            if rest.nbytes and bytes(rest).count(0) != rest.nbytes:
                raise UnpackError(
                    f"{self._label}: data that is not zero padding follows the end of the tar archive. The layer is "
                    "malformed or carries a hidden payload; it was not unpacked."
                )
            self._pos = len(self._buf)
            if not self._fill():
                return

    def hexdigest(self) -> str:
        if not self._eof:
            raise UnpackError(f"{self._label}: internal error: the diff_id was asked before the end of the stream.")
        return self._hash.hexdigest()


class _Member:
    __slots__ = (
        "name",
        "linkname",
        "type",
        "mode",
        "uid",
        "gid",
        "size",
        "mtime_ns",
        "atime_ns",
        "devmajor",
        "devminor",
        "xattrs",
        "sparse",
        "realsize",
        "sparse_format",
    )


_NUMBERS: dict[bytes, int] = {}  # octal header fields seen (modes, owners, sizes repeat): parsed once


def _octal_or_base256(field_: bytes, what: str, label: str) -> int:
    """A numeric header field: octal text, or GNU base-256 (first byte 0x80; 0xff marks a negative number)."""
    known = _NUMBERS.get(field_)
    if known is not None:
        return known
    if field_ and field_[0] & 0x80:
        if field_[0] & 0x40:
            raise UnpackError(f"{label}: tar header has a negative {what}. The layer is malformed or hostile.")
        return int.from_bytes(bytes((field_[0] & 0x3F,)) + field_[1:], "big")
    text = field_.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        if text.lstrip(b"01234567"):
            raise ValueError(text)
        value = int(text, 8)
    except ValueError:
        raise UnpackError(f"{label}: tar header has an invalid {what} field. The layer is malformed.")
    if len(_NUMBERS) >= 4096:
        _NUMBERS.clear()  # bounded: mtimes and sizes are mostly unique
    _NUMBERS[field_] = value
    return value


def _byte_sum(blk: bytes) -> int:
    """Sum of the 512 bytes of a header, in C: adler32's low half is 1 + the byte sum modulo 65521, exact for 256
    bytes (at most 65280). Several times faster than ``sum(blk)``, which boxes every byte."""
    adler32 = zlib.adler32
    return (adler32(blk[:256]) & 0xFFFF) + (adler32(blk[256:]) & 0xFFFF) - 2


def _pad(n: int) -> int:
    return -n % 512


def _parse_pax(data: bytes, label: str) -> dict[bytes, bytes]:
    """PAX extended header records ``"%d %s=%s\\n"`` (POSIX.1-2001 pax, "extended header"); strict, like Go."""
    out: dict[bytes, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0 and data.count(b"\0", pos) == end - pos:
            break  # NUL padding after the last record
        sp = data.find(b" ", pos, min(end, pos + 21))
        length_text = data[pos:sp] if sp > pos else b""
        if not length_text.isdigit():
            raise UnpackError(f"{label}: bad PAX record (no length). The layer is malformed or hostile.")
        length = int(length_text)
        if length <= sp - pos + 1 or pos + length > end or data[pos + length - 1 : pos + length] != b"\n":
            raise UnpackError(f"{label}: bad PAX record (wrong length). The layer is malformed or hostile.")
        key, eq, value = data[sp + 1 : pos + length - 1].partition(b"=")
        if not eq or not key:
            raise UnpackError(f"{label}: bad PAX record (no key). The layer is malformed or hostile.")
        out[key] = value
        pos += length
    return out


def _pax_int(value: bytes, key: bytes, label: str, limit: int) -> int:
    if not value.isdigit() or int(value) > limit:
        raise UnpackError(
            f"{label}: bad PAX record {key.decode('ascii', 'replace')}={value[:32]!r}. The layer is malformed or hostile."
        )
    return int(value)


def _pax_time_ns(value: bytes, key: bytes, label: str) -> int:
    text = value
    neg = text.startswith(b"-")
    if neg:
        text = text[1:]
    whole, _dot, frac = text.partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(whole) > 18:
        raise UnpackError(
            f"{label}: bad PAX record {key.decode('ascii', 'replace')}={value[:32]!r}. The layer is malformed or hostile."
        )
    ns = int(whole) * 1_000_000_000 + int((frac[:9] or b"0").ljust(9, b"0"))
    return -ns if neg else ns


def _show(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _clean(name: bytes) -> list[bytes]:
    """Lexically clean a tar path; ``..`` never climbs above the root (clamped, like containerd's Join("/", name))."""
    out: list[bytes] = []
    for part in name.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            if out:
                out.pop()
            continue
        out.append(part)
    return out


# --------------------------------------------------------------------------------------------------------------
# Filesystem helpers (all relative to directory fds)


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
        fd = os.open(path, _O_DIR)
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


def _clamp_ns(ns: int) -> int:
    return max(-_NS_MAX, min(_NS_MAX, ns))


# --------------------------------------------------------------------------------------------------------------
# Extraction


class _Extractor:
    def __init__(self, root: int, stream: _Stream, limits: UnpackLimits, as_root: bool, label: str) -> None:
        self.root = root
        self.stream = stream
        self.lim = limits
        self.as_root = as_root
        self.label = label
        self.euid = os.geteuid()
        self.egid = os.getegid()
        self.umask = read_umask()
        st = os.fstat(root)
        if stat.S_IMODE(st.st_mode) != 0o755:
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
        where = f" entry '{_show(self.entry)}'" if self.entry else ""
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
                        nfd = os.open(b"..", _O_DIR, dir_fd=fd)
                        os.close(fd)
                        fd = nfd
                    continue
                try:
                    nfd = os.open(name, _O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    self.count_created()
                    os.mkdir(name, 0o755, dir_fd=fd)
                    nfd = os.open(name, _O_DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise self.fail(f"'{_show(name)}' on the path is not a directory")
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

    # -- tar headers -----------------------------------------------------------------------------------------

    def next_member(self) -> _Member | None:
        stream = self.stream
        lim = self.lim
        label = self.label
        meta = 0
        pax: dict[bytes, bytes] = {}
        long_name = long_link = None
        while True:
            if stream.at_eof():
                if meta:
                    raise self.fail("the tar stream ends after an extended header, without its entry")
                return None
            blk = stream.read_exact(512)
            if blk == _ZERO_BLOCK:
                if stream.at_eof():
                    return None
                if stream.read_exact(512) != _ZERO_BLOCK:
                    raise self.fail("a single zero block inside the tar stream")
                return None
            chk = _octal_or_base256(blk[148:156], "checksum", label)
            unsigned = _byte_sum(blk) - sum(blk[148:156]) + 256
            if chk != unsigned:
                signed = unsigned - 256 * sum(1 for b in blk if b >= 128) + 256 * sum(1 for b in blk[148:156] if b >= 128)
                if chk != signed:
                    raise self.fail("tar header checksum mismatch (not a tar stream, or corrupt)")
            typ = blk[156:157]
            size = _octal_or_base256(blk[124:136], "size", label)
            if typ in (b"x", b"g", b"L", b"K"):
                meta += size
                if meta > lim.max_header_bytes:
                    raise self.fail(
                        f"extended headers larger than max_header_bytes ({lim.max_header_bytes})",
                        "The layer is hostile or unusual: raise max_header_bytes only for a trusted image.",
                    )
                data = stream.read_exact(size)
                stream.skip(_pad(size))
                if typ == b"x":
                    pax = _parse_pax(data, label)
                elif typ == b"g":
                    _parse_pax(data, label)  # validated, then ignored as Go's archive/tar and containerd do
                elif typ == b"L":
                    long_name = data.split(b"\0", 1)[0]
                else:
                    long_link = data.split(b"\0", 1)[0]
                continue
            return self.member(blk, typ, size, pax, long_name, long_link, meta)

    def member(
        self,
        blk: bytes,
        typ: bytes,
        size: int,
        pax: dict[bytes, bytes],
        long_name: bytes | None,
        long_link: bytes | None,
        meta: int,
    ) -> _Member:
        label = self.label
        num = _octal_or_base256
        m = _Member()
        name = blk[0:100].split(b"\0", 1)[0]
        magic = blk[257:265]
        if magic == b"ustar\x0000":
            prefix = blk[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        m.name = name
        m.linkname = blk[157:257].split(b"\0", 1)[0]
        m.mode = num(blk[100:108], "mode", label) & 0o7777
        m.uid = num(blk[108:116], "uid", label)
        m.gid = num(blk[116:124], "gid", label)
        m.mtime_ns = num(blk[136:148], "mtime", label) * 1_000_000_000
        m.atime_ns = None
        if typ in (b"3", b"4"):
            m.devmajor = num(blk[329:337], "devmajor", label)
            m.devminor = num(blk[337:345], "devminor", label)
        else:
            m.devmajor = m.devminor = 0
        m.xattrs = None
        m.sparse = None
        m.realsize = 0
        m.sparse_format = None
        if typ == b"\0" and name.endswith(b"/"):
            typ = b"5"  # pre-POSIX tar marks directories with a trailing slash
        if pax:
            for key, value in pax.items():
                if key == b"path":
                    m.name = value
                elif key == b"linkpath":
                    m.linkname = value
                elif key == b"size":
                    size = _pax_int(value, key, label, _NS_MAX)
                elif key == b"uid":
                    m.uid = _pax_int(value, key, label, _NS_MAX)
                elif key == b"gid":
                    m.gid = _pax_int(value, key, label, _NS_MAX)
                elif key == b"mtime":
                    m.mtime_ns = _pax_time_ns(value, key, label)
                elif key == b"atime":
                    m.atime_ns = _pax_time_ns(value, key, label)
                elif key.startswith(b"SCHILY.xattr."):
                    if m.xattrs is None:
                        m.xattrs = []
                    m.xattrs.append((key[13:], value))
                elif key.startswith(b"GNU.sparse."):
                    m.sparse_format = m.sparse_format or {}
                    m.sparse_format[key[11:]] = value
        if long_name is not None:
            m.name = long_name
        if long_link is not None:
            m.linkname = long_link
        if b"\0" in m.name or b"\0" in m.linkname:
            raise self.fail("a path with a NUL byte")
        if m.uid > _MAX_ID or m.gid > _MAX_ID:
            raise self.fail(f"uid/gid {m.uid}/{m.gid} out of range")
        if typ == b"S":
            m.sparse, m.realsize, meta = self.gnu_sparse(blk, meta)
            typ = b"0"
        elif m.sparse_format is not None:
            fmt = m.sparse_format
            if fmt.get(b"major") == b"1" and fmt.get(b"minor") == b"0":
                if b"name" in fmt:
                    m.name = fmt[b"name"]
                m.realsize = _pax_int(fmt.get(b"realsize", b""), b"GNU.sparse.realsize", label, _NS_MAX)
                m.sparse = "pax1"
            else:
                raise self.fail(
                    "an old PAX sparse format (GNU.sparse 0.x)",
                    "Only GNU tar's default sparse formats are supported: rebuild the layer without --sparse.",
                )
        m.type = typ
        m.size = 0 if typ in _HEADER_ONLY_TYPES else size
        return m

    def gnu_sparse(self, blk: bytes, meta: int) -> tuple[list[tuple[int, int]], int, int]:
        """Old GNU sparse header ('S'): 4 map entries in the header, more in 512-byte extension blocks."""
        label = self.label
        num = _octal_or_base256
        segments = []
        entries = [blk[386 + 24 * i : 410 + 24 * i] for i in range(4)]
        extended = blk[482]
        realsize = num(blk[483:495], "sparse realsize", label)
        while True:
            for ent in entries:
                if not ent.strip(b"\0"):
                    continue
                segments.append((num(ent[:12], "sparse offset", label), num(ent[12:24], "sparse size", label)))
            if not extended:
                break
            meta += 512
            if meta > self.lim.max_header_bytes:
                raise self.fail(f"sparse map larger than max_header_bytes ({self.lim.max_header_bytes})")
            ext = self.stream.read_exact(512)
            entries = [ext[24 * i : 24 * i + 24] for i in range(21)]
            extended = ext[504]
        return segments, realsize, meta

    # -- the main loop ---------------------------------------------------------------------------------------

    def run(self) -> None:
        stream = self.stream
        max_entries = self.lim.max_entries
        while True:
            m = self.next_member()
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
            stream.skip(_pad(m.size))
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

    def apply(self, m: _Member) -> None:
        lim = self.lim
        if len(m.name) > lim.max_path_length:
            raise self.fail(f"path longer than max_path_length ({lim.max_path_length})")
        parts = _clean(m.name)
        typ = m.type
        if not parts:
            if typ != b"5":
                raise self.fail("a non-directory entry for the layer root")
            self.meta_dir(self.root, m, b"")
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
        if typ in _REG_TYPES:
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
            key = b"/".join(_clean(self.entry))
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

    def regular(self, parts: list[bytes], m: _Member) -> None:
        segments = None
        if m.sparse is not None:
            segments = self.sparse_map(m)
            self.check_size(m.realsize)
        else:
            self.check_size(m.size)
        self.count_created()
        pfd, _res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
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
            fd = os.open(name, _O_NEW, perm, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            fd = os.open(name, _O_NEW, perm, dir_fd=pfd)
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

    def sparse_map(self, m: _Member) -> list[tuple[int, int]]:
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

    def directory(self, parts: list[bytes], m: _Member) -> None:
        pfd, res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
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
        fd = os.open(name, _O_DIR, dir_fd=pfd)
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

    def child_gid(self, m: _Member) -> int | None:
        """Group new children of a directory entry inherit (only known, and only needed, as root)."""
        return m.gid if self.as_root and m.mode & stat.S_ISGID else None

    def meta_fd(self, fd: int, m: _Member, owner: tuple[int, int], made: int, is_dir: bool) -> None:
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
        self, fd: int, m: _Member, key: bytes, owner: tuple[int, int] | None = None, made: int | None = None
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

    def xattrs(self, target: int | str, m: _Member, follow: bool = True, on_link: bool = False) -> None:
        for key, value in m.xattrs or ():
            if key.startswith(_FORBIDDEN_XATTR_PREFIXES):
                raise self.fail(
                    f"the layer sets the overlay attribute {_show(key)}",
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

    def symlink(self, parts: list[bytes], m: _Member) -> None:
        if len(m.linkname) > self.lim.max_path_length:
            raise self.fail(f"symlink target longer than max_path_length ({self.lim.max_path_length})")
        if not m.linkname:
            raise self.fail("a symlink with an empty target")
        self.count_created()
        pfd, _res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        try:
            os.symlink(m.linkname, name, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            os.symlink(m.linkname, name, dir_fd=pfd)
        self.meta_path(pfd, name, m, sgid, is_link=True)

    def meta_path(self, pfd: int, name: bytes, m: _Member, sgid: int | None, is_link: bool) -> None:
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

    def hardlink(self, parts: list[bytes], m: _Member) -> None:
        if len(m.linkname) > self.lim.max_path_length:
            raise self.fail(f"hardlink target longer than max_path_length ({self.lim.max_path_length})")
        target = _clean(m.linkname)
        if not target:
            raise self.fail("a hardlink to the layer root")
        if len(target) > self.lim.max_depth:
            raise self.fail(f"hardlink target deeper than max_depth ({self.lim.max_depth})")
        self.count_created()
        missing = self.fail(
            f"hardlink target '{_show(m.linkname)}' does not exist in this layer (hardlink targets are resolved "
            "inside the layer root)"
        )
        try:
            tfd = self.dir(target[:-1], False)[0]
        except (FileNotFoundError, NotADirectoryError):
            raise missing
        pfd = self.dir(parts[:-1], True)[0]
        name = parts[-1]
        # Hardlink entries get no metadata: the inode already has its target's (CVE-2021-32760). linkat without
        # AT_SYMLINK_FOLLOW links a symlink itself, never what it points to.
        try:
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise missing
        except PermissionError:
            st_t = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            if stat.S_ISDIR(st_t.st_mode):
                raise self.fail(f"a hardlink to the directory '{_show(m.linkname)}'")
            raise
        except FileExistsError:
            st_t = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            st_n = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if (st_t.st_dev, st_t.st_ino) == (st_n.st_dev, st_n.st_ino):
                return
            self.replace(pfd, name)
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def device(self, parts: list[bytes], m: _Member) -> None:
        if m.devmajor > _MAX_MAJOR or m.devminor > _MAX_MINOR:
            raise self.fail(f"device number {m.devmajor}:{m.devminor} out of range")
        if m.type == b"3" and m.devmajor == 0 and m.devminor == 0:
            self.whiteout(parts[:-1] + [_WH + parts[-1]])  # already an overlay whiteout
            return
        if not self.as_root:
            self.note("device nodes need root")
            return
        self.count_created()
        pfd, _res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
        kind = stat.S_IFCHR if m.type == b"3" else stat.S_IFBLK
        dev = os.makedev(m.devmajor, m.devminor)
        try:
            os.mknod(name, kind | (m.mode & 0o777), dev, dir_fd=pfd)
        except FileExistsError:
            self.replace(pfd, name)
            os.mknod(name, kind | (m.mode & 0o777), dev, dir_fd=pfd)
        self.meta_path(pfd, name, m, sgid, is_link=False)

    def fifo(self, parts: list[bytes], m: _Member) -> None:
        self.count_created()
        pfd, _res, sgid = self.dir(parts[:-1], True)
        name = parts[-1]
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
            pfd, _res, _sg = self.dir(parts[:-1], True)
            if self.as_root:
                os.setxattr(pfd, OPAQUE_XATTR, b"y")
            else:
                self.marker(pfd, base)
            return
        if kind == "meta":
            self.note("AUFS metadata entries (.wh..wh.*) ignored")
            return
        self.count_created()
        pfd, _res, _sg = self.dir(parts[:-1], True)
        if not self.as_root:
            self.marker(pfd, base)
            return
        try:
            os.mknod(target, stat.S_IFCHR, 0, dir_fd=pfd)
        except FileExistsError:
            pass  # the same layer has this name: its own content wins over its whiteout

    def marker(self, pfd: int, name: bytes) -> None:
        if not self.plain_marked:
            # Tells a container start with one lstat that overlayfs can't read this folder's whiteouts.
            os.close(os.open(PLAIN_FORM_MARK, _O_NEW, 0o600, dir_fd=self.root))
            self.plain_marked = True
        try:
            os.close(os.open(name, _O_NEW, 0o600, dir_fd=pfd))
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                self.replace(pfd, name)
                os.close(os.open(name, _O_NEW, 0o600, dir_fd=pfd))

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
) -> LayerResult:
    """Extract one compressed layer stream into ``dest`` in overlay form, in one pass.

    ``raw`` is the compressed blob as stored/served (the caller may tee it into the blob store while we read);
    ``dest`` must be an empty directory or not exist. Decompresses, hashes the diff_id over the whole decompressed
    stream (read to EOF) and extracts. ``as_root`` None means "euid is 0". On any error raises ``UnpackError`` (or
    the ``DockerlessError`` the raw stream raised) and removes everything written under ``dest``.
    """
    limits = limits or UnpackLimits()
    if as_root is None:
        as_root = os.geteuid() == 0
    kind, mlabel = _compression(media_type)
    label = f"extracting {mlabel} into {dest}"
    root, created = prepare_dest(dest, label)
    try:
        src = decompressing_reader(raw, media_type)
        if kind == "gzip":
            src = _Prefetch(src)  # type: ignore[arg-type]
    except BaseException:
        cleanup_dest(dest, root, created)
        raise
    stream = _Stream(src, limits, label)  # type: ignore[arg-type]
    ex = _Extractor(root, stream, limits, as_root, label)
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
        diff_id="sha256:" + stream.hexdigest(), size=stream.size, entries=ex.entries, skipped=ex.skipped, notes=notes
    )


# --------------------------------------------------------------------------------------------------------------
# Flattening


def flatten(layer_dirs: Sequence[str], dest: str, *, as_root: bool | None = None) -> None:
    """Merge layer folders (bottom -> top, overlay or plain form) into a plain root filesystem at ``dest``.

    Applies whiteouts and opaque directories (no markers are left), keeps hardlinks within a layer, symlinks as
    symlinks, owners, modes (setuid included) and xattrs (as root; ``trusted.overlay.*`` never), and sets times.
    ``dest`` must be an empty directory or not exist; it is independent of the layer folders (files are copied with
    copy_file_range, never hardlinked). On error, everything written under ``dest`` is removed. The merge is
    ``whiteouts.merge``, the one the runtime's copy fallback uses.
    """
    merge(layer_dirs, dest, as_root=as_root)


# --------------------------------------------------------------------------------------------------------------
# Tree manifests (for comparing trees in tests: ours vs umoci's, before vs after)


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
