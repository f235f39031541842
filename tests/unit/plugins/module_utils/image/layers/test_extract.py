# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of extract.extract_layer: content, metadata and diff_id, root-only metadata and the two forms, umoci as
an oracle.

Every tar is built here (tarfile, or raw bytes for what tarfile refuses to write), extracted on the real
filesystem, and checked with tree_manifest/lstat. The helpers (``E``, ``tar_bytes``, ``extract``, ``layer_dir``)
are shared by the other layer tests. The hostile cases of HOSTILE.md live in test_unpack_hostile.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile

import pytest
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError, UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import (
    MEDIA_TYPE_TAR,
    MEDIA_TYPE_TAR_GZIP,
    MEDIA_TYPE_TAR_ZSTD,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge

IS_ROOT = os.geteuid() == 0
T0 = 1_600_000_000
KIND = {
    "f": tarfile.REGTYPE,
    "d": tarfile.DIRTYPE,
    "l": tarfile.SYMTYPE,
    "h": tarfile.LNKTYPE,
    "c": tarfile.CHRTYPE,
    "b": tarfile.BLKTYPE,
    "p": tarfile.FIFOTYPE,
}


def E(name, kind="f", data=b"", mode=None, uid=0, gid=0, mtime=T0, link="", major=0, minor=0, pax=None):
    """One tar entry: (TarInfo, data)."""
    ti = tarfile.TarInfo(name)
    ti.type = KIND[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "d" else 0o644)
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    ti.uname = ti.gname = ""
    ti.linkname = link
    ti.devmajor, ti.devminor = major, minor
    ti.size = len(data) if kind == "f" else 0
    if pax:
        ti.pax_headers = dict(pax)
    return ti, data


def tar_bytes(*entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def extract(data: bytes, dest, media=MEDIA_TYPE_TAR, **kw):
    return extract_layer(io.BytesIO(data), media, str(dest), **kw)


def layer_dir(tmp_path, name, *entries, as_root=None):
    dest = tmp_path / name
    extract(tar_bytes(*entries), dest, as_root=as_root)
    return str(dest)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_extract_regular_tree_and_diff_id(tmp_path):
    data = tar_bytes(
        E("./", "d", mode=0o755),
        E("etc/", "d", mode=0o755),
        E("etc/hostname", data=b"box\n", mode=0o644),
        E("etc/motd", data=b"x" * 70000, mode=0o600),
        E("bin/", "d", mode=0o755),
        E("bin/sh", data=b"#!sh\n", mode=0o755),
        E("bin/ash", "h", link="bin/sh"),
        E("bin/rel", "l", link="sh"),
        E("bin/abs", "l", link="/bin/sh"),
        E("bin/dangling", "l", link="../nowhere"),
        E("run/fifo", "p", mode=0o600),
        E("empty", data=b""),
    )
    res = extract(data, tmp_path / "root")
    assert res.diff_id == sha(data)
    assert res.size == len(data)
    assert res.entries == 12
    root = tmp_path / "root"
    assert (root / "etc/hostname").read_bytes() == b"box\n"
    assert (root / "etc/motd").read_bytes() == b"x" * 70000
    assert stat.S_IMODE(os.lstat(root / "etc/motd").st_mode) == 0o600
    assert os.readlink(root / "bin/rel") == "sh"
    assert os.readlink(root / "bin/abs") == "/bin/sh"
    assert os.readlink(root / "bin/dangling") == "../nowhere"
    assert os.lstat(root / "bin/ash").st_ino == os.lstat(root / "bin/sh").st_ino
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert (root / "empty").read_bytes() == b""
    m = tree_manifest(str(root))
    assert m["bin/sh"][4] == "bin/ash"  # hardlink group: smallest path
    assert m["bin/ash"][5] == hashlib.sha256(b"#!sh\n").hexdigest()
    assert m["run"][0] == "d"  # implicit parent
    for path in ("etc/hostname", "bin/sh", "bin/rel", "run/fifo"):
        assert os.lstat(root / path).st_mtime == T0


def test_directory_times_are_set_last_and_modes_kept(tmp_path):
    data = tar_bytes(
        E("d/", "d", mode=0o750, mtime=T0 - 100),
        E("d/f", data=b"1", mtime=T0),
        E("d/sub/", "d", mode=0o1777, mtime=T0 - 200),
        E("d/sub/g", data=b"2"),
        E("ro/", "d", mode=0o555, mtime=T0 - 300),
        E("ro/inside", data=b"3"),
        E("odd", data=b"4", mode=0o666),
    )
    root = tmp_path / "root"
    extract(data, root)
    assert os.stat(root / "d").st_mtime == T0 - 100
    assert os.stat(root / "d/sub").st_mtime == T0 - 200
    assert os.stat(root / "ro").st_mtime == T0 - 300
    assert stat.S_IMODE(os.stat(root / "d").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(root / "d/sub").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(root / "odd").st_mode) == 0o666  # wider than the umask: fchmod'ed


def test_later_entries_replace_earlier_ones(tmp_path):
    data = tar_bytes(
        E("a", data=b"first"),
        E("a", data=b"second"),
        E("b/", "d"),
        E("b/child", data=b"c"),
        E("b", data=b"b is a file now"),
        E("c", data=b"c is a file"),
        E("c/", "d"),
        E("c/x", data=b"x"),
        E("d", "l", link="a"),
        E("d", data=b"d replaces the link"),
    )
    root = tmp_path / "root"
    extract(data, root)
    assert (root / "a").read_bytes() == b"second"
    assert (root / "b").read_bytes() == b"b is a file now"
    assert (root / "c/x").read_bytes() == b"x"
    assert not os.path.islink(root / "d") and (root / "d").read_bytes() == b"d replaces the link"
    assert (root / "a").read_bytes() == b"second"  # writing d did not go through the link


def test_dest_must_be_empty_or_missing(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep").write_text("mine")
    with pytest.raises(UnpackError, match="not empty"):
        extract(tar_bytes(E("f")), tmp_path / "full")
    assert (tmp_path / "full/keep").read_text() == "mine"
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "alias")
    with pytest.raises(UnpackError, match="not a directory we can open"):
        extract(tar_bytes(E("f")), tmp_path / "alias")
    assert os.listdir(tmp_path / "real") == []
    (tmp_path / "empty").mkdir()
    extract(tar_bytes(E("f", data=b"1")), tmp_path / "empty")
    assert (tmp_path / "empty/f").read_bytes() == b"1"


def test_layer_root_mode(tmp_path):
    (tmp_path / "private").mkdir(mode=0o700)
    extract(tar_bytes(E("f", data=b"1")), tmp_path / "private")
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o755  # not the caller's temporary 0700
    extract(tar_bytes(E("./", "d", mode=0o750, mtime=T0 - 9), E("f", data=b"1")), tmp_path / "explicit")
    st = os.stat(tmp_path / "explicit")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o750, T0 - 9)


def test_empty_files_get_their_metadata(tmp_path):
    data = tar_bytes(
        E("e1", mode=0o600, mtime=T0 - 1),
        E("e2", mode=0o777, pax={"SCHILY.xattr.user.k": "v", "atime": "1500000000"}),
        E("e2", mode=0o640),  # replaces
    )
    extract(data, tmp_path / "root")
    st = os.lstat(tmp_path / "root/e1")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime, st.st_size) == (0o600, T0 - 1, 0)
    assert stat.S_IMODE(os.lstat(tmp_path / "root/e2").st_mode) == 0o640
    assert os.listxattr(tmp_path / "root/e2") == []
    extract(tar_bytes(E("e", mode=0o777, pax={"SCHILY.xattr.user.k": "v"})), tmp_path / "r2")
    assert stat.S_IMODE(os.lstat(tmp_path / "r2/e").st_mode) == 0o777
    assert os.getxattr(tmp_path / "r2/e", "user.k") == b"v"


def test_error_in_existing_empty_dest_leaves_it_empty(tmp_path):
    (tmp_path / "root").mkdir()
    with pytest.raises(UnpackError):
        extract(tar_bytes(E("a/b/c", data=b"x"), E("bad", "h", link="missing")), tmp_path / "root")
    assert os.listdir(tmp_path / "root") == []


class _FailingRaw(io.RawIOBase):
    """A raw stream that fails the way the caller's verifying tee does when the blob digest is wrong."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        self._data = io.BytesIO(data)
        self._fail_at = fail_at

    def readable(self):
        return True

    def read(self, n=-1):
        if self._data.tell() >= self._fail_at:
            raise DigestMismatchError("blob sha256:abc: digest mismatch. Pull again.")
        return self._data.read(min(n, 65536) if n and n > 0 else 65536)


@pytest.mark.parametrize("media", [MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, MEDIA_TYPE_TAR_ZSTD])
def test_errors_of_the_raw_stream_propagate_and_clean_up(tmp_path, media):
    data = tar_bytes(*[E(f"d{i}/f{j}", data=os.urandom(2000)) for i in range(20) for j in range(20)])
    if media == MEDIA_TYPE_TAR_GZIP:
        data = gzip.compress(data)
    elif media == MEDIA_TYPE_TAR_ZSTD:
        data = subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    with pytest.raises(DigestMismatchError):
        extract_layer(_FailingRaw(data, len(data) // 2), media, str(tmp_path / "root"))
    assert not (tmp_path / "root").exists()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (chown, mknod, trusted.* xattrs)")
def test_owners_setuid_xattrs_and_devices_as_root(tmp_path):
    cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # VFS_CAP_REVISION_2, effective, cap_net_bind_service
    cap_text = cap.decode("utf-8", "surrogateescape")
    data = tar_bytes(
        E("usr/bin/", "d"),
        E("usr/bin/su", data=b"su", mode=0o4755, uid=0, gid=0),
        E("usr/bin/mine", data=b"m", mode=0o6750, uid=1000, gid=1001),
        E("usr/bin/ping", data=b"p", mode=0o755, uid=1000, pax={"SCHILY.xattr.security.capability": cap_text}),
        E("usr/bin/tagged", data=b"t", pax={"SCHILY.xattr.user.tag": "v1", "SCHILY.xattr.trusted.note": "n"}),
        E("usr/bin/empty-suid", data=b"", mode=0o6755, uid=1000, gid=1000),
        E("srv/", "d", mode=0o2775, uid=0, gid=1000),
        E("srv/file", data=b"f", uid=0, gid=0),
        E("srv/sub/", "d", mode=0o755, uid=0, gid=0),
        E("srv/inherit", data=b"i", uid=0, gid=1000),
        E("home/u/", "d", mode=0o700, uid=1000, gid=1000),
        E("home/u/link", "l", link="/etc/shadow", uid=1000, gid=1000, mtime=T0 - 5),
        E("dev/null", "c", mode=0o666, major=1, minor=3),
        E("dev/loop0", "b", mode=0o660, gid=6, major=7, minor=0),
        E("dev/big", "c", major=4095, minor=(1 << 20) - 1),
    )
    root = tmp_path / "root"
    res = extract(data, root)
    assert res.skipped == 0
    st = os.lstat(root / "usr/bin/su")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o4755, 0)
    st = os.lstat(root / "usr/bin/mine")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o6750, 1000, 1001)  # chown, then chmod
    assert os.getxattr(root / "usr/bin/ping", "security.capability") == cap  # set after the chown cleared caps
    assert os.lstat(root / "usr/bin/ping").st_uid == 1000
    assert os.getxattr(root / "usr/bin/tagged", "user.tag") == b"v1"
    assert os.getxattr(root / "usr/bin/tagged", "trusted.note") == b"n"
    st = os.lstat(root / "usr/bin/empty-suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size) == (0o6755, 1000, 1000, 0)
    assert (os.lstat(root / "srv").st_gid, stat.S_IMODE(os.lstat(root / "srv").st_mode)) == (1000, 0o2775)
    assert os.lstat(root / "srv/file").st_gid == 0  # not the setgid parent's group
    assert os.lstat(root / "srv/inherit").st_gid == 1000
    assert stat.S_IMODE(os.lstat(root / "srv/sub").st_mode) == 0o755  # no inherited setgid bit
    st = os.lstat(root / "home/u/link")
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1000, 1000, T0 - 5)
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(root / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and st.st_gid == 6 and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 0)
    st = os.lstat(root / "dev/big")
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (4095, (1 << 20) - 1)


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (mknod of whiteouts, trusted.overlay.opaque)")
def test_overlay_form_as_root(tmp_path):
    data = tar_bytes(
        E("etc/", "d"),
        E("etc/.wh.passwd"),
        E("etc/keep", data=b"k"),
        E("etc/.wh.keep"),  # the same layer's file survives its whiteout
        E(".wh.later"),
        E("later", data=b"l"),  # ... in either order
        E("opq/", "d"),
        E("opq/a", data=b"a"),
        E("opq/.wh..wh..opq"),
        E("wh0", "c", major=0, minor=0),  # already an overlay whiteout
        E("dir/.wh..wh.plnk/", "d"),  # AUFS metadata is ignored
    )
    root = tmp_path / "root"
    res = extract(data, root)
    st = os.lstat(root / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not os.path.lexists(root / "etc/.wh.passwd")
    assert (root / "etc/keep").read_bytes() == b"k"
    assert (root / "later").read_bytes() == b"l"
    assert os.getxattr(root / "opq", "trusted.overlay.opaque") == b"y"
    assert (root / "opq/a").read_bytes() == b"a"
    assert stat.S_ISCHR(os.lstat(root / "wh0").st_mode)
    assert not os.path.lexists(root / "dir/.wh..wh.plnk")
    assert res.notes and "AUFS" in res.notes[0]


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: checks a real overlayfs mount of the layer folders")
def test_layer_folders_work_as_overlay_lowerdirs(tmp_path):
    l1 = layer_dir(tmp_path, "l1", E("a", data=b"a"), E("d/", "d"), E("d/old", data=b"o"), E("gone", data=b"g"))
    l2 = layer_dir(tmp_path, "l2", E(".wh.gone"), E("d/", "d"), E("d/.wh..wh..opq"), E("d/new", data=b"n"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={l2}:{l1}", str(mnt)], check=True)
    try:
        assert sorted(os.listdir(mnt)) == ["a", "d"]
        assert sorted(os.listdir(mnt / "d")) == ["new"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    out = tmp_path / "flat"
    merge([l1, l2], str(out))
    assert {k: v[0] for k, v in tree_manifest(str(out)).items()} == {".": "d", "a": "f", "d": "d", "d/new": "f"}


def test_plain_form_without_root_privileges(tmp_path):
    """as_root=False: whiteouts stay marker files, devices are skipped and counted; flatten reads this form."""
    data = tar_bytes(
        E("etc/", "d"),
        E("etc/.wh.passwd"),
        E("opq/", "d"),
        E("opq/.wh..wh..opq"),
        E("opq/a", data=b"a"),
        E("dev/null", "c", major=1, minor=3),
        E("x", data=b"x", mode=0o000, pax={"SCHILY.xattr.trusted.note": "n"}),
        E("locked/", "d", mode=0o000),
        E("locked/in", data=b"in"),
    )
    root = tmp_path / "root"
    res = extract(data, root, as_root=False)
    assert os.lstat(root / "etc/.wh.passwd").st_size == 0
    assert os.path.isfile(root / "opq/.wh..wh..opq")
    assert not os.path.lexists(root / "dev/null")
    assert res.skipped == 2  # the device and the trusted.* xattr
    assert stat.S_IMODE(os.lstat(root / "x").st_mode) == 0o400  # u+r so flatten can read it
    assert stat.S_IMODE(os.lstat(root / "locked").st_mode) == 0o700


def _run_as_nobody(fn):
    """Run fn() in a forked child with uid/gid 65534 and return what it returns (JSON), or raise its error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = json.dumps({"ok": fn()})
        except BaseException as exc:
            out = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        out = json.loads(fh.read() or b'{"error": "child died"}')
    os.waitpid(pid, 0)
    if "error" in out:
        raise AssertionError(out["error"])
    return out["ok"]


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch to an unprivileged user for real")
def test_really_unprivileged_extract_and_flatten():
    # pytest's tmp_path lives below a 0700 root-owned directory: use a directory nobody can reach.
    work = pathlib.Path(tempfile.mkdtemp(prefix="dockerless-unpack-"))
    os.chown(work, 65534, 65534)
    try:
        _unprivileged(work)
    finally:
        shutil.rmtree(work)


def _unprivileged(work):
    lower = tar_bytes(E("etc/", "d"), E("etc/passwd", data=b"p"), E("d/", "d"), E("d/old", data=b"o"))
    upper = tar_bytes(
        E("etc/", "d"),
        E("etc/.wh.passwd"),
        E("d/", "d", mode=0o555),
        E("d/.wh..wh..opq"),
        E("d/new", data=b"n", uid=0),
        E("dev/null", "c", major=1, minor=3),
        E("f", data=b"f", mode=0o4755, pax={"SCHILY.xattr.user.k": "v"}),
        E("empty", mode=0o640),
    )

    def job():
        r1 = extract(lower, work / "l1")
        r2 = extract(upper, work / "l2")
        merge([str(work / "l1"), str(work / "l2")], str(work / "out"))
        m = tree_manifest(str(work / "out"))
        return {
            "skipped": [r1.skipped, r2.skipped],
            "paths": sorted(m),
            "f": list(m["f"][:4]),
            "xattr": os.getxattr(work / "out/f", "user.k").decode(),
        }

    got = _run_as_nobody(job)
    assert got["skipped"] == [0, 1]
    assert got["paths"] == [".", "d", "d/new", "empty", "etc", "f"]
    assert got["f"] == ["f", 0o4755, 65534, 65534]
    assert got["xattr"] == "v"


def _oci_layout(path, layers: list[bytes]) -> None:
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    descs = [dict(put(gzip.compress(layer)), mediaType=MEDIA_TYPE_TAR_GZIP) for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
    }
    cdesc = dict(put(json.dumps(config).encode()), mediaType="application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cdesc,
        "layers": descs,
    }
    mdesc = dict(put(json.dumps(manifest).encode()), mediaType="application/vnd.oci.image.manifest.v1+json")
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": "t"}
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [mdesc]}))


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: umoci unpack and our extraction both create devices and owners")
@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed (scripts/install-deps.sh)")
def test_same_tree_as_umoci_unpack(tmp_path):
    layers = [
        tar_bytes(
            E("./", "d", mode=0o755),
            E("bin/", "d"),
            E("bin/busybox", data=b"BB" * 3000, mode=0o755),
            E("bin/sh", "h", link="bin/busybox"),
            E("bin/su", data=b"su", mode=0o4755),
            E("etc/", "d"),
            E("etc/passwd", data=b"root:x:0:0\n"),
            E("etc/shadow", data=b"s", mode=0o640, gid=42),
            E("etc/alt", "l", link="/etc/passwd"),
            E("home/", "d"),
            E("home/u/", "d", mode=0o700, uid=1000, gid=1000),
            E("home/u/.profile", data=b"p", uid=1000, gid=1000),
            E("var/", "d"),
            E("var/cache/", "d"),
            E("var/cache/a", data=b"a"),
            E("var/cache/sub/", "d"),
            E("var/cache/sub/b", data=b"b"),
            E("tmp/", "d", mode=0o1777),
            E("dev/", "d"),
            E("dev/null", "c", mode=0o666, major=1, minor=3),
            E("run/", "d"),
            E("run/fifo", "p"),
            E("opt/", "d"),
            E("opt/app", data=b"app v1"),
            E("lnk", "l", link="opt"),
        ),
        tar_bytes(
            E("etc/", "d"),
            E("etc/.wh.alt"),
            E("etc/passwd", data=b"root:x:0:0\nu:x:1000:1000\n"),
            E("var/", "d"),
            E("var/cache/", "d", mode=0o700),
            E("var/cache/.wh..wh..opq"),
            E("var/cache/fresh", data=b"fresh"),
            E("opt", data=b"opt is a file now"),
            E(".wh.lnk"),
            E("srv/", "d", mode=0o2775, gid=50),
            E("srv/data", data=b"d", gid=50),
        ),
        tar_bytes(
            E("bin/", "d"),
            E("bin/.wh.su"),
            E("home/u/", "d", mode=0o750, uid=1000, gid=1000),
            E("home/u/.bashrc", data=b"rc", uid=1000, gid=1000),
            E("usr/bin/", "d"),
            E("usr/bin/tool", data=b"tool", mode=0o2755, gid=50),
            E("usr/bin/tool2", "h", link="usr/bin/tool"),
        ),
    ]
    layout = tmp_path / "layout"
    _oci_layout(layout, layers)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(bundle)], check=True, capture_output=True)
    dirs = []
    for i, layer in enumerate(layers):
        res = extract(gzip.compress(layer), tmp_path / f"layer{i}", MEDIA_TYPE_TAR_GZIP)
        assert res.diff_id == sha(layer)
        dirs.append(str(tmp_path / f"layer{i}"))
    ours = tmp_path / "ours"
    merge(dirs, str(ours))
    theirs = tree_manifest(str(bundle / "rootfs"))
    mine = tree_manifest(str(ours))
    assert mine == theirs
    assert "var/cache/a" not in mine and mine["var/cache/fresh"][0] == "f"
    assert mine["opt"][0] == "f" and "lnk" not in mine and "bin/su" not in mine
    for path in ("bin/busybox", "home/u/.profile", "var/cache/fresh", "usr/bin/tool"):
        assert os.lstat(ours / path).st_mtime_ns == os.lstat(bundle / "rootfs" / path).st_mtime_ns
