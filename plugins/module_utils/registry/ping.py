# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a registry is and how it is spoken to: the scheme (https; plain http only for loopback registries whose
server does not speak TLS, as Docker does, or registries marked ``insecure``; a TLS verification failure never
falls back to http), its origin (where credentials may go) and the ``GET /v2/`` ping that learns the challenge.

go-containerregistry's ``transport/ping.go`` has the same role."""

from __future__ import annotations

import contextlib
import socket
import ssl
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

        The probe is a TLS handshake without verification that sends nothing else: a plain-http server answers
        it with an HTTP error, which is the only case where http is chosen. Certificate problems are found
        later, by the verified request, and are errors.
        """
        if not (self.loopback or self.insecure):
            return "https"
        host, port = split_host_port(self.registry)
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
