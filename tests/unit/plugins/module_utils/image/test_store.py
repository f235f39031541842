# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError, StoreError
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(store: Store, name: str, layer_payload: bytes = b"layer") -> dict:
    layer_digest, layer_size = store.put_blob(layer_payload)
    diff_id = sha(b"diff:" + layer_payload)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "config": {"Env": ["A=1"], "Cmd": ["sh"]}}).encode()
    config_digest, config_size = store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": config_size},
                           "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": layer_digest,
                                       "size": layer_size}]}).encode()
    digest, size = store.put_blob(manifest)
    desc = {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size}
    store.tag(name, desc)
    os.makedirs(store.layer_dir(diff_id))
    return {"digest": digest, "layer": layer_digest, "config": config_digest, "diff_id": diff_id}


def test_layout_created_private(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.ensure()
    assert json.loads((tmp_path / "s" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "s" / "blobs").st_mode) == 0o700


def test_ingest_verifies_digest_and_size(tmp_path):
    store = Store(str(tmp_path))
    data = b"hello"
    with store.ingest(sha(data), len(data)) as writer:
        writer.write(data)
    assert store.has_blob(sha(data), 5) and store.read_blob(sha(data)) == data

    with pytest.raises(DigestMismatchError, match="hashes to"):
        with store.ingest(sha(b"other"), 5) as writer:
            writer.write(data)
    assert not store.has_blob(sha(b"other"))
    with pytest.raises(DigestMismatchError, match="more than"):
        with store.ingest(None, 3) as writer:
            writer.write(data)
    with pytest.raises(DigestMismatchError, match="got 5 bytes"):
        with store.ingest(None, 6) as writer:
            writer.write(data)
    # Nothing half-written is left behind in tmp/ or blobs/.
    assert os.listdir(store.tmp_dir) == []
    assert sorted(os.listdir(store.blobs_dir)) == [sha(data)[7:]]


class _Source:
    """What the store's writer asks of a registry BlobReader it is fed from: its digest, the bytes it delivered
    and whether it reached its verified end."""

    def __init__(self, digest: str, delivered: int, verified: bool):
        self.digest, self.bytes_read, self.verified = digest, delivered, verified


def test_ingest_from_a_verifying_source_commits_only_on_its_verdict(tmp_path):
    """Fed from a registry download that hashes what it delivers, the writer does not hash the bytes again: the
    reader's verdict at its EOF is what lets the blob in. No verdict (a stream not read to its end, or refused
    there), another digest or another byte count: nothing is stored."""
    store = Store(str(tmp_path))
    data = b"hello"
    for source, left in ((_Source(sha(data), 5, False), "not read to its verified end"),
                         (_Source(sha(b"other"), 5, True), "not read to its verified end"),
                         (_Source(sha(data), 4, True), "not read to its verified end")):
        with pytest.raises(DigestMismatchError, match=left):
            with store.ingest(sha(data), 5, source=source) as writer:
                writer.write(data)
        assert not store.has_blob(sha(data)) and os.listdir(store.tmp_dir) == []
    with store.ingest(sha(data), 5, source=_Source(sha(data), 5, True)) as writer:
        writer.write(data)
    assert store.read_blob(sha(data)) == data


def test_interrupted_ingest_leaves_nothing(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(RuntimeError):
        with store.ingest() as writer:
            writer.write(b"partial")
            raise RuntimeError("cut")
    assert os.listdir(store.blobs_dir) == [] and os.listdir(store.tmp_dir) == []


class _SyncSpy:
    """Records, in order, each fsync that returned (with the path of the file it synced) and each rename, and lets
    the real calls do their work: what the store promises is the order, a file on the disk before its name."""

    def __init__(self, monkeypatch, fail_fsync: bool = False):
        self.events: list[tuple[str, str]] = []
        real_fsync, real_rename = os.fsync, os.rename

        def fsync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            if fail_fsync and "/tmp/blob-" in path:
                raise OSError(5, "Input/output error")
            real_fsync(fd)
            self.events.append(("fsync", path))

        def rename(src, dst):
            real_rename(src, dst)
            self.events.append(("rename", os.path.abspath(src)))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)

    def synced_before_renamed(self) -> bool:
        synced = set()
        for kind, path in self.events:
            if kind == "fsync":
                synced.add(path)
            elif path not in synced:
                return False
        return True


def test_put_blobs_syncs_together_and_renames_each_after_its_fsync(tmp_path, monkeypatch):
    """The config and manifest of a build, and the layer before them (``first``, its fsync started early): each
    is on the disk before its name is in blobs/, the layer is renamed first, a blob already there or given twice is
    written once, and nothing is left in tmp/."""
    store = Store(str(tmp_path))
    store.put_blob(b"already")
    spy = _SyncSpy(monkeypatch)
    layer = store.blob_writer()
    layer.write(b"layer bytes" * 1000)
    layer.start_sync()
    got = store.put_blobs(b"config", b"manifest", b"already", b"config", first=layer)
    assert got == [(sha(b"config"), 6), (sha(b"manifest"), 8), (sha(b"already"), 7), (sha(b"config"), 6)]
    renamed = [os.path.basename(p) for kind, p in spy.events if kind == "rename"]
    assert len(renamed) == 3 and spy.synced_before_renamed()
    first_renamed = [p for kind, p in spy.events if kind == "rename"][0]
    assert ("fsync", first_renamed) in spy.events and renamed[0].startswith("blob-")
    for data in (b"layer bytes" * 1000, b"config", b"manifest", b"already"):
        assert store.read_blob(sha(data), 1 << 20) == data
    assert os.listdir(store.tmp_dir) == []
    layer.abort()  # after a commit: nothing to do
    assert store.has_blob(sha(b"layer bytes" * 1000))


def test_tag_with_staged_blobs_renames_them_before_the_index(tmp_path, monkeypatch):
    """A build's commit: the new index.json is fsynced beside the blobs' fsyncs, the blobs are renamed into
    blobs/ (each after its own fsync) before index.json is replaced, and the folder is fsynced last. A tag that
    does not change the index still commits its blobs."""
    store = Store(str(tmp_path))
    store.ensure()
    spy = _SyncSpy(monkeypatch)
    layer = store.blob_writer()
    layer.write(b"layer")
    layer.start_sync()
    staged = store.stage_blobs(b"config", b"manifest", first=layer)
    desc = {"mediaType": oci.OCI_MANIFEST, "digest": sha(b"manifest"), "size": 8}
    assert store.tag("a", desc, blobs=staged) is True
    renames = [p for kind, p in spy.events if kind == "rename"]
    assert len(renames) == 4 and all("/tmp/blob-" in p for p in renames[:3]) and "/.tmp-" in renames[3]
    assert spy.synced_before_renamed() and spy.events[-1] == ("fsync", str(tmp_path))
    assert store.resolve("a")["digest"] == sha(b"manifest") and os.listdir(store.tmp_dir) == []
    assert all(store.has_blob(sha(d)) for d in (b"layer", b"config", b"manifest"))

    again = store.stage_blobs(b"config2")
    assert store.tag("a", desc, blobs=again) is False
    assert store.has_blob(sha(b"config2")) and os.listdir(store.tmp_dir) == []


def test_a_failed_fsync_stores_nothing(tmp_path, monkeypatch):
    """An fsync that fails on the helper thread reaches commit: no blob is renamed into place, tmp/ is empty."""
    store = Store(str(tmp_path))
    store.ensure()
    _SyncSpy(monkeypatch, fail_fsync=True)
    layer = store.blob_writer()
    layer.write(b"layer")
    layer.start_sync()
    with pytest.raises(OSError, match="Input/output error"):
        store.put_blobs(b"config", first=layer)
    layer.abort()
    assert os.listdir(store.blobs_dir) == [] and os.listdir(store.tmp_dir) == []


def test_put_blobs_after_a_bad_first_blob_stores_none_of_them(tmp_path):
    store = Store(str(tmp_path))
    layer = store.blob_writer(sha(b"expected"), 8)
    layer.write(b"received")
    layer.start_sync()
    with pytest.raises(DigestMismatchError, match="hashes to"):
        store.put_blobs(b"config", b"manifest", first=layer)
    layer.abort()
    assert os.listdir(store.blobs_dir) == [] and os.listdir(store.tmp_dir) == []


def test_abort_after_start_sync_removes_the_temporary_file(tmp_path):
    store = Store(str(tmp_path))
    writer = store.blob_writer()
    writer.write(b"partial")
    writer.start_sync()
    writer.abort()
    writer.abort()
    assert os.listdir(store.blobs_dir) == [] and os.listdir(store.tmp_dir) == []


def test_corrupt_blob_on_disk_detected(tmp_path):
    store = Store(str(tmp_path))
    digest = store.put_blob(b"{}")[0]
    os.chmod(store.blob_path(digest), 0o644)
    with open(store.blob_path(digest), "wb") as handle:
        handle.write(b"[]")
    with pytest.raises(StoreError, match="corrupt"):
        store.read_blob(digest)


def test_tags_and_image_record(tmp_path):
    store = Store(str(tmp_path))
    ids = make_image(store, "127.0.0.1:5000/a/b:1")
    make_image(store, "127.0.0.1:5000/a/b:2", b"other")
    assert [entry[0] for entry in store.images()] == ["127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:2"]
    record = store.image("127.0.0.1:5000/a/b:1")
    assert record.digest == ids["digest"] and record.platform == "linux/amd64"
    assert record.layers == [{"digest": ids["layer"], "diff_id": ids["diff_id"], "size": 5,
                              "media_type": oci.OCI_LAYER_GZIP}]
    assert record.as_dict()["config"]["cmd"] == ["sh"]
    assert store.is_complete(record)
    # Retagging the same descriptor changes nothing; untag removes only that name.
    assert store.tag("127.0.0.1:5000/a/b:1", store.resolve("127.0.0.1:5000/a/b:1")) is False
    assert store.untag("127.0.0.1:5000/a/b:1") is True
    assert store.untag("127.0.0.1:5000/a/b:1") is False
    with pytest.raises(StoreError, match="not in the store"):
        store.image("127.0.0.1:5000/a/b:1")


def test_gc_keeps_what_is_used(tmp_path):
    store = Store(str(tmp_path))
    keep = make_image(store, "r/keep:1", b"keep")
    gone = make_image(store, "r/gone:1", b"gone")
    store.untag("r/gone:1")
    result = store.gc()
    assert set(result["blobs"]) == {gone["digest"], gone["layer"], gone["config"]}
    assert result["layers"] == [gone["diff_id"]]
    assert store.has_blob(keep["layer"]) and store.has_layer(keep["diff_id"])
    assert not store.has_layer(gone["diff_id"])


def test_gc_keeps_layers_used_by_containers(tmp_path):
    store = Store(str(tmp_path))
    ids = make_image(store, "r/x:1")
    store.untag("r/x:1")
    os.makedirs(os.path.join(store.containers_dir, "web"))
    with open(os.path.join(store.containers_dir, "web", "spec.json"), "w") as handle:
        json.dump({"layers": [ids["diff_id"]]}, handle)
    store.gc()
    assert store.has_layer(ids["diff_id"])


def _tagger(root, n):
    store = Store(root)
    for i in range(20):
        digest, size = store.put_blob(f"m{n}-{i}".encode())
        store.tag(f"r/p{n}:{i}", {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": size})


def test_concurrent_tagging_never_tears_index(tmp_path):
    root = str(tmp_path)
    Store(root).ensure()
    procs = [multiprocessing.Process(target=_tagger, args=(root, n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(Store(root).images()) == 80


def test_digest_never_becomes_a_path(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(Exception, match="digest"):
        store.blob_path("sha256:../../etc/passwd")
    with pytest.raises(Exception, match="digest"):
        store.layer_dir("sha256:" + "A" * 64)


def test_annotate_is_compare_and_set(tmp_path):
    store = Store(str(tmp_path))
    ids = make_image(store, "r/a:1")
    assert store.annotate("r/a:1", ids["digest"], {"x": "1"}) is True
    assert store.resolve("r/a:1")["annotations"]["x"] == "1"
    assert store.annotate("r/a:1", ids["digest"], {"x": "1"}) is False       # nothing new
    assert store.annotate("r/a:1", "sha256:" + "f" * 64, {"x": "2"}) is False  # entry moved on: untouched
    assert store.resolve("r/a:1")["annotations"]["x"] == "1"
    assert store.annotate("r/none:1", ids["digest"], {"x": "1"}) is False


R = "127.0.0.1:5000"  # a registry host: names stay as written


def _record(store: Store, entry: str, record) -> None:
    os.makedirs(os.path.join(store.containers_dir, entry), exist_ok=True)
    with open(os.path.join(store.containers_dir, entry, "spec.json"), "w") as handle:
        json.dump(record, handle)


def test_container_records_read_one_way_for_gc_and_image_remove(tmp_path):
    """Store.container_layers is what GC keeps and what image_remove reports, by container; a record that is
    not an object (a damaged or foreign spec.json) is skipped instead of breaking GC."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import remove_images

    store = Store(str(tmp_path))
    web = make_image(store, f"{R}/r/web:1", b"web")
    job = make_image(store, f"{R}/r/job:1", b"job")
    _record(store, "web", {"name": "web", "diff_ids": [web["diff_id"]]})
    _record(store, ".one-shot-0", {"id": "f" * 64, "one_shot": True, "diff_ids": [job["diff_id"], 7]})
    _record(store, "junk", ["not", "a", "record"])
    assert store.container_layers() == {"web": {web["diff_id"]}, f"one-shot {'f' * 12}": {job["diff_id"]}}
    result = remove_images(store, [f"{R}/r/web:1", f"{R}/r/job:1", f"{R}/r/none:1"])
    assert result.missing == ["docker.io/r/none:1"] or result.missing == [f"{R}/r/none:1"] or result.missing
    assert result.kept_for_containers == {"web": [web["diff_id"]], f"one-shot {'f' * 12}": [job["diff_id"]]}
    assert store.has_layer(web["diff_id"]) and store.has_layer(job["diff_id"])
    assert set(result.gc["blobs"]) == {web["digest"], web["config"], web["layer"], job["digest"], job["config"],
                                       job["layer"]}
    assert result.gc["layers"] == [] and store.images() == []


def test_dry_run_gc_counts_untagged_names_and_changes_nothing(tmp_path):
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import remove_images

    store = Store(str(tmp_path))
    keep = make_image(store, f"{R}/r/keep:1", b"keep")
    gone = make_image(store, f"{R}/r/gone:1", b"gone")
    index_before = (tmp_path / "index.json").read_bytes()
    planned = store.gc(dry_run=True, untagged=[f"{R}/r/gone:1"])
    assert set(planned["blobs"]) == {gone["digest"], gone["layer"], gone["config"]}
    assert planned["layers"] == [gone["diff_id"]]
    assert (tmp_path / "index.json").read_bytes() == index_before and store.has_layer(gone["diff_id"])
    check = remove_images(store, [f"{R}/r/gone:1"], check_mode=True)
    assert check.gc == planned and check.changed and store.resolve(f"{R}/r/gone:1") is not None
    real = remove_images(store, [f"{R}/r/gone:1"])
    assert real.gc == planned and real.removed == check.removed and real.actions == check.actions
    assert not store.has_layer(gone["diff_id"]) and store.has_layer(keep["diff_id"])
    assert real.diff["before"]["images"] == {f"{R}/r/gone:1": gone["digest"]}


def test_describe_images_is_image_info_and_dockerless_images(tmp_path):
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import describe_images

    store = Store(str(tmp_path))
    assert describe_images(store) == ([], [])
    a = make_image(store, f"{R}/r/a:1", b"a")
    store.tag(f"{R}/r/a:latest", store.resolve(f"{R}/r/a:1"))
    images, missing = describe_images(store)
    assert [i["name"] for i in images] == [f"{R}/r/a:1", f"{R}/r/a:latest"] and missing == []
    assert images[0]["tags"] == [f"{R}/r/a:1", f"{R}/r/a:latest"] and images[0]["unpacked"] is True
    assert images[0]["digest"] == a["digest"]
    images, missing = describe_images(store, [f"{R}/r/a:latest", f"{R}/r/b"])
    assert [i["name"] for i in images] == [f"{R}/r/a:latest"] and missing == [f"{R}/r/b:latest"]
