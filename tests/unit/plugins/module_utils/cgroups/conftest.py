# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fake cgroup trees of the cgroups unit tests: ``fakefs`` (empty root, the engine's writes routed through
FakeCgroupFs), ``v2``, ``v1`` (combined cpu,cpuacct mount, a named systemd hierarchy) and ``hybrid``."""

from __future__ import annotations

import os

import pytest
from fake_cgroupfs import FakeCgroupFs

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup


@pytest.fixture
def fakefs(tmp_path, monkeypatch):
    fs = FakeCgroupFs(str(tmp_path / "cgroup"))
    os.makedirs(fs.root)
    monkeypatch.setattr(Cgroup, "_write", staticmethod(fs.write))
    monkeypatch.setattr(Cgroup, "_mkdir", staticmethod(fs.mkdir))
    monkeypatch.setattr(Cgroup, "_rmdir", staticmethod(fs.rmdir))
    return fs


@pytest.fixture
def v2(fakefs):
    fakefs.add_v2(fakefs.root, ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"])
    return fakefs


@pytest.fixture
def v1(fakefs):
    fakefs.add_v1("memory", ["memory"])
    fakefs.add_v1("cpu,cpuacct", ["cpu", "cpuacct"])
    os.symlink("cpu,cpuacct", os.path.join(fakefs.root, "cpu"))
    os.symlink("cpu,cpuacct", os.path.join(fakefs.root, "cpuacct"))
    fakefs.add_v1("cpuset", ["cpuset"], {"cpuset.cpus": "0-3", "cpuset.mems": "0"})
    fakefs.add_v1("pids", ["pids"])
    fakefs.add_v1("blkio", ["blkio"])
    fakefs.add_v1("systemd", [])  # name=systemd: a hierarchy without controllers
    return fakefs


@pytest.fixture
def hybrid(v1):
    v1.add_v2(os.path.join(v1.root, "unified"), ["hugetlb"])
    return v1
