# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_build engine: planning over fake host roots (crafted ELF files), config/manifest, reproducibility and
idempotence against a real store in tmp_path, hostile ``files`` inputs."""

from __future__ import annotations

import datetime
import gzip
import io
import itertools
import json
import os
import re
import socket
import sys
import tarfile

import pytest
from test_elf import INTERP, make_elf, make_root

from ansible_collections.dockerless.containers.plugins.module_utils.errors import BuildError
from ansible_collections.dockerless.containers.plugins.module_utils.image import build, oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.build import BuildSpec, FileSpec
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import ensure_unpacked
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import image_for_run

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fresh_python import run_fresh  # noqa: E402


@pytest.fixture
def root(tmp_path):
    r = make_root(tmp_path)
    make_elf(os.path.join(r, "usr/lib/x86_64-linux-gnu/libtool.so.1.0.3"), soname="libtool.so.1", needed=("libc.so.6",))
    os.symlink("libtool.so.1.0.3", os.path.join(r, "usr/lib/x86_64-linux-gnu/libtool.so.1"))
    make_elf(os.path.join(r, "usr/bin/tool"), interp=INTERP, needed=("libtool.so.1", "libc.so.6"))
    os.makedirs(os.path.join(r, "srv/site/sub"))
    with open(os.path.join(r, "srv/site/index.html"), "w") as fh:
        fh.write("<h1>hi</h1>\n")
    with open(os.path.join(r, "srv/site/sub/run.sh"), "w") as fh:
        fh.write("#!/bin/sh\n")
    os.chmod(os.path.join(r, "srv/site/sub/run.sh"), 0o4750)
    os.symlink("/etc/shadow", os.path.join(r, "srv/site/shadow-link"))
    with open(os.path.join(r, "etc/app.conf"), "w") as fh:
        fh.write("x=1\n")
    return r


def spec(root, **kw) -> BuildSpec:
    kw.setdefault("name", "127.0.0.1:5000/me/tools:1")
    return BuildSpec(host_root=root, **kw)


def layer_members(store: Store, image: dict) -> dict[str, tarfile.TarInfo]:
    with store.open_blob(image["layers"][-1]["digest"]) as fh, tarfile.open(fileobj=fh, mode="r|gz") as tar:
        return {m.name: m for m in tar}


# -- parameters -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [(None, None), ("", None), (0o755, 0o755), (493, 0o755), ("0755", 0o755), ("755", 0o755), ("4755", 0o4755),
     ("0644", 0o644)],
)
def test_parse_mode(value, expected):
    assert build.parse_mode(value, "t") == expected


def test_octal_mode_check_is_the_pattern_it_replaces():
    """parse_mode's string check without re equals ``0?[0-7]{3,4}`` on every string of up to 6
    characters over octal, non-octal and blank characters."""
    pattern = re.compile(r"0?[0-7]{3,4}")
    strings = ("".join(p) for n in range(7) for p in itertools.product("0178a ", repeat=n))
    assert [t for t in strings if build._is_octal_mode(t) != bool(pattern.fullmatch(t))] == []


@pytest.mark.parametrize("value", ["u+x", "rwxr-xr-x", "0999", "17777", True, 0o17777, -1])
def test_parse_mode_refuses(value):
    with pytest.raises(BuildError, match="mode"):
        build.parse_mode(value, "t")


@pytest.mark.parametrize("value,expected", [(None, None), (0, 0), ("1000", 1000), (65534, 65534)])
def test_parse_id(value, expected):
    assert build.parse_id(value, "owner") == expected


@pytest.mark.parametrize("value", ["root", "-1", True, -5, 2**32])
def test_parse_id_refuses(value):
    with pytest.raises(BuildError, match="owner"):
        build.parse_id(value, "owner")


@pytest.mark.parametrize(
    "dest,expected",
    [("/usr/bin/x", "usr/bin/x"), ("//usr/./bin//x", "usr/bin/x"), ("/", "")],
)
def test_image_path(dest, expected):
    assert build.image_path(dest, "t") == expected


@pytest.mark.parametrize("dest", ["relative/x", "/a/../../etc/passwd", "/..", "/a/..", ""])
def test_image_path_refuses(dest):
    with pytest.raises(BuildError):
        build.image_path(dest, "t")


def test_source_date_epoch(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert build.source_date_epoch(None) == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert build.source_date_epoch(None) == 1700000000
    assert build.source_date_epoch(5) == 5
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH"):
        build.source_date_epoch(None)
    assert build.rfc3339(1700000000) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize("epoch", [0, 1, 946684800, 951782400, 1700000000, 2**31, 4102444800, 253402300799])
def test_rfc3339_is_what_datetime_gives(epoch):
    """rfc3339 formats with time.gmtime (no datetime import); the text is datetime's, to the last second of 9999."""
    expected = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert build.rfc3339(epoch) == expected


def test_rfc3339_beyond_year_9999_fails_as_before():
    with pytest.raises((ValueError, OverflowError)):
        build.rfc3339(253402300800)


# -- planning -----------------------------------------------------------------------------------------------------


def test_plan_keeps_symlink_chains_and_host_paths(root):
    plan = build.plan_layer(spec(root, executables=["tool"]))
    e = plan.entries
    assert plan.architecture == "amd64" and plan.os == "linux"
    # Merged /usr: /lib64 and /lib are links, the loader sits where the host has it.
    assert e["lib64"].kind == "symlink" and e["lib64"].linkname == "usr/lib64"
    assert e["usr/lib64/ld-linux-x86-64.so.2"].linkname == "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert e["lib"].linkname == "usr/lib"
    assert e["usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"].kind == "file"
    # libtool.so.1 stays a link to the real file, as on the host.
    assert e["usr/lib/x86_64-linux-gnu/libtool.so.1"].kind == "symlink"
    assert e["usr/lib/x86_64-linux-gnu/libtool.so.1"].linkname == "libtool.so.1.0.3"
    assert e["usr/lib/x86_64-linux-gnu/libtool.so.1.0.3"].kind == "file"
    assert e["usr/bin/tool"].mode == 0o755 and e["usr/bin/tool"].uid == 0
    for parent in ("usr", "usr/bin", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64"):
        assert e[parent].kind == "dir" and e[parent].mode == 0o755
    assert set(e) == {
        "lib", "lib64", "usr", "usr/bin", "usr/bin/tool", "usr/lib", "usr/lib64", "usr/lib64/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libtool.so.1",
        "usr/lib/x86_64-linux-gnu/libtool.so.1.0.3",
    }


def test_files_items(root):
    plan = build.plan_layer(spec(root, files=[
        FileSpec(src="/etc/app.conf", dest="/etc/app/", mode=0o640, owner=1000, group=1001),
        FileSpec(src="/srv/site", dest="/var/www", owner=33, group=33),
    ]))
    e = plan.entries
    conf = e["etc/app/app.conf"]
    assert (conf.kind, conf.mode, conf.uid, conf.gid, conf.size) == ("file", 0o640, 1000, 1001, 4)
    assert e["etc/app"].mode == 0o755 and e["etc/app"].uid == 0  # implicit parent
    assert e["var/www"].kind == "dir" and e["var/www"].uid == 33
    assert e["var/www/sub/run.sh"].mode == 0o4750 and e["var/www/sub/run.sh"].uid == 33
    # A symlink inside a copied directory is copied as a symlink; its target is never read.
    link = e["var/www/shadow-link"]
    assert link.kind == "symlink" and link.linkname == "/etc/shadow" and link.source is None
    assert plan.files[:3] == ["/etc", "/etc/app", "/etc/app/app.conf"]


def test_top_level_symlink_copied_or_followed(root):
    os.symlink("app.conf", os.path.join(root, "etc/current.conf"))
    plan = build.plan_layer(spec(root, files=[FileSpec(src="/etc/current.conf", dest="/etc/current.conf")]))
    assert plan.entries["etc/current.conf"].kind == "symlink"
    plan = build.plan_layer(spec(root, files=[FileSpec(src="/etc/current.conf", dest="/etc/c.conf", follow=True)]))
    assert plan.entries["etc/c.conf"].kind == "file" and plan.entries["etc/c.conf"].size == 4


def test_follow_stays_inside_the_root(root, tmp_path):
    (tmp_path / "outside").write_text("host secret")
    os.symlink("../../outside", os.path.join(root, "etc/escape"))
    with pytest.raises(BuildError, match="does not exist"):
        build.plan_layer(spec(root, files=[FileSpec(src="/etc/escape", dest="/x", follow=True)]))


def _special_files(root):
    os.mkfifo(os.path.join(root, "srv/fifo"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(root, "srv/sock"))
    sock.close()


@pytest.mark.parametrize(
    "item,message",
    [
        (FileSpec(src="/srv/fifo", dest="/x"), "is a FIFO"),
        (FileSpec(src="/srv/sock", dest="/x"), "is a socket"),
        (FileSpec(src="/srv", dest="/srv"), "/srv/fifo is a FIFO"),  # inside a directory too
        (FileSpec(src="/etc/app.conf", dest="/etc/../../x"), "contains '..'"),
        (FileSpec(src="/etc/app.conf", dest="etc/x"), "not an absolute path"),
        (FileSpec(src="etc/app.conf", dest="/etc/x"), "src must be an absolute host path"),
        (FileSpec(src="/etc/nothere", dest="/etc/x"), "does not exist"),
        (FileSpec(src="/etc/app.conf", dest="/."), "can't replace the image root"),
    ],
)
def test_hostile_files(root, item, message):
    _special_files(root)
    with pytest.raises(BuildError, match=message):
        build.plan_layer(spec(root, files=[item]))


def test_host_device_refused():
    with pytest.raises(BuildError, match="character device"):
        build.plan_layer(BuildSpec(name="x:1", files=[FileSpec(src="/dev/null", dest="/dev/null")]))


def test_dest_through_image_symlink_refused(root):
    # The closure made /lib a symlink in the image; writing below it would be ambiguous.
    with pytest.raises(BuildError, match="would go through /lib, which is a symlink"):
        build.plan_layer(spec(root, executables=["tool"], files=[FileSpec(src="/etc/app.conf", dest="/lib/app.conf")]))


def test_conflicting_dest_refused_identical_allowed(root):
    with pytest.raises(BuildError, match="already in the image"):
        build.plan_layer(spec(root, files=[FileSpec(src="/etc/app.conf", dest="/a"),
                                           FileSpec(src="/srv/site/index.html", dest="/a")]))
    plan = build.plan_layer(spec(root, files=[FileSpec(src="/etc/app.conf", dest="/a"),
                                              FileSpec(src="/etc/app.conf", dest="/a")]))
    assert "a" in plan.entries


# -- config and manifest --------------------------------------------------------------------------------------


def test_config_without_base(root):
    s = spec(root, executables=["tool"], env={"A": "1"}, entrypoint=["/usr/bin/tool"], cmd=["--help"], workdir="/w",
             user="1000:1000", labels={"l": "v"}, exposed_ports=["80", "53/udp"], volumes=["/data"])
    plan = build.plan_layer(s)
    cfg = build.make_config(s, None, plan, None, 0)
    assert cfg["architecture"] == "amd64" and cfg["os"] == "linux" and cfg["created"] == "1970-01-01T00:00:00Z"
    c = cfg["config"]
    assert c["Env"] == [build.DEFAULT_PATH_ENV, "A=1"]
    assert c["Entrypoint"] == ["/usr/bin/tool"] and c["Cmd"] == ["--help"]
    assert c["WorkingDir"] == "/w" and c["User"] == "1000:1000" and c["Labels"] == {"l": "v"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert cfg["history"] == [{"created": "1970-01-01T00:00:00Z", "created_by": build.CREATED_BY,
                               "empty_layer": True}]
    for text in (json.dumps(cfg), ):
        assert os.uname().nodename not in text


@pytest.mark.parametrize("bad", [{"exposed_ports": ["http"]}, {"exposed_ports": ["70000"]}, {"volumes": ["rel"]},
                                 {"env": {"A=B": "x"}}])
def test_config_refuses(root, bad):
    s = spec(root, **bad)
    with pytest.raises(BuildError):
        build.make_config(s, None, build.plan_layer(s), None, 0)


# -- builds into a store ------------------------------------------------------------------------------------------


def test_check_mode_writes_nothing_then_build_then_idempotent(root, tmp_path):
    store = Store(str(tmp_path / "store"))
    s = spec(root, executables=["tool"], cmd=["tool"])
    dry = build.build_image(store, s, check_mode=True, want_diff=True)
    assert dry.changed and dry.before is None and not os.path.exists(store.root)
    assert dry.actions[0].startswith("would build 127.0.0.1:5000/me/tools:1 sha256:")
    real = build.build_image(store, s, want_diff=True)
    assert real.changed and real.after == dry.after
    assert store.resolve("127.0.0.1:5000/me/tools:1")["digest"] == real.after
    assert real.image["digest"] == real.after and real.image["platform"] == "linux/amd64"
    assert real.diff == {"before": {"digest": None, "files": []}, "after": {"digest": real.after, "files": real.files}}
    again = build.build_image(store, s, check_mode=True)
    assert not again.changed and again.after == real.after
    again = build.build_image(store, s, want_diff=True)
    assert not again.changed and again.diff["before"] == again.diff["after"]
    # The stored image is what the store (and skopeo/umoci) read: config/manifest parse, layer lists our files.
    image = store.image("127.0.0.1:5000/me/tools:1")
    assert image.manifest["mediaType"] == oci.OCI_MANIFEST and image.config["config"]["Cmd"] == ["tool"]
    # The new layer is stored as a blob only (as umoci repack leaves unpacking to umoci unpack); the folder that
    # containers use is made from it on first use by store_layers.ensure_unpacked, with the same tree.
    diff_id = real.image["layers"][0]["diff_id"]
    assert not store.has_layer(diff_id) and os.listdir(store.layers_dir) == [] and os.listdir(store.tmp_dir) == []
    layer_dir = ensure_unpacked(store, image)[0]
    assert layer_dir == store.layer_dir(diff_id)
    assert os.readlink(os.path.join(layer_dir, "lib64")) == "usr/lib64"
    assert os.path.isfile(os.path.join(layer_dir, "usr/bin/tool")) and not real.notes
    members = layer_members(store, real.image)
    assert ["/" + n.rstrip("/") for n in members] == real.files
    assert all(m.mtime == 0 and m.uname == "" for m in members.values())


def test_build_without_base_in_a_fresh_interpreter_imports_little(root, tmp_path):
    """What a short build command loads. The layer is written as a blob only: neither the pull engine
    (concurrent.futures, logging) nor the extractor (image/layers: extract, tarstream, decompress) is imported, nor tarfile (diff mode only), datetime,
    tempfile, shutil or json (the store's documents go through _json), nor hashlib (OpenSSL's SHA-256 comes from
    _hashlib directly, the documents' digests too once it is loaded); the digest is the in-process one."""
    mu = "ansible_collections.dockerless.containers.plugins.module_utils"
    code = (
        f"from {mu}.image.build import BuildSpec, build_image\n"
        f"from {mu}.image.store import Store\n"
        f"spec = BuildSpec(name='me/tools:1', executables=['tool'], host_root={root!r}, source_date_epoch=5)\n"
        f"result = build_image(Store({str(tmp_path / 'fresh')!r}), spec)\n"
        f"heavy = sorted(m for m in ('{mu}.image.pull', '{mu}.image.layers.extract', '{mu}.image.layers.tarstream',\n"
        f"                            '{mu}.image.layers.decompress', 'concurrent.futures', 'logging', 'tarfile',\n"
        "                            'datetime', 'argparse', 'tempfile', 'shutil', 'json', 'hashlib', '_sha256',\n"
        "                            '_sha2') if m in sys.modules)\n"
        "import json\n"
        "print(json.dumps({'heavy': heavy, 'digest': result.after, 'diff_id': result.image['layers'][0]['diff_id']}))\n"
    )
    out = run_fresh(code)
    got = json.loads(out.stdout)
    assert got["heavy"] == [], f"a build without base imports {got['heavy']}"
    here = build.build_image(Store(str(tmp_path / "here")), spec(root, executables=["tool"], source_date_epoch=5))
    assert got["digest"] == here.after
    assert not Store(str(tmp_path / "fresh")).has_layer(got["diff_id"])


def test_reproducible_across_stores_and_mtimes(root, tmp_path):
    s = spec(root, executables=["tool"], files=[FileSpec(src="/srv/site", dest="/srv/site")])
    a = build.build_image(Store(str(tmp_path / "a")), s)
    os.utime(os.path.join(root, "srv/site/index.html"), (1, 1))
    os.utime(os.path.join(root, "usr/bin/tool"), (2**31, 2**31))
    b = build.build_image(Store(str(tmp_path / "b")), s)
    assert a.after == b.after and a.image["config_digest"] == b.image["config_digest"]
    with open(os.path.join(root, "srv/site/index.html"), "r+b") as fh:
        fh.write(b"X")  # same size, one byte different
    fh_changed = build.build_image(Store(str(tmp_path / "a")), s, want_diff=True)
    assert fh_changed.changed and fh_changed.after != a.after and fh_changed.before == a.after
    assert fh_changed.diff["before"]["files"] == fh_changed.diff["after"]["files"]
    later = build.build_image(Store(str(tmp_path / "c")), spec(root, executables=["tool"], source_date_epoch=1700000000))
    assert later.image["created"] == "2023-11-14T22:13:20Z"


def test_diff_shows_file_list_change(root, tmp_path):
    store = Store(str(tmp_path / "s"))
    build.build_image(store, spec(root, files=[FileSpec(src="/etc/app.conf", dest="/etc/app.conf")]))
    r = build.build_image(store, spec(root, files=[FileSpec(src="/etc/app.conf", dest="/etc/other.conf")]),
                          check_mode=True, want_diff=True)
    assert r.changed
    assert r.diff["before"]["files"] == ["/etc", "/etc/app.conf"]
    assert r.diff["after"]["files"] == ["/etc", "/etc/other.conf"]


def test_failed_build_tags_nothing(root, tmp_path):
    store = Store(str(tmp_path / "s"))
    ok = build.build_image(store, spec(root, executables=["tool"]))
    with pytest.raises(BuildError, match="libgone.so"):
        make_elf(os.path.join(root, "usr/bin/broken"), interp=INTERP, needed=("libgone.so",))
        build.build_image(store, spec(root, executables=["tool", "broken"]))
    assert store.resolve("127.0.0.1:5000/me/tools:1")["digest"] == ok.after
    with pytest.raises(BuildError, match="digest"):
        build.build_image(store, spec(root, name="x@sha256:" + "a" * 64, executables=["tool"]))


def test_base_image_layers_and_config(root, tmp_path):
    store = Store(str(tmp_path / "s"))
    base = build.build_image(store, spec(root, name="base:1", executables=["tool"], env={"A": "base", "KEEP": "1"},
                                         cmd=["base-cmd"], labels={"from": "base"}))
    # A base whose layer folder is gone (e.g. built, or removed): the build needs only its blobs.
    base_dir = store.layer_dir(base.image["layers"][0]["diff_id"])
    assert not os.path.exists(base_dir)
    child = build.build_image(store, spec(root, name="child:1", base="base:1",
                                          files=[FileSpec(src="/etc/app.conf", dest="/etc/app.conf")],
                                          env={"A": "child"}, entrypoint=["/usr/bin/tool"], labels={"mine": "1"}))
    img = store.image("docker.io/library/child:1")
    assert [la["digest"] for la in img.layers[:-1]] == [la["digest"] for la in base.image["layers"]]
    assert len(img.layers) == 2
    cfg = img.config["config"]
    assert cfg["Env"] == [build.DEFAULT_PATH_ENV, "KEEP=1", "A=child"]
    assert cfg["Entrypoint"] == ["/usr/bin/tool"] and "Cmd" not in cfg  # ENTRYPOINT resets an inherited CMD
    assert cfg["Labels"] == {"from": "base", "mine": "1"}
    assert len(img.config["history"]) == 2 and img.config["rootfs"]["diff_ids"][0] == base.image["layers"][0]["diff_id"]
    assert child.files == ["/etc", "/etc/app.conf"]
    # Nothing unpacked by the build; what container_run resolves the image with unpacks both layers, in order.
    assert not any(store.has_layer(la["diff_id"]) for la in img.layers)
    lower = image_for_run(store.root, "child:1", pull="never").lower_dirs
    assert lower == [store.layer_dir(la["diff_id"]) for la in reversed(img.layers)]
    assert os.path.isfile(os.path.join(lower[0], "etc/app.conf")) and not os.path.exists(os.path.join(lower[0], "usr"))
    assert os.path.isfile(os.path.join(base_dir, "usr/bin/tool"))
    with pytest.raises(BuildError, match="not in the store"):
        build.build_image(store, spec(root, name="c:2", base="nothere:1"))


def test_base_architecture_must_match(root, tmp_path):
    store = Store(str(tmp_path / "s"))
    make_elf(os.path.join(root, "usr/bin/armtool"), machine=183)
    build.build_image(store, spec(root, name="armbase:1", executables=["armtool"]))
    with pytest.raises(BuildError, match="executables are linux/amd64, the base image is linux/arm64"):
        build.build_image(store, spec(root, name="mix:1", base="armbase:1", executables=["tool"]))


def test_docker_media_types_of_base_become_oci(root, tmp_path):
    store = Store(str(tmp_path / "s"))
    layer = io.BytesIO()
    with gzip.GzipFile(fileobj=layer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    raw = gzip.decompress(layer.getvalue())
    ldigest, lsize = store.put_blob(layer.getvalue())
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [build._digest(raw)]}}).encode()
    cdigest, csize = store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.DOCKER_MANIFEST,
                           "config": {"mediaType": oci.DOCKER_CONFIG, "digest": cdigest, "size": csize},
                           "layers": [{"mediaType": oci.DOCKER_LAYER_GZIP, "digest": ldigest, "size": lsize}]}).encode()
    mdigest, msize = store.put_blob(manifest)
    store.tag("docker.io/library/dockerbase:1", {"mediaType": oci.DOCKER_MANIFEST, "digest": mdigest, "size": msize})
    r = build.build_image(store, spec(root, name="ontop:1", base="dockerbase:1", executables=["tool"]))
    img = store.image("docker.io/library/ontop:1")
    assert img.manifest["layers"][0] == {"mediaType": oci.OCI_LAYER_GZIP, "digest": ldigest, "size": lsize}
    assert img.config["config"]["Cmd"] == ["sh"] and r.image["config"]["cmd"] == ["sh"]


def test_zstd_layers(root, tmp_path):
    store = Store(str(tmp_path / "s"))
    r = build.build_image(store, spec(root, executables=["tool"], compression="zstd"))
    assert r.image["layers"][0]["media_type"] == oci.OCI_LAYER_ZSTD
    g = build.build_image(store, spec(root, name="g:1", executables=["tool"]))
    assert g.image["layers"][0]["diff_id"] == r.image["layers"][0]["diff_id"]  # same tar, other compression


def test_build_commits_each_blob_after_its_fsync_and_the_index_last(root, tmp_path, monkeypatch):
    """The layer's, config's, manifest's and index.json's fsyncs run together, but nothing is renamed before its
    own fsync returned, the three blobs are in blobs/ before index.json names them, and the store's folder is
    fsynced after index.json's rename (the real calls run; they are only recorded in order)."""
    store = Store(str(tmp_path / "store"))
    store.ensure()
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        real_fsync(fd)
        events.append(("fsync", path))

    def rename(src, dst):
        real_rename(src, dst)
        events.append(("rename", os.path.abspath(src), dst))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    result = build.build_image(store, spec(root, executables=["tool"]))
    synced = set()
    renamed = []
    for event in events:
        if event[0] == "fsync":
            synced.add(event[1])
        else:
            assert event[1] in synced, f"{event[1]} renamed before its fsync returned"
            renamed.append(os.path.basename(event[2]))
    digests = [result.image["layers"][0]["digest"], result.image["config_digest"], result.after]
    assert renamed == [d.split(":")[1] for d in digests] + ["index.json"]
    assert events[-1] == ("fsync", store.root)
    assert os.listdir(store.tmp_dir) == []
