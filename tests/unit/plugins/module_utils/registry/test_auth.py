# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry authentication (``registry/auth.py``): WWW-Authenticate parsing, scoped Bearer tokens (cache, expiry,
wider scope, realm safety rules), Basic credentials sent once and to the registry only."""

from __future__ import annotations

import io
import time

import pytest
from fault_server import FaultServer, Reply, error_reply
from registry_fixtures import (
    BLOB,
    BLOB_DIGEST,
    BLOB_PATH,
    MANIFEST,
    MANIFEST_DIGEST,
    OCI_MANIFEST,
    SECRET,
    basic_gate,
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
from ansible_collections.dockerless.containers.plugins.module_utils.registry.auth import (
    Challenge,
    parse_www_authenticate,
    scope_atoms,
    scope_strings,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials


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
