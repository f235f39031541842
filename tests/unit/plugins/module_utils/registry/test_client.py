# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RegistryClient's API against the scripted fault server: manifests (verified by digest, capped, schema 1
refused), blob existence, name checks, uploads (monolithic, chunked, restarted, mounted) and manifest pushes."""

from __future__ import annotations

import io
import os
import time

import pytest
from fault_server import MemoryRegistry, Reply, error_reply
from registry_fixtures import (
    BLOB,
    BLOB_DIGEST,
    BLOB_PATH,
    BLOB_SIZE,
    MANIFEST,
    MANIFEST_DIGEST,
    OCI_MANIFEST,
    blob_reply,
    make_client,
    manifest_reply,
    sha,
)

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DigestMismatchError,
    ImageReferenceError,
    RegistryError,
)


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
