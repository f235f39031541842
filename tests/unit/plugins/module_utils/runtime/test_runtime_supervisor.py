# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named, detached containers through the engine: supervisor, state, restart policies, stop, removal."""

from __future__ import annotations

import os
import signal
import time

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import state as runtime_state
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

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


# -- restart policies, stop and kill as Docker, OOM scores -------------------------------------------------------

def _oom(pid):
    with open(f"/proc/{pid}/oom_score_adj") as handle:
        return int(handle.read())


def _has_cap_sys_resource():
    from ansible_collections.dockerless.containers.plugins.module_utils import linux

    return bool(linux.capget()[0] >> linux.CAPABILITIES["CAP_SYS_RESOURCE"] & 1)


@pytest.fixture
def raised_oom_score():
    """The test process (the supervisor's launcher) at oom_score_adj 500, as under a systemd unit that raised it:
    without CAP_SYS_RESOURCE a process can still lower it back to the floor it inherited (0 here)."""
    with open("/proc/self/oom_score_adj") as handle:
        before = int(handle.read())
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("500")
    yield 500
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write(str(before))


def test_supervisor_lowers_its_oom_score_and_the_container_does_not_inherit_it(runtime, rootfs, raised_oom_score):
    info = start(runtime, rootfs, "oom", ["sleep", "60"], stop_timeout=0)
    # -1000 where the kernel allows it (CAP_SYS_RESOURCE); without it, as low as the inherited floor: 0 here.
    expected = -1000 if _has_cap_sys_resource() else 0
    assert _oom(info.supervisor_pid) == expected
    assert _oom(info.pid) == 0                  # the container's PID 1: Docker's default, not the supervisor's
    with open(os.path.join(info.path, "supervisor.log")) as handle:
        log = handle.read()
    if expected != -1000:
        assert "setting oom_score_adj -1000: Permission denied" in log and "keeps oom_score_adj 0" in log


def test_one_shot_container_does_not_inherit_its_callers_score(runtime, rootfs, raised_oom_score):
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs],
                      command=["cat", "/proc/self/oom_score_adj"])
    assert runtime.run(spec).stdout == b"0\n"     # the init set it before exec; the caller runs at 500


def test_oom_score_adj_option_sets_the_containers_score(runtime, rootfs):
    info = start(runtime, rootfs, "oom300", ["sleep", "60"], stop_timeout=0, oom_score_adj=300)
    assert _oom(info.pid) == 300 and _oom(info.supervisor_pid) <= 0
    # Below the floor without CAP_SYS_RESOURCE: refused with the reason, never silently more protected.
    if not _has_cap_sys_resource():
        spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["true"],
                          name="oomlow", oom_score_adj=-500)
        with pytest.raises(RuntimeSetupError, match="oom_score_adj -500: Permission denied"):
            runtime.apply(runtime.plan("oomlow", "started", spec))


def test_stop_signal_from_the_image_config_is_used(runtime, rootfs):
    loop = "trap 'echo got-usr1; exit 0' USR1; trap '' TERM; while true; do sleep 0.1; done"
    spec = build_spec(image_config={"Env": ["PATH=/bin"], "StopSignal": "SIGUSR1"}, lower_dirs=[rootfs],
                      command=["sh", "-c", loop], name="usr1", stop_timeout=5)
    assert spec.stop_signal == "SIGUSR1"
    runtime.apply(runtime.plan("usr1", "started", spec))
    wait_for(lambda: runtime.inspect("usr1").state == "running")
    time.sleep(0.3)  # the shell has set its traps
    began = time.monotonic()
    assert runtime.stop("usr1") is True
    info = runtime.inspect("usr1")
    assert time.monotonic() - began < 4       # SIGTERM is ignored: only SIGUSR1 ends it before the 5 s
    assert info.exit_code == 0 and info.stopped_by_user
    assert runtime.logs("usr1")[0] == b"got-usr1\n"


def test_stop_of_a_pid1_ignoring_sigterm_takes_the_timeout_and_no_more(runtime, rootfs):
    start(runtime, rootfs, "deaf", ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    time.sleep(0.3)
    began = time.monotonic()
    runtime.stop("deaf", timeout=1)
    took = time.monotonic() - began
    assert 1.0 <= took < 2.0, took       # 1.0-1.2 s measured; the rest is slack for a loaded machine
    assert runtime.inspect("deaf").exit_code == 137


def test_unless_stopped_restarts_a_crash_but_not_a_user_stop(runtime, rootfs):
    info = start(runtime, rootfs, "us", ["sh", "-c", "sleep 0.2; exit 0"], restart_policy="unless-stopped",
                 stop_timeout=0)
    assert info.spec["restart_policy"] == "unless-stopped"
    wait_for(lambda: runtime.inspect("us").restart_count >= 2)      # exit 0 restarts too
    runtime.stop("us")
    after = runtime.inspect("us")
    assert not after.supervised and after.stopped_by_user and after.state == "exited"
    time.sleep(0.5)
    assert not runtime.inspect("us").supervised
    assert runtime.start_all() == [("us", "skipped: stopped by the user")]
    # A start by the user clears it; a killed supervisor (host reboot) leaves it dead, and start_all restarts it.
    again = runtime.start("us")
    assert again.supervised and not again.stopped_by_user
    os.kill(again.supervisor_pid, signal.SIGKILL)
    wait_for(lambda: runtime.inspect("us").state == "dead")
    assert runtime.start_all() == [("us", "started")]
    assert runtime.inspect("us").supervised


def test_start_all_follows_dockers_restore_rules(runtime, rootfs):
    start(runtime, rootfs, "a-always", ["sleep", "60"], restart_policy="always", stop_timeout=0)
    start(runtime, rootfs, "b-no", ["sleep", "60"], stop_timeout=0)
    start(runtime, rootfs, "c-onfail-ok", ["true"], restart_policy="on-failure")
    start(runtime, rootfs, "d-onfail-dead", ["sleep", "60"], restart_policy="on-failure", stop_timeout=0)
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["true"], name="e-created",
                      restart_policy="always")
    runtime.apply(runtime.plan("e-created", "stopped", spec))
    wait_for(lambda: not runtime.inspect("c-onfail-ok").supervised)
    for name in ("a-always", "b-no", "d-onfail-dead"):   # what a reboot does to them
        os.kill(runtime.inspect(name).supervisor_pid, signal.SIGKILL)
        wait_for(lambda name=name: runtime.inspect(name).state == "dead")
    assert dict(runtime.start_all()) == {
        "a-always": "started", "b-no": "skipped: restart policy no",
        "c-onfail-ok": "skipped: restart policy on-failure, exit code 0, 0 restarts",
        "d-onfail-dead": "started", "e-created": "skipped: never started"}
    assert runtime.inspect("a-always").running and runtime.inspect("d-onfail-dead").running
    assert not runtime.inspect("b-no").supervised


def test_on_failure_gives_up_after_restart_retries_with_growing_delays(runtime, rootfs):
    began = time.monotonic()
    start(runtime, rootfs, "retry", ["sh", "-c", "echo run; exit 3"], restart_policy="on-failure", restart_retries=4)
    wait_for(lambda: not runtime.inspect("retry").supervised)
    took = time.monotonic() - began
    info = runtime.inspect("retry")
    assert (info.state, info.exit_code, info.restart_count) == ("exited", 3, 4)
    assert runtime.logs("retry")[0] == b"run\n" * 5              # the first run and 4 restarts
    with open(os.path.join(info.path, "supervisor.log")) as handle:
        delays = [float(line.rsplit(" in ", 1)[1].rstrip("s\n")) for line in handle if "; restart " in line]
    assert delays == [0.1, 0.2, 0.4, 0.8]                         # moby's 100 ms, doubled each time
    assert took >= sum(delays)


def test_kill_sigkill_is_a_user_stop_and_other_signals_are_delivered(runtime, rootfs):
    loop = "trap 'echo hup' HUP; while true; do sleep 0.1; done"
    info = start(runtime, rootfs, "k", ["sh", "-c", loop], restart_policy="always", stop_timeout=0)
    time.sleep(0.3)
    runtime.kill("k", "HUP")
    wait_for(lambda: runtime.logs("k")[0] == b"hup\n")
    assert runtime.inspect("k").pid == info.pid                   # still the same run
    runtime.kill("k")                                             # SIGKILL: no restart, even with always
    after = runtime.inspect("k")
    assert not after.supervised and after.exit_code == 137 and after.restart_count == 0 and after.stopped_by_user
    with pytest.raises(RuntimeSetupError, match="not running"):
        runtime.kill("k")
    with pytest.raises(RuntimeSetupError, match="unknown"):
        runtime.kill("k", "SIGNOPE")


def test_remove_force_kill_is_immediate(runtime, rootfs):
    start(runtime, rootfs, "forced", ["sleep", "600"])             # stop_timeout 10, sleep ignores SIGTERM
    began = time.monotonic()
    assert runtime.remove("forced", force_kill=True) is True
    assert time.monotonic() - began < 1.0
