# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's engine digest (plugin_utils/engine_action.py). The action plugins' missing -> install -> rerun
flow runs for real through ansible-playbook in tests/integration/test_engine_install.py."""

from __future__ import annotations

import os
import shutil

from ansible_collections.dockerless.containers.plugins.plugin_utils import engine_action


def _copy(tmp_path) -> str:
    dest = tmp_path / "module_utils"
    shutil.copytree(engine_action.MODULE_UTILS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return str(dest)


def test_the_digest_is_of_the_sources_not_of_where_they_are(tmp_path):
    copy = _copy(tmp_path)
    digest = engine_action.engine_digest(copy)
    assert digest == engine_action.engine_digest(engine_action.MODULE_UTILS)
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_an_edit_changes_the_digest_and_caches_and_bytecode_do_not(tmp_path):
    copy = _copy(tmp_path)
    before = engine_action.engine_digest(copy)
    cache = os.path.join(copy, "runtime", "__pycache__")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, "task.cpython-311.pyc"), "wb") as handle:
        handle.write(b"not a source")
    with open(os.path.join(copy, "notes.txt"), "w", encoding="utf-8") as handle:
        handle.write("not python")
    assert engine_action.engine_digest(copy) == before
    with open(os.path.join(copy, "errors.py"), "a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    edited = engine_action.engine_digest(copy)
    assert edited != before
    os.rename(os.path.join(copy, "errors.py"), os.path.join(copy, "errors2.py"))   # a rename is a change too
    assert engine_action.engine_digest(copy) not in (before, edited)


def test_the_digest_is_cached_by_the_files_size_and_mtime(tmp_path, monkeypatch):
    copy = _copy(tmp_path)
    first = engine_action.engine_digest(copy)
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: opened.append(path) or real_open(path, *a, **k))
    assert engine_action.engine_digest(copy) == first and opened == []         # stat only, nothing read


def test_the_task_environment_gets_the_digest_last():
    with_env = engine_action.EngineAction._with_env
    assert with_env(None, {"A": "1"}) == [{"A": "1"}]
    assert with_env({"A": "0", "B": "2"}, {"A": "1"}) == [{"A": "0", "B": "2"}, {"A": "1"}]
    assert with_env([{"B": "2"}, {"C": "3"}], {"A": "1"}) == [{"B": "2"}, {"C": "3"}, {"A": "1"}]
