# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dockerless.containers.cgroup_limit run by ansible-playbook against localhost, on the real kernel (root).

Works on cgroup v1, v2 and hybrid hosts (the molecule VM is v2). Every cgroup is created under a random
``dockerless-test-<hex>/`` and removed afterwards with every process left in it; every child process is
killed and reaped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import detect

pytestmark = pytest.mark.root
MiB = 1 << 20


@pytest.fixture
def prefix():
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    name = f"dockerless-test-{secrets.token_hex(4)}"
    yield name
    cg = Cgroup(name)
    cg.remove(force=True)
    assert not cg.exists()


@pytest.fixture
def children():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def spawn(children: list, code: str) -> subprocess.Popen:
    """A Python child that waits for a line on stdin (so it can be moved into a cgroup first), then runs code."""
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import sys\nsys.stdin.readline()\n{code}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    children.append(proc)
    return proc


def go(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    return proc.communicate("go\n", timeout=timeout)


def swap_active() -> bool:
    with open("/proc/swaps") as handle:
        return len(handle.read().strip().splitlines()) > 1


def test_memory_limit_oom_kills_a_hog(run_module, prefix, children):
    # 200 MB really written (bytes * n touches every page) under a 64 MB limit
    hog = spawn(children, "data = b'x' * (200 * 2**20)\nprint('survived', flush=True)")
    args = dict(path=f"{prefix}/oom", memory="64m", pids_to_add=[hog.pid])
    if swap_active():
        args["memory_swap"] = "64m"  # no room to swap out either
    first = run_module("cgroup_limit", args)
    assert not first["failed"], first["msg"]
    assert first["changed"] is True and first["pids_added"] == [hog.pid]
    assert first["limits"]["memory"] == 64 * MiB
    assert first["stats"]["oom_kills"] == 0
    out, _err = go(hog)
    assert hog.returncode == -signal.SIGKILL and "survived" not in out
    again = run_module("cgroup_limit", dict(args, pids_to_add=[]))
    assert not again["failed"], again["msg"]
    assert again["changed"] is False
    assert again["stats"]["oom_kills"] >= 1
    assert again["stats"]["memory_peak"] is None or again["stats"]["memory_peak"] <= 64 * MiB


# The same bounded fork bomb as the molecule VM test runs (one copy, read as text).
with open(os.path.join(os.path.dirname(__file__), "fork_bomb.py"), encoding="utf-8") as _bomb:
    BOMB = _bomb.read()


def test_pids_limit_stops_a_fork_bomb(run_module, prefix, children):
    bomb = spawn(children, BOMB)
    result = run_module("cgroup_limit", dict(path=f"{prefix}/bomb", pids=16, pids_to_add=[bomb.pid]))
    assert not result["failed"], result["msg"]
    assert result["limits"]["pids"] == 16 and result["stats"]["pids_current"] == 1
    out, err = go(bomb)
    assert bomb.returncode == 0, err
    report = json.loads(out)
    assert report == {"forked": 15, "eagain": True}  # 16 tasks: the bomb itself and 15 children
    gone = run_module("cgroup_limit", dict(path=f"{prefix}/bomb", state="absent"))
    assert not gone["failed"], gone["msg"]
    assert gone["changed"] is True and not Cgroup(f"{prefix}/bomb").exists()


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    limits: &limits
      path: "{{ cg }}"
      memory: 64m
      pids: 50
      cpus: 0.5
      cpu_weight: 200
      cpuset_cpus: "0"
  tasks:
    - name: check create
      dockerless.containers.cgroup_limit: *limits
      check_mode: true
      diff: true
    - name: create
      dockerless.containers.cgroup_limit: *limits
      diff: true
    - name: check again
      dockerless.containers.cgroup_limit: *limits
      check_mode: true
    - name: again
      dockerless.containers.cgroup_limit: *limits
      diff: true
    - name: check change
      dockerless.containers.cgroup_limit:
        <<: *limits
        memory: 128m
      check_mode: true
      diff: true
    - name: unchanged after check
      dockerless.containers.cgroup_limit: *limits
    - name: escape
      dockerless.containers.cgroup_limit:
        path: "{{ cg }}/../../etc"
        pids: 5
      ignore_errors: true
    - name: check absent
      dockerless.containers.cgroup_limit:
        path: "{{ cg }}"
        state: absent
      check_mode: true
    - name: absent
      dockerless.containers.cgroup_limit:
        path: "{{ cg }}"
        state: absent
      diff: true
    - name: absent again
      dockerless.containers.cgroup_limit:
        path: "{{ cg }}"
        state: absent
"""


def test_check_mode_idempotence_and_absent(run_playbook, prefix, tmp_path):
    path = f"{prefix}/seq"
    playbook = tmp_path / "cgroup.yml"
    playbook.write_text(PLAYBOOK)
    run = run_playbook(playbook, {"cg": path})
    assert not run.failed, run.stderr[-3000:] + run.stdout[-3000:]
    res = {t.task: t.result for t in run}
    status = {t.task: t.status for t in run}

    check = res["check create"]
    assert check["changed"] is True
    assert check["diff"]["before"]["exists"] is False and check["diff"]["after"]["memory"] == 64 * MiB
    assert check["limits"]["pids"] == 50
    # "create" still had to create it: check mode wrote nothing
    create = res["create"]
    assert create["changed"] is True and create["diff"]["before"]["exists"] is False
    assert create["limits"]["memory"] == 64 * MiB and create["limits"]["cpus"] == 0.5
    assert create["limits"]["cpu_weight"] == 200 and create["limits"]["cpuset_cpus"] == "0"
    assert create["cgroup"]["path"] == path and create["cgroup"]["exists"] is True
    assert res["check again"]["changed"] is False
    assert res["again"]["changed"] is False
    assert res["again"]["diff"]["before"] == res["again"]["diff"]["after"] == {"exists": True}
    change = res["check change"]
    assert change["changed"] is True
    assert change["diff"]["before"]["memory"] == 64 * MiB and change["diff"]["after"]["memory"] == 128 * MiB
    assert change["limits"]["memory"] == 128 * MiB  # what it would be
    assert res["unchanged after check"]["changed"] is False  # the check run did not write 128m
    assert status["escape"] == "failed" and "component '..' is not allowed" in res["escape"]["msg"]
    assert res["check absent"]["changed"] is True
    absent = res["absent"]
    assert absent["changed"] is True  # the check run did not remove it
    assert absent["diff"]["before"]["exists"] is True and absent["diff"]["after"]["exists"] is False
    assert res["absent again"]["changed"] is False
    assert not Cgroup(path).exists()


BUSY_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: create
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", memory: 64m, pids: 5, pids_to_add: ["{{ pid }}"]}
      diff: true
    - name: again
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", memory: 64m, pids: 5, pids_to_add: ["{{ pid }}"]}
    - name: check absent
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", state: absent}
      check_mode: true
      ignore_errors: true
    - name: absent
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", state: absent}
      ignore_errors: true
    - name: refused value
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", memory: 32m, cpuset_cpus: 0-4095}
      ignore_errors: true
    - name: after refusal
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", memory: 64m, pids: 5}
      check_mode: true
    - name: forced
      dockerless.containers.cgroup_limit: {path: "{{ cg }}", state: absent, force: true}
"""


def test_absent_refuses_processes_unless_forced_and_refusals_are_undone(run_playbook, prefix, children, tmp_path):
    sleeper = spawn(children, "")
    path = f"{prefix}/busy"
    playbook = tmp_path / "busy.yml"
    playbook.write_text(BUSY_PLAYBOOK)
    run = run_playbook(playbook, {"cg": path, "pid": sleeper.pid})
    assert run.rc == 0, run.stderr[-3000:] + run.stdout[-3000:]
    res = {t.task: t.result for t in run}
    status = {t.task: t.status for t in run}
    assert status["create"] == "changed" and res["create"]["pids_added"] == [sleeper.pid]
    assert res["create"]["diff"]["after"]["processes"] == [sleeper.pid]
    assert status["again"] == "ok" and res["again"]["pids_added"] == []
    for task in ("check absent", "absent"):
        assert status[task] == "failed", task
        msg = res[task]["msg"]
        assert "still has" in msg and str(sleeper.pid) in msg and "force" in msg
    # memory (32m) is written before cpuset.cpus, which the kernel refuses: memory is put back to 64m
    assert status["refused value"] == "failed"
    msg = res["refused value"]["msg"]
    assert "setting cpuset_cpus" in msg and "Undone: 1 write(s) restored" in msg
    assert status["after refusal"] == "ok"  # still 64m: nothing left half written
    assert status["forced"] == "changed"
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not Cgroup(path).exists()


def test_container_name_maps_to_dockerless_path(run_module, prefix):
    name = f"t{secrets.token_hex(4)}"
    result = run_module("cgroup_limit", dict(container=name, memory="1g"), check=True, diff=True)
    assert not result["failed"], result["msg"]
    assert result["changed"] is True and result["cgroup"]["path"] == f"dockerless/{name}"
    mode = detect().mode
    assert result["cgroup"]["mode"] == mode
    assert all(p.endswith(f"/dockerless/{name}") for p in result["cgroup"]["paths"].values())
    assert not Cgroup(f"dockerless/{name}").exists()  # check mode created nothing
