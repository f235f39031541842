# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bottom of the transport stack: the direct http.client transport (a push and a no-change pull never import
requests), its TLS and keep-alive, the proxy choice, and redirects (``registry/transport*.py``)."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
from fault_server import MemoryRegistry, Reply, error_reply
from fresh_python import run_fresh
from registry_fixtures import (
    BLOB,
    BLOB_DIGEST,
    BLOB_PATH,
    BLOB_SIZE,
    MANIFEST,
    MANIFEST_DIGEST,
    OCI_MANIFEST,
    SECRET,
    basic_gate,
    blob_reply,
    make_client,
    manifest_reply,
    read_all,
    sha,
    token_registry,
)

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    AuthError,
    RegistryError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import (
    MANIFEST_MEDIA_TYPES,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials

_FRESH_HEAD = """
import json
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
client = RegistryClient(sys.argv[1], timeout=5)
head = client.head_manifest("app", "1")
print(json.dumps({"head": head, "loaded": sorted(m for m in ("requests", "urllib3") if m in sys.modules)}))
"""


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
