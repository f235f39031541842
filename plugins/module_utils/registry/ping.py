# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a registry is and how it is spoken to: the scheme (https; plain http only for loopback registries whose
server does not speak TLS, as Docker does, or registries marked ``insecure``; a TLS verification failure never
falls back to http), its origin (where credentials may go) and the ``GET /v2/`` ping that learns the challenge.

go-containerregistry's ``transport/ping.go`` has the same role."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

from ansible_collections.dockerless.containers.plugins.module_utils.errors import AuthError, RegistryError
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import is_loopback_host
from ansible_collections.dockerless.containers.plugins.module_utils.registry.auth import (
    Challenge,
    parse_www_authenticate,
    pick_challenge,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import redact_url

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def split_host_port(registry: str) -> tuple[str, int | None]:
    if registry.startswith("["):
        host, _sep, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = registry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return registry, None


class Endpoint:
    """One registry host: its scheme once probed, and whether a URL is on its origin."""

    def __init__(self, registry: str, *, insecure: bool, timeout: float):
        self.registry = registry
        self.insecure = insecure
        self.timeout = timeout
        self.loopback = is_loopback_host(registry)
        self.scheme: str | None = None
        self.lock = threading.RLock()

    def resolve_scheme(self) -> str:
        with self.lock:
            if self.scheme is None:
                self.scheme = self._detect_scheme()
            return self.scheme

    def is_registry_origin(self, url: str) -> bool:
        return self.scheme is not None and origin(url) == origin(f"{self.scheme}://{self.registry}/")

    def _detect_scheme(self) -> str:
        """https, unless the registry may use http (loopback or insecure) and its server does not speak TLS.

        The probe is a TLS ClientHello that sends nothing else: a TLS server answers it with a TLS record (its
        ServerHello, or an alert), a plain-http server with an HTTP error, which is the only case where http is
        chosen (as are a server that closes, resets or says nothing). Certificate problems are found later, by the
        verified request, and are errors. The hello is made here, not by ``ssl``: a pull from a plain-http
        registry then never loads ssl and OpenSSL.
        """
        if not (self.loopback or self.insecure):
            return "https"
        host, port = split_host_port(self.registry)
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
            sock.sendall(client_hello(host))
            answer = b""
            while len(answer) < 3:
                part = sock.recv(3 - len(answer))
                if not part:
                    break
                answer += part
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            return "http"
        finally:
            sock.close()
        return "https" if is_tls_record(answer) else "http"


# TLS record content types a server answers a ClientHello with: alert (21), handshake (22).
_TLS_ANSWERS = (21, 22)


def is_tls_record(head: bytes) -> bool:
    """Whether ``head`` (a reply's first 3 bytes) starts a TLS record: an alert or handshake of TLS 1.x (3, x)."""
    return len(head) == 3 and head[0] in _TLS_ANSWERS and head[1] == 3 and head[2] <= 4


def client_hello(host: str) -> bytes:
    """A TLS 1.2/1.3 ClientHello (RFC 8446 4.1.2) that any TLS server answers with a TLS record: the cipher
    suites, groups and signature schemes of common clients, SNI for a host name. It is only ever a probe: the
    connection is closed after the reply's first bytes."""
    import os  # pylint: disable=import-outside-toplevel
    import struct  # pylint: disable=import-outside-toplevel

    def ext(kind: int, body: bytes) -> bytes:
        return struct.pack("!HH", kind, len(body)) + body

    def vector(items: tuple[int, ...]) -> bytes:  # a list of 16-bit values behind its 16-bit length
        return struct.pack(f"!H{len(items)}H", 2 * len(items), *items)

    suites = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0x009C, 0x009D, 0x002F, 0x0035)
    extensions = [
        ext(0x000A, vector((0x001D, 0x0017, 0x0018))),  # supported_groups: x25519, P-256, P-384
        ext(0x000B, b"\x01\x00"),  # ec_point_formats: uncompressed
        ext(0x000D, vector((0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601))),  # signatures
        ext(0x002B, b"\x04\x03\x04\x03\x03"),  # supported_versions: TLS 1.3, 1.2
        ext(0x0033, b"\x00\x00"),  # key_share, empty: a TLS 1.3 server asks for one (HelloRetryRequest)
    ]
    if host and not host.replace(".", "").isdigit() and ":" not in host:  # SNI names a host, never an address
        name = host.encode("idna") if not host.isascii() else host.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        extensions.insert(0, ext(0x0000, struct.pack("!H", len(entry)) + entry))
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + vector(suites) + b"\x01\x00"
            + struct.pack("!H", sum(map(len, extensions))) + b"".join(extensions))
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def ping(endpoint: Endpoint, send: Callable[..., Any], raise_for: Callable[..., None]) -> Challenge:
    """``GET /v2/`` without credentials → the challenge to answer (``none`` when the registry is open).

    ``send(method, url, op)`` sends without auth, with retries; ``raise_for(resp, op, what)`` reports."""
    op = f"contacting registry {endpoint.registry}"
    resp = send("GET", f"{endpoint.scheme}://{endpoint.registry}/v2/", op)
    with contextlib.closing(resp):
        if resp.status_code == 200:
            return Challenge("none")
        if resp.status_code == 401:
            chosen = pick_challenge(parse_www_authenticate(resp.headers.get("WWW-Authenticate", "")))
            if chosen is None:
                raise AuthError(
                    f"{op}: the registry asks for an authentication scheme this client does not support "
                    "(only Basic and Bearer are). Use a registry or proxy that offers one of them.",
                    status=401,
                )
            return chosen
        if resp.status_code == 404:
            raise RegistryError(
                f"{op}: {redact_url(resp.url)} answered 404; this is not a Docker/OCI registry (v2 API). "
                "Check the host and port.",
                status=404,
            )
        raise_for(resp, op, "the registry")
    raise AssertionError("unreachable: raise_for always raises")  # pragma: no cover
