# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""push_image against a real Store and the scripted registry (MemoryRegistry on the fault server): the
decisions (what is present, mounted, uploaded), idempotence by digest, check mode and the faults the issue
names. The real docker-registry runs in tests/integration/test_image_push.py."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    AuthError,
    ImageReferenceError,
    RegistryError,
    StoreError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.push import (
    ANNOTATION_PUSHED,
    mount_sources,
    push_image,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import (
    ANNOTATION_REMOTE_DIGEST,
    ANNOTATION_SOURCE,
    Store,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fault_server import BearerGate, FaultServer, MemoryRegistry, Reply, error_reply  # noqa: E402
from fresh_python import run_fresh  # noqa: E402

SECRET = "push-Secret-9"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_image(store: Store, name: str, layers: list[bytes], annotations: dict | None = None) -> dict:
    """Put an image (opaque layer blobs, a config, an OCI manifest) into the store under ``name``."""
    diff_ids = [sha(b"diff" + layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    for data in [*layers, config]:
        store.put_blob(data)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)} for layer in layers],
    }, separators=(",", ":")).encode()
    store.put_blob(manifest)
    desc = {"mediaType": oci.OCI_MANIFEST, "digest": sha(manifest), "size": len(manifest)}
    if annotations:
        desc["annotations"] = annotations
    store.tag(parse_reference(name).name, desc)
    return {"manifest": manifest, "digest": sha(manifest), "config": config, "layers": layers,
            "blobs": {sha(b): b for b in [*layers, config]}}


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


LAYERS = [os.urandom(30000), os.urandom(20000)]


def client_for(srv: FaultServer, creds: Credentials | None = None) -> RegistryClient:
    return RegistryClient(srv.host, creds, backoff_base=0.01, max_retries=3, timeout=5)


def push(store, srv, name, creds=None, **kw):
    return push_image(store, name, client=client_for(srv, creds), **kw)


def writes(srv: FaultServer) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in srv.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


def test_first_push_then_idempotent(server, store):
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    img = add_image(store, name, LAYERS)

    result = push(store, server, name)
    assert result.changed is True
    assert result.digest == img["digest"] and result.repository == f"{server.host}/team/app"
    assert result.tags == [name] and result.before == {name: None}
    total = sum(len(b) for b in img["blobs"].values())
    assert result.blobs.as_dict() == {"uploaded": 3, "uploaded_bytes": total, "mounted": 0, "mounted_bytes": 0,
                                      "present": 0, "present_bytes": 0}
    assert reg.manifests[("team/app", "1")] == (img["manifest"], oci.OCI_MANIFEST)
    assert all(reg.blobs[d] == data for d, data in img["blobs"].items())
    # Pushed to its own name: no bookkeeping needed in the store.
    assert ANNOTATION_PUSHED not in (store.resolve(name).get("annotations") or {})

    count = len(server.requests)
    again = push(store, server, name)
    assert again.changed is False and again.before == {name: img["digest"]}
    assert again.blobs.uploaded == 0 and again.blobs.present == 3
    later = server.requests[count:]
    assert [(r.method, r.path) for r in later if r.path != "/v2/"] == [("HEAD", "/v2/team/app/manifests/1")]


def test_check_mode_reports_and_writes_nothing(server, store):
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    img = add_image(store, name, LAYERS)
    reg.add_blob("team/app", LAYERS[0])
    index_before = open(store.index_path, "rb").read()

    result = push(store, server, name, check_mode=True)
    assert result.changed is True
    assert result.blobs.uploaded == 2 and result.blobs.present == 1
    assert result.blobs.uploaded_bytes == len(LAYERS[1]) + len(img["config"])
    assert any(a.startswith("would upload 2 blob(s)") for a in result.actions)
    assert any(a.startswith(f"would put manifest {img['digest']} as {name}") for a in result.actions)
    assert writes(server) == []
    assert open(store.index_path, "rb").read() == index_before
    assert not os.path.exists(os.path.join(store.root, ".gc.lock"))

    push(store, server, name)
    again = push(store, server, name, check_mode=True)
    assert again.changed is False


def test_partial_presence_uploads_only_what_is_missing(server, store):
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    add_image(store, name, LAYERS)
    reg.add_blob("team/app", LAYERS[0])
    result = push(store, server, name)
    assert (result.blobs.uploaded, result.blobs.present, result.blobs.present_bytes) == (2, 1, len(LAYERS[0]))
    assert ("POST", "/v2/team/app/blobs/uploads/") in writes(server)
    assert len([w for w in writes(server) if w[0] == "POST"]) == 2


def test_extra_tags_and_a_moved_tag(server, store):
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    img = add_image(store, name, LAYERS)
    result = push(store, server, name, tags=["latest", "stable", "latest"])
    assert result.tags == [name, f"{server.host}/team/app:latest", f"{server.host}/team/app:stable"]
    assert {ref for (repo, ref) in reg.manifests if repo == "team/app"} == {"1", "latest", "stable", img["digest"]}

    # Someone points 'stable' elsewhere: only that tag is put again, no blob moves.
    other = add_image(Store(store.root + "-other"), "x/y:1", [b"other layer"])
    reg.manifests[("team/app", "stable")] = (other["manifest"], oci.OCI_MANIFEST)
    count = len(server.requests)
    again = push(store, server, name, tags=["latest", "stable"])
    assert again.changed is True and again.before[f"{server.host}/team/app:stable"] == other["digest"]
    assert again.blobs.present == 3 and again.blobs.uploaded == 0
    assert [(r.method, r.path) for r in server.requests[count:] if r.method in ("PUT", "POST", "PATCH")] == [
        ("PUT", "/v2/team/app/manifests/stable")]


def test_push_to_another_repository_then_mount_for_the_next(server, store):
    reg = MemoryRegistry(server).install()
    name = "docker.io/library/local:1"  # built locally: its own name tells nothing about this registry
    img = add_image(store, name, LAYERS)
    first = push(store, server, name, repository=f"{server.host}/one/app:1")
    assert first.blobs.uploaded == 3 and reg.mounted == []
    pushed = store.resolve(name)["annotations"][ANNOTATION_PUSHED]
    assert pushed == f"{server.host}/one/app:1"

    second = push(store, server, name, repository=f"{server.host}/two/app")  # tag taken from name
    assert second.tags == [f"{server.host}/two/app:1"]
    assert second.blobs.as_dict() == {"uploaded": 0, "uploaded_bytes": 0, "mounted": 3,
                                      "mounted_bytes": sum(len(b) for b in img["blobs"].values()),
                                      "present": 0, "present_bytes": 0}
    assert sorted(reg.mounted) == sorted(("two/app", d, "one/app") for d in img["blobs"])
    assert any("from one/app" in a for a in second.actions)
    uploads_to_two = [w for w in writes(server) if "two/app" in w[1] and (w[0] == "PATCH" or (
        w[0] == "PUT" and "/uploads/" in w[1]))]
    assert uploads_to_two == []
    recorded = store.resolve(name)["annotations"][ANNOTATION_PUSHED].split()
    assert recorded == [f"{server.host}/one/app:1", f"{server.host}/two/app:1"]


def test_mount_from_the_source_the_image_was_pulled_from(server, store):
    reg = MemoryRegistry(server).install()
    img = add_image(store, f"{server.host}/base/img:3", LAYERS,
                    annotations={ANNOTATION_SOURCE: f"{server.host}/base/img:3"})
    for data in img["blobs"].values():
        reg.add_blob("base/img", data)
    result = push(store, server, f"{server.host}/base/img:3", repository=f"{server.host}/derived/img:1")
    assert result.blobs.mounted == 3 and result.blobs.uploaded == 0


def test_mount_miss_falls_back_to_upload_in_the_same_session(server, store):
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/src/app:1"  # never pushed there: mounts from src/app fail
    img = add_image(store, name, LAYERS)
    result = push(store, server, name, repository=f"{server.host}/dst/app:1")
    assert result.blobs.uploaded == 3 and result.blobs.mounted == 0
    posts = server.requests_to("POST", "/v2/dst/app/blobs/uploads/")
    assert len(posts) == 3 and all(p.query.get("from") == ["src/app"] for p in posts)
    assert all(reg.blobs[d] == data for d, data in img["blobs"].items())


def test_mount_sources_ignore_other_registries_and_the_target(store):
    annotations = {ANNOTATION_SOURCE: "127.0.0.1:5000/c/d:1",
                   ANNOTATION_PUSHED: "127.0.0.1:5000/e/f:1 other.example/g/h:1"}
    add_image(store, "127.0.0.1:5000/a/b:1", [b"L1"], annotations=annotations)
    add_image(store, "other.example/x/y:1", [b"L1"])
    sources = mount_sources(store, parse_reference("127.0.0.1:5000/a/b:2"))
    assert sources[sha(b"L1")] == ["e/f", "c/d"]


def test_remote_digest_of_the_pulled_original_counts_as_up_to_date(server, store):
    reg = MemoryRegistry(server).install()
    original = json.dumps({"schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST, "config": {}, "layers": []}).encode()
    reg.manifests[("team/app", "1")] = (original, oci.DOCKER_MANIFEST)
    name = f"{server.host}/team/app:1"
    add_image(store, name, LAYERS, annotations={ANNOTATION_REMOTE_DIGEST: sha(original)})
    result = push(store, server, name)
    assert result.changed is False and writes(server) == []


def test_uploads_run_in_parallel(server, store):
    active, peak, lock = [0], [0], threading.Lock()

    def slow_put(req):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return None  # let the registry handle it

    server.on("PUT", "/v2/team/app/blobs/uploads/.*", slow_put)
    MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    add_image(store, name, [os.urandom(1000) for _i in range(6)])
    result = push(store, server, name)
    assert result.blobs.uploaded == 7
    assert peak[0] >= 3


def test_chunked_upload_from_the_store(server, store):
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    img = add_image(store, name, LAYERS)
    push(store, server, name, chunk_size=8192)
    assert all(reg.blobs[d] == data for d, data in img["blobs"].items())
    assert len(server.requests_to("PATCH", "/v2/team/app/blobs/uploads/.*")) == 4 + 3  # 30000, 20000; the config is monolithic


def test_default_upload_is_one_put_per_blob_largest_first(server, store):
    """Below DEFAULT_CHUNK_SIZE a blob goes as POST + one PUT with its body (no PATCH), the biggest started first."""
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    big = os.urandom(17 * 2**20)  # over the 16 MiB chunks of before: still a single request now
    img = add_image(store, name, [os.urandom(1000), big, os.urandom(5000)])
    result = push(store, server, name, parallel=1)
    assert result.blobs.uploaded == 4 and reg.blobs[sha(big)] == big
    assert all(reg.blobs[d] == data for d, data in img["blobs"].items())
    assert server.requests_to("PATCH", "/v2/team/app/blobs/uploads/.*") == []
    puts = [r for r in server.requests if r.method == "PUT" and "/blobs/uploads/" in r.path]
    assert [len(r.body) for r in puts] == sorted((len(b) for b in img["blobs"].values()), reverse=True)


def test_location_to_another_host_is_refused(server, store):
    with FaultServer() as other:
        server.on("POST", "/v2/team/app/blobs/uploads/", Reply(202, {"Location": f"{other.url}/v2/team/app/u"}))
        MemoryRegistry(server).install()
        name = f"{server.host}/team/app:1"
        add_image(store, name, LAYERS)
        with pytest.raises(RegistryError, match="upload Location points to another host"):
            push(store, server, name)
        assert other.requests == []
    assert server.requests_to("PUT", "/v2/team/app/manifests/1") == []


def test_5xx_mid_upload_retried_from_a_fresh_session(server, store):
    server.on("PATCH", "/v2/team/app/blobs/uploads/.*", error_reply(503, "UNAVAILABLE"), times=2)
    reg = MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    img = add_image(store, name, LAYERS)
    result = push(store, server, name, chunk_size=16384)
    assert result.changed and all(reg.blobs[d] == data for d, data in img["blobs"].items())
    assert len(server.requests_to("POST", "/v2/team/app/blobs/uploads/")) == 3 + 2


def test_manifest_blob_unknown_is_reported_clearly(server, store):
    # A registry that claims to hold every blob but then refuses the manifest.
    server.on("HEAD", "/v2/team/app/blobs/.*", Reply(200, {"Content-Length": "1"}))
    MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    add_image(store, name, LAYERS)
    with pytest.raises(RegistryError) as info:
        push(store, server, name)
    text = str(info.value)
    assert info.value.codes == ("MANIFEST_BLOB_UNKNOWN",) and info.value.status == 400
    assert f"putting manifest {server.host}/team/app:1" in text
    assert "MANIFEST_BLOB_UNKNOWN" in text and "push the blobs first" in text


def test_unsupported_media_type_is_reported(server, store):
    server.on("PUT", "/v2/team/app/manifests/1",
              error_reply(400, "MANIFEST_INVALID", "manifest invalid: unsupported media type"))
    MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    add_image(store, name, LAYERS)
    with pytest.raises(RegistryError, match="MANIFEST_INVALID: manifest invalid: unsupported media type.*"
                                            "rejected the manifest as invalid for its media type"):
        push(store, server, name)


def test_token_auth_scopes_for_push_and_mount(server, store):
    gate = BearerGate(server, users={"u": SECRET}).install()
    reg = MemoryRegistry(server).install()
    name = "docker.io/library/local:1"
    add_image(store, name, LAYERS)
    creds = Credentials("u", SECRET, "parameters")
    push(store, server, name, creds=creds, repository=f"{server.host}/one/app:1")
    second = push(store, server, name, creds=creds, repository=f"{server.host}/two/app:1")
    assert second.blobs.mounted == 3 and len(reg.mounted) == 3
    scopes = [r.query.get("scope") for r in gate.token_requests]
    assert ["repository:one/app:pull"] in scopes  # the tag HEAD
    assert ["repository:one/app:pull,push"] in scopes
    assert ["repository:one/app:pull", "repository:two/app:pull,push"] in scopes  # mount: target + source
    assert all(r.header("Authorization", ).startswith("Basic ") for r in gate.token_requests)


def test_anonymous_push_is_refused_with_directions(server, store):
    BearerGate(server, anonymous_pull=True).install()
    MemoryRegistry(server).install()
    name = f"{server.host}/team/app:1"
    add_image(store, name, LAYERS)
    with pytest.raises(AuthError) as info:
        push(store, server, name)
    text = str(info.value)
    assert "no credentials (anonymous)" in text and "DOCKER_USERNAME and DOCKER_PASSWORD" in text
    assert server.requests_to("PUT", "/v2/team/app/manifests/1") == []


def test_missing_image_and_bad_targets(server, store):
    MemoryRegistry(server).install()
    with pytest.raises(StoreError, match="not in the store"):
        push(store, server, f"{server.host}/nothere:1")
    name = f"{server.host}/team/app:1"
    img = add_image(store, name, LAYERS)
    with pytest.raises(ImageReferenceError, match="a digest can't be pushed to"):
        push(store, server, name, repository=f"{server.host}/team/app@{img['digest']}")
    with pytest.raises(ImageReferenceError):
        push(store, server, name, tags=["-bad"])
    os.unlink(store.blob_path(sha(LAYERS[1])))
    with pytest.raises(StoreError, match=f"blob {sha(LAYERS[1])} is missing from the store"):
        push(store, server, name)
    assert writes(server) == []


_LOADED = """
import importlib, json
importlib.import_module("ansible_collections.dockerless.containers.plugins.module_utils." + sys.argv[1])
base = "ansible_collections.dockerless.containers.plugins.module_utils."
print(json.dumps(sorted(m[len(base):] for m in sys.modules if m.startswith(base))))
"""


def test_push_does_not_load_the_pull_engine():
    """Each module_utils file a module imports is compiled from the AnsiballZ zip at every run: a push (and the no-change
    re-push) loads the registry client and the store, not the pull engine or the unpacker."""
    loaded = json.loads(run_fresh(_LOADED, "image.push").stdout)
    assert "registry.client" in loaded and "image.store" in loaded
    assert not {"image.pull", "image.layers.extract", "image.layers.tarstream", "image.layers.decompress"} & set(loaded)


def test_shared_module_arguments_do_not_load_the_registry_client():
    loaded = json.loads(run_fresh(_LOADED, "common").stdout)
    assert "image.pull" not in loaded
    assert [m for m in loaded if m.startswith("registry.")] == []  # in every module's payload: no engine at all
