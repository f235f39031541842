# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine that the modules load on a host (engine_install's digest directory) and the copy that container_run
installs for the systemd units are made from what Ansible really ships: engine_install's AnsiballZ payload (a zip
of the module_utils it imports), not the checkout. A real ansible-playbook run of engine_install keeps its payload
(ANSIBLE_KEEP_REMOTE_FILES); the test installs the units' copy from that zip alone in a fresh interpreter, then runs
the copy's command line, with nothing of the collection on its path. container_run's own payload carries the loader
only."""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import subprocess
import sys
import zipfile

_INSTALL = r"""
import sys, zipfile
sys.path.insert(0, sys.argv[1])   # what AnsiballZ does with its zip
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import systemd
assert systemd.__file__.startswith(sys.argv[1]), systemd.__file__
units = systemd.Units(sys.argv[2] + "/store", unit_dir=sys.argv[2] + "/units", boot_dir=sys.argv[2] + "/boot",
                      python=sys.executable, running=False, bin_link=None)
names = {n for n in zipfile.ZipFile(sys.argv[1]).namelist() if "/module_utils/" in n}
sources = systemd.engine_sources()
missing = [s for s in sources if not any(n.endswith(s.replace(".", "/") + ".py")
                                         or n.endswith(s.replace(".", "/") + "/__init__.py") for n in names)]
assert not missing, missing
plan = units.plan("web", "always")
units.apply(plan)
print(len(plan.files))
"""


def _payload(remote, module: str, dest) -> None:
    (wrapper,) = glob.glob(str(remote / "*" / f"AnsiballZ_{module}.py"))
    with open(wrapper, encoding="utf-8") as handle:
        zip_data = re.search(r"zip_data='([A-Za-z0-9+/=]+)'", handle.read()).group(1)
    dest.write_bytes(base64.b64decode(zip_data))


def test_container_run_ships_the_loader_only(run_module, tmp_path):
    remote = tmp_path / "remote"
    result = run_module("container_run", {"name": "no-such-engine-copy", "state": "absent",
                                          "store": str(tmp_path / "store")},
                        env={"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote)})
    assert not result["failed"] and not result["changed"], result
    payload = tmp_path / "payload.zip"
    _payload(remote, "container_run", payload)
    ours = sorted(n.split("/module_utils/", 1)[1] for n in zipfile.ZipFile(payload).namelist()
                  if "/dockerless/containers/plugins/module_utils/" in n)
    assert ours == ["__init__.py", "common.py", "engine_loader.py", "errors.py"], ours


def test_engine_install_ships_and_installs_the_whole_command_line(run_module, tmp_path):
    remote = tmp_path / "remote"
    result = run_module("engine_install", {"root": str(tmp_path / "engines")},
                        env={"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote)})
    assert not result["failed"] and result["changed"], result
    payload = tmp_path / "payload.zip"
    _payload(remote, "engine_install", payload)

    root = tmp_path / "host"
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _INSTALL, str(payload), str(root)], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 60                       # the command line's modules, their packages, the entry

    payload.unlink()                                   # the copy stands alone, as after the task ended
    entry = root / "boot" / "bin" / "dockerless"
    ps = subprocess.run([sys.executable, "-I", "-S", str(entry), "ps", "-a", "--json", "--store", str(root / "store")],
                        capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"},
                        check=False)
    assert ps.returncode == 0 and json.loads(ps.stdout) == [], ps.stderr
    assert os.path.isfile(root / "boot" / "ansible_collections" / "dockerless" / "containers" / "plugins" /
                          "module_utils" / "registry" / "client.py")
