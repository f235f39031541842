# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine on the host, through ansible-playbook as users run it: a host without the engine gets it installed by
the action plugin (engine_install) and the task succeeds with its usual result; later runs use that copy (its
directory is not made again); an edited engine gets a digest directory of its own; check mode, async, no_log and
delegate_to work the same. Each test has an engine root of its own (DOCKERLESS_ENGINE_ROOT)."""

from __future__ import annotations

import json
import os
import shutil

import harness

ABSENT = {"name": "no-such-engine-test", "state": "absent"}


def _env(root) -> dict[str, str]:
    return {"DOCKERLESS_ENGINE_ROOT": str(root)}


def _digests(root) -> dict[str, tuple[int, int]]:
    """Digest directory -> (inode, marker mtime) in ``root``: what a reinstall would change."""
    out = {}
    for name in sorted(os.listdir(root)):
        marker = os.path.join(root, name, "ENGINE")
        out[name] = (os.stat(os.path.join(root, name)).st_ino, os.stat(marker).st_mtime_ns)
    return out


def _no_engine_keys(result) -> None:
    assert not {"dockerless_engine", "dockerless_engine_missing"} & set(result), result


def test_the_first_run_installs_the_engine_and_the_next_uses_it(run_module, tmp_path):
    root = tmp_path / "engines"
    args = {**ABSENT, "store": str(tmp_path / "store")}
    first = run_module("container_run", args, env=_env(root))
    assert not first["failed"] and not first["changed"], first        # the install is not the task's change
    assert first["container"] == {"name": ABSENT["name"]} and first["actions"] == []
    _no_engine_keys(first)
    installed = _digests(root)
    assert len(installed) == 1 and len(next(iter(installed))) == 64
    second = run_module("container_run", args, env=_env(root))
    assert not second["failed"] and not second["changed"], second
    assert second["container"] == first["container"] and second["actions"] == first["actions"]
    assert _digests(root) == installed                               # the installer did not run again


def test_engine_install_reports_its_own_change(run_module, tmp_path):
    root = tmp_path / "engines"
    first = run_module("engine_install", {"root": str(root)})
    assert not first["failed"] and first["changed"], first
    assert first["path"] == str(root / first["digest"]) and first["removed"] == []
    again = run_module("engine_install", {"root": str(root)})
    assert not again["failed"] and not again["changed"] and again["digest"] == first["digest"], again
    used = run_module("container_run", {**ABSENT, "store": str(tmp_path / "store")}, env=_env(root))
    assert not used["failed"], used
    assert os.listdir(root) == [first["digest"]]                     # the modules' digest is the installer's


def test_a_spoiled_engine_is_installed_anew(run_module, tmp_path):
    root = tmp_path / "engines"
    args = {**ABSENT, "store": str(tmp_path / "store")}
    assert not run_module("container_run", args, env=_env(root))["failed"]
    (digest,) = os.listdir(root)
    os.chmod(root / digest, 0o777)                                  # writable by others: not to be trusted
    (root / digest / "planted").write_text("anyone could have put this here")
    result = run_module("container_run", args, env=_env(root))
    assert not result["failed"] and not result["changed"], result
    assert not (root / digest / "planted").exists()                 # made anew (an inode number may be reused)
    assert os.stat(root / digest).st_mode & 0o777 == 0o755


def test_an_edited_engine_gets_a_digest_directory_of_its_own(run_module, tmp_path):
    root = tmp_path / "engines"
    args = {**ABSENT, "store": str(tmp_path / "store")}
    assert not run_module("container_run", args, env=_env(root))["failed"]
    copy = tmp_path / "collections" / "ansible_collections" / "dockerless" / "containers"
    for part in ("plugins", "meta"):
        shutil.copytree(harness.CHECKOUT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(harness.CHECKOUT / "galaxy.yml", copy / "galaxy.yml")
    with open(copy / "plugins" / "module_utils" / "errors.py", "a", encoding="utf-8") as handle:
        handle.write("\n# an edit: another engine\n")
    env = {**_env(root), "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections")}
    result = run_module("container_run", args, env=env)
    assert not result["failed"], result
    assert len(_digests(root)) == 2
    edited = run_module("engine_install", {"root": str(root)}, env=env)
    assert not edited["changed"] and edited["digest"] in os.listdir(root), edited


def test_check_mode_installs_the_engine_and_reports_the_task_s_change_only(run_module, tmp_path):
    root = tmp_path / "engines"
    store = tmp_path / "store"
    result = run_module("container_network", {"name": "enginecheck", "subnet": "10.251.7.0/24", "store": str(store)},
                        check=True, env=_env(root))
    assert not result["failed"] and result["changed"], result        # the network would be made...
    assert not (store / "networks").exists() or not os.listdir(store / "networks")   # ...and was not
    assert len(_digests(root)) == 1
    noop = run_module("container_run", {**ABSENT, "store": str(store)}, check=True, env=_env(tmp_path / "other"))
    assert not noop["failed"] and not noop["changed"], noop
    assert len(_digests(tmp_path / "other")) == 1


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: async
      dockerless.containers.container_run: {args}
      async: 60
      poll: 1
      register: run_async
    - name: no_log
      dockerless.containers.container_run: {args}
      no_log: true
    - name: delegated
      dockerless.containers.container_run: {args}
      delegate_to: localhost
    - name: fire and forget
      dockerless.containers.container_info: {{store: {store}}}
      async: 60
      poll: 0
      register: job
    - name: its status
      ansible.builtin.async_status:
        jid: "{{{{ job.ansible_job_id }}}}"
      register: status
      until: status.finished
      retries: 30
      delay: 1
"""


def test_async_no_log_and_delegate_to_on_a_host_without_the_engine(run_playbook, tmp_path):
    root = tmp_path / "engines"
    store = str(tmp_path / "store")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(args=json.dumps({**ABSENT, "store": store}), store=json.dumps(store)))
    run = run_playbook(playbook, env=_env(root))
    assert not run.failed, (run.stderr[-2000:], [(t.task, t.status, t.result) for t in run])
    (async_run,) = run.named("async")
    assert async_run.result["container"] == {"name": ABSENT["name"]} and async_run.result.get("finished") == 1
    _no_engine_keys(async_run.result)
    (hidden,) = run.named("no_log")
    assert "container" not in hidden.result and hidden.status == "ok", hidden.result
    (delegated,) = run.named("delegated")
    assert delegated.result["container"] == {"name": ABSENT["name"]}
    (status,) = run.named("its status")
    assert status.result["containers"] == [] and status.result["exists"] is False, status.result
    assert len(_digests(root)) == 1
