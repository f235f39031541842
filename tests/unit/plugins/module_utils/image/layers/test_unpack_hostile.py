# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hostile layers (HOSTILE.md "Layer extraction"): each case is a tar crafted here, extracted for real.

A ``victim/`` directory (a file, a subdirectory) sits beside the extraction root in every test; its names, contents,
modes, owners, mtimes and ctimes must be unchanged afterwards, and nothing else may appear beside the root. Tests
that expect an error also check that the partial output was removed.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest
from test_extract import IS_ROOT, T0, E, tar_bytes
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import (
    MEDIA_TYPE_TAR,
    MEDIA_TYPE_TAR_GZIP,
    MEDIA_TYPE_TAR_ZSTD,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import (
    UnpackLimits,
    extract_layer,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge


def raw_header(name=b"f", typ=b"0", size=0, fields=None, magic=b"ustar\x0000") -> bytes:
    """A ustar header block with a correct checksum; ``fields`` maps offsets to raw bytes (to break things)."""
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % T0
    h[156:157] = typ
    h[257:265] = magic
    for offset, value in (fields or {}).items():
        h[offset : offset + len(value)] = value
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def blocks(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


END = bytes(1024)


def pax_member(records: bytes, name=b"f", data=b"x") -> bytes:
    return raw_header(b"PaxHeader", b"x", len(records)) + blocks(records) + raw_header(name, b"0", len(data)) + blocks(data)


def _snapshot(path: Path) -> dict:
    out = {}
    for rel, desc in tree_manifest(str(path)).items():
        st = os.lstat(path / rel)
        out[rel] = desc + (st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)
    return out


class Area:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.victim = base / "victim"
        self.victim.mkdir()
        (self.victim / "f").write_bytes(b"victim data")
        (self.victim / "sub").mkdir()
        (self.victim / "sub/g").write_bytes(b"more")
        self.before = _snapshot(self.victim)
        self.root = base / "root"
        self.allowed = {"victim", "root"}

    def extract(self, data: bytes, media=MEDIA_TYPE_TAR, dest=None, **kw):
        dest = Path(dest or self.root)
        self.allowed.add(dest.name)
        return extract_layer(io.BytesIO(data), media, str(dest), **kw)

    def fails(self, data: bytes, match: str, media=MEDIA_TYPE_TAR, **kw) -> UnpackError:
        with pytest.raises(UnpackError, match=match) as info:
            self.extract(data, media, **kw)
        assert not self.root.exists(), "partial output was not removed"
        self.intact()
        return info.value

    def intact(self) -> None:
        assert _snapshot(self.victim) == self.before, "victim/ beside the root was touched"
        assert set(os.listdir(self.base)) <= self.allowed, "something was written beside the root"


@pytest.fixture
def area(tmp_path):
    a = Area(tmp_path)
    yield a
    a.intact()


# --------------------------------------------------------------------------------------------------------------
# Names: `..` and absolute paths are clamped into the root


@pytest.mark.parametrize(
    "name, lands",
    [
        ("../victim/x", "victim/x"),
        ("/../victim/x", "victim/x"),
        ("../../pwned", "pwned"),
        ("/etc/passwd", "etc/passwd"),
        ("a/../../victim/y", "victim/y"),
        ("./././../z", "z"),
    ],
)
def test_dotdot_and_absolute_names_are_clamped(area, name, lands):
    area.extract(tar_bytes(E(name, data=b"payload")))
    assert (area.root / lands).read_bytes() == b"payload"
    area.intact()


def test_absolute_name_of_the_real_victim_lands_inside(area):
    area.extract(tar_bytes(E(str(area.victim / "f"), data=b"overwritten?")))
    assert (area.root / str(area.victim / "f").lstrip("/")).read_bytes() == b"overwritten?"
    area.intact()


# --------------------------------------------------------------------------------------------------------------
# Symlinks: writing through them stays inside the root


@pytest.mark.parametrize(
    "entries, lands",
    [
        ([E("loop", "l", link="../victim"), E("loop/file", data=b"p")], "victim/file"),
        ([E("a", "l", link="b"), E("b", "l", link="../victim"), E("a/file", data=b"p")], "victim/file"),
        ([E("a", "l", link="b/c"), E("b/", "d"), E("b/c", "l", link="/../../victim"), E("a/file", data=b"p")], "victim/file"),
        ([E("etc2", "l", link="/etc"), E("etc2/passwd", data=b"p")], "etc/passwd"),
        ([E("up", "l", link="../../../../../../.."), E("up/escape", data=b"p")], "escape"),
        ([E("d/", "d"), E("d/l", "l", link="../../victim"), E("d/l/sub/g", data=b"p")], "victim/sub/g"),
    ],
    ids=["one-hop", "two-hops", "hop-into-absolute", "absolute", "many-dotdots", "nested"],
)
def test_symlink_then_write_through_it(area, entries, lands):
    area.extract(tar_bytes(*entries))
    assert (area.root / lands).read_bytes() == b"p"
    area.intact()


def test_absolute_symlink_to_the_real_victim(area):
    area.extract(tar_bytes(E("v", "l", link=str(area.victim)), E("v/f", data=b"p"), E("v/sub/g", data=b"q")))
    inside = area.root / str(area.victim).lstrip("/")
    assert (inside / "f").read_bytes() == b"p"
    assert (inside / "sub/g").read_bytes() == b"q"
    assert os.readlink(area.root / "v") == str(area.victim)
    area.intact()


def test_regular_file_replaces_a_symlink_instead_of_writing_through(area):
    area.extract(tar_bytes(E("f", "l", link=str(area.victim / "f")), E("f", data=b"p")))
    assert not os.path.islink(area.root / "f") and (area.root / "f").read_bytes() == b"p"
    area.intact()


def planted_links(area) -> list:
    """A first layer's symlinks to the victim (absolute and relative), for a second layer to write through."""
    return [E("evil", "l", link=str(area.victim)), E("rel", "l", link="../victim"),
            E("opq", "l", link=str(area.victim)), E("gone", "l", link=str(area.victim))]


def through_planted_links() -> list:
    """A second layer writing under planted_links' names: files, a whiteout, an opaque directory."""
    return [E("evil/", "d"), E("evil/f", data=b"p"), E("evil/.wh.sub"), E("rel/new", data=b"q"), E("opq/", "d"),
            E("opq/.wh..wh..opq"), E("gone/.wh.f")]


def test_link_planted_in_layer_one_written_through_in_layer_two(area):
    l1 = area.base / "l1"
    l2 = area.base / "l2"
    area.extract(tar_bytes(*planted_links(area)), dest=l1)
    area.extract(
        tar_bytes(*through_planted_links()),
        dest=l2,
        as_root=False,
    )
    assert os.path.isdir(l2 / "evil") and not os.path.islink(l2 / "evil")
    out = area.base / "out"
    area.allowed.add("out")
    merge([str(l1), str(l2)], str(out))
    assert (out / "evil/f").read_bytes() == b"p" and not os.path.islink(out / "evil")
    assert (out / "rel/new").read_bytes() == b"q"
    assert os.listdir(out / "opq") == [] and os.listdir(out / "gone") == []
    area.intact()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: overlay-form whiteouts and opaque xattrs")
def test_flatten_never_follows_lower_links_in_overlay_form(area):
    l1, l2 = area.base / "l1", area.base / "l2"
    area.extract(tar_bytes(E("evil", "l", link=str(area.victim)), E("opq", "l", link=str(area.victim))), dest=l1)
    area.extract(
        tar_bytes(E("evil/", "d"), E("evil/.wh.f"), E("evil/sub", data=b"s"), E("opq/", "d"), E("opq/.wh..wh..opq")),
        dest=l2,
    )
    out = area.base / "out"
    area.allowed.add("out")
    merge([str(l1), str(l2)], str(out))
    assert tree_manifest(str(out))["evil/sub"][0] == "f"
    assert os.listdir(out / "opq") == []
    area.intact()


# --------------------------------------------------------------------------------------------------------------
# Type flips inside one layer: no cached parent is trusted


def test_dir_replaced_by_symlink_to_root(area):
    area.extract(
        tar_bytes(E("foo/", "d"), E("foo/a", data=b"a"), E("foo", "l", link="/"), E("foo/tmp/f", data=b"p"))
    )
    assert os.readlink(area.root / "foo") == "/"
    assert (area.root / "tmp/f").read_bytes() == b"p"
    area.intact()


def test_dir_replaced_by_symlink_out_then_written(area):
    area.extract(
        tar_bytes(
            E("a/", "d"),
            E("a/b/", "d"),
            E("a/b/c/", "d"),
            E("a/b/c/f1", data=b"1"),
            E("a/b", "l", link="../../victim"),
            E("a/b/c/f2", data=b"2"),
            E("a/b", "l", link=str(area.victim / "sub")),
            E("a/b/f3", data=b"3"),
        )
    )
    assert (area.root / "victim/c/f2").read_bytes() == b"2"
    assert (area.root / str(area.victim / "sub/f3").lstrip("/")).read_bytes() == b"3"
    assert os.readlink(area.root / "a/b") == str(area.victim / "sub")
    assert not (area.root / "victim/c/f1").exists()  # f1 went away with the directory a/b that was replaced
    area.intact()


def test_symlink_replaced_by_dir(area):
    area.extract(tar_bytes(E("foo", "l", link=str(area.victim)), E("foo/", "d", mode=0o700, uid=0), E("foo/x", data=b"x")))
    assert os.path.isdir(area.root / "foo") and not os.path.islink(area.root / "foo")
    assert (area.root / "foo/x").read_bytes() == b"x"
    area.intact()


# --------------------------------------------------------------------------------------------------------------
# Hardlinks


def test_hardlink_out_of_the_root_is_refused(area):
    area.fails(tar_bytes(E("h", "h", link="../victim/f")), "hardlink target")
    area.fails(tar_bytes(E("h", "h", link=str(area.victim / "f"))), "hardlink target")


def test_hardlink_to_a_sibling_sharing_the_prefix(area):
    sibling = area.base / "rootx"
    sibling.mkdir()
    (sibling / "f").write_bytes(b"s")
    area.allowed.add("rootx")
    area.fails(tar_bytes(E("h", "h", link="../rootx/f")), "hardlink target")
    assert os.lstat(sibling / "f").st_nlink == 1


@pytest.mark.parametrize("target", ["../victim", "ABS"])
def test_hardlink_through_a_symlinked_dir(area, target):
    link = str(area.victim) if target == "ABS" else target
    area.fails(tar_bytes(E("d", "l", link=link), E("h", "h", link="d/f")), "hardlink target")
    assert os.lstat(area.victim / "f").st_nlink == 1


def test_hardlink_to_a_symlink_then_chmod_cve_2021_32760(area):
    data = tar_bytes(
        E("s", "l", link=str(area.victim / "f")),
        E("h", "h", link="s", mode=0o777, uid=1000, gid=1000),
        E("s2", "l", link="../victim/f"),
        E("h2", "h", link="s2", mode=0o4777),
    )
    area.extract(data)
    assert os.path.islink(area.root / "h") and os.lstat(area.root / "h").st_ino == os.lstat(area.root / "s").st_ino
    assert os.readlink(area.root / "h2") == "../victim/f"
    area.intact()


def test_hardlink_to_a_directory_is_refused(area):
    area.fails(tar_bytes(E("d/", "d"), E("h", "h", link="d")), "directory")


def test_hardlink_inside_the_root_works(area):
    area.extract(tar_bytes(E("a/f", data=b"f"), E("b/h", "h", link="/a/../a/f"), E("b/h", "h", link="a/f")))
    assert os.lstat(area.root / "b/h").st_ino == os.lstat(area.root / "a/f").st_ino


# --------------------------------------------------------------------------------------------------------------
# Metadata calls never follow links


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: owners and trusted.* xattrs on links")
def test_link_metadata_never_reaches_the_target(area):
    data = tar_bytes(
        E("l", "l", link=str(area.victim / "f"), uid=1000, gid=1000, pax={"SCHILY.xattr.trusted.x": "1"}),
        E("d", "l", link=str(area.victim), uid=1000),
        E("n", "l", link=str(area.victim / "f")),
        E("n", "p", mode=0o777, uid=1000),  # a fifo replaces the link, its mode is not applied to the target
        E("x", "l", link=str(area.victim / "sub")),
        E("x/", "d", mode=0o777, uid=1000),
        E("suid", data=b"s", mode=0o4755, uid=1000, gid=1000),
    )
    area.extract(data)
    st = os.lstat(area.root / "l")
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1000, 1000, T0)
    assert os.getxattr(area.root / "l", "trusted.x", follow_symlinks=False) == b"1"
    assert stat.S_ISFIFO(os.lstat(area.root / "n").st_mode)
    assert stat.S_IMODE(os.lstat(area.root / "x").st_mode) == 0o777
    st = os.lstat(area.root / "suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o4755, 1000)
    area.intact()


def test_link_metadata_never_reaches_the_target_unprivileged_form(area):
    data = tar_bytes(
        E("l", "l", link=str(area.victim / "f"), pax={"SCHILY.xattr.user.x": "1"}),
        E("n", "l", link=str(area.victim / "f")),
        E("n", "p", mode=0o777),
    )
    res = area.extract(data, as_root=False)
    assert os.lstat(area.root / "l").st_mtime == T0
    assert res.skipped == 1  # user.* xattrs can't exist on symlinks
    area.intact()


# --------------------------------------------------------------------------------------------------------------
# Whiteouts


@pytest.mark.parametrize("name", [".wh.", ".wh..", "etc/.wh..", ".wh...", "etc/.wh."])
@pytest.mark.parametrize("as_root", [None, False])
def test_bad_whiteouts_are_rejected(area, name, as_root):
    area.fails(tar_bytes(E("etc/", "d"), E(name)), "whiteout", as_root=as_root)


def test_whiteout_prefix_on_a_directory_is_rejected(area):
    area.fails(tar_bytes(E(".wh.x/y", data=b"y")), "whiteout name used as a directory")


@pytest.mark.parametrize("as_root", [None, False])
def test_whiteout_of_a_link_removes_the_link_not_its_target(area, as_root):
    if as_root is None and not IS_ROOT:
        pytest.skip("overlay form needs root")
    l1, l2 = area.base / "l1", area.base / "l2"
    area.extract(
        tar_bytes(
            E("target", data=b"t"),
            E("link", "l", link="target"),
            E("alink", "l", link=str(area.victim / "f")),
            E("dlink", "l", link=str(area.victim)),
        ),
        dest=l1,
        as_root=as_root,
    )
    area.extract(tar_bytes(E(".wh.link"), E(".wh.alink"), E(".wh.dlink")), dest=l2, as_root=as_root)
    out = area.base / "out"
    area.allowed.add("out")
    merge([str(l1), str(l2)], str(out))
    assert sorted(os.listdir(out)) == ["target"]
    assert (out / "target").read_bytes() == b"t"
    area.intact()


@pytest.mark.parametrize("as_root", [None, False])
@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_marker_hides_only_lower_layers(area, as_root, marker_first):
    if as_root is None and not IS_ROOT:
        pytest.skip("overlay form needs root")
    l1, l2, l3 = area.base / "l1", area.base / "l2", area.base / "l3"
    area.extract(tar_bytes(E("d/", "d"), E("d/low", data=b"l"), E("top", data=b"t")), dest=l1, as_root=as_root)
    same = [E("d/same", data=b"s"), E("d/sub/x", data=b"x")]
    marker = [E("d/.wh..wh..opq")]
    area.extract(tar_bytes(*(marker + same if marker_first else same + marker)), dest=l2, as_root=as_root)
    area.extract(tar_bytes(E(".wh..wh..opq"), E("only", data=b"o")), dest=l3, as_root=as_root)  # opaque root
    out = area.base / "out"
    area.allowed.add("out")
    merge([str(l1), str(l2)], str(out))
    assert sorted(tree_manifest(str(out))) == [".", "d", "d/same", "d/sub", "d/sub/x", "top"]
    out2 = area.base / "out2"
    area.allowed.add("out2")
    merge([str(l1), str(l2), str(l3)], str(out2))
    assert sorted(os.listdir(out2)) == ["only"]
    area.intact()


# --------------------------------------------------------------------------------------------------------------
# Devices


@pytest.mark.parametrize("major, minor", [(4096, 0), (0, 1 << 20), (2097151, 1)])
@pytest.mark.parametrize("as_root", [None, False])
def test_device_numbers_out_of_range(area, major, minor, as_root):
    area.fails(tar_bytes(E("dev/x", "c", major=major, minor=minor)), "out of range", as_root=as_root)
    area.fails(tar_bytes(E("dev/y", "b", major=major, minor=minor)), "out of range", as_root=as_root)


def test_devices_are_skipped_and_counted_without_root(area):
    res = area.extract(tar_bytes(E("dev/null", "c", major=1, minor=3), E("dev/sda", "b", major=8)), as_root=False)
    assert res.skipped == 2 and not (area.root / "dev/null").exists()
    assert any("root" in n for n in res.notes)


# --------------------------------------------------------------------------------------------------------------
# Bombs: bounded, clean error, partial output removed


def _bytes_out(exc: UnpackError) -> int:
    return int(re.search(r"\((\d+) bytes out of", str(exc)).group(1))


@pytest.mark.parametrize("inflate", ["zlib", "isal"])
def test_gzip_ratio_bomb(area, inflate, monkeypatch):
    monkeypatch.setenv("DOCKERLESS_INFLATE", inflate)
    data = tar_bytes(E("zeros", data=bytes(24 << 20)))
    blob = gzip.compress(data, 9)
    exc = area.fails(blob, "ratio", MEDIA_TYPE_TAR_GZIP, limits=UnpackLimits(max_ratio=100))
    assert _bytes_out(exc) <= (16 << 20) + (2 << 20)  # stopped right after the 16 MiB floor


def test_zstd_ratio_bomb_with_default_limits(area):
    data = tar_bytes(E("zeros", data=bytes(40 << 20)))
    blob = subprocess.run(["zstd", "-q", "-19", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    assert len(data) // len(blob) > 1000
    exc = area.fails(blob, "ratio", MEDIA_TYPE_TAR_ZSTD)
    assert _bytes_out(exc) <= (16 << 20) + (2 << 20)


def test_ratio_below_the_floor_or_the_limit_is_fine(area):
    data = tar_bytes(E("zeros", data=bytes(8 << 20)))  # 1000:1 but under 16 MiB
    assert area.extract(gzip.compress(data, 9), MEDIA_TYPE_TAR_GZIP).size == len(data)


def test_too_many_entries(area):
    entries = [E(f"f{i}") for i in range(501)]
    area.fails(tar_bytes(*entries), "max_entries", limits=UnpackLimits(max_entries=500))
    assert area.extract(tar_bytes(*entries[:500]), limits=UnpackLimits(max_entries=500)).entries == 500


def test_implicit_directories_count_as_entries(area):
    area.fails(tar_bytes(E("a/" * 150 + "f")), "max_entries", limits=UnpackLimits(max_entries=100))


def test_too_many_bytes(area):
    area.fails(tar_bytes(E("big", data=bytes(3 << 20))), "max_total_bytes", limits=UnpackLimits(max_total_bytes=2 << 20))


def test_huge_pax_header(area):
    area.fails(pax_member(b"%d comment=%s\n" % (2 * 2**20 + 19, b"c" * (2 * 2**20))), "max_header_bytes")


def test_pax_header_claiming_a_terabyte_is_not_read(area):
    header = raw_header(b"PaxHeader", b"x", 0, fields={124: b"\x80" + (1 << 40).to_bytes(11, "big")})
    area.fails(header + bytes(512), "max_header_bytes")


def test_huge_gnu_long_name(area):
    name = b"n" * (2 << 20)
    area.fails(raw_header(b"././@LongLink", b"L", len(name)) + blocks(name), "max_header_bytes")


def test_sparse_file_claiming_a_terabyte(area):
    realsize = b"\x80" + (1 << 40).to_bytes(11, "big")  # GNU base-256: octal can't say 1 TiB in 12 bytes
    fields = {386: b"%011o\0" % 0 + b"%011o\0" % 512, 482: b"\0", 483: realsize}
    data = raw_header(b"sparse", b"S", 512, fields, magic=b"ustar  \0") + bytes(512) + END
    area.fails(data, "max_total_bytes")


def test_sparse_map_beyond_the_file_is_rejected(area):
    fields = {386: b"%011o\0" % 4096 + b"%011o\0" % 512, 483: b"%011o\0" % 1024}
    area.fails(raw_header(b"s", b"S", 512, fields, magic=b"ustar  \0") + bytes(512) + END, "sparse map")


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_real_sparse_files_from_gnu_tar(area, tmp_path, fmt):
    src = tmp_path / f"src-{fmt}"
    src.mkdir()
    area.allowed.add(src.name)
    with open(src / "s", "wb") as fh:
        fh.write(b"head")
        fh.seek(5 << 20)
        fh.write(b"middle")
        fh.seek(9 << 20)
        fh.write(b"tail")
    data = subprocess.run(
        ["tar", "--sparse", f"--format={fmt}", "-C", str(src), "-cf", "-", "s"], stdout=subprocess.PIPE, check=True
    ).stdout
    res = area.extract(data)
    assert res.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (area.root / "s").read_bytes() == (src / "s").read_bytes()
    assert os.lstat(area.root / "s").st_blocks * 512 < (1 << 20)


def test_old_pax_sparse_formats_are_refused(area):
    area.fails(pax_member(b"24 GNU.sparse.map=0,1\n", data=b"x"), "sparse")


def test_path_longer_than_path_max(area):
    name = "d/" * 2100 + "f"
    area.fails(tar_bytes(E(name)), "max_path_length")
    area.fails(tar_bytes(E("l", "l", link="x" * 5000)), "max_path_length")
    area.fails(tar_bytes(E("h", "h", link="x/" * 2500)), "max_path_length")


def test_paths_deeper_than_max_depth(area):
    area.fails(tar_bytes(E("a/" * 300 + "f")), "max_depth")
    deep = "/".join(["b"] * 200)
    area.fails(tar_bytes(E("l", "l", link=deep), E("m", "l", link="l/" + deep), E("m/f")), "max_depth")


def test_component_longer_than_name_max(area):
    area.fails(tar_bytes(E("x" * 256)), "longer than 255")


@pytest.mark.parametrize(
    "entries",
    [
        [E("a", "l", link="b"), E("b", "l", link="a"), E("a/f")],
        [E("l", "l", link="l"), E("l/x")],
        [E("m", "l", link="m/m"), E("m/x")],
        [E("n", "l", link="./n/../n"), E("n/x")],
        [E("p", "l", link="/p"), E("h", "h", link="p/x")],
    ],
    ids=["two", "self", "growing", "dotdot", "hardlink-through"],
)
def test_symlink_loops(area, entries):
    area.fails(tar_bytes(*entries), "symbolic links|symlink loop")


def test_symlink_maze_is_bounded(area):
    """Each walk may take 40 hops of PATH_MAX-long targets; the per-layer step budget stops a maze early."""
    maze = [E("d/", "d"), E("m", "l", link="d/../" * 800 + "d")]
    for i in range(6):
        maze += [E(f"n{i}", "l", link="m/../" * 39 + "d"), E(f"n{i}/f")]
    start = time.monotonic()
    area.fails(tar_bytes(*maze), "symlink maze")
    assert time.monotonic() - start < 30


def test_many_small_pax_records_parse_in_linear_time(area):
    records = b"".join(b"%d comment=%05d\n" % (len(b"00 comment=00000\n"), i) for i in range(60000))
    records += bytes(3000)  # NUL padding after the last record is tolerated
    assert len(records) < 2**20
    start = time.monotonic()
    area.extract(pax_member(records, data=b"p"))
    assert time.monotonic() - start < 10
    assert (area.root / "f").read_bytes() == b"p"


# --------------------------------------------------------------------------------------------------------------
# Malformed tar


def test_negative_size(area):
    area.fails(raw_header(b"f", b"0", fields={124: b"\xff" * 12}) + END, "negative size")


def test_base256_size_is_read(area):
    data = raw_header(b"f", b"0", fields={124: b"\x80" + (5).to_bytes(11, "big")}) + blocks(b"hello") + END
    area.extract(data)
    assert (area.root / "f").read_bytes() == b"hello"


@pytest.mark.parametrize(
    "records",
    [
        b"999 path=x\n",
        b"xx path=x\n",
        b"7 path\n",
        b"13 path=abcd",
        b"3 path=abc\n",
        b"11 size=-5\n",
        b"12 uid=abc\n",
        b"17 mtime=1.2.3.4\n",
        b"18 path=a\x00b/evil\n",
        b"20 uid=4294967295\n",
    ],
)
def test_bad_pax_records(area, records):
    area.fails(pax_member(records), "PAX|malformed|NUL|out of range")


def test_bad_checksum(area):
    header = bytearray(raw_header(b"f", b"0", 1))
    header[0] = ord("g")
    area.fails(bytes(header) + blocks(b"x") + END, "checksum")


def test_invalid_octal_field(area):
    area.fails(raw_header(b"f", b"0", fields={100: b"0009999\0"}) + END, "invalid mode")


def test_truncated_streams(area):
    data = tar_bytes(E("f", data=os.urandom(5000)))
    area.fails(data[:2048], "truncated")
    area.fails(data[:300], "truncated")
    area.fails(gzip.compress(data[:2048]), "truncated", MEDIA_TYPE_TAR_GZIP)


def test_single_zero_block_inside_the_stream(area):
    area.fails(raw_header(b"f", b"0") + bytes(512) + raw_header(b"g", b"0") + END, "zero block")


def test_extended_header_without_its_entry(area):
    area.fails(raw_header(b"PaxHeader", b"x", 12) + blocks(b"12 path=abc\n"), "without its entry")


@pytest.mark.parametrize("typ", [b"Z", b"M", b"N"])
def test_unknown_entry_types(area, typ):
    area.fails(raw_header(b"f", typ) + END, "unsupported tar entry type")


def test_volume_label_is_skipped(area):
    res = area.extract(raw_header(b"label", b"V") + raw_header(b"f", b"0") + END)
    assert res.entries == 1 and os.listdir(area.root) == ["f"]


def test_root_entry_that_is_not_a_directory(area):
    area.fails(tar_bytes(E("./", data=b"x")), "layer root")


@pytest.mark.parametrize("key", ["trusted.overlay.opaque", "trusted.overlay.redirect", "user.overlay.origin"])
def test_forged_overlay_xattrs_are_refused(area, key):
    area.fails(tar_bytes(E("d/", "d", pax={f"SCHILY.xattr.{key}": "y"})), "overlay attribute")


def test_garbage_after_the_end_is_rejected(area):
    data = tar_bytes(E("f", data=b"f")) + raw_header(b"../victim/evil", b"0", 1) + blocks(b"e")
    area.fails(gzip.compress(data), "follows the end of the tar archive", MEDIA_TYPE_TAR_GZIP)
    area.intact()


# --------------------------------------------------------------------------------------------------------------
# Merge mode: layers extracted in order onto one tree (a pull's dest) give what merging their folders gives, and
# lower layers' links are never written through


def _layered(area, layers, as_root, tag=""):
    """``layers`` extracted into folders and merged, and extracted in order onto one tree: both trees."""
    folders = []
    for i, data in enumerate(layers):
        folders.append(area.base / f"l{tag}{i}")
        area.extract(data, dest=folders[-1], as_root=as_root)
    merged = area.base / f"merged{tag}"
    direct = area.base / f"direct{tag}"
    area.allowed |= {merged.name, direct.name}
    merge([str(f) for f in folders], str(merged), as_root=as_root)
    for data in layers:
        area.extract(data, dest=direct, as_root=as_root, merge=True)
    area.intact()
    return merged, direct


def _view(path):
    return {k: v for k, v in tree_manifest(str(path)).items() if k != "."}


AS_ROOT = [pytest.param(None, id="root"), pytest.param(False, id="as-user")]


@pytest.mark.parametrize("as_root", AS_ROOT)
def test_merge_mode_never_writes_through_lower_links(area, as_root):
    if as_root is None and not IS_ROOT:
        pytest.skip("needs root")
    l1 = tar_bytes(*planted_links(area), E("file", data=b"lower file"))
    l2 = tar_bytes(*through_planted_links(), E("file/x", data=b"dir over a lower file"))
    merged, direct = _layered(area, [l1, l2], as_root)
    assert (direct / "evil/f").read_bytes() == b"p" and not os.path.islink(direct / "evil")
    assert (direct / "rel/new").read_bytes() == b"q" and not os.path.islink(direct / "rel")
    assert os.listdir(direct / "opq") == [] and os.listdir(direct / "gone") == []
    assert (direct / "file/x").read_bytes() == b"dir over a lower file"
    assert _view(direct) == _view(merged)


@pytest.mark.parametrize("as_root", AS_ROOT)
def test_merge_mode_whiteout_of_a_link_removes_the_link_not_its_target(area, as_root):
    if as_root is None and not IS_ROOT:
        pytest.skip("needs root")
    l1 = tar_bytes(
        E("target", data=b"t"),
        E("link", "l", link="target"),
        E("alink", "l", link=str(area.victim / "f")),
        E("dlink", "l", link=str(area.victim)),
        E("d/", "d"),
        E("d/x", data=b"x"),
    )
    l2 = tar_bytes(E(".wh.link"), E(".wh.alink"), E(".wh.dlink"), E("dlink/", "d"), E(".wh.d"), E(".wh.never"))
    merged, direct = _layered(area, [l1, l2], as_root)
    assert sorted(os.listdir(direct)) == ["dlink", "target"] and os.listdir(direct / "dlink") == []
    assert _view(direct) == _view(merged)


@pytest.mark.parametrize("as_root", AS_ROOT)
@pytest.mark.parametrize("marker_first", [True, False])
def test_merge_mode_opaque_marker_hides_only_lower_layers(area, as_root, marker_first):
    if as_root is None and not IS_ROOT:
        pytest.skip("needs root")
    l1 = tar_bytes(E("d/", "d"), E("d/low", data=b"l"), E("d/sub/", "d"), E("d/sub/old", data=b"o"),
                   E("top", data=b"t"))
    same = [E("d/same", data=b"s"), E("d/sub/x", data=b"x")]
    marker = [E("d/.wh..wh..opq")]
    l2 = tar_bytes(*(marker + same if marker_first else same + marker))
    l3 = tar_bytes(E(".wh..wh..opq"), E("only", data=b"o"))  # an opaque root
    merged, direct = _layered(area, [l1, l2], as_root)
    assert sorted(_view(direct)) == ["d", "d/same", "d/sub", "d/sub/x", "top"]
    assert _view(direct) == _view(merged)
    merged, direct = _layered(area, [l1, l2, l3], as_root, tag="b")
    assert sorted(os.listdir(direct)) == ["only"]


def test_merge_mode_failure_removes_the_whole_tree(area):
    direct = area.base / "direct"
    area.allowed.add("direct")
    area.extract(tar_bytes(E("evil", "l", link=str(area.victim)), E("keep", data=b"k")), dest=direct, merge=True)
    with pytest.raises(UnpackError, match="hardlink"):
        area.extract(tar_bytes(E("evil/f", data=b"p"), E("h", "h", link="../victim/f")), dest=direct, merge=True)
    assert os.listdir(direct) == []
    area.intact()
