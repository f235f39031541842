# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blob downloads: streamed, verified at EOF (size and digest), never read past the descriptor, resumed with Range
after a cut and never spliced from a different answer (``registry/blob_reader.py``)."""

from __future__ import annotations

import json

import pytest
from fault_server import Reply
from fresh_python import run_fresh
from registry_fixtures import (
    BLOB,
    BLOB_DIGEST,
    BLOB_PATH,
    BLOB_SIZE,
    blob_reply,
    make_client,
    read_all,
)

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DigestMismatchError,
    RegistryError,
)


def ranged(req):
    """A storage server that honours Range."""
    value = req.header("Range")
    if not value:
        return blob_reply()
    start = int(value.split("=")[1].rstrip("-"))
    return Reply(206, {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"}, BLOB[start:])


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
