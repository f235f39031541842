# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A first pull with ``dest`` builds the tree while the layers download: the bottom layer is extracted from its
download stream (teed into the store), the layers above from their blobs as soon as they are committed, each
inflating while the layer below is applied. The tree becomes ``dest`` only after every blob digest and every
diff_id verified. Real kernel as root, a registry on loopback (fault_server) serving the blobs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import threading
import time

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import pull_image, rootfs_digest
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import host_platform
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fault_server import FaultServer, MemoryRegistry, Reply  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: owners and device nodes "
                                                   "of the extracted tree")]
REPO = "stream/app"
MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(files: dict[str, bytes], level: int = 6) -> tuple[bytes, bytes]:
    raw = _tar(files)
    return raw, gzip.compress(raw, compresslevel=level, mtime=0)


def _publish(reg: MemoryRegistry, layers: list[tuple[bytes, bytes]], diff_ids: list[str] | None = None) -> str:
    """Push an image of ``layers`` ((tar, gzip) pairs) as REPO:1; returns its name."""
    platform = host_platform()
    config = json.dumps({"architecture": platform.architecture, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids or [_sha(raw) for raw, _blob in layers]}}
                        ).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": reg.add_blob(REPO, config),
                   "size": len(config)},
        "layers": [{"mediaType": MEDIA_GZIP, "digest": reg.add_blob(REPO, blob), "size": len(blob)}
                   for _raw, blob in layers],
    }).encode()
    for ref in ("1", _sha(manifest)):
        reg.manifests[(REPO, ref)] = (manifest, oci.OCI_MANIFEST)
    return f"{reg.server.host}/{REPO}:1"


def _inflate_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dockerless-inflate"]


def _no_leftovers(parent: str) -> None:
    assert not [n for n in os.listdir(parent) if "dockerless-new" in n or "dockerless-old" in n]
    deadline = time.monotonic() + 5
    while _inflate_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _inflate_threads(), "a layer still inflating after the pull returned"


def test_bottom_layer_is_extracted_while_it_downloads(tmp_path):
    """The registry holds back the end of the bottom layer until the first file of that layer exists in the tree
    under construction: a pull that waits for the whole download before extracting never gets there."""
    big = os.urandom(3 << 20)  # incompressible: the first MiBs of the blob carry the start of big.bin
    bottom = _layer({"big.bin": big, "after.txt": b"bottom\n"})
    top = _layer({"top.txt": b"top\n"})
    dest = tmp_path / "out" / "rootfs"
    seen: list[str] = []

    def held_back(blob: bytes):
        cut = 2 << 20
        yield blob[:cut]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen:
            holder = tmp_path / "out" / "rootfs.dockerless-new"
            for staging in holder.glob("rootfs-*"):
                if (staging / "big.bin").exists():
                    seen.append(str(staging))
            time.sleep(0.01)
        yield blob[cut:]

    with FaultServer() as server:
        reg = MemoryRegistry(server)
        server.on("GET", rf"/v2/{REPO}/blobs/{_sha(bottom[1])}",
                  lambda _req: Reply(200, {"Content-Type": "application/octet-stream"}, chunks=held_back(bottom[1])))
        reg.install()
        name = _publish(reg, [bottom, top])
        store = Store(str(tmp_path / "store"))
        result = pull_image(store, name, dest=str(dest))
    assert seen, "the bottom layer was not extracted while it downloaded"
    assert result.changed and result.rootfs == str(dest) and result.rootfs_changed
    assert (dest / "big.bin").read_bytes() == big
    assert (dest / "top.txt").read_bytes() == b"top\n"
    assert rootfs_digest(str(dest)) == result.after
    # The teed download is a verified blob of the store: the layer folder is made from it without the network.
    assert store.has_blob(_sha(bottom[1]), len(bottom[1]))
    assert not os.path.exists(store.layer_dir(_sha(bottom[0])))
    _no_leftovers(str(tmp_path / "out"))


def test_a_streamed_blob_not_matching_its_digest_leaves_no_dest(tmp_path):
    """The registry serves other bytes of the same size under the bottom layer's digest: a valid layer, fully
    extracted into the tree under construction before the stream's end shows the digest is wrong. Nothing of it
    is committed: the old dest stays as it was, the blob is not in the store, no holder is left."""
    good = _layer({"data.txt": b"A" * 4096}, level=0)
    evil = _layer({"data.txt": b"B" * 4096}, level=0)
    assert len(good[1]) == len(evil[1]) and good[1] != evil[1]
    dest = tmp_path / "out" / "rootfs"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("old tree")
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        name = _publish(reg, [good, _layer({"top.txt": b"top\n"})])
        reg.blobs[_sha(good[1])] = evil[1]
        store = Store(str(tmp_path / "store"))
        with pytest.raises(DigestMismatchError):
            pull_image(store, name, dest=str(dest))
    assert os.listdir(dest) == ["old.txt"]
    assert not store.has_blob(_sha(good[1]), len(good[1]))
    assert store.resolve(name) is None
    _no_leftovers(str(tmp_path / "out"))


@pytest.mark.parametrize("bad", [0, 1])
def test_a_layer_not_matching_its_diff_id_leaves_no_dest(tmp_path, bad):
    """The config's diff_id of the bottom layer (extracted from its download) or of the next one (from its blob,
    while the top layer already inflates) is wrong: no dest, no holder, no inflating thread left behind."""
    layers = [_layer({f"l{i}/f.txt": os.urandom(1 << 20)}) for i in range(3)]
    diff_ids = [_sha(raw) for raw, _blob in layers]
    diff_ids[bad] = "sha256:" + "0" * 64
    dest = tmp_path / "out" / "rootfs"
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        name = _publish(reg, layers, diff_ids)
        store = Store(str(tmp_path / "store"))
        with pytest.raises(DigestMismatchError, match="dest was not written"):
            pull_image(store, name, dest=str(dest))
    assert not os.path.lexists(dest)
    assert store.resolve(name) is None
    _no_leftovers(str(tmp_path / "out"))


def test_dest_from_blobs_already_in_the_store(tmp_path):
    """A pull with dest of an image whose blobs are all in the store (pulled before without dest): nothing is
    downloaded, the tree is built from the blobs, layer by layer with the next one inflating ahead, and equals
    the tree a streamed pull builds."""
    layers = [_layer({"a/one.txt": b"1" * 70000, "shared.txt": b"low\n"}),
              _layer({"a/two.txt": os.urandom(1 << 20), "shared.txt": b"mid\n"}),
              _layer({"a/.wh.one.txt": b"", "b/three.txt": b"3\n"})]
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        name = _publish(reg, layers)
        store = Store(str(tmp_path / "store"))
        pull_image(store, name)
        from_blobs = pull_image(store, name, dest=str(tmp_path / "from-blobs"))
        streamed = pull_image(Store(str(tmp_path / "other")), name, dest=str(tmp_path / "streamed"))
    assert streamed.rootfs_changed and streamed.downloaded_bytes > 0
    assert from_blobs.rootfs_changed and from_blobs.downloaded_bytes == 0
    for tree in (tmp_path / "from-blobs", tmp_path / "streamed"):
        assert sorted(str(p.relative_to(tree)) for p in tree.rglob("*")) == [
            "a", "a/two.txt", "b", "b/three.txt", "shared.txt"]
        assert (tree / "shared.txt").read_text() == "mid\n"
        assert (tree / "a" / "two.txt").read_bytes() == _tar_member(layers[1][0], "a/two.txt")
    _no_leftovers(str(tmp_path))


def _tar_member(raw: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.extractfile(name).read()
