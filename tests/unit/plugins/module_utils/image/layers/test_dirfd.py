# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of dirfd.mark_hierarchy_top (chattr +T on ext2/3/4, nothing elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.dirfd import mark_hierarchy_top


def _fs_type(path: str) -> str:
    """The filesystem type of ``path`` (the longest mount point above it in /proc/self/mounts)."""
    best, kind = "", ""
    real = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].encode().decode("unicode_escape")
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


def test_mark_hierarchy_top(tmp_path):
    """chattr +T on ext2/3/4 (lsattr shows it); False and no change where the filesystem has no such flag."""
    top = tmp_path / "layers"
    top.mkdir()
    kind = _fs_type(str(top))
    if kind not in ("ext2", "ext3", "ext4"):
        pytest.skip(f"{tmp_path} is on {kind}, not ext2/3/4: the Orlov top-directory flag does not exist there")
    assert mark_hierarchy_top(str(top)) is True
    assert mark_hierarchy_top(str(top)) is True  # already set: unchanged
    out = subprocess.run(["lsattr", "-d", str(top)], capture_output=True, text=True, check=True).stdout
    assert "T" in out.split()[0]
    child = top / "child"
    child.mkdir()  # the flag is not inherited: only the marked directory is a top
    out = subprocess.run(["lsattr", "-d", str(child)], capture_output=True, text=True, check=True).stdout
    assert "T" not in out.split()[0]
    assert mark_hierarchy_top(str(tmp_path / "missing")) is False
    (tmp_path / "file").write_bytes(b"x")
    assert mark_hierarchy_top(str(tmp_path / "file")) is False  # not a directory
    os.symlink(str(child), str(tmp_path / "link"))
    assert mark_hierarchy_top(str(tmp_path / "link")) is False  # never through a symlink
    out = subprocess.run(["lsattr", "-d", str(child)], capture_output=True, text=True, check=True).stdout
    assert "T" not in out.split()[0]


def test_mark_hierarchy_top_without_the_flag():
    """tmpfs has no inode flags: False, and the directory is untouched."""
    shm = "/dev/shm"
    if _fs_type(shm) != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs here")
    d = tempfile.mkdtemp(dir=shm)
    try:
        before = os.stat(d)
        assert mark_hierarchy_top(d) is False
        after = os.stat(d)
        assert (before.st_mode, before.st_ctime_ns) == (after.st_mode, after.st_ctime_ns)
    finally:
        os.rmdir(d)
