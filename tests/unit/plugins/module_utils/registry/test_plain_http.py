# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain http without http.client (``transport_direct.PlainConnection``/``PlainResponse``) on real sockets: the
framings of RFC 9112 a registry or a proxy in front of it may use, and the refusals; and the scheme probe's own
TLS ClientHello (``ping.client_hello``), answered with a TLS record by OpenSSL servers of TLS 1.2 only and of
TLS 1.3 only. Whole pulls and pushes over plain http are the rest of this folder's tests (the fault server is
plain http)."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
from fault_server import make_tls_files

from ansible_collections.dockerless.containers.plugins.module_utils.registry.ping import (
    Endpoint,
    client_hello,
    is_tls_record,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport_direct import (
    PlainConnection,
    PlainResponse,
    RemoteDisconnected,
    ResponseError,
)


class CannedServer:
    """A TCP server on 127.0.0.1 that reads one request (up to its blank line) and writes ``answer`` back, then
    closes; the request it read is kept in ``received``."""

    def __init__(self, answer: bytes):
        self.answer = answer
        self.received = b""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _addr = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in self.received:
                part = conn.recv(65536)
                if not part:
                    return
                self.received += part
            conn.sendall(self.answer)

    def close(self) -> None:
        self.thread.join(5)
        self.listener.close()


def exchange(answer: bytes, method: str = "GET") -> tuple[PlainResponse, CannedServer]:
    server = CannedServer(answer)
    conn = PlainConnection("127.0.0.1", server.port, timeout=5)
    conn.putrequest(method, "/v2/app/manifests/1")
    conn.putheader("Accept", "application/json")
    conn.endheaders()
    return conn.getresponse(), server


def test_the_request_names_the_host_and_port_as_http_client_does():
    resp, server = exchange(b"HTTP/1.1 204 No Content\r\n\r\n")
    server.close()
    assert server.received.startswith(b"GET /v2/app/manifests/1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)
    assert server.received.endswith(b"Accept: application/json\r\n\r\n")
    assert resp.status == 204 and resp.isclosed() and resp.read() == b""


def test_a_chunked_body_with_extensions_and_trailers_is_read_in_any_step():
    body = b"5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nDigest: x\r\n\r\n"
    resp, server = exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert resp.chunked and resp.length is None
    assert [resp.read(3), resp.read(3), resp.read(100)] == [b"hel", b"lo ", b"world"]
    assert resp.read() == b"" and resp.isclosed()
    server.close()


def test_interim_answers_are_skipped_and_folded_headers_joined():
    resp, server = exchange(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                            b"X-Long: a\r\n  b\r\n\r\nok")
    assert resp.status == 200 and dict(resp.getheaders())["X-Long"] == "a b"
    assert resp.read() == b"ok" and resp.isclosed()
    server.close()


def test_an_http_1_0_answer_without_length_ends_with_the_connection():
    resp, server = exchange(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
    assert resp.will_close and resp.length is None
    assert resp.read(5) == b"until" and resp.read() == b" the end" and resp.isclosed()
    server.close()


def test_head_has_no_body_whatever_its_length_says():
    resp, server = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 525\r\nDocker-Content-Digest: sha256:ab\r\n\r\n",
                            method="HEAD")
    assert resp.isclosed() and resp.length == 0 and resp.read() == b""
    server.close()


@pytest.mark.parametrize("answer, error", [
    (b"", RemoteDisconnected),                                            # closed before answering
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", ResponseError),                     # not HTTP
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", ResponseError),        # a broken header
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n", ResponseError),  # an endless line
])
def test_broken_answers_are_connection_errors_the_client_retries(answer, error):
    server = CannedServer(answer)
    conn = PlainConnection("127.0.0.1", server.port, timeout=5)
    conn.putrequest("GET", "/v2/")
    conn.endheaders()
    with pytest.raises(error):
        conn.getresponse()
    assert issubclass(error, ConnectionError)
    server.close()


def test_a_body_cut_short_of_its_length_is_an_error_not_a_short_read():
    resp, server = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(ResponseError, match="5 bytes before the end"):
        resp.read()
    server.close()


def test_a_header_value_with_a_line_break_is_refused_before_sending():
    conn = PlainConnection("127.0.0.1", 9, timeout=5)
    conn.sock = socket.socket()  # never connected: nothing may be sent
    try:
        with pytest.raises(ValueError, match="invalid character"):
            conn.putheader("Authorization", "Bearer x\r\nX-Injected: 1")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(str(tmp_path_factory.mktemp("tls")))


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_the_probe_hello_is_answered_with_a_tls_record_by_openssl(tls_files, version):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["server.pem"], tls_files["server.key"])
    context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    handshakes: list[str] = []

    def serve() -> None:
        for _attempt in range(2):
            conn, _addr = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    handshakes.append(tls.version() or "")
            except (ssl.SSLError, OSError):
                handshakes.append("aborted")  # the probe hangs up after the first bytes of the answer

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(client_hello("localhost"))
            head = sock.recv(3)
        assert is_tls_record(head) and head[0] == 22, head  # a handshake record: the ServerHello
        assert Endpoint(f"127.0.0.1:{port}", insecure=False, timeout=5).resolve_scheme() == "https"
    finally:
        thread.join(5)
        listener.close()
    assert handshakes == ["aborted", "aborted"]


def test_what_is_not_a_tls_record():
    assert not is_tls_record(b"HTT") and not is_tls_record(b"") and not is_tls_record(b"\x16\x03")
    assert is_tls_record(b"\x15\x03\x03") and not is_tls_record(b"\x17\x02\x00")


@pytest.mark.parametrize("size", [b"-5", b"0x5", b"1_0", b"+5", b""])
def test_a_chunk_size_that_is_not_hex_digits_is_refused(size):
    resp, server = exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n0\r\n\r\n")
    with pytest.raises(ResponseError, match="not a chunk size line"):
        resp.read()
    server.close()


def test_a_content_length_that_is_not_ascii_digits_reads_to_the_end_of_the_connection():
    resp, server = exchange("HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\nConnection: close\r\n\r\nbody".encode("latin-1"))
    assert resp.length is None and resp.read() == b"body"
    server.close()
