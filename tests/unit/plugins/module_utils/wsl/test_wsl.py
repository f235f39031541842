# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""wsl_export engine: the streamed flattening against whiteouts.merge (an independent implementation) for layer
folders in overlay and plain form, Microsoft's rules, default users, INI files, determinism, import_to."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile

import pytest
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.wsl import export as wsl


def layer_tar(entries: list[tuple]) -> bytes:
    """A gzip layer written with Python's tarfile (not our writer). Entries:
    ("file", name, data, mode, uid, gid) ("dir", name, mode) ("symlink", name, target) ("hardlink", name, target)
    ("whiteout", name) ("opaque", dirname) ("fifo", name)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            kind, name = e[0], e[1]
            if kind == "whiteout":
                d, base = os.path.split(name)
                info = tarfile.TarInfo(os.path.join(d, ".wh." + base))
                tar.addfile(info, io.BytesIO(b""))
                continue
            if kind == "opaque":
                tar.addfile(tarfile.TarInfo(os.path.join(name, ".wh..wh..opq")), io.BytesIO(b""))
                continue
            info = tarfile.TarInfo(name)
            info.mtime = 946684800
            if kind == "file":
                data = e[2]
                info.size = len(data)
                info.mode = e[3] if len(e) > 3 else 0o644
                info.uid, info.gid = (e[4], e[5]) if len(e) > 5 else (0, 0)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = e[2] if len(e) > 2 else 0o755
                info.uid, info.gid = (e[3], e[4]) if len(e) > 4 else (0, 0)
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e[2]
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e[2]
                tar.addfile(info)
            elif kind == "fifo":
                info.type, info.mode = tarfile.FIFOTYPE, 0o600
                tar.addfile(info)
    return raw.getvalue()


def put_image(store: Store, name: str, layers: list[list[tuple]], created: str = "2000-01-01T00:00:00Z") -> None:
    """Store an image made of these layers (the store unpacks them on demand through store_layers.ensure_unpacked)."""
    descs, diff_ids = [], []
    for entries in layers:
        raw = layer_tar(entries)
        blob = gzip.compress(raw, mtime=0)
        digest, size = store.put_blob(blob)
        descs.append({"mediaType": oci.OCI_LAYER_GZIP, "digest": digest, "size": size})
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created, "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdigest, csize = store.put_blob(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": {"mediaType": oci.OCI_CONFIG, "digest": cdigest, "size": csize},
                           "layers": descs}).encode()
    mdigest, msize = store.put_blob(manifest)
    store.tag(name, {"mediaType": oci.OCI_MANIFEST, "digest": mdigest, "size": msize})


LAYERS = [
    [
        ("dir", "etc"), ("file", "etc/hostname", b"one\n"), ("file", "etc/resolv.conf", b"nameserver 9.9.9.9\n"),
        ("file", "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/bin:/sbin/nologin\n"),
        ("file", "etc/group", b"root:x:0:\n"),
        ("file", "etc/shadow", b"root:$6$salt$hash:19000:0:99999:7:::\nbin:*:19000::::::\n", 0o640, 0, 42),
        ("dir", "usr"), ("dir", "usr/bin"), ("file", "usr/bin/tool", b"v1", 0o755),
        ("hardlink", "usr/bin/tool-hard", "usr/bin/tool"), ("file", "usr/bin/su", b"su", 0o4755),
        ("symlink", "bin", "usr/bin"), ("symlink", "etc/abs", "/etc/hostname"),
        ("dir", "opaque"), ("file", "opaque/lower.txt", b"lower"), ("dir", "opaque/sub"), ("file", "opaque/sub/deep", b"d"),
        ("dir", "gone"), ("file", "gone/a", b"a"), ("dir", "keep"), ("file", "keep/deleted", b"x"),
        ("file", "keep/kept", b"k"), ("file", "flip", b"file"), ("dir", "home"),
        ("dir", "home/user", 0o750, 1000, 1000), ("file", "home/user/notes", b"n", 0o640, 1000, 1000),
        ("dir", "tmp", 0o1777), ("dir", "boot"), ("file", "boot/vmlinuz-6.1.0", b"kernel"),
        ("file", "boot/initrd.img-6.1.0", b"initrd"), ("fifo", "run-fifo"),
    ],
    [
        ("whiteout", "keep/deleted"), ("whiteout", "gone"), ("file", "opaque/upper.txt", b"upper"),
        ("opaque", "opaque"), ("file", "etc/hostname", b"two\n"), ("dir", "flip"), ("file", "flip/inside", b"i"),
        ("file", "same/survives", b"s"), ("whiteout", "same/survives"),
    ],
    [
        ("dir", "gone"), ("file", "gone/new", b"new"), ("file", "usr/bin/tool", b"v3", 0o755),
    ],
]


def tar_tree(path: str, tmp_path, name: str) -> dict:
    """Extract an archive with GNU tar (the oracle for what WSL's importer sees) and describe the tree."""
    dest = tmp_path / name
    dest.mkdir()
    subprocess.run(["tar", "-xpf", path, "-C", str(dest), "--numeric-owner", "--same-owner"], check=True)
    return tree_manifest(str(dest))


def flatten_tree(store: Store, name: str, tmp_path, as_root: bool) -> dict:
    image = store.image(name)
    dest = tmp_path / "flat"
    merge([store.layer_dir(la["diff_id"]) for la in image.layers], str(dest), as_root=as_root)
    return tree_manifest(str(dest))


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store"))
    put_image(s, "docker.io/test/layers:1", LAYERS)
    return s


@pytest.mark.root
def test_streamed_flatten_matches_unpack_flatten(store, tmp_path):
    """Overlay-form layer folders (whiteout devices, opaque xattrs): our tar extracts to the same tree as
    whiteouts.merge builds from the same folders — types, modes, owners, links, contents, hardlink groups."""
    res = wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "out.tar")))
    ours = tar_tree(res.dest, tmp_path, "ours")
    theirs = flatten_tree(store, "docker.io/test/layers:1", tmp_path, as_root=True)
    ours.pop("."), theirs.pop(".")
    assert ours == theirs
    # The points of the exercise, spelled out.
    assert "keep/deleted" not in ours and "keep/kept" in ours
    assert sorted(p for p in ours if p.startswith("gone")) == ["gone", "gone/new"]
    assert sorted(p for p in ours if p.startswith("opaque")) == ["opaque", "opaque/upper.txt"]
    assert ours["flip"][0] == "d" and "flip/inside" in ours
    assert ours["same/survives"][0] == "f"  # a same-layer whiteout does not hide it
    assert ours["usr/bin/su"][1] == 0o4755 and ours["tmp"][1] == 0o1777
    assert ours["home/user/notes"][2:4] == (1000, 1000)
    assert ours["usr/bin/tool-hard"][5] == hashlib.sha256(b"v1").hexdigest()  # the layer-1 content it linked
    assert ours["run-fifo"][0] == "p"


def test_plain_form_layers(store, tmp_path):
    """Layer folders unpacked without root keep .wh. files and the opaque marker: the view is the same."""
    image = store.image("docker.io/test/layers:1")
    dirs = []
    for i, la in enumerate(image.layers):
        d = tmp_path / f"plain{i}"
        with store.open_blob(la["digest"]) as raw:
            extract_layer(raw, la["media_type"], str(d), as_root=False)
        dirs.append(str(d))
    tree = wsl.MergedTree(dirs)
    paths = set(tree.paths())
    assert "keep/deleted" not in paths and "keep/kept" in paths
    assert {p for p in paths if p.startswith("opaque")} == {"opaque", "opaque/upper.txt"}
    assert {p for p in paths if p.startswith("gone")} == {"gone", "gone/new"}
    assert "same/survives" in paths
    assert not any(".wh." in p for p in paths)
    assert tree.read("etc/hostname") == b"two\n" and tree.read("etc/abs") == b"two\n"


def test_rules_warn_then_fix(store, tmp_path):
    opts = wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "a.tar.gz"), wsl_conf={"boot": {"systemd": True}})
    res = wsl.export_image(store, opts, check_mode=True)
    text = "\n".join(res.warnings)
    assert "/etc/resolv.conf is in the image" in text
    assert "password hashes for root" in text and "bin" not in text.split("password hashes for")[1].split(";")[0]
    assert "kernel or initramfs (/boot/initrd.img-6.1.0, /boot/vmlinuz-6.1.0)" in text
    assert res.fixed == [] and not os.path.exists(opts.dest)

    opts.fix = ["all"]
    res = wsl.export_image(store, opts)
    assert res.warnings == [] and len(res.fixed) == 3
    with tarfile.open(res.dest) as tar:
        names = tar.getnames()
        shadow = tar.extractfile("etc/shadow").read()
        shadow_info = tar.getmember("etc/shadow")
    assert "etc/resolv.conf" not in names and not any(n.startswith("boot/") and n != "boot" for n in names)
    assert shadow == b"root:*:19000:0:99999:7:::\nbin:*:19000::::::\n"
    assert (shadow_info.mode, shadow_info.uid, shadow_info.gid) == (0o640, 0, 42)


def test_root_user_and_config_permissions(tmp_path):
    store = Store(str(tmp_path / "s"))
    put_image(store, "docker.io/test/noroot:1", [[
        ("dir", "etc"), ("file", "etc/passwd", b"daemon:x:1:1::/:/bin/false\n"),
        ("file", "etc/wsl.conf", b"[automount]\nenabled = false\n", 0o600, 1000, 1000),
        ("dir", "usr"), ("dir", "usr/bin"), ("file", "usr/bin/bash", b"#", 0o755),
    ]])
    dest = str(tmp_path / "x.tar")
    res = wsl.export_image(store, wsl.ExportOptions(image="test/noroot:1", dest=dest), check_mode=True)
    assert any("no root user with uid 0" in w for w in res.warnings)
    assert any("/etc/wsl.conf is 1000:1000 0600" in w for w in res.warnings)
    res = wsl.export_image(store, wsl.ExportOptions(image="test/noroot:1", dest=dest, fix=["root_user", "config_permissions"]))
    assert res.warnings == []
    with tarfile.open(dest) as tar:
        assert tar.extractfile("etc/passwd").read() == b"root:x:0:0:root:/root:/usr/bin/bash\ndaemon:x:1:1::/:/bin/false\n"
        conf = tar.getmember("etc/wsl.conf")
        assert (conf.mode, conf.uid, conf.gid) == (0o644, 0, 0)
        assert tar.getmember("root").mode == 0o700


def test_systemd_units_masked_only_when_systemd_is_on(tmp_path):
    store = Store(str(tmp_path / "s"))
    put_image(store, "docker.io/test/sd:1", [[
        ("dir", "etc"), ("file", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        ("dir", "usr"), ("dir", "usr/lib"), ("dir", "usr/lib/systemd"), ("dir", "usr/lib/systemd/system"),
        ("file", "usr/lib/systemd/system/systemd-resolved.service", b"[Unit]\n"),
        ("file", "usr/lib/systemd/system/tmp.mount", b"[Unit]\n"),
        ("dir", "etc/systemd"), ("dir", "etc/systemd/system"),
        ("symlink", "etc/systemd/system/tmp.mount", "/dev/null"),  # already masked
    ]])
    dest = str(tmp_path / "sd.tar")
    off = wsl.export_image(store, wsl.ExportOptions(image="test/sd:1", dest=dest), check_mode=True)
    assert not any("systemd" in w for w in off.warnings)
    on = wsl.ExportOptions(image="test/sd:1", dest=dest, wsl_conf={"boot": {"systemd": True}})
    res = wsl.export_image(store, on, check_mode=True)
    assert any("systemd-resolved.service (system)" in w and "tmp.mount" not in w for w in res.warnings)
    on.fix = ["systemd_units"]
    res = wsl.export_image(store, on)
    with tarfile.open(dest) as tar:
        m = tar.getmember("etc/systemd/system/systemd-resolved.service")
        assert m.issym() and m.linkname == "/dev/null"


def test_default_user_and_conf_files(store, tmp_path):
    opts = wsl.ExportOptions(
        image="test/layers:1", dest=str(tmp_path / "d.wsl"), default_user="dev",
        wsl_conf={"boot": {"systemd": True}, "network": {"hostname": "dev"}},
        distribution_conf={"oobe": {"defaultName": "layers", "defaultUid": 1000}, "shortcut": {"enabled": False}},
    )
    res = wsl.export_image(store, opts)
    assert res.format == "wsl"
    with open(res.dest, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"  # .wsl is a gzip-compressed tar
    with tarfile.open(res.dest) as tar:
        read = {n: tar.extractfile(n).read().decode() for n in
                ("etc/passwd", "etc/group", "etc/shadow", "etc/wsl.conf", "etc/wsl-distribution.conf")}
        home = tar.getmember("home/dev")
        conf = tar.getmember("etc/wsl.conf")
    assert read["etc/passwd"].endswith("dev:x:1000:1000::/home/dev:/bin/sh\n")
    assert read["etc/group"].endswith("dev:x:1000:\n")
    assert read["etc/shadow"].endswith("dev:!:::::::\n")
    assert wsl.parse_ini(read["etc/wsl.conf"]) == {"boot": {"systemd": "true"}, "network": {"hostname": "dev"},
                                                   "user": {"default": "dev"}}
    assert wsl.parse_ini(read["etc/wsl-distribution.conf"]) == {
        "oobe": {"defaultName": "layers", "defaultUid": "1000"}, "shortcut": {"enabled": "false"}}
    assert (home.mode, home.uid, home.gid) == (0o750, 1000, 1000) and home.isdir()
    assert (conf.mode, conf.uid, conf.gid) == (0o644, 0, 0)


@pytest.mark.parametrize(
    "user,uid,message",
    [("Bad Name", 1000, "not a valid user name"), ("dev", 0, "regular user id"), ("dev", 1, "uid 1 belongs to bin")],
)
def test_default_user_refusals(store, tmp_path, user, uid, message):
    with pytest.raises(DockerlessError, match=message):
        wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "u.tar"),
                                                  default_user=user, default_uid=uid))


def test_existing_user_is_kept(store, tmp_path):
    res = wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "u.tar"),
                                                    default_user="bin"), check_mode=True)
    assert any("user bin already exists in the image with uid 1" in w for w in res.warnings)


def test_ini_merge_and_render():
    existing = b"# comment\n[boot]\nsystemd=false\ncommand = echo hi\n[interop]\nenabled=true\n"
    merged = wsl.merge_ini(existing, {"boot": {"systemd": True, "command": None}, "user": {"default": "dev"}}, "t")
    assert merged == {"boot": {"systemd": "true"}, "interop": {"enabled": "true"}, "user": {"default": "dev"}}
    assert wsl.render_ini(merged, "h") == (b"# h\n\n[boot]\nsystemd = true\n\n[interop]\nenabled = true\n\n"
                                           b"[user]\ndefault = dev\n")
    for bad in ({"a]": {"k": 1}}, {"s": {"k=": 1}}, {"s": {"k": "a\nb"}}, {"s": {"k": [1]}}, {"s": "notadict"}):
        with pytest.raises(DockerlessError):
            wsl.merge_ini(None, bad, "t")


def test_distribution_conf_checks(store, tmp_path):
    opts = wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "x.wsl"),
                             distribution_conf={"oobe": {"command": "/etc/oobe.sh"}, "extra": {"a": 1},
                                                "shortcut": {"colour": "red"}})
    res = wsl.export_image(store, opts, check_mode=True)
    text = "\n".join(res.warnings)
    assert "section [extra] is not one WSL reads" in text and "[shortcut] colour is not a key" in text
    assert "oobe.defaultName" in text
    opts.distribution_conf = {"oobe": {"defaultUid": "1000"}}
    with pytest.raises(DockerlessError, match="defaultUid must be an integer"):
        wsl.export_image(store, opts, check_mode=True)


@pytest.mark.parametrize(
    "dest,fmt,expected",
    [("a.tar", None, "tar"), ("a.TAR.GZ", None, "tar.gz"), ("a.tgz", None, "tar.gz"), ("a.wsl", None, "wsl"),
     ("a.img", "tar", "tar")],
)
def test_detect_format(dest, fmt, expected):
    assert wsl.detect_format(dest, fmt) == expected


def test_detect_format_refuses():
    with pytest.raises(DockerlessError, match="extension"):
        wsl.detect_format("a.zip", None)


def test_deterministic_idempotent_check_mode_and_mode(store, tmp_path):
    dest = str(tmp_path / "r.tar.gz")
    opts = wsl.ExportOptions(image="test/layers:1", dest=dest, default_user="dev")
    dry = wsl.export_image(store, opts, check_mode=True)
    assert dry.changed and dry.before is None and not os.path.exists(dest)
    first = wsl.export_image(store, opts)
    assert first.changed and first.sha256 == dry.sha256
    assert hashlib.sha256(open(dest, "rb").read()).hexdigest() == first.sha256 and first.size == os.path.getsize(dest)
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    again = wsl.export_image(store, opts)
    assert not again.changed and again.before == again.sha256 == first.sha256
    assert not wsl.export_image(store, opts, check_mode=True).changed
    # Another store holding the same image gives the same bytes.
    other = Store(str(tmp_path / "other"))
    put_image(other, "docker.io/test/layers:1", LAYERS)
    twin = wsl.export_image(other, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "t.tar.gz"),
                                                     default_user="dev"))
    assert twin.sha256 == first.sha256
    # Only the mode differs: a change, and no rewrite.
    os.chmod(dest, 0o644)
    inode = os.stat(dest).st_ino
    fixed = wsl.export_image(store, opts)
    assert fixed.changed and stat.S_IMODE(os.stat(dest).st_mode) == 0o600 and os.stat(dest).st_ino == inode
    # Any option that changes content changes the sha256.
    other_user = wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=dest, default_user="ops"))
    assert other_user.changed and other_user.sha256 != first.sha256
    # No temp files left beside dest.
    assert sorted(os.listdir(tmp_path)) == sorted({"store", "other", "r.tar.gz", "t.tar.gz"})


def test_mtime_from_image_created_or_epoch(store, tmp_path):
    res = wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "m.tar")))
    with tarfile.open(res.dest) as tar:
        assert {m.mtime for m in tar.getmembers()} == {946684800}
    res = wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "n.tar"),
                                                    source_date_epoch=5))
    with tarfile.open(res.dest) as tar:
        assert {m.mtime for m in tar.getmembers()} == {5}


def test_missing_image_and_bad_dest(store, tmp_path):
    with pytest.raises(DockerlessError, match="not in the store"):
        wsl.export_image(store, wsl.ExportOptions(image="nothere:1", dest=str(tmp_path / "x.tar")))
    with pytest.raises(DockerlessError, match="does not exist"):
        wsl.export_image(store, wsl.ExportOptions(image="test/layers:1", dest=str(tmp_path / "no/dir/x.tar")))


def test_import_to_without_wsl_fails_before_writing(store, tmp_path):
    dest = str(tmp_path / "i.tar")
    opts = wsl.ExportOptions(image="test/layers:1", dest=dest, import_to={"name": "dev", "install_location": "C:\\WSL\\dev"})
    with pytest.raises(DockerlessError, match=r"wsl.exe is not reachable .* run there: wsl.exe --import dev C:\\WSL\\dev"):
        wsl.export_image(store, opts, interop_paths=(str(tmp_path / "no-interop"),))
    assert not os.path.exists(dest)


def test_import_to_with_a_stand_in_wsl_exe(store, tmp_path, monkeypatch):
    """wsl.exe can't run on this Linux host; a stand-in script on PATH records the command line we build and
    answers --list like the real one (UTF-16LE)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    fake = bindir / "wsl.exe"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$1" = "--list" ]; then printf "U\\0b\\0u\\0n\\0t\\0u\\0\\r\\0\\n\\0"; fi\n'
    )
    fake.chmod(0o755)
    interop = tmp_path / "WSLInterop"
    interop.write_text("enabled\n")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    dest = str(tmp_path / "i.tar")
    opts = wsl.ExportOptions(image="test/layers:1", dest=dest, import_to={"name": "dev", "install_location": "C:\\W"})
    res = wsl.export_image(store, opts, check_mode=True, interop_paths=(str(interop),))
    assert res.imported and res.changed and not os.path.exists(dest)
    assert log.read_text() == "--list --quiet\n"
    res = wsl.export_image(store, opts, interop_paths=(str(interop),))
    assert res.imported and log.read_text().splitlines()[-1] == f"--import dev C:\\W {dest}"
    opts.import_to = {"name": "Ubuntu", "install_location": "C:\\W"}
    res = wsl.export_image(store, opts, interop_paths=(str(interop),))
    assert not res.imported and not res.changed  # registered already: nothing to do


def test_links_in_the_image_never_reach_host_files(tmp_path):
    """/etc/passwd planted as a link out of the image: edits read inside the image only, the host file stays out."""
    secret = tmp_path / "host-secret"
    secret.write_text("host:x:0:0:do-not-leak:/:/bin/sh\n")
    store = Store(str(tmp_path / "s"))
    put_image(store, "docker.io/test/links:1", [[
        ("dir", "etc"), ("symlink", "etc/passwd", "../../../../../../../.." + str(secret)),
        ("symlink", "etc/group", str(secret)), ("symlink", "escape", "/"),
    ]])
    res = wsl.export_image(store, wsl.ExportOptions(image="test/links:1", dest=str(tmp_path / "l.tar"),
                                                    default_user="dev"))
    data = open(res.dest, "rb").read()
    assert b"do-not-leak" not in data
    with tarfile.open(res.dest) as tar:
        assert tar.extractfile("etc/passwd").read() == (
            b"root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/sh\n")
        assert tar.getmember("escape").issym() and tar.getmember("escape").linkname == "/"
