# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer blobs to tar streams: gzip, zstd and plain readers, chosen by the layer's media type.

gzip (OCI ``tar+gzip``, Docker ``rootfs.diff.tar.gzip``) is inflated with ISA-L (isal.py, about twice as fast)
when the host has libisal.so.2 and it passes a self-test once per process, else with zlib; several members allowed
(like Go's multistream reader). Both readers fail a damaged stream with the same message. ``DOCKERLESS_INFLATE``
chooses: ``auto`` (default), ``zlib`` (forced) or ``isal`` (required). ``Prefetch`` runs the reader in a helper
thread (ISA-L through ctypes, zlib and hashlib release the GIL) so that inflating and hashing overlap with the
extractor writing files. zstd runs in the ``zstd`` command. Plain tar is passed
through. Each reader counts the raw bytes it consumed (``compressed_bytes``) so that the tar stream
(tarstream.TarStream) can bound the decompression ratio; non-distributable (foreign) and unknown media types are
refused here, before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import shutil
import tempfile
import threading
import zlib

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import isal

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


CHUNK = 1 << 20
FEED = 1 << 16  # compressed bytes per zlib call (see _GzipReader.read)


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

    def _raw_read(self, n: int = CHUNK) -> bytes:
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
            chunk = self.read(CHUNK)
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


def _truncated(label: str) -> UnpackError:
    return UnpackError(f"{label}: the gzip stream ends early (truncated). Remove the blob from the store and pull again.")


def _not_gzip(label: str) -> UnpackError:
    return UnpackError(
        f"{label}: data after the end of the gzip stream is not gzip. The blob is damaged or not a gzip layer: "
        "remove it from the store and pull again."
    )


def _corrupt(label: str, detail: str) -> UnpackError:
    return UnpackError(
        f"{label}: gzip data is corrupt ({detail}). The blob is damaged or its media type is wrong: remove it from "
        "the store and pull again."
    )


# What is wrong, in the same words whichever inflater found it: zlib's own messages for the gzip header and
# trailer (the ISA-L reader checks those itself and says the same), one phrase for the deflate data (zlib names a
# dozen cases, ISA-L three codes that do not map onto them).
_INVALID_DEFLATE = "invalid deflate data"
_ZLIB_DETAIL = {
    "incorrect header check": "incorrect header check",
    "unknown compression method": "unknown compression method",
    "unknown header flags set": "unknown header flags set",
    "header crc mismatch": "header crc mismatch",
    "incorrect data check": "incorrect data check",
    "incorrect length check": "incorrect length check",
    "invalid block type": _INVALID_DEFLATE,
    "invalid stored block lengths": _INVALID_DEFLATE,
    "too many length or distance symbols": _INVALID_DEFLATE,
    "invalid code lengths set": _INVALID_DEFLATE,
    "invalid bit length repeat": _INVALID_DEFLATE,
    "invalid code -- missing end-of-block": _INVALID_DEFLATE,
    "invalid literal/lengths set": _INVALID_DEFLATE,
    "invalid distances set": _INVALID_DEFLATE,
    "invalid literal/length code": _INVALID_DEFLATE,
    "invalid distance code": _INVALID_DEFLATE,
    "invalid distance too far back": _INVALID_DEFLATE,
}


def _zlib_detail(exc: zlib.error) -> str:
    """``Error -3 while decompressing data: invalid block type`` -> the table's words (zlib's text if unknown)."""
    text = str(exc)
    msg = text.split(": ", 1)[1] if ": " in text else text
    return _ZLIB_DETAIL.get(msg, msg)


class _GzipReader(_Reader):
    """RFC 1952 gzip inflated with zlib, several members allowed (like Go's multistream reader); zero padding
    after a member is tolerated, anything else after it is an error."""

    backend = "zlib"

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
                self._in = bytes(self._in).lstrip(b"\0")
                if len(self._in) < 2:
                    more = self._raw_read()
                    if not more:
                        if self._in:
                            raise _not_gzip(self._label)
                        self._state = 2
                        return b""
                    self._in += more
                    continue
                if self._in[:2] != b"\x1f\x8b":
                    raise _not_gzip(self._label)
                self._d = zlib.decompressobj(31)
                self._in = memoryview(self._in)
                self._state = 1
            out = self._inflate(n)
            if out:
                return out

    def _inflate(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current member, at least half of that unless the member ends first (b"" when
        it just ended)."""
        # zlib gets the input FEED bytes at a time, through a memoryview (no copies): when ``n`` bounds the output,
        # what zlib leaves of its input comes back as a new bytes object (unconsumed_tail), which fed a whole 1 MiB
        # read is a copy of most of it for every piece of output. Fed 64 KiB at a time, inflating Debian's layers
        # takes about a sixth less CPU; the pieces are joined to chunks of n/2..n bytes (the reader's consumers
        # count their read-ahead in chunks).
        parts = []
        size = 0
        while size < max(n // 2, 1):
            if not self._in:
                self._in = memoryview(self._raw_read())
                if not self._in:
                    if parts:
                        break  # the next read reports it
                    raise _truncated(self._label)
            piece = self._in[:FEED]
            try:
                out = self._d.decompress(piece, n - size)
            except zlib.error as exc:
                raise _corrupt(self._label, _zlib_detail(exc)) from None
            if out:
                parts.append(out)
                size += len(out)
            if self._d.eof:
                self._in = self._in[len(piece) - len(self._d.unused_data):]
                self._state = 0
                break
            self._in = self._in[len(piece) - len(self._d.unconsumed_tail):]
        return parts[0] if len(parts) == 1 else b"".join(parts)


# RFC 1952 section 2.3.1: FLG bits; bits 5-7 are reserved and must be zero.
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT, _FRESERVED = 0x02, 0x04, 0x08, 0x10, 0xE0
# _IsalGzipReader._phase
_BETWEEN, _HEADER, _BODY, _TRAILER, _DONE = range(5)


class _IsalGzipReader(_Reader):
    """The same gzip reader as ``_GzipReader`` with ISA-L inflating the members' deflate data (isal.py). The header
    and trailer are read here, with zlib's checks in zlib's order, so that a damaged blob fails with the same
    message at the same point of the stream whichever backend reads it."""

    backend = "isal"

    def __init__(self, raw: BinaryIO, label: str, lib: isal.Isal) -> None:
        super().__init__(raw, label)
        self._lib = lib
        self._inflater = isal.Inflater(lib)
        self._out = isal.output_buffer(lib, CHUNK)
        self._out_size = CHUNK
        self._in = b""
        self._pos = 0
        self._phase = _HEADER  # the first member starts at once: no padding before it, its header is checked
        self._hstage = 0  # header: 0 ID1 ID2 CM FLG, 1 MTIME XFL OS, 2 XLEN, 3 extra field, 4 name, 5 comment, 6 HCRC
        self._hflags = 0
        self._hskip = 0
        self._hcrc = 0
        self._tstage = 0  # trailer: 0 CRC32, 1 ISIZE

    def _more(self) -> bool:
        """Appends the next raw chunk to the input left; False at the end of the blob."""
        data = self._raw_read()
        if not data:
            return False
        if not isinstance(data, bytes):
            data = bytes(data)
        self._in = self._in[self._pos:] + data if self._pos < len(self._in) else data
        self._pos = 0
        return True

    def _take(self, size: int) -> bytes | None:
        """The next ``size`` header or trailer bytes (reading more as needed), None when the blob ends first."""
        while len(self._in) - self._pos < size:
            if not self._more():
                return None
        piece = self._in[self._pos:self._pos + size]
        self._pos += size
        if self._hflags & _FHCRC and self._phase == _HEADER:
            self._hcrc = zlib.crc32(piece, self._hcrc)
        return piece

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self._read_all()
        if n == 0:
            return b""
        while True:
            if self._phase == _DONE:
                return b""
            if self._phase == _BETWEEN:
                while True:
                    rest = len(self._in) - self._pos
                    if rest:
                        self._pos += rest - len(self._in[self._pos:].lstrip(b"\0"))  # zero padding
                    if len(self._in) - self._pos >= 2:
                        break
                    if not self._more():
                        if self._pos < len(self._in):
                            raise _not_gzip(self._label)
                        self._phase = _DONE
                        return b""
                if self._in[self._pos:self._pos + 2] != b"\x1f\x8b":
                    raise _not_gzip(self._label)
                self._inflater.reset()
                self._hstage = 0
                self._phase = _HEADER
            if self._phase == _HEADER:
                self._header()
                self._phase = _BODY
            if self._phase == _BODY:
                out = self._inflate(n)
                if out:
                    return out
            if self._phase == _TRAILER:
                self._trailer()
                self._phase = _BETWEEN

    def _header(self) -> None:
        """Reads the member's header (RFC 1952 section 2.3), checking what zlib checks as soon as zlib does."""
        label = self._label
        while True:
            stage = self._hstage
            if stage == 0:
                self._hflags = 0
                self._hcrc = 0
                head = self._take(2)
                if head is None:
                    raise _truncated(label)
                if head != b"\x1f\x8b":
                    raise _corrupt(label, "incorrect header check")
                more = self._take(2)
                if more is None:
                    raise _truncated(label)
                if more[0] != 8:
                    raise _corrupt(label, "unknown compression method")
                if more[1] & _FRESERVED:
                    raise _corrupt(label, "unknown header flags set")
                self._hflags = more[1]
                if self._hflags & _FHCRC:
                    self._hcrc = zlib.crc32(head + more)
                self._hstage = 1
            elif stage == 1:
                if self._take(6) is None:
                    raise _truncated(label)
                self._hstage = 2 if self._hflags & _FEXTRA else 4
            elif stage == 2:
                xlen = self._take(2)
                if xlen is None:
                    raise _truncated(label)
                self._hskip = int.from_bytes(xlen, "little")
                self._hstage = 3
            elif stage == 3:
                # The extra field is skipped as it comes (up to 64 KiB, never held whole).
                while self._hskip:
                    if self._pos == len(self._in) and not self._more():
                        raise _truncated(label)
                    piece = self._in[self._pos:self._pos + self._hskip]
                    self._pos += len(piece)
                    self._hskip -= len(piece)
                    if self._hflags & _FHCRC:
                        self._hcrc = zlib.crc32(piece, self._hcrc)
                self._hstage = 4
            elif stage in (4, 5):
                if self._hflags & (_FNAME if stage == 4 else _FCOMMENT):
                    # A zero-terminated string of any length, skipped as it comes.
                    while True:
                        if self._pos == len(self._in) and not self._more():
                            raise _truncated(label)
                        end = self._in.find(b"\0", self._pos)
                        stop = len(self._in) if end < 0 else end + 1
                        if self._hflags & _FHCRC:
                            self._hcrc = zlib.crc32(self._in[self._pos:stop], self._hcrc)
                        self._pos = stop
                        if end >= 0:
                            break
                self._hstage = stage + 1
            else:
                if self._hflags & _FHCRC:
                    want = self._hcrc & 0xFFFF
                    got = self._take(2)
                    if got is None:
                        raise _truncated(label)
                    if int.from_bytes(got, "little") != want:
                        raise _corrupt(label, "header crc mismatch")
                self._hstage = 0
                return

    def _inflate(self, n: int) -> bytes:
        """Up to ``n`` bytes of the current member (fewer only when it ends; b"" when it just ended)."""
        if n > self._out_size:
            self._out = isal.output_buffer(self._lib, n)
            self._out_size = n
        out = self._lib.ctypes.addressof(self._out)
        size = 0
        while size < n:
            if self._pos >= len(self._in) and not self._more():
                if size:
                    break  # the next read reports it
                raise _truncated(self._label)
            try:
                self._in, self._pos, produced, done = self._inflater.inflate(self._in, self._pos, out + size, n - size)
            except isal.IsalError as exc:
                raise _corrupt(
                    self._label, _INVALID_DEFLATE if exc.code in isal.DEFLATE_ERRORS else f"ISA-L error {exc.code}"
                ) from None
            size += produced
            if done:
                self._phase = _TRAILER
                self._tstage = 0
                break
        return self._lib.ctypes.string_at(out, size) if size else b""

    def _trailer(self) -> None:
        """CRC-32 then ISIZE (RFC 1952 section 2.3.1), each checked as soon as its 4 bytes are there, as zlib does."""
        if self._tstage == 0:
            got = self._take(4)
            if got is None:
                raise _truncated(self._label)
            if int.from_bytes(got, "little") != self._inflater.crc:
                raise _corrupt(self._label, "incorrect data check")
            self._tstage = 1
        got = self._take(4)
        if got is None:
            raise _truncated(self._label)
        if int.from_bytes(got, "little") != self._inflater.total_out:
            raise _corrupt(self._label, "incorrect length check")


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


class Prefetch(_Reader):
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

    @property
    def backend(self) -> str | None:
        return getattr(self._inner, "backend", None)

    def _run(self) -> None:
        try:
            while not self._stop:
                chunk = self._inner.read(CHUNK)
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


def compression(media_type: str) -> tuple[str, str]:
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


INFLATE_ENV = "DOCKERLESS_INFLATE"
_ISAL_LOCK = threading.Lock()
_ISAL_CHECKED: dict = {}  # library name -> (isal.Isal or None, why not)


def _self_test_stream() -> tuple[bytes, bytes]:
    """(gzip stream, its content): the cases a layer can hold, made here with zlib so that ISA-L's output is
    compared with known bytes. Four members (dynamic Huffman blocks with matches across the 32 KiB window, an
    empty member, a stored block, fixed Huffman codes), one header with every optional field and a header CRC,
    zero padding between members and after the last."""
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(400))  # 12.8 KB, incompressible
    text = b"".join(b"%06d usr/share/doc/package-%d/copyright\n" % (i, i % 97) for i in range(1500))
    content = text[:30000] + noise + text + bytes(5000) + noise[:3000]
    parts = (content[:70000], b"", content[70000:75000], content[75000:])

    def deflate(data: bytes, level: int, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
        return c.compress(data) + c.flush()

    def member(data: bytes, body: bytes, header: bytes = b"\x1f\x8b\x08\x00\0\0\0\0\0\xff") -> bytes:
        return header + body + (zlib.crc32(data)).to_bytes(4, "little") + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")

    full = b"\x1f\x8b\x08" + bytes([_FHCRC | _FEXTRA | _FNAME | _FCOMMENT]) + b"\0\0\0\0\0\x03"
    full += (7).to_bytes(2, "little") + b"AP\x03\0xyz" + b"layer.tar\0" + b"made here\0"
    full += (zlib.crc32(full) & 0xFFFF).to_bytes(2, "little")
    stream = (
        member(parts[0], deflate(parts[0], 6))
        + member(parts[1], deflate(parts[1], 6), full)
        + bytes(3)
        + member(parts[2], deflate(parts[2], 0))
        + member(parts[3], deflate(parts[3], 1, zlib.Z_FIXED))
        + bytes(10)
    )
    return stream, content


class _Pieces:
    """A raw stream handing out ``data`` in pieces of odd sizes: members, headers and trailers cut anywhere."""

    SIZES = (1, 2, 3, 5, 8, 13, 1021, 4093, 16381)

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._i = 0

    def read(self, n: int = -1) -> bytes:
        size = min(n, self.SIZES[self._i % len(self.SIZES)])
        self._i += 1
        piece = self._data[self._pos:self._pos + size]
        self._pos += len(piece)
        return piece


def _isal_self_test(lib: isal.Isal) -> str | None:
    """None when ISA-L inflates the self-test stream to the right bytes, whole and in pieces; else what went wrong."""
    stream, content = _self_test_stream()
    try:
        first = _IsalGzipReader(io.BytesIO(stream), "self-test", lib)._read_all()  # type: ignore[arg-type]
        reader = _IsalGzipReader(_Pieces(stream), "self-test", lib)  # type: ignore[arg-type]
        got = []
        for i in range(1 << 20):
            chunk = reader.read((1, 7, 4096, CHUNK)[i % 4])
            if not chunk:
                break
            got.append(chunk)
        second = b"".join(got)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any failure here means zlib
        return f"self-test failed: {exc}"
    if first != content or second != content:
        return "self-test failed: wrong output"
    return None


def isal_inflater(library: str | None = None) -> tuple[isal.Isal | None, str]:
    """ISA-L bound and self-tested once per process: (the library, "") or (None, why it is not used)."""
    library = library or isal.LIBISAL
    with _ISAL_LOCK:
        if library not in _ISAL_CHECKED:
            lib = isal.load(library)
            why = f"{library} cannot be loaded or lacks isal_inflate" if lib is None else _isal_self_test(lib)
            _ISAL_CHECKED[library] = (None, why) if why else (lib, "")
        return _ISAL_CHECKED[library]


def inflate_backend() -> tuple[isal.Isal | None, str]:
    """The gzip inflater chosen by ``DOCKERLESS_INFLATE``: (ISA-L, "") or (None, why zlib). ``auto`` (or unset)
    takes ISA-L when it loads and passes its self-test, ``zlib`` forces zlib, ``isal`` requires ISA-L."""
    want = os.environ.get(INFLATE_ENV, "").strip().lower() or "auto"
    if want == "zlib":
        return None, f"{INFLATE_ENV}=zlib"
    if want not in ("auto", "isal"):
        raise UnpackError(f"{INFLATE_ENV}={want!r} is not a choice: use auto (the default), isal or zlib.")
    lib, why = isal_inflater()
    if lib is None and want == "isal":
        raise UnpackError(
            f"{INFLATE_ENV}=isal but ISA-L cannot be used ({why}). Install libisal2 (Debian, Ubuntu) or isa-l "
            "(Fedora, RHEL), or unset it to use zlib."
        )
    return lib, why


_USED: set = set()


def inflaters_used() -> list[str]:
    """The gzip inflaters ("isal", "zlib") of the readers made in this process so far."""
    return sorted(_USED)


def decompressing_reader(raw: BinaryIO, media_type: str) -> BinaryIO:
    """Return a reader of the decompressed tar stream of a layer blob with media type ``media_type``.

    gzip (OCI ``…tar+gzip`` and Docker ``…rootfs.diff.tar.gzip``) is inflated with ISA-L or zlib
    (``inflate_backend``; the reader's ``backend`` says which), zstd (``…tar+zstd``) by
    the ``zstd`` command, plain tar (``…v1.tar``) is passed through. The reader has ``read(n)``, ``close()`` and
    ``compressed_bytes`` (raw bytes consumed so far). Non-distributable/foreign and unknown media types raise
    ``UnpackError``.
    """
    kind, label = compression(media_type)
    if kind == "gzip":
        lib = inflate_backend()[0]
        reader = _GzipReader(raw, label) if lib is None else _IsalGzipReader(raw, label, lib)
        _USED.add(reader.backend)
        return reader  # type: ignore[return-value]
    if kind == "zstd":
        return _ZstdReader(raw, label)  # type: ignore[return-value]
    return _PlainReader(raw, label)  # type: ignore[return-value]


def layer_reader(raw: BinaryIO, media_type: str, depth: int = 8) -> BinaryIO:
    """The reader the extractor reads a layer through: ``decompressing_reader``, and for gzip a ``Prefetch`` of it
    (inflating and hashing in a helper thread, ``depth`` chunks of at most 1 MiB ahead), started at once."""
    src = decompressing_reader(raw, media_type)
    if compression(media_type)[0] == "gzip":
        src = Prefetch(src, depth)  # type: ignore[arg-type,assignment]
    return src
