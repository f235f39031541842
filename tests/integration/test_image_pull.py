# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_pull and image_info for real: Debian's docker-registry on loopback, skopeo and umoci as oracles."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import ensure_unpacked
from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import pull_image, write_rootfs
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

pytestmark = pytest.mark.root
CHECKOUT = Path(__file__).resolve().parents[2]


def verify_store(root: Path) -> None:
    """Every blob hashes to its name; nothing half-written is visible."""
    for blob in (root / "blobs" / "sha256").iterdir():
        h = hashlib.sha256()
        with open(blob, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
        assert h.hexdigest() == blob.name, f"corrupt blob {blob}"


def umoci_rootfs(store: Path, name: str, workdir: Path) -> Path:
    bundle = workdir / "umoci-bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{store}:{name}", str(bundle)], check=True, capture_output=True)
    return bundle / "rootfs"


def pull_requests(reg, since: int) -> list:
    return [e for e in reg.request_log(since) if e.path.startswith("/v2/")]


def test_pull_check_real_idempotent(seeded_registry, run_module, tmp_path):
    reg = seeded_registry.registry
    name = seeded_registry.ref("busybox")
    store = tmp_path / "store"

    check = run_module("image_pull", {"name": name, "store": str(store)}, check=True, diff=True)
    assert not check["failed"], check["msg"]
    assert check["changed"] is True
    assert check["diff"]["before"]["digest"] is None and check["diff"]["after"]["digest"].startswith("sha256:")
    assert not (store / "blobs").exists() or not any((store / "blobs" / "sha256").iterdir())

    real = run_module("image_pull", {"name": name, "store": str(store)}, diff=True)
    assert not real["failed"], real["msg"]
    assert real["changed"] is True
    image = real["image"]
    assert image["name"] == name
    assert image["remote_digest"] == seeded_registry.digest("busybox")
    assert image["platform"] == "linux/amd64"
    assert image["config"]["cmd"] == ["sh"]
    assert image["layers"] and all(layer["diff_id"].startswith("sha256:") for layer in image["layers"])
    assert real["downloaded_bytes"] == sum(layer["size"] for layer in image["layers"])
    verify_store(store)

    # skopeo reads our layout and agrees on the digest of what we stored.
    out = subprocess.run(["skopeo", "inspect", f"oci:{store}:{name}"], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout)["Digest"] == image["digest"]

    mark = reg.mark()
    again_check = run_module("image_pull", {"name": name, "store": str(store)}, check=True)
    assert again_check["changed"] is False
    again = run_module("image_pull", {"name": name, "store": str(store)})
    assert again["changed"] is False and again["downloaded_bytes"] == 0
    requests = pull_requests(reg, mark)
    # One HEAD per run (check + real), nothing else: no /v2/ ping either.
    assert [(e.method, e.path.split("/")[-2]) for e in requests] == [("HEAD", "manifests")] * 2, requests

    info = run_module("image_info", {"store": str(store), "name": [name, "nothere:1"]})
    assert info["changed"] is False
    assert info["images"][0]["digest"] == image["digest"] and info["images"][0]["unpacked"] is True
    assert info["missing"] == ["docker.io/library/nothere:1"]


@pytest.mark.parametrize("image_key", ["busybox", "layers"])
def test_rootfs_equals_umoci(seeded_registry, run_module, tmp_path, image_key):
    name = seeded_registry.ref(image_key)
    store = tmp_path / "store"
    dest = tmp_path / "out" / "rootfs"
    result = run_module("image_pull", {"name": name, "store": str(store), "dest": str(dest)})
    assert not result["failed"], result["msg"]
    assert result["rootfs"] == str(dest)
    ours = tree_manifest(str(dest))
    umoci_root = umoci_rootfs(store, name, tmp_path)
    theirs = tree_manifest(str(umoci_root))
    # Only the top's mode differs, on purpose: umoci keeps the image's mode on rootfs/ and makes the bundle above
    # it 0700; our dest is itself the 0700 wall (no bundle folder around it).
    assert stat.S_IMODE(os.stat(umoci_root.parent).st_mode) == 0o700
    assert ours["."][1] == 0o700
    ours["."] = ours["."][:1] + theirs["."][1:2] + ours["."][2:]
    assert ours == theirs
    assert len(ours) > 5

    # dest is not rewritten when the digest is unchanged ...
    marker = dest / "marker-added-by-test"
    marker.write_text("x")
    again = run_module("image_pull", {"name": name, "store": str(store), "dest": str(dest)})
    assert again["changed"] is False and marker.exists()

    # ... and a wider dest_mode is applied to its top only when asked: check mode says so, then it is a change
    # (the tree is not rewritten), then none; a mode with setuid bits is refused.
    wide = {"name": name, "store": str(store), "dest": str(dest), "dest_mode": "0755"}
    check = run_module("image_pull", wide, check=True)
    assert check["changed"] is True and stat.S_IMODE(os.lstat(dest).st_mode) == 0o700, check
    assert run_module("image_pull", wide)["changed"] is True and marker.exists()
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o755
    assert run_module("image_pull", wide)["changed"] is False
    bad = run_module("image_pull", dict(wide, dest_mode="4755"))
    assert bad["failed"] and "no setuid, setgid or sticky bits" in bad["msg"]


def test_each_gzip_inflater_gives_the_umoci_tree(seeded_registry, run_module, tmp_path):
    """DOCKERLESS_INFLATE=zlib and =isal (ISA-L, required: the run fails if it cannot be used) pull the same
    gzip-layered image into the same tree as umoci's, and the result says which inflater ran."""
    name = seeded_registry.ref("layers")
    trees = {}
    for inflate in ("zlib", "isal"):
        store = tmp_path / inflate / "store"
        dest = tmp_path / inflate / "rootfs"
        result = run_module("image_pull", {"name": name, "store": str(store), "dest": str(dest)},
                            env={"DOCKERLESS_INFLATE": inflate})
        assert not result["failed"], result["msg"]
        assert result["actions"][-1].endswith(f"; gzip inflated with {inflate}"), result["actions"]
        trees[inflate] = tree_manifest(str(dest))
    theirs = tree_manifest(str(umoci_rootfs(tmp_path / "zlib" / "store", name, tmp_path)))
    theirs["."] = trees["zlib"]["."]  # the top's mode: see test_rootfs_equals_umoci
    assert trees["zlib"] == trees["isal"] == theirs
    assert len(theirs) > 5


def test_layers_image_semantics(seeded_registry, tmp_path):
    """Whiteouts, opaque dirs, hardlinks, setuid, owners and xattrs as the seed documents them."""
    store = Store(str(tmp_path / "store"))
    dest = tmp_path / "rootfs"
    pull_image(store, seeded_registry.ref("layers"), dest=str(dest))
    assert (dest / "etc/hostname").read_text().strip() == "layers v2"
    assert not (dest / "keep/deleted.txt").exists() and (dest / "keep/kept.txt").exists()
    assert sorted(os.listdir(dest / "gone-dir")) == ["new.txt"]
    assert sorted(os.listdir(dest / "opaque")) == ["upper.txt"]
    assert (dest / "flip/inside.txt").exists()
    assert os.stat(dest / "usr/bin/setuid-tool").st_mode & 0o7777 == 0o4755
    assert os.stat(dest / "home/user/notes.txt").st_uid == 1000
    assert os.stat(dest / "home/user/new.txt").st_ino == os.stat(dest / "home/user/new-link.txt").st_ino
    assert os.readlink(dest / "etc/hostname-abs") == "/etc/hostname"
    assert os.getxattr(dest / "xattr-file", "user.dockerless") == b"seed"
    # dest was extracted straight from the blobs: no layer folder was made, every blob is kept for a container.
    record = store.image(seeded_registry.ref("layers"))
    assert all(store.has_blob(la["digest"], la["size"]) for la in record.layers)
    assert not any(store.has_layer(la["diff_id"]) for la in record.layers)
    # A container's start makes them from the blobs, in overlay form: a whiteout is a 0/0 char device.
    ensure_unpacked(store, record)
    whiteout = Path(store.layer_dir(record.layers[1]["diff_id"])) / "keep" / "deleted.txt"
    st = os.lstat(whiteout)
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0


def test_dest_is_not_touched_when_a_layer_does_not_match_its_diff_id(seeded_registry, tmp_path):
    """dest is built from the blobs in a private holder: a layer whose content is not the config's diff_id fails
    the whole write, the old dest stays as it was and nothing half-made is left beside it."""
    store = Store(str(tmp_path / "store"))
    dest = tmp_path / "out" / "rootfs"
    pull_image(store, seeded_registry.ref("layers"), dest=str(dest))
    (dest / "marker").write_text("old tree")
    record = store.image(seeded_registry.ref("layers"))
    record.layers[-1]["diff_id"] = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatchError, match="dest was not written"):
        write_rootfs(store, record, str(dest))
    assert (dest / "marker").read_text() == "old tree"
    assert sorted(os.listdir(dest.parent)) == [".rootfs.dockerless.json", "rootfs"]


def test_multi_arch_platform_selection(seeded_registry, tmp_path):
    store = Store(str(tmp_path / "store"))
    name = seeded_registry.ref("multi")
    arm = pull_image(store, name, platform="linux/arm64", dest=str(tmp_path / "arm64"))
    assert arm.image.platform.startswith("linux/arm64")
    assert (tmp_path / "arm64" / "etc" / "arch").read_text().strip() == "arm64"
    armv7 = pull_image(Store(str(tmp_path / "store2")), name, platform="linux/arm/v7", dest=str(tmp_path / "armv7"))
    assert (tmp_path / "armv7" / "etc" / "arch").read_text().strip() == "arm/v7"
    assert armv7.image.remote_digest == seeded_registry.digest("multi")
    host = pull_image(store, name)
    assert host.changed and host.image.platform == "linux/amd64"
    with pytest.raises(Exception, match="no image for platform linux/s390x"):
        pull_image(store, name, platform="linux/s390x")


def test_zstd_layers(seeded_registry, tmp_path):
    if "zstd" not in seeded_registry.images:
        pytest.fail("the seed did not push test/zstd:1; scripts/seed_images.py must provide it")
    store = Store(str(tmp_path / "store"))
    result = pull_image(store, seeded_registry.ref("zstd"), dest=str(tmp_path / "rootfs"))
    assert any(layer["media_type"].endswith("zstd") for layer in result.image.layers)
    assert any((tmp_path / "rootfs").iterdir())


def test_pull_missing_without_network(registry_factory, seeded_registry, run_module, tmp_path):
    reg = registry_factory()
    src, dst = seeded_registry.ref("busybox"), f"{reg.host}/offline/busybox:1"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{src}", f"docker://{dst}"], check=True, capture_output=True)
    store = str(tmp_path / "store")
    assert run_module("image_pull", {"name": dst, "store": store})["changed"] is True
    reg.stop()
    offline = run_module("image_pull", {"name": dst, "store": store, "pull": "missing"})
    assert not offline["failed"] and offline["changed"] is False
    online = run_module("image_pull", {"name": dst, "store": store, "timeout": 5})
    assert online["failed"] and reg.host in online["msg"]


def copy_to(seeded_registry, reg, dst: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    (certs / "ca.crt").write_bytes(Path(reg.ca_path).read_bytes())
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"--dest-cert-dir={certs}",
                    f"--dest-creds={reg.username}:{reg.password}",
                    f"docker://{seeded_registry.ref('busybox')}", f"docker://{dst}"], check=True, capture_output=True)


def test_tls_basic_auth(registry_tls, seeded_registry, run_module, tmp_path):
    reg = registry_tls
    name = f"{reg.host}/private/busybox:1"
    copy_to(seeded_registry, reg, name, tmp_path)
    store = str(tmp_path / "store")
    anon = run_module("image_pull", {"name": name, "store": store, "ca_path": reg.ca_path})
    assert anon["failed"] and "anonymous" in anon["msg"] and "username" in anon["msg"]
    wrong = run_module("image_pull", {"name": name, "store": store, "ca_path": reg.ca_path,
                                      "username": reg.username, "password": "wrong-password-xyz"})
    assert wrong["failed"] and "wrong-password-xyz" not in json.dumps(wrong) + wrong.stdout + wrong.stderr
    no_ca = run_module("image_pull", {"name": name, "store": store, "username": reg.username,
                                      "password": reg.password})
    assert no_ca["failed"] and "ca_path" in no_ca["msg"]
    ok = run_module("image_pull", {"name": name, "store": store, "ca_path": reg.ca_path,
                                   "username": reg.username, "password": reg.password})
    assert not ok["failed"], ok["msg"] and ok["changed"] is True
    assert reg.password not in json.dumps(ok) + ok.stdout + ok.stderr
    # Credentials from the environment, as the seed's scripts use them.
    env = {"DOCKER_USERNAME": reg.username, "DOCKER_PASSWORD": reg.password}
    again = run_module("image_pull", {"name": name, "store": store, "ca_path": reg.ca_path}, env=env)
    assert not again["failed"], again["msg"] and again["changed"] is False


def test_token_auth(registry_token, seeded_registry, run_module, tmp_path):
    reg = registry_token
    name = f"{reg.host}/tokened/busybox:1"
    copy_to(seeded_registry, reg, name, tmp_path)
    store = str(tmp_path / "store")
    mark = reg.token_server.mark()
    ok = run_module("image_pull", {"name": name, "store": store, "ca_path": reg.ca_path,
                                   "username": reg.username, "password": reg.password})
    assert not ok["failed"], ok["msg"]
    # The token is fetched once and reused for the manifest and every blob.
    assert reg.token_server.count - mark == 1
    anon = run_module("image_pull", {"name": name, "store": str(tmp_path / "anon"), "ca_path": reg.ca_path})
    assert not anon["failed"], anon["msg"]   # anonymous clients get pull from our token server
    assert anon["image"]["digest"] == ok["image"]["digest"]


_PULLER = """
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import pull_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
pull_image(Store(sys.argv[2]), sys.argv[3])
"""


def make_big_image(reg, tmp_path: Path) -> str:
    """A 3-layer image of incompressible data (~24 MB) so a kill -9 lands mid-download."""
    layout = tmp_path / "big-layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:big"], check=True)
    for i in range(3):
        payload = tmp_path / f"payload{i}"
        payload.mkdir()
        (payload / f"blob{i}.bin").write_bytes(os.urandom(8 * 2**20))
        subprocess.run(["umoci", "insert", "--image", f"{layout}:big", str(payload), f"/data{i}"], check=True)
    name = f"{reg.host}/test/big:1"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:big", f"docker://{name}"],
                   check=True, capture_output=True)
    return name


def test_kill9_then_resume_and_concurrent_pulls(registry, tmp_path):
    name = make_big_image(registry, tmp_path)
    store = tmp_path / "store"
    paths = str(CHECKOUT / ".build" / "collections")
    for delay in (0.15, 0.4, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", _PULLER, paths, str(store), name])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (store / "blobs" / "sha256").exists():
            verify_store(store)
    # The next pull completes, and two concurrent pulls into another store both succeed.
    subprocess.run([sys.executable, "-c", _PULLER, paths, str(store), name], check=True)
    verify_store(store)
    assert Store(str(store)).is_complete(Store(str(store)).image(name))

    other = tmp_path / "store2"
    procs = [subprocess.Popen([sys.executable, "-c", _PULLER, paths, str(other), name]) for _attempt in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    verify_store(other)
    index = json.loads((other / "index.json").read_text())
    assert len(index["manifests"]) == 1
    record = Store(str(other)).image(name)
    assert len(os.listdir(other / "layers" / "sha256")) == len(record.layers)


def test_hostile_layer_from_registry_is_contained(registry, tmp_path):
    """A layer with ../ paths and a symlink escape, pushed to a real registry, can't write outside the layer."""
    layout = tmp_path / "evil-layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:evil"], check=True)
    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../../../../../tmp"
        tar.addfile(link)
        victim = tarfile.TarInfo(f"escape/dockerless-victim-{os.getpid()}")
        data = b"pwned"
        victim.size = len(data)
        tar.addfile(victim, io.BytesIO(data))
    # Append the raw tar as a layer by hand: umoci would refuse such a tree, registries don't.
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    config_path = layout / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(config_path.read_text())
    raw = evil_tar.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(raw)
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               "digest": "sha256:" + digest, "size": len(raw)})
    config["rootfs"]["diff_ids"].append("sha256:" + digest)
    cbody = json.dumps(config).encode()
    cdigest = hashlib.sha256(cbody).hexdigest()
    (layout / "blobs/sha256" / cdigest).write_bytes(cbody)
    manifest["config"].update(digest="sha256:" + cdigest, size=len(cbody))
    mbody = json.dumps(manifest).encode()
    mdigest = hashlib.sha256(mbody).hexdigest()
    (layout / "blobs/sha256" / mdigest).write_bytes(mbody)
    index["manifests"][0].update(digest="sha256:" + mdigest, size=len(mbody))
    (layout / "index.json").write_text(json.dumps(index))
    name = f"{registry.host}/test/evil:1"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:evil", f"docker://{name}"],
                   check=True, capture_output=True)
    store = Store(str(tmp_path / "store"))
    try:
        pull_image(store, name, dest=str(tmp_path / "rootfs"))
    except Exception as exc:  # refusing the layer is a correct outcome too
        assert "escape" in str(exc) or "outside" in str(exc) or "symlink" in str(exc), exc
    assert not Path(f"/tmp/dockerless-victim-{os.getpid()}").exists()


def test_missing_layer_folder_rebuilt_from_blobs_without_network(registry_factory, seeded_registry, tmp_path):
    reg = registry_factory()
    src, dst = seeded_registry.ref("busybox"), f"{reg.host}/cache/busybox:1"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{src}", f"docker://{dst}"], check=True, capture_output=True)
    store = Store(str(tmp_path / "store"))
    image = pull_image(store, dst).image
    reg.stop()
    for layer in image.layers:
        shutil.rmtree(store.layer_dir(layer["diff_id"]))
    again = pull_image(store, dst, policy="missing")
    assert again.changed is False
    assert store.is_complete(store.image(dst))
