# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A built image is stored as blobs only (image_build does not unpack its layer): every consumer of layer
folders makes them from the blobs on first use. Host bash and ls built into a fresh store, then used without any
prior unpack by what container_run resolves images with, our runtime, wsl_export, image_pull's ``dest`` and GC."""

from __future__ import annotations

import json
import os
import tarfile

import pytest
from fresh_python import run_fresh

from ansible_collections.dockerless.containers.plugins.module_utils.image.build import BuildSpec, build_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import pull_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime, image_for_run
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec
from ansible_collections.dockerless.containers.plugins.module_utils.wsl import export as wsl

NAME = "127.0.0.1:5000/me/first-use:1"


@pytest.fixture
def built(tmp_path) -> tuple[Store, dict]:
    store = Store(str(tmp_path / "store"))
    result = build_image(store, BuildSpec(name=NAME, executables=["bash", "ls"], cmd=["bash"]))
    diff_id = result.image["layers"][0]["diff_id"]
    assert not store.has_layer(diff_id) and os.listdir(store.layers_dir) == []
    assert os.listdir(store.tmp_dir) == []  # nothing half-extracted either
    return store, result.image


def test_container_run_resolves_the_image_with_its_layer_folder(built):
    store, image = built
    resolved = image_for_run(store.root, NAME, pull="never")
    assert resolved.lower_dirs == [store.layer_dir(image["layers"][0]["diff_id"])]
    assert os.path.isfile(os.path.join(resolved.lower_dirs[0], "usr/bin/bash"))
    assert os.path.islink(os.path.join(resolved.lower_dirs[0], "lib64"))
    # Check mode only reports what a run would use: it unpacks nothing.
    other = Store(store.root + "-check")
    build_image(other, BuildSpec(name=NAME, executables=["ls"]))
    image_for_run(other.root, NAME, pull="never", check_mode=True)
    assert os.listdir(other.layers_dir) == []


def test_pull_never_unpacks_without_the_pull_engine(built):
    """``pull: never`` asks no registry, so resolving the image (its folders made from the blob here) imports the
    layers room, not ``image.pull`` and the registry client behind it."""
    store, image = built
    mu = "ansible_collections.dockerless.containers.plugins.module_utils"
    code = (
        "import json, sys\n"
        f"from {mu}.runtime.containers import image_for_run\n"
        f"r = image_for_run({store.root!r}, {NAME!r}, pull='never')\n"
        f"print(json.dumps([r.lower_dirs, sorted(m for m in ('{mu}.image.pull', '{mu}.registry.client',\n"
        f"    '{mu}.image.layers.store_layers', '{mu}.image.layers.extract') if m in sys.modules)]))\n"
    )
    lower, loaded = json.loads(run_fresh(code).stdout)
    assert lower == [store.layer_dir(image["layers"][0]["diff_id"])] and os.path.isdir(lower[0])
    assert loaded == [f"{mu}.image.layers.extract", f"{mu}.image.layers.store_layers"]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts")
def test_our_runtime_runs_bash_and_ls_of_a_just_built_image(built):
    store, _image = built
    resolved = image_for_run(store.root, NAME, pull="never")
    spec = build_spec(image_config=resolved.record.config.get("config") or {}, lower_dirs=resolved.lower_dirs,
                      image=NAME, image_digest=resolved.record.digest,
                      diff_ids=[layer["diff_id"] for layer in resolved.record.layers],
                      command=["bash", "-c", "echo ok; ls /"])
    result = Runtime(store.root).run(spec, timeout=60)
    assert result.rc == 0, result.stderr
    lines = result.stdout.decode().split()
    assert lines[0] == "ok" and {"lib", "lib64", "usr"} <= set(lines[1:])


def test_wsl_export_of_a_just_built_image(built, tmp_path):
    store, image = built
    dest = str(tmp_path / "rootfs.tar")
    result = wsl.export_image(store, wsl.ExportOptions(image=NAME, dest=dest))
    assert result.changed and store.has_layer(image["layers"][0]["diff_id"])
    with tarfile.open(dest) as tar:
        names = set(tar.getnames())
    assert {"usr/bin/bash", "usr/bin/ls"} <= {n.lstrip("./") for n in names}


def test_image_pull_dest_of_a_just_built_image(built, tmp_path):
    store, image = built
    dest = str(tmp_path / "rootfs")
    # policy missing: the image is complete in the store (blobs), so no registry is asked; dest is extracted from
    # the blobs straight onto the new tree, and the layer folder waits for a container that needs it.
    result = pull_image(store, NAME, policy="missing", dest=dest)
    assert result.rootfs == dest and result.rootfs_changed
    assert os.path.isfile(os.path.join(dest, "usr/bin/ls")) and not store.has_layer(image["layers"][0]["diff_id"])
    image_for_run(store.root, NAME, pull="never")
    assert store.has_layer(image["layers"][0]["diff_id"])


def test_gc_keeps_the_blobs_of_a_built_image_and_its_folder_once_made(built):
    store, image = built
    assert store.gc() == {"blobs": [], "layers": [], "bytes": 0}
    image_for_run(store.root, NAME, pull="never")
    assert store.gc()["layers"] == [] and store.has_layer(image["layers"][0]["diff_id"])
