# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client for the OCI Distribution API v2 (the Docker registry HTTP API): manifests, blobs, uploads, mounts.

One ``RegistryClient`` per registry host, over a stack of layers that each own one concern, in the order a
request meets them (go-containerregistry's ``pkg/v1/remote/transport`` is built the same way):

* ``retry.Retry``: 429 (Retry-After), 502/503/504 and connection failures, bounded, with backoff, for requests
  whose body can be sent again;
* ``auth.Auth``: Basic to the registry's origin only; Bearer tokens scoped ``repository:<name>:pull[,push]``,
  cached by scope; one re-authentication on a 401;
* ``transport.Redirects``: at most 10, never https → http, no Authorization to another origin;
* ``transport.Transport``: ``transport_direct`` (http.client) or, behind a proxy, ``transport_proxy`` (requests).

``ping.Endpoint`` holds the scheme (https; plain http only for loopback registries whose server does not speak
TLS, or registries marked ``insecure``) and the origin; ``responses`` turns unexpected answers into
``RegistryError``/``AuthError`` and redacts URLs; ``blob_reader.BlobReader`` verifies and resumes downloads.
Here: names are checked, manifests and blobs are hashed while they stream and checked against their digest and
size, bodies with a cap (manifests 4 MiB) are never buffered past it, and uploads restart from a fresh session
when the registry fails mid-way. The distribution spec (opencontainers/distribution-spec ``spec.md``) describes
the protocol.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DigestMismatchError,
    DockerlessError,
    ImageReferenceError,
    RegistryError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.oci import DOCKER_SCHEMA1
from ansible_collections.dockerless.containers.plugins.module_utils.image.oci import (
    MANIFEST_MEDIA_TYPES as _OCI_MANIFEST_MEDIA_TYPES,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import validate_digest
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_loads, sha256_hex
from ansible_collections.dockerless.containers.plugins.module_utils.registry.auth import (
    Auth,
    Challenge,
    repository_scope,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.blob_reader import BlobReader
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials
from ansible_collections.dockerless.containers.plugins.module_utils.registry.ping import Endpoint, ping
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import (
    READ_SIZE,
    BrokenRead,
    raise_for,
    read_capped,
    redact_url,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import (
    media_type as media_type_of,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.retry import Backoff, Retry
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport import (
    Redirects,
    Request,
    Transport,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport_direct import SEND_BLOCK_SIZE

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any, BinaryIO

# Docker v2 schema 2, Docker manifest list, OCI manifest, OCI index: the Accept header of every manifest request.
# (Without it distribution answers 404 for OCI manifests and converts schema 2 to schema 1.)
MANIFEST_MEDIA_TYPES: tuple[str, ...] = tuple(_OCI_MANIFEST_MEDIA_TYPES)
MAX_MANIFEST_SIZE = 4 * 2**20
# Blobs up to this size are uploaded monolithically (POST, then one PUT ?digest= with the body, as containerd
# does); larger ones in PATCH chunks of this size. One request per blob instead of one per 16 MiB chunk.
DEFAULT_CHUNK_SIZE = 256 * 2**20

_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Checked with fullmatch: "$" also matches before a trailing newline.
_REPO_RE = re.compile(rf"{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")


class _RestartUpload(Exception):
    """Internal: the upload session failed in a way a fresh session may fix (5xx, reset, expired token)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _LimitedReader:
    """Streams exactly ``length`` bytes of ``stream`` as a request body; requests sees its ``len``."""

    def __init__(self, stream: IO[bytes], length: int, what: str):
        self._stream = stream
        self._left = length
        self._length = length
        self._what = what

    def __len__(self) -> int:
        return self._length

    def _short(self) -> DigestMismatchError:
        return DigestMismatchError(
            f"{self._what}: the local blob ended {self._left} bytes early; it is shorter than its descriptor says. "
            "Check the store (image_info) or pull/build the image again."
        )

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.read(want)
        if not data:
            raise self._short()
        self._left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(READ_SIZE)
            if not chunk:
                return
            yield chunk

    def stream_to(self, sock: Any, send: Callable[[bytes], None]) -> None:
        """Send the body on ``direct_http``'s connection: by sendfile(2) from a file to a plain socket (the bytes
        never pass through Python), else in ``SEND_BLOCK_SIZE`` blocks."""
        fileno = None
        ssl = sys.modules.get("ssl")  # a TLS socket exists only once ssl is loaded; plain http never loads it
        if sock is not None and not (ssl is not None and isinstance(sock, ssl.SSLSocket)):
            try:
                fileno = self._stream.fileno()
                offset = self._stream.tell()
            except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
                fileno = None
        if fileno is not None and self._left > 0:
            sent = sock.sendfile(self._stream, offset, self._left)
            self._left -= sent
            if self._left:
                raise self._short()
            return
        while True:
            block = self.read(SEND_BLOCK_SIZE)
            if not block:
                return
            send(block)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


class RegistryClient:
    """Distribution API v2 client for one registry (``host[:port]`` as normalised by ``reference``).

    Thread-safe: one client can serve the parallel blob transfers of a pull or push.
    """

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None = None,
        *,
        insecure: bool = False,
        ca_path: str | None = None,
        timeout: float = 60,
        max_retries: int = 4,
        user_agent: str = "dockerless.containers",
        backoff_base: float = 0.5,
        retry_after_cap: float = 30.0,
    ):
        if not registry or "/" in registry or "@" in registry or any(c.isspace() for c in registry):
            raise ImageReferenceError(f"registry {registry!r}: expected host[:port], e.g. '127.0.0.1:5000'.")
        self.registry = registry
        self.credentials = credentials or Credentials()
        self.insecure = bool(insecure)
        self.ca_path = ca_path
        self.timeout = float(timeout)
        self.user_agent = user_agent
        self.backoff = Backoff(max_retries, backoff_base, retry_after_cap)
        self._endpoint = Endpoint(registry, insecure=self.insecure, timeout=self.timeout)
        self.loopback = self._endpoint.loopback
        self._transport = Transport(self._endpoint, ca_path=ca_path, user_agent=user_agent)
        self._auth = Auth(Redirects(self._transport, self._endpoint), self._endpoint, self.credentials)
        self._stack = Retry(self._auth, self.backoff, registry)
        self._auth.token_transport = self._send
        self._pending_uploads: dict[tuple[str, str], str] = {}

    # -- plumbing ------------------------------------------------------------------------------------------------

    @property
    def max_retries(self) -> int:
        return self.backoff.max_retries

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def scheme(self) -> str:
        self._ready(auth=False)
        return str(self._endpoint.scheme)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.registry}"

    def _ready(self, auth: bool = True) -> None:
        with self._endpoint.lock:
            self._endpoint.resolve_scheme()
            if auth and self._auth.challenge is None:
                self._auth.challenge = ping(
                    self._endpoint, lambda method, url, op: self._send(method, url, op, auth=False), self._raise_for)

    def _send(self, method: str, url: str, op: str, *, atoms: frozenset[str] = frozenset(),
              headers: Mapping[str, str] | None = None, body: Any = None, replayable: bool = True,
              follow_redirects: bool = False, auth: bool = True, token_auth: bool = False,
              lazy_challenge: bool = False) -> Any:
        """Send through the stack: retries (429/502/503/504/connection failures), auth with one
        re-authentication on 401, redirects.

        ``lazy_challenge``: don't ping ``/v2/`` first when no challenge is known yet; send without credentials and
        take the challenge from a 401 instead (the no-change re-pull is then a single HEAD on open registries)."""
        if auth:
            self._ready(auth=not lazy_challenge)
        return self._stack.send(Request(method, url, op, atoms=atoms, headers=headers, body=body,
                                        replayable=replayable, follow_redirects=follow_redirects, auth=auth,
                                        token_auth=token_auth))

    def _raise_for(self, resp: Any, op: str, what: str, *, token: bool = False) -> None:
        raise_for(resp, op, what, self._auth.tried, token=token)

    # -- names ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_repository(repository: str) -> str:
        if not isinstance(repository, str) or len(repository) > 255 or not _REPO_RE.fullmatch(repository):
            raise ImageReferenceError(
                f"repository {repository!r}: invalid; use lowercase path components of letters, digits and "
                "separators ('.', '_', '__', '-'), e.g. 'team/app'."
            )
        return repository

    @staticmethod
    def _check_reference(reference: str) -> str:
        if isinstance(reference, str) and ":" in reference:
            return validate_digest(reference)
        if not isinstance(reference, str) or not _TAG_RE.fullmatch(reference):
            raise ImageReferenceError(
                f"tag {reference!r}: invalid; tags are 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'."
            )
        return reference

    def _name(self, repository: str, reference: str | None = None) -> str:
        text = f"{self.registry}/{repository}"
        if reference:
            text += ("@" if ":" in reference else ":") + reference
        return text

    def _url(self, repository: str, kind: str, rest: str = "") -> str:
        return f"{self.base_url}/v2/{repository}/{kind}/{rest}"

    # -- public API ----------------------------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers the v2 API and, when credentials are set, that they are accepted."""
        op = f"logging in to registry {self.registry}"
        self._ready()
        if self.credentials.anonymous or self._auth.challenge is None or self._auth.challenge.scheme == "none":
            return
        resp = self._send("GET", f"{self.base_url}/v2/", op)
        with contextlib.closing(resp):
            if resp.status_code != 200:
                self._raise_for(resp, op, "the registry API")

    def get_manifest(self, repository: str, reference: str, *,
                     max_size: int = MAX_MANIFEST_SIZE) -> tuple[bytes, str, str]:
        """GET a manifest or index → (body, media_type, digest), verified against its digest.

        When ``reference`` is a digest, sha256(body) must equal it; a ``Docker-Content-Digest`` header must equal
        sha256(body) either way. Schema 1 is refused. A body over ``max_size`` is refused unread.
        """
        self._check_repository(repository)
        self._check_reference(reference)
        op = f"getting manifest {self._name(repository, reference)}"
        attempt = 0
        while True:
            resp = self._send("GET", self._url(repository, "manifests", reference), op,
                              atoms=repository_scope(repository, "pull"),
                              headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}, follow_redirects=True)
            with contextlib.closing(resp):
                if resp.status_code != 200:
                    self._raise_for(resp, op, "manifest")
                try:
                    body = read_capped(resp, max_size, op, "manifest")
                except BrokenRead:
                    # A GET can be sent again; the partial body is dropped, never used.
                    if attempt >= self.backoff.max_retries:
                        raise
                    self.backoff.sleep(attempt)
                    attempt += 1
                    continue
                media_type = media_type_of(resp.headers.get("Content-Type"))
                header_digest = resp.headers.get("Docker-Content-Digest")
            break
        digest = "sha256:" + sha256_hex(body)
        if ":" in reference and digest != reference:
            raise DigestMismatchError(
                f"{op}: the registry served content whose digest is {digest}, not the one asked for; refusing it. "
                "The registry or a proxy is corrupting data."
            )
        if header_digest is not None and header_digest.strip() != digest:
            raise DigestMismatchError(
                f"{op}: Docker-Content-Digest {header_digest.strip()[:80]!r} does not match the content "
                f"({digest}); refusing it. The registry or a proxy is corrupting data."
            )
        declared = None
        try:
            data = json_loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            declared = data.get("mediaType") if isinstance(data.get("mediaType"), str) else None
            if data.get("schemaVersion") == 1:
                media_type = DOCKER_SCHEMA1[0]
        if media_type in DOCKER_SCHEMA1:
            raise RegistryError(
                f"{op}: the registry served a Docker schema 1 manifest, which is deprecated and not supported. "
                "Push the image again with a current client (schema 2 or OCI).",
                status=200,
            )
        if media_type not in MANIFEST_MEDIA_TYPES and declared in MANIFEST_MEDIA_TYPES:
            media_type = declared
        return body, media_type, digest

    def head_manifest(self, repository: str, reference: str) -> tuple[str, str, int] | None:
        """HEAD a manifest → (digest, media_type, size), or None when the registry answers 404.

        Falls back to GET when the registry sends no ``Docker-Content-Digest``. Sent without a ``/v2/`` ping: a 401
        brings the challenge, and a 200 or 404 without credentials shows the registry is open (so a no-change
        re-pull or re-push is this one request).
        """
        self._check_repository(repository)
        self._check_reference(reference)
        op = f"checking manifest {self._name(repository, reference)}"
        url = self._url(repository, "manifests", reference)
        atoms = repository_scope(repository, "pull")
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        resp = self._send("HEAD", url, op, atoms=atoms, headers=headers, follow_redirects=True, lazy_challenge=True)
        if resp.status_code in (200, 404):
            with self._endpoint.lock:
                if self._auth.challenge is None:
                    # Answered without credentials: no /v2/ ping needed before the next requests. A later 401
                    # (a registry that wants credentials for pushes only) is answered by _send as usual.
                    self._auth.challenge = Challenge("none")
        with contextlib.closing(resp):
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                self._raise_for(resp, op, "manifest")
            digest = (resp.headers.get("Docker-Content-Digest") or "").strip()
            media_type = media_type_of(resp.headers.get("Content-Type"))
            length = resp.headers.get("Content-Length", "")
        if not digest or not length.isdigit():
            body, media_type, digest = self.get_manifest(repository, reference)
            return digest, media_type, len(body)
        try:
            validate_digest(digest)
        except ImageReferenceError:
            raise RegistryError(f"{op}: the registry sent an invalid Docker-Content-Digest header; refusing it.",
                                status=200) from None
        if ":" in reference and digest != reference:
            raise DigestMismatchError(f"{op}: the registry says the manifest's digest is {digest}; refusing it.")
        return digest, media_type, int(length)

    def blob_exists(self, repository: str, digest: str) -> int | None:
        """HEAD a blob → its size, or None when the registry does not have it (404)."""
        self._check_repository(repository)
        validate_digest(digest)
        op = f"checking blob {digest} in {self._name(repository)}"
        resp = self._send("HEAD", self._url(repository, "blobs", digest), op,
                          atoms=repository_scope(repository, "pull"), follow_redirects=True)
        with contextlib.closing(resp):
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                self._raise_for(resp, op, "blob")
            length = resp.headers.get("Content-Length", "")
        return int(length) if length.isdigit() else 0

    def _open_blob_response(self, repository: str, digest: str, op: str, offset: int) -> Any:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self._send("GET", self._url(repository, "blobs", digest), op,
                          atoms=repository_scope(repository, "pull"), headers=headers, follow_redirects=True)

    @contextlib.contextmanager
    def open_blob(self, repository: str, digest: str, size: int | None) -> Iterator[BlobReader]:
        """A readable stream of a blob, verified as it is read (size and digest; see ``BlobReader``)."""
        self._check_repository(repository)
        validate_digest(digest)
        if size is not None and (not isinstance(size, int) or size < 0):
            raise DigestMismatchError(f"blob {digest}: descriptor size {size!r} is not a non-negative integer.")
        reader = BlobReader(self, repository, digest, size)
        try:
            reader.open()
            yield reader
        finally:
            reader.close()

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount (POST …/blobs/uploads/?mount=&from=): True when mounted (201).

        When the registry opens an upload session instead (202), the session is kept for ``upload_blob``.
        """
        self._check_repository(repository)
        self._check_repository(from_repository)
        validate_digest(digest)
        op = f"mounting blob {digest} from {self._name(from_repository)} into {self._name(repository)}"
        query = urlencode([("mount", digest), ("from", from_repository)])
        atoms = repository_scope(repository, "pull", "push") | repository_scope(from_repository, "pull")
        resp = self._send("POST", self._url(repository, "blobs", "uploads/") + "?" + query, op, atoms=atoms,
                          headers={"Content-Length": "0"}, body=b"")
        with contextlib.closing(resp):
            if resp.status_code == 201:
                return True
            if resp.status_code == 202:
                with contextlib.suppress(RegistryError):
                    self._pending_uploads[(repository, digest)] = self._upload_location(resp, resp.url, op)
                return False
            self._raise_for(resp, op, "blob or repository")
        return False  # pragma: no cover - _raise_for always raises

    def _upload_location(self, resp: Any, current: str, op: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{op}: the registry sent no upload Location; it does not follow the v2 API.",
                                status=resp.status_code)
        target = urljoin(current, location)
        if not self._endpoint.is_registry_origin(target):
            raise RegistryError(
                f"{op}: the upload Location points to another host or scheme ({redact_url(target)}); refusing to "
                f"send the blob anywhere but {self.base_url}. Check the registry's proxy/URL settings.",
                status=resp.status_code,
            )
        return target

    def _start_upload(self, repository: str, op: str, atoms: frozenset[str]) -> str:
        url = self._url(repository, "blobs", "uploads/")
        resp = self._send("POST", url, op, atoms=atoms, headers={"Content-Length": "0"}, body=b"")
        with contextlib.closing(resp):
            if resp.status_code != 202:
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise _RestartUpload(f"starting the upload answered {resp.status_code}")
                self._raise_for(resp, op, "repository")
            return self._upload_location(resp, resp.url, op)

    def _stream_request(self, method: str, url: str, op: str, atoms: frozenset[str], headers: dict[str, str],
                        body: Any) -> Any:
        """A request with a streamed body: no automatic retry; failures that a new session may fix restart."""
        try:
            resp = self._send(method, url, op, atoms=atoms, headers=headers, body=body, replayable=False)
        except RegistryError as exc:
            if exc.status is None:
                raise _RestartUpload(str(exc)) from None
            raise
        if resp.status_code >= 500 or resp.status_code in (401, 408, 429):
            if resp.status_code == 401:
                # The token may have expired during a long upload: get a new one before the restart.
                self._auth.handle_challenge(resp, atoms)
            status = resp.status_code
            resp.close()
            raise _RestartUpload(f"{method} answered {status}")
        return resp

    def _upload_once(self, repository: str, digest: str, size: int, opener: Callable[[], BinaryIO],
                     chunk_size: int, op: str, atoms: frozenset[str]) -> None:
        location = self._pending_uploads.pop((repository, digest), None) or self._start_upload(repository, op, atoms)
        stream = opener()
        try:
            octet = {"Content-Type": "application/octet-stream"}
            if size <= chunk_size:
                body = _LimitedReader(stream, size, op)
                url = _with_query(location, digest=digest)
                resp = self._stream_request("PUT", url, op, atoms, {**octet, "Content-Length": str(size)}, body)
            else:
                offset = 0
                while offset < size:
                    length = min(chunk_size, size - offset)
                    body = _LimitedReader(stream, length, op)
                    end = offset + length - 1
                    headers = {**octet, "Content-Length": str(length), "Content-Range": f"{offset}-{end}"}
                    resp = self._stream_request("PATCH", location, op, atoms, headers, body)
                    with contextlib.closing(resp):
                        if resp.status_code == 416:
                            raise _RestartUpload("the registry refused the chunk's range (416)")
                        if resp.status_code != 202:
                            self._raise_for(resp, op, "upload session")
                        got = resp.headers.get("Range", "")
                        m = re.fullmatch(r"(?:bytes=)?0-(\d+)", got.strip())
                        if got and (not m or int(m.group(1)) != end):
                            raise _RestartUpload(f"the registry holds {got!r} after a chunk ending at {end}")
                        location = self._upload_location(resp, location, op)
                    offset += length
                resp = self._stream_request("PUT", _with_query(location, digest=digest), op, atoms,
                                            {"Content-Length": "0"}, b"")
            with contextlib.closing(resp):
                if resp.status_code not in (201, 204):
                    self._raise_for(resp, op, "upload session")
                header = (resp.headers.get("Docker-Content-Digest") or "").strip()
                if header and header != digest:
                    raise DigestMismatchError(f"{op}: the registry stored the blob as {header[:80]!r}; refusing.")
        finally:
            with contextlib.suppress(OSError):
                stream.close()

    def upload_blob(self, repository: str, digest: str, size: int, opener: Callable[[], BinaryIO], *,
                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        """Upload a blob, streamed from ``opener()`` (called again for every fresh attempt).

        ``size <= chunk_size``: POST, then PUT ``?digest=`` with the whole body; larger: PATCH chunks with
        ``Content-Range``, then PUT ``?digest=``. A 5xx, 429, reset or expired token mid-upload restarts from a
        fresh session, at most ``max_retries`` times. Upload Locations must stay on the registry's origin.
        """
        self._check_repository(repository)
        validate_digest(digest)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise DigestMismatchError(f"blob {digest}: size {size!r} is not a non-negative integer.")
        if chunk_size <= 0:
            raise DockerlessError(f"uploading blob {digest}: chunk_size must be positive.")
        op = f"uploading blob {digest} to {self._name(repository)}"
        atoms = repository_scope(repository, "pull", "push")
        self._ready()
        failures = 0
        while True:
            try:
                self._upload_once(repository, digest, size, opener, chunk_size, op, atoms)
                return
            except _RestartUpload as exc:
                failures += 1
                if failures > self.backoff.max_retries:
                    raise RegistryError(
                        f"{op}: failed {failures} times, the last because {exc.reason}. The registry may be "
                        "overloaded or failing; try again later and check its logs."
                    ) from None
                self.backoff.sleep(failures - 1)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or its digest; returns its digest (sha256 of ``body``)."""
        self._check_repository(repository)
        self._check_reference(reference)
        op = f"putting manifest {self._name(repository, reference)}"
        if len(body) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"{op}: the manifest is {len(body)} bytes, over the 4 MiB registries accept.")
        digest = "sha256:" + sha256_hex(body)
        if ":" in reference and reference != digest:
            raise DigestMismatchError(f"{op}: the manifest's digest is {digest}, not the reference; refusing.")
        resp = self._send("PUT", self._url(repository, "manifests", reference), op,
                          atoms=repository_scope(repository, "pull", "push"),
                          headers={"Content-Type": media_type}, body=bytes(body))
        with contextlib.closing(resp):
            if resp.status_code not in (200, 201, 202, 204):
                self._raise_for(resp, op, "repository")
            header = (resp.headers.get("Docker-Content-Digest") or "").strip()
        if header and header != digest:
            raise DigestMismatchError(
                f"{op}: the registry stored the manifest as {header[:80]!r} while its content is {digest}; the "
                "registry rewrote it. Push with a media type it supports."
            )
        return digest
