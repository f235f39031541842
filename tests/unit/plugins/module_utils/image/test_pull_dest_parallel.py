# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A pull with ``dest`` as root extracts the layers above the bottom one in parallel, each into a staging folder,
and moves them onto the tree (move_merge): the tree must be the one merge mode builds layer after layer (the
spec), across whiteouts, opaque directories, type changes, directory attributes and hard links; a hard link into
a lower layer falls back to merge mode; a wrong diff_id of a staged layer leaves no dest. Real kernel as root, a
registry on loopback (fault_server) serving the blobs."""

from __future__ import annotations

import gzip
import os
import stat

import pytest
from fault_server import FaultServer, MemoryRegistry
from test_extract import T0, E, tar_bytes
from test_pull_dest_stream import _no_leftovers, _publish, _sha
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image import pull
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import move_merge
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: owners, device nodes "
                                                   "and whiteouts of the extracted tree")]


def _gz(*entries) -> tuple[bytes, bytes]:
    raw = tar_bytes(*entries)
    return raw, gzip.compress(raw, mtime=0)


BOTTOM = _gz(
    E("etc/", "d"), E("etc/passwd", data=b"root:x:0:0"), E("etc/target", data=b"target"),
    E("etc/link", "l", link="target"),
    E("d/", "d"), E("d/old", data=b"old"), E("d/sub/", "d"), E("d/sub/deep", data=b"deep"),
    E("keep/", "d"), E("keep/x", data=b"x"),
    E("flip", data=b"file"), E("flop/", "d"), E("flop/inner", data=b"i"),
    E("lnk", "l", link="/etc"),
    E("meta/", "d", mode=0o755, mtime=T0 - 100), E("meta/a", data=b"a"),
    E("implicit/", "d", mode=0o750, uid=7, gid=7, mtime=T0 - 200), E("implicit/a", data=b"a"),
    E("gone-before/", "d"), E("gone-before/x", data=b"lower"),
    E("hl/", "d"), E("hl/orig", data=b"shared inode"),
    E("same", data=b"lower same"),
    E("opq/", "d"), E("opq/lower", data=b"l"), E("opq/kept/", "d"), E("opq/kept/lower", data=b"l"),
    E("bin/", "d"), E("bin/busybox", data=b"bb" * 3000, mode=0o755), E("bin/sh", "h", link="bin/busybox"),
)
MIDDLE = _gz(
    E("etc/", "d"), E("etc/.wh.link"),
    E("d/", "d"), E("d/new", data=b"new"), E("d/.wh..wh..opq"),  # after a file of its own layer: hides lower only
    E(".wh.keep"),
    E("flip/", "d"), E("flip/now-a-dir", data=b"d"),
    E("flop", data=b"now a file"),
    E("lnk/", "d"), E("lnk/f", data=b"in a directory, not through the link"),
    E("meta/", "d", mode=0o700, uid=1000, gid=1000, mtime=T0 - 10), E("meta/b", data=b"b"),
    E("implicit/b", data=b"b"),  # no entry for implicit/: the lower directory's attributes stay
    E("same", data=b"upper same"), E(".wh.same"),  # its own file survives its later whiteout
    E(".wh.gone-before"), E("gone-before/", "d"), E("gone-before/y", data=b"upper"),
    E("new/", "d"), E("new/one", data=b"one"), E("new/two", "h", link="new/one"),
    E("opq/", "d"), E("opq/kept/", "d"), E("opq/kept/upper", data=b"u"), E("opq/.wh..wh..opq"),
    E("xattr-file", data=b"x", pax={"SCHILY.xattr.user.dockerless": "seed"}),
)
TOP = _gz(
    E("d/", "d"), E("d/new", "c", major=0, minor=0),  # the overlay form of a whiteout, in the tar
    E("usr/", "d"), E("usr/bin/", "d"), E("usr/bin/tool", data=b"t", mode=0o4755, uid=0, gid=0),
    E("flop/", "d", mtime=T0 - 5), E("flop/again", data=b"again"),
    E("empty-dir/", "d", mode=0o1777, mtime=T0 - 7),
    E("dev-null", "c", major=1, minor=3, mode=0o666),
)


def _pull(tmp_path, name, layers, monkeypatch, parallel: bool, tag: str):
    monkeypatch.setattr(pull._DestTree, "PARALLEL", parallel)
    moved = []
    real = move_merge.move_layer
    monkeypatch.setattr(move_merge, "move_layer", lambda *a, **k: (moved.append(1), real(*a, **k)))
    dest = tmp_path / tag / "rootfs"
    result = pull.pull_image(Store(str(tmp_path / f"store-{tag}")), name, dest=str(dest))
    assert result.rootfs_changed
    return dest, len(moved)


def _times(root) -> dict[str, int]:
    """mtimes of files, symlinks and of the directories the layers have entries for."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel not in ("implicit", "usr"):  # implicit in an upper layer: written into, "now" either way
                out[rel] = os.lstat(p).st_mtime_ns
    return out


def test_parallel_tree_equals_merge_mode(tmp_path, monkeypatch):
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        name = _publish(reg, [BOTTOM, MIDDLE, TOP])
        ours, moved = _pull(tmp_path, name, [BOTTOM, MIDDLE, TOP], monkeypatch, True, "parallel")
        spec, not_moved = _pull(tmp_path, name, [BOTTOM, MIDDLE, TOP], monkeypatch, False, "merge")
    assert moved == 2 and not_moved == 0  # both layers above the bottom one went through move_merge
    assert tree_manifest(str(ours)) == tree_manifest(str(spec))
    assert _times(ours) == _times(spec)
    assert os.listxattr(ours / "xattr-file") == os.listxattr(spec / "xattr-file") == ["user.dockerless"]
    # The rules, spelled out (merge mode is the spec, but a bug shared by both must not pass either).
    m = tree_manifest(str(ours))
    assert "etc/link" not in m and (ours / "etc/target").read_bytes() == b"target"
    assert sorted(os.listdir(ours / "d")) == []  # opaque hid d/old and d/sub; the top's whiteout removed d/new
    assert "keep" not in m
    assert m["flip"][0] == "d" and (ours / "flip/now-a-dir").read_bytes() == b"d"
    assert sorted(os.listdir(ours / "flop")) == ["again"] and m["flop"][0] == "d"
    assert m["lnk"][0] == "d" and (ours / "lnk/f").exists() and not (ours / "etc/f").exists()
    assert stat.S_IMODE(os.lstat(ours / "meta").st_mode) == 0o700 and os.lstat(ours / "meta").st_uid == 1000
    assert os.lstat(ours / "meta").st_mtime_ns == (T0 - 10) * 10**9
    assert sorted(os.listdir(ours / "meta")) == ["a", "b"]
    assert stat.S_IMODE(os.lstat(ours / "implicit").st_mode) == 0o750 and os.lstat(ours / "implicit").st_uid == 7
    assert (ours / "same").read_bytes() == b"upper same"
    assert sorted(os.listdir(ours / "gone-before")) == ["y"]  # the whiteout came first: the lower dir is gone
    assert os.lstat(ours / "new/one").st_ino == os.lstat(ours / "new/two").st_ino
    assert sorted(os.listdir(ours / "opq")) == ["kept"] and sorted(os.listdir(ours / "opq/kept")) == ["upper"]
    assert os.lstat(ours / "usr/bin/tool").st_mode & 0o7777 == 0o4755
    assert stat.S_IMODE(os.lstat(ours / "empty-dir").st_mode) == 0o1777
    assert m["dev-null"][0] == "c" and m["dev-null"][5] == "1:3"
    assert not [p for p in m if os.path.basename(p).startswith(".wh.")]
    assert not [p for p, v in m.items() if v[0] == "c" and v[5] == "0:0"]  # no whiteout device left in dest
    _no_leftovers(str(tmp_path / "parallel"))


def test_a_hard_link_into_a_lower_layer_falls_back_to_merge_mode(tmp_path, monkeypatch):
    """The staged extraction can't resolve a hard link to a file of a lower layer; that layer is applied in merge
    mode onto the tree (after the layers below it) and the link is made to the lower file."""
    upper = _gz(E("hl/", "d"), E("hl/link", "h", link="hl/orig"), E("other", data=b"o"))
    top = _gz(E("top", data=b"t"))
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        name = _publish(reg, [BOTTOM, upper, top])
        ours, moved = _pull(tmp_path, name, [BOTTOM, upper, top], monkeypatch, True, "parallel")
    assert moved == 1  # the top layer moved; the middle one applied in merge mode
    assert os.lstat(ours / "hl/link").st_ino == os.lstat(ours / "hl/orig").st_ino
    assert (ours / "other").read_bytes() == b"o" and (ours / "top").read_bytes() == b"t"
    _no_leftovers(str(tmp_path / "parallel"))


@pytest.mark.parametrize("bad", [1, 2])
def test_a_staged_layer_not_matching_its_diff_id_leaves_no_dest(tmp_path, monkeypatch, bad):
    """A layer extracted into its staging folder whose content is not the config's diff_id: the pull fails before
    any move, no dest, no holder, no staging folder left."""
    layers = [BOTTOM, MIDDLE, TOP]
    diff_ids = [_sha(raw) for raw, _blob in layers]
    diff_ids[bad] = "sha256:" + "0" * 64
    monkeypatch.setattr(pull._DestTree, "PARALLEL", True)
    dest = tmp_path / "out" / "rootfs"
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        name = _publish(reg, layers, diff_ids)
        store = Store(str(tmp_path / "store"))
        with pytest.raises(DigestMismatchError, match="dest was not written"):
            pull.pull_image(store, name, dest=str(dest))
    assert not os.path.lexists(dest)
    assert store.resolve(name) is None
    _no_leftovers(str(tmp_path / "out"))


def move(tree, upper, result) -> None:
    """move_merge.move_layer of the staging folder ``upper`` (extracted with ``record=True``, giving ``result``)
    onto the directory ``tree``."""
    tfd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    ufd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        move_merge.move_layer(tfd, ufd, result.whiteouts, result.opaque, result.explicit_dirs)
    finally:
        os.close(tfd)
        os.close(ufd)


def test_move_layer_never_writes_through_a_lower_symlink(tmp_path):
    """The tree holds symlinks to a victim directory outside it; the upper layer's directory of the same name,
    its whiteouts and its opaque directory below that name act on the tree only."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep")
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(str(victim), tree / "abs")
    os.symlink("../victim", tree / "rel")
    upper = tmp_path / "upper"
    from test_extract import extract

    result = extract(tar_bytes(E("abs/", "d"), E("abs/new", data=b"n"), E("rel/.wh.precious"),
                               E("rel2/", "d"), E("rel2/.wh..wh..opq")), upper, record=True)
    assert result.whiteouts == [(b"rel", b"precious")] and result.opaque == [(b"rel2",)]
    os.symlink("../victim", tree / "rel2")
    move(tree, upper, result)
    assert sorted(os.listdir(victim)) == ["precious"] and (victim / "precious").read_text() == "keep"
    assert not os.path.islink(tree / "abs") and (tree / "abs/new").read_bytes() == b"n"
    # The layer's own (implicit) directory rel/ replaces the lower symlink; its whiteout below named nothing.
    assert os.path.isdir(tree / "rel") and not os.path.islink(tree / "rel") and not os.listdir(tree / "rel")
    assert os.path.isdir(tree / "rel2") and not os.path.islink(tree / "rel2")


def test_move_layer_without_renameat2_noreplace(tmp_path, monkeypatch):
    """Where libc or the filesystem lacks RENAME_NOREPLACE the merge checks and renames: same tree."""
    from test_extract import extract

    def no_renameat2(*_args):
        raise OSError(38, "renameat2: not in this libc")

    monkeypatch.setattr(move_merge.linux, "renameat2", no_renameat2)
    monkeypatch.setattr(move_merge, "_NOREPLACE", [True])
    trees = {}
    for tag in ("a", "b"):
        extract(BOTTOM[0], tmp_path / tag, merge=True)
        if tag == "a":
            extract(MIDDLE[0], tmp_path / tag, merge=True)
            continue
        upper = tmp_path / "upper"
        result = extract(MIDDLE[0], upper, record=True)
        move(tmp_path / tag, upper, result)
        assert move_merge._NOREPLACE == [False]
    for tag in ("a", "b"):
        trees[tag] = tree_manifest(str(tmp_path / tag))
    assert trees["a"] == trees["b"]


def test_move_layer_touching_more_directories_than_open_files_allowed(tmp_path):
    """A layer that adds a file to each of many directories the tree already has (an upgrade touching every
    package's folder): each such directory gets its times after the moves, without an fd held per directory."""
    import resource

    from test_extract import extract

    count = 300
    extract(tar_bytes(*[E(f"pkg{i}/", "d", mtime=T0) for i in range(count)]), tmp_path / "tree", merge=True)
    upper = tmp_path / "upper"
    result = extract(tar_bytes(*[e for i in range(count) for e in (
        E(f"pkg{i}/", "d", mtime=T0 + 7), E(f"pkg{i}/new", data=b"x"))]), upper, record=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 64, hard))   # far fewer than the directories
    try:
        move(tmp_path / "tree", upper, result)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    for i in (0, count // 2, count - 1):
        assert (tmp_path / f"tree/pkg{i}/new").read_bytes() == b"x"
        assert os.lstat(tmp_path / f"tree/pkg{i}").st_mtime == T0 + 7
