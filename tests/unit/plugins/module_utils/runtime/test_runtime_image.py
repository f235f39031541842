# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""runtime_image: the start path's look-up of one image gives what Store.image gives, and refuses what it refuses."""

from __future__ import annotations

import json
import os
import sys

import pytest
from test_store import make_image

from ansible_collections.dockerless.containers.plugins.module_utils.errors import StoreError
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.image import image_for_start

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fresh_python import run_fresh  # noqa: E402


def _two_layer_image(store: Store, name: str) -> None:
    diff_ids = []
    layers = []
    for payload in (b"bottom", b"top"):
        digest, size = store.put_blob(payload)
        layers.append({"mediaType": oci.OCI_LAYER_GZIP, "digest": digest, "size": size})
        diff_id = "sha256:" + (payload.hex() * 64)[:64]
        diff_ids.append(diff_id)
        os.makedirs(store.layer_dir(diff_id))
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "config": {"Cmd": ["sh"], "WorkingDir": "/w"}}).encode()
    config_digest, config_size = store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": config_size},
                           "layers": layers}).encode()
    digest, size = store.put_blob(manifest)
    store.tag(name, {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size})


def test_same_answer_as_the_store(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.ensure()
    make_image(store, "example.com/one:1")
    _two_layer_image(store, "example.com/two:2")
    for name in ("example.com/one:1", "example.com/two:2"):
        record = store.image(name)
        image = image_for_start(store.root, name)
        assert image.name == name
        assert image.digest == record.digest
        assert image.config == record.config["config"]
        assert image.diff_ids == [layer["diff_id"] for layer in record.layers]
        assert image.lower_dirs == [store.layer_dir(layer["diff_id"]) for layer in reversed(record.layers)]
        # the platform as the store reads it (what `pull: missing` compares with the host's)
        assert "/".join(image.platform[k] for k in ("os", "architecture", "variant") if image.platform.get(k)) \
            == record.platform
        assert image.unpacked() == store.is_complete(record)
    assert len(image_for_start(store.root, "example.com/two:2").lower_dirs) == 2


def test_missing_image_and_missing_store(tmp_path):
    with pytest.raises(StoreError, match="not in the store .*pull or build it first"):
        image_for_start(str(tmp_path / "nothing"), "example.com/a:1")
    store = Store(str(tmp_path / "s"))
    store.ensure()
    make_image(store, "example.com/one:1")
    with pytest.raises(StoreError, match="example.com/one:2: not in the store"):
        image_for_start(store.root, "example.com/one:2")


def test_corrupt_or_missing_blobs_are_refused(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.ensure()
    info = make_image(store, "example.com/one:1")
    config_path = store.blob_path(info["config"])
    os.chmod(config_path, 0o644)
    with open(config_path, "ab") as handle:
        handle.write(b" ")
    with pytest.raises(StoreError, match="config .* is corrupt on disk"):
        image_for_start(store.root, "example.com/one:1")
    os.unlink(config_path)
    with pytest.raises(StoreError, match="config .* is missing from the store"):
        image_for_start(store.root, "example.com/one:1")


def test_a_diff_id_never_becomes_a_path_outside_layers(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.ensure()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:../../../../etc"]}}).encode()
    config_digest, config_size = store.put_blob(config)
    layer_digest, layer_size = store.put_blob(b"x")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": config_size},
                           "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": layer_digest,
                                       "size": layer_size}]}).encode()
    digest, size = store.put_blob(manifest)
    store.tag("example.com/evil:1", {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size})
    with pytest.raises(StoreError, match="layer diff_id .* is not a sha256 digest"):
        image_for_start(store.root, "example.com/evil:1")


def test_an_index_entry_is_not_an_image(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.ensure()
    body = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []}).encode()
    digest, size = store.put_blob(body)
    store.tag("example.com/multi:1", {"mediaType": oci.OCI_INDEX, "digest": digest, "size": size})
    with pytest.raises(StoreError, match="an index, not a single-platform image"):
        image_for_start(store.root, "example.com/multi:1")


def test_the_start_path_imports_neither_the_store_nor_dataclasses_nor_hashlib_nor_json():
    """The start path must import little. What dockerless run imports, in a fresh interpreter."""
    code = (
        "from ansible_collections.dockerless.containers.plugins.module_utils.runtime import containers, image, spec\n"
        "heavy = sorted(m for m in ('dataclasses', 'inspect', 'typing', 'hashlib', 'argparse', 'tempfile', 'shutil',\n"
        "    'json', 're', 'enum', 'signal', 'functools', 'collections',\n"
        "    'ansible_collections.dockerless.containers.plugins.module_utils.image.store') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = run_fresh(code)
    assert out.stdout.strip() == "", f"the container start path imports {out.stdout.strip()}"
