# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image_remove module in-process on a store written here: two images sharing a layer, a named container
and a running one-shot recorded the way the runtime records them (``containers/.one-shot-<n>/spec.json`` with
``diff_ids``). The real runs against a registry and the kernel are in tests/integration/test_roles.py."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.modules import image_remove

A, B = "127.0.0.1:5000/t/a:1", "127.0.0.1:5000/t/b:1"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_image(store: Store, name: str, layers: list[bytes]) -> dict:
    """An OCI image whose layer blobs are ``layers`` (diff_id = digest of the bytes + b'u'), folders made."""
    descs, diff_ids = [], []
    for data in layers:
        digest, size = store.put_blob(data)
        descs.append({"mediaType": oci.OCI_LAYER_TAR, "digest": digest, "size": size})
        diff_ids.append(sha(data + b"u"))
        os.makedirs(store.layer_dir(diff_ids[-1]), exist_ok=True)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
    config_digest, config_size = store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": config_size},
                           "layers": descs}, sort_keys=True).encode()
    digest, size = store.put_blob(manifest)
    store.tag(name, {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size})
    return {"digest": digest, "config": config_digest, "blobs": [d["digest"] for d in descs], "diff_ids": diff_ids}


def add_container(store: Store, directory: str, record: dict) -> None:
    path = os.path.join(store.containers_dir, directory)
    os.makedirs(path)
    with open(os.path.join(path, "spec.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)


@pytest.fixture
def world(tmp_path):
    store = Store(str(tmp_path / "store"))
    store.ensure()
    shared = b"shared layer"
    a = add_image(store, A, [b"a only", shared])
    b = add_image(store, B, [shared, b"b only"])
    add_container(store, "web", {"name": "web", "id": "f" * 64, "diff_ids": a["diff_ids"][:1]})
    # a one-shot runs in one of the store's reusable slots; its record's id names it
    add_container(store, ".one-shot-0", {"id": "0123456789ab" + "c" * 52, "one_shot": True,
                                         "diff_ids": b["diff_ids"][1:]})
    return store, a, b


def run(capsys, args: dict, check: bool = False) -> dict:
    with patch_module_args({**args, "_ansible_check_mode": check, "_ansible_diff": True}):
        with pytest.raises(SystemExit):
            image_remove.main()
    return json.loads(capsys.readouterr().out)


def snapshot(store: Store) -> tuple:
    return (open(store.index_path, "rb").read(), sorted(os.listdir(store.blobs_dir)),
            sorted(os.listdir(store.layers_dir)))


def test_check_mode_tells_what_the_real_run_does_and_keeps_shared_and_used_layers(world, capsys):
    store, a, b = world
    before = snapshot(store)
    check = run(capsys, {"name": [A], "store": store.root}, check=True)
    assert snapshot(store) == before  # nothing written
    real = run(capsys, {"name": [A], "store": store.root})
    for result in (check, real):
        assert result["changed"] and result["removed"] == [{"name": A, "digest": a["digest"]}]
        # A's manifest, config and own layer blob go; the shared blob stays for B; no layer folder goes: A's own
        # one is used by the container web, the shared one by B.
        assert sorted(result["gc"]["blobs"]) == sorted([a["digest"], a["config"], a["blobs"][0]])
        assert result["gc"]["layers"] == []
        assert result["kept_for_containers"] == {"web": [a["diff_ids"][0]]}
        assert result["diff"]["before"]["images"] == {A: a["digest"]} and result["diff"]["after"]["images"] == {}
    assert [name for name, _desc in store.images()] == [B]
    assert store.has_blob(a["blobs"][1]) and not store.has_blob(a["blobs"][0])
    assert store.has_layer(a["diff_ids"][0])


def test_last_user_of_a_layer_removed_one_shot_container_keeps_its_layer(world, capsys):
    store, a, b = world
    run(capsys, {"name": [A], "store": store.root})
    result = run(capsys, {"name": [B, "never/there"], "store": store.root})
    assert result["missing"] == ["docker.io/never/there:latest"]
    assert sorted(result["gc"]["layers"]) == [b["diff_ids"][0]]  # the shared folder; b's own is in use
    assert result["kept_for_containers"] == {"one-shot 0123456789ab": [b["diff_ids"][1]]}
    assert store.images() == [] and os.listdir(store.blobs_dir) == []
    assert sorted(os.listdir(store.layers_dir)) == sorted(d.split(":")[1] for d in (a["diff_ids"][0], b["diff_ids"][1]))
    again = run(capsys, {"name": [A, B], "store": store.root})
    assert not again["changed"] and again["removed"] == [] and again["missing"] == [A, B]
    assert "actions" in again and again["actions"] == []


def test_untag_only_then_collect(world, capsys):
    store, a, b = world
    untag = run(capsys, {"name": [B], "gc": False, "store": store.root})
    assert untag["changed"] and untag["gc"] == {"blobs": [], "layers": [], "bytes": 0}
    assert store.has_blob(b["blobs"][1])
    # Removing a name that is gone still collects what the earlier untag left.
    later = run(capsys, {"name": [B], "store": store.root})
    assert later["changed"] and later["removed"] == [] and b["blobs"][1] in later["gc"]["blobs"]


def test_missing_store_is_not_created(tmp_path, capsys):
    root = str(tmp_path / "nothing")
    for check in (True, False):
        result = run(capsys, {"name": ["busybox"], "store": root}, check=check)
        assert not result["changed"] and result["missing"] == ["docker.io/library/busybox:latest"]
    assert not os.path.exists(root)


def test_bad_reference_fails_with_the_name(tmp_path, capsys):
    result = run(capsys, {"name": ["UPPER/Case:1"], "store": str(tmp_path)})
    assert result["failed"] and "UPPER/Case:1" in result["msg"]
