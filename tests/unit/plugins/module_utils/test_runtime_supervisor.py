# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named, detached containers through the engine: supervisor, state, restart policies, stop, removal."""

from __future__ import annotations

import os
import signal
import time

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils import runtime_state
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime_spec import build_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "store"))
    yield rt
    for info in rt.list():
        rt.remove(info.name)


def start(runtime, rootfs, name, command, **kwargs):
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=command, name=name, **kwargs)
    return runtime.apply(runtime.plan(name, "started", spec))


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_on_failure_restarts_until_stopped(runtime, rootfs):
    info = start(runtime, rootfs, "flaky", ["sh", "-c", "echo run; sleep 0.1; exit 3"], restart_policy="on-failure",
                 stop_timeout=1)
    assert info.state in ("running", "restarting") and info.supervised
    wait_for(lambda: runtime.inspect("flaky").restart_count >= 2)
    assert runtime.logs("flaky")[0].count(b"run\n") >= 2
    assert runtime.stop("flaky") is True
    after = runtime.inspect("flaky")
    assert not after.supervised and after.state == "exited"
    assert runtime.stop("flaky") is False


def test_policy_no_ends_with_the_command(runtime, rootfs):
    start(runtime, rootfs, "once", ["sh", "-c", "echo done; exit 5"])
    wait_for(lambda: not runtime.inspect("once").supervised)
    info = runtime.inspect("once")
    assert (info.state, info.exit_code, info.restart_count) == ("exited", 5, 0)
    assert info.finished_at and info.started_at
    assert runtime.logs("once") == (b"done\n", b"")
    # started again by a new plan: same container, new run
    plan = runtime.plan("once", "started", None)
    assert plan.actions == ["start"]


def test_stop_sends_sigterm_then_sigkill_after_the_timeout(runtime, rootfs):
    start(runtime, rootfs, "stubborn", ["sleep", "60"])   # sleep as PID 1 has no SIGTERM handler: ignored
    began = time.monotonic()
    runtime.stop("stubborn", timeout=0.5)
    assert time.monotonic() - began < 5
    info = runtime.inspect("stubborn")
    assert info.exit_code == 137 and info.state == "exited"


def test_killed_supervisor_takes_the_container_with_it(runtime, rootfs):
    info = start(runtime, rootfs, "orphan", ["sleep", "60"], stop_timeout=0)
    os.kill(info.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{info.pid}"))   # PDEATHSIG chain: monitor, then PID 1
    dead = runtime.inspect("orphan")
    assert dead.state == "dead" and not dead.supervised and dead.pid is None
    again = runtime.start("orphan")
    assert again.running and again.pid != info.pid


def test_setup_error_is_reported_by_start(runtime, rootfs):
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["missing-binary"], name="bad")
    with pytest.raises(RuntimeSetupError, match="executable file not found"):
        runtime.apply(runtime.plan("bad", "started", spec))
    info = runtime.inspect("bad")
    assert info.state == "exited" and "executable file not found" in info.error and not info.supervised


def test_remove_deletes_dir_and_cgroup(runtime, rootfs):
    info = start(runtime, rootfs, "gone", ["sleep", "60"], limits={"pids_limit": 10}, stop_timeout=0)
    assert info.cgroup == "dockerless/gone"
    assert runtime.remove("gone") is True
    assert not os.path.exists(info.path)
    assert not os.path.exists("/sys/fs/cgroup/pids/dockerless/gone")
    assert not os.path.exists("/sys/fs/cgroup/dockerless/gone")
    assert runtime.remove("gone") is False


def test_plan_is_idempotent_and_names_differences(runtime, rootfs):
    start(runtime, rootfs, "same", ["sleep", "60"], stop_timeout=0)
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["sleep", "60"], name="same",
                      stop_timeout=0)
    assert runtime.plan("same", "started", spec).actions == []
    other = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["sleep", "61"], name="same")
    plan = runtime.plan("same", "started", other)
    assert plan.actions == ["stop", "remove", "create", "start"] and set(plan.diff) == {"argv"}
    assert runtime.plan("same", "stopped", None).actions == ["stop"]
    assert runtime.plan("same", "absent", None).actions == ["stop", "remove"]
    assert runtime.plan("nothing", "absent", None).actions == []


def test_state_files_are_json_and_lock_tells_liveness(runtime, rootfs):
    info = start(runtime, rootfs, "files", ["sleep", "60"], stop_timeout=0)
    assert runtime_state.supervisor_alive(info.path)
    state = runtime_state.read_json(os.path.join(info.path, "state.json"))
    assert state["pid"] == info.pid and state["supervisor_pid"] == info.supervisor_pid
    record = runtime_state.read_json(os.path.join(info.path, "spec.json"))
    assert record["spec"]["argv"] == ["sleep", "60"] and record["config"]["rootfs"]["lower"] == [rootfs]
    runtime.stop("files")
    assert not runtime_state.supervisor_alive(info.path)


def test_capped_log_rotates(tmp_path):
    log = runtime_state.CappedLog(str(tmp_path / "stdout.log"), 4096)
    for i in range(3000):
        log.write(f"line {i}\n".encode())
    log.close()
    assert os.path.getsize(tmp_path / "stdout.log") <= 4096
    assert os.path.getsize(tmp_path / "stdout.log.1") == 4096
    tail = runtime_state.read_log(str(tmp_path), "stdout")
    assert tail.endswith(b"line 2999\n")
