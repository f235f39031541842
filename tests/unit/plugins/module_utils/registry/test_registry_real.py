# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RegistryClient against the real thing: Debian's docker-registry (CNCF distribution 2.8) started here on
loopback, an image made by umoci and pushed by skopeo, skopeo as the oracle for what we read and write."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import time
import tracemalloc

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RegistryError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient

pytestmark = pytest.mark.registry

TOOLS = ("docker-registry", "skopeo", "umoci")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, timeout=60, **kw)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-deps.sh installs them)")
    root = tmp_path_factory.mktemp("realreg")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not start: {(root / 'registry.log').read_text()}")
                time.sleep(0.05)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def image(registry, tmp_path_factory):
    """test/img:1 made with umoci (two layers) and pushed with skopeo; returns skopeo's view of it."""
    work = tmp_path_factory.mktemp("img")
    layout = str(work / "layout")
    _run("umoci", "init", "--layout", layout)
    _run("umoci", "new", "--image", f"{layout}:t")
    for i in range(2):
        src = work / f"f{i}"
        src.write_bytes(os.urandom(50000 + i))
        _run("umoci", "insert", "--image", f"{layout}:t", str(src), f"/data/f{i}")
    _run("skopeo", "copy", f"oci:{layout}:t", f"docker://{registry}/test/img:1", "--dest-tls-verify=false")
    raw = _run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/test/img:1").stdout
    return {"raw": raw, "manifest": json.loads(raw), "digest": "sha256:" + hashlib.sha256(raw).hexdigest()}


def client_for(host: str) -> RegistryClient:
    return RegistryClient(host, backoff_base=0.01, timeout=30)


def test_head_and_get_manifest_match_skopeo(registry, image):
    client = client_for(registry)
    assert client.scheme == "http"
    digest, media_type, size = client.head_manifest("test/img", "1")
    assert digest == image["digest"] and size == len(image["raw"])
    # umoci writes no mediaType into the manifest (OCI allows it): the Content-Type header tells.
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    body, media_type2, digest2 = client.get_manifest("test/img", "1")
    assert (body, media_type2, digest2) == (image["raw"], media_type, digest)
    assert client.get_manifest("test/img", digest)[0] == image["raw"]


def test_blobs_stream_verified(registry, image):
    client = client_for(registry)
    descriptors = [image["manifest"]["config"], *image["manifest"]["layers"]]
    assert len(descriptors) == 3
    for desc in descriptors:
        assert client.blob_exists("test/img", desc["digest"]) == desc["size"]
        with client.open_blob("test/img", desc["digest"], desc["size"]) as stream:
            data = stream.read()
        assert stream.verified and len(data) == desc["size"]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
    assert client.blob_exists("test/img", "sha256:" + "0" * 64) is None


def test_unknown_tag_and_repository(registry, image):
    client = client_for(registry)
    assert client.head_manifest("test/img", "nope") is None
    with pytest.raises(RegistryError, match="Check the name/tag, or push it first") as info:
        client.get_manifest("test/img", "nope")
    assert info.value.status == 404 and info.value.codes == ("MANIFEST_UNKNOWN",)
    with pytest.raises(RegistryError, match="Check the name/tag, or push it first") as info:
        client.get_manifest("test/none", "1")
    assert info.value.status == 404  # distribution 2.8 says MANIFEST_UNKNOWN here, others NAME_UNKNOWN


def test_mount_upload_and_put_manifest_read_back_by_skopeo(registry, image):
    client = client_for(registry)
    manifest = image["manifest"]
    for desc in manifest["layers"]:
        assert client.mount_blob("test/copy", desc["digest"], "test/img") is True
    config = json.loads(client.get_manifest("test/img", "1")[0])["config"]
    with client.open_blob("test/img", config["digest"], config["size"]) as stream:
        config_bytes = stream.read()
    assert client.mount_blob("test/copy", config["digest"], "test/elsewhere") is False  # not there: a session
    client.upload_blob("test/copy", config["digest"], len(config_bytes), lambda: io.BytesIO(config_bytes))
    media_type = client.head_manifest("test/img", "1")[1]
    assert client.put_manifest("test/copy", "2", image["raw"], media_type) == image["digest"]
    out = _run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/test/copy:2").stdout
    assert out == image["raw"]


class _Pattern(io.RawIOBase):
    """A large deterministic stream produced on the fly (nothing held in memory)."""

    def __init__(self, size: int):
        self.left = size
        self.block = hashlib.sha256(b"pattern").digest() * 2048  # 64 KiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n


def _pattern_digest(size: int) -> str:
    h = hashlib.sha256()
    stream = _Pattern(size)
    while True:
        data = stream.read(2**16)
        if not data:
            return "sha256:" + h.hexdigest()
        h.update(data)


@pytest.mark.parametrize("size,chunk_size", [(24 * 2**20, 8 * 2**20), (12 * 2**20, 16 * 2**20)])
def test_large_upload_and_download_keep_memory_flat(registry, size, chunk_size):
    client = client_for(registry)
    digest = _pattern_digest(size)
    client.ping()
    tracemalloc.start()
    try:
        client.upload_blob("test/big", digest, size, lambda: _Pattern(size), chunk_size=chunk_size)
        _current, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with client.open_blob("test/big", digest, size) as stream:
            total = 0
            while True:
                data = stream.read(2**16)
                if not data:
                    break
                total += len(data)
        _current, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.verified and total == size
    assert client.blob_exists("test/big", digest) == size
    assert upload_peak < 4 * 2**20, upload_peak
    assert download_peak < 4 * 2**20, download_peak
