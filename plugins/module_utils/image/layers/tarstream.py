# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tar stream of a layer: a bounded, hashing byte reader and the header parser, read like Go's archive/tar.

``TarStream`` reads the decompressed stream (decompress.py) once. It hashes every byte into the diff_id (the
whole stream, including anything after the end-of-archive blocks, which may only be zero padding), counts the
decompressed size against ``max_total_bytes`` and, once more than 16 MiB came out, the decompression ratio against
``max_ratio``. ``next_member`` parses one entry's headers: ustar, GNU (long names, base-256 numbers, old sparse)
and PAX (path, linkpath, size, uid, gid, mtime, atime, ``SCHILY.xattr.*``, GNU sparse 1.0), with the extended
header bytes of an entry bounded by ``max_header_bytes``. As in Go's archive/tar (which made the layers Docker
hashes) the size of header-only entries (links, directories, devices, fifos) is ignored, global PAX headers are
validated and ignored, and a stream may end without the end-of-archive blocks. Parsing is linear in the input.

Nothing here touches the filesystem: the extractor (extract.py) applies the members.
"""

from __future__ import annotations

import hashlib
import zlib

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import CHUNK
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import _Reader

RATIO_FLOOR = 16 << 20  # the ratio check starts once this many bytes were decompressed
MAX_ID = (1 << 32) - 2  # uid/gid 2^32-1 is "-1", "don't change", for chown(2)
NS_MAX = (1 << 63) - 1
ZERO_BLOCK = bytes(512)
REG_TYPES = (b"0", b"\0", b"7")
HEADER_ONLY_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # data size ignored, as Go's archive/tar does


class UnpackLimits(Record):
    """Bounds for one layer. Defaults fit any sane image; lower them for untrusted sources or tests. The stream
    checks the decompressed size, the ratio and the header bytes, the extractor the rest; callers import it from
    extract.py with ``extract_layer``."""

    max_entries: int = 1_000_000
    max_total_bytes: int = 64 * 2**30  # decompressed bytes written (and the decompressed stream)
    max_header_bytes: int = 1 * 2**20  # PAX/GNU long-name/sparse-map bytes per entry
    max_path_length: int = 4096
    max_ratio: int = 1000  # decompressed/compressed, checked once > 16 MiB decompressed
    max_depth: int = 256  # path components after resolution; keeps fd use and recursion bounded


class TarStream:
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
        chunk = self._src.read(CHUNK)
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
        if self.size > RATIO_FLOOR and self.size > lim.max_ratio * max(1, self._src.compressed_bytes):
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

    # -- tar headers -----------------------------------------------------------------------------------------

    def fail(self, what: str, step: str = "The layer is malformed or hostile: check where the image comes from.") -> UnpackError:
        return UnpackError(f"{self._label}: {what}. {step}")

    def next_member(self) -> Member | None:
        stream = self
        lim = self._limits
        label = self._label
        meta = 0
        pax: dict[bytes, bytes] = {}
        long_name = long_link = None
        while True:
            if stream.at_eof():
                if meta:
                    raise self.fail("the tar stream ends after an extended header, without its entry")
                return None
            blk = stream.read_exact(512)
            if blk == ZERO_BLOCK:
                if stream.at_eof():
                    return None
                if stream.read_exact(512) != ZERO_BLOCK:
                    raise self.fail("a single zero block inside the tar stream")
                return None
            chk = _octal_or_base256(blk[148:156], "checksum", label)
            unsigned = byte_sum(blk) - sum(blk[148:156]) + 256
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
                stream.skip(pad(size))
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
    ) -> Member:
        label = self._label
        num = _octal_or_base256
        m = Member()
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
                    size = _pax_int(value, key, label, NS_MAX)
                elif key == b"uid":
                    m.uid = _pax_int(value, key, label, NS_MAX)
                elif key == b"gid":
                    m.gid = _pax_int(value, key, label, NS_MAX)
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
        if m.uid > MAX_ID or m.gid > MAX_ID:
            raise self.fail(f"uid/gid {m.uid}/{m.gid} out of range")
        if typ == b"S":
            m.sparse, m.realsize, meta = self.gnu_sparse(blk, meta)
            typ = b"0"
        elif m.sparse_format is not None:
            fmt = m.sparse_format
            if fmt.get(b"major") == b"1" and fmt.get(b"minor") == b"0":
                if b"name" in fmt:
                    m.name = fmt[b"name"]
                m.realsize = _pax_int(fmt.get(b"realsize", b""), b"GNU.sparse.realsize", label, NS_MAX)
                m.sparse = "pax1"
            else:
                raise self.fail(
                    "an old PAX sparse format (GNU.sparse 0.x)",
                    "Only GNU tar's default sparse formats are supported: rebuild the layer without --sparse.",
                )
        m.type = typ
        m.size = 0 if typ in HEADER_ONLY_TYPES else size
        return m

    def gnu_sparse(self, blk: bytes, meta: int) -> tuple[list[tuple[int, int]], int, int]:
        """Old GNU sparse header ('S'): 4 map entries in the header, more in 512-byte extension blocks."""
        label = self._label
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
            if meta > self._limits.max_header_bytes:
                raise self.fail(f"sparse map larger than max_header_bytes ({self._limits.max_header_bytes})")
            ext = self.read_exact(512)
            entries = [ext[24 * i : 24 * i + 24] for i in range(21)]
            extended = ext[504]
        return segments, realsize, meta

    # -- the main loop ---------------------------------------------------------------------------------------


class Member:
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


def byte_sum(blk: bytes) -> int:
    """Sum of the 512 bytes of a header, in C: adler32's low half is 1 + the byte sum modulo 65521, exact for 256
    bytes (at most 65280). Several times faster than ``sum(blk)``, which boxes every byte."""
    adler32 = zlib.adler32
    return (adler32(blk[:256]) & 0xFFFF) + (adler32(blk[256:]) & 0xFFFF) - 2


def pad(n: int) -> int:
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


def show_name(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def clean_path(name: bytes) -> list[bytes]:
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
