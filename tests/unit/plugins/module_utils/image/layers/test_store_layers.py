# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of store_layers: a layer stream extracted into the store (temp folder placement, diff_id and blob checks
before anything is committed)."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import extract, store_layers
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import MEDIA_TYPE_TAR_GZIP
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store


def _layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw)


def _descriptor(raw: bytes, blob: bytes) -> dict:
    return {"digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob),
            "diff_id": "sha256:" + hashlib.sha256(raw).hexdigest(), "media_type": MEDIA_TYPE_TAR_GZIP}


def _is_ext(path: str) -> bool:
    real, best, kind = os.path.realpath(path), "", ""
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if (real == fields[1] or real.startswith(fields[1].rstrip("/") + "/")) and len(fields[1]) >= len(best):
                best, kind = fields[1], fields[2]
    return kind in ("ext2", "ext3", "ext4")


def test_layer_extracted_under_a_hierarchy_top(tmp_path, monkeypatch):
    """The layer's temp parent carries chattr +T while the layer is written, the folder has a random name, and
    the result lands in layers/<diff_id> with nothing left in tmp/."""
    if not _is_ext(str(tmp_path)):
        pytest.skip(f"{tmp_path} is not on ext2/3/4: no Orlov top-directory flag to observe")
    store = Store(str(tmp_path / "store"))
    raw, blob = _layer({"etc/hostname": b"box\n", "usr/bin/tool": b"#!/bin/sh\n"})
    layer = _descriptor(raw, blob)
    seen = []
    real_extract = extract.extract_layer

    def spying_extract(stream, media_type, dest, **kw):
        attrs = subprocess.run(["lsattr", "-d", os.path.dirname(dest)], capture_output=True, text=True, check=True)
        seen.append((os.path.basename(dest), attrs.stdout.split()[0]))
        return real_extract(stream, media_type, dest, **kw)

    monkeypatch.setattr(extract, "extract_layer", spying_extract)
    store_layers.extract_into_store(store, layer, io.BytesIO(blob))
    store_layers.extract_into_store(Store(str(tmp_path / "store2")), layer, io.BytesIO(blob))
    assert len(seen) == 2
    assert all(name.startswith("rootfs-") and "T" in flags for name, flags in seen)
    assert seen[0][0] != seen[1][0]  # random names: Orlov starts its search from a hash of the name
    target = store.layer_dir(layer["diff_id"])
    assert (open(os.path.join(target, "etc/hostname"), "rb").read()) == b"box\n"
    assert os.listdir(store.tmp_dir) == []


def test_layer_with_wrong_diff_id_leaves_nothing(tmp_path):
    store = Store(str(tmp_path / "store"))
    raw, blob = _layer({"a": b"a"})
    layer = dict(_descriptor(raw, blob), diff_id="sha256:" + "0" * 64)
    with pytest.raises(DigestMismatchError, match="uncompressed content hashes to"):
        store_layers.extract_into_store(store, layer, io.BytesIO(blob))
    assert not store.has_layer(layer["diff_id"])
    assert os.listdir(store.tmp_dir) == []


class _VerifiedAtEof(io.RawIOBase):
    """A download as the registry's BlobReader serves it: the bytes, then DigestMismatchError at the end."""

    def __init__(self, data: bytes):
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self._src.read(len(buf))
        if not data:
            raise DigestMismatchError("blob sha256:feed: content hashes to sha256:beef; nothing was stored.")
        buf[: len(data)] = data
        return len(data)


def test_a_blob_that_fails_its_digest_commits_no_layer(tmp_path):
    """Nothing unpacked is committed before the blob digest verifies: the blob's end (where the digest is checked)
    is read before the diff_id compare and the move into layers/, even when the tar ended earlier (the tee drains
    the rest into the blob store). The diff_id is right here: only the blob digest fails."""
    store = Store(str(tmp_path / "store"))
    raw, blob = _layer({"etc/hostname": b"box\n"})
    layer = _descriptor(raw, blob)
    sink = io.BytesIO()
    with pytest.raises(DigestMismatchError, match="content hashes to"):
        store_layers.extract_into_store(store, layer, io.BufferedReader(_VerifiedAtEof(blob + bytes(4096))), tee_sink=sink)
    assert not store.has_layer(layer["diff_id"])
    assert os.listdir(store.tmp_dir) == [] and not os.path.exists(store.layer_dir(layer["diff_id"]))
