# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the Cgroup lifecycle over the controller table, on v1 / v2 / hybrid fake trees (conftest.py).

The fake trees live under tmp_path. ``FakeCgroupFs`` (fake_cgroupfs.py) plays the kernel's part for the three calls the engine
makes to change cgroupfs (write, mkdir, rmdir): interface files appear when a directory is created (v2: for the
controllers the parent enables), ``+memory`` edits cgroup.subtree_control, keyed files (v1 throttle, v2 io.max)
merge per device, v1 enforces memory <= memory+swap, and chosen files can be made to refuse a value. The real
kernel is exercised by test_cgroups_real.py and tests/integration/test_cgroup_limit.py.
"""

from __future__ import annotations

import errno
import os

import pytest
from fake_cgroupfs import put, read

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import cgroup as cgroups
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import (
    LIMIT_KEYS,
    MAX,
    Limits,
    weight_to_shares,
)
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------------------------
# cgroup v2
# ---------------------------------------------------------------------------------------------------------------


def test_v2_apply_creates_enables_and_writes(v2):
    cg = Cgroup("dockerless/web", cgroup_root=v2.root)
    assert not cg.exists()
    limits = Limits(memory="64m", memory_swap="96m", cpus=1.5, cpu_weight=200, pids=50, io_weight=300,
                    io_max=[{"device": "8:0", "rbps": "2m"}], cpuset_cpus="0", memory_reservation="16m")
    planned = cg.plan(limits)
    assert planned["memory"] == (None, 64 * MiB) and planned["io_max"][0] is None
    assert not os.path.exists(os.path.join(v2.root, "dockerless")) and v2.writes == []
    assert cg.apply(limits) == planned
    # controllers enabled top-down; the leaf's own subtree_control is left alone
    for parent in (v2.root, os.path.join(v2.root, "dockerless")):
        assert set(read(os.path.join(parent, "cgroup.subtree_control")).split()) == {
            "memory", "cpu", "pids", "io", "cpuset"}
    assert read(os.path.join(v2.root, "dockerless/web/cgroup.subtree_control")) == ""
    leaf = os.path.join(v2.root, "dockerless", "web")
    assert read(f"{leaf}/memory.max") == str(64 * MiB)
    assert read(f"{leaf}/memory.swap.max") == str(32 * MiB)  # v2 holds only the swap part
    assert read(f"{leaf}/memory.low") == str(16 * MiB)
    assert read(f"{leaf}/cpu.max") == "150000 100000"
    assert read(f"{leaf}/cpu.weight") == "200"
    assert read(f"{leaf}/pids.max") == "50"
    assert read(f"{leaf}/io.weight") == "default 300"
    assert read(f"{leaf}/io.max") == "8:0 rbps=2097152 wbps=max riops=max wiops=max"
    assert read(f"{leaf}/cpuset.cpus") == "0"
    now = cg.read_limits()
    for key, (_before, after) in planned.items():
        assert now[key] == after, key
    assert now["memory_swap"] == 96 * MiB
    # idempotent: nothing differs, nothing is written
    count = len(v2.writes)
    assert cg.plan(limits) == {} and cg.apply(limits) == {} and len(v2.writes) == count
    assert cg.info() == {
        "path": "dockerless/web", "mode": "v2",
        "version": {"memory": 2, "cpu": 2, "cpuset": 2, "pids": 2, "io": 2},
        "paths": dict.fromkeys(["memory", "cpu", "cpuset", "pids", "io"], leaf),
    }


def test_v2_changes_only_what_differs(v2):
    cg = Cgroup("a", cgroup_root=v2.root)
    cg.apply(Limits(memory="64m", pids=10))
    v2.writes.clear()
    assert cg.apply(Limits(memory="64m", pids=20)) == {"pids": (10, 20)}
    assert v2.writes == [("a/pids.max", "20")]
    v2.writes.clear()
    # cpus needs the cpu controller, which "a" did not have yet: it is enabled, and the kernel's default "max"
    # already matches, so only the enabling is written; the report matches plan()'s
    limits = Limits(memory="64m", pids=20, cpus="max")
    assert cg.plan(limits) == {"cpus": (None, MAX)}
    assert cg.apply(limits) == {"cpus": (None, MAX)}
    assert v2.writes == [("cgroup.subtree_control", "+cpu")]
    assert cg.plan(limits) == {}


def test_v2_memory_swap_needs_memory_and_nothing_is_created(v2):
    cg = Cgroup("a/b", cgroup_root=v2.root)
    with pytest.raises(CgroupError, match="memory limit is needed"):
        cg.plan(Limits(memory_swap="1g"))
    with pytest.raises(CgroupError, match="memory limit is needed"):
        cg.apply(Limits(memory_swap="1g"))
    assert not os.path.exists(os.path.join(v2.root, "a")) and v2.writes == []


def test_v2_memory_swap_uses_current_memory(v2):
    cg = Cgroup("a", cgroup_root=v2.root)
    cg.apply(Limits(memory="64m"))
    assert cg.apply(Limits(memory_swap="100m")) == {"memory_swap": (MAX, 100 * MiB)}
    assert read(os.path.join(v2.root, "a/memory.swap.max")) == str(36 * MiB)


def test_v2_unlimited_memory_lifts_swap_too(v2):
    cg = Cgroup("a", cgroup_root=v2.root)
    cg.apply(Limits(memory="64m", memory_swap="128m"))
    assert cg.apply(Limits(memory="max")) == {"memory": (64 * MiB, MAX), "memory_swap": (128 * MiB, MAX)}
    assert read(os.path.join(v2.root, "a/memory.swap.max")) == "max"


def test_v2_controller_not_available(fakefs):
    fakefs.add_v2(fakefs.root, ["cpu", "pids"])
    cg = Cgroup("a", cgroup_root=fakefs.root)
    with pytest.raises(CgroupError, match=r"memory on cgroup a: the memory controller is not available \(v2 hier"):
        cg.plan(Limits(memory="1g"))


def test_v2_controller_not_delegated_to_parent_is_undone(v2):
    # the parent exists but was given no memory controller by its own parent
    os.mkdir(os.path.join(v2.root, "svc"))
    put(os.path.join(v2.root, "svc", "cgroup.controllers"), "cpu")
    put(os.path.join(v2.root, "svc", "cgroup.subtree_control"), "")
    put(os.path.join(v2.root, "svc", "cgroup.procs"), "")
    put(os.path.join(v2.root, "cgroup.subtree_control"), "cpu")
    cg = Cgroup("svc/job", cgroup_root=v2.root)
    with pytest.raises(CgroupError, match=r"memory controller is not available in .*svc .*Delegate=yes"):
        cg.apply(Limits(memory="1g"))
    assert not os.path.exists(os.path.join(v2.root, "svc", "job"))
    # the root's "+memory" was taken back
    assert read(os.path.join(v2.root, "cgroup.subtree_control")) == "cpu"


def test_v2_internal_process_rule_message(v2):
    os.mkdir(os.path.join(v2.root, "busy"))
    for name, text in {"cgroup.controllers": "memory pids", "cgroup.subtree_control": "", "cgroup.procs": "42"}.items():
        put(os.path.join(v2.root, "busy", name), text)
    put(os.path.join(v2.root, "cgroup.subtree_control"), "memory pids")
    v2.fail["cgroup.subtree_control"] = errno.EBUSY
    with pytest.raises(CgroupError, match="only leaf cgroups hold processes"):
        Cgroup("busy/child", cgroup_root=v2.root).apply(Limits(pids=5))
    assert not os.path.exists(os.path.join(v2.root, "busy", "child"))


def test_v2_statistics_controllers_are_best_effort(v2):
    # "svc" holds processes, so the kernel refuses to enable anything in it; pids alone is needed, memory only
    # for statistics, and a parent without memory must not fail the request
    os.mkdir(os.path.join(v2.root, "svc"))
    for name, text in {"cgroup.controllers": "pids", "cgroup.subtree_control": "", "cgroup.procs": ""}.items():
        put(os.path.join(v2.root, "svc", name), text)
    put(os.path.join(v2.root, "cgroup.subtree_control"), "pids")
    cg = Cgroup("svc/job", cgroup_root=v2.root)
    assert cg.apply(Limits(pids=5)) == {"pids": (None, 5)}
    assert read(os.path.join(v2.root, "svc", "cgroup.subtree_control")) == "pids"
    assert cg.stats()["memory_usage"] is None and cg.stats()["pids_current"] == 0


def test_v2_missing_swap_file_is_explained(v2):
    v2.omit.add("memory.swap.max")
    cg = Cgroup("a", cgroup_root=v2.root)
    cg.apply(Limits(memory="64m"))
    with pytest.raises(CgroupError, match="memory.swap.max does not exist: swap accounting is off"):
        cg.plan(Limits(memory_swap="128m"))
    assert cg.read_limits()["memory_swap"] is None


def test_v2_stats(v2):
    cg = Cgroup("a", cgroup_root=v2.root)
    cg.apply(Limits(pids=5))
    leaf = os.path.join(v2.root, "a")
    put(f"{leaf}/memory.current", "1048576")
    put(f"{leaf}/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1")
    put(f"{leaf}/pids.current", "3")
    put(f"{leaf}/cpu.stat", "usage_usec 52411\nuser_usec 40000\nsystem_usec 12411")
    assert cg.stats() == {
        "memory_usage": 1048576, "memory_peak": 0, "oom_kills": 1, "pids_current": 3, "cpu_usage_usec": 52411
    }


def test_v2_io_max_changes_only_given_rates(v2):
    cg = Cgroup("a", cgroup_root=v2.root)
    cg.apply(Limits(io_max=[{"device": "8:0", "rbps": 1000, "wiops": 50}]))
    changes = cg.apply(Limits(io_max=[{"device": "8:0", "rbps": "max"}, {"device": "8:16", "wbps": "1k"}]))
    assert changes == {"io_max": (
        [{"device": "8:0", "rbps": 1000, "wbps": MAX, "riops": MAX, "wiops": 50},
         {"device": "8:16", "rbps": MAX, "wbps": MAX, "riops": MAX, "wiops": MAX}],
        [{"device": "8:0", "rbps": MAX, "wbps": MAX, "riops": MAX, "wiops": 50},
         {"device": "8:16", "rbps": MAX, "wbps": 1024, "riops": MAX, "wiops": MAX}],
    )}
    assert cg.read_limits()["io_max"] == changes["io_max"][1]
    # an entry that already matches is not rewritten
    v2.writes.clear()
    assert cg.apply(Limits(io_max=[{"device": "8:0", "wiops": 50}])) == {}
    assert v2.writes == []


# ---------------------------------------------------------------------------------------------------------------
# cgroup v1 and hybrid
# ---------------------------------------------------------------------------------------------------------------


def test_v1_apply_writes_each_hierarchy(v1):
    cg = Cgroup("dockerless/web", cgroup_root=v1.root)
    limits = Limits(memory="64m", memory_swap="128m", cpus=0.5, cpu_weight=100, pids=30, io_weight=100,
                    io_max=[{"device": "254:0", "wbps": "1m"}], memory_reservation="32m")
    assert set(cg.apply(limits)) == set(limits.requested())
    assert read(os.path.join(v1.root, "memory/dockerless/web/memory.limit_in_bytes")) == str(64 * MiB)
    assert read(os.path.join(v1.root, "memory/dockerless/web/memory.memsw.limit_in_bytes")) == str(128 * MiB)
    assert read(os.path.join(v1.root, "memory/dockerless/web/memory.soft_limit_in_bytes")) == str(32 * MiB)
    cpu = os.path.join(v1.root, "cpu,cpuacct/dockerless/web")
    assert read(f"{cpu}/cpu.cfs_quota_us") == "50000" and read(f"{cpu}/cpu.cfs_period_us") == "100000"
    assert read(f"{cpu}/cpu.shares") == str(weight_to_shares(100)) == "2598"
    assert read(os.path.join(v1.root, "pids/dockerless/web/pids.max")) == "30"
    blkio = os.path.join(v1.root, "blkio/dockerless/web")
    assert read(f"{blkio}/blkio.weight") == "20"
    assert read(f"{blkio}/blkio.throttle.write_bps_device") == "254:0 1048576"
    # a new v1 cpuset cgroup gets its parent's cpus/mems at every level, or no process could join it
    for level in ("cpuset/dockerless", "cpuset/dockerless/web"):
        assert read(os.path.join(v1.root, level, "cpuset.cpus")) == "0-3"
        assert read(os.path.join(v1.root, level, "cpuset.mems")) == "0"
    now = cg.read_limits()
    assert now["io_weight"] == 102  # v1 can't hold 100 exactly: blkio 20 is the nearest, and reads as 102
    assert cg.plan(limits) == {}
    assert cg.info()["paths"]["cpu"] == cpu and cg.info()["version"]["io"] == 1


def test_v1_memory_and_swap_write_order(v1):
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(memory="64m", memory_swap="128m"))
    v1.writes.clear()
    # raising both: swap must go first (memory 256m would exceed memsw 128m)
    cg.apply(Limits(memory="256m", memory_swap="512m"))
    assert [os.path.basename(p) for p, _text in v1.writes] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    v1.writes.clear()
    # lowering both: memory must go first (memsw 32m would be below memory 256m)
    cg.apply(Limits(memory="16m", memory_swap="32m"))
    assert [os.path.basename(p) for p, _text in v1.writes] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    v1.writes.clear()
    # unlimited memory with swap unset also lifts swap (runc), swap first
    assert cg.apply(Limits(memory="max")) == {"memory": (16 * MiB, MAX), "memory_swap": (32 * MiB, MAX)}
    assert v1.writes == [("memory/a/memory.memsw.limit_in_bytes", "-1"), ("memory/a/memory.limit_in_bytes", "-1")]


def test_v1_memory_above_swap_limit_is_refused_with_hint(v1):
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(memory="64m", memory_swap="128m"))
    with pytest.raises(CgroupError, match="memory_swap .* is below its memory limit"):
        cg.apply(Limits(memory_swap="32m"))
    # caught before writing (so check mode sees it too)
    with pytest.raises(CgroupError, match="above its current memory_swap .*set memory_swap as well"):
        cg.plan(Limits(memory="256m"))
    v1.fail["memory.limit_in_bytes"] = errno.EINVAL
    with pytest.raises(CgroupError, match=r"setting memory .*Invalid argument; on cgroup v1 memory may not exceed"):
        cg.apply(Limits(memory="100m"))
    assert cg.read_limits()["memory"] == 64 * MiB


def test_v1_without_swap_accounting(v1):
    v1.omit.add("memory.memsw.limit_in_bytes")
    cg = Cgroup("a", cgroup_root=v1.root)
    # memory alone works and "max" does not try to touch the missing swap file
    cg.apply(Limits(memory="64m"))
    assert cg.apply(Limits(memory="max")) == {"memory": (64 * MiB, MAX)}
    assert cg.read_limits()["memory_swap"] is None
    with pytest.raises(CgroupError, match=r"memory.memsw.limit_in_bytes does not exist: swap accounting is off.*"
                                          r"swapaccount=1"):
        cg.plan(Limits(memory="64m", memory_swap="128m"))
    with pytest.raises(CgroupError, match="swap accounting is off"):
        cg.apply(Limits(memory="64m", memory_swap="128m"))
    assert cg.read_limits()["memory"] == MAX  # nothing written


def test_v1_missing_cfq_weight_is_explained(v1):
    v1.omit.add("blkio.weight")
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(pids=5))
    with pytest.raises(CgroupError, match="blkio.weight does not exist: .*CFQ or BFQ"):
        cg.apply(Limits(io_weight=200))


def test_v1_bfq_weight_is_used_when_cfq_is_absent(v1):
    v1.omit.add("blkio.weight")
    V1_FILES_BFQ = {"blkio.bfq.weight": "100"}
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(pids=5))
    v1._files(os.path.join(v1.root, "blkio", "a"), V1_FILES_BFQ)
    assert cg.read_limits()["io_weight"] == 910
    cg.apply(Limits(io_weight=4950))
    assert read(os.path.join(v1.root, "blkio/a/blkio.bfq.weight")) == "500"


def test_v1_io_max_keyed_writes_and_removal(v1):
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(io_max=[{"device": "8:0", "rbps": "1m", "riops": 100}]))
    blkio = os.path.join(v1.root, "blkio/a")
    assert read(f"{blkio}/blkio.throttle.read_bps_device") == "8:0 1048576"
    assert read(f"{blkio}/blkio.throttle.read_iops_device") == "8:0 100"
    cg.apply(Limits(io_max=[{"device": "8:0", "rbps": "max"}]))
    assert read(f"{blkio}/blkio.throttle.read_bps_device") == ""  # v1 removes a rule written as 0
    assert cg.read_limits()["io_max"] == [{"device": "8:0", "rbps": MAX, "wbps": MAX, "riops": 100, "wiops": MAX}]


def test_v1_stats(v1):
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(pids=5))
    put(os.path.join(v1.root, "memory/a/memory.usage_in_bytes"), "4096")
    put(os.path.join(v1.root, "memory/a/memory.max_usage_in_bytes"), "8192")
    put(os.path.join(v1.root, "memory/a/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3")
    put(os.path.join(v1.root, "pids/a/pids.current"), "2")
    put(os.path.join(v1.root, "cpu,cpuacct/a/cpuacct.usage"), "123456789")
    assert cg.stats() == {
        "memory_usage": 4096, "memory_peak": 8192, "oom_kills": 3, "pids_current": 2, "cpu_usage_usec": 123456
    }


def test_v1_read_normalises_unlimited(v1):
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits())
    now = cg.read_limits()
    assert now["memory"] == now["memory_swap"] == now["memory_reservation"] == MAX
    assert now["cpus"] == MAX and now["pids"] == MAX and now["io_max"] == []
    assert now["cpu_weight"] == 39  # v1's default 1024 shares
    assert now["cpuset_cpus"] == "0-3"


def test_hybrid_uses_v1_controllers_and_leaves_unified_alone(hybrid):
    cg = Cgroup("dockerless/x", cgroup_root=hybrid.root)
    cg.apply(Limits(memory="32m", pids=4))
    assert os.path.isdir(os.path.join(hybrid.root, "memory/dockerless/x"))
    assert not os.path.exists(os.path.join(hybrid.root, "unified/dockerless"))
    assert read(os.path.join(hybrid.root, "unified/cgroup.subtree_control")) == ""
    assert cg.info()["mode"] == "hybrid"


def test_v1_controller_not_mounted(fakefs):
    fakefs.add_v1("memory", ["memory"])
    cg = Cgroup("a", cgroup_root=fakefs.root)
    with pytest.raises(CgroupError, match=r"pids on cgroup a: the pids controller is not available \(v1 hierarchy"):
        cg.apply(Limits(memory="1g", pids=5))
    with pytest.raises(CgroupError, match="the blkio controller is not available"):
        cg.plan(Limits(io_weight=5))
    assert not os.path.exists(os.path.join(fakefs.root, "memory", "a"))


# ---------------------------------------------------------------------------------------------------------------
# undo on failure
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_refused_write_restores_earlier_writes(layout, request):
    fs = request.getfixturevalue(layout)
    cg = Cgroup("a", cgroup_root=fs.root)
    cg.apply(Limits(memory="64m", cpus=1, pids=10, io_max=[{"device": "8:0", "rbps": 5000}]))
    before = cg.read_limits()
    mark = len(fs.writes)
    fs.fail["pids.max"] = errno.EINVAL
    with pytest.raises(CgroupError) as info:
        cg.apply(Limits(memory="128m", cpus=2, cpuset_cpus="1", pids=20, io_max=[{"device": "8:0", "rbps": 1}]))
    message = str(info.value)
    assert "setting pids of cgroup a" in message and "Invalid argument" in message
    assert f"Undone: {dict(v1=4, v2=3)[layout]} write(s) restored" in message  # v1 cpus is two files
    assert cg.read_limits() == before
    # io_max comes after pids in the write order, so it was never touched
    assert not any(p.endswith(("io.max", "read_bps_device")) for p, _t in fs.writes[mark:])


def test_refused_write_on_new_cgroup_removes_it(v1):
    v1.fail["pids.max"] = errno.EINVAL
    cg = Cgroup("dockerless/new", cgroup_root=v1.root)
    # 5 hierarchies (memory, cpu+cpuacct, cpuset, pids, blkio) x 2 levels
    with pytest.raises(CgroupError, match=r"setting pids .*Undone: 2 write\(s\) restored, 10 created dir"):
        cg.apply(Limits(memory="64m", cpuset_cpus="1", pids=5))
    assert not cg.exists()
    assert not any(os.path.exists(os.path.join(m, "dockerless")) for m in v1.v1_mounts)


def test_cpuset_seed_failure_is_explained_and_undone(v1):
    v1.fail["cpuset.mems"] = errno.EINVAL
    cg = Cgroup("dockerless/new", cgroup_root=v1.root)
    with pytest.raises(CgroupError, match=r"copying cpuset.mems '0' from .*cpuset: Invalid argument.*created dir"):
        cg.apply(Limits(memory="64m"))
    assert not cg.exists()


def test_refused_v2_write_disables_enabled_controllers(v2):
    v2.fail["io.max"] = errno.ENODEV
    cg = Cgroup("a/b", cgroup_root=v2.root)
    with pytest.raises(CgroupError, match="no such block device"):
        cg.apply(Limits(memory="64m", io_max=[{"device": "9:9", "rbps": 10}]))
    assert not os.path.exists(os.path.join(v2.root, "a"))
    assert read(os.path.join(v2.root, "cgroup.subtree_control")) == ""


def test_failed_undo_is_reported(v1, monkeypatch):
    cg = Cgroup("a", cgroup_root=v1.root)
    cg.apply(Limits(pids=3))

    def write_then_break(path, text):
        v1.write(path, text)
        if path.endswith("pids.max"):
            v1.fail["pids.max"] = errno.EIO  # the restore will be refused
            v1.fail["blkio.weight"] = errno.EINVAL  # and the next setting too

    monkeypatch.setattr(Cgroup, "_write", staticmethod(write_then_break))
    with pytest.raises(CgroupError, match=r"setting io_weight .*Undo FAILED, check by hand: restoring .*pids.max to '3'"):
        cg.apply(Limits(pids=4, io_weight=200))


# ---------------------------------------------------------------------------------------------------------------
# paths, processes, removal
# ---------------------------------------------------------------------------------------------------------------


def test_symlink_escape_in_tree_is_refused(v2, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(v2.root, "evil"))
    with pytest.raises(CgroupError, match="resolves outside"):
        Cgroup("evil/x", cgroup_root=v2.root).apply(Limits(pids=1))
    assert list(outside.iterdir()) == []


def test_read_limits_of_missing_cgroup(v2):
    with pytest.raises(CgroupError, match="does not exist .* create it"):
        Cgroup("nope", cgroup_root=v2.root).read_limits()


def test_add_pids_on_fake_tree(v1, tmp_path):
    proc = tmp_path / "proc"
    for pid in (100, 200):
        (proc / str(pid)).mkdir(parents=True)
    cg = Cgroup("a", cgroup_root=v1.root)
    with pytest.raises(CgroupError, match="does not exist; create it first"):
        cg.add_pids([100], proc=str(proc))
    cg.apply(Limits())
    assert cg.pids_to_move([100, 200, 100], proc=str(proc)) == [100, 200]
    assert cg.add_pids([100], proc=str(proc)) == [100]
    assert cg.add_pids([100, 200], proc=str(proc)) == [200]
    assert cg.pids() == [100, 200]
    for mount in v1.v1_mounts:
        if v1.v1_mounts[mount]:
            assert read(os.path.join(mount, "a", "cgroup.procs")).split() == ["100", "200"]
    with pytest.raises(CgroupError, match="process 300 .*no such process"):
        cg.add_pids([300], proc=str(proc))
    with pytest.raises(CgroupError, match="positive process id"):
        cg.add_pids([0], proc=str(proc))


def test_remove_on_fake_tree(v2):
    cg = Cgroup("a", cgroup_root=v2.root)
    assert cg.remove() is False
    cg.apply(Limits(pids=3))
    Cgroup("a/sub", cgroup_root=v2.root).apply(Limits())
    put(os.path.join(v2.root, "a/sub/cgroup.procs"), "4242")
    with pytest.raises(CgroupError, match=r"still has 1 process\(es\) \(4242\); stop them, or use force"):
        cg.remove()
    put(os.path.join(v2.root, "a/sub/cgroup.procs"), "")
    assert cg.remove() is True
    assert not os.path.exists(os.path.join(v2.root, "a"))


def test_controller_table_owns_every_setting_once_on_both_versions():
    # Each Limits field belongs to exactly one controller file, which has a row for it on v1 and on v2; the table's
    # order is the Limits field order (the write order before the memory/swap rule).
    owned = [key for ctrl in cgroups.CONTROLLERS for key in ctrl.KEYS]
    assert tuple(owned) == LIMIT_KEYS
    for ctrl in cgroups.CONTROLLERS:
        assert ctrl.NAME in cgroups.MANAGED
        assert set(ctrl.V1) == set(ctrl.V2) == set(ctrl.KEYS), ctrl.NAME
        assert {key for key, _errno in ctrl.HINTS} <= set(ctrl.KEYS), ctrl.NAME
    assert set(cgroups.V1_KNOBS) == set(cgroups.V2_KNOBS) == set(LIMIT_KEYS)
    assert cgroups.KEY_CONTROLLER["io_max"] == "io" and cgroups.KEY_CONTROLLER["memory_swap"] == "memory"
