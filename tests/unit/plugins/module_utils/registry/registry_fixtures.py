# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the registry tests: the blob and manifest they serve, a client tuned for quick retries, and
the fault server's scripted registries."""

from __future__ import annotations

import hashlib
import json

from fault_server import BearerGate, FaultServer, MemoryRegistry, Reply, error_reply

from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials

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


def blob_reply(body=BLOB, **kw) -> Reply:
    return Reply(200, {"Content-Type": "application/octet-stream"}, body, **kw)


def basic_gate(srv: FaultServer) -> None:
    """Require Basic u:SECRET on every /v2/ request."""
    import base64

    good = "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()

    def gate(req):
        if req.header("Authorization") != good:
            return error_reply(401, "UNAUTHORIZED", "", {"WWW-Authenticate": 'Basic realm="fault"'})
        return None

    srv.on("*", "/v2/.*", gate)


def token_registry(srv: FaultServer, token_srv: FaultServer | None = None, **kw) -> tuple[BearerGate, MemoryRegistry]:
    gate = BearerGate(srv, token_srv, **kw).install()
    reg = MemoryRegistry(srv).install()
    return gate, reg
