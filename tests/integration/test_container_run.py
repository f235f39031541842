# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_run and container_info run by ansible-playbook against localhost on the real kernel (root).

The image is a busybox (Debian's busybox-static) image written into a fresh store with the store's own API:
an uncompressed OCI layer blob, config and manifest, tagged, and its layer folder in place. Each test uses
random container names and removes what it made; one playbook per scenario keeps the Ansible start-up cost
down (check → real → idempotent check → idempotent real, each followed by asserts on the results).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
BIN_DOCKERLESS = Path(__file__).resolve().parents[2] / "bin" / "dockerless"
IMAGE = "127.0.0.1:5999/test/busybox:1"
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


def make_busybox_rootfs(root: str) -> str:
    for d in ("bin", "etc", "root", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for applet in subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split():
        if applet != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return root


def add_image(store_root: str, name: str, rootfs: str, config: dict) -> str:
    """Write ``rootfs`` as a one-layer OCI image named ``name`` into the store; returns the manifest digest."""
    store = Store(store_root)
    store.ensure()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(rootfs, arcname=".")
    layer = buf.getvalue()
    diff_id, size = store.put_blob(layer)
    cfg = {"architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cfg_digest, cfg_size = store.put_blob(json.dumps(cfg).encode())
    manifest = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                "config": {"mediaType": oci.OCI_CONFIG, "digest": cfg_digest, "size": cfg_size},
                "layers": [{"mediaType": oci.OCI_LAYER_TAR, "digest": diff_id, "size": size}]}
    body = json.dumps(manifest).encode()
    digest, msize = store.put_blob(body)
    store.tag(name, {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": msize})
    if not store.has_layer(diff_id):
        shutil.copytree(rootfs, store.layer_dir(diff_id), symlinks=True)
    assert hashlib.sha256(layer).hexdigest() == diff_id.split(":")[1]
    return digest


def test_one_shot_returns_output_like_command(store, run_module):
    result = run_module("container_run", {"image": IMAGE, "store": store, "pull": "never",
                                          "command": ["/bin/sh", "-c", "echo $IMAGE_VAR $FOO; hostname; echo e >&2"],
                                          "env": {"FOO": "bar"}, "hostname": "one"})
    assert not result["failed"], result["msg"]
    assert result["changed"] is True
    assert result["rc"] == 0
    assert result["stdout_lines"] == ["1 bar", "one"]
    assert result["stderr"] == "e\n"
    assert result["container"]["rootfs_mode"] == "overlay"
    assert result["container"]["image_digest"].startswith("sha256:")
    # Nothing left but the store's idle one-shot slot (runtime.OneShotDir): no record, no written layer.
    slots = os.path.join(store, "containers")
    for entry in os.listdir(slots):
        if entry.endswith(".etc"):   # the slot's /etc files (network.etc_files), rewritten by its next run
            continue
        upper = os.path.join(slots, entry, "upper")
        assert entry.startswith(".one-shot-") and set(os.listdir(os.path.join(slots, entry))) <= {"upper", "work"}
        assert not os.path.isdir(upper) or not os.listdir(upper)


def test_one_shot_failures(store, run_playbook, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    dockerless.containers.container_run: {{store: {store}, image: "{IMAGE}", pull: never}}
  tasks:
    - name: exit 3 fails the task
      dockerless.containers.container_run: {{command: "sh -c 'echo out; exit 3'"}}
      register: failing
      ignore_errors: true
    - name: failed_when accepts it
      dockerless.containers.container_run: {{command: "sh -c 'exit 3'"}}
      register: accepted
      failed_when: accepted.rc not in [0, 3]
    - name: timeout kills the container
      dockerless.containers.container_run: {{command: [sleep, "60"], run_timeout: 1}}
      register: slow
      ignore_errors: true
    - name: OOM is reported
      dockerless.containers.container_run:
        command: [dd, if=/dev/zero, of=/dev/null, bs=200M, count=1]
        memory: 64m
        memory_swap: 64m
      register: oom
      ignore_errors: true
    - name: check mode does not run
      dockerless.containers.container_run: {{command: [touch, /should-not-run]}}
      check_mode: true
      register: checked
""")
    run = run_playbook(playbook)
    results = {t.task: t for t in run.tasks}
    failing = results["exit 3 fails the task"]
    assert failing.failed and failing.result["rc"] == 3 and failing.result["stdout"] == "out\n"
    assert failing.result["msg"] == "non-zero return code"
    accepted = results["failed_when accepts it"]
    assert not accepted.failed and accepted.result["rc"] == 3
    slow = results["timeout kills the container"]
    assert slow.failed and slow.result["timed_out"] and slow.result["rc"] == 137
    assert "timed out" in slow.result["msg"]
    oom = results["OOM is reported"]
    assert oom.failed and oom.result["oom_killed"] and oom.result["rc"] == 137
    assert "OOM" in oom.result["msg"]
    checked = results["check mode does not run"]
    assert checked.result["changed"] and "rc" not in checked.result


def test_detached_lifecycle_idempotence_and_check_mode(store, run_playbook, tmp_path, cleanup):
    name = f"t-{secrets.token_hex(4)}"
    cleanup.append(name)
    playbook = tmp_path / "lifecycle.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  vars:
    run: &run
      name: {name}
      store: {store}
      image: "{IMAGE}"
      pull: never
      command: [sh, -c, 'trap "exit 0" TERM; echo started; while true; do sleep 0.2; done']
      restart_policy: always
      stop_timeout: 5
      pids_limit: 50
  tasks:
    - name: start (check)
      dockerless.containers.container_run: *run
      check_mode: true
      diff: true
      register: start_check
    - name: start
      dockerless.containers.container_run: *run
      register: start
    - name: start again (check)
      dockerless.containers.container_run: *run
      check_mode: true
      register: again_check
    - name: start again
      dockerless.containers.container_run: *run
      register: again
    - name: info
      dockerless.containers.container_info: {{store: {store}, name: {name}, logs: 10, stats: true}}
      register: info
    - name: kill the container's PID 1 behind the supervisor's back
      ansible.builtin.command: kill -9 {{{{ start.container.pid }}}}
    - name: wait for the restart
      dockerless.containers.container_info: {{store: {store}, name: {name}}}
      register: restarted
      until: restarted.containers[0].restart_count >= 1 and restarted.containers[0].state == 'running'
      retries: 50
      delay: 0.2
    - name: stop
      dockerless.containers.container_run: {{<<: *run, state: stopped}}
      register: stop
    - name: stop again
      dockerless.containers.container_run: {{<<: *run, state: stopped}}
      register: stop_again
    - name: start after stop
      dockerless.containers.container_run: *run
      register: restart
    - name: change the environment (check, diff)
      dockerless.containers.container_run: {{<<: *run, env: {{A: "1"}}}}
      check_mode: true
      diff: true
      register: recreate_check
    - name: change the environment
      dockerless.containers.container_run: {{<<: *run, env: {{A: "1"}}}}
      register: recreate
    - name: remove (check)
      dockerless.containers.container_run: {{name: {name}, store: {store}, state: absent}}
      check_mode: true
      register: remove_check
    - name: remove
      dockerless.containers.container_run: {{name: {name}, store: {store}, state: absent}}
      register: remove
    - name: remove again
      dockerless.containers.container_run: {{name: {name}, store: {store}, state: absent}}
      register: remove_again
    - name: info after removal
      dockerless.containers.container_info: {{store: {store}, name: {name}}}
      register: gone
""")
    run = run_playbook(playbook)
    r = {t.task: t.result for t in run.tasks}
    assert not run.failed, [(t.task, t.result.get("msg")) for t in run.tasks if t.failed]
    assert r["start (check)"]["changed"] and r["start (check)"]["actions"] == ["create", "start"]
    assert r["start (check)"]["diff"]["before"]["state"] == "absent"
    assert r["start"]["changed"] and r["start"]["container"]["state"] == "running"
    pid = r["start"]["container"]["pid"]
    assert r["start again (check)"]["changed"] is False
    assert r["start again"]["changed"] is False and r["start again"]["container"]["pid"] == pid
    info = r["info"]["containers"][0]
    assert info["running"] and info["pid"] == pid and info["stdout_lines"] == ["started"]
    assert info["cgroup"] == f"dockerless/{name}" and info["stats"]["pids_current"] >= 1
    restarted = r["wait for the restart"]["containers"][0]
    assert restarted["pid"] != pid and restarted["restart_count"] >= 1
    assert r["stop"]["changed"] and r["stop"]["container"]["state"] == "exited"
    assert r["stop"]["container"]["exit_code"] == 0          # SIGTERM reached PID 1, whose trap exited
    assert r["stop again"]["changed"] is False
    assert r["start after stop"]["changed"] and r["start after stop"]["container"]["running"]
    check = r["change the environment (check, diff)"]
    assert check["changed"] and check["actions"] == ["stop", "remove", "create", "start"]
    assert check["diff"]["before"]["env"] == shown_env({"PATH": "/bin", "IMAGE_VAR": "1"})
    assert check["diff"]["after"]["env"] == shown_env({"PATH": "/bin", "IMAGE_VAR": "1", "A": "1"})
    assert set(check["diff"]["after"]) == {"state", "env"}
    assert r["change the environment"]["container"]["id"] != r["start"]["container"]["id"]
    assert r["remove (check)"]["changed"] and r["remove"]["changed"]
    assert r["remove again"]["changed"] is False
    assert r["info after removal"]["exists"] is False
    assert not os.path.exists(os.path.join(store, "containers", name))
    assert not os.path.exists(f"/sys/fs/cgroup/pids/dockerless/{name}")


def shown_env(env: dict[str, str]) -> list[str]:
    """How results and diffs show an environment: keys (sorted) with the first 12 hex digits of each value's
    sha256."""
    return [f"{k}=sha256:{hashlib.sha256(v.encode()).hexdigest()[:12]}" for k, v in sorted(env.items())]


def test_env_values_never_reach_results_or_diffs(store, run_module, cleanup):
    """A secret passed in env is in no result, diff or listing (module, check mode, container_info, the CLI's
    ps --json); a changed value still shows as a changed digest; the container itself gets the real value."""
    name = f"t-{secrets.token_hex(4)}"
    cleanup.append(name)
    secret, rotated = f"s3cr3t-{secrets.token_hex(8)}", f"r0tated-{secrets.token_hex(8)}"
    args = {"name": name, "store": store, "image": IMAGE, "pull": "never", "env": {"DB_PASSWORD": secret},
            "command": ["sh", "-c", 'echo "$DB_PASSWORD" | md5sum; trap "exit 0" TERM; while true; do sleep 0.2; done']}

    check = run_module("container_run", args, check=True, diff=True)
    created = run_module("container_run", args, diff=True)
    again = run_module("container_run", args, diff=True)
    info = run_module("container_info", {"store": store, "name": name, "logs": 5})
    ps = subprocess.run([sys.executable, str(BIN_DOCKERLESS), "ps", "--json", "--store", store],
                        capture_output=True, text=True, check=False, timeout=60)
    rotated_check = run_module("container_run", dict(args, env={"DB_PASSWORD": rotated}), check=True, diff=True)
    rotated_run = run_module("container_run", dict(args, env={"DB_PASSWORD": rotated}), diff=True)
    for label, result in (("check", check), ("created", created), ("again", again), ("info", info),
                          ("rotated check", rotated_check), ("rotated", rotated_run)):
        assert not result["failed"], (label, result.get("msg"))
        # Ansible itself echoes the task's arguments in ``invocation`` (shown at -vvv): that is what no_log is for.
        text = json.dumps({k: v for k, v in result.items() if k != "invocation"})
        assert secret not in text and rotated not in text, label
    assert ps.returncode == 0, ps.stderr
    assert secret not in ps.stdout and name in ps.stdout

    env_before = shown_env({"PATH": "/bin", "IMAGE_VAR": "1", "DB_PASSWORD": secret})
    env_after = shown_env({"PATH": "/bin", "IMAGE_VAR": "1", "DB_PASSWORD": rotated})
    assert check["diff"]["after"]["env"] == env_before
    assert created["changed"] and created["container"]["env"] == env_before
    assert again["changed"] is False
    assert info["containers"][0]["env"] == env_before
    # The container got the real value (its md5, computed inside, matches).
    assert info["containers"][0]["stdout_lines"][0].split()[0] == hashlib.md5(f"{secret}\n".encode()).hexdigest()
    # A rotated secret is a visible change of the digest, and recreates the container.
    assert rotated_check["changed"] and rotated_check["diff"]["before"]["env"] == env_before
    assert rotated_check["diff"]["after"]["env"] == env_after and env_before != env_after
    assert rotated_run["changed"] and rotated_run["container"]["env"] == env_after
    # The record keeps the real value (the store is root's): a restart needs it.
    with open(os.path.join(store, "containers", name, "spec.json"), encoding="utf-8") as handle:
        assert json.load(handle)["spec"]["env"]["DB_PASSWORD"] == rotated


def test_named_foreground_supervision_logs_and_bad_parameters(store, run_playbook, tmp_path, cleanup):
    fg, logged = f"fg-{secrets.token_hex(4)}", f"log-{secrets.token_hex(4)}"
    cleanup.extend([fg, logged])
    playbook = tmp_path / "misc.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    dockerless.containers.container_run: {{store: {store}, image: "{IMAGE}", pull: never}}
  tasks:
    - name: named foreground
      dockerless.containers.container_run:
        name: {fg}
        detach: false
        command: [sh, -c, 'echo hello; echo oops >&2']
      register: fg
    - name: its logs
      dockerless.containers.container_info: {{store: {store}, name: {fg}, logs: 5}}
      register: fg_info
    - name: a chatty detached container
      dockerless.containers.container_run:
        name: {logged}
        log_max_size: 8k
        stop_timeout: 1
        command: [sh, -c, 'i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; sleep 60']
      register: logged
    - name: workdir under /proc
      dockerless.containers.container_run: {{command: [true], workdir: /proc/self/fd/5}}
      register: bad_workdir
      ignore_errors: true
    - name: no image
      dockerless.containers.container_run: {{image: null, command: [true]}}
      register: no_image
      ignore_errors: true
    - name: user out of range
      dockerless.containers.container_run: {{command: true, user: "4294967295"}}
      register: bad_user
      ignore_errors: true
""")
    run = run_playbook(playbook)
    r = {t.task: t.result for t in run.tasks}
    fg_result = r["named foreground"]
    assert not fg_result.get("failed"), fg_result.get("msg")
    assert fg_result["rc"] == 0 and fg_result["stdout"] == "hello\n" and fg_result["stderr"] == "oops\n"
    assert fg_result["container"]["state"] == "exited" and fg_result["container"]["exit_code"] == 0
    assert r["its logs"]["containers"][0]["stdout_lines"] == ["hello"]

    supervisor = r["a chatty detached container"]["container"]["supervisor_pid"]
    # ansible-playbook and the module are gone; the supervisor still runs the container.
    assert os.path.exists(f"/proc/{supervisor}")
    log = os.path.join(store, "containers", logged, "stdout.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(log + ".1"):
        time.sleep(0.1)
    assert os.path.getsize(log) <= 8192 and os.path.getsize(log + ".1") <= 8192
    # Nothing of Ansible's (its result pipe, the module's files) leaked into the supervisor: its pipes are its
    # wake-up pipe (both ends) and the read ends of the container's stdout and stderr, nothing else.
    targets = [os.readlink(f"/proc/{supervisor}/fd/{fd}") for fd in os.listdir(f"/proc/{supervisor}/fd")]
    assert not any("ansible" in t.lower() for t in targets), targets
    pipes = [t for t in targets if t.startswith("pipe:")]
    assert len(pipes) == 4 and len(set(pipes)) == 3, targets
    assert os.readlink(f"/proc/{supervisor}/fd/1") == "/dev/null"

    assert "under /proc" in r["workdir under /proc"]["msg"]
    assert "'image' is required" in r["no image"]["msg"]
    assert "out of range" in r["user out of range"]["msg"]


def test_pull_through_the_registry_check_mode_then_run(seeded_registry, run_playbook, tmp_path):
    store = str(tmp_path / "pulled-store")
    image = seeded_registry.ref("busybox")
    playbook = tmp_path / "pull.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    dockerless.containers.container_run: {{store: {store}, image: "{image}", command: [cat, /proc/1/cmdline]}}
  tasks:
    - name: check mode on an empty store
      dockerless.containers.container_run: {{}}
      check_mode: true
      register: checked
    - name: named container in check mode on an empty store
      dockerless.containers.container_run: {{name: never-created-{tmp_path.name[-8:]}}}
      check_mode: true
      register: named_checked
    - name: the store after check mode
      ansible.builtin.stat: {{path: "{store}/index.json"}}
      register: after_check
    - name: run, pulling the image
      dockerless.containers.container_run: {{}}
      register: ran
    - name: run again from the store, asking the registry for the digest
      dockerless.containers.container_run: {{pull: always}}
      register: again
""")
    run = run_playbook(playbook)
    r = {t.task: t.result for t in run.tasks}
    assert not run.failed, [(t.task, t.result.get("msg")) for t in run.tasks if t.failed]
    assert r["check mode on an empty store"]["actions"][0] == f"pull {image}"
    assert r["the store after check mode"]["stat"]["exists"] is False    # check mode fetched nothing
    named = r["named container in check mode on an empty store"]
    assert named["changed"] is True and named["actions"][:2] == [f"pull {image}", "create"], named
    assert r["run, pulling the image"]["stdout"] == "cat\0/proc/1/cmdline\0"
    stored = Store(store).image(image)
    assert r["run, pulling the image"]["container"]["image_digest"] == stored.digest
    assert stored.remote_digest == seeded_registry.digest("busybox")   # what the registry served
    assert r["run again from the store, asking the registry for the digest"]["rc"] == 0


def test_unless_stopped_stop_signal_and_force_kill(store, run_module, cleanup):
    name = f"t-{secrets.token_hex(4)}"
    cleanup.append(name)
    base = {"name": name, "store": store, "image": IMAGE, "pull": "never", "restart_policy": "unless-stopped",
            "command": ["sh", "-c", "trap 'echo usr1; exit 0' USR1; trap '' TERM; while true; do sleep 0.1; done"],
            "stop_signal": "SIGUSR1", "stop_timeout": 10}
    started = run_module("container_run", base)
    assert not started["failed"], started["msg"]
    c = started["container"]
    assert (c["restart_policy"], c["stop_signal"], c["stopped_by_user"]) == ("unless-stopped", "SIGUSR1", False)
    assert run_module("container_run", base)["changed"] is False
    # A new stop signal is a new container (Docker keeps it in the container's config).
    changed = run_module("container_run", {**base, "stop_signal": "SIGINT"}, check=True, diff=True)
    assert changed["changed"] is True and changed["diff"]["after"]["stop_signal"] == "SIGINT"
    time.sleep(0.3)
    stopped = run_module("container_run", {**base, "state": "stopped"})
    c = stopped["container"]
    assert (c["state"], c["exit_code"], c["stopped_by_user"]) == ("exited", 0, True)   # SIGUSR1, not SIGKILL
    assert Runtime(store).start_all([name]) == [(name, "skipped: stopped by the user")]
    assert run_module("container_run", base)["container"]["running"] is True
    # sleep as PID 1 ignores every signal but SIGKILL: without force_kill the removal would take the 10 s.
    sleeper = run_module("container_run", {**base, "command": ["sleep", "600"]})
    assert sleeper["changed"] is True and sleeper["container"]["running"] is True
    began = time.monotonic()
    removed = run_module("container_run", {"name": name, "store": store, "state": "absent", "force_kill": True})
    assert not removed["failed"] and removed["changed"] is True
    assert time.monotonic() - began < 8
    assert Runtime(store).inspect(name) is None


def test_a_volume_source_swapped_by_the_container_is_never_followed(store, run_playbook, tmp_path, cleanup):
    # A named container with a restart policy rewrites its shared volume (`mv config x; ln -s / config`) and
    # exits: the restart must not mount the host's / on /config (the source is pinned), and a later run of the
    # same task must not follow the new link either (it says so, recreate: true is the way to accept it).
    name = f"pin-{secrets.token_hex(4)}"
    cleanup.append(name)
    app = tmp_path / "app"
    (app / "config").mkdir(parents=True)
    (app / "config" / "marker").write_text("m")
    playbook = tmp_path / "pinned.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  vars:
    run: &run
      name: {name}
      store: {store}
      image: "{IMAGE}"
      pull: never
      command: [sh, -c, 'if [ -e /config/marker ]; then mv /app/config /app/x; ln -s / /app/config; exit 1; fi;
                         ls /config > /app/second-run']
      restart_policy: on-failure
      volumes: ["{app}:/app", "{app}/config:/config:ro"]
  tasks:
    - name: start
      dockerless.containers.container_run: *run
    - name: wait for the restart to fail
      dockerless.containers.container_info: {{store: {store}, name: {name}}}
      register: info
      until: info.containers[0].state == 'exited' and (info.containers[0].error or '') != ''
      retries: 100
      delay: 0.2
    - name: the same task again
      dockerless.containers.container_run: *run
      register: again
      ignore_errors: true
""")
    run = run_playbook(playbook)
    r = {t.task: t.result for t in run.tasks}
    assert not (app / "second-run").exists(), (app / "second-run").read_text()
    error = r["wait for the restart to fail"]["containers"][0]["error"]
    assert "/config" in error and "changed since the container was created" in error, error
    again = next(t for t in run.tasks if t.task == "the same task again")
    assert again.failed, again.result
    assert "resolves to / now" in again.result["msg"], again.result["msg"]
    assert not (app / "second-run").exists()
