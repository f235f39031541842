# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd unit of a named container (runtime/systemd.py): its text, the idempotent management of the unit file
and of the engine copy it runs (the command line, cli/main.py), and what the unit runs, on the real kernel with a fake ``systemctl`` on PATH that does what
systemd would do with the unit (this machine has no systemd as PID 1; molecule covers the real one)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils import engine_files
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import systemd as runtime_systemd
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

# systemctl as far as the units need it: "daemon-reload" is logged; "start UNIT" runs the unit's ExecCondition
# (1-254: skipped, exit 0) and ExecStart, and checks that the PIDFile names a live process, as systemd does.
FAKE_SYSTEMCTL = r'''#!PYTHON
import os, shlex, subprocess, sys
log = os.environ["FAKE_SYSTEMCTL_LOG"]
with open(log, "a") as handle:
    handle.write(" ".join(sys.argv[1:]) + "\n")
if sys.argv[1] == "start":
    keys = {}
    with open(os.path.join(os.environ["FAKE_UNIT_DIR"], sys.argv[2])) as handle:
        for line in handle:
            if "=" in line and not line.startswith("#"):
                key, value = line.rstrip("\n").split("=", 1)
                keys[key] = value
    if subprocess.run(shlex.split(keys["ExecCondition"])).returncode != 0:
        sys.exit(0)
    rc = subprocess.run(shlex.split(keys["ExecStart"])).returncode
    if rc != 0:
        sys.stderr.write("Job for %s failed because the control process exited with error code.\n" % sys.argv[2])
        sys.exit(1)
    with open(keys["PIDFile"]) as handle:
        os.kill(int(handle.read()), 0)
'''


@pytest.fixture
def fake_systemd(tmp_path, monkeypatch):
    """A unit dir, a boot dir and a fake systemctl first on PATH; yields (Units, log path)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.replace("PYTHON", sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "systemctl.log"
    log.write_text("")
    units = tmp_path / "units"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))
    monkeypatch.setenv("FAKE_UNIT_DIR", str(units))
    yield runtime_systemd.Units(str(tmp_path / "store"), unit_dir=str(units), boot_dir=str(tmp_path / "boot"),
                                python=sys.executable, running=True, bin_link=str(tmp_path / "usr-local-bin" / "dockerless")), log


def calls(log) -> list[str]:
    return log.read_text().splitlines()


def test_the_unit_file_runs_the_supervisor_as_main_process_and_restarts_it_only_when_killed(tmp_path):
    units = runtime_systemd.Units("/var/lib/dockerless", unit_dir=str(tmp_path), python="/usr/bin/python3",
                                  running=False)
    text = units.render("web.1", stop_timeout=7)
    # The command line of the engine copy, without environment or site-packages (-I -S).
    cli = ("/usr/bin/python3 -I -S /usr/local/lib/dockerless/bin/dockerless start --store /var/lib/dockerless "
           "--by-policy")
    pid_file = "/var/lib/dockerless/containers/web.1/supervisor.pid"
    lines = text.splitlines()
    assert lines[0] == runtime_systemd.MARK
    for line in ("Type=forking", f"PIDFile={pid_file}", f"ExecCondition={cli} --check web.1",
                 f"ExecStart={cli} --pid-file {pid_file} web.1",
                 "Restart=on-abnormal", "RestartSec=100ms", "TimeoutStopSec=37", "WantedBy=multi-user.target",
                 "RequiresMountsFor=/var/lib/dockerless /usr/local/lib/dockerless"):
        assert line in lines, (line, text)
    assert not [line for line in lines if line.startswith("ExecStop")]   # systemd's SIGTERM: no user stop
    assert runtime_systemd.unit_name("web.1") == "dockerless-web.1.service"
    if shutil.which("systemd-analyze"):
        unit = tmp_path / "dockerless-web.1.service"
        unit.write_text(text)
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                                check=False)
        assert "dockerless-web.1.service" not in verify.stderr, verify.stderr
    # A path systemd would split or expand is refused, not written into ExecStart.
    spaced = runtime_systemd.Units("/var/lib/my store", unit_dir=str(tmp_path), running=False)
    with pytest.raises(RuntimeSetupError, match="the store path '/var/lib/my store' must be absolute, without wh"):
        spaced.plan("web", "always")
    assert not spaced.plan("web", "no").changed                 # no unit wanted: the path does not matter
    with pytest.raises(RuntimeSetupError, match="boot directory path '/opt/%h' must be absolute"):
        runtime_systemd.Units("/var/lib/dockerless", boot_dir="/opt/%h", running=False).render("web")


def test_engine_sources_hold_the_command_line_and_everything_it_imports():
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import supervisor

    sources = runtime_systemd.engine_sources()
    # Dotted names with the packages they sit in: the command line, its lazy imports (the runtime, the registry
    # client for pull), and the supervisor's modules, whose code the start hands to the supervisor.
    assert {"cli", "cli.main", "runtime", "runtime.containers", "runtime.supervisor", "runtime.init_sequence",
            "runtime.state", "runtime.seccomp", "runtime.seccomp.filter", "cgroups", "cgroups.cgroup", "records",
            "errors", "image.pull", "registry.client", "site_packages"} <= set(sources)
    assert set(supervisor.SUPERVISOR_MODULES) <= set(sources)
    # Closed under import, and only what the command line reaches: container_run's own glue is not copied.
    for short, text in sources.items():
        assert engine_files._imports(text) <= set(sources), short
    assert not {"runtime.task", "runtime.systemd"} & set(sources)
    assert engine_files.is_package("runtime.seccomp") and not engine_files.is_package("runtime.state")


def test_imports_are_found_in_every_form_the_engine_writes():
    pkg = runtime_systemd.PKG
    text = "\n".join([
        f"from {pkg}.errors import RuntimeSetupError",
        f"from {pkg}.runtime import (  # a comment",
        "    supervisor as runtime_supervisor,",
        "    state,",
        ")",
        "def later():",
        f"    from {pkg}.image.layers import whiteouts",
        f"    import {pkg}.cgroups.cgroup",
        f"from {pkg}.runtime.containers import Runtime, image_for_run",
        f"from {pkg} import linux",
        "from os import path",
    ])
    assert engine_files._imports(text) == {
        "errors", "runtime", "runtime.supervisor", "runtime.state", "image", "image.layers",
        "image.layers.whiteouts", "cgroups", "cgroups.cgroup", "runtime.containers", "linux"}


def test_the_installed_command_line_runs_from_the_copy_alone_with_bytecode_compiled_ahead(fake_systemd, tmp_path):
    """The copy's bin/dockerless in a fresh interpreter, with no collection on sys.path, imports the engine from the
    copy (packages, subpackages, submodules) from the bytecode compiled at install, and hands the supervisor's
    code over from there; the admin's link runs the same command line."""
    import importlib.util

    units, _log = fake_systemd
    units.apply(units.plan("web", "always"))
    sources = [path for path in units.engine_files() if path.endswith(".py")]
    assert len(sources) > 60
    for path in sources:
        assert os.path.isfile(importlib.util.cache_from_source(path)), path
    probe = (
        f"import sys; sys.path.insert(0, {units.boot_dir!r});"
        "from ansible_collections.dockerless.containers.plugins.module_utils.runtime import supervisor;"
        "from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter;"
        "from ansible_collections.dockerless.containers.plugins.module_utils.cli import main;"
        "supervisor._payload('/nonexistent', 3, 2); print(supervisor.__cached__, filter.__file__, main.__file__)"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=str(tmp_path), check=False)
    assert proc.returncode == 0, proc.stderr
    cached, seccomp_filter, cli = proc.stdout.split()
    assert cached.startswith(units.module_utils) and os.path.isfile(cached)
    assert seccomp_filter == os.path.join(units.module_utils, "runtime", "seccomp", "filter.py")
    assert cli == os.path.join(units.module_utils, "cli", "main.py")
    assert os.readlink(units.bin_link) == units.entry and os.access(units.entry, os.X_OK)
    for argv in ([units.bin_link, "ps", "-a", "--json"], [sys.executable, "-I", "-S", units.entry, "ps", "--json"]):
        ps = subprocess.run(argv + ["--store", units.store_root], capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, check=False)
        assert ps.returncode == 0 and json.loads(ps.stdout) == [], (argv, ps.stderr)


def test_unit_management_is_idempotent_and_reports_each_step(fake_systemd):
    units, log = fake_systemd
    unit = units.unit_path("web")
    link = units.wants_link("web")

    first = units.plan("web", "always", 10)
    assert first.actions == [f"install the engine in {units.boot_dir}", "write unit dockerless-web.service",
                             "enable unit dockerless-web.service"]
    assert first.before is None and first.after == units.render("web", 10)
    assert not os.path.exists(unit) and not os.path.exists(units.boot_dir)   # planning writes nothing
    assert not os.path.lexists(units.bin_link)
    units.apply(first)
    assert open(unit).read() == first.after and os.readlink(link) == unit
    for path, text in units.engine_files().items():
        assert open(path).read() == text, path
    assert open(os.path.join(units.module_utils, "runtime", "supervisor.py")).read() == \
        open(runtime_systemd.__file__.replace("systemd.py", "supervisor.py")).read()
    assert calls(log) == ["daemon-reload"]

    again = units.plan("web", "unless-stopped", 10)          # another policy, same unit: nothing to do
    assert not again.changed and again.before == again.after
    units.apply(again)
    assert calls(log) == ["daemon-reload"]

    longer = units.plan("web", "always", 50)                  # the stop timeout is in the unit
    assert longer.actions == ["write unit dockerless-web.service"] and "TimeoutStopSec=80" in longer.after
    units.apply(longer)
    assert calls(log) == ["daemon-reload"] * 2

    os.unlink(link)                                           # disabled by hand: enabled again, no reload
    relink = units.plan("web", "always", 50)
    assert relink.actions == ["enable unit dockerless-web.service"]
    units.apply(relink)
    assert os.readlink(link) == unit and calls(log) == ["daemon-reload"] * 2

    # Upgrades: the files of an older engine (the old loader and its JSON, a module the engine lost) go, and a
    # changed module is rewritten and compiled again; an admin's own /usr/local/bin/dockerless is left alone.
    old_files = [os.path.join(units.boot_dir, "dockerless_boot.py"), os.path.join(units.boot_dir, "engine.json"),
                 os.path.join(units.module_utils, "runtime", "gone.py")]
    for path in old_files:
        with open(path, "w") as handle:
            handle.write("# old\n")
    state_py = os.path.join(units.module_utils, "runtime", "state.py")
    with open(state_py, "a") as handle:
        handle.write("# edited\n")
    os.unlink(units.bin_link)
    with open(units.bin_link, "w") as handle:
        handle.write("#!/bin/sh\n")
    upgrade = units.plan("web", "always", 50)
    assert upgrade.actions == [f"install the engine in {units.boot_dir}"]
    assert sorted(upgrade.removes) == sorted(old_files) and list(upgrade.files) == [state_py]
    assert not upgrade.link
    units.apply(upgrade)
    assert not any(os.path.exists(path) for path in old_files)
    assert "# edited" not in open(state_py).read() and open(units.bin_link).read() == "#!/bin/sh\n"
    import importlib.util

    assert os.path.getmtime(importlib.util.cache_from_source(state_py)) >= os.path.getmtime(state_py)
    assert not units.plan("web", "always", 50).changed and calls(log) == ["daemon-reload"] * 2

    # The containers role's own unit of this container, from before container_run made units: removed (with its
    # wants link), not stopped; one daemon-reload.
    role_unit = os.path.join(units.unit_dir, "dockerless-container-web.service")
    role_link = os.path.join(units.unit_dir, "multi-user.target.wants", "dockerless-container-web.service")
    with open(role_unit, "w") as handle:
        handle.write("# Managed by the dockerless.containers.containers role; edits are overwritten on its next run.\n"
                     "[Service]\nType=oneshot\n")
    os.symlink(role_unit, role_link)
    cleanup = units.plan("web", "always", 50)
    assert cleanup.actions == ["remove unit dockerless-container-web.service"]
    units.apply(cleanup)
    assert not os.path.lexists(role_unit) and not os.path.lexists(role_link)
    assert calls(log) == ["daemon-reload"] * 3

    gone = units.plan("web", "no", 10)
    assert gone.actions == ["disable unit dockerless-web.service", "remove unit dockerless-web.service"]
    assert gone.after is None and gone.before == longer.after
    units.apply(gone)
    assert not os.path.lexists(unit) and not os.path.lexists(link)
    assert calls(log) == ["daemon-reload"] * 4
    assert not units.plan("web", None, 10).changed            # removed: nothing left to do

    # A unit file that isn't ours is neither overwritten nor removed.
    with open(units.unit_path("theirs"), "w") as handle:
        handle.write("[Service]\nExecStart=/bin/true\n")
    for policy in ("always", None):
        with pytest.raises(RuntimeSetupError, match="was not written by dockerless"):
            units.plan("theirs", policy)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)")
def test_what_the_unit_runs_starts_restores_and_stops_like_docker(fake_systemd, tmp_path):
    units, log = fake_systemd
    rootfs = make_busybox_rootfs(str(tmp_path / "rootfs"))
    runtime = Runtime(units.store_root)
    cli = [sys.executable, "-I", "-S", units.entry]

    def condition(name):   # the unit's ExecCondition
        return subprocess.run(cli + ["start", "--store", units.store_root, "--by-policy", "--check", name],
                              capture_output=True, text=True, timeout=60, check=False)

    def systemd_restarts(name):   # what systemd does after a killed main process (Restart=on-abnormal)
        subprocess.run(["systemctl", "start", runtime_systemd.unit_name(name)], check=True, timeout=120)

    def systemd_stops(name):      # systemctl stop, shutdown: SIGTERM to the unit's cgroup, the supervisor alone
        info = runtime.inspect(name)
        os.kill(info.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while runtime.inspect(name).supervised and time.monotonic() < deadline:
            time.sleep(0.05)

    try:
        for name, policy in (("us", "unless-stopped"), ("al", "always")):
            spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["sleep", "600"],
                              name=name, restart_policy=policy, stop_timeout=1)
            plan = runtime.plan(name, "started", spec)
            unit_plan = units.plan(name, policy, 1)
            info = runtime.apply(plan, units=units, unit_plan=unit_plan)
            # Started through the unit: the PID file names the supervisor, the start request is consumed.
            assert info.running and info.restart_count == 0
            with open(os.path.join(info.path, runtime_systemd.PID_FILE)) as handle:
                assert int(handle.read()) == info.supervisor_pid
            assert not os.path.exists(os.path.join(info.path, "start.json"))
            # The supervisor is a fork of the unit's `dockerless start` (no third interpreter), set up as a fresh
            # one would be: SIGPIPE and SIGXFSZ ignored, the rest default.
            with open(f"/proc/{info.supervisor_pid}/cmdline", "rb") as handle:
                assert units.entry.encode() in handle.read().split(b"\0")
            with open(f"/proc/{info.supervisor_pid}/status") as handle:
                ignored = int(next(line for line in handle if line.startswith("SigIgn:")).split()[1], 16)
            # Signals 1-31 only: glibc keeps 32 and 33 for itself (sigaction refuses them), so a disposition of
            # theirs inherited from whatever started this test (a background shell) can't be reset by anyone.
            assert ignored & 0x7FFFFFFF == (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1)), hex(ignored)
        assert calls(log) == ["daemon-reload", "start dockerless-us.service", "daemon-reload",
                              "start dockerless-al.service"]
        # Running: a second start (an admin's systemctl start) leaves it alone.
        assert condition("us").returncode == 1 and "us: running" in condition("us").stdout

        # kill -9 of the supervisor: the container dies with it; systemd's restart brings it back with a new
        # PID and one more restart.
        before = runtime.inspect("us")
        os.kill(before.supervisor_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while runtime.inspect("us").supervised and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime.inspect("us").state == "dead"
        assert condition("us").returncode == 0
        systemd_restarts("us")
        after = runtime.inspect("us")
        assert after.running and after.pid != before.pid and after.restart_count == before.restart_count + 1
        assert not after.stopped_by_user

        # Shutdown: systemd's stop is no user stop, so both come back at boot.
        for name in ("us", "al"):
            systemd_stops(name)
            info = runtime.inspect(name)
            assert not info.supervised and not info.stopped_by_user
            assert condition(name).returncode == 0, condition(name).stdout
        for name in ("us", "al"):
            subprocess.run(["systemctl", "start", runtime_systemd.unit_name(name)], check=True, timeout=120)
            assert runtime.inspect(name).running

        # A user stop (state: stopped, dockerless stop): unless-stopped stays down at boot, always comes back.
        runtime.stop("us")
        stop = subprocess.run(cli + ["stop", "--store", units.store_root, "al"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr
        assert runtime.inspect("al").stopped_by_user
        refused = condition("us")
        assert refused.returncode == 1 and "us: skipped: stopped by the user" in refused.stdout
        assert condition("al").returncode == 0
        subprocess.run(["systemctl", "start", "dockerless-us.service"], check=True, timeout=120)
        assert not runtime.inspect("us").supervised
        # Removed with its container: the unit goes after it; a unit left behind starts nothing.
        runtime.apply(runtime.plan("al", "absent"), units=units, unit_plan=units.plan("al", None))
        assert not os.path.exists(units.unit_path("al")) and runtime.inspect("al") is None
        gone = condition("al")
        assert gone.returncode == 1 and "container al: not found" in gone.stderr
    finally:
        for info in runtime.list():
            runtime.remove(info.name, force_kill=True)


# --- container_run in-process, as if systemd were PID 1 -----------------------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)")
def test_container_run_manages_the_unit_with_the_container(fake_systemd, tmp_path, capsys, monkeypatch):
    import functools

    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.dockerless.containers.plugins.module_utils.image.build import BuildSpec, build_image
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
    from ansible_collections.dockerless.containers.plugins.modules import container_run

    units, log = fake_systemd
    store = Store(units.store_root)
    store.ensure()
    build_image(store, BuildSpec(name="local/bb:1", executables=[os.path.realpath(BUSYBOX)]))
    monkeypatch.setattr(runtime_systemd, "systemd_booted", lambda: True)
    monkeypatch.setattr(runtime_systemd, "Units", functools.partial(
        runtime_systemd.Units, unit_dir=units.unit_dir, boot_dir=units.boot_dir, python=sys.executable, running=True))
    args = {"name": "web", "image": "local/bb:1", "command": [os.path.realpath(BUSYBOX), "sleep", "600"],
            "restart_policy": "always", "stop_timeout": 1, "store": units.store_root}

    def run(check=False, **changes):
        with patch_module_args({**args, **changes, "_ansible_check_mode": check, "_ansible_diff": True}):
            with pytest.raises(SystemExit):
                container_run.main()
        return json.loads(capsys.readouterr().out)

    unit = units.unit_path("web")
    try:
        check = run(check=True)
        assert check["changed"] and check["actions"] == [
            "create", "start", f"install the engine in {units.boot_dir}", "write unit dockerless-web.service",
            "enable unit dockerless-web.service"]
        assert check["diff"]["before"]["systemd_unit"] is None
        assert check["diff"]["after"]["systemd_unit"] == units.render("web", 1)
        assert not os.path.exists(unit) and Runtime(units.store_root).inspect("web") is None
        assert calls(log) == []

        real = run()
        assert real["changed"] and real["actions"] == check["actions"] and real["systemd_unit"] == unit
        assert real["container"]["running"] and open(unit).read() == units.render("web", 1)
        assert calls(log) == ["daemon-reload", "start dockerless-web.service"]   # started through the unit
        with open(os.path.join(real["container"]["path"], runtime_systemd.PID_FILE)) as handle:
            assert int(handle.read()) == real["container"]["supervisor_pid"]

        for check_mode in (False, True):                                     # idempotent
            again = run(check=check_mode)
            assert not again["changed"] and again["actions"] == [], again["actions"]
            assert "systemd_unit" not in again["diff"]["after"]
        assert calls(log) == ["daemon-reload", "start dockerless-web.service"]

        # Stopped without an image: the container keeps its policy, so its unit stays (enabled, unchanged).
        stopped = run(state="stopped", image=None)
        assert stopped["actions"] == ["stop"] and os.path.exists(unit)
        assert Runtime(units.store_root).inspect("web").stopped_by_user
        # A longer stop timeout rewrites only the unit (stop_timeout does not recreate a container).
        longer = run(state="stopped", stop_timeout=20)
        assert longer["actions"] == ["write unit dockerless-web.service"] and "TimeoutStopSec=50" in open(unit).read()

        gone = run(state="absent", image=None)
        assert gone["actions"] == ["remove", "disable unit dockerless-web.service", "remove unit dockerless-web.service"]
        assert not os.path.lexists(unit) and not os.path.lexists(units.wants_link("web"))
        assert calls(log)[-1] == "daemon-reload"
        assert not run(state="absent", image=None)["changed"]
    finally:
        for info in Runtime(units.store_root).list():
            Runtime(units.store_root).remove(info.name, force_kill=True)


def test_an_empty_package_init_from_a_zip_is_a_source(monkeypatch):
    """In a module run, module_utils come from AnsiballZ's zip: a package's empty __init__ has the source "" and no
    file on disk. The engine copy takes "" as its source (it failed with "the source of ...cgroups is not
    available" in the molecule VM)."""
    import importlib.machinery
    import types

    name = f"{runtime_systemd.PKG}.zipped_package_for_test"

    class ZipLoader:
        def get_source(self, fullname):
            assert fullname == name
            return ""

    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, ZipLoader(), origin="/nonexistent/ansiballz.zip/x/__init__.py",
                                                     is_package=True)
    module.__path__ = []
    monkeypatch.setitem(sys.modules, name, module)
    assert engine_files._source("zipped_package_for_test") == ""
