# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build case's own pieces: bench/ours.py's hand-parsed ``build`` under ``python -I -S``, the prepared empty
store, and the same digest as the engine called in-process."""

from __future__ import annotations

import os
import sys

import cases
import pytest

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(CHECKOUT, "bench"))
import ours  # noqa: E402 - bench/ is a script directory

sys.path.pop(0)


def test_parse_build_options():
    args = ours.parse_build(["--store", "/s", "--name", "x:1", "--executable", "/bin/ls", "--tree", "/a:/b",
                             "--executable", "bash"])
    assert (args.op, args.store, args.name) == ("build", "/s", "x:1")
    assert args.executable == ["/bin/ls", "bash"] and args.tree == ["/a:/b"]


@pytest.mark.parametrize("argv", [[], ["--store", "/s"], ["--name", "x:1"], ["--store", "/s", "--name"],
                                  ["--store", "/s", "--name", "x", "--bogus", "1"],
                                  ["--store", "/s", "--name", "x", "--tree", "nocolon"]])
def test_parse_build_refuses(argv):
    with pytest.raises(ValueError, match="usage: ours.py build"):
        ours.parse_build(argv)


def test_lean_build_entry_into_a_prepared_store_gives_the_engines_digest(tmp_path):
    """``python -I -S bench/ours.py build`` (what case_build times) into the store empty_store prepared: the
    digest is the one build_image gives in this process for the same tree."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "hello.txt").write_text("hello\n")
    os.symlink("sub/hello.txt", tree / "link")
    ctx = cases.Context(work=str(tmp_path / "work"), python=sys.executable, registry=None, refs={}, inputs={},
                        log=lambda _msg: None)
    store = str(tmp_path / "store")
    cases.empty_store(store)
    assert sorted(os.listdir(store)) == [".lock", "blobs", "containers", "index.json", "layers", "oci-layout", "tmp"]
    sample = cases.ours_build(ctx, store, "--tree", f"{tree}:/srv")
    assert sample.extra["changed"] is True and sample.extra["cpu_s"] > 0 and sample.seconds > 0

    sys.path.insert(0, cases.COLLECTIONS)
    try:
        from ansible_collections.dockerless.containers.plugins.module_utils.image.build import (
            BuildSpec,
            FileSpec,
            build_image,
        )
        from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
    finally:
        sys.path.pop(0)
    spec = BuildSpec(name="bench/built:1", files=[FileSpec(src=str(tree), dest="/srv")], source_date_epoch=946684800)
    here = build_image(Store(str(tmp_path / "here")), spec)
    built = Store(store).image("docker.io/bench/built:1")
    assert built.digest == here.after
    # Blobs only, as umoci repack writes: the layer folder is made on first use (bin/dockerless run below).
    assert not Store(store).has_layer(built.layers[0]["diff_id"])


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts")
def test_cli_run_starts_a_just_built_image_without_a_prior_unpack(tmp_path):
    """The build case's image (bash + ls, blobs only) started as the container start case starts one
    (``bin/dockerless run --rm``): it makes the missing layer folder from the blob, then runs."""
    ctx = cases.Context(work=str(tmp_path / "work"), python=sys.executable, registry=None, refs={}, inputs={},
                        log=lambda _msg: None)
    store = str(tmp_path / "store")
    cases.empty_store(store)
    cases.ours_build(ctx, store, "--executable", "/bin/bash", "--executable", "/bin/ls")
    assert os.listdir(os.path.join(store, "layers", "sha256")) == []
    sample = cases.cli_run(ctx, store, "docker.io/bench/built:1", "bash", "-c", "echo ok; ls /")
    assert sample.extra["rc"] == 0 and sample.extra["stdout"].startswith("ok\n")
    assert len(os.listdir(os.path.join(store, "layers", "sha256"))) == 1
    again = cases.cli_run(ctx, store, "docker.io/bench/built:1", "/usr/bin/ls", "/usr/bin/bash")
    assert again.extra["rc"] == 0
