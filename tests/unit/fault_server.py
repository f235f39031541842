# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scripted HTTP(S) server for the faults a real registry won't produce on demand.

Each test programs the replies: ``server.on("GET", r"/v2/app/blobs/.*", Reply(...))`` or a handler
``lambda req: Reply(...)``. Rules are tried in the order they were added; ``times=N`` retires a rule after N
matches (so "503 twice, then success" is two rules). Every request is recorded (method, path, query, headers,
body) so tests can assert what the client sent, e.g. that no Authorization header reached another host.

Faults a Reply can inject: any status/headers/body, a declared Content-Length different from the body, a body
cut after N bytes with a TCP reset, a chunked (length-less) body produced lazily (oversized documents without
building them in memory), a delay. A plain-http server answers a TLS ClientHello with 400 at once, like Go's
net/http (so a client's TLS probe doesn't wait for a timeout). ``make_tls_files`` creates a CA and a server
certificate for 127.0.0.1/localhost with openssl for the https variants.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Union
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_length: int | None = None  # declared length; None → len(body)
    cut_after: int | None = None  # send this many body bytes, then reset the connection
    chunks: Iterable[bytes] | None = None  # a chunked body, generated lazily
    delay: float = 0.0
    close_after: bool = False  # close the connection after this reply without saying so (an idle keep-alive timeout)
    # status 0: no answer at all, the connection is reset after the request was read.


def error_reply(status: int, code: str, message: str = "", headers: dict[str, str] | None = None) -> Reply:
    """A distribution-style error document."""
    body = json.dumps({"errors": [{"code": code, "message": message or code.lower(), "detail": None}]}).encode()
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, body)


Handler = Callable[[Request], Optional[Reply]]
Action = Union[Reply, Handler]


@dataclass
class Rule:
    method: str
    pattern: re.Pattern
    action: Action
    times: int | None
    hits: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass

    def setup(self) -> None:
        # Go's net/http (the real registry) sets TCP_NODELAY on every connection. Without it, a reply written as
        # headers then body on a kept-alive connection holds the body back for the client's delayed ACK, and a
        # ``cut_after`` reset would discard it unsent.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner.connections += 1
        if self.server.tls_context is not None:
            try:
                self.request = self.server.tls_context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError):
                self.tls_on_plain_port = True  # the client refused our certificate: nothing to serve
        else:
            # A TLS ClientHello on a plain port: answer like Go's net/http would, without waiting for a newline.
            self.request.settimeout(5)
            try:
                first = self.request.recv(1, socket.MSG_PEEK)
            except OSError:
                first = b""
            self.request.settimeout(None)
            if first == b"\x16":
                self.request.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.tls_on_plain_port = True
        super().setup()

    tls_on_plain_port = False

    def handle(self) -> None:
        if self.tls_on_plain_port:
            return
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        req = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            b"",
        )
        try:
            req.body = self._read_body()
        except (ConnectionError, OSError, ValueError):
            self.close_connection = True
            return
        reply = self.server.owner._reply_for(req)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status == 0:
            self._reset()
            return
        self.send_response(reply.status)
        headers = dict(reply.headers)
        lower = {k.lower() for k in headers}
        if reply.chunks is not None:
            headers["Transfer-Encoding"] = "chunked"
        elif "content-length" not in lower:
            headers["Content-Length"] = str(reply.content_length if reply.content_length is not None else len(reply.body))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if reply.close_after:
            self.close_connection = True  # after this reply is written, without a Connection: close header
        if self.command == "HEAD":
            return
        try:
            if reply.chunks is not None:
                for chunk in reply.chunks:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            elif reply.cut_after is not None:
                self.wfile.write(reply.body[: reply.cut_after])
                self.wfile.flush()
                self._reset()
                return
            else:
                self.wfile.write(reply.body)
            self.wfile.flush()
        except (ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True

    def _reset(self) -> None:
        # SO_LINGER 0: close with a TCP reset, as a dropped connection looks to the client.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultServer
    tls_context: ssl.SSLContext | None

    def shutdown_request(self, request) -> None:
        super().shutdown_request(request)
        self.owner.closed += 1  # after the socket is closed: the client has its FIN


class FaultServer:
    """A scripted server on 127.0.0.1:<free port>; use as a context manager or call ``close()``."""

    def __init__(self, tls: tuple[str, str] | None = None):
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self.requests: list[Request] = []
        self.connections = 0  # TCP connections accepted
        self.closed = 0  # connections this server has closed
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._server.tls_context = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._server.tls_context = ctx
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()

    def on(self, method: str, path: str, action: Action, times: int | None = None) -> Rule:
        """Add a rule: ``path`` is a regex matched against the whole URL path (no query)."""
        rule = Rule(method.upper(), re.compile(path), action, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def _reply_for(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            candidates = [r for r in self.rules if r.method in (req.method, "*") and r.pattern.fullmatch(req.path)]
        for rule in candidates:
            with self._lock:
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                rule.hits += 1
            # A handler returning None passes the request on to the next rule (e.g. an auth gate).
            reply = rule.action(req) if callable(rule.action) else rule.action
            if reply is not None:
                return reply
        if req.method == "GET" and req.path == "/v2/":
            return Reply(200, {"Content-Type": "application/json"}, b"{}")
        return error_reply(404, "NOT_FOUND", f"no rule for {req.method} {req.path}")

    def requests_to(self, method: str, path: str) -> list[Request]:
        pattern = re.compile(path)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_tls_files(directory: str) -> dict[str, str]:
    """A CA and a server certificate for IP:127.0.0.1 and DNS:localhost (openssl CLI); returns their paths."""
    paths = {name: f"{directory}/{name}" for name in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr")}

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", "/CN=dockerless test CA", "-keyout", paths["ca.key"], "-out", paths["ca.pem"],
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", paths["server.key"], "-out", paths["server.csr"])
    ext = f"{directory}/server.ext"
    with open(ext, "w") as handle:
        handle.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                     "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", paths["server.csr"], "-CA", paths["ca.pem"], "-CAkey", paths["ca.key"],
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", paths["server.pem"])
    return paths


_NAME = r"(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"


class MemoryRegistry:
    """A small, correct distribution registry in memory, installed as rules on a FaultServer.

    Blobs (monolithic and chunked uploads, cross-repository mounts), manifests by tag and digest, distribution
    error documents. Add fault rules to the server *before* ``install()`` so they are tried first.
    """

    def __init__(self, server: FaultServer):
        self.server = server
        self.blobs: dict[str, bytes] = {}
        self.repos: dict[str, set[str]] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.mounted: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._next = 0

    def install(self) -> MemoryRegistry:
        s = self.server
        s.on("POST", rf"/v2/{_NAME}/blobs/uploads/?", self._start)
        s.on("PATCH", rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-z-]+)", self._patch)
        s.on("PUT", rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-z-]+)", self._finish)
        s.on("DELETE", rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-z-]+)", self._cancel)
        s.on("GET", rf"/v2/{_NAME}/blobs/(?P<digest>sha256:[0-9a-f]{{64}})", self._get_blob)
        s.on("HEAD", rf"/v2/{_NAME}/blobs/(?P<digest>sha256:[0-9a-f]{{64}})", self._get_blob)
        s.on("PUT", rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)", self._put_manifest)
        s.on("GET", rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)", self._get_manifest)
        s.on("HEAD", rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)", self._get_manifest)
        return self

    @staticmethod
    def _groups(req: Request, pattern: str) -> dict[str, str]:
        m = re.fullmatch(pattern, req.path)
        assert m is not None, req.path
        return m.groupdict()

    def add_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._lock:
            self.blobs[digest] = data
            self.repos.setdefault(repository, set()).add(digest)
        return digest

    def _start(self, req: Request) -> Reply:
        name = self._groups(req, rf"/v2/{_NAME}/blobs/uploads/?")["name"]
        mount, source = req.query.get("mount", [None])[0], req.query.get("from", [None])[0]
        with self._lock:
            if mount and source and mount in self.repos.get(source, set()):
                self.repos.setdefault(name, set()).add(mount)
                self.mounted.append((name, mount, source))
                return Reply(201, {"Location": f"/v2/{name}/blobs/{mount}", "Docker-Content-Digest": mount})
            self._next += 1
            uuid = f"u{self._next}"
            self.uploads[uuid] = bytearray()
        return Reply(202, {"Location": f"/v2/{name}/blobs/uploads/{uuid}?_state=s{uuid}", "Range": "0-0",
                           "Docker-Upload-UUID": uuid})

    def _patch(self, req: Request) -> Reply:
        g = self._groups(req, rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-z-]+)")
        with self._lock:
            buf = self.uploads.get(g["uuid"])
            if buf is None:
                return error_reply(404, "BLOB_UPLOAD_UNKNOWN")
            crange = req.header("Content-Range")
            if crange is not None:
                start, _dash, end = crange.partition("-")
                if int(start) != len(buf) or int(end) != len(buf) + len(req.body) - 1:
                    return Reply(416, {"Range": f"0-{len(buf) - 1}"})
            buf += req.body
            size = len(buf)
        return Reply(202, {"Location": f"/v2/{g['name']}/blobs/uploads/{g['uuid']}?_state=p{size}",
                           "Range": f"0-{size - 1}", "Docker-Upload-UUID": g["uuid"]})

    def _finish(self, req: Request) -> Reply:
        g = self._groups(req, rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-z-]+)")
        digest = req.query.get("digest", [""])[0]
        with self._lock:
            buf = self.uploads.pop(g["uuid"], None)
            if buf is None:
                return error_reply(404, "BLOB_UPLOAD_UNKNOWN")
            buf += req.body
            actual = "sha256:" + hashlib.sha256(buf).hexdigest()
            if actual != digest:
                return error_reply(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            self.blobs[digest] = bytes(buf)
            self.repos.setdefault(g["name"], set()).add(digest)
        return Reply(201, {"Location": f"/v2/{g['name']}/blobs/{digest}", "Docker-Content-Digest": digest})

    def _cancel(self, req: Request) -> Reply:
        g = self._groups(req, rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-z-]+)")
        with self._lock:
            self.uploads.pop(g["uuid"], None)
        return Reply(204)

    def _get_blob(self, req: Request) -> Reply:
        g = self._groups(req, rf"/v2/{_NAME}/blobs/(?P<digest>sha256:[0-9a-f]{{64}})")
        with self._lock:
            if g["digest"] not in self.repos.get(g["name"], set()):
                return error_reply(404, "BLOB_UNKNOWN", "blob unknown to registry")
            data = self.blobs[g["digest"]]
        return Reply(200, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": g["digest"]}, data)

    def _put_manifest(self, req: Request) -> Reply:
        g = self._groups(req, rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)")
        media_type = req.header("Content-Type") or ""
        try:
            doc = json.loads(req.body)
        except ValueError:
            return error_reply(400, "MANIFEST_INVALID", "manifest invalid")
        digest = "sha256:" + hashlib.sha256(req.body).hexdigest()
        with self._lock:
            have = self.repos.get(g["name"], set())
            wanted = [d["digest"] for d in [doc.get("config") or {}] + list(doc.get("layers") or []) if d]
            missing = [d for d in wanted if d not in have]
            if missing:
                return error_reply(400, "MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {missing[0]}")
            self.manifests[(g["name"], g["ref"])] = (req.body, media_type)
            self.manifests[(g["name"], digest)] = (req.body, media_type)
        return Reply(201, {"Location": f"/v2/{g['name']}/manifests/{digest}", "Docker-Content-Digest": digest})

    def _get_manifest(self, req: Request) -> Reply:
        g = self._groups(req, rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)")
        with self._lock:
            found = self.manifests.get((g["name"], g["ref"]))
        if found is None:
            return error_reply(404, "MANIFEST_UNKNOWN", "manifest unknown")
        body, media_type = found
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return Reply(200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, body)


class BearerGate:
    """Docker's token auth for a scripted registry: a token endpoint plus a gate rule before the registry's rules.

    ``users`` maps user → password (Basic at the token endpoint); anonymous callers get ``pull`` only when
    ``anonymous_pull``. Tokens are recorded in ``issued`` (token, granted scope atoms, user) and every token
    request in ``token_requests``. Install it before ``MemoryRegistry.install()``.
    """

    def __init__(self, registry: FaultServer, token_server: FaultServer | None = None, *,
                 users: dict[str, str] | None = None, anonymous_pull: bool = True, service: str = "fault-registry",
                 realm_path: str = "/token", expires_in: int = 300):
        self.registry = registry
        self.token_server = token_server or registry
        self.users = users or {}
        self.anonymous_pull = anonymous_pull
        self.service = service
        self.realm_path = realm_path
        self.realm = f"{self.token_server.url}{realm_path}"
        self.expires_in = expires_in
        self.issued: list[tuple[str, frozenset[str], str | None]] = []
        self.token_requests: list[Request] = []
        self._lock = threading.Lock()

    def install(self) -> BearerGate:
        self.token_server.on("GET", re.escape(self.realm_path), self._token)
        self.registry.on("*", r"/v2/.*", self._gate)
        return self

    def _token(self, req: Request) -> Reply:
        import base64

        self.token_requests.append(req)
        user = None
        auth = req.header("Authorization")
        if auth:
            scheme, _sp, value = auth.partition(" ")
            if scheme.lower() != "basic":
                return error_reply(401, "UNAUTHORIZED", "basic auth expected")
            name, _colon, password = base64.b64decode(value).decode().partition(":")
            if self.users.get(name) != password:
                return error_reply(401, "UNAUTHORIZED", "invalid username or password")
            user = name
        granted = set()
        for scope in req.query.get("scope", []):
            for item in scope.split():
                kind, _colon, rest = item.partition(":")
                name, _colon, actions = rest.rpartition(":")
                for action in actions.split(","):
                    if user is not None or (self.anonymous_pull and action == "pull"):
                        granted.add(f"{kind}:{name}:{action}")
        with self._lock:
            token = f"tok{len(self.issued) + 1}"
            self.issued.append((token, frozenset(granted), user))
        body = json.dumps({"token": token, "expires_in": self.expires_in}).encode()
        return Reply(200, {"Content-Type": "application/json"}, body)

    def _challenge(self, scope: str | None) -> Reply:
        value = f'Bearer realm="{self.realm}",service="{self.service}"'
        if scope:
            value += f',scope="{scope}",error="insufficient_scope"'
        return error_reply(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": value})

    def _gate(self, req: Request) -> Reply | None:
        auth = req.header("Authorization") or ""
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self._lock:
            grants = {t: g for t, g, _user in self.issued}
        if req.path == "/v2/":
            return None if token in grants else self._challenge(None)
        m = re.fullmatch(rf"/v2/{_NAME}/(blobs|manifests)/.*", req.path)
        if not m:
            return None
        action = "pull" if req.method in ("GET", "HEAD") else "push"
        needed = f"repository:{m.group('name')}:{action}"
        if token not in grants or needed not in grants[token]:
            actions = "pull" if action == "pull" else "pull,push"
            return self._challenge(f"repository:{m.group('name')}:{actions}")
        source = req.query.get("from", [None])[0]
        if source and f"repository:{source}:pull" not in grants[token]:
            req.query.pop("mount", None)  # like distribution: no access to the source → a plain upload session
        return None
