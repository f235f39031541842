# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Healthchecks: Docker's merge rules and state machine (pure), and the supervisor running them (real kernel)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import health
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime, exec_target
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

ROOT_ONLY = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


@pytest.mark.parametrize("value, seconds", [
    (None, None), ("", None), (5, 5.0), (0.5, 0.5), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0),
    ("1.5s", 1.5), ("10", 10.0), (0, 0.0),
])
def test_parse_duration(value, seconds):
    assert health.parse_duration(value, "interval") == seconds


@pytest.mark.parametrize("value", ["5x", "s", "5", "-1s", "1us", True])
def test_parse_duration_refuses(value):
    if value == "5":
        assert health.parse_duration(value, "interval") == 5.0
        return
    with pytest.raises(ValueError, match="interval"):
        health.parse_duration(value, "interval")


IMAGE_CHECK = {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 10_000_000_000, "Retries": 5}


@pytest.mark.parametrize("option, image, expected", [
    (None, None, None),
    ({"test": "true"}, None, {"test": ["CMD-SHELL", "true"], "interval": 30.0, "timeout": 30.0, "retries": 3,
                              "start_period": 0.0, "start_interval": 5.0}),
    (None, IMAGE_CHECK, {"test": ["CMD-SHELL", "curl -f localhost"], "interval": 10.0, "timeout": 30.0,
                         "retries": 5, "start_period": 0.0, "start_interval": 5.0}),
    ({"interval": "2s"}, IMAGE_CHECK, {"test": ["CMD-SHELL", "curl -f localhost"], "interval": 2.0, "timeout": 30.0,
                                       "retries": 5, "start_period": 0.0, "start_interval": 5.0}),
    ({"test": ["CMD", "check", "--quick"], "retries": 1}, IMAGE_CHECK,
     {"test": ["CMD", "check", "--quick"], "interval": 10.0, "timeout": 30.0, "retries": 1, "start_period": 0.0,
      "start_interval": 5.0}),
    ({"test": ["NONE"]}, IMAGE_CHECK, None),
    ({"disable": True}, IMAGE_CHECK, None),
    (None, {"Test": ["NONE"]}, None),
])
def test_resolve_merges_like_docker(option, image, expected):
    assert health.resolve(option, image) == expected


@pytest.mark.parametrize("option", [{"test": ["CMD"]}, {"test": ["CMD-SHELL"]}, {"test": ["BOGUS", "x"]},
                                    {"test": "true", "retries": -1}, {"test": "true", "bogus": 1}])
def test_resolve_refuses(option):
    with pytest.raises(ValueError):
        health.resolve(option, None)


def test_argv_of():
    assert health.argv_of({"test": ["CMD", "a", "b"]}) == ["a", "b"]
    assert health.argv_of({"test": ["CMD-SHELL", "a && b"]}) == ["/bin/sh", "-c", "a && b"]


CHECK = {"test": ["CMD", "x"], "interval": 1.0, "timeout": 1.0, "retries": 3, "start_period": 0.0,
         "start_interval": 5.0}


def test_state_machine_retries_streak_and_log_cap():
    h = health.Health(CHECK, started=0.0)
    assert h.status == "starting" and h.next_at == 1.0
    assert h.record("s", "e", 0, b"ok", now=1.0) == "healthy"
    assert h.record("s", "e", 1, b"bad", now=2.0) is None and h.failing_streak == 1
    h.record("s", "e", 1, b"bad", now=3.0)
    assert h.status == "healthy"
    assert h.record("s", "e", 1, b"x" * 10000, now=4.0) == "unhealthy"
    assert h.failing_streak == 3 and len(h.log[-1]["output"]) == health.MAX_OUTPUT
    for i in range(4):
        h.record("s", "e", 0, b"ok", now=5.0 + i)
    assert len(h.log) == 5 and h.status == "healthy" and h.failing_streak == 0


def test_failures_in_the_start_period_do_not_count_and_use_start_interval():
    h = health.Health({**CHECK, "start_period": 10.0, "start_interval": 0.5}, started=0.0)
    assert h.next_at == 0.5
    for t in (0.5, 1.0, 1.5, 2.0):
        h.record("s", "e", 1, b"", now=t)
    assert h.status == "starting" and h.failing_streak == 0 and h.next_at == 2.5
    h.record("s", "e", 0, b"", now=3.0)
    assert h.status == "healthy" and h.next_at == 4.0   # the start period ends with the first success


def test_build_spec_keeps_the_resolved_check_and_refuses_bad_values(tmp_path):
    spec = build_spec(image_config={"Healthcheck": IMAGE_CHECK}, lower_dirs=[str(tmp_path)], command=["true"],
                      health_on_failure="restart")
    assert spec.healthcheck["retries"] == 5 and spec.health_on_failure == "restart"
    assert "healthcheck" in spec.compared()
    with pytest.raises(RuntimeSetupError, match="health_on_failure"):
        build_spec(image_config={}, lower_dirs=[str(tmp_path)], command=["true"], health_on_failure="reboot")
    with pytest.raises(RuntimeSetupError, match="test"):
        build_spec(image_config={}, lower_dirs=[str(tmp_path)], command=["true"], healthcheck={"test": ["CMD"]})


# -- the supervisor runs them ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "store"))
    yield rt
    for info in rt.list():
        rt.remove(info.name, force_kill=True)


def start(rt, rootfs, name, command, **kwargs):
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=command, name=name, **kwargs)
    return rt.apply(rt.plan(name, "started", spec))


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_failing_check_turns_unhealthy_in_time_and_supervisor_stays_small(runtime, rootfs):
    check = {"test": ["CMD-SHELL", "test -e /tmp/ok && echo fine"], "interval": 0.3, "retries": 2, "timeout": 2}
    info = start(runtime, rootfs, "hc", ["sh", "-c", "touch /tmp/ok; exec sleep 300"], healthcheck=check)
    assert info.health["status"] == "starting"
    got = wait_for(lambda: (runtime.inspect("hc").health or {}).get("status") == "healthy" and runtime.inspect("hc"),
                   5)
    assert got.health["log"][-1]["exit_code"] == 0 and got.health["log"][-1]["output"] == "fine\n"
    rss = vm_rss_kib(got.supervisor_pid)
    print(f"supervisor VmRSS with a healthcheck: {rss} KiB")
    assert rss < 20 * 1024, f"supervisor VmRSS {rss} KiB"
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec

    target = exec_target(runtime, "hc")
    runtime_exec.run(target, runtime_exec.exec_config(target.config, ["rm", "/tmp/ok"]))
    began = time.monotonic()
    wait_for(lambda: runtime.inspect("hc").health["status"] == "unhealthy", 0.3 * 2 + 0.3 + 1.0)
    assert time.monotonic() - began <= 0.3 * 2 + 0.3 + 1.0
    after = runtime.inspect("hc")
    assert after.health["failing_streak"] >= 2 and after.running   # health_on_failure none: it keeps running
    assert after.as_dict()["health"]["status"] == "unhealthy"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_health_on_failure_restart_restarts_and_timeout_counts_as_failure(runtime, rootfs):
    check = {"test": ["CMD", "sleep", "5"], "interval": 0.2, "retries": 1, "timeout": 0.2}
    start(runtime, rootfs, "hr", ["sleep", "300"], healthcheck=check, health_on_failure="restart")
    first = runtime.inspect("hr").pid
    got = wait_for(lambda: runtime.inspect("hr").restart_count >= 1 and runtime.inspect("hr"), 5)
    wait_for(lambda: runtime.inspect("hr").pid not in (None, first), 5)
    assert got.supervised
    log = runtime.inspect("hr").health["log"]
    assert not log or log[-1]["exit_code"] == -1


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_a_stopped_container_is_no_longer_healthy_and_a_new_start_is_starting_again(runtime, rootfs):
    check = {"test": ["CMD", "true"], "interval": 0.2, "retries": 1, "timeout": 2}
    start(runtime, rootfs, "hs", ["sleep", "300"], healthcheck=check)
    wait_for(lambda: (runtime.inspect("hs").health or {}).get("status") == "healthy", 5)
    runtime.stop("hs", timeout=1)
    stopped = runtime.inspect("hs")
    assert stopped.state == "exited"
    # Docker: unhealthy once the checks stopped with the container; the streak and the last results stay.
    assert stopped.health["status"] == "unhealthy" and stopped.health["log"][-1]["exit_code"] == 0
    assert stopped.as_dict()["health"]["status"] == "unhealthy"
    again = start(runtime, rootfs, "hs", ["sleep", "300"], healthcheck=check)
    assert again.health["status"] == "starting" and again.health["log"] == []


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_a_container_whose_supervisor_was_killed_is_not_reported_healthy(runtime, rootfs):
    check = {"test": ["CMD", "true"], "interval": 0.2, "retries": 1, "timeout": 2}
    start(runtime, rootfs, "hk", ["sleep", "300"], healthcheck=check)
    wait_for(lambda: (runtime.inspect("hk").health or {}).get("status") == "healthy", 5)
    os.kill(runtime.inspect("hk").supervisor_pid, signal.SIGKILL)   # what a reboot or the OOM killer does
    wait_for(lambda: runtime.inspect("hk").state == "dead", 5)
    dead = runtime.inspect("hk")
    # Nothing checks it any more: the last "healthy" would outlive the service it spoke for.
    assert dead.health["status"] == "unhealthy" and dead.health["log"][-1]["exit_code"] == 0
    assert dead.as_dict()["health"]["status"] == "unhealthy"
    again = start(runtime, rootfs, "hk", ["sleep", "300"], healthcheck=check)
    assert again.health["status"] == "starting"
    wait_for(lambda: (runtime.inspect("hk").health or {}).get("status") == "healthy", 5)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_no_healthcheck_no_health(runtime, rootfs):
    info = start(runtime, rootfs, "plain", ["sleep", "300"])
    assert info.health is None and info.as_dict()["health"] is None


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_a_check_leaving_a_background_child_is_its_exit_code_not_a_timeout(runtime, rootfs):
    check = {"test": ["CMD-SHELL", "sleep 30 & echo bg; exit 0"], "interval": 0.3, "retries": 1, "timeout": 5}
    start(runtime, rootfs, "bg", ["sleep", "300"], healthcheck=check)
    got = wait_for(lambda: (runtime.inspect("bg").health or {}).get("log") and runtime.inspect("bg"), 4)
    assert got.health["status"] == "healthy" and got.health["log"][0]["exit_code"] == 0
    assert got.health["log"][0]["output"] == "bg\n"
