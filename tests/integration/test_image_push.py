# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_push for real: Debian's docker-registry on loopback (plain http, TLS + htpasswd, token auth), skopeo,
umoci and runc as oracles, the registry's access log to count what was sent."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import RegistryOptions, pull_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.push import push_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

TOOLS = ("skopeo", "umoci", "runc")


@pytest.fixture(scope="module")
def pulled(seeded_registry, tmp_path_factory):
    """A store holding the seeded busybox (Docker v2 on the registry, stored as OCI) and test/layers images."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/install-deps.sh installs them)")
    root = tmp_path_factory.mktemp("push-source") / "store"
    store = Store(str(root))
    images = {}
    for key in ("busybox", "layers"):
        images[key] = pull_image(store, seeded_registry.ref(key)).image
    return root, images


@pytest.fixture
def source(pulled, tmp_path):
    """A private copy of the pulled store (blobs and index only), so pushes recorded in it stay per test."""
    root, images = pulled
    copy = tmp_path / "store"
    copy.mkdir(mode=0o700)
    shutil.copy2(root / "oci-layout", copy / "oci-layout")
    shutil.copy2(root / "index.json", copy / "index.json")
    shutil.copytree(root / "blobs", copy / "blobs")
    return copy, images


def prefix() -> str:
    return f"push{secrets.token_hex(3)}"


def writes(entries) -> list:
    return [e for e in entries if e.method in ("POST", "PUT", "PATCH", "DELETE")]


def blob_sizes(image) -> int:
    return image.config_digest and sum(la["size"] for la in image.layers) + image.manifest["config"]["size"]


def skopeo_raw(ref: str, *extra: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", *extra, f"docker://{ref}"], check=True,
                          capture_output=True, timeout=60).stdout


def test_push_check_real_idempotent_plain_http(source, registry_factory, run_module):
    store, images = source
    image = images["busybox"]
    reg = registry_factory()  # empty: everything has to be uploaded
    target = f"{reg.host}/{prefix()}/busybox:1"
    args = {"name": image.name, "repository": target, "store": str(store)}

    mark = reg.mark()
    check = run_module("image_push", args, check=True, diff=True)
    assert not check["failed"], check["msg"]
    assert check["changed"] is True
    assert check["blobs"]["uploaded"] == len(image.layers) + 1 and check["blobs"]["present"] == 0
    assert check["diff"]["before"]["tags"] == {target: None}
    assert check["diff"]["after"]["tags"] == {target: image.digest}
    assert writes(reg.request_log(mark)) == []  # check mode only asks

    real = run_module("image_push", args, diff=True)
    assert not real["failed"], real["msg"]
    assert real["changed"] is True
    assert real["image"]["digest"] == image.digest and real["image"]["tags"] == [target]
    assert real["blobs"]["uploaded_bytes"] == blob_sizes(image)
    raw = skopeo_raw(target, "--tls-verify=false")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest
    inspected = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                                          check=True, capture_output=True, timeout=60).stdout)
    assert inspected["Digest"] == image.digest and len(inspected["Layers"]) == len(image.layers)

    mark = reg.mark()
    again_check = run_module("image_push", args, check=True)
    assert again_check["changed"] is False
    again = run_module("image_push", args)
    assert not again["failed"], again["msg"]
    assert again["changed"] is False and again["blobs"]["uploaded_bytes"] == 0
    entries = [e for e in reg.request_log(mark) if e.path != "/v2/"]
    # One HEAD of the tag per run, nothing else: zero bytes uploaded.
    assert [(e.method, e.path) for e in entries] == [("HEAD", f"/v2/{target.split('/', 1)[1].replace(':', '/manifests/')}")] * 2


def test_second_repository_uses_mounts(source, registry_factory, run_module):
    store, images = source
    image = images["layers"]
    reg = registry_factory()
    base = prefix()
    # The first push through the engine (the module runs below): everything is uploaded.
    first = push_image(Store(str(store)), image.name, repository=f"{reg.host}/{base}/one:1")
    assert first.blobs.uploaded == len(image.layers) + 1

    mark = reg.mark()
    second = run_module("image_push", {"name": image.name, "repository": f"{reg.host}/{base}/two:1",
                                       "store": str(store)})
    assert not second["failed"], second["msg"]
    assert second["changed"] is True
    assert second["blobs"]["mounted"] == len(image.layers) + 1 and second["blobs"]["uploaded"] == 0
    posts = [e for e in writes(reg.request_log(mark)) if e.method == "POST"]
    assert len(posts) == len(image.layers) + 1
    assert all("mount=sha256" in e.path and f"from={base}%2Fone" in e.path and e.status == 201 for e in posts)
    assert not [e for e in writes(reg.request_log(mark)) if e.method == "PATCH" or "/blobs/uploads/" in e.path
                and e.method == "PUT"]
    raw = skopeo_raw(f"{reg.host}/{base}/two:1", "--tls-verify=false")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest


def test_push_tls_htpasswd(source, registry_tls, run_module, tmp_path):
    store, images = source
    image = images["busybox"]
    target = f"{registry_tls.host}/{prefix()}/busybox:1"
    base = {"name": image.name, "repository": target, "store": str(store), "ca_path": registry_tls.ca_path}

    denied = run_module("image_push", {**base, "username": registry_tls.username, "password": "wrong-Pa55"})
    assert denied["failed"] is True
    assert "authentication failed" in denied["msg"] and f"user '{registry_tls.username}' from parameters" in denied["msg"]
    assert "wrong-Pa55" not in denied["msg"] and "wrong-Pa55" not in denied.stdout

    # The seed's way: credentials in DOCKER_USERNAME/DOCKER_PASSWORD.
    env = {"DOCKER_USERNAME": registry_tls.username, "DOCKER_PASSWORD": registry_tls.password}
    ok = run_module("image_push", base, env=env)
    assert not ok["failed"], ok["msg"]
    assert ok["changed"] is True and ok["blobs"]["uploaded"] == len(image.layers) + 1
    assert registry_tls.password not in ok.stdout

    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(registry_tls.ca_path, certs / "ca.crt")
    raw = skopeo_raw(target, "--cert-dir", str(certs), "--creds", f"{registry_tls.username}:{registry_tls.password}")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == image.digest

    options = RegistryOptions(username=registry_tls.username, password=registry_tls.password,
                              ca_path=registry_tls.ca_path)
    again = push_image(Store(str(store)), image.name, repository=target, registry=options)
    assert again.changed is False


def test_push_token_auth_and_read_back(source, registry_token, run_module, tmp_path):
    store, images = source
    image = images["layers"]
    tokens = registry_token.token_server
    target = f"{registry_token.host}/{prefix()}/layers:1"
    creds = {"username": registry_token.username, "password": registry_token.password}
    base = {"name": image.name, "repository": target, "store": str(store), "ca_path": registry_token.ca_path}

    anonymous = run_module("image_push", base)
    assert anonymous["failed"] is True and "no credentials (anonymous)" in anonymous["msg"]
    assert "DOCKER_USERNAME" in anonymous["msg"] and "authentication failed at the registry" in anonymous["msg"]

    mark = tokens.mark()
    pushed = run_module("image_push", {**base, **creds, "tags": ["latest"]})
    assert not pushed["failed"], pushed["msg"]
    assert pushed["changed"] is True and pushed["image"]["tags"] == [target, target.rsplit(":", 1)[0] + ":latest"]
    asked = [r for r in tokens.requests[mark:] if r.status == 200]
    repo = target.split("/", 1)[1].rsplit(":", 1)[0]
    assert any(f"repository:{repo}:pull,push" in r.scopes for r in asked)
    assert all(r.username == registry_token.username for r in asked)

    # Our own pull reads it back, through the same token server, with the same digest.
    back = Store(str(tmp_path / "back"))
    result = pull_image(back, target, registry=RegistryOptions(ca_path=registry_token.ca_path, **creds))
    assert result.image.digest == image.digest
    assert [la["diff_id"] for la in result.image.layers] == [la["diff_id"] for la in image.layers]

    options = RegistryOptions(ca_path=registry_token.ca_path, **creds)
    again = push_image(Store(str(store)), image.name, repository=target, tags=["latest"], registry=options)
    assert again.changed is False


@pytest.mark.root
def test_pushed_image_runs_with_umoci_and_runc(source, registry, tmp_path):
    store, images = source
    image = images["busybox"]
    target = f"{registry.host}/{prefix()}/busybox:run"
    result = push_image(Store(str(store)), image.name, repository=target)
    # busybox was pulled from this registry: its blobs are mounted from library/busybox, not uploaded.
    assert result.blobs.mounted == len(image.layers) + 1 and result.blobs.uploaded == 0

    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{layout}:t"],
                   check=True, capture_output=True, timeout=60)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(bundle)], check=True, capture_output=True,
                   timeout=60)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["args"] = ["/bin/busybox", "echo", "pushed-image-runs"]
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config))
    cid = f"dl-push-{secrets.token_hex(4)}"
    run = subprocess.run(["runc", "run", "--bundle", str(bundle), cid], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "pushed-image-runs"
    # `runc run` removes the container when its process exits: nothing is left behind.
    assert not Path("/run/runc", cid).exists()
