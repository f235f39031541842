# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cgroup_limit module in-process on a fake cgroup v2 tree (this host's kernel is v1; the real module runs are
in tests/integration/test_cgroup_limit.py). The fake cgroupfs is the one from module_utils/cgroups/fake_cgroupfs.py."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import MAX
from ansible_collections.dockerless.containers.plugins.modules import cgroup_limit

_spec = importlib.util.spec_from_file_location(
    "cgroups_fake", os.path.join(os.path.dirname(__file__), "..", "module_utils", "cgroups", "fake_cgroupfs.py")
)
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)
MiB = 1 << 20


@pytest.fixture
def v2(tmp_path, monkeypatch):
    fs = fake.FakeCgroupFs(str(tmp_path / "cgroup"))
    os.makedirs(fs.root)
    monkeypatch.setattr(Cgroup, "_write", staticmethod(fs.write))
    monkeypatch.setattr(Cgroup, "_mkdir", staticmethod(fs.mkdir))
    monkeypatch.setattr(Cgroup, "_rmdir", staticmethod(fs.rmdir))
    fs.add_v2(fs.root, ["cpuset", "cpu", "io", "memory", "pids"])
    return fs


def run(capsys, args: dict, check: bool = False, diff: bool = True) -> dict:
    with patch_module_args({**args, "_ansible_check_mode": check, "_ansible_diff": diff}):
        with pytest.raises(SystemExit):
            cgroup_limit.main()
    return json.loads(capsys.readouterr().out)


def test_check_create_then_idempotent(v2, capsys):
    args = dict(path="dockerless/web", cgroup_root=v2.root, memory="64m", memory_swap="128m", cpus="1.5", pids="max",
                io_max=[dict(device="8:0", wbps="1m")])
    check = run(capsys, args, check=True)
    assert check["changed"] is True and not check.get("failed")
    assert check["diff"]["before"] == {"exists": False, "memory": None, "memory_swap": None, "cpus": None,
                                       "pids": None, "io_max": None}
    assert check["diff"]["after"]["memory"] == 64 * MiB and check["diff"]["after"]["exists"] is True
    assert check["limits"]["cpus"] == 1.5 and check["cgroup"]["mode"] == "v2"
    assert not os.path.exists(os.path.join(v2.root, "dockerless")) and v2.writes == []

    made = run(capsys, args)
    assert made["changed"] is True
    assert made["limits"]["memory"] == 64 * MiB and made["limits"]["memory_swap"] == 128 * MiB
    assert made["limits"]["pids"] == MAX
    assert made["limits"]["io_max"] == [{"device": "8:0", "rbps": MAX, "wbps": MiB, "riops": MAX, "wiops": MAX}]
    assert made["cgroup"]["paths"]["memory"] == os.path.join(v2.root, "dockerless", "web")
    assert made["stats"]["pids_current"] == 0

    again = run(capsys, args)
    assert again["changed"] is False and again["diff"] == {"before": {"exists": True}, "after": {"exists": True}}
    check_again = run(capsys, args, check=True)
    assert check_again["changed"] is False

    change = run(capsys, dict(args, memory="96m"), check=True)
    assert change["changed"] is True
    assert (change["diff"]["before"]["memory"], change["diff"]["after"]["memory"]) == (64 * MiB, 96 * MiB)
    assert change["limits"]["memory"] == 96 * MiB  # predicted
    assert Cgroup("dockerless/web", cgroup_root=v2.root).read_limits()["memory"] == 64 * MiB  # not written


def test_absent(v2, capsys):
    base = dict(path="job", cgroup_root=v2.root)
    run(capsys, dict(base, pids="10"))
    fake.put(os.path.join(v2.root, "job", "cgroup.procs"), "4242")
    for check in (True, False):
        refused = run(capsys, dict(base, state="absent"), check=check)
        assert refused["failed"] is True and "4242" in refused["msg"] and "force" in refused["msg"]
    fake.put(os.path.join(v2.root, "job", "cgroup.procs"), "")
    check = run(capsys, dict(base, state="absent"), check=True)
    assert check["changed"] is True and os.path.isdir(os.path.join(v2.root, "job"))
    gone = run(capsys, dict(base, state="absent"))
    assert gone["changed"] is True and gone["diff"]["after"] == {"exists": False, "processes": []}
    assert not os.path.exists(os.path.join(v2.root, "job"))
    assert run(capsys, dict(base, state="absent"))["changed"] is False


def test_container_name_and_errors(v2, capsys):
    made = run(capsys, dict(container="web1", cgroup_root=v2.root, cpu_weight=300))
    assert made["cgroup"]["path"] == "dockerless/web1" and made["limits"]["cpu_weight"] == 300
    bad = run(capsys, dict(container="../x", cgroup_root=v2.root))
    assert bad["failed"] is True and "container name" in bad["msg"]
    both = run(capsys, dict(container="a", path="b", cgroup_root=v2.root))
    assert both["failed"] is True and "mutually exclusive" in both["msg"]
    swap = run(capsys, dict(path="s", cgroup_root=v2.root, memory_swap="1g"))
    assert swap["failed"] is True and "memory limit is needed" in swap["msg"]
    assert not os.path.exists(os.path.join(v2.root, "s"))
    gone = run(capsys, dict(path="p", cgroup_root=v2.root, pids_to_add=[2**22 + 1]), check=True)
    assert gone["failed"] is True and "no such process" in gone["msg"]


def test_pids_to_add_reported_in_check_mode(v2, capsys):
    pid = os.getpid()
    check = run(capsys, dict(path="p", cgroup_root=v2.root, pids_to_add=[pid]), check=True)
    assert check["changed"] is True and check["pids_added"] == [pid]
    assert check["diff"]["after"]["processes"] == [pid]
    assert v2.writes == []
