# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The init's pure parts: secure_join and the copy fallback (rootfs), user resolution (users), capability masks
(capabilities); linux.py."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import capabilities
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import (
    DEFAULT_CAPABILITIES,
    capability_mask,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import merge_layers, secure_join
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.users import resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
huge:x:4294967295:0::/:/bin/sh
"""
GROUP = """root:x:0:
wheel:x:10:root,app
app:x:1000:
audio:x:29:app
nogroup:x:65534:
"""


def test_docker_default_capability_mask():
    # The value `grep CapEff /proc/self/status` shows in a default Docker container.
    assert capability_mask(DEFAULT_CAPABILITIES) == 0x00000000A80425FB
    assert capability_mask(["net_admin"]) == 1 << 12
    with pytest.raises(ValueError):
        capability_mask(["CAP_NOPE"])


def test_the_capabilities_a_container_keeps():
    docker = 0x00000000A80425FB
    assert capabilities.of_config({}) == docker
    assert capabilities.of_config({"capabilities": ["CAP_KILL", "CAP_SYS_CHROOT"]}) == (1 << 5) | (1 << 18)
    # chroot isolation never keeps CAP_SYS_CHROOT, even when a stored config names it
    assert capabilities.of_config({"isolation": "chroot"}) == docker & ~(1 << 18)
    assert capabilities.of_config({"isolation": "chroot", "capabilities": ["CAP_SYS_CHROOT"]}) == 0
    # privileged: whatever this process holds (its effective set)
    assert capabilities.of_config({"privileged": True, "capabilities": []}) == linux.capget()[1]


@pytest.mark.parametrize("spec, uid, gid, groups, home", [
    ("", 0, 0, [0, 10], "/root"),
    ("root", 0, 0, [0, 10], "/root"),
    ("app", 1000, 1000, [1000, 10, 29], "/home/app"),
    ("app:audio", 1000, 29, [29], "/home/app"),
    ("1000", 1000, 1000, [1000, 10, 29], "/home/app"),
    ("4242", 4242, 0, [0], "/"),                      # a uid without an entry: gid 0, home /
    ("4242:4243", 4242, 4243, [4243], "/"),
    ("nobody:0", 65534, 0, [0], "/nonexistent"),
])
def test_resolve_user(spec, uid, gid, groups, home):
    user = resolve_user(spec, PASSWD, GROUP)
    assert (user["uid"], user["gid"], user["groups"], user["home"]) == (uid, gid, groups, home)


@pytest.mark.parametrize("spec, match", [
    ("ghost", "no user named"),
    ("app:ghosts", "no group named"),
    ("huge", "out of range"),              # the entry's uid would be -1 for setuid(): never root
    ("2147483648", "out of range"),
    ("app:", "empty group"),
])
def test_resolve_user_refuses(spec, match):
    with pytest.raises(RuntimeSetupError, match=match):
        resolve_user(spec, PASSWD, GROUP)


def test_secure_join_keeps_links_inside(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")                 # absolute: resolved as if root were /
    (root / "up").symlink_to("../../../../outside")  # climbing: clamped at root
    (root / "loop").symlink_to("loop")
    (root / "dir").mkdir()
    (root / "dir" / "rel").symlink_to("../etc")
    r = str(root)
    assert secure_join(r, "/abs/passwd") == f"{r}/etc/passwd"
    assert secure_join(r, "/up/x") == f"{r}/outside/x"
    assert secure_join(r, "/../../etc") == f"{r}/etc"
    assert secure_join(r, "dir/rel/shadow") == f"{r}/etc/shadow"
    assert secure_join(r, "/new/deeper") == f"{r}/new/deeper"
    assert secure_join(r, "/") == r
    with pytest.raises(RuntimeSetupError, match="too many symlinks"):
        secure_join(r, "/loop/x")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod of whiteouts, trusted.* xattrs)")
def test_merge_layers_applies_whiteouts_and_opaque_dirs(tmp_path):
    lower, upper, dest = tmp_path / "lower", tmp_path / "upper", tmp_path / "dest"
    for d in ("etc/keep", "etc/gone", "opq", "linkdir"):
        (lower / d).mkdir(parents=True)
    (lower / "etc/keep/a").write_text("a")
    (lower / "etc/gone/b").write_text("b")
    (lower / "opq/old").write_text("old")
    (lower / "file").write_text("lower")
    (lower / "suid").write_text("x")
    os.chmod(lower / "suid", 0o4755)
    upper.mkdir()
    (upper / "etc").mkdir()
    os.mknod(upper / "etc/gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))   # whiteout of a dir
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq/new").write_text("new")
    (upper / "file").write_text("upper")
    (upper / "linkdir").symlink_to("/etc")            # a link replacing a lower directory
    merge_layers([str(upper), str(lower)], str(dest))
    assert (dest / "etc/keep/a").read_text() == "a"
    assert not (dest / "etc/gone").exists()
    assert sorted(os.listdir(dest / "opq")) == ["new"]
    assert (dest / "file").read_text() == "upper"
    assert os.readlink(dest / "linkdir") == "/etc"
    assert stat.S_IMODE(os.stat(dest / "suid").st_mode) == 0o4755
    # The merged tree carries no overlay metadata.
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "opq")


def test_linux_wrapper_raises_oserror_with_errno():
    with pytest.raises(OSError) as info:
        linux.umount2("/nonexistent-dockerless-path")
    assert info.value.errno in (2, 1, 22)
    assert "umount2" in str(info.value)


def test_capget_reads_own_sets():
    eff, prm, inh = linux.capget()
    with open("/proc/self/status", encoding="ascii") as handle:
        status = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
    assert eff == int(status["CapEff"], 16)
    assert prm == int(status["CapPrm"], 16)
    assert inh == int(status["CapInh"], 16)
