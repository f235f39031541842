# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client for the OCI Distribution API v2 (the Docker registry HTTP API).

One class, ``RegistryClient``, per registry host. Its concerns, in the order a request meets them:

* scheme: https; plain http only for loopback registries (when the server does not speak TLS, as Docker
  does) or registries marked ``insecure``. A TLS verification failure never falls back to http.
* auth: ``GET /v2/`` learns the challenge; Basic sends the credentials to the registry's own origin only;
  Bearer exchanges them at the token realm for a token scoped ``repository:<name>:pull[,push]`` (distribution
  ``docs/spec/auth/token.md``), cached by scope and reused while valid. Credentials are withheld from a realm on
  plain http when the registry is on https, and from a realm URL carrying userinfo.
* redirects: followed here, never by ``requests``: at most 10, never https → http, no Authorization to another
  origin (blob downloads are redirected to object storage by most registries).
* retries: 429 (Retry-After in seconds or as an HTTP date, capped), 502/503/504 and connection failures with
  bounded exponential backoff, for requests whose body can be sent again; 401/403/404 never.
* verification: manifests and blobs are hashed while they stream and checked against their digest and size;
  bodies with a cap (manifests 4 MiB, tokens and error documents 1 MiB) are never buffered past it.
* errors: the distribution ``errors[]`` document is parsed into ``RegistryError(status=, codes=)``;
  401/403 become ``AuthError`` naming the credential source that was tried (never its value).

go-containerregistry's ``pkg/v1/remote/transport`` (ping, bearer, retry, error) and the distribution spec
(opencontainers/distribution-spec ``spec.md``) describe the same protocol.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import http.client
import importlib
import io
import os
import random
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from ansible_collections.dockerless.containers.plugins.module_utils import site_packages
from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    AuthError,
    DigestMismatchError,
    DockerlessError,
    ImageReferenceError,
    RegistryError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.oci import DOCKER_SCHEMA1
from ansible_collections.dockerless.containers.plugins.module_utils.image.oci import (
    MANIFEST_MEDIA_TYPES as _OCI_MANIFEST_MEDIA_TYPES,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
    is_loopback_host,
    validate_digest,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record, json_loads
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import (
    HOW_TO_PROVIDE,
    Credentials,
    resolve_credentials,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport_direct import (
    Pool,
    TransportError,
)

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from typing import IO, Any, BinaryIO


class _LazyModule:
    """A module imported on first attribute access.

    ``requests`` and ``urllib3`` take about as long to import as all of Ansible's ``basic`` module, and they are
    needed only behind a proxy: every other request goes through ``direct_http``."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(_import(self._name), attr)


def _import(name: str):
    """``importlib.import_module``, with site-packages added first when bin/dockerless deferred them (it starts
    ``run`` and ``pull`` with ``python -S``; requests, needed only behind a proxy, lives in site-packages)."""
    site_packages.load()
    return importlib.import_module(name)


requests: Any = _LazyModule("requests")
urllib3: Any = _LazyModule("urllib3")


def _read_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a broken body read raises: urllib3's base class only when urllib3 is already loaded (the
    requests transport is in use). Naming ``urllib3.exceptions`` in an ``except`` clause would import it when the
    clause is evaluated, and on a host without urllib3 a cut download of the direct transport would then fail
    with ModuleNotFoundError instead of resuming."""
    loaded = sys.modules.get("urllib3.exceptions")
    base: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
    return (*base, loaded.HTTPError) if loaded is not None else base


def _requests_missing() -> str | None:
    """Why requests can't be used (for the proxy path), or None when it can."""
    try:
        _import("requests")
        _import("urllib3")
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


# Docker v2 schema 2, Docker manifest list, OCI manifest, OCI index: the Accept header of every manifest request.
# (Without it distribution answers 404 for OCI manifests and converts schema 2 to schema 1.)
MANIFEST_MEDIA_TYPES: tuple[str, ...] = tuple(_OCI_MANIFEST_MEDIA_TYPES)
MAX_MANIFEST_SIZE = 4 * 2**20
MAX_TOKEN_BODY = 2**20
MAX_ERROR_BODY = 2**20
MAX_REDIRECTS = 10
RETRY_STATUSES = (429, 502, 503, 504)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Blobs up to this size are uploaded monolithically (POST, then one PUT ?digest= with the body, as containerd
# does); larger ones in PATCH chunks of this size. One request per blob instead of one per 16 MiB chunk.
DEFAULT_CHUNK_SIZE = 256 * 2**20
# http.client/urllib3 send a file-like body in 16 KiB blocks; 1 MiB blocks cut the Python read/sendall round
# trips (and GIL hand-overs between parallel uploads) by 64.
SEND_BLOCK_SIZE = 2**20
_READ_SIZE = 2**16

_REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Checked with fullmatch: "$" also matches before a trailing newline.
_REPO_RE = re.compile(rf"{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_URL_IN_TEXT_RE = re.compile(r"(https?://)([^\s'\"/@]*@)?([^\s'\"?#/]*)([^\s'\"?#]*)(\?[^\s'\"#]*)?")
_PATH_QUERY_RE = re.compile(r"(/[^\s'\"?#]*)\?(?!…)[^\s'\"#)]*")
_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# Hints for distribution error codes (spec.md "Error Codes"), by code, never by message text.
_CODE_HINTS = {
    "BLOB_UNKNOWN": "Check the digest, or push the blob first.",
    "BLOB_UPLOAD_INVALID": "The upload was rejected; it will be retried from a fresh session.",
    "BLOB_UPLOAD_UNKNOWN": "The upload session expired or is unknown to the registry; retry the push.",
    "DIGEST_INVALID": "The uploaded content does not match its digest; the local copy may be corrupt.",
    "MANIFEST_BLOB_UNKNOWN": "The registry lacks a blob the manifest references; push the blobs first.",
    "MANIFEST_INVALID": "The registry rejected the manifest as invalid for its media type.",
    "MANIFEST_UNKNOWN": "Check the name/tag, or push it first.",
    "MANIFEST_UNVERIFIED": "The registry could not verify the manifest signature.",
    "NAME_INVALID": "Check the repository name.",
    "NAME_UNKNOWN": "Check the name/tag, or push it first.",
    "SIZE_INVALID": "The uploaded size does not match the declared size; the local copy may be corrupt.",
    "TAG_INVALID": "Check the tag.",
    "UNSUPPORTED": "The registry does not support this operation (a read-only mirror, or a media type it refuses).",
    "TOOMANYREQUESTS": "The registry rate-limits this client; wait and try again later.",
}


def redact_url(url: str) -> str:
    """A URL fit for messages: no userinfo, and the query (upload state, signatures) replaced by ``?…``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    text = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return text + ("?…" if parts.query else "")


def _redact_text(text: str) -> str:
    """Redact URLs inside free text: exception strings from requests/urllib3 embed full URLs and bare paths
    (``… with url: /v2/x/blobs/uploads/u?_state=…``): userinfo dropped, every query replaced by ``?…``."""
    text = _URL_IN_TEXT_RE.sub(lambda m: m.group(1) + m.group(3) + m.group(4) + ("?…" if m.group(5) else ""), text)
    return _PATH_QUERY_RE.sub(lambda m: m.group(1) + "?…", text)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def _split_host_port(registry: str) -> tuple[str, int | None]:
    if registry.startswith("["):
        host, _sep, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = registry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return registry, None


# --- WWW-Authenticate -------------------------------------------------------------------------------------------


class Challenge(Record):
    """One challenge of a ``WWW-Authenticate`` header: ``scheme`` lower-cased, ``params`` keys lower-cased."""

    FROZEN = True
    scheme: str
    params: Mapping[str, str] = Factory(dict)


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235) into challenges.

    Handles several challenges in one header (``Basic realm="x", Bearer realm="y"``), quoted values holding
    commas (``scope="repository:a:pull,push"``) and backslash escapes. Unknown garbage is skipped.
    """
    challenges: list[Challenge] = []
    params: dict[str, str] = {}
    i, n = 0, len(value or "")
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        m = _TOKEN_CHARS.match(value, i)
        if not m:
            i += 1
            continue
        name, i = m.group(0), m.end()
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and challenges:
            i = j + 1
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                i += 1
                chars = []
                while i < n and value[i] != '"':
                    if value[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(value[i])
                    i += 1
                i += 1
                params[name.lower()] = "".join(chars)
            else:
                m = re.compile(r"[^,\s]*").match(value, i)
                params[name.lower()] = m.group(0)
                i = m.end()
        else:
            params = {}
            challenges.append(Challenge(name.lower(), params))
    return challenges


def _pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    for wanted in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == wanted:
                return ch
    return None


def scope_atoms(scope: str) -> frozenset[str]:
    """``repository:a/b:pull,push`` (space-separated for several) → {``repository:a/b:pull``, ``…:push``}."""
    atoms = set()
    for item in (scope or "").split():
        kind, sep, rest = item.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not name:
            continue
        for action in actions.split(","):
            if action:
                atoms.add(f"{kind}:{name}:{action}")
    return frozenset(atoms)


def scope_strings(atoms: frozenset[str]) -> list[str]:
    """The inverse of ``scope_atoms``: one ``type:name:a,b`` string per resource, actions sorted."""
    by_resource: dict[str, set[str]] = {}
    for atom in atoms:
        resource, _sep, action = atom.rpartition(":")
        by_resource.setdefault(resource, set()).add(action)
    return [f"{res}:{','.join(sorted(actions))}" for res, actions in sorted(by_resource.items())]


def repository_scope(repository: str, *actions: str) -> frozenset[str]:
    return frozenset(f"repository:{repository}:{a}" for a in actions)


class _Token(Record):
    _NO_REPR = ("value",)
    value: str
    atoms: frozenset[str]
    expires_at: float


class _TooLarge(RegistryError):
    """Internal: a capped body went over its cap."""


class _BrokenRead(RegistryError):
    """Internal: the connection broke while a capped body was read (a fresh request may succeed)."""


class _RestartUpload(Exception):
    """Internal: the upload session failed in a way a fresh session may fix (5xx, reset, expired token)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- helpers for bodies ---------------------------------------------------------------------------------------


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
            chunk = self.read(_READ_SIZE)
            if not chunk:
                return
            yield chunk

    def stream_to(self, sock: Any, send: Callable[[bytes], None]) -> None:
        """Send the body on ``direct_http``'s connection: by sendfile(2) from a file to a plain socket (the bytes
        never pass through Python), else in ``SEND_BLOCK_SIZE`` blocks."""
        fileno = None
        if sock is not None and not isinstance(sock, ssl.SSLSocket):
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


_BLOCK_ADAPTER: list[Any] = []


def _block_adapter(**kwargs: Any) -> Any:
    """An HTTPAdapter whose connections send request bodies in ``SEND_BLOCK_SIZE`` blocks (class made on first use,
    when requests is imported)."""
    if not _BLOCK_ADAPTER:
        from requests.adapters import HTTPAdapter  # pylint: disable=import-outside-toplevel

        try:
            urllib3_major = int(urllib3.__version__.split(".", 1)[0])
        except (AttributeError, ValueError):  # pragma: no cover - a vendored or odd urllib3
            urllib3_major = 1

        class BlockAdapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kw: Any) -> None:
                # urllib3 2 takes ``blocksize`` for its connections (and in its pool key); 1.26 (Debian 12's) would
                # refuse the key, so it keeps http.client's default block there.
                if urllib3_major >= 2:
                    kw.setdefault("blocksize", SEND_BLOCK_SIZE)
                super().init_poolmanager(*args, **kw)

        _BLOCK_ADAPTER.append(BlockAdapter)
    return _BLOCK_ADAPTER[0](**kwargs)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


# --- the client ---------------------------------------------------------------------------------------------------


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
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.retry_after_cap = float(retry_after_cap)
        self.loopback = is_loopback_host(registry)
        self.user_agent = user_agent
        self._session_obj: Any = None
        self._direct = Pool(self.timeout, user_agent)

        self._lock = threading.RLock()
        self._scheme: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: list[_Token] = []
        self._withheld: str | None = None
        self._pending_uploads: dict[tuple[str, str], str] = {}

    # -- plumbing ------------------------------------------------------------------------------------------------

    @property
    def _session(self) -> Any:
        """The requests session, made (and requests imported) on first use: for requests through a proxy."""
        with self._lock:
            if self._session_obj is None:
                missing = _requests_missing()
                if missing:
                    raise DockerlessError(
                        f"talking to registry {self.registry} through the proxy set in the environment needs the "
                        f"Python library 'requests' ({missing}). Install python3-requests (or pip install requests) "
                        "on the target, or unset the proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) for it."
                    )
                if self.insecure:
                    # The user asked for unverified TLS for this registry; urllib3's per-request warning would only
                    # add noise to module output.
                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                session = requests.Session()
                # No .netrc, no environment CA override: credentials and verification are decided here, per
                # request. Proxies are still taken from the environment, per URL (see _proxies).
                session.trust_env = False
                adapter = _block_adapter(pool_connections=4, pool_maxsize=16, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers.update({"User-Agent": self.user_agent, "Accept-Encoding": "identity"})
                self._session_obj = session
            return self._session_obj

    def close(self) -> None:
        self._direct.close()
        if self._session_obj is not None:
            self._session_obj.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def scheme(self) -> str:
        self._ready(auth=False)
        return str(self._scheme)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.registry}"

    def _verify_for(self, url: str, token_auth: bool = False) -> bool | str:
        """TLS verification for one request, passed on each request.

        ``True`` is the default trust: the system's CA store on the direct transport (as Docker's Go client uses),
        requests' bundle on the proxy path. The session ignores the environment (trust_env=False, so no .netrc
        credentials reach a registry), so a bundle named by REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE is applied here, for
        both transports, as requests itself would.
        The registry's host (any port: a token server beside it) gets ``ca_path``, or no verification when
        ``insecure``; a token realm elsewhere gets ``ca_path`` too (private token servers share the registry's
        CA); other hosts (object storage behind blob redirects) get the system bundle.
        """
        default: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        registry_host = _split_host_port(self.registry)[0].strip("[]").lower()
        if (urlsplit(url).hostname or "").lower() == registry_host:
            if self.insecure:
                return False
            return self.ca_path or default
        if token_auth:
            return self.ca_path or default
        return default

    def _proxies(self, url: str) -> dict[str, str]:
        return requests.utils.get_environ_proxies(url)

    def _is_registry_origin(self, url: str) -> bool:
        return self._scheme is not None and _origin(url) == _origin(f"{self._scheme}://{self.registry}/")

    def _sleep_backoff(self, attempt: int) -> None:
        delay = min(self.backoff_base * (2**attempt), 30.0)
        time.sleep(delay * (1 + random.random() * 0.1))

    def _retry_delay(self, resp: Any, attempt: int) -> float:
        value = resp.headers.get("Retry-After")
        delay: float | None = None
        if value:
            value = value.strip()
            if value.isdigit():
                delay = float(value)
            else:
                try:
                    when = email.utils.parsedate_to_datetime(value)
                    delay = when.timestamp() - time.time()
                except (TypeError, ValueError, IndexError, OverflowError):
                    delay = None
        if delay is None:
            delay = self.backoff_base * (2**attempt)
        return max(0.0, min(delay, self.retry_after_cap))

    def _detect_scheme(self) -> str:
        """https, unless the registry may use http (loopback or insecure) and its server does not speak TLS.

        The probe is a TLS handshake without verification that sends nothing else: a plain-http server answers
        it with an HTTP error, which is the only case where http is chosen. Certificate problems are found
        later, by the verified request, and are errors.
        """
        if not (self.loopback or self.insecure):
            return "https"
        host, port = _split_host_port(self.registry)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store to load: nothing is verified here
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        probe_timeout = min(self.timeout, 10.0)
        try:
            sock = socket.create_connection((host, port or 443), timeout=probe_timeout)
        except ConnectionRefusedError:
            if port is None:
                return "http"  # nothing on 443: Docker then tries http on 80
            raise RegistryError(
                f"connecting to registry {self.registry}: connection refused. Check that the registry is running "
                "and the host/port are right."
            ) from None
        except OSError as exc:
            raise RegistryError(
                f"connecting to registry {self.registry}: {exc.strerror or type(exc).__name__}. Check the host name, "
                "the port and the network."
            ) from None
        try:
            with context.wrap_socket(sock, server_hostname=host):
                return "https"
        except (ssl.SSLError, socket.timeout, ConnectionResetError):
            return "http"
        finally:
            sock.close()

    def _ready(self, auth: bool = True) -> None:
        with self._lock:
            if self._scheme is None:
                self._scheme = self._detect_scheme()
            if auth and self._challenge is None:
                self._ping_challenge()

    def _ping_challenge(self) -> None:
        op = f"contacting registry {self.registry}"
        resp = self._send("GET", f"{self._scheme}://{self.registry}/v2/", op, auth=False)
        with contextlib.closing(resp):
            if resp.status_code == 200:
                self._challenge = Challenge("none")
                return
            if resp.status_code == 401:
                chosen = _pick_challenge(parse_www_authenticate(resp.headers.get("WWW-Authenticate", "")))
                if chosen is None:
                    raise AuthError(
                        f"{op}: the registry asks for an authentication scheme this client does not support "
                        "(only Basic and Bearer are). Use a registry or proxy that offers one of them.",
                        status=401,
                    )
                self._challenge = chosen
                return
            if resp.status_code == 404:
                raise RegistryError(
                    f"{op}: {redact_url(resp.url)} answered 404; this is not a Docker/OCI registry (v2 API). "
                    "Check the host and port.",
                    status=404,
                )
            self._raise_for(resp, op, "the registry")

    # -- auth ----------------------------------------------------------------------------------------------------

    def _basic_header(self) -> str:
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _authorization(self, atoms: frozenset[str], force: bool = False) -> str | None:
        with self._lock:
            ch = self._challenge
            if ch is None or ch.scheme == "none":
                return None
            if ch.scheme == "basic":
                return None if self.credentials.anonymous else self._basic_header()
            now = time.monotonic()
            self._tokens = [t for t in self._tokens if t.expires_at > now]
            if not force:
                for token in reversed(self._tokens):
                    if atoms <= token.atoms:
                        return f"Bearer {token.value}"
            token = self._fetch_token(ch, atoms)
            self._tokens.append(token)
            return f"Bearer {token.value}"

    def _handle_challenge(self, resp: Any, atoms: frozenset[str], sent: str | None = None) -> frozenset[str] | None:
        """After a 401 from the registry: adopt its challenge and say which scope to ask for, or None to give up.

        ``sent`` is the Authorization that was refused: refused Basic credentials are not sent again."""
        if not self._is_registry_origin(resp.url):
            return None
        chosen = _pick_challenge(parse_www_authenticate(resp.headers.get("WWW-Authenticate", "")))
        if chosen is None:
            return None
        with self._lock:
            self._challenge = chosen
            if chosen.scheme == "basic":
                already_sent = sent is not None and sent.startswith("Basic ")
                return None if self.credentials.anonymous or already_sent else atoms
            # insufficient_scope or an expired token: ask again, with any scope the registry names.
            wanted = atoms | scope_atoms(chosen.params.get("scope", ""))
            self._tokens = [t for t in self._tokens if not atoms <= t.atoms]
            return wanted

    def _fetch_token(self, ch: Challenge, atoms: frozenset[str]) -> _Token:
        """Docker's token protocol (distribution docs/spec/auth/token.md): GET realm?service=&scope=…"""
        scopes = scope_strings(atoms)
        what = f"getting a token for {' '.join(scopes) or 'registry access'} on {self.registry}"
        realm = ch.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AuthError(
                f"{what}: the registry's Bearer challenge has no usable realm ({redact_url(realm) or 'none'}). "
                "The registry's token auth is misconfigured.",
                status=401,
            )
        send_credentials = not self.credentials.anonymous
        self._withheld = None
        if parts.username is not None or parts.password is not None:
            send_credentials = False
            self._withheld = "the token realm URL carries a user name/password, so the credentials were not sent"
            netloc = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=netloc)
        if parts.scheme == "http" and self._scheme == "https":
            send_credentials = False
            self._withheld = (
                "the token realm uses plain http while the registry uses https, so the credentials were not sent"
            )
        if self.credentials.anonymous or send_credentials:
            self._withheld = None
        query = parse_qsl(parts.query, keep_blank_values=True)
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        query.extend(("scope", s) for s in scopes)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        headers = {"Accept": "application/json"}
        if send_credentials:
            headers["Authorization"] = self._basic_header()
        resp = self._send("GET", url, what, headers=headers, auth=False, follow_redirects=True, token_auth=True)
        with contextlib.closing(resp):
            if resp.status_code != 200:
                self._raise_for(resp, what, "the token", token=True)
            body = self._read_capped(resp, MAX_TOKEN_BODY, what, "token response")
        try:
            data = json_loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AuthError(f"{what}: the token server answered something that is not a JSON object.", status=200)
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n"):
            raise AuthError(f"{what}: the token server's answer holds no token.", status=200)
        expires_in = data.get("expires_in")
        if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = 60  # the token spec's default
        margin = max(5.0, expires_in * 0.1)
        return _Token(value, atoms, time.monotonic() + max(expires_in - margin, 1.0))

    # -- sending -------------------------------------------------------------------------------------------------

    def _transmit(self, method: str, url: str, headers: Mapping[str, str], auth_header: str | None, body: Any,
                  follow: bool, op: str, token_auth: bool = False) -> Any:
        """One request, following redirects here: ≤ 10, never https → http, Authorization only to its origin."""
        hops = 0
        first_origin = _origin(url)
        while True:
            sent = dict(headers)
            if token_auth:
                # A token request carries Basic credentials for the realm's own origin only.
                if _origin(url) != first_origin:
                    sent.pop("Authorization", None)
            elif auth_header and self._is_registry_origin(url):
                sent["Authorization"] = auth_header
            verify = self._verify_for(url, token_auth)
            if self._direct_allowed(url):
                resp = self._direct.request(method, url, sent, body, verify)
            else:
                resp = self._session.request(
                    method, url, headers=sent, data=body, stream=True, allow_redirects=False,
                    verify=verify, timeout=(self.timeout, self.timeout), proxies=self._proxies(url),
                )
            if not follow or resp.status_code not in REDIRECT_STATUSES or not resp.headers.get("Location"):
                return resp
            resp.close()
            hops += 1
            target = urljoin(url, resp.headers["Location"])
            if hops > MAX_REDIRECTS:
                raise RegistryError(
                    f"{op}: more than {MAX_REDIRECTS} redirects (the last to {redact_url(target)}); the registry or "
                    "its storage is misconfigured.",
                    status=resp.status_code,
                )
            new = urlsplit(target)
            if new.scheme not in ("http", "https") or not new.hostname:
                raise RegistryError(f"{op}: redirect to an unsupported URL {redact_url(target)} refused.",
                                    status=resp.status_code)
            if urlsplit(url).scheme == "https" and new.scheme != "https":
                raise RegistryError(
                    f"{op}: redirect from https to plain http ({redact_url(target)}) refused; the content would "
                    "travel unprotected. Fix the registry's storage redirect settings.",
                    status=resp.status_code,
                )
            if new.username is not None or new.password is not None:
                target = urlunsplit(new._replace(netloc=new.netloc.rpartition("@")[2]))
            if resp.status_code == 303 and method != "HEAD":
                method = "GET"
            url = target

    @staticmethod
    def _direct_allowed(url: str) -> bool:
        """Whether ``direct_http`` sends this request: http(s) and no proxy in the environment (requests decides
        proxies, ``NO_PROXY`` included)."""
        return url.partition(":")[0] in ("http", "https") and not any(os.environ.get(name) for name in _PROXY_VARIABLES)

    def _send(self, method: str, url: str, op: str, *, atoms: frozenset[str] = frozenset(),
              headers: Mapping[str, str] | None = None, body: Any = None, replayable: bool = True,
              follow_redirects: bool = False, auth: bool = True, token_auth: bool = False,
              lazy_challenge: bool = False) -> Any:
        """Send with auth, retries (429/502/503/504/connection failures) and one re-authentication on 401.

        ``lazy_challenge``: don't ping ``/v2/`` first when no challenge is known yet; send without credentials and
        take the challenge from a 401 instead (the no-change re-pull is then a single HEAD on open registries)."""
        if auth:
            self._ready(auth=not lazy_challenge)
        attempt = 0
        reauthenticated = False
        force_token = False
        while True:
            auth_header = self._authorization(atoms, force=force_token) if auth else None
            force_token = False
            failure: BaseException | None = None
            tls = False
            try:
                resp = self._transmit(method, url, headers or {}, auth_header, body, follow_redirects, op, token_auth)
            except TransportError as exc:
                if exc.ca_file is not None:
                    raise RegistryError(
                        f"{op}: the CA certificates {exc.ca_file!r} could not be loaded ({_redact_text(str(exc))}). "
                        "Give ca_path as a PEM file (or a directory of them) holding the CA that signed the registry's "
                        "certificate."
                    ) from None
                failure, tls = exc, exc.tls
            except Exception as exc:
                # requests' own failures (the proxy path); looked up only when requests was imported.
                loaded = sys.modules.get("requests")
                if loaded is None:
                    raise
                if isinstance(exc, loaded.exceptions.SSLError):
                    failure, tls = exc, True
                elif isinstance(exc, (loaded.exceptions.ConnectionError, loaded.exceptions.Timeout,
                                      loaded.exceptions.ChunkedEncodingError)):
                    failure = exc
                else:
                    raise
            if tls:
                raise RegistryError(
                    f"{op}: TLS with {urlsplit(url).netloc.rpartition('@')[2]} failed ({_redact_text(str(failure))}). "
                    "Give ca_path with the CA that signed the registry's certificate; set insecure only for a "
                    "registry on a network you trust."
                ) from None
            if failure is not None:
                if replayable and attempt < self.max_retries:
                    self._sleep_backoff(attempt)
                    attempt += 1
                    continue
                raise RegistryError(
                    f"{op}: {self._describe_exc(failure)} (after {attempt + 1} attempts). Check that {self.registry} "
                    "is running and reachable, then try again."
                ) from None
            if resp.status_code == 401 and auth and not reauthenticated and replayable:
                reauthenticated = True
                wanted = self._handle_challenge(resp, atoms, auth_header)
                if wanted is not None:
                    resp.close()
                    atoms = wanted
                    force_token = True
                    continue
            if resp.status_code in RETRY_STATUSES and replayable and attempt < self.max_retries:
                delay = self._retry_delay(resp, attempt)
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            resp.attempts = attempt + 1
            return resp

    @staticmethod
    def _describe_exc(exc: BaseException) -> str:
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, ConnectionRefusedError):
                return "connection refused"
            if isinstance(current, ConnectionResetError):
                return "connection reset by the server"
            loaded = sys.modules.get("requests")  # never imported just to classify an error
            if isinstance(current, socket.timeout) or (loaded and isinstance(current, loaded.exceptions.Timeout)):
                return "timed out"
            if isinstance(current, http.client.RemoteDisconnected):
                return "the server closed the connection without answering"
            nxt = current.__cause__ or current.__context__
            if nxt is None and current.args and isinstance(current.args[0], BaseException):
                nxt = current.args[0]
            if nxt is None and hasattr(current, "reason") and isinstance(current.reason, BaseException):
                nxt = current.reason
            current = nxt
        return _redact_text(str(exc)) or type(exc).__name__

    def _read_capped(self, resp: Any, cap: int, op: str, what: str) -> bytes:
        """Read a body of at most ``cap`` bytes; a larger one is refused without being buffered whole."""
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            resp.close()
            raise _TooLarge(f"{op}: the {what} is {declared} bytes, over the {cap}-byte limit; refusing it.",
                            status=resp.status_code)
        buf = bytearray()
        try:
            while True:
                chunk = resp.raw.read(min(_READ_SIZE, cap + 1 - len(buf)), decode_content=True)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > cap:
                    resp.close()
                    raise _TooLarge(f"{op}: the {what} is over the {cap}-byte limit; refusing it.",
                                    status=resp.status_code)
        except _read_errors() as exc:
            raise _BrokenRead(f"{op}: the connection broke while reading the {what} "
                              f"({self._describe_exc(exc)}). Check the network, then try again.") from None
        return bytes(buf)

    def _error_document(self, resp: Any) -> tuple[tuple[str, ...], list[str], bool]:
        """(codes, messages, too_large) of a distribution error body; never more than 1 MiB is read."""
        if resp.request is not None and resp.request.method == "HEAD":
            return (), [], False
        try:
            body = self._read_capped(resp, MAX_ERROR_BODY, "", "error body")
        except _TooLarge:
            return (), [], True
        except RegistryError:
            return (), [], False
        try:
            data = json_loads(body)
        except ValueError:
            return (), [], False
        codes, messages = [], []
        errors = data.get("errors") if isinstance(data, dict) else None
        if isinstance(errors, list):
            for item in errors[:20]:
                if not isinstance(item, dict):
                    continue
                code = item.get("code")
                if isinstance(code, str) and re.fullmatch(r"[A-Z0-9_]{1,64}", code):
                    codes.append(code)
                message = item.get("message")
                if isinstance(message, str) and message:
                    clean = "".join(c if c.isprintable() else " " for c in message)[:200]
                    messages.append(f"{code}: {clean}" if isinstance(code, str) else clean)
        elif isinstance(data, dict) and isinstance(data.get("details"), str):
            messages.append("".join(c if c.isprintable() else " " for c in data["details"])[:200])
        return tuple(codes), messages, False

    def _raise_for(self, resp: Any, op: str, what: str, *, token: bool = False) -> None:
        """Turn an unexpected response into the right exception; classified by status and error code only."""
        status = resp.status_code
        codes, messages, too_large = self._error_document(resp)
        resp.close()
        detail = f"{status}" + (f" {', '.join(codes)}" if codes else "")
        said = f" The registry says: {'; '.join(messages)}." if messages else ""
        if too_large:
            said = " (its error body was over 1 MiB and was not read.)"
        attempts = getattr(resp, "attempts", 1)
        if status in (401, 403):
            tried = self.credentials.describe()
            if self._withheld:
                tried += f"; {self._withheld}"
            where = "token server" if token else "registry"
            if status == 401:
                raise AuthError(
                    f"{op}: authentication failed at the {where} ({detail}).{said} Tried {tried}. {HOW_TO_PROVIDE}",
                    status=status, codes=codes)
            raise AuthError(
                f"{op}: access denied by the {where} ({detail}).{said} Tried {tried}. Check that this account may "
                f"access the repository, or use other credentials. {HOW_TO_PROVIDE}",
                status=status, codes=codes)
        if status == 404:
            raise RegistryError(
                f"{op}: {what} not found ({detail}).{said} Check the name/tag, or push it first.",
                status=status, codes=codes)
        if status == 429:
            raise RegistryError(
                f"{op}: too many requests ({detail}) after {attempts} attempts.{said} The registry rate-limits this "
                "client; wait and try again later, or log in for a higher limit.",
                status=status, codes=codes)
        if status >= 500:
            raise RegistryError(
                f"{op}: the registry failed ({detail}) after {attempts} attempts.{said} Try again later; if it "
                "persists, check the registry's logs.",
                status=status, codes=codes)
        hints = " ".join(dict.fromkeys(_CODE_HINTS[c] for c in codes if c in _CODE_HINTS))
        if status == 415 and not hints:
            hints = "The registry refuses this media type."
        raise RegistryError(
            f"{op}: the registry answered {detail} {http.client.responses.get(status, '')}.{said} "
            f"{hints or 'See the registry documentation for this status.'}".rstrip(),
            status=status, codes=codes)

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
        if self.credentials.anonymous or self._challenge is None or self._challenge.scheme == "none":
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
                    body = self._read_capped(resp, max_size, op, "manifest")
                except _BrokenRead:
                    # A GET can be sent again; the partial body is dropped, never used.
                    if attempt >= self.max_retries:
                        raise
                    self._sleep_backoff(attempt)
                    attempt += 1
                    continue
                media_type = _media_type(resp.headers.get("Content-Type"))
                header_digest = resp.headers.get("Docker-Content-Digest")
            break
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
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
            with self._lock:
                if self._challenge is None:
                    # Answered without credentials: no /v2/ ping needed before the next requests. A later 401
                    # (a registry that wants credentials for pushes only) is answered by _send as usual.
                    self._challenge = Challenge("none")
        with contextlib.closing(resp):
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                self._raise_for(resp, op, "manifest")
            digest = (resp.headers.get("Docker-Content-Digest") or "").strip()
            media_type = _media_type(resp.headers.get("Content-Type"))
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
        if not self._is_registry_origin(target):
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
                self._handle_challenge(resp, atoms)
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
                if failures > self.max_retries:
                    raise RegistryError(
                        f"{op}: failed {failures} times, the last because {exc.reason}. The registry may be "
                        "overloaded or failing; try again later and check its logs."
                    ) from None
                self._sleep_backoff(failures - 1)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or its digest; returns its digest (sha256 of ``body``)."""
        self._check_repository(repository)
        self._check_reference(reference)
        op = f"putting manifest {self._name(repository, reference)}"
        if len(body) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"{op}: the manifest is {len(body)} bytes, over the 4 MiB registries accept.")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
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


class RegistryOptions(Record):
    """Connection settings shared by pull and push (module options of the registry doc fragment)."""

    _NO_REPR = ("password",)
    username: str | None = None
    password: str | None = None
    auth_file: str | None = None
    insecure: bool = False
    ca_path: str | None = None
    timeout: float = 60

    def client(self, registry: str) -> RegistryClient:
        creds = resolve_credentials(registry, self.username, self.password, self.auth_file)
        return RegistryClient(registry, creds, insecure=self.insecure, ca_path=self.ca_path, timeout=self.timeout)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


class BlobReader(io.RawIOBase):
    """A blob download that verifies while it is read.

    * never reads past ``size + 1`` bytes; more than ``size`` → DigestMismatchError at once;
    * at EOF: fewer than ``size`` bytes or a sha256 other than ``digest`` → DigestMismatchError;
    * a connection cut mid-body resumes with ``Range: bytes=<offset>-`` when the server answers 206 with the
      right ``Content-Range``; a server that ignores Range (200) is restarted, its first ``offset`` bytes
      re-read and checked against what was already delivered; the hash continues over the delivered stream, so
      wrongly spliced bytes can never verify. At most ``max_retries`` resumes.
    """

    def __init__(self, client: RegistryClient, repository: str, digest: str, size: int | None):
        super().__init__()
        self._client = client
        self._repository = repository
        self.digest = digest
        self.size = size
        self.bytes_read = 0
        self.resumes = 0
        self.verified = False
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
            m = _CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
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
        prefix = hashlib.sha256()
        skipped = 0
        while skipped < offset:
            chunk = resp.raw.read(min(_READ_SIZE, offset - skipped), decode_content=True)
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
            if self.resumes > self._client.max_retries:
                raise RegistryError(
                    f"{self._op}: the connection broke {self.resumes} times ({why}) at byte {self.bytes_read}. "
                    "Check the network or the registry, then try again."
                )
            self._client._sleep_backoff(self.resumes - 1)
            try:
                self._resp = self._connect(self.bytes_read)
                return
            except _Cut as exc:
                why = str(exc)
            except _read_errors() as exc:
                why = RegistryClient._describe_exc(exc)

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
            except _read_errors() as exc:
                self._resume(RegistryClient._describe_exc(exc))
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
