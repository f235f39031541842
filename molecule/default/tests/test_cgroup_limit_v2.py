# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cgroup_limit on the VM's pure cgroup v2 hierarchy, through Ansible ("Real, in the molecule VM (v2):
the same three" as on the v1 host: a memory limit OOM-kills a hog moved into the cgroup, a pids limit stops a fork
bomb, idempotence and check mode).

The module runs on the VM by testinfra's Ansible backend (``host.ansible``), the way a playbook would run it. Each
test works in its own scratch cgroup ``molecule-verify-<hex>/…`` and removes it (``state: absent, force: true``),
so the scenario's converged state is left as it was.
"""

from __future__ import annotations

import json
import os
import secrets
import time

import pytest

MiB = 1 << 20
MODULE = "dockerless.containers.cgroup_limit"


def limit(host, check: bool = False, **args):
    """Run the module on the VM; ``host.ansible`` raises on ``failed``."""
    return host.ansible(MODULE, json.dumps(args), check=check)


@pytest.fixture
def scratch(host):
    name = f"molecule-verify-{secrets.token_hex(4)}"
    yield name
    limit(host, path=name, state="absent", force=True)
    assert not host.file(f"/sys/fs/cgroup/{name}").exists


def spawn(host, name: str, code: str) -> int:
    """Start ``code`` in python3 on the VM, held until ``go(host, name)``; its pid. Output goes to /run/NAME.out."""
    fifo = f"/run/{name}.go"
    script = f"open({fifo!r}).read()\n{code}"
    cmd = host.run(
        "rm -f %s && mkfifo %s && (nohup python3 -c %s > /run/%s.out 2>&1 & echo $!)", fifo, fifo, script, name,
    )
    assert cmd.rc == 0, cmd.stderr
    return int(cmd.stdout.strip())


def go(host, name: str, pid: int, timeout: float = 120) -> str:
    """Release the process and wait until it has ended; its output."""
    assert host.run("echo go > /run/%s.go", name).rc == 0
    deadline = time.monotonic() + timeout
    while host.file(f"/proc/{pid}").exists:
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout} s"
        time.sleep(1)
    return host.file(f"/run/{name}.out").content_string


def test_v2_memory_limit_oom_kills_a_hog_idempotence_and_check_mode(host, scratch):
    assert host.run("stat -fc %T /sys/fs/cgroup").stdout.strip() == "cgroup2fs"
    name = f"{scratch}-oom"
    # 200 MB really written (bytes * n touches every page) under a 64 MB limit, no swap either
    pid = spawn(host, name, "data = b'x' * (200 * 2**20)\nprint('survived', flush=True)")
    path = f"{scratch}/oom"
    first = limit(host, path=path, memory="64m", memory_swap="64m", pids_to_add=[pid])
    assert first["changed"] is True and first["pids_added"] == [pid]
    assert first["cgroup"]["mode"] == "v2" and first["cgroup"]["version"]["memory"] == 2
    assert first["limits"]["memory"] == 64 * MiB
    assert host.file(f"/sys/fs/cgroup/{path}/memory.max").content_string.strip() == str(64 * MiB)
    assert str(pid) in host.file(f"/sys/fs/cgroup/{path}/cgroup.procs").content_string.split()
    out = go(host, name, pid)
    assert "survived" not in out
    again = limit(host, path=path, memory="64m", memory_swap="64m")
    assert again["changed"] is False
    assert again["stats"]["oom_kills"] >= 1
    # check mode reports the change and writes nothing
    check = limit(host, check=True, path=path, memory="32m")
    assert check["changed"] is True
    assert host.file(f"/sys/fs/cgroup/{path}/memory.max").content_string.strip() == str(64 * MiB)


# The integration test's bounded fork bomb (one copy, read as text from the checkout).
with open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "integration", "fork_bomb.py"),
          encoding="utf-8") as _bomb:
    BOMB = _bomb.read()


def test_v2_pids_limit_stops_a_fork_bomb(host, scratch):
    name = f"{scratch}-bomb"
    pid = spawn(host, name, BOMB)
    path = f"{scratch}/bomb"
    result = limit(host, path=path, pids=16, pids_to_add=[pid])
    assert result["cgroup"]["version"]["pids"] == 2
    assert result["limits"]["pids"] == 16 and result["stats"]["pids_current"] == 1
    out = go(host, name, pid)
    assert json.loads(out) == {"forked": 15, "eagain": True}  # 16 tasks: the bomb itself and 15 children
    again = limit(host, path=path, pids=16)
    assert again["changed"] is False
    gone = limit(host, path=path, state="absent")
    assert gone["changed"] is True and not host.file(f"/sys/fs/cgroup/{path}").exists
