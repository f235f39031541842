# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP/1.1 for a registry reached directly: kept-alive connections, sendfile bodies. ``https`` goes through
``http.client`` and ``ssl``; plain ``http`` (a loopback or ``insecure`` registry) through ``PlainConnection`` below,
so a pull from such a registry imports neither: ``http.client`` brings ``ssl`` and the ``email`` package with it,
about as much CPU as everything else a no-change ``dockerless pull`` does.

The transport stack (``registry.transport``) sends every request here unless a proxy is set in the environment (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, any case): requests and urllib3 decide proxies and ``NO_PROXY``, and are imported
only then. Importing them costs a process as much CPU as Ansible's own ``basic`` module (~60 ms here), which was
most of what a no-change re-pull or re-push spent and a visible part of a push; hosts without them can still use
any registry they reach directly.

TLS: ``verify`` is ``False`` (``insecure``), a CA file or directory (``ca_path``, or ``REQUESTS_CA_BUNDLE``), or
``True``: the system's trust store, as Docker's Go client uses (plus certifi's bundle when the system store holds
no CA file and certifi is installed).

What this transport does, and how it maps onto what the client expects of a requests response:

* connections are pooled per origin and verification setting and reused (HTTP/1.1 keep-alive). One taken
  from the pool is checked first: a socket that became readable while idle (the server closed it, or sent
  something unasked) is reconnected. A response not read to its end closes its connection;
* ``Response`` has ``status_code``, ``headers`` (case-insensitive, repeated headers joined with ", " as requests
  does), ``url``, ``request.method``, ``raw.read(n, decode_content=True)`` and ``close()``;
  ``Content-Encoding: gzip``/``deflate`` is decoded (the client asks for ``identity``, but requests decodes
  what a server sends anyway, and so does this);
* a body is ``bytes`` or an object with ``stream_to(sock, send)`` (the client's file reader, which uses
  ``sendfile(2)`` on a plain socket: the store's blob goes to the registry without passing through Python);
* any failure before a response arrives (connect, TLS handshake, send, a broken status line) is raised as
  ``TransportError`` with the original exception as its ``__cause__``; the client retries or reports it as it
  does requests' connection errors. Failures while reading a body are the ``OSError``/``HTTPException`` of
  ``http.client`` (an ``OSError`` on plain http: ``ResponseError``), which the client's readers already handle.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import zlib
from urllib.parse import urlsplit

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from typing import Any

_DRAIN_LIMIT = 64 * 2**10  # an unread body up to this size is read on close() so its connection can be reused
_READ_SIZE = 2**16
# http.client/urllib3 send a file-like body in 16 KiB blocks; 1 MiB blocks cut the Python read/sendall round
# trips (and GIL hand-overs between parallel uploads) by 64. Bodies sent by ``stream_to`` and the proxy
# transport's connections use it.
SEND_BLOCK_SIZE = 2**20
_MAX_IDLE = 16  # idle connections kept per origin
_MAX_LINE = 65536  # a status, header or chunk-size line longer than this is refused (http.client's limit)
_MAX_HEADERS = 100  # http.client's limit too


def _http_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a request or a body read fails with: ``OSError``, and ``http.client``'s only when an https
    connection loaded it (naming it in an ``except`` clause would import it for plain http)."""
    loaded = sys.modules.get("http.client")
    return (OSError, loaded.HTTPException) if loaded is not None else (OSError,)


class TransportError(Exception):
    """A request failed before its response arrived; ``tls`` when the TLS layer failed (handshake, certificate);
    ``ca_file`` (the path) when the CA certificates to verify with could not be loaded (nothing was sent)."""

    def __init__(self, exc: BaseException, ca_file: str | None = None):
        super().__init__(str(exc) or type(exc).__name__)
        ssl = sys.modules.get("ssl")  # only https loads it; a plain-http failure is never a TLS one
        self.tls = ssl is not None and isinstance(exc, ssl.SSLError)
        self.ca_file = ca_file


class ResponseError(ConnectionError):
    """Plain http: a malformed or cut answer (http.client's BadStatusLine, IncompleteRead…); an ``OSError``, so
    the client retries or resumes it as it does a reset connection."""


class RemoteDisconnected(ConnectionResetError):
    """Plain http: the server closed the connection before a status line (a kept-alive socket it dropped)."""


class PlainResponse:
    """The part of ``http.client.HTTPResponse`` this module uses (``status``, ``getheaders()``, ``read(amt)``,
    ``isclosed()``, ``chunked``, ``length``, ``close()``), for plain http. Bodies are framed as RFC 9112 says:
    none for HEAD, 1xx, 204 and 304; chunked; Content-Length; else up to the end of the connection."""

    def __init__(self, fp: Any, method: str):
        self._fp = fp
        while True:
            version, self.status = self._status_line()
            self._headers = self._header_lines()
            if not 100 <= self.status < 200 or self.status == 101:
                break  # interim answers (100 Continue) are skipped, as http.client does
        lower = {}
        for name, value in self._headers:
            lower[name.lower()] = value
        connection = lower.get("connection", "").lower()
        self.will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        self.chunked = "chunked" in lower.get("transfer-encoding", "").lower()
        self._chunk_left: int | None = None
        self.length: int | None = None
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self.length = 0
        elif not self.chunked:
            declared = lower.get("content-length", "").strip()
            if declared and declared.isascii() and declared.isdigit():  # not "²" or "-1", which int() would take
                self.length = int(declared)
            else:
                self.will_close = True  # the body ends with the connection
        if self.length == 0:
            self.close()

    def _line(self) -> bytes:
        line = self._fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ResponseError("the registry sent a line longer than 64 KiB")
        return line

    def _status_line(self) -> tuple[str, int]:
        line = self._line()
        if not line:
            raise RemoteDisconnected("Remote end closed connection without response")
        parts = line.decode("iso-8859-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
            raise ResponseError(f"not an HTTP/1.x status line: {line[:80]!r}")
        return parts[0], int(parts[1])

    def _header_lines(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and headers:  # obsolete line folding: part of the previous value
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {text.strip()}")
                continue
            name, sep, value = text.partition(":")
            if not sep or not name or name != name.strip():
                raise ResponseError(f"not an HTTP header line: {line[:80]!r}")
            headers.append((name, value.strip()))
            if len(headers) > _MAX_HEADERS:
                raise ResponseError(f"the registry sent more than {_MAX_HEADERS} headers")

    def getheaders(self) -> list[tuple[str, str]]:
        return list(self._headers)

    def isclosed(self) -> bool:
        return self._fp is None

    def close(self) -> None:
        fp, self._fp = self._fp, None
        if fp is not None:
            fp.close()

    def _exact(self, n: int) -> bytes:
        data = self._fp.read(n)
        if len(data) < n:
            self.close()
            raise ResponseError(f"the connection ended {n - len(data)} bytes before the end of the body")
        return data

    def read(self, amt: int | None = None) -> bytes:
        if self._fp is None:
            return b""
        if self.chunked:
            return self._read_chunked(amt)
        if self.length is None:  # up to the end of the connection
            data = self._fp.read() if amt is None else self._fp.read(amt)
            if amt is None or not data:
                self.close()
            return data
        data = self._exact(self.length if amt is None else min(amt, self.length))
        self.length -= len(data)
        if self.length == 0:
            self.close()
        return data

    def _read_chunked(self, amt: int | None) -> bytes:
        parts = []
        got = 0
        while amt is None or got < amt:
            if self._chunk_left is None:
                line = self._line()
                token = line.split(b";", 1)[0].strip()
                # Hex digits only: int(, 16) also takes "-5" (a negative read would read to the end), "0x5", "1_0".
                if not token or token.strip(b"0123456789abcdefABCDEF"):
                    self.close()
                    raise ResponseError(f"not a chunk size line: {line[:80]!r}")
                size = int(token, 16)
                if size == 0:
                    self._header_lines()  # trailers, up to the blank line
                    self.close()
                    break
                self._chunk_left = size
            n = self._chunk_left if amt is None else min(self._chunk_left, amt - got)
            parts.append(self._exact(n))
            got += n
            self._chunk_left -= n
            if self._chunk_left == 0:
                self._exact(2)  # the chunk's CRLF
                self._chunk_left = None
        return b"".join(parts)


class PlainConnection:
    """The part of ``http.client.HTTPConnection`` this module uses, for plain http: ``putrequest``/``putheader``/
    ``endheaders``/``send``/``getresponse``/``close`` and ``sock``; after ``close()`` the next request opens a
    new socket, as http.client's does."""

    def __init__(self, host: str, port: int | None, timeout: float):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock: Any = None
        self._lines: list[str] = []
        self._method = "GET"

    def putrequest(self, method: str, path: str, skip_accept_encoding: bool = True) -> None:  # pylint: disable=unused-argument
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port or 80), self.timeout)
            # As urllib3 does: headers and body go out in separate sends, and Nagle's algorithm would hold the
            # body's first segment until the server acknowledges the headers (a delayed ACK: up to 40 ms).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None and self.port != 80:
            host = f"{host}:{self.port}"
        self._method = method
        self._lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
        self._check(self._lines[0])

    @staticmethod
    def _check(text: str) -> None:
        if "\r" in text or "\n" in text:  # http.client refuses these too: no header injection
            raise ValueError(f"invalid character in an HTTP request line or header: {text!r}")

    def putheader(self, name: str, value: str) -> None:
        line = f"{name}: {value}"
        self._check(line)
        self._lines.append(line)

    def endheaders(self) -> None:
        data = ("\r\n".join(self._lines) + "\r\n\r\n").encode("iso-8859-1")
        self._lines = []
        self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def getresponse(self) -> PlainResponse:
        fp = self.sock.makefile("rb")
        try:
            answer = PlainResponse(fp, self._method)
        except BaseException:
            fp.close()
            raise
        if answer.will_close:
            self.close()  # the response's file keeps the socket open until its body is read
        return answer

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class Headers(dict):
    """Response headers by lower-cased name; repeated headers joined with ", " as requests does."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


class _Request:
    def __init__(self, method: str):
        self.method = method


class _Body:
    """``resp.raw``: reads the body, decoding a gzip/deflate Content-Encoding."""

    def __init__(self, answer: Any, encoding: str | None):
        self._answer = answer
        self._encoding = (encoding or "").strip().lower()
        self._decoder: Any = None
        if self._encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._tail = b""
        self._ended = False

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:  # pylint: disable=unused-argument
        if self._decoder is None and self._encoding not in ("gzip", "x-gzip", "deflate"):
            return self._answer.read(amt) if amt is not None else self._answer.read()
        if amt is None:
            parts = []
            while True:
                part = self.read(_READ_SIZE)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        while True:
            if self._tail:
                data, self._tail = self._tail, b""
            else:
                if self._ended:
                    return b""
                data = self._answer.read(_READ_SIZE)
                if not data:
                    self._ended = True
                    return self._decoder.flush() if self._decoder is not None else b""
            if self._decoder is None:
                # deflate is zlib-wrapped by the RFC and raw by some servers: the first two bytes tell.
                wrapped = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            out = self._decoder.decompress(data, amt)
            self._tail = self._decoder.unconsumed_tail
            if out:
                return out


class Response:
    """One answer, holding its connection until ``close()`` (which returns the connection to the pool)."""

    attempts = 1

    def __init__(self, pool: Pool, key: tuple, conn: Any, answer: Any, url: str, method: str):
        self._pool = pool
        self._key = key
        self._conn = conn
        self._answer = answer
        self._closed = False
        self.status_code = answer.status
        headers = Headers()
        for name, value in answer.getheaders():
            name = name.lower()
            headers[name] = f"{dict.get(headers, name)}, {value}" if name in headers else value
        self.headers = headers
        self.url = url
        self.request = _Request(method)
        self.raw = _Body(answer, headers.get("content-encoding"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        answer = self._answer
        reusable = False
        try:
            if not answer.isclosed() and not answer.chunked and answer.length is not None \
                    and answer.length <= _DRAIN_LIMIT:
                answer.read()
            reusable = answer.isclosed()
        except _http_errors():
            reusable = False
        if not reusable:
            answer.close()
            self._conn.close()  # the next request on this connection object opens a new socket
        self._pool.release(self._key, self._conn)


_TLS_CONNECTION: list[Any] = []


def _tls_connection(host: str, port: int | None, timeout: float, context: Any) -> Any:
    """An ``http.client.HTTPSConnection`` with TCP_NODELAY (see ``PlainConnection.putrequest``); its class is made
    at the first https request, so plain http never imports http.client."""
    if not _TLS_CONNECTION:
        import http.client  # pylint: disable=import-outside-toplevel

        class _TLSConnection(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        _TLS_CONNECTION.append(_TLSConnection)
    return _TLS_CONNECTION[0](host, port, timeout=timeout, context=context)


class Pool:
    """Kept-alive ``http.client`` connections by (scheme, host, port, verification). Thread-safe."""

    def __init__(self, timeout: float, user_agent: str):
        self.timeout = timeout
        self.user_agent = user_agent
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[Any]] = {}
        self._contexts: dict[bool | str, Any] = {}

    def _context(self, verify: bool | str) -> Any:
        import ssl  # pylint: disable=import-outside-toplevel  # https only

        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                if verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                elif verify is True:
                    context.load_default_certs()
                    if not context.cert_store_stats().get("x509_ca"):
                        _add_certifi(context)
                elif os.path.isdir(str(verify)):
                    context.load_verify_locations(capath=str(verify))
                else:
                    context.load_verify_locations(cafile=str(verify))
                self._contexts[verify] = context
            return context

    def _take(self, key: tuple, scheme: str, host: str, port: int | None,
              verify: bool | str) -> Any:
        with self._lock:
            idle = self._idle.get(key)
            conn = idle.pop() if idle else None
        if conn is not None:
            sock = conn.sock
            if sock is not None:
                try:
                    readable = select.select([sock], [], [], 0)[0]
                except (OSError, ValueError):
                    readable = [sock]
                if readable:
                    conn.close()  # closed by the server while idle (or it sent something unasked): reconnect
            return conn
        if scheme == "https":
            return _tls_connection(host, port, self.timeout, self._context(verify))
        return PlainConnection(host, port, self.timeout)

    def release(self, key: tuple, conn: Any) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def request(self, method: str, url: str, headers: dict[str, str], body: Any, verify: bool | str) -> Response:
        """Send one request (no redirects, no retries: the caller owns those) and return its answer."""
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        key = (scheme, host, parts.port, verify if scheme == "https" else None)
        try:
            conn = self._take(key, scheme, host, parts.port, verify)
        except (OSError, ValueError) as exc:  # CA certificates that can't be loaded
            raise TransportError(exc, ca_file=str(verify)) from exc
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        sent.update(headers)
        lower = {name.lower() for name in sent}
        if "content-length" not in lower and (body is not None or method in ("POST", "PUT", "PATCH")):
            sent["Content-Length"] = str(len(body)) if body is not None else "0"
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            if body is not None:
                if isinstance(body, (bytes, bytearray, memoryview)):
                    if body:
                        conn.send(body)
                else:
                    body.stream_to(conn.sock, conn.send)
            answer = conn.getresponse()
        except _http_errors() as exc:
            conn.close()
            self.release(key, conn)
            raise TransportError(exc) from exc
        except BaseException:
            conn.close()
            self.release(key, conn)
            raise
        return Response(self, key, conn, answer, url, method)

    def close(self) -> None:
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()


def _add_certifi(context: Any) -> None:
    """A system without a CA bundle file (only a hashed directory, loaded lazily, or nothing at all): add certifi's
    bundle when it is installed, the one requests would have used."""
    try:
        import certifi  # pylint: disable=import-outside-toplevel
    except ImportError:
        return
    import ssl  # pylint: disable=import-outside-toplevel  # loaded already: the context is ssl's

    try:
        context.load_verify_locations(cafile=certifi.where())
    except (OSError, ssl.SSLError):
        pass
