# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A blob download, verified while it streams and resumed when the connection breaks (``RegistryClient.open_blob``
hands it out). Nothing it delivers counts until EOF, where the size and the sha256 must match the descriptor."""

from __future__ import annotations

import io
import re

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError, RegistryError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import (
    READ_SIZE,
    describe_exc,
    read_errors,
)

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from typing import Any

CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class BlobReader(io.RawIOBase):
    """A blob download that verifies while it is read.

    * never reads past ``size + 1`` bytes; more than ``size`` → DigestMismatchError at once;
    * at EOF: fewer than ``size`` bytes or a sha256 other than ``digest`` → DigestMismatchError;
    * a connection cut mid-body resumes with ``Range: bytes=<offset>-`` when the server answers 206 with the
      right ``Content-Range``; a server that ignores Range (200) is restarted, its first ``offset`` bytes
      re-read and checked against what was already delivered; the hash continues over the delivered stream, so
      wrongly spliced bytes can never verify. At most ``max_retries`` resumes.

    ``client`` is the ``RegistryClient`` that opened it (requests, error reports and backoff are the client's).
    """

    def __init__(self, client: Any, repository: str, digest: str, size: int | None):
        super().__init__()
        self._client = client
        self._repository = repository
        self.digest = digest
        self.size = size
        self.bytes_read = 0
        self.resumes = 0
        self.verified = False
        import hashlib  # pylint: disable=import-outside-toplevel  # libcrypto: a no-change pull hashes nothing
        self._hasher = hashlib.sha256()
        self._resp: Any = None
        self._use_range = True
        self._op = f"downloading blob {digest} from {client._name(repository)}"

    def readable(self) -> bool:
        return True

    def open(self) -> None:
        self._resp = self._connect(0)

    def _check_length(self, resp: Any, expected_remaining: int | None) -> None:
        declared = resp.headers.get("Content-Length")
        if expected_remaining is not None and declared and declared.isdigit() and int(declared) != expected_remaining:
            resp.close()
            raise DigestMismatchError(
                f"{self._op}: the registry announces {declared} bytes where {expected_remaining} were expected "
                f"(descriptor size {self.size}); refusing the blob. The registry or a proxy is serving other content."
            )

    def _connect(self, offset: int) -> Any:
        resp = self._client._open_blob_response(self._repository, self.digest, self._op,
                                                offset if self._use_range else 0)
        if offset == 0 or not self._use_range:
            if resp.status_code != 200:
                self._client._raise_for(resp, self._op, "blob")
            self._check_length(resp, self.size)
            if offset:
                self._skip_prefix(resp, offset)
            return resp
        if resp.status_code == 206:
            m = CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
            total_ok = m and (m.group(3) == "*" or self.size is None or int(m.group(3)) == self.size)
            if m and int(m.group(1)) == offset and total_ok:
                self._check_length(resp, None if self.size is None else self.size - offset)
                return resp
            # A range other than the one asked for: splicing it would corrupt the blob. Restart instead.
            resp.close()
            self._use_range = False
            return self._connect(offset)
        if resp.status_code == 200:
            self._check_length(resp, self.size)
            self._skip_prefix(resp, offset)
            return resp
        self._client._raise_for(resp, self._op, "blob")
        return None  # pragma: no cover - _raise_for always raises

    def _skip_prefix(self, resp: Any, offset: int) -> None:
        """Re-read the ``offset`` bytes already delivered and check they are the same bytes (by hash)."""
        import hashlib  # pylint: disable=import-outside-toplevel  # libcrypto: a no-change pull hashes nothing
        prefix = hashlib.sha256()
        skipped = 0
        while skipped < offset:
            chunk = resp.raw.read(min(READ_SIZE, offset - skipped), decode_content=True)
            if not chunk:
                resp.close()
                raise _Cut("the restarted download ended before the resume point")
            prefix.update(chunk)
            skipped += len(chunk)
        if prefix.hexdigest() != self._hasher.copy().hexdigest():
            resp.close()
            raise DigestMismatchError(
                f"{self._op}: after a broken connection the registry served different bytes for the same blob; "
                "refusing it. The blob is changing under us or a proxy is corrupting data."
            )

    def _resume(self, why: str) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        while True:
            self.resumes += 1
            if self.resumes > self._client.backoff.max_retries:
                raise RegistryError(
                    f"{self._op}: the connection broke {self.resumes} times ({why}) at byte {self.bytes_read}. "
                    "Check the network or the registry, then try again."
                )
            self._client.backoff.sleep(self.resumes - 1)
            try:
                self._resp = self._connect(self.bytes_read)
                return
            except _Cut as exc:
                why = str(exc)
            except read_errors() as exc:
                why = describe_exc(exc)

    def readinto(self, buffer: Any) -> int:
        if self.verified or self.closed:
            return 0
        view = memoryview(buffer).cast("B")
        want = len(view)
        if self.size is not None:
            want = min(want, self.size + 1 - self.bytes_read)
        if want <= 0:
            return 0
        while True:
            try:
                data = self._resp.raw.read(want, decode_content=True)
                break
            except read_errors() as exc:
                self._resume(describe_exc(exc))
        if not data:
            self._finish()
            return 0
        self.bytes_read += len(data)
        if self.size is not None and self.bytes_read > self.size:
            self._resp.close()
            raise DigestMismatchError(
                f"{self._op}: the registry sent more than the descriptor's {self.size} bytes; refusing the blob."
            )
        self._hasher.update(data)
        view[: len(data)] = data
        return len(data)

    def _finish(self) -> None:
        if self.size is not None and self.bytes_read != self.size:
            raise DigestMismatchError(
                f"{self._op}: the registry sent {self.bytes_read} bytes, fewer than the descriptor's {self.size}; "
                "refusing the blob. Try again; if it persists the registry's copy is damaged."
            )
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != self.digest:
            raise DigestMismatchError(
                f"{self._op}: the content's digest is {actual}; refusing the blob. The registry's copy is corrupt "
                "or a proxy altered it; nothing was stored."
            )
        self.verified = True

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        super().close()


class _Cut(Exception):
    """Internal: a restarted download ended early; resume again."""
