# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of pull's layer path: a layer stream extracted into the store (temp folder placement, diff_id check)."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image import pull
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import unpack
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
            "diff_id": "sha256:" + hashlib.sha256(raw).hexdigest(), "media_type": unpack.MEDIA_TYPE_TAR_GZIP}


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
    real_extract = unpack.extract_layer

    def spying_extract(stream, media_type, dest, **kw):
        attrs = subprocess.run(["lsattr", "-d", os.path.dirname(dest)], capture_output=True, text=True, check=True)
        seen.append((os.path.basename(dest), attrs.stdout.split()[0]))
        return real_extract(stream, media_type, dest, **kw)

    monkeypatch.setattr(unpack, "extract_layer", spying_extract)
    pull._extract_into_store(store, layer, io.BytesIO(blob))
    pull._extract_into_store(Store(str(tmp_path / "store2")), layer, io.BytesIO(blob))
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
        pull._extract_into_store(store, layer, io.BytesIO(blob))
    assert not store.has_layer(layer["diff_id"])
    assert os.listdir(store.tmp_dir) == []
