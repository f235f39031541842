# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""runtime.task.ContainerTask without Ansible: the option rules, the check-mode plan and its diff, the recreate
decision, the foreground wait and the one-shot run, on the real kernel with busybox in a store written here
(test_cli_run.make_image). container_run is this call plus the result mapping (tests/integration/
test_container_run.py runs it through Ansible)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_cli_run import BUSYBOX, IMAGE, make_image

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime, image_for_run
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.image import image_for_start
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import ALL_NAMESPACES, spec_for_image
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.task import ContainerTask, TaskFailed

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]
ABSENT = "127.0.0.1:5999/test/not-pulled:1"   # nothing listens there: check mode must not ask


def options(**overrides) -> dict:
    """container_run's parameters with the module's defaults."""
    opts = dict(image=IMAGE, pull="never", command=None, entrypoint=None, env=None, workdir=None, user=None,
                hostname=None, name=None, state="started", detach=None, restart_policy="no", restart_retries=0,
                stop_signal=None, stop_timeout=10, force_kill=False, oom_score_adj=0, recreate=False,
                run_timeout=None, isolation="container", namespaces=list(ALL_NAMESPACES), userns=None,
                network="none", volumes=None, tmpfs=None, read_only=False, memory=None, memory_swap=None, cpus=None,
                cpu_weight=None, pids_limit=None, cap_add=None, cap_drop=None, no_new_privileges=True,
                privileged=False, ulimits=None, rootfs_mode="auto", seccomp="default", log_max_size="10m",
                username=None, password=None, auth_file=None, insecure=False, ca_path=None, timeout=60)
    opts.update(overrides)
    return opts


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("task-store"))
    make_image(root)
    yield root
    runtime = Runtime(root)
    for info in runtime.list():
        runtime.remove(info.name, force_kill=True)


def run(store: str, check_mode: bool = False, **overrides):
    return ContainerTask(store, options(**overrides)).run(check_mode=check_mode)


@pytest.mark.parametrize("overrides, message", [
    (dict(state="stopped"), "state stopped needs a container 'name'."),
    (dict(detach=True), "a detached container needs a 'name' to be managed by."),
    (dict(restart_policy="always"), "restart_policy applies to named, detached containers; set 'name'."),
    (dict(name="t-rules", detach=False, restart_policy="always"),
     "detach: false waits for the container to exit; use restart_policy: 'no'."),
    (dict(image=None), "'image' is required to create a container."),
    (dict(image=None, name="t-never-made"), "'image' is required to create a container."),
])
def test_option_rules_fail_before_anything_runs(store, overrides, message):
    with pytest.raises(TaskFailed) as caught:
        run(store, **overrides)
    assert str(caught.value) == message and caught.value.fields == {}
    assert Runtime(store).inspect("t-rules") is None


def test_bad_name_is_the_specs_error(store):
    with pytest.raises(DockerlessError, match="container name '-x'"):
        run(store, name="-x")


def test_one_shot_check_mode_plans_without_running(store):
    before = sorted(os.listdir(os.path.join(store, "containers"))) if os.path.isdir(
        os.path.join(store, "containers")) else []
    result = run(store, check_mode=True, command=["true"]).as_dict()
    assert result["changed"] is True and result["actions"] == [f"run ['true'] in {IMAGE}"]
    assert result["container"]["image"] == IMAGE and result["container"]["id"] is None
    assert result["container"]["image_digest"].startswith("sha256:")
    assert "rc" not in result and "diff" not in result and "timed_out" not in result
    after = sorted(os.listdir(os.path.join(store, "containers"))) if os.path.isdir(
        os.path.join(store, "containers")) else []
    assert after == before


def test_one_shot_check_mode_with_an_image_to_pull_asks_no_registry(store):
    result = run(store, check_mode=True, image=ABSENT, pull="missing").as_dict()
    assert result == {"changed": True, "actions": [f"pull {ABSENT}", f"run in {ABSENT}"],
                      "container": {"id": None, "image": ABSENT}}
    with pytest.raises(DockerlessError, match="not in the store"):
        run(store, check_mode=True, image=ABSENT, pull="never")


def test_one_shot_runs_and_reports_output_and_failure(store):
    result = run(store, command=["sh", "-c", "echo out; echo err >&2"]).as_dict()
    assert result["rc"] == 0 and result["stdout_lines"] == ["out"] and result["stderr_lines"] == ["err"]
    assert result["timed_out"] is False and result["oom_killed"] is False
    assert result["container"]["state"] == "exited" and result["container"]["exit_code"] == 0
    with pytest.raises(TaskFailed) as caught:
        run(store, command=["sh", "-c", "echo bye; exit 3"])
    assert str(caught.value) == "non-zero return code"
    assert caught.value.fields["rc"] == 3 and caught.value.fields["stdout"] == "bye\n"
    with pytest.raises(TaskFailed) as caught:
        run(store, command=["sleep", "30"], run_timeout=0.5)
    assert str(caught.value).startswith("container run: timed out after 0.5s") and caught.value.fields["timed_out"]


def test_named_lifecycle_plan_diff_and_recreate(store):
    name = "t-named"
    check = run(store, check_mode=True, name=name, command=["sleep", "60"], env={"A": "1"}).as_dict()
    assert check["actions"] == ["create", "start"] and check["changed"] is True
    assert check["diff"]["before"] == {"state": "absent"} and check["diff"]["after"]["state"] == "running"
    assert check["container"] == {"name": name} and Runtime(store).inspect(name) is None

    made = run(store, name=name, command=["sleep", "60"], env={"A": "1"}).as_dict()
    assert made["actions"] == ["create", "start"] and made["container"]["running"] is True
    again = run(store, name=name, command=["sleep", "60"], env={"A": "1"}).as_dict()
    assert again["changed"] is False and again["actions"] == []
    assert again["diff"] == {"before": {"state": "running"}, "after": {"state": "running"}}

    changed = run(store, check_mode=True, name=name, command=["sleep", "60"], env={"A": "2"}).as_dict()
    assert changed["actions"] == ["stop", "remove", "create", "start"]
    assert set(changed["diff"]["after"]) == {"state", "env"} and changed["diff"]["before"]["state"] == "running"
    forced = run(store, check_mode=True, name=name, command=["sleep", "60"], env={"A": "1"}, recreate=True)
    assert forced.actions == ["stop", "remove", "create", "start"] and forced.diff["after"] == {"state": "running"}

    # the image to be pulled first: its digest is unknown, so the container is replaced
    pending = run(store, check_mode=True, name=name, image=ABSENT, pull="missing").as_dict()
    assert pending["actions"] == [f"pull {ABSENT}", "stop", "remove", "create", "start"]
    assert pending["diff"]["before"]["image_digest"].startswith("sha256:")
    assert pending["diff"]["after"]["image_digest"] == "(to be pulled)"

    stopped = run(store, name=name, state="stopped", image=None)
    assert stopped.actions == ["stop"] and stopped.container["running"] is False
    gone = run(store, check_mode=True, name=name, state="absent", image=None).as_dict()
    assert gone["actions"] == ["remove"] and gone["diff"]["after"] == {"state": "absent"}
    assert run(store, name=name, state="absent", image=None).actions == ["remove"]
    assert Runtime(store).inspect(name) is None


def test_named_in_the_foreground_waits_and_fails_on_its_exit_code(store):
    result = run(store, name="t-fg", detach=False, command=["sh", "-c", "echo done"]).as_dict()
    assert result["rc"] == 0 and result["stdout"] == "done\n" and result["timed_out"] is False
    assert result["container"]["state"] == "exited"
    with pytest.raises(TaskFailed) as caught:
        run(store, name="t-fg2", detach=False, command=["sh", "-c", "exit 5"])
    assert str(caught.value) == "non-zero return code" and caught.value.fields["rc"] == 5
    for name in ("t-fg", "t-fg2"):
        run(store, name=name, state="absent", image=None)


def test_the_module_and_the_cli_build_the_same_spec(store):
    """container_run (image_for_run: the store's full reader) and dockerless run (image_for_start: the start
    path's reader) reach build_spec through spec_for_image with the same image."""
    ref = parse_reference(IMAGE)
    module_image = image_for_run(store, ref, pull="never")
    cli_image = image_for_start(store, ref.name)
    assert spec_for_image(module_image, command=["true"], name="x") == spec_for_image(cli_image, command=["true"],
                                                                                      name="x")
    assert module_image.lower_dirs == cli_image.lower_dirs and module_image.diff_ids == cli_image.diff_ids


def test_a_one_shot_run_of_a_stored_image_loads_no_pull_engine_unit_or_limits(store):
    """container_run's payload imports what its path uses: a one-shot run of an image in the store (pull:
    missing, the default) reads no registry options and imports neither the pull engine and registry client,
    nor systemd's unit code (only a named container has a unit), nor cgroups.limits (no limits, no logs to
    rotate). A fresh interpreter, as the AnsiballZ payload is."""
    code = (
        "import sys\n"
        "from ansible_collections.dockerless.containers.plugins.module_utils.runtime.task import ContainerTask\n"
        f"opts = {options(pull='missing', command=['true'])!r}\n"
        "task = ContainerTask(sys.argv[1], opts)\n"
        "task.registry = lambda: 1 / 0  # asked for the registry options: ZeroDivisionError\n"
        "result = task.run()\n"
        "assert result.as_dict()['container']['exit_code'] == 0, result.as_dict()\n"
        "mu = 'ansible_collections.dockerless.containers.plugins.module_utils.'\n"
        "print(sorted(m[len(mu):] for m in sys.modules if m.startswith(mu)))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code, store], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = proc.stdout.strip()
    for module in ("image.pull", "registry.client", "registry.options", "registry.credentials", "runtime.systemd",
                   "runtime.unit_boot", "cgroups.limits"):
        assert f"'{module}'" not in loaded, (module, loaded)
    assert "'runtime.spec'" in loaded and "'image.store'" in loaded


def test_a_no_change_run_with_published_ports_runs_no_nft_and_scans_no_port_and_repairs_a_flush(store):
    """A re-run of a running container with published ports that changes nothing: no nft process, no port probe
    or /proc scan, no read of the other containers' records; after ``nft flush ruleset`` the next run puts the
    table back and reports it."""
    from netns import in_netns

    from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall, ports

    def work():
        calls = []
        for module, attr in ((firewall, "_nft"), (ports, "probe"), (ports, "port_owner"), (ports, "published_in_store")):
            real = getattr(module, attr)

            def counted(*args, _real=real, _attr=attr, **kwargs):
                calls.append(_attr if _attr != "_nft" else "nft " + args[0][0])
                return _real(*args, **kwargs)

            setattr(module, attr, counted)
        opts = dict(name="t-published", command=["sleep", "60"], network="bridge",
                    published_ports=["18461:80", "18462:81/udp"])
        out = {"made": run(store, **opts).actions}
        del calls[:]
        again = run(store, **opts)
        out["again"], out["again_calls"] = (again.changed, again.actions), list(calls)
        subprocess.run([firewall.nft_path(), "flush", "ruleset"], check=True)
        del calls[:]
        repaired = run(store, **opts)
        out["repaired"], out["repaired_calls"] = (repaired.changed, repaired.actions), list(calls)
        out["table"] = "dport 18461" in (firewall.current() or "")
        del calls[:]
        out["after"] = run(store, **opts).changed
        out["after_calls"] = list(calls)
        run(store, name="t-published", state="absent", image=None)
        return out

    out = in_netns(work)
    assert out["made"] == ["create", "start"]
    assert out["again"] == [False, []] and out["again_calls"] == []
    assert out["repaired"] == [True, ["write firewall rules"]] and out["repaired_calls"] == ["nft list", "nft -f"]
    assert out["table"] is True
    assert out["after"] is False and out["after_calls"] == []
