# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image store and the containers' records find the same default root (one function, store_root)."""

from __future__ import annotations

import os
import traceback

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import containers_dir
from ansible_collections.dockerless.containers.plugins.module_utils.store_root import default_store_root


def _in_child(check) -> None:
    """Run ``check`` in a forked child (it may drop privileges); the child's exit status is the verdict."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            check()
            code = 0
        except BaseException:  # noqa: BLE001 - printed for the parent's report, the exit status fails the test
            traceback.print_exc()
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="root's default store needs uid 0")
def test_root_uses_var_lib_and_both_sides_agree(monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "/nonexistent-xdg")
    assert default_store_root() == "/var/lib/dockerless"
    assert Store(None).root == "/var/lib/dockerless"
    assert containers_dir(None) == "/var/lib/dockerless/containers"


def test_user_uses_xdg_data_home_and_both_sides_agree(tmp_path):
    def check():
        if os.geteuid() == 0:
            os.setresuid(65534, 65534, 65534)
        os.environ["XDG_DATA_HOME"] = str(tmp_path / "xdg")
        want = str(tmp_path / "xdg" / "dockerless")
        assert default_store_root() == want
        assert Store(None).root == want
        assert containers_dir(None) == os.path.join(want, "containers")
        del os.environ["XDG_DATA_HOME"]
        os.environ["HOME"] = str(tmp_path / "home")
        assert default_store_root() == str(tmp_path / "home" / ".local" / "share" / "dockerless")

    _in_child(check)
