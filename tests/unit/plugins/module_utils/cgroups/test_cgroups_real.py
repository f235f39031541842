# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cgroups engine against the real kernel (root). Runs on v1, v2 and hybrid hosts alike: expectations that
differ by version say so. Every cgroup lives under a random ``dockerless-test-<hex>/`` removed afterwards."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import detect
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import MAX, Limits
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

pytestmark = pytest.mark.root
MiB = 1 << 20


@pytest.fixture(scope="module")
def hierarchy():
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    try:
        return detect()
    except CgroupError as exc:
        pytest.skip(f"no usable cgroup hierarchy: {exc}")


@pytest.fixture
def prefix(hierarchy):
    name = f"dockerless-test-{secrets.token_hex(4)}"
    yield name
    roots = [hierarchy]
    if hierarchy.mode == "hybrid":
        roots.append(detect(hierarchy.unified))
    for h in roots:
        Cgroup(name, hierarchy=h).remove(force=True)
        assert not Cgroup(name, hierarchy=h).exists()


@pytest.fixture
def children():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _spawn(children: list, code: str) -> subprocess.Popen:
    """A Python child that waits for one line on stdin before running ``code``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import sys\nsys.stdin.readline()\n{code}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    children.append(proc)
    return proc


def test_apply_read_plan_remove_roundtrip(hierarchy, prefix):
    cg = Cgroup(f"{prefix}/web", hierarchy=hierarchy)
    limits = Limits(memory="64m", pids=32, cpus=0.5, cpu_weight=50, cpuset_cpus="0", memory_reservation="16m")
    planned = cg.plan(limits)
    assert not cg.exists() and set(planned) == set(limits.requested())
    assert cg.apply(limits) == planned
    now = cg.read_limits()
    for key, (_before, after) in planned.items():
        assert now[key] == after, key
    assert now["memory"] == 64 * MiB and now["pids"] == 32 and now["cpus"] == 0.5 and now["cpu_weight"] == 50
    assert cg.plan(limits) == {} and cg.apply(limits) == {}
    assert all(os.path.isdir(p) for p in cg.info()["paths"].values())
    assert cg.apply(Limits(memory="max", pids="max", cpus="max")) == {
        "memory": (64 * MiB, MAX), "pids": (32, MAX), "cpus": (0.5, MAX)
    } | ({"memory_swap": (now["memory_swap"], MAX)} if now["memory_swap"] not in (None, MAX) else {})
    assert cg.remove() is True and not cg.exists()


def test_refused_value_restores_what_was_written(hierarchy, prefix):
    cg = Cgroup(f"{prefix}/undo", hierarchy=hierarchy)
    cg.apply(Limits(memory="64m", pids=10))
    before = cg.read_limits()
    # memory is written first, then the kernel refuses a CPU that does not exist (ERANGE on v1, EINVAL on v2)
    with pytest.raises(CgroupError, match=r"setting cpuset_cpus .*subset of the parent.*Undone: 1 write\(s\)"):
        cg.apply(Limits(memory="32m", cpuset_cpus="0-4095", pids=20))
    assert cg.read_limits() == before


def test_memory_below_usage_is_refused_on_v1(hierarchy, prefix, children):
    if hierarchy.mount("memory").version != 1:
        pytest.skip("cgroup v2 does not refuse memory.max below usage: it reclaims or OOM-kills instead")
    if open("/proc/swaps").read().strip().count("\n"):
        pytest.skip("swap is active: the kernel would swap the usage out instead of refusing the limit")
    cg = Cgroup(f"{prefix}/busy", hierarchy=hierarchy)
    cg.apply(Limits(pids=50))
    hog = _spawn(children, "b = b'x' * (100 * 2**20)\nprint('ready', flush=True)\nsys.stdin.readline()")
    assert cg.add_pids([hog.pid]) == [hog.pid]
    hog.stdin.write("go\n")
    hog.stdin.flush()
    assert hog.stdout.readline().strip() == "ready"
    assert cg.stats()["memory_usage"] >= 100 * MiB
    with pytest.raises(CgroupError, match=r"setting memory .*Device or resource busy; the cgroup already uses more"):
        cg.apply(Limits(memory="32m"))
    assert cg.read_limits()["memory"] == MAX and hog.poll() is None


def test_add_pids_stats_and_forced_remove(hierarchy, prefix, children):
    cg = Cgroup(f"{prefix}/procs", hierarchy=hierarchy)
    cg.apply(Limits(pids=20))
    spinner = _spawn(children, "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3:\n pass\n"
                               "print('done', flush=True)\nsys.stdin.readline()")
    assert cg.pids_to_move([spinner.pid]) == [spinner.pid]
    assert cg.add_pids([spinner.pid]) == [spinner.pid]
    assert cg.add_pids([spinner.pid]) == []
    assert cg.pids() == [spinner.pid]
    mine = open(f"/proc/{spinner.pid}/cgroup").read()
    assert f"/{prefix}/procs\n" in mine
    spinner.stdin.write("go\n")
    spinner.stdin.flush()
    assert spinner.stdout.readline().strip() == "done"
    stats = cg.stats()
    assert stats["pids_current"] == 1
    assert stats["cpu_usage_usec"] >= 250000  # the 0.3 s of CPU the child burnt inside the cgroup
    with pytest.raises(CgroupError, match=rf"still has 1 process\(es\) \({spinner.pid}\)"):
        cg.remove()
    assert cg.remove(force=True) is True
    assert spinner.wait(timeout=10) == -signal.SIGKILL
    assert not cg.exists()


def test_unified_mount_of_a_hybrid_host_is_a_v2_hierarchy(hierarchy, prefix, children):
    if hierarchy.mode != "hybrid":
        pytest.skip(f"not a hybrid host ({hierarchy.mode})")
    unified = detect(hierarchy.unified)
    assert unified.mode == "v2"
    cg = Cgroup(f"{prefix}/u", hierarchy=unified)
    if unified.mount("memory") is None:
        with pytest.raises(CgroupError, match=r"memory controller is not available \(v2 hierarchy at"):
            cg.plan(Limits(memory="1g"))
    assert cg.apply(Limits()) == {}
    sleeper = _spawn(children, "")
    assert cg.add_pids([sleeper.pid]) == [sleeper.pid]
    assert f"0::/{prefix}/u\n" in open(f"/proc/{sleeper.pid}/cgroup").read()
    assert isinstance(cg.stats()["cpu_usage_usec"], int)
    start = time.monotonic()
    assert cg.remove(force=True) is True
    assert sleeper.wait(timeout=10) == -signal.SIGKILL and time.monotonic() - start < 10
