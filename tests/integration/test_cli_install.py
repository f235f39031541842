# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bin/dockerless and the seed's wrappers from a collection built and installed by ansible-galaxy, the way
users get it: executable, loading the installed copy's module_utils (not the checkout's)."""

from __future__ import annotations

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
