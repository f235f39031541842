# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run modules and playbooks of this checkout for real, through ``.venv/bin/ansible-playbook`` on localhost.

``run_module("dockerless.containers.image_pull", {...}, check=True, diff=True)`` writes a one-task playbook,
runs it with the connection ``local`` and ``.venv/bin/python`` as interpreter, and returns the task's result
as Ansible produced it (a :class:`ModuleResult`, a dict with ``failed``, ``changed``, ``msg``, ``diff`` always
present). ``run_playbook(path, extra_vars)`` runs a whole playbook and returns every task result.

Results are collected by the stdout callback ``callback_plugins/dockerless_harness.py``, which writes one JSON
line per task result; nothing is parsed out of human-readable output.

Module arguments are passed literally: every string is tagged ``!unsafe`` so ``{{ ... }}`` is never templated
(pass ``template=True`` to allow it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

CHECKOUT = Path(__file__).resolve().parents[2]
SCRIPTS = CHECKOUT / "scripts"
VENV_BIN = CHECKOUT / ".venv" / "bin"
VENV_PYTHON = VENV_BIN / "python"
COLLECTIONS_PATH = CHECKOUT / ".build" / "collections"
COLLECTION_LINK = COLLECTIONS_PATH / "ansible_collections" / "dockerless" / "containers"
CALLBACK_DIR = Path(__file__).resolve().parent / "callback_plugins"
COLLECTION = "dockerless.containers"

# Names shared by the fixtures (conftest.py) and the tests.
TEST_USER = "dockerless"
TOKEN_SERVICE = "dockerless-test-registry"
TOKEN_ISSUER = "dockerless-test-token-server"
ALL_SEED_IMAGES = "busybox,layers,multi,zstd"


class HarnessError(RuntimeError):
    """ansible-playbook could not run the task at all (syntax error, unknown module, timeout)."""


def load_script(name: str) -> Any:
    """Import ``scripts/<name>.py`` as module ``dockerless_scripts_<name>`` (scripts/ is not a package)."""
    mod_name = f"dockerless_scripts_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, SCRIPTS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise HarnessError(f"loading scripts/{name}.py: not found under {SCRIPTS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    return module


def ensure_collection_link() -> Path:
    """Make ``.build/collections/ansible_collections/dockerless/containers`` -> the checkout (as install-deps.sh)."""
    if not COLLECTION_LINK.exists():
        COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
        if COLLECTION_LINK.is_symlink():
            COLLECTION_LINK.unlink()
        COLLECTION_LINK.symlink_to(Path("..", "..", "..", ".."))
    return COLLECTIONS_PATH


def collection_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment for running Ansible against this checkout (a copy of ``os.environ`` plus settings)."""
    ensure_collection_link()
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
            "ANSIBLE_STDOUT_CALLBACK": "dockerless_harness",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_PIPELINING": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_VAULT_PASSWORD_FILE"):
        env.pop(name, None)
    # The engine copies that the modules run from (engine_loader.py): one root per checkout, so that test sessions
    # of other checkouts neither prune this one's copy nor see theirs.
    env.setdefault("DOCKERLESS_ENGINE_ROOT", str(CHECKOUT / ".build" / "engines"))
    if extra:
        env.update(extra)
    return env


def to_yaml(value: Any, unsafe: bool = True) -> str:
    """YAML flow text for ``value``; strings get ``!unsafe`` so Ansible never templates them."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"!unsafe {text}" if unsafe else text
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{json.dumps(str(k))}: {to_yaml(v, unsafe)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_yaml(v, unsafe) for v in value) + "]"
    if isinstance(value, os.PathLike):
        return to_yaml(os.fspath(value), unsafe)
    raise TypeError(f"to_yaml: cannot pass a {type(value).__name__} to a module")


@dataclass
class TaskResult:
    """One task result on one host, as the harness callback recorded it."""

    task: str
    action: str
    host: str
    status: str  # ok, changed, failed, skipped, unreachable
    ignore_errors: bool
    result: dict[str, Any]

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable")


@dataclass
class PlaybookResult:
    """Everything one ``ansible-playbook`` run produced."""

    rc: int
    tasks: list[TaskResult]
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)

    def __iter__(self) -> Iterator[TaskResult]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def failed(self) -> bool:
        """True if ansible-playbook failed or a task failed without ``ignore_errors``."""
        return self.rc != 0 or any(t.failed and not t.ignore_errors for t in self.tasks)

    def named(self, name: str) -> list[TaskResult]:
        """Results of the tasks called ``name`` (one per host and run)."""
        return [t for t in self.tasks if t.task == name]


class ModuleResult(dict):
    """A module's result dict, plus the run's ``rc``, ``stdout``, ``stderr`` and ``status`` as attributes."""

    rc: int
    stdout: str
    stderr: str
    status: str


def _localhost_inventory(directory: str) -> str:
    path = os.path.join(directory, "inventory.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"localhost ansible_connection=local ansible_python_interpreter={VENV_PYTHON}\n")
    return path


def _ansible_playbook() -> str:
    exe = VENV_BIN / "ansible-playbook"
    if not exe.exists():
        raise HarnessError(f"running a playbook: {exe} is missing. Run scripts/install-deps.sh first.")
    return str(exe)


def _execute(
    playbook: str,
    workdir: str,
    *,
    extra_vars: Optional[Mapping[str, Any]],
    check: bool,
    diff: bool,
    env: Optional[Mapping[str, str]],
    inventory: Optional[str],
    limit: Optional[str],
    timeout: float,
    verbosity: int,
) -> PlaybookResult:
    results_path = os.path.join(workdir, "results.jsonl")
    cmd = [_ansible_playbook(), "-i", inventory or _localhost_inventory(workdir), playbook]
    if extra_vars:
        vars_path = os.path.join(workdir, "extra_vars.json")
        with open(vars_path, "w", encoding="utf-8") as f:
            json.dump(dict(extra_vars), f)
        cmd += ["-e", "@" + vars_path]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if limit:
        cmd += ["--limit", limit]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    run_env = collection_env(env)
    run_env["DOCKERLESS_HARNESS_RESULTS"] = results_path
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(
            f"running {playbook}: ansible-playbook did not finish within {timeout:.0f}s; stderr so far:\n"
            f"{(exc.stderr or b'')[-2000:]!r}"
        ) from exc
    tasks = []
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as f:
            for line in f:
                tasks.append(TaskResult(**json.loads(line)))
    return PlaybookResult(proc.returncode, tasks, proc.stdout, proc.stderr)


def run_playbook(
    path: str | os.PathLike[str],
    extra_vars: Optional[Mapping[str, Any]] = None,
    *,
    check: bool = False,
    diff: bool = False,
    env: Optional[Mapping[str, str]] = None,
    inventory: Optional[str] = None,
    limit: Optional[str] = None,
    timeout: float = 600,
    verbosity: int = 0,
) -> PlaybookResult:
    """Run a playbook against ``inventory`` (default: localhost, connection local, .venv's python).

    Returns every task result; never raises for failed tasks (check ``.failed`` / ``.rc``), only when
    ansible-playbook can't run (:class:`HarnessError` on timeout).
    """
    workdir = tempfile.mkdtemp(prefix="dockerless-playbook-")
    try:
        return _execute(
            os.path.abspath(os.fspath(path)), workdir, extra_vars=extra_vars, check=check, diff=diff, env=env,
            inventory=inventory, limit=limit, timeout=timeout, verbosity=verbosity,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_module(
    module: str,
    args: Optional[Mapping[str, Any]] = None,
    *,
    check: bool = False,
    diff: bool = False,
    env: Optional[Mapping[str, str]] = None,
    template: bool = False,
    timeout: float = 300,
    verbosity: int = 0,
) -> ModuleResult:
    """Run ONE module task on localhost and return its result.

    ``module`` is a FQCN (``ansible.builtin.ping``); a bare name means ``dockerless.containers.<name>``.
    ``env`` adds environment variables for ansible-playbook and the module (e.g. ``DOCKER_PASSWORD``).
    The result always has ``failed``, ``changed``, ``msg`` and ``diff`` (None when the module gave none).
    Raises :class:`HarnessError` if ansible-playbook produced no result for the task (syntax error,
    unknown module, timeout) with its stderr.
    """
    fqcn = module if "." in module else f"{COLLECTION}.{module}"
    task = (
        "{"
        f'"name": "run {fqcn}", {json.dumps(fqcn)}: {to_yaml(dict(args or {}), unsafe=not template)}, '
        f'"check_mode": {json.dumps(check)}, "diff": {json.dumps(diff)}'
        "}"
    )
    play = (
        '[{"name": "dockerless harness", "hosts": "localhost", "gather_facts": false, '
        f'"tasks": [{task}]}}]\n'
    )
    workdir = tempfile.mkdtemp(prefix="dockerless-module-")
    try:
        playbook = os.path.join(workdir, "playbook.yml")
        with open(playbook, "w", encoding="utf-8") as f:
            f.write(play)
        run = _execute(
            playbook, workdir, extra_vars=None, check=False, diff=False, env=env, inventory=None, limit=None,
            timeout=timeout, verbosity=verbosity,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if len(run.tasks) != 1:
        raise HarnessError(
            f"running {fqcn}: ansible-playbook exited {run.rc} with {len(run.tasks)} task results instead of 1. "
            f"Its stderr ends with:\n{run.stderr[-3000:]}\nstdout:\n{run.stdout[-1000:]}"
        )
    task_result = run.tasks[0]
    result = ModuleResult(task_result.result)
    result["failed"] = task_result.failed
    result.setdefault("changed", False)
    result.setdefault("msg", "")
    result.setdefault("diff", None)
    if task_result.status == "skipped":
        result["skipped"] = True
    result.rc, result.stdout, result.stderr, result.status = run.rc, run.stdout, run.stderr, task_result.status
    return result


# --- seeded images -----------------------------------------------------------------------------------------


@dataclass
class SeededRegistry:
    """A registry after ``scripts/seed_images.py``: ``images`` is the script's JSON summary."""

    registry: Any
    images: dict[str, dict[str, Any]]
    layout: str

    def ref(self, name: str) -> str:
        """The pushed reference, e.g. ``127.0.0.1:PORT/library/busybox:latest``."""
        return self.images[name]["reference"]

    def digest(self, name: str) -> str:
        """The manifest (or index) digest the registry serves for ``name``."""
        return self.images[name]["digest"]


def run_seed(reg: Any, layout: str | os.PathLike[str], images: str = ALL_SEED_IMAGES) -> dict[str, dict[str, Any]]:
    """Run ``scripts/seed_images.py`` against ``reg`` (http, or https with its CA and credentials)."""
    cmd = [sys.executable, str(SCRIPTS / "seed_images.py"), "--registry", reg.host, "--images", images,
           "--layout", os.fspath(layout)]
    env = None
    if reg.tls:
        cmd += ["--ca-cert", reg.ca_path]
    if reg.username:
        cmd += ["--username", reg.username]
        env = dict(os.environ, DOCKERLESS_SEED_PASSWORD=reg.password)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"seeding {reg.host}: seed_images.py exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
