# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as a user gets it (README, "Use it in your playbooks"): ``ansible-galaxy collection build`` of
this checkout, ``ansible-galaxy collection install`` of the tarball into an empty collections path, then
``ansible-doc`` for every module and role and ad-hoc ``ansible localhost -m dockerless.containers.…`` from a
shell that knows nothing of the checkout: a minimal environment (no ANSIBLE_* variables, no PYTHONPATH, a fresh
HOME so nothing under ~/.ansible is read), ANSIBLE_COLLECTIONS_PATH naming only the install directory, and the
current directory outside the checkout. Every module and role must resolve to the installed copy."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

CHECKOUT = Path(__file__).resolve().parents[2]
VENV_BIN = CHECKOUT / ".venv" / "bin"
COLLECTION = "dockerless.containers"
MODULES = sorted(p.stem for p in (CHECKOUT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.name for p in (CHECKOUT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
# What must never reach the tarball: scratch and build output of a working checkout (galaxy.yml build_ignore).
NOT_SHIPPED = (".build", "tests/output", ".venv", "bench", ".ansible", ".pytest_cache", ".ruff_cache")


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def _adhoc_result(stdout: str, status: str) -> dict:
    """The JSON of ad-hoc output ``localhost | CHANGED => {...}`` (what a user reads)."""
    marker = f"localhost | {status} => "
    assert marker in stdout, stdout[-3000:]
    return json.loads(stdout[stdout.index(marker) + len(marker):])


@pytest.fixture
def scratch_in_checkout():
    """Make sure the checkout holds the scratch a working tree has (.build from conftest.py, tests/output from
    ansible-test, .ansible from ansible-lint), so the tarball's exclusions are tested, not assumed. Only what this
    fixture creates is removed afterwards."""
    made: list[Path] = []
    for rel in ("tests/output", ".ansible"):
        directory = CHECKOUT / rel
        probe = directory / "installed-collection-probe.txt"
        if not directory.exists():
            directory.mkdir(parents=True)
            made.append(directory)
        if not probe.exists():
            probe.write_text("must not be shipped\n")
            made.insert(0, probe)
    assert (CHECKOUT / ".build" / "collections").is_dir(), "conftest.py makes .build/collections"
    yield
    for path in made:
        path.rmdir() if path.is_dir() else path.unlink()


@pytest.mark.root
def test_built_tarball_installed_into_an_empty_path_documents_and_runs(tmp_path, scratch_in_checkout):
    home, site, work, store = (tmp_path / n for n in ("home", "site", "work", "store"))
    for d in (home, site, work):
        d.mkdir()
    # A new user's shell: nothing of the test run's environment (make exports ANSIBLE_COLLECTIONS_PATH to the
    # checkout's .build/collections) and the collections path naming only the empty install directory.
    # The engine root of this test alone (engine_loader.py): a user's is /usr/local/lib/dockerless/engines, which
    # other test sessions on this machine must not see pruned under them.
    engines = tmp_path / "engines"
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home),
           "LANG": "C.UTF-8", "ANSIBLE_COLLECTIONS_PATH": str(site), "ANSIBLE_NOCOLOR": "1",
           "DOCKERLESS_ENGINE_ROOT": str(engines)}
    galaxy = str(VENV_BIN / "ansible-galaxy")

    _run([galaxy, "collection", "build", "--output-path", str(tmp_path / "dist"), str(CHECKOUT)], env, work)
    [tarball] = (tmp_path / "dist").iterdir()
    with tarfile.open(tarball) as tar:
        members = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    shipped = [m for m in members if any(m == p or m.startswith(p + "/") for p in NOT_SHIPPED)]
    assert not shipped, f"the tarball ships scratch of the checkout: {shipped[:10]}"
    assert not [m for m in members if "__pycache__" in m.split("/")]
    galaxy_yml = yaml.safe_load((CHECKOUT / "galaxy.yml").read_text())
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (galaxy_yml["namespace"], galaxy_yml["name"],
                                                                  galaxy_yml["version"])
    # What users and ansible-builder need is in it.
    for needed in ("meta/runtime.yml", "meta/execution-environment.yml", "meta/ee-requirements.txt",
                   "meta/ee-bindep.txt", "README.md", *(f"plugins/modules/{m}.py" for m in MODULES),
                   *(f"plugins/action/{m}.py" for m in MODULES), "plugins/plugin_utils/engine_action.py",
                   *(f"roles/{r}/meta/argument_specs.yml" for r in ROLES)):
        assert needed in members, needed

    assert not any(site.iterdir())
    _run([galaxy, "collection", "install", "-p", str(site), str(tarball)], env, work)
    installed = site / "ansible_collections" / "dockerless" / "containers"
    assert (installed / "MANIFEST.json").is_file()
    # Ansible sees exactly one collection path and one dockerless.containers: the installed one (not the
    # checkout's .build/collections, not ~/.ansible/collections).
    listed = json.loads(_run([galaxy, "collection", "list", "--format", "json", COLLECTION], env, work).stdout)
    assert list(listed) == [str(site / "ansible_collections")], listed
    assert list(listed[str(site / "ansible_collections")]) == [COLLECTION]

    # The README's other way: a requirements.yml entry of type file naming the tarball.
    requirements = tmp_path / "requirements.yml"
    requirements.write_text(yaml.safe_dump({"collections": [{"name": str(tarball), "type": "file"}]}))
    by_requirements = tmp_path / "site-requirements"
    _run([galaxy, "collection", "install", "-r", str(requirements), "-p", str(by_requirements)],
         dict(env, ANSIBLE_COLLECTIONS_PATH=str(by_requirements)), work)
    again = by_requirements / "ansible_collections" / "dockerless" / "containers"
    assert (again / "FILES.json").read_bytes() == (installed / "FILES.json").read_bytes()

    doc = str(VENV_BIN / "ansible-doc")
    names = [f"{COLLECTION}.{m}" for m in MODULES]
    module_list = json.loads(_run([doc, "-t", "module", "--json", "-l", COLLECTION], env, work).stdout)
    assert sorted(module_list) == names
    module_docs = json.loads(_run([doc, "-t", "module", "--json", *names], env, work).stdout)
    assert sorted(module_docs) == names
    for name, entry in module_docs.items():
        module = name.rsplit(".", 1)[1]
        assert entry["doc"]["filename"] == str(installed / "plugins" / "modules" / f"{module}.py"), name
        assert entry["doc"]["options"] and entry["return"] and entry["examples"].strip(), name
    role_names = [f"{COLLECTION}.{r}" for r in ROLES]
    role_docs = json.loads(_run([doc, "-t", "role", "--json", *role_names], env, work).stdout)
    assert sorted(role_docs) == role_names
    for name, entry in role_docs.items():
        assert entry["path"] == str(installed), name
        assert entry["entry_points"]["main"]["options"], name

    ansible = str(VENV_BIN / "ansible")
    listed_images = _run([ansible, "localhost", "-m", f"{COLLECTION}.image_info", "-a", f"store={store}"], env, work)
    assert _adhoc_result(listed_images.stdout, "SUCCESS")["images"] == []
    # The first module on this host installed the engine (its action plugin ran engine_install), from the
    # installed collection's payload.
    [engine] = engines.iterdir()
    assert (engine / "ENGINE").is_file() and (engine / "ansible_collections" / "dockerless" / "containers" / "plugins" /
                                              "module_utils" / "runtime" / "task.py").is_file()
    # An image holding only the host's echo (and its libraries), then one real one-shot container from it.
    image = "local/echo:1"
    built = _run([ansible, "localhost", "-m", f"{COLLECTION}.image_build",
                  "-a", json.dumps({"name": image, "executables": ["echo"], "store": str(store)})], env, work)
    assert _adhoc_result(built.stdout, "CHANGED")["image"]["name"].endswith(image)
    ran = _run([ansible, "localhost", "-vvv", "-m", f"{COLLECTION}.container_run",
                "-a", json.dumps({"image": image, "command": ["echo", "hello from", "the installed collection"],
                                  "store": str(store)})], env, work)
    result = _adhoc_result(ran.stdout, "CHANGED")
    assert (result["rc"], result["stdout"]) == (0, "hello from the installed collection\n"), result
    # The module that ran is the installed copy's.
    assert f"Using module file {installed / 'plugins' / 'modules' / 'container_run.py'}" in ran.stdout
    # (the controller's own ansible lives in the checkout's .venv here: its paths are not the collection's)
    assert str(CHECKOUT) not in ran.stdout.replace(str(VENV_BIN.parent), "")
