# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small token server for Docker's registry token protocol, for tests against the real registry.

Protocol (https://distribution.github.io/distribution/spec/auth/token/ and .../spec/auth/jwt/):

* ``GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]`` with optional basic auth. Wrong
  credentials answer 401. Otherwise the answer is a token granting the *allowed subset* of the requested
  actions (the spec says a partial grant is not an error): the configured users get every action they ask for,
  an anonymous client gets ``pull`` on repositories and nothing else.
* ``POST /token`` (OAuth2, https://distribution.github.io/distribution/spec/auth/oauth/) with
  ``grant_type=password`` (username, password) or ``grant_type=refresh_token``.

The token is a JWT signed RS256 whose header carries ``x5c`` = [the signing certificate]: distribution 2.8
(``registry/auth/token/token.go``) verifies that chain against ``auth.token.rootcertbundle`` and then the
signature, and checks ``iss`` = issuer, ``aud`` = service, ``exp``/``nbf`` (with 60 s leeway).

Every request is recorded (``requests``, ``count``) so tests can assert that a client reuses its tokens.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALL_ACTIONS = ("pull", "push", "delete", "*")

# policy(username or None, resource type, resource name, requested actions) -> granted actions
Policy = Callable[[Optional[str], str, str, list[str]], list[str]]


def default_policy(username: Optional[str], rtype: str, name: str, actions: list[str]) -> list[str]:
    """Authenticated users get what they ask for; anonymous clients may only pull repositories."""
    if username is not None:
        return [a for a in actions if a in ALL_ACTIONS]
    if rtype == "repository":
        return [a for a in actions if a == "pull"]
    return []


@dataclass(frozen=True)
class TokenRequest:
    """What the token server saw and decided for one request."""

    method: str
    username: Optional[str]
    status: int
    service: str
    scopes: tuple[str, ...]
    granted: tuple[tuple[str, str, tuple[str, ...]], ...]
    grant_type: str = ""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(scope: str) -> Optional[tuple[str, str, list[str]]]:
    """``repository:team/app:pull,push`` -> ("repository", "team/app", ["pull", "push"]); None if malformed.

    The type may carry a class (``repository(plugin)``); the name is everything between the first and the last
    colon, as in the spec's grammar.
    """
    first = scope.find(":")
    last = scope.rfind(":")
    if first <= 0 or last == first:
        return None
    rtype = scope[:first].split("(", 1)[0]
    name = scope[first + 1:last]
    actions = [a for a in scope[last + 1:].split(",") if a]
    if not name:
        return None
    return rtype, name, actions


@dataclass
class TokenServer:
    """Issue registry tokens on 127.0.0.1. ``start()`` serves in a daemon thread; ``stop()`` ends it.

    ``signing_cert``/``signing_key`` are PEM paths; the certificate must chain to the registry's
    ``rootcertbundle``. ``tls_cert``/``tls_key`` make the server answer https (the registry never calls the
    token server; only clients do, so its CA is the one clients pass as ``ca_path``).
    """

    signing_cert: str
    signing_key: str
    service: str
    issuer: str
    users: dict[str, str] = field(default_factory=dict, repr=False)
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 0
    expires_in: int = 300
    policy: Policy = default_policy
    # Answer every request with this HTTP status instead of a token (fault injection); None = normal.
    force_status: Optional[int] = None

    def __post_init__(self) -> None:
        with open(self.signing_key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"token server: {self.signing_key} is not an RSA key; RS256 needs one")
        self._key = key
        with open(self.signing_cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self._refresh_tokens: dict[str, str] = {}
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def realm(self) -> str:
        """The URL to configure as ``auth.token.realm``."""
        return self.url + "/token"

    def start(self) -> TokenServer:
        server = self

        class Handler(_Handler):
            token_server = server

        httpd = _QuietServer((self.host, self.port), Handler)
        if self.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
            # The handshake happens in the request's thread (_Handler.setup), not in the accept loop.
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- bookkeeping -----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._requests)

    def mark(self) -> int:
        """A position in the request list: ``requests[mark:]`` are the later ones."""
        return self.count

    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self._requests.append(req)

    # --- tokens ----------------------------------------------------------------------------------------

    def authenticate(self, username: Optional[str], password: Optional[str]) -> bool:
        if username is None:
            return True
        expected = self.users.get(username)
        return expected is not None and secrets.compare_digest(expected, password or "")

    def grant(self, username: Optional[str], scopes: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
        granted = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            rtype, name, actions = parsed
            allowed = self.policy(username, rtype, name, actions)
            if allowed:
                granted.append((rtype, name, tuple(allowed)))
        return granted

    def issue(self, username: Optional[str], service: str, granted: list[tuple[str, str, tuple[str, ...]]]) -> str:
        """A signed JWT for ``service`` granting ``granted``."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        claims = {
            "iss": self.issuer,
            "sub": username or "",
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [{"type": t, "name": n, "actions": list(a)} for t, n, a in granted],
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def new_refresh_token(self, username: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[token] = username
        return token

    def refresh_user(self, token: str) -> Optional[str]:
        with self._lock:
            return self._refresh_tokens.get(token)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's signature
        """A client that drops the connection or fails the TLS handshake is its own problem: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    token_server: TokenServer
    protocol_version = "HTTP/1.1"
    server_version = "dockerless-token-server"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        """Silence the per-request stderr line; requests are recorded in ``TokenServer.requests``."""

    def _send_json(self, status: int, body: dict, headers: Optional[dict[str, str]] = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _basic_auth(self) -> tuple[Optional[str], Optional[str], bool]:
        """(username, password, well_formed) from the Authorization header; (None, None, True) if absent."""
        value = self.headers.get("Authorization")
        if not value:
            return None, None, True
        scheme, _sep, rest = value.partition(" ")
        if scheme.lower() != "basic":
            return None, None, False
        try:
            user, sep, password = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None, False
        if not sep:
            return None, None, False
        return user, password, True

    def _unauthorized(self, method: str, user: Optional[str], service: str, scopes: list[str], grant_type: str = ""):
        ts = self.token_server
        ts._record(TokenRequest(method, user, 401, service, tuple(scopes), (), grant_type))
        self._send_json(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required: wrong user name or password"}]},
            {"WWW-Authenticate": 'Basic realm="dockerless-token-server"'},
        )

    def _forced(self, method: str, service: str, scopes: list[str]) -> bool:
        ts = self.token_server
        if ts.force_status is None:
            return False
        ts._record(TokenRequest(method, None, ts.force_status, service, tuple(scopes), ()))
        self._send_json(ts.force_status, {"errors": [{"code": "UNAVAILABLE", "message": "forced by the test"}]})
        return True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        ts = self.token_server
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": f"no such endpoint {url.path}"}]})
            return
        query = urllib.parse.parse_qs(url.query)
        service = query.get("service", [""])[0]
        # Several scope parameters, and several space-separated scopes in one parameter, are both allowed.
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        if self._forced("GET", service, scopes):
            return
        user, password, ok = self._basic_auth()
        if not ok or not ts.authenticate(user, password):
            self._unauthorized("GET", user, service, scopes)
            return
        if service != ts.service:
            ts._record(TokenRequest("GET", user, 400, service, tuple(scopes), ()))
            self._send_json(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service!r}"}]})
            return
        granted = ts.grant(user, scopes)
        token = ts.issue(user, service, granted)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": ts.expires_in,
            "issued_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if user is not None and query.get("offline_token", [""])[0] == "true":
            body["refresh_token"] = ts.new_refresh_token(user)
        ts._record(TokenRequest("GET", user, 200, service, tuple(scopes), tuple(granted)))
        self._send_json(200, body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        ts = self.token_server
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 16:
            self._send_json(413, {"errors": [{"code": "SIZE_INVALID", "message": "form too large"}]})
            return
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if url.path != "/token":
            self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": f"no such endpoint {url.path}"}]})
            return
        service = form.get("service", [""])[0]
        scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
        grant_type = form.get("grant_type", [""])[0]
        if self._forced("POST", service, scopes):
            return
        if grant_type == "password":
            user = form.get("username", [""])[0] or None
            if user is None or not ts.authenticate(user, form.get("password", [""])[0]):
                self._unauthorized("POST", user, service, scopes, grant_type)
                return
        elif grant_type == "refresh_token":
            user = ts.refresh_user(form.get("refresh_token", [""])[0])
            if user is None:
                self._unauthorized("POST", None, service, scopes, grant_type)
                return
        else:
            ts._record(TokenRequest("POST", None, 400, service, tuple(scopes), (), grant_type))
            self._send_json(400, {"error": "unsupported_grant_type"})
            return
        if service != ts.service:
            ts._record(TokenRequest("POST", user, 400, service, tuple(scopes), (), grant_type))
            self._send_json(400, {"error": "invalid_request", "error_description": f"unknown service {service!r}"})
            return
        granted = ts.grant(user, scopes)
        token = ts.issue(user, service, granted)
        body = {
            "access_token": token,
            "expires_in": ts.expires_in,
            "scope": " ".join(scopes),
            "issued_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if form.get("access_type", [""])[0] == "offline":
            body["refresh_token"] = ts.new_refresh_token(user)
        ts._record(TokenRequest("POST", user, 200, service, tuple(scopes), tuple(granted), grant_type))
        self._send_json(200, body)


def main() -> int:
    """Run a token server in the foreground: ``python tests/integration/token_server.py --help``."""
    import argparse
    import os

    parser = argparse.ArgumentParser(description="Docker registry token server for tests (127.0.0.1).")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--cert", required=True, help="signing certificate (PEM), chaining to rootcertbundle")
    parser.add_argument("--key", required=True, help="signing key (PEM, RSA)")
    parser.add_argument("--service", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--user", metavar="USER", help="a user allowed to push; password from $TOKEN_SERVER_PASSWORD")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    users = {}
    if args.user:
        users[args.user] = os.environ.get("TOKEN_SERVER_PASSWORD", "")
        if not users[args.user]:
            parser.error("--user needs the password in $TOKEN_SERVER_PASSWORD")
    server = TokenServer(
        signing_cert=args.cert, signing_key=args.key, service=args.service, issuer=args.issuer, users=users,
        tls_cert=args.tls_cert, tls_key=args.tls_key, port=args.port,
    ).start()
    print(server.realm, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
