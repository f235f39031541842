# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/deb-ensure.sh, the one Debian-package step of install-deps.sh, vm/install-deps.sh and bench.sh."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "deb-ensure.sh")


def run(*args: str, user: bool = False) -> subprocess.CompletedProcess:
    argv = [SCRIPT, *args]
    if user:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def test_installed_packages_need_nothing():
    proc = run("t", "coreutils", "bash")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.root
def test_missing_package_without_root_names_it_and_what_to_do():
    assert shutil.which("setpriv"), "setpriv (util-linux) is part of Debian's base system"
    proc = run("who-am-i", "coreutils", "no-such-package-dockerless", user=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("who-am-i: missing Debian packages no-such-package-dockerless; run as root or "
                                   "install them")


def test_the_install_scripts_use_it():
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    for path in ("scripts/install-deps.sh", "scripts/vm/install-deps.sh", "bench/bench.sh"):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        assert "deb-ensure.sh" in text and "dpkg-query" not in text, path
