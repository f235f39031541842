# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_exec (and dockerless exec) through ansible-playbook on the real kernel (root)."""

from __future__ import annotations

import fcntl
import os
import pty
import secrets
import struct
import subprocess
import termios
import time

import pytest
from test_container_run import BIN_DOCKERLESS, BUSYBOX, IMAGE, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


def test_exec_runs_inside_fails_on_rc_and_check_mode_runs_nothing(store, run_playbook, tmp_path, cleanup):
    name = f"x-{secrets.token_hex(4)}"
    cleanup.append(name)
    playbook = tmp_path / "exec.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    dockerless.containers.container_exec: {{store: {store}, container: {name}}}
  tasks:
    - name: start
      dockerless.containers.container_run:
        {{name: {name}, store: {store}, image: "{IMAGE}", pull: never, command: [sleep, "300"], hostname: inner}}
    - name: list
      dockerless.containers.container_exec: {{command: [sh, -c, 'hostname; tr "\\0" " " < /proc/1/cmdline; echo; echo $X']}}
      args: {{env: {{X: y}}}}
    - name: string and stdin
      dockerless.containers.container_exec: {{command: "read a; echo got $a; pwd", stdin: hello, workdir: /tmp}}
    - name: check mode
      dockerless.containers.container_exec: {{command: [touch, /made]}}
      check_mode: true
    - name: made?
      dockerless.containers.container_exec: {{command: [test, -e, /made], fail_on_rc: false}}
    - name: rc 3 fails
      dockerless.containers.container_exec: {{command: "exit 3"}}
      ignore_errors: true
    - name: missing container
      dockerless.containers.container_exec: {{container: nosuch, command: [true]}}
      ignore_errors: true
    - name: stop
      dockerless.containers.container_run: {{name: {name}, store: {store}, state: stopped, stop_timeout: 1}}
    - name: stopped container
      dockerless.containers.container_exec: {{command: [true]}}
      ignore_errors: true
""")
    run = run_playbook(playbook)
    r = {t.task: t for t in run.tasks}
    assert r["list"].result["stdout_lines"] == ["inner", "sleep 300 ", "y"]
    assert r["list"].result["rc"] == 0 and r["list"].result["changed"]
    assert r["string and stdin"].result["stdout_lines"] == ["got hello", "/tmp"]
    assert r["check mode"].result["changed"] and "rc" not in r["check mode"].result
    assert "nothing was executed" in r["check mode"].result["msg"]
    assert r["made?"].result["rc"] == 1
    assert r["rc 3 fails"].failed and r["rc 3 fails"].result["rc"] == 3
    assert r["missing container"].failed and "container nosuch: no such container" in r["missing container"].result["msg"]
    stopped = r["stopped container"]
    assert stopped.failed and f"container {name} is not running (exited" in stopped.result["msg"]


def test_cli_exec_exit_code_env_and_tty(store, cleanup):
    name = f"c-{secrets.token_hex(4)}"
    cleanup.append(name)
    env = {**os.environ, "DOCKERLESS_STORE": store}
    cli = [str(BIN_DOCKERLESS)]
    rt = Runtime(store)
    rootfs = make_busybox_rootfs(os.path.join(store, "..", f"rootfs-{name}"))
    rt.apply(rt.plan(name, "started", build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs],
                                                 name=name, command=["sleep", "300"])))
    done = subprocess.run(cli + ["exec", "--store", store, "-e", "A=b", "-w", "/tmp", name, "sh", "-c",
                                 "echo $A $(pwd); exit 4"], capture_output=True, env=env, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (4, b"b /tmp\n"), done.stderr
    fed = subprocess.run(cli + ["exec", "--store", store, "-i", name, "cat"], input=b"in\n", capture_output=True,
                         env=env, timeout=60, check=False)
    assert fed.stdout == b"in\n"
    # -t: a real pty inside (the container's own), of the caller's size; Ctrl-C through it ends the foreground
    # command.
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - child
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execv(cli[0], cli + ["exec", "--store", store, "-it", name, "sh", "-c",
                                "[ -t 0 ] && echo on-a-terminal; tty; stty size; trap 'echo caught; exit 9' INT; echo ready; "
                                "read x"])
    output = b""
    while b"ready" not in output:
        output += os.read(master, 1024)
    os.write(master, b"\x03")
    while True:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    status = os.waitpid(pid, 0)[1]
    text = output.decode()
    assert "on-a-terminal" in text and "33 101" in text and "caught" in text, text
    assert "/dev/pts/0\r\n" in text, text      # a pty of the container's own devpts, which it can name
    assert os.waitstatus_to_exitcode(status) == 9
    missing = subprocess.run(cli + ["exec", "--store", store, "ghost", "true"], capture_output=True, env=env,
                             timeout=60, check=False)
    assert missing.returncode != 0 and b"container ghost: no such container" in missing.stderr


def test_state_healthy_restart_and_info(store, run_playbook, tmp_path, cleanup):
    name = f"h-{secrets.token_hex(4)}"
    bad = f"b-{secrets.token_hex(4)}"
    cleanup += [name, bad]
    playbook = tmp_path / "healthy.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    dockerless.containers.container_run: {{store: {store}, image: "{IMAGE}", pull: never, stop_timeout: 1}}
  tasks:
    - name: healthy (check)
      dockerless.containers.container_run: &web
        name: {name}
        state: healthy
        command: [sh, -c, 'sleep 1.5; touch /tmp/ready; exec sleep 300']
        healthcheck: {{test: [CMD-SHELL, "test -e /tmp/ready && echo ready"], interval: 200ms}}
      check_mode: true
    - name: healthy
      dockerless.containers.container_run: *web
    - name: again
      dockerless.containers.container_run: *web
    - name: restart
      dockerless.containers.container_run: {{<<: *web, restart: true, state: started}}
    - name: info
      dockerless.containers.container_info: {{store: {store}, name: {name}}}
    - name: never healthy
      dockerless.containers.container_run:
        name: {bad}
        state: healthy
        command: [sleep, "300"]
        healthcheck: {{test: "echo nope; exit 1", interval: 0.2, retries: 2}}
        healthy_wait_timeout: 1.5
      ignore_errors: true
""")
    began = time.monotonic()
    run = run_playbook(playbook)
    r = {t.task: t for t in run.tasks}
    assert r["healthy (check)"].result["changed"] and "health" not in r["healthy (check)"].result["container"]
    healthy = r["healthy"].result
    assert not r["healthy"].failed, healthy.get("msg")
    assert healthy["container"]["health"]["status"] == "healthy"
    assert healthy["container"]["health"]["log"][-1]["output"] == "ready\n"
    # Returned as soon as the check passed: checks run every 200 ms, the module saw the first success at once.
    log = healthy["container"]["health"]["log"]
    assert [e["exit_code"] for e in log].count(0) <= 2 and log[0]["exit_code"] != 0
    again = r["again"].result
    assert not again["changed"] and again["container"]["health"]["status"] == "healthy"
    restarted = r["restart"].result
    assert restarted["changed"] and "restart" in restarted["actions"]
    assert restarted["container"]["pid"] != again["container"]["pid"]
    assert r["info"].result["containers"][0]["health"]["status"] in ("starting", "healthy")
    never = r["never healthy"]
    assert never.failed and f"container {bad}: still" in never.result["msg"]
    assert "'nope'" in never.result["msg"] and "healthy_wait_timeout" in never.result["msg"]
    assert time.monotonic() - began < 120


def test_containers_role_waits_for_health(store, run_playbook, tmp_path, cleanup):
    name = f"r-{secrets.token_hex(4)}"
    cleanup.append(name)
    playbook = tmp_path / "role.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  roles:
    - role: dockerless.containers.containers
      vars:
        dockerless_containers_store: {store}
        dockerless_containers:
          - name: {name}
            image: "{IMAGE}"
            pull: never
            state: healthy
            command: [sh, -c, 'sleep 1; touch /tmp/ready; exec sleep 300']
            healthcheck: {{test: [CMD, test, -e, /tmp/ready], interval: 0.2}}
  post_tasks:
    - name: info right after the role
      dockerless.containers.container_info: {{store: {store}, name: {name}}}
""")
    run = run_playbook(playbook)
    info = {t.task: t for t in run.tasks}["info right after the role"].result
    assert info["containers"][0]["health"]["status"] == "healthy"
    ps = subprocess.run([str(BIN_DOCKERLESS), "ps", "--store", store], capture_output=True, text=True, timeout=60,
                        check=False)
    assert f"{name}" in ps.stdout and "running (healthy)" in ps.stdout, ps.stdout + ps.stderr
