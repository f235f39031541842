# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer blobs to tar streams: gzip, zstd and plain readers, chosen by the layer's media type.

gzip (OCI ``tar+gzip``, Docker ``rootfs.diff.tar.gzip``) is inflated with zlib, several members allowed (like Go's
multistream reader); ``Prefetch`` runs it in a helper thread (zlib and hashlib release the GIL) so that inflating
and hashing overlap with the extractor writing files. zstd runs in the ``zstd`` command. Plain tar is passed
through. Each reader counts the raw bytes it consumed (``compressed_bytes``) so that the tar stream
(tarstream.TarStream) can bound the decompression ratio; non-distributable (foreign) and unknown media types are
refused here, before anything is written.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import tempfile
import threading
import zlib

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError

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
                self._in = bytes(self._in).lstrip(b"\0")
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
                    raise UnpackError(
                        f"{self._label}: the gzip stream ends early (truncated). Remove the blob from the store and "
                        "pull again."
                    )
            piece = self._in[:FEED]
            try:
                out = self._d.decompress(piece, n - size)
            except zlib.error as exc:
                raise UnpackError(
                    f"{self._label}: gzip data is corrupt ({exc}). The blob is damaged or its media type is wrong: "
                    "remove it from the store and pull again."
                )
            if out:
                parts.append(out)
                size += len(out)
            if self._d.eof:
                self._in = self._in[len(piece) - len(self._d.unused_data):]
                self._state = 0
                break
            self._in = self._in[len(piece) - len(self._d.unconsumed_tail):]
        return parts[0] if len(parts) == 1 else b"".join(parts)


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


def decompressing_reader(raw: BinaryIO, media_type: str) -> BinaryIO:
    """Return a reader of the decompressed tar stream of a layer blob with media type ``media_type``.

    gzip (OCI ``…tar+gzip`` and Docker ``…rootfs.diff.tar.gzip``) is inflated with zlib, zstd (``…tar+zstd``) by
    the ``zstd`` command, plain tar (``…v1.tar``) is passed through. The reader has ``read(n)``, ``close()`` and
    ``compressed_bytes`` (raw bytes consumed so far). Non-distributable/foreign and unknown media types raise
    ``UnpackError``.
    """
    kind, label = compression(media_type)
    if kind == "gzip":
        return _GzipReader(raw, label)  # type: ignore[return-value]
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
