# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_run's ``seccomp`` option, run by ansible-playbook against localhost as root.

The image is the seeded registry's busybox (``library/busybox:latest``), pulled by container_run itself into a
fresh store. One playbook runs every scenario (default profile, unconfined, a custom profile, CAP_SYS_ADMIN, a
missing profile); the asserts are made here on each task's result.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs Debian's busybox-static for the seed"),
    pytest.mark.skipif(shutil.which("docker-registry") is None, reason="needs Debian's docker-registry"),
]

SCRIPT = ("grep ^Seccomp: /proc/self/status; unshare -U true 2>&1 && echo userns-ok; "
          "mkdir /tmp/made 2>&1 && echo mkdir-ok; true")


@pytest.fixture(scope="module")
def scenarios(seeded_registry, tmp_path_factory):
    from harness import run_playbook

    base = tmp_path_factory.mktemp("seccomp-it")
    profile = base / "nomkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDQUOT}]}))
    common = {"image": seeded_registry.ref("busybox"), "store": str(base / "store"),
              "command": ["/bin/sh", "-c", SCRIPT]}
    tasks = [
        ("default", {}),
        ("unconfined", {"seccomp": "unconfined"}),
        ("custom", {"seccomp": str(profile)}),
        ("sys_admin", {"cap_add": ["SYS_ADMIN"]}),
        ("privileged", {"privileged": True}),
        ("missing", {"seccomp": str(base / "missing.json")}),
    ]
    play = [{"name": "seccomp", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": name, "dockerless.containers.container_run": dict(common, **args), "ignore_errors": name == "missing"}
        for name, args in tasks]}]
    path = base / "play.json"
    path.write_text(json.dumps(play))
    result = run_playbook(str(path))
    names = [name for name, args in tasks]
    return {name: result.named(name)[0].result for name in names}, {name: result.named(name)[0] for name in names}


def test_default_profile(scenarios):
    results = scenarios[0]
    default = results["default"]
    assert default["rc"] == 0, default
    assert default["stdout_lines"] == ["Seccomp:\t2", "unshare: unshare(0x10000000): Operation not permitted",
                                       "mkdir-ok"]
    info = default["container"]["seccomp"]
    assert info["profile"] == "default" and info["enabled"] is True
    assert info["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert info["syscalls_denied"] == ["clone3"]


def test_unconfined(scenarios):
    results = scenarios[0]
    assert results["unconfined"]["stdout_lines"] == ["Seccomp:\t0", "userns-ok", "mkdir-ok"]
    assert results["unconfined"]["container"]["seccomp"] == {"profile": "unconfined", "enabled": False}


def test_custom_profile(scenarios):
    results = scenarios[0]
    custom = results["custom"]
    assert custom["stdout_lines"] == ["Seccomp:\t2", "userns-ok", "mkdir: can't create directory '/tmp/made': "
                                      "Disk quota exceeded"], custom
    assert custom["container"]["seccomp"]["syscalls_denied"] == ["mkdir", "mkdirat"]


def test_cap_sys_admin_and_privileged(scenarios):
    results = scenarios[0]
    assert results["sys_admin"]["stdout_lines"] == ["Seccomp:\t2", "userns-ok", "mkdir-ok"]
    assert results["privileged"]["stdout_lines"][0] == "Seccomp:\t0"
    assert results["privileged"]["container"]["seccomp"]["enabled"] is False


def test_missing_profile_fails_clearly(scenarios):
    results, tasks = scenarios
    missing = results["missing"]
    assert tasks["missing"].status == "failed"
    for name in ("default", "unconfined", "custom", "sys_admin", "privileged"):
        assert tasks[name].status == "changed", (name, tasks[name].status)
    assert "missing.json" in missing["msg"] and "can't read it" in missing["msg"]
