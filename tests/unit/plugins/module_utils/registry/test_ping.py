# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry endpoint: scheme probing (plain http only for loopback or insecure registries, never after a TLS
failure), TLS verification, and the ``/v2/`` ping that learns the challenge (``registry/ping.py``)."""

from __future__ import annotations

import pytest
from fault_server import MemoryRegistry
from registry_fixtures import (
    BLOB_DIGEST,
    MANIFEST,
    MANIFEST_DIGEST,
    OCI_MANIFEST,
    SECRET,
    basic_gate,
    make_client,
    manifest_reply,
)

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    AuthError,
    RegistryError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import (
    MANIFEST_MEDIA_TYPES,
    RegistryClient,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials


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


def test_open_registry_needs_no_ping_after_the_first_head(server):
    reg = MemoryRegistry(server).install()
    reg.manifests[("app", "1")] = (MANIFEST, OCI_MANIFEST)
    client = make_client(server)
    assert client.head_manifest("app", "1")[0] == MANIFEST_DIGEST
    assert client.blob_exists("app", BLOB_DIGEST) is None
    assert [(r.method, r.path) for r in server.requests] == [("HEAD", "/v2/app/manifests/1"),
                                                             ("HEAD", f"/v2/app/blobs/{BLOB_DIGEST}")]


def test_ping_checks_credentials(server):
    basic_gate(server)
    make_client(server, Credentials("u", SECRET, "parameters")).ping()
    with pytest.raises(AuthError):
        make_client(server, Credentials("u", "nope", "parameters")).ping()
    make_client(server).ping()  # anonymous: only checks that a v2 registry answers
