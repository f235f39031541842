# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""manage.apply_limits, the engine behind cgroup_limit, called directly on the fake trees of conftest.py: the
check -> real -> idempotent sequence, removal (refused with processes unless force, also in check mode), moving
processes, and the choice of cgroup."""

from __future__ import annotations

import os

import pytest
from fake_cgroupfs import put, read

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import Limits
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.manage import apply_limits, empty_stats
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

MiB = 1 << 20


def test_check_real_idempotent_on_v2(v2):
    limits = Limits(memory="64m", pids=20)
    check = apply_limits(limits, path="dockerless/web", check_mode=True, cgroup_root=v2.root)
    assert check.changed is True and v2.writes == []
    assert not os.path.exists(os.path.join(v2.root, "dockerless"))
    assert check.diff == {"before": {"exists": False, "memory": None, "pids": None},
                          "after": {"exists": True, "memory": 64 * MiB, "pids": 20}}
    assert check.limits == {"memory": 64 * MiB, "pids": 20} and check.stats == empty_stats()
    assert check.cgroup["exists"] is True and check.cgroup["mode"] == "v2" and check.pids_added == []

    real = apply_limits(limits, path="dockerless/web", cgroup_root=v2.root)
    assert real.changed is True and real.diff == check.diff
    assert read(os.path.join(v2.root, "dockerless/web/memory.max")) == str(64 * MiB)
    assert real.limits["memory"] == 64 * MiB and real.limits["pids"] == 20
    assert real.limits["cpus"] is None  # v2: the cpu controller was not needed, so not enabled for it
    assert real.stats["pids_current"] == 0

    again = apply_limits(limits, path="dockerless/web", cgroup_root=v2.root)
    assert again.changed is False and again.diff == {"before": {"exists": True}, "after": {"exists": True}}
    change = apply_limits(Limits(memory="96m"), path="dockerless/web", check_mode=True, cgroup_root=v2.root)
    assert change.changed is True and change.diff["before"]["memory"] == 64 * MiB
    assert change.limits["memory"] == 96 * MiB and change.limits["pids"] == 20
    assert read(os.path.join(v2.root, "dockerless/web/memory.max")) == str(64 * MiB)


def test_container_maps_to_dockerless_name(v1):
    result = apply_limits(Limits(pids=10), container="web", cgroup_root=v1.root)
    assert result.cgroup["path"] == "dockerless/web"
    assert read(os.path.join(v1.root, "pids/dockerless/web/pids.max")) == "10"


def test_moves_processes_and_reports_them(v1):
    pid = os.getpid()
    check = apply_limits(Limits(), path="a", pids_to_add=[pid], check_mode=True, cgroup_root=v1.root)
    assert check.changed is True and check.pids_added == [pid]
    assert check.diff["before"]["processes"] == [] and check.diff["after"]["processes"] == [pid]
    assert not Cgroup("a", cgroup_root=v1.root).exists()
    real = apply_limits(Limits(), path="a", pids_to_add=[pid], cgroup_root=v1.root)
    assert real.pids_added == [pid]
    assert read(os.path.join(v1.root, "pids/a/cgroup.procs")).split() == [str(pid)]
    assert apply_limits(Limits(), path="a", pids_to_add=[pid], cgroup_root=v1.root).changed is False


def test_absent_refuses_processes_without_force_even_in_check_mode(v2):
    apply_limits(Limits(), path="a", cgroup_root=v2.root)
    put(os.path.join(v2.root, "a/cgroup.procs"), "4242")
    with pytest.raises(CgroupError, match=r"^removing cgroup a: it still has processes \[4242\]; stop them, or use "
                                          r"force=true to kill them$"):
        apply_limits(path="a", state="absent", check_mode=True, cgroup_root=v2.root)
    check = apply_limits(path="a", state="absent", force=True, check_mode=True, cgroup_root=v2.root)
    assert check.changed is True and os.path.isdir(os.path.join(v2.root, "a"))
    assert check.diff == {"before": {"exists": True, "processes": [4242]},
                          "after": {"exists": False, "processes": []}}
    put(os.path.join(v2.root, "a/cgroup.procs"), "")
    gone = apply_limits(path="a", state="absent", cgroup_root=v2.root)
    assert gone.changed is True and gone.limits == {} and gone.cgroup["exists"] is False
    assert not os.path.exists(os.path.join(v2.root, "a"))
    again = apply_limits(path="a", state="absent", cgroup_root=v2.root)
    assert again.changed is False and again.diff == {"before": {"exists": False}, "after": {"exists": False}}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "exactly one of path"),
        (dict(path="a", container="b"), "exactly one of path"),
        (dict(path="a", state="started"), "expected one of present, absent"),
        (dict(container="../x"), "container name"),
        (dict(path="../x"), "cgroup path"),
    ],
)
def test_bad_requests_name_the_problem(v2, kwargs, message):
    with pytest.raises(CgroupError, match=message):
        apply_limits(Limits(), cgroup_root=v2.root, **kwargs)
    assert v2.writes == []
