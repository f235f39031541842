# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bin/dockerless and the seed's wrappers from a collection built and installed by ansible-galaxy, the way
users get it: executable, loading the installed copy's module_utils (not the checkout's)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
GALAXY = CHECKOUT / ".venv" / "bin" / "ansible-galaxy"
SCRIPTS = ("dockerless", "image-download", "image-upload", "run", "run-chroot")


def test_scripts_of_an_installed_collection(tmp_path):
    subprocess.run([str(GALAXY), "collection", "build", "--force", "--output-path", str(tmp_path / "dist"), "."],
                   cwd=CHECKOUT, check=True, capture_output=True, timeout=300)
    [tarball] = (tmp_path / "dist").iterdir()
    subprocess.run([str(GALAXY), "collection", "install", "--force", "-p", str(tmp_path / "site"), str(tarball)],
                   check=True, capture_output=True, timeout=300)
    root = tmp_path / "site" / "ansible_collections" / "dockerless" / "containers"
    for name in SCRIPTS:
        assert stat.S_IMODE(os.stat(root / "bin" / name).st_mode) == 0o755, name
    proc = subprocess.run([str(root / "bin" / "dockerless"), "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("dockerless (dockerless.containers ") and proc.stdout.endswith(f" from {root}\n")
    proc = subprocess.run([str(root / "bin" / "dockerless"), "images", "--store", str(tmp_path / "store")],
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (0, "IMAGE  DIGEST  PLATFORM  SIZE  CREATED\n"), proc.stderr
    for name in SCRIPTS[1:]:
        proc = subprocess.run([str(root / "bin" / name), "--help"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {name} "), proc.stderr


def test_modules_of_an_installed_collection(tmp_path, seeded_registry):
    """The modules from the tarball, found through ANSIBLE_COLLECTIONS_PATH, pull and list an image."""
    subprocess.run([str(GALAXY), "collection", "build", "--force", "--output-path", str(tmp_path / "dist"), "."],
                   cwd=CHECKOUT, check=True, capture_output=True, timeout=300)
    [tarball] = (tmp_path / "dist").iterdir()
    subprocess.run([str(GALAXY), "collection", "install", "--force", "-p", str(tmp_path / "site"), str(tarball)],
                   check=True, capture_output=True, timeout=300)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "site"), ANSIBLE_NOCOLOR="1")
    store = tmp_path / "store"
    name = seeded_registry.ref("busybox")
    base = [str(CHECKOUT / ".venv" / "bin" / "ansible"), "localhost", "-c", "local", "-i", "localhost,",
            "-e", f"ansible_python_interpreter={CHECKOUT / '.venv' / 'bin' / 'python'}"]
    pulled = subprocess.run(base + ["-m", "dockerless.containers.image_pull", "-a", f"name={name} store={store}"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert pulled.returncode == 0, pulled.stdout[-3000:] + pulled.stderr[-3000:]
    # ad-hoc output: "localhost | CHANGED => {...}"
    result = json.loads(pulled.stdout[pulled.stdout.index("{"):])
    assert result["changed"] is True and result["image"]["name"] == name
    # The module that ran is the installed copy, not the checkout's.
    listed = subprocess.run(base + ["-m", "dockerless.containers.image_info", "-a", f"store={store}", "-vvv"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert str(tmp_path / "site" / "ansible_collections" / "dockerless" / "containers") in listed.stdout + listed.stderr
    info = json.loads(listed.stdout[listed.stdout.index("localhost | SUCCESS => ") + 23:])
    assert [image["name"] for image in info["images"]] == [name]
