# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hierarchy.py: cgroup path rules and the detection of v2, v1 (combined and named mounts) and hybrid layouts
on the fake trees of conftest.py."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import (
    cgroup_dir,
    container_cgroup_path,
    detect,
    validate_path,
)
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError


@pytest.mark.parametrize(
    "path, normal",
    [("dockerless/web", "dockerless/web"), ("/dockerless/web", "dockerless/web"), ("a/", "a"), ("x.y-z_1", "x.y-z_1")],
)
def test_validate_path(path, normal):
    assert validate_path(path) == normal


@pytest.mark.parametrize(
    "path", ["../etc", "a/../../b", "a/..", "./a", "a//b", "", "/", "a/\0b", "x" * 256, None, "a/./b"]
)
def test_validate_path_rejects_escape_and_junk(path):
    with pytest.raises(CgroupError, match="cgroup path"):
        validate_path(path)


def test_container_cgroup_path():
    assert container_cgroup_path("web") == "dockerless/web"
    assert container_cgroup_path("my_app.1-x") == "dockerless/my_app.1-x"
    for bad in ("../x", "a/b", "-x", "", "x" * 129):
        with pytest.raises(CgroupError, match="container name"):
            container_cgroup_path(bad)


# detection
# ---------------------------------------------------------------------------------------------------------------


def test_detect_v2(v2):
    h = detect(v2.root)
    assert h.mode == "v2" and h.unified == v2.root
    assert {c: m.version for c, m in h.controllers.items()} == dict.fromkeys(
        ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"], 2
    )
    assert h.mount("memory").path == v2.root


def test_detect_v1_with_combined_mount_and_named_hierarchy(v1):
    h = detect(v1.root)
    assert h.mode == "v1" and h.unified is None
    assert h.mount("cpu").path == h.mount("cpuacct").path == os.path.join(v1.root, "cpu,cpuacct")
    assert h.mount("io").path == os.path.join(v1.root, "blkio") and h.mount("io").version == 1
    assert "systemd" not in h.controllers and "blkio" not in h.controllers


def test_detect_hybrid(hybrid):
    h = detect(hybrid.root)
    assert h.mode == "hybrid" and h.unified == os.path.join(hybrid.root, "unified")
    assert h.mount("memory").version == 1 and h.mount("hugetlb").version == 2
    assert "hybrid hierarchy" in h.describe() and "hugetlb (v2)" in h.describe()


def test_detect_errors(tmp_path):
    with pytest.raises(CgroupError, match="not a directory"):
        detect(str(tmp_path / "missing"))
    with pytest.raises(CgroupError, match="no cgroup v1 controller mounts"):
        detect(str(tmp_path))


def test_cgroup_dir_stays_inside_the_mount(tmp_path):
    mount = tmp_path / "mnt"
    (mount / "dockerless").mkdir(parents=True)
    assert cgroup_dir(str(mount), "dockerless/web") == str(mount / "dockerless" / "web")
    os.symlink(str(tmp_path), str(mount / "dockerless" / "out"))
    with pytest.raises(CgroupError, match="resolves outside"):
        cgroup_dir(str(mount), "dockerless/out")
