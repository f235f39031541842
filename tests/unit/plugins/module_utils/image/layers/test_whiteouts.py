# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One set of whiteout rules for every reader of layer folders, in both forms, on the real kernel.

The same two layers (an upper one that deletes ``etc/gone`` and makes ``opq`` opaque) are unpacked in overlay
form (as root) and in plain form (``as_root=False``: ``.wh.`` marker files, as a store made without root holds
them). Every view of the image must agree: a container on overlayfs, a container on the copy fallback,
``whiteouts.merge`` (pull's dest) and the WSL export's ``MergedTree``. None may show a deleted file, the hidden lower contents of
the opaque directory, or a marker.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

import pytest
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError, UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import whiteouts
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import MEDIA_TYPE_TAR
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import merge_layers
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec
from ansible_collections.dockerless.containers.plugins.module_utils.wsl import export as wsl

sys.path.insert(0, os.path.dirname(__file__))
from test_runtime import BUSYBOX, make_busybox_rootfs  # noqa: E402

IS_ROOT = os.geteuid() == 0
T0 = 1_600_000_000

# What the merged image must hold below the three directories the layers touch.
EXPECTED = {
    "etc", "etc/group", "etc/passwd", "etc/kept",
    "opq", "opq/new",
    "keep", "keep/k",
}
# What a container sees: the image's tree and its own /etc/hostname, hosts and resolv.conf, mounted by the runtime.
IN_CONTAINER = EXPECTED | {"etc/hostname", "etc/hosts", "etc/resolv.conf"}
LISTING = "find /etc /opq /keep | sort"


def _entry(name, kind="f", data=b"", mode=None):
    ti = tarfile.TarInfo(name)
    ti.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "c": tarfile.CHRTYPE}[kind]
    ti.mode = mode if mode is not None else (0o755 if kind == "d" else 0o644)
    ti.mtime = T0
    ti.size = len(data) if kind == "f" else 0
    return ti, data


def _tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


LOWER = _tar(
    _entry("etc/", "d"),
    _entry("etc/gone", data=b"deleted by the upper layer"),
    _entry("etc/kept", data=b"kept"),
    _entry("opq/", "d"),
    _entry("opq/old", data=b"hidden by the opaque directory"),
    _entry("opq/sub/", "d"),
    _entry("opq/sub/deep", data=b"hidden too"),
    _entry("keep/", "d"),
    _entry("keep/k", data=b"k"),
)
UPPER = _tar(
    _entry("etc/", "d"),
    _entry("etc/.wh.gone"),
    _entry("opq/", "d"),
    _entry("opq/.wh..wh..opq"),
    _entry("opq/new", data=b"new"),
)


def _layers(base, tmp_path, as_root: bool) -> list[str]:
    """Layer folders bottom → top: the busybox rootfs (no whiteouts: the same in both forms), LOWER, UPPER."""
    form = "overlay" if as_root else "plain"
    dirs = [base]
    for name, data in (("lower", LOWER), ("upper", UPPER)):
        dest = tmp_path / f"{form}-{name}"
        extract_layer(io.BytesIO(data), MEDIA_TYPE_TAR, str(dest), as_root=as_root)
        dirs.append(str(dest))
    return dirs


def _visible(paths) -> set[str]:
    return {p.strip("/") for p in paths if p.strip("/").split("/")[0] in ("etc", "opq", "keep")}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    if not os.path.exists(BUSYBOX):
        pytest.skip("needs Debian's busybox-static (/bin/busybox)")
    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


def _spec(layers_bottom_to_top, mode: str):
    return build_spec(lower_dirs=list(reversed(layers_bottom_to_top)),  # overlayfs' order: top → bottom
                      command=["/bin/sh", "-c", LISTING], image_config={"Env": ["PATH=/bin"]}, rootfs_mode=mode)


def _container_view(tmp_path, layers_bottom_to_top, mode: str) -> tuple[set[str], str]:
    runtime = Runtime(str(tmp_path / f"store-{mode}"))
    result = runtime.run(_spec(layers_bottom_to_top, mode), timeout=60)
    assert result.rc == 0, result.stderr
    return _visible(result.stdout.decode().split()), result.rootfs_mode


# -- the rules ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, expected",
    [
        ("file", None),
        (".wh.file", ("whiteout", "file")),
        (".wh..wh..opq", ("opaque", None)),
        (".wh..wh.plnk", ("meta", None)),
        (b".wh.file", ("whiteout", b"file")),
        (b".wh..wh..opq", ("opaque", None)),
        ("..wh.x", None),
    ],
)
def test_marker_names(name, expected):
    assert whiteouts.marker(name) == expected


@pytest.mark.parametrize("name", [".wh.", ".wh..", ".wh...", b".wh.."])
def test_a_whiteout_of_nothing_is_refused(name):
    with pytest.raises(whiteouts.WhiteoutError):
        whiteouts.marker(name)


# -- the copy fallback's merge -----------------------------------------------------------------------------------

def test_copy_fallback_merge_applies_plain_form_whiteouts(tmp_path):
    """A store made without root holds .wh. marker files: the runtime's copy of the layers must apply them
    (it used to copy them as files and bring the deleted ones back)."""
    lower, upper = _layers_only(tmp_path, as_root=False)
    dest = tmp_path / "copy"
    merge_layers([upper, lower], str(dest))
    assert set(tree_manifest(str(dest))) - {"."} == EXPECTED - {"etc/group", "etc/passwd"}


def _layers_only(tmp_path, as_root: bool) -> tuple[str, str]:
    out = []
    for name, data in (("lower", LOWER), ("upper", UPPER)):
        dest = tmp_path / f"{name}-{as_root}"
        extract_layer(io.BytesIO(data), MEDIA_TYPE_TAR, str(dest), as_root=as_root)
        out.append(str(dest))
    return out[0], out[1]


def test_copy_fallback_merge_never_follows_a_layer_symlink(tmp_path):
    """Layer contents are hostile: a lower symlink to a host directory and an upper directory of the same name
    (plain-form whiteouts inside it) must never write or delete through the link."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "x").write_text("host file")
    lower = _tar(_entry("etc/", "d"))
    buf = io.BytesIO(lower)
    ldir = tmp_path / "l"
    extract_layer(buf, MEDIA_TYPE_TAR, str(ldir), as_root=False)
    os.symlink(str(victim), ldir / "etc" / "link")
    udir = tmp_path / "u"
    extract_layer(io.BytesIO(_tar(_entry("etc/", "d"), _entry("etc/link/", "d"), _entry("etc/link/.wh.x"),
                                  _entry("etc/link/y", data=b"y"))), MEDIA_TYPE_TAR, str(udir), as_root=False)
    merge_layers([str(udir), str(ldir)], str(tmp_path / "copy"))
    assert (victim / "x").read_text() == "host file"
    assert sorted(os.listdir(victim)) == ["x"]
    assert not os.path.islink(tmp_path / "copy" / "etc" / "link")
    assert sorted(os.listdir(tmp_path / "copy" / "etc" / "link")) == ["y"]


def test_a_bad_whiteout_in_a_layer_folder_is_refused(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / ".wh..").write_text("")
    with pytest.raises(UnpackError, match="whiteout"):
        merge([str(layer)], str(tmp_path / "out"))
    with pytest.raises(wsl.WslError, match="whiteout"):
        wsl.MergedTree([str(layer)])


# -- every view agrees, on the real kernel --------------------------------------------------------------------------

@pytest.mark.parametrize("as_root", [True, False], ids=["overlay-form", "plain-form"])
@pytest.mark.parametrize("mode", ["copy", "auto"])
@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: namespaces, mounts, overlay-form whiteouts")
def test_containers_see_neither_deleted_files_nor_hidden_lower_contents(base, tmp_path, as_root, mode):
    layers = _layers(base, tmp_path, as_root)
    seen, used = _container_view(tmp_path, layers, mode)
    assert seen == IN_CONTAINER
    # overlayfs can use overlay-form folders only; plain-form ones fall back to the copy.
    assert used == ("overlay" if as_root and mode == "auto" else "copy")


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: namespaces, mounts")
def test_overlay_mode_refuses_plain_form_layers(base, tmp_path):
    """overlayfs would show the .wh. files and the deleted files: asking for it explicitly is an error that says
    what to do, never a rootfs with deleted files back."""
    layers = _layers(base, tmp_path, as_root=False)
    runtime = Runtime(str(tmp_path / "store"))
    with pytest.raises(RuntimeSetupError, match="plain form.*'copy'"):
        runtime.run(_spec(layers, "overlay"), timeout=60)


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: namespaces, mounts")
def test_overlay_mode_on_overlay_form_layers(base, tmp_path):
    seen, used = _container_view(tmp_path, _layers(base, tmp_path, as_root=True), "overlay")
    assert (seen, used) == (IN_CONTAINER, "overlay")


@pytest.mark.parametrize("as_root", [True, False], ids=["overlay-form", "plain-form"])
def test_flatten_wsl_and_copy_fallback_give_the_same_tree(base, tmp_path, as_root):
    if as_root and not IS_ROOT:
        pytest.skip("overlay form needs root (mknod of whiteouts, trusted.* xattrs)")
    layers = _layers(base, tmp_path, as_root)
    flat = tmp_path / "flat"
    merge(layers, str(flat))
    flat_tree = tree_manifest(str(flat))
    copy = tmp_path / "copy"
    merge_layers(list(reversed(layers)), str(copy))
    assert tree_manifest(str(copy)) == flat_tree
    merged = set(wsl.MergedTree(layers).paths())
    assert merged == set(flat_tree) - {"."}
    assert _visible(merged) == EXPECTED
    assert not any(".wh." in p for p in merged)


def test_plain_form_is_recorded_only_where_markers_are(tmp_path):
    lower, upper = _layers_only(tmp_path, as_root=False)
    assert not whiteouts.is_plain_form(lower)  # no whiteouts: overlayfs can use it as is
    assert whiteouts.is_plain_form(upper)
    assert whiteouts.PLAIN_FORM_MARK in os.listdir(upper)
    # The mark is not part of the image: no merge shows it.
    merge([lower, upper], str(tmp_path / "flat"))
    assert whiteouts.PLAIN_FORM_MARK not in os.listdir(tmp_path / "flat")
    assert whiteouts.PLAIN_FORM_MARK not in wsl.MergedTree([lower, upper]).paths()


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root (overlay-form whiteouts)")
def test_overlay_form_is_not_plain(tmp_path):
    lower, upper = _layers_only(tmp_path, as_root=True)
    assert not whiteouts.is_plain_form(upper)
    assert stat.S_ISCHR(os.lstat(os.path.join(upper, "etc", "gone")).st_mode)


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: namespaces, mounts")
def test_a_one_shot_copy_is_never_handed_to_the_next_run(base, tmp_path):
    """One-shots share the store's pool of slots: the copy fallback's rootfs of one run (its image, and what the
    container wrote into it) must not become the next run's rootfs."""
    runtime = Runtime(str(tmp_path / "store"))
    other = tmp_path / "other"
    (other / "etc").mkdir(parents=True)
    (other / "etc" / "which").write_text("other\n")
    script = "cat /etc/which 2>/dev/null || echo no-which; test -e /left && echo left-over || echo clean; touch /left"
    seen = []
    for layers in ([base], [str(other), base]):
        spec = build_spec(lower_dirs=layers, command=["/bin/sh", "-c", script], image_config={"Env": ["PATH=/bin"]},
                          rootfs_mode="copy")
        result = runtime.run(spec, timeout=60)
        assert (result.rc, result.rootfs_mode) == (0, "copy"), result.stderr
        seen.append(result.stdout.decode().split())
    assert seen == [["no-which", "clean"], ["other", "clean"]]


# -- an opaque layer root: every view hides the layers below, and overlayfs (which ignores it) is not used ----------

OPAQUE_ROOT = _tar(_entry(".wh..wh..opq"), _entry("bin/", "d"), _entry("etc/", "d"), _entry("etc/only", data=b"o"))


def test_an_opaque_layer_root_hides_every_lower_layer_in_flatten_and_wsl(tmp_path):
    lower, upper = _layers_only(tmp_path, as_root=IS_ROOT)
    top = tmp_path / "top"
    extract_layer(io.BytesIO(OPAQUE_ROOT), MEDIA_TYPE_TAR, str(top), as_root=IS_ROOT)
    layers = [lower, upper, str(top)]
    merge(layers, str(tmp_path / "flat"))
    flat = set(tree_manifest(str(tmp_path / "flat"))) - {"."}
    assert flat == {"bin", "etc", "etc/only"}
    assert set(wsl.MergedTree(layers).paths()) == flat


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root: namespaces, mounts, trusted.* xattrs")
def test_overlay_is_not_used_where_it_would_ignore_an_opaque_layer_root(base, tmp_path):
    """overlayfs ignores trusted.overlay.opaque on a lower layer's root (shown here on the real kernel first): a
    container would see the files of the layers below, which flatten and the export hide. Layers, bottom to top:
    LOWER (etc/gone, etc/kept, opq/..., keep/k), an opaque root holding etc/only, the busybox rootfs."""
    lower = tmp_path / "lower"
    extract_layer(io.BytesIO(LOWER), MEDIA_TYPE_TAR, str(lower), as_root=True)
    middle = tmp_path / "middle"
    extract_layer(io.BytesIO(OPAQUE_ROOT), MEDIA_TYPE_TAR, str(middle), as_root=True)
    assert whiteouts.has_opaque_xattr(str(middle))
    layers = [str(lower), str(middle), base]
    top_to_bottom = list(reversed(layers))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={':'.join(top_to_bottom)}", str(mnt)],
                   check=True)
    try:
        assert os.path.exists(mnt / "keep" / "k")  # the kernel's behaviour the runtime works around
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    runtime = Runtime(str(tmp_path / "store"))
    with pytest.raises(RuntimeSetupError, match="opaque root.*'copy'"):
        runtime.run(_spec(layers, "overlay"), timeout=60)
    seen, used = _container_view(tmp_path, layers, "auto")
    own = {"etc/hostname", "etc/hosts", "etc/resolv.conf"}  # the container's own, mounted by the runtime
    assert (seen, used) == ({"etc", "etc/group", "etc/passwd", "etc/only"} | own, "copy")
    merge(layers, str(tmp_path / "flat"))
    assert _visible(tree_manifest(str(tmp_path / "flat"))) == seen - own
    assert whiteouts.overlay_unfit([str(middle), str(lower)]) is not None
    assert whiteouts.overlay_unfit([str(middle)]) is None  # the bottom layer's root hides nothing


# -- removing trees ------------------------------------------------------------------------------------------------

@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch to an unprivileged user for real")
def test_remove_tree_as_the_owner_without_privileges_never_follows_links(tmp_path):
    """overlayfs leaves work/work at mode 000: its owner (a rootless runtime) must still remove it; and a link in
    the tree (a container wrote it into its upper dir) is removed, never followed."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="dockerless-wh-"))
    try:
        victim = work / "victim"
        victim.mkdir()
        (victim / "x").write_text("host")
        tree = work / "tree"
        (tree / "work" / "work" / "inner").mkdir(parents=True)
        (tree / "work" / "work" / "inner" / "f").write_text("f")
        os.symlink(str(victim), tree / "link")
        os.symlink(str(victim), tree / "work" / "work" / "link")
        for path in (work, victim, tree, tree / "work", tree / "work" / "work", tree / "work" / "work" / "inner",
                     tree / "work" / "work" / "inner" / "f", victim / "x"):
            os.chown(path, 65534, 65534)
        for link in (tree / "link", tree / "work" / "work" / "link"):
            os.lchown(link, 65534, 65534)
        os.chmod(tree / "work" / "work", 0o000)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                whiteouts.remove_tree(str(tree))
                code = 0
            finally:
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not os.path.lexists(tree)
        assert (victim / "x").read_text() == "host"
    finally:
        shutil.rmtree(work)


# -- rootless: a store made without root is in plain form ----------------------------------------------------------

ROOTLESS_DRIVER = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec
base, lower, mode = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=lower, userns=None, rootfs_mode=mode,
                  command=["/bin/sh", "-c", sys.argv[5]])
r = Runtime(os.path.join(base, "store")).run(spec, timeout=60)
print(json.dumps({"rc": r.rc, "stdout": r.stdout.decode(), "stderr": r.stderr.decode(), "mode": r.rootfs_mode}))
"""


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root to prepare files and switch to nobody")
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs a python3 that nobody can run")
@pytest.mark.parametrize("mode", ["auto", "copy"])
def test_a_rootless_container_over_a_plain_form_store(base, mode):
    """nobody's own store holds plain-form layers (what extract_layer makes without root). In a user namespace
    overlayfs mounts fine, so 'auto' used to mount it over the markers; both modes must show the image."""
    nobody = 65534
    world = tempfile.mkdtemp(prefix="dockerless-wh-rootless-")
    try:
        os.chmod(world, 0o755)
        shutil.copytree(base, os.path.join(world, "image"), symlinks=True)
        layers = [os.path.join(world, "image")]
        for name, data in (("lower", LOWER), ("upper", UPPER)):
            layers.append(os.path.join(world, name))
            extract_layer(io.BytesIO(data), MEDIA_TYPE_TAR, layers[-1], as_root=False)
        for top, dirs, files in os.walk(world):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), nobody, nobody)
        os.chown(world, nobody, nobody)
        checkout = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "..", ".."))
        proc = subprocess.run(
            ["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups", "/usr/bin/python3", "-I", "-c",
             ROOTLESS_DRIVER, os.path.join(checkout, ".build", "collections"), world,
             json.dumps(list(reversed(layers))), mode, LISTING],
            capture_output=True, text=True, timeout=120, cwd="/", check=False,
            env={"PATH": "/usr/bin:/bin", "HOME": world, "XDG_RUNTIME_DIR": world})
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["rc"] == 0, result
        assert (_visible(result["stdout"].split()), result["mode"]) == (IN_CONTAINER, "copy")
    finally:
        shutil.rmtree(world, ignore_errors=True)
