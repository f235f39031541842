# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RegistryClient against the scripted fault server: every "Registry client" case of HOSTILE.md that the
client owns (ambiguous documents are oci.py's and pull's job), plus auth, uploads and error messages."""

from __future__ import annotations

import email.utils
import hashlib
import io
import json
import os
import sys
import time

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    AuthError,
    DigestMismatchError,
    ImageReferenceError,
    RegistryError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.auth import (
    Challenge,
    parse_www_authenticate,
    scope_atoms,
    scope_strings,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import (
    MANIFEST_MEDIA_TYPES,
    RegistryClient,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import redact_url
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fault_server import BearerGate, FaultServer, MemoryRegistry, Reply, error_reply, make_tls_files  # noqa: E402
from fresh_python import run_fresh  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SECRET = "pa55-W0RD-never-shown"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


BLOB = bytes(range(256)) * 40  # 10240 bytes
BLOB_DIGEST = sha(BLOB)
BLOB_SIZE = len(BLOB)
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(b"{}"), "size": 2},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": BLOB_DIGEST,
                "size": len(BLOB)}],
}).encode()
MANIFEST_DIGEST = sha(MANIFEST)
BLOB_PATH = f"/v2/app/blobs/{BLOB_DIGEST}"


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def other():
    with FaultServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def tls_server(tls_files):
    with FaultServer(tls=(tls_files["server.pem"], tls_files["server.key"])) as srv:
        yield srv


def make_client(srv: FaultServer, creds: Credentials | None = None, **kw) -> RegistryClient:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("max_retries", 3)
    kw.setdefault("timeout", 5)
    return RegistryClient(srv.host, creds, **kw)


def read_all(client: RegistryClient, digest=BLOB_DIGEST, size=BLOB_SIZE, repo="app", chunk=4096) -> bytes:
    out = bytearray()
    with client.open_blob(repo, digest, size) as stream:
        while True:
            data = stream.read(chunk)
            if not data:
                break
            out += data
    return bytes(out)


def manifest_reply(body=MANIFEST, media_type=OCI_MANIFEST, digest: str | None = "auto", **kw) -> Reply:
    headers = {"Content-Type": media_type}
    if digest == "auto":
        headers["Docker-Content-Digest"] = sha(body)
    elif digest:
        headers["Docker-Content-Digest"] = digest
    return Reply(200, headers, body, **kw)


# --- scheme and TLS -----------------------------------------------------------------------------------------------


def test_loopback_plain_http_server_is_used_over_http(server):
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server)
    assert client.scheme == "http"
    body, media_type, digest = client.get_manifest("app", "1")
    assert (body, media_type, digest) == (MANIFEST, OCI_MANIFEST, MANIFEST_DIGEST)
    accept = server.requests_to("GET", "/v2/app/manifests/1")[0].header("Accept")
    assert [t.strip() for t in accept.split(",")] == list(MANIFEST_MEDIA_TYPES) and len(MANIFEST_MEDIA_TYPES) == 4


def test_tls_server_with_ca_path_uses_https(tls_server, tls_files):
    tls_server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(tls_server, ca_path=tls_files["ca.pem"])
    assert client.scheme == "https"
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST


def test_tls_verification_failure_never_falls_back_to_http(tls_server):
    tls_server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(tls_server)  # the test CA is not trusted
    with pytest.raises(RegistryError, match="TLS with 127.0.0.1:.* failed .*ca_path"):
        client.get_manifest("app", "1")
    assert client.scheme == "https"
    assert tls_server.requests == []  # no request completed: not over TLS, and not over plain http either


def test_insecure_skips_verification(tls_server):
    tls_server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(tls_server, insecure=True)
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST


def test_non_loopback_registry_is_https_only():
    client = RegistryClient("registry.invalid:5000")
    assert client.scheme == "https"  # decided without any network access


def test_connection_refused_names_the_registry():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = RegistryClient(f"127.0.0.1:{port}", backoff_base=0.01)
    with pytest.raises(RegistryError, match=f"127.0.0.1:{port}: connection refused. Check that the registry"):
        client.get_manifest("app", "1")


# --- manifests ----------------------------------------------------------------------------------------------------


def test_manifest_docker_content_digest_mismatch_is_refused(server):
    server.on("GET", "/v2/app/manifests/1", manifest_reply(digest=sha(b"other")))
    with pytest.raises(DigestMismatchError, match="Docker-Content-Digest .* does not match"):
        make_client(server).get_manifest("app", "1")


def test_manifest_by_digest_with_other_content_is_refused(server):
    wrong = MANIFEST.replace(b'"size": 2', b'"size": 3')
    server.on("GET", f"/v2/app/manifests/{MANIFEST_DIGEST}", manifest_reply(body=wrong, digest=None))
    with pytest.raises(DigestMismatchError, match="not the one asked for"):
        make_client(server).get_manifest("app", MANIFEST_DIGEST)


def test_manifest_by_digest_verifies(server):
    server.on("GET", f"/v2/app/manifests/{MANIFEST_DIGEST}", manifest_reply(digest=None))
    assert make_client(server).get_manifest("app", MANIFEST_DIGEST)[2] == MANIFEST_DIGEST


@pytest.mark.parametrize("media_type,body", [
    ("application/vnd.docker.distribution.manifest.v1+prettyjws", b'{"schemaVersion": 1, "name": "app"}'),
    ("application/json", b'{"schemaVersion": 1, "name": "app", "fsLayers": []}'),
])
def test_schema1_is_refused_clearly(server, media_type, body):
    server.on("GET", "/v2/app/manifests/1", manifest_reply(body=body, media_type=media_type))
    with pytest.raises(RegistryError, match="schema 1 manifest, which is deprecated"):
        make_client(server).get_manifest("app", "1")


def test_media_type_from_body_when_content_type_is_generic(server):
    server.on("GET", "/v2/app/manifests/1", manifest_reply(media_type="application/json"))
    assert make_client(server).get_manifest("app", "1")[1] == OCI_MANIFEST


def test_oversized_manifest_with_declared_length_is_refused_unread(server):
    big = b" " * (4 * 2**20 + 1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply(body=big, digest=None))
    with pytest.raises(RegistryError, match="4194305 bytes, over the 4194304-byte limit"):
        make_client(server).get_manifest("app", "1")


def test_oversized_manifest_without_length_stops_after_the_cap(server):
    produced = []

    def endless():
        for _i in range(256):  # 64 MiB if the client read it all
            produced.append(2**18)
            yield b" " * 2**18

    server.on("GET", "/v2/app/manifests/1", Reply(200, {"Content-Type": OCI_MANIFEST}, chunks=endless()))
    with pytest.raises(RegistryError, match="over the 4194304-byte limit"):
        make_client(server).get_manifest("app", "1")
    time.sleep(0.2)
    assert sum(produced) < 16 * 2**20  # the server was stopped by the closed connection, far before 64 MiB


def test_head_manifest(server):
    server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    assert make_client(server).head_manifest("app", "1") == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))


def test_head_manifest_404_is_none_and_not_retried(server):
    server.on("HEAD", "/v2/app/manifests/1", error_reply(404, "MANIFEST_UNKNOWN"))
    assert make_client(server).head_manifest("app", "1") is None
    assert len(server.requests_to("HEAD", "/v2/app/manifests/1")) == 1


def test_head_manifest_without_digest_header_falls_back_to_get(server):
    server.on("HEAD", "/v2/app/manifests/1", manifest_reply(digest=None))
    server.on("GET", "/v2/app/manifests/1", manifest_reply(digest=None))
    assert make_client(server).head_manifest("app", "1") == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 1


# --- the direct transport (http.client, no requests) --------------------------------------------------------------------

_FRESH_HEAD = """
import json
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
client = RegistryClient(sys.argv[1], timeout=5)
head = client.head_manifest("app", "1")
print(json.dumps({"head": head, "loaded": sorted(m for m in ("requests", "urllib3") if m in sys.modules)}))
"""


def test_no_change_head_is_one_request_without_importing_requests(server):
    """A no-change re-pull's whole registry traffic: one HEAD, sent by a process that never imports requests."""
    server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    proc = run_fresh(_FRESH_HEAD, server.host, site=True)  # requests is in site-packages, findable
    answer = json.loads(proc.stdout)
    assert answer == {"head": [MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST)], "loaded": []}
    assert [(r.method, r.path) for r in server.requests] == [("HEAD", "/v2/app/manifests/1")]
    head = server.requests[0]
    assert head.header("Authorization") is None and head.header("User-Agent") == "dockerless.containers"
    assert [t.strip() for t in head.header("Accept").split(",")] == list(MANIFEST_MEDIA_TYPES)


def test_direct_head_answers_basic_challenge_once(server):
    basic_gate(server)
    server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server, Credentials("u", SECRET, "environment"))
    assert client.head_manifest("app", "1") == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    heads = server.requests_to("HEAD", "/v2/app/manifests/1")
    assert [h.header("Authorization") is None for h in heads] == [True, False]
    assert client._transport.proxy.session is None  # pylint: disable=protected-access  # requests never used
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST  # the challenge is known now: one request
    assert len(server.requests_to("HEAD", "/v2/app/manifests/1")) == 3


def test_direct_head_with_refused_basic_credentials_is_an_auth_error(server):
    basic_gate(server)
    client = make_client(server, Credentials("u", "wrong", "environment"))
    with pytest.raises(AuthError, match="user 'u' from environment") as info:
        client.head_manifest("app", "1")
    assert "wrong" not in str(info.value)
    assert len(server.requests_to("HEAD", "/v2/app/manifests/1")) <= 3  # refused Basic is never sent a third time


def test_direct_head_fetches_a_token_and_reuses_it(server):
    gate, reg = token_registry(server)
    reg.manifests[("app", "1")] = (MANIFEST, OCI_MANIFEST)
    client = make_client(server)
    assert client.head_manifest("app", "1") == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    assert len(gate.token_requests) == 1
    heads = server.requests_to("HEAD", "/v2/app/manifests/1")
    assert [h.header("Authorization") is not None for h in heads] == [False, True, True]
    assert heads[1].header("Authorization").startswith("Bearer ")


def test_direct_head_leaves_retries_and_redirects_to_the_full_path(server):
    server.on("HEAD", "/v2/app/manifests/1", error_reply(503, "UNAVAILABLE"), times=1)
    server.on("HEAD", "/v2/app/manifests/1", Reply(307, {"Location": "/v2/app/manifests/moved"}), times=1)
    server.on("HEAD", "/v2/app/manifests/moved", manifest_reply())
    client = make_client(server)
    assert client.head_manifest("app", "1") == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    # the quick HEAD gets the 503 and hands over; the full path's HEAD gets the 307 and follows it.
    assert len(server.requests_to("HEAD", "/v2/app/manifests/1")) == 2
    assert len(server.requests_to("HEAD", "/v2/app/manifests/moved")) == 1


def test_direct_head_404_and_errors_match_the_full_path(server):
    server.on("HEAD", "/v2/app/manifests/gone", error_reply(404, "MANIFEST_UNKNOWN"))
    server.on("HEAD", "/v2/app/manifests/denied", error_reply(403, "DENIED"))
    client = make_client(server)
    assert client.head_manifest("app", "gone") is None
    assert len(server.requests_to("HEAD", "/v2/app/manifests/gone")) == 1
    with pytest.raises(AuthError, match="access denied"):
        client.head_manifest("app", "denied")


@pytest.mark.parametrize("mode", ["ca_path", "insecure"])
def test_direct_head_over_tls(tls_server, tls_files, mode):
    tls_server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    kw = {"ca_path": tls_files["ca.pem"]} if mode == "ca_path" else {"insecure": True}
    client = make_client(tls_server, **kw)
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    assert client._transport.proxy.session is None  # pylint: disable=protected-access
    assert len(tls_server.requests_to("HEAD", "/v2/app/manifests/1")) == 1


def test_direct_head_with_an_unknown_ca_fails_like_the_full_path(tls_server):
    tls_server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    with pytest.raises(RegistryError, match="TLS with .* failed"):
        make_client(tls_server).head_manifest("app", "1")
    assert not tls_server.requests_to("HEAD", "/v2/app/manifests/1")


def test_open_registry_needs_no_ping_after_the_first_head(server):
    reg = MemoryRegistry(server).install()
    reg.manifests[("app", "1")] = (MANIFEST, OCI_MANIFEST)
    client = make_client(server)
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    assert client.blob_exists("app", BLOB_DIGEST) is None
    assert [(r.method, r.path) for r in server.requests] == [("HEAD", "/v2/app/manifests/1"),
                                                             ("HEAD", f"/v2/app/blobs/{BLOB_DIGEST}")]


_FRESH_PUSH = """
import hashlib, json
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
path, size = sys.argv[2], int(sys.argv[3])
with open(path, "rb") as handle:
    digest = "sha256:" + hashlib.sha256(handle.read()).hexdigest()
client = RegistryClient(sys.argv[1], timeout=5)
present = client.blob_exists("app", digest)
client.upload_blob("app", digest, size, lambda: open(path, "rb"))
client.upload_blob("app", digest, size, lambda: open(path, "rb"), chunk_size=size // 3 + 1)
print(json.dumps({"present": present, "loaded": sorted(m for m in ("requests", "urllib3") if m in sys.modules)}))
"""


def fresh_push(server, tmp_path, size: int, site: bool) -> None:
    """_FRESH_PUSH of ``size`` random bytes in a new interpreter (``site``: with site-packages): the blob arrives
    intact, and the process never imported requests or urllib3."""
    reg = MemoryRegistry(server).install()
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    proc = run_fresh(_FRESH_PUSH, server.host, str(path), str(size), site=site)
    assert json.loads(proc.stdout) == {"present": None, "loaded": []}
    assert reg.blobs[sha(data)] == data


def test_push_traffic_never_imports_requests(server, tmp_path):
    """HEAD, monolithic and chunked uploads to a plain-http registry: http.client only, on one kept-alive
    connection (plus the scheme probe's), the bytes intact."""
    fresh_push(server, tmp_path, 300_001, site=True)
    assert len(server.requests_to("PATCH", "/v2/app/blobs/uploads/.*")) == 3
    assert server.connections == 2  # the TLS probe's, then every request on one connection


def test_a_host_without_requests_pushes_to_a_registry_it_reaches_directly(server, tmp_path):
    """requests is needed only behind a proxy: without site-packages (no requests, no urllib3) the same push works,
    and a proxy in the environment gives an error that says what to install or unset."""
    fresh_push(server, tmp_path, 70_000, site=False)
    check = "import importlib.util; print(importlib.util.find_spec('requests'))"
    assert run_fresh(check, site=False).stdout.strip() == "None"  # really without requests

    code = """
import os
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
os.environ["HTTPS_PROXY"] = "http://proxy.invalid:3128"
try:
    RegistryClient(sys.argv[1], timeout=5).head_manifest("app", "1")
except DockerlessError as exc:
    print(exc)
"""
    message = run_fresh(code, server.host, site=False).stdout
    assert "through the proxy set in the environment needs the Python library 'requests'" in message
    assert "Install python3-requests" in message and "unset the proxy variables" in message


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_an_unusable_ca_path_is_named_at_once(tls_server, tmp_path, content):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    client = make_client(tls_server, ca_path=str(path), max_retries=3, backoff_base=5)  # a retry would take 5 s
    started = time.monotonic()
    with pytest.raises(RegistryError, match=f"the CA certificates '{path}' could not be loaded .*Give ca_path as a PEM"):
        client.head_manifest("app", "1")
    assert time.monotonic() - started < 2
    assert not tls_server.requests


def test_https_without_ca_path_trusts_the_system_store(tls_server, tls_files, monkeypatch):
    """Default verification is the system's trust store (as Docker's): a CA installed there (here through
    SSL_CERT_FILE, which OpenSSL's default paths honour) is trusted without ca_path, by the direct transport."""
    monkeypatch.setenv("SSL_CERT_FILE", tls_files["ca.pem"])
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # these would name the bundle to use instead
        monkeypatch.delenv(name, raising=False)
    tls_server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    client = make_client(tls_server)
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    assert client._transport.proxy.session is None  # pylint: disable=protected-access


def test_file_bodies_go_by_sendfile_on_plain_http(server, tmp_path, monkeypatch):
    import socket

    calls = []
    real = socket.socket.sendfile

    def counting(self, file, offset=0, count=None):
        calls.append((offset, count))
        return real(self, file, offset, count)

    monkeypatch.setattr(socket.socket, "sendfile", counting)
    reg = MemoryRegistry(server).install()
    data = os.urandom(100_000)
    path = tmp_path / "blob"
    path.write_bytes(data)
    client = make_client(server)
    client.upload_blob("app", sha(data), len(data), lambda: open(path, "rb"), chunk_size=60_000)
    assert reg.blobs[sha(data)] == data
    assert calls == [(0, 60_000), (60_000, 40_000)]
    client.upload_blob("app", BLOB_DIGEST, BLOB_SIZE, lambda: io.BytesIO(BLOB))  # no file descriptor: sent in blocks
    assert reg.blobs[BLOB_DIGEST] == BLOB and len(calls) == 2


def test_a_short_local_file_is_refused_not_padded(server, tmp_path):
    MemoryRegistry(server).install()
    path = tmp_path / "blob"
    path.write_bytes(BLOB[:1000])
    with pytest.raises(DigestMismatchError, match="ended 9240 bytes early"):
        make_client(server).upload_blob("app", BLOB_DIGEST, BLOB_SIZE, lambda: open(path, "rb"))


def test_a_connection_the_server_closed_while_idle_is_replaced(server):
    server.on("HEAD", BLOB_PATH, Reply(200, {"Content-Length": str(BLOB_SIZE)}, close_after=True))
    client = make_client(server, max_retries=0)  # a request sent on the dead connection would fail outright
    for done in range(1, 4):
        assert client.blob_exists("app", BLOB_DIGEST) == BLOB_SIZE
        # Idle: the server has closed every connection before the next request (as a keep-alive timeout does).
        deadline = time.monotonic() + 5
        while server.closed < server.connections and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.closed == server.connections, f"the server kept a connection open after request {done}"
    assert len(server.requests_to("HEAD", BLOB_PATH)) == 3
    assert server.connections == 1 + 3  # the probe's, then a new one after each close


def test_gzip_content_encoding_is_decoded(server):
    import gzip

    server.on("GET", "/v2/app/manifests/1", Reply(200, {"Content-Type": OCI_MANIFEST, "Content-Encoding": "gzip",
                                                        "Docker-Content-Digest": MANIFEST_DIGEST},
                                                  gzip.compress(MANIFEST)))
    assert make_client(server).get_manifest("app", "1") == (MANIFEST, OCI_MANIFEST, MANIFEST_DIGEST)


@pytest.mark.parametrize("wrapped", [True, False])
def test_deflate_content_encoding_is_decoded(server, wrapped):
    import zlib

    packer = zlib.compressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    server.on("GET", "/v2/app/manifests/1", Reply(200, {"Content-Type": OCI_MANIFEST, "Content-Encoding": "deflate"},
                                                  packer.compress(MANIFEST) + packer.flush()))
    assert make_client(server).get_manifest("app", "1") == (MANIFEST, OCI_MANIFEST, MANIFEST_DIGEST)


def test_a_read_timeout_is_retried_then_named(server):
    server.on("HEAD", "/v2/app/manifests/1", Reply(200, {}, delay=1.0))
    client = make_client(server, timeout=0.2, max_retries=1)
    with pytest.raises(RegistryError, match="timed out \\(after 2 attempts\\)"):
        client.head_manifest("app", "1")


def test_registry_wanting_credentials_for_pushes_only(server):
    """Anonymous HEAD answered 200, then the upload's 401 adopts the Basic challenge and sends the credentials."""
    import base64

    good = "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()

    def push_gate(req):
        if req.method in ("POST", "PUT", "PATCH") and req.header("Authorization") != good:
            return error_reply(401, "UNAUTHORIZED", "", {"WWW-Authenticate": 'Basic realm="fault"'})
        return None

    server.on("*", "/v2/.*", push_gate)
    reg = MemoryRegistry(server).install()
    reg.manifests[("app", "1")] = (MANIFEST, OCI_MANIFEST)
    client = make_client(server, Credentials("u", SECRET, "environment"))
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    client.upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert reg.blobs[BLOB_DIGEST] == BLOB
    posts = server.requests_to("POST", "/v2/app/blobs/uploads/")
    assert [p.header("Authorization") == good for p in posts] == [False, True]


def test_direct_head_is_not_used_behind_a_proxy(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server.on("HEAD", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server)
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    assert client._transport.proxy.session is not None  # pylint: disable=protected-access  # requests decided the proxy


# --- blobs --------------------------------------------------------------------------------------------------------


def blob_reply(body=BLOB, **kw) -> Reply:
    return Reply(200, {"Content-Type": "application/octet-stream"}, body, **kw)


def test_blob_streams_and_verifies(server):
    server.on("GET", BLOB_PATH, blob_reply())
    client = make_client(server)
    with client.open_blob("app", BLOB_DIGEST, len(BLOB)) as stream:
        assert stream.read() == BLOB
        assert stream.verified and stream.bytes_read == len(BLOB)


def test_corrupt_blob_is_rejected_at_eof(server):
    corrupt = bytearray(BLOB)
    corrupt[5000] ^= 0xFF
    server.on("GET", BLOB_PATH, blob_reply(bytes(corrupt)))
    with pytest.raises(DigestMismatchError, match="the content's digest is sha256:"):
        read_all(make_client(server))


def test_wrong_content_length_is_rejected_before_reading(server):
    server.on("GET", BLOB_PATH, blob_reply(BLOB + b"xx"))
    with pytest.raises(DigestMismatchError, match="announces 10242 bytes where 10240 were expected"):
        with make_client(server).open_blob("app", BLOB_DIGEST, len(BLOB)):
            pass


def test_body_longer_than_size_never_read_past_size_plus_one(server):
    served = []

    def body():
        for i in range(0, len(BLOB) * 4, 1024):
            served.append(i)
            yield (BLOB * 4)[i:i + 1024]

    server.on("GET", BLOB_PATH, Reply(200, {}, chunks=body()))
    client = make_client(server)
    with pytest.raises(DigestMismatchError, match="more than the descriptor's 10240 bytes"):
        with client.open_blob("app", BLOB_DIGEST, len(BLOB)) as stream:
            while stream.read(100000):
                pass
    assert stream.bytes_read == len(BLOB) + 1


def test_body_shorter_than_size_is_rejected(server):
    server.on("GET", BLOB_PATH, Reply(200, {}, chunks=iter([BLOB[:4000]])))
    with pytest.raises(DigestMismatchError, match="sent 4000 bytes, fewer than the descriptor's 10240"):
        read_all(make_client(server))


def test_blob_exists(server):
    server.on("HEAD", BLOB_PATH, blob_reply())
    server.on("HEAD", "/v2/app/blobs/sha256:.*", error_reply(404, "BLOB_UNKNOWN"))
    client = make_client(server)
    assert client.blob_exists("app", BLOB_DIGEST) == len(BLOB)
    assert client.blob_exists("app", sha(b"nope")) is None


@pytest.mark.parametrize("digest", [
    "sha256:../../x", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65, "md5:" + "a" * 32,
    "sha512:" + "a" * 128, "sha256:" + "a" * 64 + "\n", "", "sha256:" + "a" * 63 + "/",
])
def test_bad_digests_are_rejected_before_any_request(server, digest):
    client = make_client(server)
    with pytest.raises(ImageReferenceError):
        with client.open_blob("app", digest, 1):
            pass
    for call in (lambda: client.blob_exists("app", digest), lambda: client.get_manifest("app", digest),
                 lambda: client.mount_blob("app", digest, "base"),
                 lambda: client.upload_blob("app", digest, 1, lambda: io.BytesIO(b"x"))):
        with pytest.raises(ImageReferenceError):
            call()
    assert server.requests == []


@pytest.mark.parametrize("repo", ["../etc", "App", "a//b", "a/", "/a", "a?b", "a b", "a/../b"])
def test_bad_repository_names_are_rejected_before_any_request(server, repo):
    with pytest.raises(ImageReferenceError):
        make_client(server).get_manifest(repo, "1")
    assert server.requests == []


# --- redirects ----------------------------------------------------------------------------------------------------


def basic_gate(srv: FaultServer) -> None:
    """Require Basic u:SECRET on every /v2/ request."""
    import base64

    good = "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()

    def gate(req):
        if req.header("Authorization") != good:
            return error_reply(401, "UNAUTHORIZED", "", {"WWW-Authenticate": 'Basic realm="fault"'})
        return None

    srv.on("*", "/v2/.*", gate)


def test_redirect_to_another_host_sends_no_authorization(server, other):
    basic_gate(server)
    server.on("GET", BLOB_PATH, Reply(307, {"Location": f"{other.url}/storage/blob?X-Amz-Signature=abc"}))
    other.on("GET", "/storage/blob", blob_reply())
    assert read_all(make_client(server, Credentials("u", SECRET, "parameters"))) == BLOB
    assert server.requests_to("GET", BLOB_PATH)[-1].header("Authorization", ).startswith("Basic ")
    stored = other.requests_to("GET", "/storage/blob")
    assert len(stored) == 1 and stored[0].header("Authorization") is None
    assert stored[0].query == {"X-Amz-Signature": ["abc"]}


def test_same_origin_redirect_keeps_authorization(server):
    basic_gate(server)
    server.on("GET", BLOB_PATH, Reply(302, {"Location": "/v2/app/blobs/moved"}))
    server.on("GET", "/v2/app/blobs/moved", blob_reply())
    assert read_all(make_client(server, Credentials("u", SECRET, "parameters"))) == BLOB


def test_https_to_http_redirect_is_refused(tls_server, tls_files, other):
    tls_server.on("GET", BLOB_PATH, Reply(302, {"Location": f"{other.url}/storage/blob"}))
    other.on("GET", "/storage/blob", blob_reply())
    client = make_client(tls_server, ca_path=tls_files["ca.pem"])
    with pytest.raises(RegistryError, match="redirect from https to plain http .* refused"):
        read_all(client)
    assert other.requests == []


def test_more_than_ten_redirects_is_an_error(server):
    server.on("GET", "/v2/app/blobs/.*", lambda req: Reply(302, {"Location": f"/v2/app/blobs/hop{len(server.requests)}"}))
    with pytest.raises(RegistryError, match="more than 10 redirects"):
        read_all(make_client(server))
    assert len(server.requests_to("GET", "/v2/app/blobs/.*")) == 11


# --- retries ------------------------------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured(server):
    server.on("GET", "/v2/app/manifests/1", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": "1"}), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server)
    client.scheme  # noqa: B018 - probe outside the timed part
    start = time.monotonic()
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert 0.9 <= time.monotonic() - start < 5
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 2


def test_429_retry_after_http_date_is_honoured(server):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    server.on("GET", "/v2/app/manifests/1", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": when}), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server)
    client.scheme  # noqa: B018
    start = time.monotonic()
    client.get_manifest("app", "1")
    assert 0.9 <= time.monotonic() - start < 5  # the date has one-second resolution


def test_retry_after_is_capped(server):
    server.on("GET", "/v2/app/manifests/1", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": "3600"}), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server, retry_after_cap=0.3)
    client.scheme  # noqa: B018
    start = time.monotonic()
    client.get_manifest("app", "1")
    assert time.monotonic() - start < 2


def test_503_then_success(server):
    server.on("GET", BLOB_PATH, error_reply(503, "UNAVAILABLE"), times=2)
    server.on("GET", BLOB_PATH, blob_reply())
    assert read_all(make_client(server)) == BLOB
    assert len(server.requests_to("GET", BLOB_PATH)) == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_5xx_retries_are_bounded(server, status):
    server.on("GET", "/v2/app/manifests/1", Reply(status, {}, b"gateway trouble"))
    with pytest.raises(RegistryError, match=f"failed \\({status}\\) after 4 attempts") as info:
        make_client(server, max_retries=3).get_manifest("app", "1")
    assert info.value.status == status
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 4


def test_connection_reset_mid_manifest_is_retried(server):
    server.on("GET", "/v2/app/manifests/1", Reply(200, {}, b"x" * 100, content_length=5000, cut_after=10), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    assert make_client(server).get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 2


def test_connection_resets_mid_manifest_are_bounded(server):
    server.on("GET", "/v2/app/manifests/1", Reply(200, {}, b"x" * 100, content_length=5000, cut_after=10))
    with pytest.raises(RegistryError, match="connection broke while reading the manifest"):
        make_client(server, max_retries=2).get_manifest("app", "1")
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 3


def test_connection_reset_before_answer_is_retried(server):
    server.on("GET", "/v2/app/manifests/1", Reply(status=0), times=2)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    assert make_client(server).get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 3


@pytest.mark.parametrize("status,code,exc,text", [
    (401, "UNAUTHORIZED", AuthError, "authentication failed at the registry \\(401 UNAUTHORIZED\\)"),
    (403, "DENIED", AuthError, "access denied by the registry \\(403 DENIED\\)"),
    (404, "MANIFEST_UNKNOWN", RegistryError, "manifest not found \\(404 MANIFEST_UNKNOWN\\).* push it first"),
    (404, "NAME_UNKNOWN", RegistryError, "Check the name/tag, or push it first"),
])
def test_401_403_404_are_not_retried(server, status, code, exc, text):
    server.on("GET", "/v2/app/manifests/1", error_reply(status, code))
    with pytest.raises(exc, match=text) as info:
        make_client(server).get_manifest("app", "1")
    assert info.value.status == status and info.value.codes == (code,)
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 1


def test_blob_404_says_what_to_do(server):
    server.on("GET", BLOB_PATH, error_reply(404, "BLOB_UNKNOWN", "blob unknown to registry"))
    with pytest.raises(RegistryError, match=r"blob not found \(404 BLOB_UNKNOWN\)\. The registry says: BLOB_UNKNOWN: "
                                            r"blob unknown to registry\. Check the name/tag, or push it first"):
        read_all(make_client(server))


def test_oversized_error_body_is_not_read(server):
    produced = []

    def endless():
        for _i in range(64):
            produced.append(1)
            yield b"E" * 2**18

    server.on("GET", "/v2/app/manifests/1", Reply(400, {"Content-Type": "application/json"}, chunks=endless()))
    with pytest.raises(RegistryError, match="error body was over 1 MiB") as info:
        make_client(server).get_manifest("app", "1")
    assert info.value.status == 400
    time.sleep(0.2)
    assert len(produced) < 40


# --- resuming a cut download --------------------------------------------------------------------------------------


def ranged(req):
    """A storage server that honours Range."""
    value = req.header("Range")
    if not value:
        return blob_reply()
    start = int(value.split("=")[1].rstrip("-"))
    return Reply(206, {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"}, BLOB[start:])


def test_cut_download_resumes_with_range(server):
    server.on("GET", BLOB_PATH, blob_reply(cut_after=5000), times=1)
    server.on("GET", BLOB_PATH, ranged)
    client = make_client(server)
    with client.open_blob("app", BLOB_DIGEST, len(BLOB)) as stream:
        data = b"".join(iter(lambda: stream.read(1000), b""))
        assert data == BLOB and stream.verified and stream.resumes == 1
    second = server.requests_to("GET", BLOB_PATH)[1]
    assert second.header("Range") == f"bytes={len(data) - (len(BLOB) - 5000)}-" == "bytes=5000-"


def test_cut_download_restarts_when_range_is_ignored(server):
    server.on("GET", BLOB_PATH, blob_reply(cut_after=5000), times=1)
    server.on("GET", BLOB_PATH, blob_reply())  # ignores Range: 200 with the whole blob
    assert read_all(make_client(server), chunk=1000) == BLOB


def test_wrong_range_answer_is_not_spliced(server):
    server.on("GET", BLOB_PATH, blob_reply(cut_after=5000), times=1)
    # Claims 206 but sends the blob from byte 0 again: splicing it would corrupt the blob.
    server.on("GET", BLOB_PATH, Reply(206, {"Content-Range": f"bytes 0-{len(BLOB) - 1}/{len(BLOB)}"}, BLOB), times=1)
    server.on("GET", BLOB_PATH, blob_reply())
    assert read_all(make_client(server), chunk=1000) == BLOB
    assert server.requests_to("GET", BLOB_PATH)[2].header("Range") is None  # the fallback is a restart


def test_restart_serving_different_bytes_is_rejected(server):
    other_bytes = bytes(reversed(BLOB))
    server.on("GET", BLOB_PATH, blob_reply(cut_after=5000), times=1)
    server.on("GET", BLOB_PATH, blob_reply(other_bytes))
    with pytest.raises(DigestMismatchError, match="served different bytes"):
        read_all(make_client(server), chunk=1000)


_FRESH_CUT = """
import hashlib, json
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
digest, size = sys.argv[2], int(sys.argv[3])
client = RegistryClient(sys.argv[1], timeout=5, backoff_base=0.01, max_retries=3)
with client.open_blob("app", digest, size) as stream:
    data = b"".join(iter(lambda: stream.read(1000), b""))
    print(json.dumps({"sha": "sha256:" + hashlib.sha256(data).hexdigest(), "verified": stream.verified,
                      "resumes": stream.resumes,
                      "loaded": sorted(m for m in ("requests", "urllib3") if m in sys.modules)}))
"""


def test_cut_download_resumes_on_a_host_without_urllib3(server):
    """Without site-packages (no requests, no urllib3) a cut download resumes with Range like anywhere else: the
    direct transport's error handling never names a urllib3 class it would have to import."""
    server.on("GET", BLOB_PATH, blob_reply(cut_after=5000), times=1)
    server.on("GET", BLOB_PATH, ranged)
    proc = run_fresh(_FRESH_CUT, server.host, BLOB_DIGEST, str(BLOB_SIZE), site=False)
    assert json.loads(proc.stdout) == {"sha": BLOB_DIGEST, "verified": True, "resumes": 1, "loaded": []}
    assert server.requests_to("GET", BLOB_PATH)[1].header("Range") == "bytes=5000-"


def test_resumes_are_bounded(server):
    server.on("GET", BLOB_PATH, blob_reply(cut_after=100))
    with pytest.raises(RegistryError, match="connection broke 3 times"):
        read_all(make_client(server, max_retries=2), chunk=1000)


# --- WWW-Authenticate parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header,expected", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
     [Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                           "scope": "repository:library/alpine:pull"})]),
    ('Bearer realm="https://a/t",scope="repository:x/y:pull,push"',
     [Challenge("bearer", {"realm": "https://a/t", "scope": "repository:x/y:pull,push"})]),
    ('bearer REALM="https://a/t", Service="s"', [Challenge("bearer", {"realm": "https://a/t", "service": "s"})]),
    ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ('Basic realm="r", Bearer realm="https://a/t",service="s"',
     [Challenge("basic", {"realm": "r"}), Challenge("bearer", {"realm": "https://a/t", "service": "s"})]),
    ('Bearer realm=https://a/t,service=s', [Challenge("bearer", {"realm": "https://a/t", "service": "s"})]),
    ('Bearer realm="https://a/t",error="insufficient_scope",scope="repository:a:pull repository:b:pull"',
     [Challenge("bearer", {"realm": "https://a/t", "error": "insufficient_scope",
                           "scope": "repository:a:pull repository:b:pull"})]),
    ('Bearer realm="quo\\"ted"', [Challenge("bearer", {"realm": 'quo"ted'})]),
    ('Negotiate', [Challenge("negotiate", {})]),
    ('', []),
    ('Bearer realm="unterminated', [Challenge("bearer", {"realm": "unterminated"})]),
])
def test_parse_www_authenticate(header, expected):
    assert parse_www_authenticate(header) == expected


def test_scope_atoms_round_trip():
    atoms = scope_atoms("repository:a/b:pull,push repository:c:pull")
    assert atoms == {"repository:a/b:pull", "repository:a/b:push", "repository:c:pull"}
    assert scope_strings(atoms) == ["repository:a/b:pull,push", "repository:c:pull"]
    assert scope_atoms("garbage") == frozenset()


def test_unsupported_auth_scheme(server):
    server.on("GET", "/v2/", error_reply(401, "UNAUTHORIZED", headers={"WWW-Authenticate": "Negotiate"}))
    with pytest.raises(AuthError, match="only Basic and Bearer"):
        make_client(server).get_manifest("app", "1")


# --- bearer tokens ------------------------------------------------------------------------------------------------


def token_registry(srv: FaultServer, token_srv: FaultServer | None = None, **kw) -> tuple[BearerGate, MemoryRegistry]:
    gate = BearerGate(srv, token_srv, **kw).install()
    reg = MemoryRegistry(srv).install()
    return gate, reg


def test_anonymous_bearer_flow_scope_and_reuse(server):
    gate, reg = token_registry(server)
    reg.add_blob("app", BLOB)
    reg.add_blob("lib/base", b"base")
    reg.manifests[("app", "1")] = (MANIFEST, OCI_MANIFEST)
    client = make_client(server)
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert read_all(client) == BLOB
    assert client.blob_exists("app", BLOB_DIGEST) == len(BLOB)
    assert len(gate.token_requests) == 1  # one token for all requests on app
    req = gate.token_requests[0]
    assert req.query["scope"] == ["repository:app:pull"] and req.query["service"] == ["fault-registry"]
    assert req.header("Authorization") is None  # anonymous: Docker Hub's flow
    assert client.blob_exists("lib/base", sha(b"base")) == 4
    assert [r.query["scope"] for r in gate.token_requests[1:]] == [["repository:lib/base:pull"]]
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert len(gate.token_requests) == 2  # the app token is still cached


def test_push_token_has_pull_push_scope_and_covers_pulls(server):
    gate, reg = token_registry(server, users={"u": SECRET})
    client = make_client(server, Credentials("u", SECRET, "parameters"))
    client.upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert reg.blobs[BLOB_DIGEST] == BLOB
    scopes = [r.query.get("scope") for r in gate.token_requests]
    assert scopes == [["repository:app:pull,push"]]
    assert gate.token_requests[0].header("Authorization").startswith("Basic ")
    assert client.blob_exists("app", BLOB_DIGEST) == len(BLOB)
    assert len(gate.token_requests) == 1  # pull,push covers pull


def test_mount_asks_for_the_source_repository_too(server):
    gate, reg = token_registry(server, users={"u": SECRET})
    reg.add_blob("base", BLOB)
    client = make_client(server, Credentials("u", SECRET, "parameters"))
    assert client.mount_blob("app", BLOB_DIGEST, "base") is True
    assert reg.mounted == [("app", BLOB_DIGEST, "base")]
    assert gate.token_requests[-1].query["scope"] == ["repository:app:pull,push", "repository:base:pull"]
    client.blob_exists("base", BLOB_DIGEST)
    assert len(gate.token_requests) == 1  # the mount token also covers pulls from base


def test_insufficient_scope_challenge_gets_a_wider_token(server):
    # A registry that also wants a scope the client can't guess: it names it in its challenge.
    def needs_extra(req):
        token = (req.header("Authorization") or "")[len("Bearer "):]
        if any(t == token and "repository:extra:pull" in g for t, g, _user in gate.issued):
            return None
        return error_reply(401, "UNAUTHORIZED", headers={"WWW-Authenticate": (
            f'Bearer realm="{gate.realm}",service="fault-registry",scope="repository:extra:pull",'
            'error="insufficient_scope"')})

    server.on("GET", "/v2/app/manifests/1", needs_extra)
    gate, reg = token_registry(server)
    reg.manifests[("app", "1")] = (MANIFEST, OCI_MANIFEST)
    client = make_client(server)
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert [r.query["scope"] for r in gate.token_requests] == [
        ["repository:app:pull"], ["repository:app:pull", "repository:extra:pull"]]
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 2
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert len(gate.token_requests) == 2  # the wider token is reused


def test_revoked_token_is_refreshed_once(server):
    gate, reg = token_registry(server)
    reg.add_blob("app", BLOB)
    client = make_client(server)
    assert client.blob_exists("app", BLOB_DIGEST) == len(BLOB)
    gate.issued.clear()  # the registry forgets every token, as after expiry
    assert client.blob_exists("app", BLOB_DIGEST) == len(BLOB)
    assert len(gate.token_requests) == 2


def test_token_expiry_is_honoured(server):
    gate, reg = token_registry(server, expires_in=1)
    reg.add_blob("app", BLOB)
    client = make_client(server)
    client.blob_exists("app", BLOB_DIGEST)
    client.blob_exists("app", BLOB_DIGEST)
    assert len(gate.token_requests) == 1
    time.sleep(1.05)
    client.blob_exists("app", BLOB_DIGEST)
    assert len(gate.token_requests) == 2
    assert len(server.requests_to("HEAD", BLOB_PATH)) == 3  # renewed before use, not after a 401


def test_wrong_password_at_token_server_names_the_source_not_the_secret(server):
    token_registry(server, users={"u": "right"})
    client = make_client(server, Credentials("u", SECRET, "config.json:/root/.docker/config.json"))
    with pytest.raises(AuthError) as info:
        client.get_manifest("app", "1")
    text = str(info.value)
    assert "authentication failed at the token server (401 UNAUTHORIZED)" in text
    assert "user 'u' from config.json:/root/.docker/config.json" in text
    assert "DOCKER_USERNAME" in text and SECRET not in text


def test_anonymous_denied_push_says_how_to_provide_credentials(server):
    token_registry(server, anonymous_pull=True)
    client = make_client(server)
    with pytest.raises(AuthError, match="authentication failed at the registry.*no credentials \\(anonymous\\).*"
                                        "DOCKER_USERNAME and DOCKER_PASSWORD"):
        client.upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))


def test_token_realm_on_http_for_https_registry_gets_no_credentials(tls_server, tls_files, other):
    gate, reg = token_registry(tls_server, other, users={"u": SECRET})
    reg.add_blob("app", BLOB)
    client = make_client(tls_server, Credentials("u", SECRET, "parameters"), ca_path=tls_files["ca.pem"])
    assert client.blob_exists("app", BLOB_DIGEST) == len(BLOB)  # anonymous pull still works
    assert gate.token_requests and all(r.header("Authorization") is None for r in gate.token_requests)
    with pytest.raises(AuthError, match="realm uses plain http while the registry uses https, so the credentials"):
        client.upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert all(r.header("Authorization") is None for r in gate.token_requests)


def test_https_token_realm_on_another_port_is_verified_with_ca_path(tls_server, tls_files):
    with FaultServer(tls=(tls_files["server.pem"], tls_files["server.key"])) as token_srv:
        gate, reg = token_registry(tls_server, token_srv, users={"u": SECRET})
        reg.add_blob("app", BLOB)
        client = make_client(tls_server, Credentials("u", SECRET, "parameters"), ca_path=tls_files["ca.pem"])
        client.upload_blob("app", sha(b"new"), 3, lambda: io.BytesIO(b"new"))
        assert gate.token_requests[-1].header("Authorization").startswith("Basic ")
        assert reg.blobs[sha(b"new")] == b"new"


def test_token_realm_with_userinfo_gets_no_credentials(server, other):
    other.on("GET", "/token", lambda req: Reply(200, {}, b'{"token": "t"}'))
    server.on("GET", "/v2/", lambda req: None if req.header("Authorization") == "Bearer t" else error_reply(
        401, "UNAUTHORIZED", headers={"WWW-Authenticate": f'Bearer realm="http://evil:pw@{other.host}/token"'}))
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server, Credentials("u", SECRET, "parameters"))
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    (req,) = other.requests_to("GET", "/token")
    assert req.header("Authorization") is None


def test_oversized_token_body_is_refused(server):
    server.on("GET", "/token", Reply(200, {"Content-Type": "application/json"}, b'{"token": "' + b"a" * 2**20 + b'"}'))
    server.on("GET", "/v2/", error_reply(401, "UNAUTHORIZED", headers={
        "WWW-Authenticate": f'Bearer realm="{server.url}/token",service="s"'}))
    with pytest.raises(RegistryError, match="token response is .* over the 1048576-byte limit"):
        make_client(server).get_manifest("app", "1")


def test_token_reused_across_threads(server):
    from concurrent.futures import ThreadPoolExecutor

    gate, reg = token_registry(server)
    digests = [reg.add_blob("app", bytes([i]) * 100) for i in range(16)]
    client = make_client(server)
    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(lambda d: client.blob_exists("app", d), digests))
    assert sizes == [100] * 16
    assert len(gate.token_requests) == 1


# --- basic auth ---------------------------------------------------------------------------------------------------


def test_basic_auth_is_sent_and_wrong_credentials_fail_once(server):
    basic_gate(server)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    good = make_client(server, Credentials("u", SECRET, "environment"))
    assert good.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    bad = make_client(server, Credentials("u", "wrong", "environment"))
    count = len(server.requests)
    with pytest.raises(AuthError, match="user 'u' from environment") as info:
        bad.get_manifest("app", "1")
    assert "wrong" not in str(info.value)
    assert len(server.requests) - count == 2  # the ping and one manifest request: refused Basic is not resent


def test_ping_checks_credentials(server):
    basic_gate(server)
    make_client(server, Credentials("u", SECRET, "parameters")).ping()
    with pytest.raises(AuthError):
        make_client(server, Credentials("u", "nope", "parameters")).ping()
    make_client(server).ping()  # anonymous: only checks that a v2 registry answers


# --- uploads ------------------------------------------------------------------------------------------------------


def test_monolithic_upload(server):
    reg = MemoryRegistry(server).install()
    opened = []

    def opener():
        opened.append(1)
        return io.BytesIO(BLOB)

    make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), opener)
    assert reg.blobs[BLOB_DIGEST] == BLOB and len(opened) == 1
    assert [r.method for r in server.requests if r.path != "/v2/"] == ["POST", "PUT"]
    put = server.requests_to("PUT", "/v2/app/blobs/uploads/.*")[0]
    assert put.query["digest"] == [BLOB_DIGEST] and put.query["_state"] == ["su1"] and put.body == BLOB


def test_empty_blob_upload(server):
    reg = MemoryRegistry(server).install()
    make_client(server).upload_blob("app", sha(b""), 0, lambda: io.BytesIO(b""))
    assert reg.blobs[sha(b"")] == b""
    put = server.requests_to("PUT", "/v2/app/blobs/uploads/.*")[0]
    assert put.header("Content-Length") == "0" and put.header("Transfer-Encoding") is None


def test_chunked_upload_with_content_range(server):
    reg = MemoryRegistry(server).install()
    make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB), chunk_size=4096)
    assert reg.blobs[BLOB_DIGEST] == BLOB
    patches = server.requests_to("PATCH", "/v2/app/blobs/uploads/.*")
    assert [p.header("Content-Range") for p in patches] == ["0-4095", "4096-8191", "8192-10239"]
    assert [p.query["_state"] for p in patches] == [["su1"], ["p4096"], ["p8192"]]  # each new Location followed
    (put,) = server.requests_to("PUT", "/v2/app/blobs/uploads/.*")
    assert put.body == b"" and put.query["digest"] == [BLOB_DIGEST]


def test_upload_location_to_another_host_is_refused(server, other):
    server.on("POST", "/v2/app/blobs/uploads/", Reply(202, {"Location": f"{other.url}/upload/1"}))
    with pytest.raises(RegistryError, match="upload Location points to another host"):
        make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert other.requests == []


def test_chunk_location_to_another_host_is_refused(server, other):
    server.on("PATCH", "/v2/app/blobs/uploads/.*", Reply(202, {"Location": f"{other.url}/upload/1", "Range": "0-4095"}))
    MemoryRegistry(server).install()
    with pytest.raises(RegistryError, match="upload Location points to another host"):
        make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB), chunk_size=4096)
    assert other.requests == []


@pytest.mark.parametrize("method,chunk_size", [("PATCH", 4096), ("PUT", 2**20)])
def test_5xx_mid_upload_restarts_from_a_fresh_session(server, method, chunk_size):
    server.on(method, "/v2/app/blobs/uploads/.*", error_reply(500, "UNKNOWN"), times=1)
    reg = MemoryRegistry(server).install()
    opened = []

    def opener():
        opened.append(1)
        return io.BytesIO(BLOB)

    make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), opener, chunk_size=chunk_size)
    assert reg.blobs[BLOB_DIGEST] == BLOB
    assert len(opened) == 2 and len(server.requests_to("POST", "/v2/app/blobs/uploads/")) == 2


def test_reset_mid_upload_restarts(server):
    server.on("PATCH", "/v2/app/blobs/uploads/.*", Reply(status=0), times=1)
    reg = MemoryRegistry(server).install()
    make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB), chunk_size=4096)
    assert reg.blobs[BLOB_DIGEST] == BLOB


def test_upload_restarts_are_bounded(server):
    server.on("PUT", "/v2/app/blobs/uploads/.*", error_reply(503, "UNAVAILABLE"))
    MemoryRegistry(server).install()
    with pytest.raises(RegistryError, match="failed 3 times, the last because PUT answered 503"):
        make_client(server, max_retries=2).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))


def test_corrupt_local_blob_reports_digest_invalid_without_retry(server):
    MemoryRegistry(server).install()
    corrupt = bytes(reversed(BLOB))
    with pytest.raises(RegistryError, match="DIGEST_INVALID.*local copy may be corrupt") as info:
        make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(corrupt))
    assert info.value.codes == ("DIGEST_INVALID",) and info.value.status == 400
    assert len(server.requests_to("POST", "/v2/app/blobs/uploads/")) == 1


def test_short_local_blob_is_an_error(server):
    MemoryRegistry(server).install()
    with pytest.raises(DigestMismatchError, match="ended 240 bytes early"):
        make_client(server).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB[:10000]))


def test_mount_miss_reuses_the_session(server):
    reg = MemoryRegistry(server).install()
    client = make_client(server)
    assert client.mount_blob("app", BLOB_DIGEST, "base") is False
    client.upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert reg.blobs[BLOB_DIGEST] == BLOB
    assert len(server.requests_to("POST", "/v2/app/blobs/uploads/")) == 1


def test_put_manifest_and_manifest_blob_unknown(server):
    reg = MemoryRegistry(server).install()
    client = make_client(server)
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN.*push the blobs first") as info:
        client.put_manifest("app", "1", MANIFEST, OCI_MANIFEST)
    assert info.value.codes == ("MANIFEST_BLOB_UNKNOWN",)
    reg.add_blob("app", BLOB)
    reg.add_blob("app", b"{}")
    assert client.put_manifest("app", "1", MANIFEST, OCI_MANIFEST) == MANIFEST_DIGEST
    assert client.head_manifest("app", "1") == (MANIFEST_DIGEST, OCI_MANIFEST, len(MANIFEST))
    with pytest.raises(DigestMismatchError):
        client.put_manifest("app", sha(b"x"), MANIFEST, OCI_MANIFEST)


def test_unsupported_media_type_is_reported(server):
    server.on("PUT", "/v2/app/manifests/1", error_reply(415, "MANIFEST_INVALID", "unsupported manifest media type"))
    with pytest.raises(RegistryError, match="415 MANIFEST_INVALID Unsupported Media Type.*unsupported manifest media"):
        make_client(server).put_manifest("app", "1", MANIFEST, "application/x-weird")


# --- redaction ----------------------------------------------------------------------------------------------------


def test_redact_url():
    assert redact_url("https://user:pw@reg.example:5000/v2/a/blobs/uploads/x?_state=SECRET&digest=d") == \
        "https://reg.example:5000/v2/a/blobs/uploads/x?…"
    assert redact_url("http://h/p") == "http://h/p"


def test_connection_errors_do_not_leak_upload_state(server):
    def drop(req):
        server.close()
        return Reply(202, {"Location": "/v2/app/blobs/uploads/u1?_state=TOPSECRETSTATE"})

    server.on("POST", "/v2/app/blobs/uploads/", drop)
    with pytest.raises(RegistryError) as info:
        make_client(server, max_retries=1).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert "TOPSECRETSTATE" not in str(info.value)
