# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rootless containers: the engine run as ``nobody`` (setpriv from root) with a user namespace mapping nobody
to root. The runs happen in a child interpreter (Debian's /usr/bin/python3, readable by nobody) that prints
JSON; this test only prepares a world-readable image and store and checks the answers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs, sections

CHECKOUT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
COLLECTIONS = os.path.join(CHECKOUT, ".build", "collections")
PYTHON = "/usr/bin/python3"
NOBODY = 65534
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to prepare files and switch to nobody"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
    pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)"),
    pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs a python3 that nobody can run"),
]

DRIVER = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec
base, job = sys.argv[2], json.loads(sys.argv[3])
rt = Runtime(os.path.join(base, "store"))
spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[os.path.join(base, "image")], userns=None,
                  name=job.get("name"), command=job["command"], **job.get("kwargs", {}))
try:
    if job.get("name"):
        info = rt.apply(rt.plan(job["name"], "started", spec))
        out = {"state": info.state, "pid": info.pid, "supervisor": info.supervisor_pid}
        time.sleep(0.3)
        out["logs"] = rt.logs(job["name"])[0].decode()
        rt.remove(job["name"])
        out["after"] = [e for e in os.listdir(rt.containers_dir) if not e.startswith(".one-shot-")]
    else:
        r = rt.run(spec, timeout=30)
        out = {"rc": r.rc, "stdout": r.stdout.decode(), "stderr": r.stderr.decode(), "mode": r.rootfs_mode,
               "namespaces": spec.namespaces}
except DockerlessError as exc:
    out = {"error": str(exc)}
print(json.dumps(out))
"""

PROBE = r"""
echo "== id"; id
echo "== map"; cat /proc/self/uid_map
echo "== pid"; echo $$
echo "== hostname"; hostname
echo "== net"; ls /sys/class/net
echo "== caps"; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status
echo "== dev"; ls -A /dev
echo "== write"; echo hi > /root/made && echo ok
echo "== sysrq"; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1
true
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tempfile.mkdtemp(prefix="dockerless-rootless-")
    os.chmod(base, 0o755)
    make_busybox_rootfs(os.path.join(base, "image"))
    for top, dirs, files in os.walk(base):
        for name in dirs + files:
            os.lchown(os.path.join(top, name), NOBODY, NOBODY)
    os.chown(base, NOBODY, NOBODY)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def as_nobody(world: str, job: dict) -> dict:
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", PYTHON, "-I", "-c", DRIVER,
         COLLECTIONS, world, json.dumps(job)],
        capture_output=True, text=True, timeout=120, cwd="/", check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": world, "XDG_RUNTIME_DIR": world})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_rootless_container_maps_the_user_to_root(world):
    result = as_nobody(world, {"command": ["/bin/sh", "-c", PROBE], "kwargs": {"hostname": "rootless"}})
    assert result.get("rc") == 0, result
    assert result["namespaces"][0] == "user" and result["mode"] == "overlay"
    out = sections(result["stdout"])
    assert out["id"] == "uid=0(root) gid=0(root)"              # setgroups is denied: no supplementary groups
    assert out["map"].split() == ["0", str(NOBODY), "1"]
    assert (out["pid"], out["hostname"], out["net"]) == ("1", "rootless", "lo")
    assert "CapEff:\t00000000a80425fb" in out["caps"] and "NoNewPrivs:\t1" in out["caps"]
    assert out["dev"].split() == ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
                                  "stdin", "stdout", "tty", "urandom", "zero"]
    assert out["write"] == "ok"
    assert "Read-only file system" in out["sysrq"]
    # The one-shot's pool slot was cleaned by nobody itself: the upper dir the container wrote to is gone, no
    # spec.json; the overlay's work dir (mode 000) was renamed away for the next run to remove.
    containers = os.path.join(world, "store", "containers")
    assert sorted(os.listdir(containers)) == [".one-shot-0", ".one-shot-0.etc"]   # the slot and its /etc files
    assert os.listdir(os.path.join(containers, ".one-shot-0")) == ["work"]
    stale = os.listdir(os.path.join(containers, ".one-shot-0", "work"))
    assert len(stale) == 1 and stale[0].startswith("stale-")


def test_rootless_refuses_users_other_than_root(world):
    result = as_nobody(world, {"command": ["/bin/id"], "kwargs": {"user": "app"}})
    assert "maps only root" in result["error"]


def test_rootless_detached_container(world):
    result = as_nobody(world, {"name": "rl", "command": ["sh", "-c", "echo up; sleep 30"],
                               "kwargs": {"stop_timeout": 0}})
    assert result["state"] == "running" and result["pid"] and result["supervisor"]
    assert result["logs"] == "up\n" and result["after"] == []
    # The supervisor (nobody's process) ends once it released its lock.
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{result['supervisor']}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{result['supervisor']}")


def test_rootless_volumes_rw_and_read_only_all_the_way_down(world):
    # In a user namespace the host's mounts come locked; cloning them and adding flags still works.
    vol = os.path.join(world, "vol")
    os.makedirs(vol, exist_ok=True)
    os.chown(vol, NOBODY, NOBODY)
    name = f"dl-rootless-{os.getpid()}"
    script = (f"echo hi > /vol/f && cat /vol/f; (touch /host/dev/shm/{name}) 2>/dev/null && echo WROTE-SHM; "
              "grep ' /host' /proc/self/mountinfo | grep -v ' ro,' | head -3; echo done")
    try:
        result = as_nobody(world, {"command": ["/bin/sh", "-c", script],
                                   "kwargs": {"volumes": [f"{vol}:/vol", "/:/host:ro"]}})
    finally:
        if os.path.exists(f"/dev/shm/{name}"):
            os.unlink(f"/dev/shm/{name}")
    assert result.get("rc") == 0, result
    assert result["stdout"].splitlines() == ["hi", "done"], result["stdout"]
