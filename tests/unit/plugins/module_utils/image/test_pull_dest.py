# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dest`` trees are private: an image's setuid-root binary and device nodes, pulled to a folder under a
world-traversable directory, can't be reached by another local user (``nobody``), unless a wider ``dest_mode``
is asked for. Real kernel, as root: the layer is pulled from a registry, written with its owners and modes, then
reached from a process running as uid/gid 65534."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import StoreError
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import parse_dest_mode, pull_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import host_platform
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fault_server import FaultServer, MemoryRegistry  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: setuid files, mknod, "
                                                   "setresuid")]
NOBODY = 65534
SETUID_BINARY = "/usr/bin/id"  # prints euid=0 when its setuid bit takes effect


def _hostile_layer() -> tuple[bytes, bytes]:
    """A layer with a setuid-root copy of id(1) at bin/id and dev/loop0 (block 7,0, mode 0666)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "dev"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        with open(SETUID_BINARY, "rb") as handle:
            data = handle.read()
        info = tarfile.TarInfo("bin/id")
        info.size, info.mode, info.uid, info.gid = len(data), 0o4755, 0, 0
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("dev/loop0")
        info.type, info.mode, info.devmajor, info.devminor = tarfile.BLKTYPE, 0o666, 7, 0
        tar.addfile(info)
    raw = buf.getvalue()
    return raw, gzip.compress(raw)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def hostile_image():
    """A registry holding ``hostile/app:1``; yields its name."""
    raw, blob = _hostile_layer()
    platform = host_platform()
    config = json.dumps({"architecture": platform.architecture, "os": "linux", "config": {"Cmd": ["/bin/id"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(raw)]}}).encode()
    with FaultServer() as server:
        reg = MemoryRegistry(server).install()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": reg.add_blob("hostile/app", config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": reg.add_blob("hostile/app", blob), "size": len(blob)}],
        }).encode()
        for ref in ("1", _sha(manifest)):
            reg.manifests[("hostile/app", ref)] = (manifest, oci.OCI_MANIFEST)
        yield f"{server.host}/hostile/app:1"


@pytest.fixture
def shared_dir():
    """A directory every user can traverse, as /tmp/x is in the report (pytest's tmp_path is under a 0700
    folder, which would hide the tree whatever its mode)."""
    path = tempfile.mkdtemp(prefix="dockerless-dest-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


def _open_as_nobody(path: str) -> int:
    """errno of opening ``path`` read-write as nobody (0: it opened)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _drop_to_nobody()
            os.close(os.open(path, os.O_RDWR))
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:  # noqa: BLE001 - anything else in the child is a failure, never a pass
            code = 254
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _run_as_nobody(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([path, "-u"], preexec_fn=_drop_to_nobody, capture_output=True, text=True, timeout=30,
                          check=False)


def _assert_hostile_content(dest: str) -> None:
    """The tree really holds what the attack needs (so the refusals below are the wall's doing)."""
    st = os.lstat(os.path.join(dest, "bin/id"))
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o4755
    st = os.lstat(os.path.join(dest, "dev/loop0"))
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 0)
    assert stat.S_IMODE(st.st_mode) == 0o666


def test_dest_tree_is_out_of_reach_of_other_users(tmp_path, hostile_image, shared_dir):
    store = Store(str(tmp_path / "store"))
    dest = os.path.join(shared_dir, "x")
    result = pull_image(store, hostile_image, dest=dest)
    assert result.rootfs == dest and result.rootfs_changed
    _assert_hostile_content(dest)
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o700

    with pytest.raises(PermissionError):
        _run_as_nobody(os.path.join(dest, "bin/id"))
    assert _open_as_nobody(os.path.join(dest, "dev/loop0")) == errno.EACCES
    assert not [n for n in os.listdir(shared_dir) if "dockerless-new" in n or "dockerless-old" in n]

    # Idempotent: the same image again changes nothing, in check mode too.
    assert not pull_image(store, hostile_image, dest=dest).changed
    assert not pull_image(store, hostile_image, dest=dest, check_mode=True).changed


def test_an_existing_open_dest_is_closed_once(tmp_path, hostile_image, shared_dir):
    """A tree written 0755 (by an older version, or with dest_mode 0755) has only its top chmod'ed: reported as a
    change (check mode says it would), then no change."""
    store = Store(str(tmp_path / "store"))
    dest = os.path.join(shared_dir, "x")
    pull_image(store, hostile_image, dest=dest, dest_mode=0o755)
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o755
    inode = os.lstat(dest).st_ino

    check = pull_image(store, hostile_image, dest=dest, check_mode=True)
    assert check.changed and any("would set the mode" in a and "0700" in a for a in check.actions)
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o755
    result = pull_image(store, hostile_image, dest=dest)
    assert result.changed and result.rootfs_changed
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o700 and os.lstat(dest).st_ino == inode  # not rewritten
    assert _open_as_nobody(os.path.join(dest, "dev/loop0")) == errno.EACCES
    assert not pull_image(store, hostile_image, dest=dest).changed


def test_a_world_readable_tree_is_given_only_when_asked(tmp_path, hostile_image, shared_dir):
    """dest_mode 0755 is the user's explicit choice, and the hazard is real: nobody runs the image's setuid-root
    binary as root. (This is what the default prevents; it also shows the tests above can see the hole.)"""
    store = Store(str(tmp_path / "store"))
    dest = os.path.join(shared_dir, "x")
    pull_image(store, hostile_image, dest=dest, dest_mode=0o755)
    _assert_hostile_content(dest)
    proc = _run_as_nobody(os.path.join(dest, "bin/id"))
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


@pytest.mark.parametrize("text", ["0700", "700", "0755", 0o750])
def test_dest_mode_accepts(text):
    assert parse_dest_mode(text) == (int(text, 8) if isinstance(text, str) else text)


@pytest.mark.parametrize("text", ["04755", "1777", "0500", "0644", "rwx", "", "0o", 0o4700, True])
def test_dest_mode_refuses(text):
    with pytest.raises(StoreError, match="dest mode"):
        parse_dest_mode(text)


def _cli(argv: list[str], prog: str) -> tuple[int, str]:
    from ansible_collections.dockerless.containers.plugins.module_utils.cli import main as cli

    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, prog=prog, stdout=out, stderr=err, stdin=io.StringIO(""))
    return code, out.getvalue() + err.getvalue()


def test_cli_pull_and_image_download_dest_trees(tmp_path, hostile_image, shared_dir):
    """``dockerless pull --dest`` and the seed's ``image-download --dest``: 0700 by default, ``--dest-mode`` to
    widen it, a bad mode refused before anything is written."""
    store = str(tmp_path / "store")
    pulled, downloaded = os.path.join(shared_dir, "pulled"), os.path.join(shared_dir, "downloaded")
    code, output = _cli(["pull", "-q", "--store", store, "--dest", pulled, hostile_image], "dockerless")
    assert code == 0, output
    assert stat.S_IMODE(os.lstat(pulled).st_mode) == 0o700
    with pytest.raises(PermissionError):
        _run_as_nobody(os.path.join(pulled, "bin/id"))

    code, output = _cli(["-q", "--store", store, "--dest", downloaded, hostile_image], "image-download")
    assert code == 0, output
    assert stat.S_IMODE(os.lstat(downloaded).st_mode) == 0o700
    assert _open_as_nobody(os.path.join(downloaded, "dev/loop0")) == errno.EACCES
    code, output = _cli(["-q", "--store", store, "--dest-mode", "0755", "--dest", downloaded, hostile_image],
                        "image-download")
    assert code == 0, output
    assert stat.S_IMODE(os.lstat(downloaded).st_mode) == 0o755

    code, output = _cli(["pull", "--store", store, "--dest-mode", "4755", "--dest", os.path.join(shared_dir, "bad"),
                         hostile_image], "dockerless")
    assert code == 1 and "dest mode 4755: expected permission bits" in output, output
    assert not os.path.lexists(os.path.join(shared_dir, "bad"))
