# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine copies on a host (engine_files.install_engine) and how a module loads one (engine_loader): made
for real in tmp_path (as root: chown), then loaded in a fresh interpreter that has only the loader's own files on
its path, as a module's payload has."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils import engine_files, engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError

DIGEST = "ab" * 32
OTHER = "cd" * 32
MODULE_UTILS = os.path.dirname(engine_loader.__file__)
NOBODY = 65534


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return engine_files.engine_sources()


@pytest.fixture
def installed(tmp_path, sources):
    root = str(tmp_path / "engines")
    result = engine_files.install_engine(root, DIGEST, sources)
    return root, result


def test_install_makes_a_compiled_protected_copy_with_the_marker(installed, sources):
    root, result = installed
    final = os.path.join(root, DIGEST)
    assert result == {"changed": True, "path": final, "removed": []}
    assert engine_loader.refusal(final) is None
    with open(os.path.join(final, engine_loader.MARKER), encoding="utf-8") as handle:
        assert json.load(handle)["modules"] == sorted(sources)
    task = os.path.join(engine_loader.module_utils_dir(final), "runtime", "task.py")
    assert os.path.isfile(task)
    cache = os.path.join(os.path.dirname(task), "__pycache__")
    assert any(n.startswith("task.") and n.endswith(".pyc") for n in os.listdir(cache))
    for folder, _dirs, names in os.walk(final):
        assert os.stat(folder).st_mode & 0o777 == 0o755, folder
        for name in names:
            assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o644, name
    assert [n for n in os.listdir(root) if n.startswith(".")] == []      # the temp dir was renamed


def test_a_second_install_leaves_the_copy_alone(installed, sources):
    root = installed[0]
    before = os.stat(os.path.join(root, DIGEST))
    assert engine_files.install_engine(root, DIGEST, sources)["changed"] is False
    after = os.stat(os.path.join(root, DIGEST))
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


@pytest.mark.parametrize("spoil, reason", [
    (lambda d: os.chmod(d, 0o775), "writable by group or others"),
    (lambda d: os.chmod(os.path.join(d, engine_loader.MARKER), 0o646), "writable by group or others"),
    (lambda d: os.chown(os.path.join(d, engine_loader.MARKER), NOBODY, -1), f"owned by uid {NOBODY}"),
    (lambda d: os.unlink(os.path.join(d, engine_loader.MARKER)), "no marker"),
])
def test_a_spoiled_copy_is_refused_then_made_anew(installed, sources, spoil, reason):
    root = installed[0]
    final = os.path.join(root, DIGEST)
    spoil(final)
    assert reason in engine_loader.refusal(final)
    with pytest.raises(engine_loader.EngineMissing, match=reason):
        engine_loader._attach(DIGEST, root)
    assert engine_files.install_engine(root, DIGEST, sources)["changed"] is True
    assert engine_loader.refusal(final) is None


def test_another_users_copy_is_refused_and_not_replaced(installed, sources):
    root = installed[0]
    final = os.path.join(root, DIGEST)
    os.chown(final, NOBODY, -1)
    assert f"owned by uid {NOBODY}" in engine_loader.refusal(final)
    with pytest.raises(RuntimeSetupError, match="owned by uid 65534"):
        engine_files.install_engine(root, DIGEST, sources)


def test_a_symlinked_or_partial_copy_is_refused(tmp_path, installed):
    root = installed[0]
    link = os.path.join(root, OTHER)
    os.symlink(os.path.join(root, DIGEST), link)
    assert "not a directory" in engine_loader.refusal(link)
    partial = tmp_path / "partial"
    partial.mkdir(mode=0o755)
    assert "no marker" in engine_loader.refusal(str(partial))
    assert engine_loader.refusal(str(tmp_path / "none")) == "not installed"


def test_a_root_others_may_write_is_refused(tmp_path, sources):
    root = tmp_path / "open"
    root.mkdir()
    os.chmod(root, 0o1777)
    with pytest.raises(RuntimeSetupError, match="not writable by group or others"):
        engine_files.install_engine(str(root), DIGEST, sources)
    with pytest.raises(RuntimeSetupError, match="not a sha256"):
        engine_files.install_engine(str(tmp_path / "x"), "../etc", sources)


def test_prune_keeps_the_installed_and_the_newest_others(tmp_path):
    root = tmp_path / "engines"
    root.mkdir()
    for age, name in enumerate(["a" * 64, "b" * 64, "c" * 64, "d" * 64]):
        (root / name).mkdir()
        marker = root / name / engine_loader.MARKER
        marker.write_text("{}")
        os.utime(marker, (1000 - age, 1000 - age))       # a newest ... d oldest
    (root / ".old-tmp").mkdir()
    os.utime(root / ".old-tmp", (0, 0))
    (root / ".new-tmp").mkdir()
    removed = engine_files.prune(str(root), keep="d" * 64)
    assert sorted(removed) == [".old-tmp", "c" * 64]
    assert sorted(os.listdir(root)) == [".new-tmp", "a" * 64, "b" * 64, "d" * 64]


def test_install_prunes_older_copies(tmp_path, sources):
    root = str(tmp_path / "engines")
    digests = [f"{i:064x}" for i in range(4)]
    for i, digest in enumerate(digests):
        engine_files.install_engine(root, digest, {"errors": sources["errors"]})
        os.utime(os.path.join(root, digest, engine_loader.MARKER), (100 + i, 100 + i))
    assert sorted(os.listdir(root)) == digests[1:]


def test_engine_root_for_root_users_and_override(monkeypatch):
    import pwd

    assert engine_loader.engine_root({}, uid=0) == engine_loader.SYSTEM_ROOT
    assert engine_loader.engine_root({"XDG_CACHE_HOME": "/c"}, uid=1000) == "/c/dockerless/engines"
    assert engine_loader.engine_root({engine_loader.ROOT_ENV: "/e"}, uid=0) == "/e"
    monkeypatch.setenv("HOME", "/root")                                 # as sudo may leave it
    nobody = pwd.getpwuid(NOBODY).pw_dir
    assert engine_loader.engine_root({}, uid=NOBODY) == f"{nobody}/.cache/dockerless/engines"


_LOAD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader, errors  # as a module does
try:
    task = engine_loader.load("runtime.task")
except engine_loader.EngineMissing as exc:
    print(json.dumps({"missing": exc.reason}))
    raise SystemExit(0)
print(json.dumps({"task": task.__file__, "cached": task.__cached__,
                  "errors": sys.modules[engine_loader.PKG + ".errors"].__file__}))
"""


def _payload_like(tmp_path) -> str:
    """A folder with only what a thin module's payload has of the collection: the loader, errors, common."""
    top = tmp_path / "payload"
    folder = top.joinpath(*engine_loader.PKG.split("."))
    folder.mkdir(parents=True)
    for part in range(len(engine_loader.PKG.split("."))):
        top.joinpath(*engine_loader.PKG.split(".")[:part + 1], "__init__.py").write_text("")
    for name in ("engine_loader.py", "errors.py", "common.py"):
        shutil.copy(os.path.join(MODULE_UTILS, name), folder / name)
    return str(top)


def _load(payload: str, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-S", "-c", _LOAD, payload], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_module_loads_the_installed_compiled_engine(tmp_path, installed):
    root = installed[0]
    payload = _payload_like(tmp_path)
    got = _load(payload, {engine_loader.DIGEST_ENV: DIGEST, engine_loader.ROOT_ENV: root})
    assert got["task"].startswith(os.path.join(root, DIGEST) + os.sep)
    assert os.path.isfile(got["cached"])                                # read from __pycache__, made ahead
    assert got["errors"].startswith(payload)                            # one errors module: the payload's
    assert _load(payload, {engine_loader.DIGEST_ENV: OTHER, engine_loader.ROOT_ENV: root}) == {
        "missing": "not installed"}
    os.chmod(os.path.join(root, DIGEST), 0o757)
    assert _load(payload, {engine_loader.DIGEST_ENV: DIGEST, engine_loader.ROOT_ENV: root}) == {
        "missing": f"{os.path.join(root, DIGEST)} is writable by group or others"}


def test_without_a_digest_the_checkout_is_imported():
    task = engine_loader.load("runtime.task", environ={})
    assert task.__file__.startswith(MODULE_UTILS)


def test_engine_install_ships_every_engine_root():
    """engine_install's never-called imports put ENGINE_ROOTS into its payload: the two lists agree."""
    path = os.path.join(os.path.dirname(MODULE_UTILS), "modules", "engine_install.py")
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    payload = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_payload")
    shipped = set()
    for node in ast.walk(payload):
        if isinstance(node, ast.ImportFrom):
            base = node.module[len(engine_loader.PKG) + 1:]
            shipped.update(f"{base}.{alias.name}" for alias in node.names)
    assert shipped == set(engine_loader.ENGINE_ROOTS)


_UNITS_COPY = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader, errors  # as a module does
systemd = engine_loader.load("runtime.systemd")
sources = systemd.engine_sources()
main = engine_loader.load("cli.main")
print(json.dumps({"count": len(sources), "main": "def console" in sources["cli.main"], "file": main.__file__}))
"""


def test_the_units_copy_is_made_from_the_installed_engine(tmp_path, installed):
    """container_run's payload no longer carries cli.main: runtime/systemd.py finds the command line's sources in
    the digest directory the module loaded its engine from."""
    root = installed[0]
    payload = _payload_like(tmp_path)
    proc = subprocess.run([sys.executable, "-S", "-c", _UNITS_COPY, payload], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", engine_loader.DIGEST_ENV: DIGEST, engine_loader.ROOT_ENV: root},
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["main"] and got["count"] > 60 and got["file"].startswith(os.path.join(root, DIGEST) + os.sep)


@pytest.mark.parametrize("digest", ["../" * 8 + "tmp", "/etc", "A" * 64, "0" * 63, "0" * 63 + "/"])
def test_a_digest_that_is_not_a_sha256_is_refused_before_any_path_is_made(tmp_path, digest):
    with pytest.raises(engine_loader.EngineMissing, match="not a sha256"):
        engine_loader.load("records", environ={engine_loader.DIGEST_ENV: digest,
                                               engine_loader.ROOT_ENV: str(tmp_path)})
