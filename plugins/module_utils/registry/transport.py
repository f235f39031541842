# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bottom of the transport stack: one request, its redirects, and the choice of transport.

The client sends every request through ``Retry(Auth(Redirects(Transport)))`` (``retry.py``, ``auth.py``, here).
Each layer has ``send(request)``; a ``Request`` carries what the layers read and the little per-request state
they keep (the Authorization to attach, whether the 401 was already answered).

* ``Redirects`` follows redirects here, never in a library: at most 10, never https → http, userinfo dropped;
  the Authorization goes to the registry's origin only, and a token request's Basic credentials to the realm's
  origin only (blob downloads are redirected to object storage by most registries);
* ``Transport`` picks ``transport_direct`` (http.client) unless a proxy is set in the environment, then
  ``transport_proxy`` (requests); it decides TLS verification per URL, and turns what failed before a response
  arrived into ``ConnectionFailed`` (a CA file that can't be loaded is an error at once)."""

from __future__ import annotations

import os
from urllib.parse import urljoin, urlsplit, urlunsplit

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RegistryError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.ping import origin, split_host_port
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import (
    ConnectionFailed,
    redact_text,
    redact_url,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport_direct import (
    Pool,
    TransportError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport_proxy import (
    ProxyTransport,
    failure_kind,
)

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ansible_collections.dockerless.containers.plugins.module_utils.registry.ping import Endpoint

MAX_REDIRECTS = 10
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class Request:
    """One request as the layers see it. ``op`` names the operation for messages; ``atoms`` the token scope;
    ``replayable`` whether the body can be sent again (retries, re-authentication); ``auth`` whether the
    registry's credentials apply; ``token_auth`` for a token request (its own Basic header, realm-bound)."""

    __slots__ = ("method", "url", "op", "atoms", "headers", "body", "replayable", "follow_redirects", "auth",
                 "token_auth", "auth_header", "reauthenticated")

    def __init__(self, method: str, url: str, op: str, *, atoms: frozenset[str] = frozenset(),
                 headers: Mapping[str, str] | None = None, body: Any = None, replayable: bool = True,
                 follow_redirects: bool = False, auth: bool = True, token_auth: bool = False):
        self.method = method
        self.url = url
        self.op = op
        self.atoms = atoms
        self.headers = headers or {}
        self.body = body
        self.replayable = replayable
        self.follow_redirects = follow_redirects
        self.auth = auth
        self.token_auth = token_auth
        self.auth_header: str | None = None
        self.reauthenticated = False


def direct_allowed(url: str) -> bool:
    """Whether ``transport_direct`` sends this request: http(s) and no proxy in the environment (requests decides
    proxies, ``NO_PROXY`` included)."""
    return url.partition(":")[0] in ("http", "https") and not any(os.environ.get(name) for name in _PROXY_VARIABLES)


class Transport:
    """Sends one request on the direct or the proxy transport, verified as ``verify_for`` says."""

    def __init__(self, endpoint: Endpoint, *, ca_path: str | None, user_agent: str):
        self.endpoint = endpoint
        self.ca_path = ca_path
        self.direct = Pool(endpoint.timeout, user_agent)
        self.proxy = ProxyTransport(endpoint.registry, insecure=endpoint.insecure, timeout=endpoint.timeout,
                                    user_agent=user_agent, lock=endpoint.lock)

    def verify_for(self, url: str, token_auth: bool = False) -> bool | str:
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
        registry_host = split_host_port(self.endpoint.registry)[0].strip("[]").lower()
        if (urlsplit(url).hostname or "").lower() == registry_host:
            if self.endpoint.insecure:
                return False
            return self.ca_path or default
        if token_auth:
            return self.ca_path or default
        return default

    def request(self, method: str, url: str, headers: dict[str, str], body: Any, op: str,
                token_auth: bool = False) -> Any:
        verify = self.verify_for(url, token_auth)
        try:
            if direct_allowed(url):
                return self.direct.request(method, url, headers, body, verify)
            return self.proxy.request(method, url, headers, body, verify)
        except TransportError as exc:
            if exc.ca_file is not None:
                raise RegistryError(
                    f"{op}: the CA certificates {exc.ca_file!r} could not be loaded ({redact_text(str(exc))}). "
                    "Give ca_path as a PEM file (or a directory of them) holding the CA that signed the registry's "
                    "certificate."
                ) from None
            raise ConnectionFailed(exc, tls=exc.tls) from None
        except Exception as exc:
            kind = failure_kind(exc)
            if kind is None:
                raise
            raise ConnectionFailed(exc, tls=kind == "tls") from None

    def close(self) -> None:
        self.direct.close()
        self.proxy.close()


class Redirects:
    """``send(request)``: one request, following redirects when ``request.follow_redirects``."""

    def __init__(self, transport: Transport, endpoint: Endpoint):
        self.transport = transport
        self.endpoint = endpoint

    def send(self, request: Request) -> Any:
        method, url = request.method, request.url
        hops = 0
        first_origin = origin(url)
        while True:
            sent = dict(request.headers)
            if request.token_auth:
                # A token request carries Basic credentials for the realm's own origin only.
                if origin(url) != first_origin:
                    sent.pop("Authorization", None)
            elif request.auth_header and self.endpoint.is_registry_origin(url):
                sent["Authorization"] = request.auth_header
            resp = self.transport.request(method, url, sent, request.body, request.op, request.token_auth)
            if not request.follow_redirects or resp.status_code not in REDIRECT_STATUSES \
                    or not resp.headers.get("Location"):
                return resp
            resp.close()
            hops += 1
            target = urljoin(url, resp.headers["Location"])
            if hops > MAX_REDIRECTS:
                raise RegistryError(
                    f"{request.op}: more than {MAX_REDIRECTS} redirects (the last to {redact_url(target)}); the "
                    "registry or its storage is misconfigured.",
                    status=resp.status_code,
                )
            new = urlsplit(target)
            if new.scheme not in ("http", "https") or not new.hostname:
                raise RegistryError(f"{request.op}: redirect to an unsupported URL {redact_url(target)} refused.",
                                    status=resp.status_code)
            if urlsplit(url).scheme == "https" and new.scheme != "https":
                raise RegistryError(
                    f"{request.op}: redirect from https to plain http ({redact_url(target)}) refused; the content "
                    "would travel unprotected. Fix the registry's storage redirect settings.",
                    status=resp.status_code,
                )
            if new.username is not None or new.password is not None:
                target = urlunsplit(new._replace(netloc=new.netloc.rpartition("@")[2]))
            if resp.status_code == 303 and method != "HEAD":
                method = "GET"
            url = target
