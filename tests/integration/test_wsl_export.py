# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""wsl_export through ansible-playbook on the busybox image of the seeded registry and on a bash+ls image built
here: listings, trees against ``umoci unpack`` (the peer tool) and whiteouts.merge, a chroot into the extracted
archive (what WSL does), the WSL config files, determinism, idempotence, and import_to without wsl.exe."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import harness
import pytest
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.wsl import export as wsl

MODULE = "dockerless.containers.wsl_export"


def play(run_playbook, tmp_path: Path, tasks: list[dict]) -> dict[str, dict]:
    """One ansible-playbook run for a whole sequence; results by task name (``failed``/``changed`` always set)."""
    path = tmp_path / f"play-{secrets.token_hex(3)}.yml"
    path.write_text(harness.to_yaml([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]) + "\n")
    run = run_playbook(path)
    results = {}
    for task in run.tasks:
        res = dict(task.result, failed=task.failed)
        res.setdefault("changed", False)
        results[task.task] = res
    assert len(results) == len(tasks), run.stderr[-3000:] + run.stdout[-2000:]
    return results


def extract(archive: str, dest: Path) -> Path:
    dest.mkdir()
    subprocess.run(["tar", "-xpf", archive, "-C", str(dest), "--numeric-owner", "--same-owner"], check=True)
    return dest


def sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture(scope="module")
def exported(seeded_registry, tmp_path_factory):
    """Pull busybox, build bash+ls, and run every export of this file in ONE playbook (once per module)."""
    tmp_path = tmp_path_factory.mktemp("wsl-export")
    store = str(tmp_path / "store")
    out = tmp_path / "out"
    out.mkdir()
    busybox = seeded_registry.ref("busybox")
    tools = "127.0.0.1:5000/me/tools:1"
    bb_tar = {"image": busybox, "dest": str(out / "busybox.tar"), "store": store}
    tasks = [
        {"name": "pull", "dockerless.containers.image_pull": {"name": busybox, "store": store}},
        {"name": "build",
         "dockerless.containers.image_build": {"name": tools, "executables": ["bash", "ls"], "store": store}},
        {"name": "check", MODULE: bb_tar, "check_mode": True, "diff": True},
        {"name": "real", MODULE: bb_tar, "diff": True},
        {"name": "check again", MODULE: bb_tar, "check_mode": True},
        {"name": "real again", MODULE: bb_tar},
        {"name": "twin", MODULE: dict(bb_tar, dest=str(out / "busybox-twin.tar"))},
        {"name": "gz", MODULE: dict(bb_tar, dest=str(out / "busybox.tar.gz"))},
        {"name": "wsl", MODULE: {
            "image": busybox, "dest": str(out / "busybox.wsl"), "store": store, "default_user": "dev",
            "wsl_conf": {"boot": {"systemd": False}, "network": {"hostname": "dev"}},
            "distribution_conf": {"oobe": {"defaultName": "busybox-dev", "defaultUid": 1000},
                                  "shortcut": {"enabled": False}},
            "fix": ["all"]}},
        {"name": "tools", MODULE: {"image": tools, "dest": str(out / "tools.tar.gz"), "store": store}},
        {"name": "import", MODULE: dict(bb_tar, dest=str(out / "import.tar"),
                                        import_to={"name": "bb", "install_location": "C:\\WSL\\bb"}),
         "ignore_errors": True},
    ]
    return play(harness.run_playbook, tmp_path, tasks), store, out, busybox, tools


@pytest.mark.root
def test_busybox_export_sequence_and_tree(exported, tmp_path):
    r, store, out, busybox, _tools = exported
    assert not r["pull"]["failed"] and not r["build"]["failed"], r["pull"]["msg"] + r["build"]["msg"]
    check, real = r["check"], r["real"]
    assert not check["failed"], check["msg"]
    assert check["changed"] and check["diff"] == {"before": {"sha256": None}, "after": {"sha256": check["sha256"]}}
    assert not real["failed"] and real["changed"] and real["sha256"] == check["sha256"]
    assert real["format"] == "tar" and real["size"] == os.path.getsize(out / "busybox.tar")
    assert sha256(str(out / "busybox.tar")) == real["sha256"]
    assert not r["check again"]["changed"] and not r["real again"]["changed"]
    assert r["twin"]["sha256"] == real["sha256"]  # determinism: a second export, same bytes
    # Microsoft's rules on this image: it ships no /etc/resolv.conf, has root, no hashes: nothing to say.
    assert real.get("warnings", []) == [] and real["fixed"] == []

    listing = subprocess.run(["tar", "-tvf", str(out / "busybox.tar"), "--numeric-owner"], capture_output=True,
                             text=True, check=True).stdout.splitlines()
    names = [line.split()[5] for line in listing]
    assert names == sorted(names, key=lambda n: n.rstrip("/").split("/"))
    assert not any(n.startswith(("/", "./")) for n in names)  # the tar's root is the filesystem root
    assert any(line.startswith("-rwxr-xr-x 0/0") and line.endswith(" bin/busybox") for line in listing)
    assert "bin/sh -> busybox" in "\n".join(listing)

    # The tree equals what umoci (the peer tool) unpacks, and what whiteouts.merge makes of the layer folders.
    ours = tree_manifest(str(extract(str(out / "busybox.tar"), tmp_path / "ours")))
    subprocess.run(["umoci", "unpack", "--image", f"{store}:{busybox}", str(tmp_path / "bundle")], check=True,
                   capture_output=True)
    theirs = tree_manifest(str(tmp_path / "bundle" / "rootfs"))
    ours.pop("."), theirs.pop(".")
    assert ours == theirs
    image = Store(store).image(busybox)
    merge([Store(store).layer_dir(la["diff_id"]) for la in image.layers], str(tmp_path / "flat"))
    flat = tree_manifest(str(tmp_path / "flat"))
    flat.pop(".")
    assert ours == flat

    # What WSL does with it: a shell in that root.
    ok = subprocess.run(["chroot", str(tmp_path / "ours"), "/bin/sh", "-c", "echo ok"], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout) == (0, "ok\n"), ok.stderr


@pytest.mark.root
def test_wsl_format_config_files_and_gzip(exported, tmp_path):
    r, _store, out, _busybox, _tools = exported
    for name in ("gz", "wsl"):
        assert not r[name]["failed"], r[name]["msg"]
    assert r["gz"]["format"] == "tar.gz" and r["wsl"]["format"] == "wsl"
    for path in (out / "busybox.tar.gz", out / "busybox.wsl"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # both gzip
    root = extract(str(out / "busybox.wsl"), tmp_path / "wslroot")
    assert wsl.parse_ini((root / "etc/wsl.conf").read_text()) == {
        "boot": {"systemd": "false"}, "network": {"hostname": "dev"}, "user": {"default": "dev"}}
    assert wsl.parse_ini((root / "etc/wsl-distribution.conf").read_text()) == {
        "oobe": {"defaultName": "busybox-dev", "defaultUid": "1000"}, "shortcut": {"enabled": "false"}}
    for conf in ("etc/wsl.conf", "etc/wsl-distribution.conf"):
        st = os.stat(root / conf)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert "dev:x:1000:1000::/home/dev:/bin/sh" in (root / "etc/passwd").read_text()
    home = os.stat(root / "home/dev")
    assert (home.st_uid, home.st_gid) == (1000, 1000)
    who = subprocess.run(["chroot", "--userspec=1000:1000", str(root), "/bin/sh", "-c", "id -un; cd ~ && pwd"],
                         capture_output=True, text=True, env={"HOME": "/home/dev", "PATH": "/usr/sbin:/usr/bin:/bin"},
                         check=False)
    assert who.stdout.split() == ["dev", "/home/dev"], who.stderr


@pytest.mark.root
def test_bash_ls_image_export_runs(exported, tmp_path):
    r, _store, out, _busybox, _tools = exported
    res = r["tools"]
    assert not res["failed"], res["msg"]
    # No /etc/passwd at all in this image: that breaks Microsoft's root-user rule, and we say so.
    assert any("no root user with uid 0" in w for w in res.get("warnings", []))
    root = extract(str(out / "tools.tar.gz"), tmp_path / "tools")
    ok = subprocess.run(["chroot", str(root), "/usr/bin/bash", "-c", "echo ok; ls /"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split()[0] == "ok" and {"lib", "lib64", "usr"} <= set(ok.stdout.split()[1:])


@pytest.mark.root
def test_import_to_without_wsl_exe_fails_clearly(exported):
    r, _store, out, _busybox, _tools = exported
    res = r["import"]
    assert res["failed"]
    assert "wsl.exe is not reachable" in res["msg"] and "wsl.exe --import bb C:\\WSL\\bb" in res["msg"]
    assert not (out / "import.tar").exists()


def test_chroot_tool_present():
    if shutil.which("chroot") is None:
        pytest.fail("chroot (coreutils) is missing")
