# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of whiteouts.merge (the flattening of layer folders into one plain tree), on folders made by extract_layer.
"""

from __future__ import annotations

import os
import stat

import pytest
from test_extract import IS_ROOT, T0, E, layer_dir
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge


def test_flatten_applies_whiteouts_and_opaque_dirs(tmp_path):
    l1 = layer_dir(
        tmp_path,
        "l1",
        E("etc/", "d"),
        E("etc/passwd", data=b"root:x:0:0"),
        E("etc/target", data=b"target"),
        E("etc/link", "l", link="target"),
        E("d/", "d"),
        E("d/old", data=b"old"),
        E("d/sub/", "d"),
        E("d/sub/deep", data=b"deep"),
        E("keep/", "d"),
        E("keep/x", data=b"x"),
        E("flip", data=b"file"),
        E("flop/", "d"),
        E("flop/inner", data=b"i"),
    )
    l2 = layer_dir(
        tmp_path,
        "l2",
        E("etc/", "d"),
        E("etc/.wh.link"),
        E("d/", "d"),
        E("d/new", data=b"new"),
        E("d/.wh..wh..opq"),  # after a same-layer file: hides only lower layers
        E(".wh.keep"),
        E("flip/", "d"),
        E("flip/now-a-dir", data=b"d"),
        E("flop", data=b"now a file"),
        E("same", data=b"same-layer"),
        E(".wh.same"),
    )
    out = tmp_path / "out"
    merge([l1, l2], str(out))
    m = tree_manifest(str(out))
    assert sorted(m) == [
        ".",
        "d",
        "d/new",
        "etc",
        "etc/passwd",
        "etc/target",
        "flip",
        "flip/now-a-dir",
        "flop",
        "same",
    ]
    assert (out / "etc/target").read_bytes() == b"target"  # .wh.link removed the link, not its target
    assert (out / "flop").read_bytes() == b"now a file"
    assert (out / "same").read_bytes() == b"same-layer"
    assert all(not name.startswith(".wh.") for path in m for name in path.split("/"))


def test_flatten_keeps_hardlinks_symlinks_modes_and_is_independent(tmp_path):
    l1 = layer_dir(
        tmp_path,
        "l1",
        E("bin/", "d", mtime=T0 - 50),
        E("bin/busybox", data=b"bb" * 5000, mode=0o755),
        E("bin/sh", "h", link="bin/busybox"),
        E("bin/ls", "h", link="bin/busybox"),
        E("sbin/", "d"),
        E("sbin/init", "h", link="bin/busybox"),
        E("lib", "l", link="usr/lib"),
        E("usr/lib/", "d"),
        E("usr/lib/x.so", data=b"elf"),
        E("fifo", "p", mode=0o640),
        E("t", data=b"t", mode=0o4711, mtime=T0 - 7),
    )
    l2 = layer_dir(tmp_path, "l2", E("bin/", "d", mtime=T0 - 60), E("bin/extra", data=b"e"))
    out = tmp_path / "out"
    merge([l1, l2], str(out))
    ino = {p: os.lstat(out / p).st_ino for p in ("bin/busybox", "bin/sh", "bin/ls", "sbin/init")}
    assert len(set(ino.values())) == 1
    assert ino["bin/busybox"] != os.lstat(os.path.join(l1, "bin/busybox")).st_ino  # copied, not linked
    assert os.lstat(out / "bin/busybox").st_nlink == 4
    assert os.readlink(out / "lib") == "usr/lib"
    assert stat.S_ISFIFO(os.lstat(out / "fifo").st_mode)
    st = os.lstat(out / "t")
    assert stat.S_IMODE(st.st_mode) == 0o4711 and st.st_mtime == T0 - 7
    assert os.stat(out / "bin").st_mtime == T0 - 60  # the upper directory's time, set after its content
    with open(out / "bin/busybox", "ab") as fh:
        fh.write(b"changed")
    assert (tmp_path / "l1/bin/busybox").read_bytes() == b"bb" * 5000
    m = tree_manifest(str(out))
    assert m["bin/sh"][4] == "bin/busybox" and m["bin/extra"][4] == ""


def test_flatten_copies_sparse_files_sparsely(tmp_path):
    layer = tmp_path / "l1"
    layer.mkdir()
    with open(layer / "sparse", "wb") as fh:
        fh.seek(64 << 20)
        fh.write(b"end")
    out = tmp_path / "out"
    merge([str(layer)], str(out))
    st = os.lstat(out / "sparse")
    assert st.st_size == (64 << 20) + 3
    assert st.st_blocks * 512 < (1 << 20)
    with open(out / "sparse", "rb") as fh:
        fh.seek(64 << 20)
        assert fh.read() == b"end"


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (trusted.* xattrs, owners, devices)")
def test_flatten_as_root_keeps_owners_xattrs_devices_and_refuses_overlay_xattrs(tmp_path):
    l1 = layer_dir(
        tmp_path,
        "l1",
        E("d/", "d", mode=0o2750, uid=5, gid=6, pax={"SCHILY.xattr.user.dir": "lower"}),
        E("d/f", data=b"f", uid=7, gid=8, mode=0o6755, pax={"SCHILY.xattr.trusted.t": "1"}),
        E("d/l", "l", link="f", uid=9, gid=10),
        E("dev/tty", "c", mode=0o620, gid=5, major=5, minor=0),
    )
    l2 = layer_dir(tmp_path, "l2", E("d/", "d", mode=0o755, uid=1, gid=2, pax={"SCHILY.xattr.user.up": "u"}))
    os.setxattr(os.path.join(l2, "d"), "trusted.overlay.origin", b"forged")  # never copied into a rootfs
    out = tmp_path / "out"
    merge([l1, l2], str(out))
    m = tree_manifest(str(out))
    assert m["d"][1:4] == (0o755, 1, 2)  # upper directory attributes win, as in an overlay mount
    assert m["d/f"][1:4] == (0o6755, 7, 8)
    assert m["d/l"][2:5] == (9, 10, "f")
    assert m["dev/tty"] == ("c", 0o620, 0, 5, "", "5:0")
    assert os.getxattr(out / "d/f", "trusted.t") == b"1"
    assert sorted(os.listxattr(out / "d")) == ["user.up"]  # lower-only attributes dropped, overlay ones never copied


def test_flatten_dest_rules_and_cleanup(tmp_path):
    l1 = layer_dir(tmp_path, "l1", E("a", data=b"a"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("x")
    with pytest.raises(UnpackError, match="not empty"):
        merge([l1], str(tmp_path / "full"))
    assert os.listdir(tmp_path / "full") == ["x"]
    with pytest.raises(UnpackError, match="cannot open"):
        merge([l1, str(tmp_path / "missing")], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
