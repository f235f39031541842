# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``boot.StartBundle``: the compiled modules of a container start in one file (what ``bin/dockerless run`` and
``exec`` load instead of asking the import system for each module). Real interpreters, a real engine-named package
in a temporary tree: what loads from the bundle, what falls back to the source, when the file is (re)written."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.runtime import boot

CHILD = """
import sys
sys.path[:0] = sys.argv[1:3]
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.boot import StartBundle
bundle = StartBundle.install(sys.argv[3])
from ansible_collections.dockerless.containers.plugins.module_utils.bundled import one
from ansible_collections.dockerless.containers.plugins.module_utils import bundled
print(type(one.__spec__.loader).__name__, one.VALUE, one.__file__, bundled.__path__[0], one.twice(), sep="|")
bundle.save()
"""


def real_collections() -> str:
    return boot.__file__.rsplit(os.sep + "ansible_collections" + os.sep, 1)[0]


@pytest.fixture
def tree(tmp_path):
    module_utils = tmp_path / "ansible_collections" / "dockerless" / "containers" / "plugins" / "module_utils"
    package = module_utils / "bundled"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("VALUE = 1\n\n\ndef twice():\n    return 2 * VALUE\n")
    return tmp_path, module_utils


def start(tree, **env) -> list[str]:
    root, module_utils = tree
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environ.update(env)
    proc = subprocess.run([sys.executable, "-S", "-c", CHILD, str(root), real_collections(), str(module_utils)],
                          capture_output=True, text=True, env=environ, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split("|")


def test_the_second_start_takes_the_modules_from_the_bundle(tree):
    _root, module_utils = tree
    source = str(module_utils / "bundled" / "one.py")
    bundle_file = boot.StartBundle.file_for(str(module_utils))
    assert start(tree) == ["SourceFileLoader", "1", source, str(module_utils / "bundled"), "2"]
    assert os.path.isfile(bundle_file)
    assert start(tree) == ["StartBundle", "1", source, str(module_utils / "bundled"), "2"]
    written = os.stat(bundle_file).st_mtime_ns
    start(tree)
    assert os.stat(bundle_file).st_mtime_ns == written   # nothing new loaded: not rewritten


def test_a_changed_source_is_loaded_from_its_file_and_the_bundle_rewritten(tree):
    _root, module_utils = tree
    start(tree)
    (module_utils / "bundled" / "one.py").write_text("VALUE = 21\n\n\ndef twice():\n    return 2 * VALUE\n")
    assert start(tree)[:2] == ["SourceFileLoader", "21"]
    assert start(tree)[:2] == ["StartBundle", "21"]
    assert start(tree)[4] == "42"


def test_no_bundle_where_no_bytecode_is_written(tree):
    _root, module_utils = tree
    assert start(tree, PYTHONDONTWRITEBYTECODE="1")[0] == "SourceFileLoader"
    assert not os.path.exists(boot.StartBundle.file_for(str(module_utils)))


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xe3" + b"\0" * 40])
def test_an_unreadable_bundle_is_ignored_and_replaced(tree, content):
    _root, module_utils = tree
    bundle_file = boot.StartBundle.file_for(str(module_utils))
    os.makedirs(os.path.dirname(bundle_file))
    with open(bundle_file, "wb") as handle:
        handle.write(content)
    assert start(tree)[:2] == ["SourceFileLoader", "1"]
    assert start(tree)[:2] == ["StartBundle", "1"]


def read_bundle(module_utils):
    """(path, bytes, index length, index) of the bundle the last start wrote."""
    bundle_file = boot.StartBundle.file_for(str(module_utils))
    with open(bundle_file, "rb") as handle:
        data = handle.read()
    length = int.from_bytes(data[:8], "little")
    return bundle_file, data, length, marshal.loads(data[8:8 + length])


def test_a_bundle_of_another_interpreter_is_ignored(tree):
    _root, module_utils = tree
    start(tree)
    bundle_file, data, length, index = read_bundle(module_utils)
    assert sorted(index["modules"]) == [boot.ENGINE + "bundled", boot.ENGINE + "bundled.one", boot.ENGINE + "runtime",
                                        boot.ENGINE + "runtime.boot"]
    index["magic"] = b"\0\0\r\n"
    head = marshal.dumps(index)
    assert len(head) == length
    with open(bundle_file, "wb") as handle:
        handle.write(data[:8] + head + data[8 + length:])
    assert start(tree)[0] == "SourceFileLoader"
    assert start(tree)[0] == "StartBundle"


def test_a_bundle_cut_short_keeps_what_it_holds_whole(tree):
    """A truncated file (a full disk, a partial copy): the modules whose code is cut come from their sources, the
    others from the bundle, and the file is written whole again."""
    _root, module_utils = tree
    start(tree)
    bundle_file, data, length, index = read_bundle(module_utils)
    entries = index["modules"]
    one = entries[boot.ENGINE + "bundled.one"]
    os.truncate(bundle_file, 8 + length + one[0] + one[1] - 1)   # bundled.one's code lacks its last byte
    assert start(tree)[:2] == ["SourceFileLoader", "1"]
    assert os.path.getsize(bundle_file) == len(data)
    assert start(tree)[:2] == ["StartBundle", "1"]


AUDITED_SAVE = """
import sys
sys.path[:0] = sys.argv[1:3]
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.boot import StartBundle
bundle = StartBundle.install(sys.argv[3])
from ansible_collections.dockerless.containers.plugins.module_utils.bundled import one
seen = []
sys.addaudithook(lambda event, args: seen.append(event) if event in ("marshal.dumps", "open") else None)
bundle.save()
print(sorted(set(seen)))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a read-only bind mount")
def test_an_engine_the_user_cannot_write_costs_no_bundle_work(tree):
    """An engine installed by another user (here: on a read-only mount, which stops root too): save() compiles
    nothing and opens nothing, rather than building a bundle it can't write at every start."""
    root, module_utils = tree
    subprocess.run(["mount", "--bind", str(module_utils), str(module_utils)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(module_utils)], check=True)
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        proc = subprocess.run([sys.executable, "-S", "-c", AUDITED_SAVE, str(root), real_collections(),
                               str(module_utils)], capture_output=True, text=True, env=environ, timeout=60, check=False)
        assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr
    finally:
        subprocess.run(["umount", str(module_utils)], check=True)
    assert start(tree)[0] == "SourceFileLoader"   # writable again: the bundle is written
    assert start(tree)[0] == "StartBundle"
