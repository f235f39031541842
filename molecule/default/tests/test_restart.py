# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the default scenario, after side_effect.yml: a killed supervisor came back through its systemd unit
(within RECOVERY_BOUND seconds), and after the reboot the containers are up or down as Docker's restart policies say (read-only)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

with open(os.path.join(os.path.dirname(__file__), "..", "vars.yml"), encoding="utf-8") as _f:
    SETTINGS = yaml.safe_load(_f)

CONTAINERS = "/var/lib/dockerless/containers"
POLICIES = {c["name"]: c["policy"] for c in SETTINGS["molecule_restart_containers"]}
STOPPED = SETTINGS["molecule_restart_stopped"]
ENGINE = "/usr/local/lib/dockerless"
# Docker's promise: a killed supervisor's container runs again within 5 s. Measured 3.64 s in the clean-clone
# .ci/run of 2026-12-07 (host quiet, VM load 1.3); a host loaded with other VMs takes 11.7-21.9 s (docs/molecule.md).
RECOVERY_BOUND = 5
MODULE_UTILS = f"{ENGINE}/ansible_collections/dockerless/containers/plugins/module_utils"


def state(host, name: str) -> dict:
    return json.loads(host.file(f"{CONTAINERS}/{name}/state.json").content_string)


def supervised(host, name: str) -> bool:
    """A supervisor holds the container's lock (flock -n fails with 75 then)."""
    out = host.run("flock -n -E 75 %s true", f"{CONTAINERS}/{name}/supervisor.lock")
    assert out.rc in (0, 75), out.stderr
    return out.rc == 75


@pytest.fixture(scope="module")
def record(host) -> dict:
    return json.loads(host.file(SETTINGS["molecule_restart_record"]).content_string)


def test_a_killed_supervisor_came_back_through_its_unit(record):
    before, after = record["before"], record["after"]
    assert after["state"] == "running" and after["pid"] != before["pid"], record
    assert after["supervisor_pid"] != before["supervisor_pid"]
    assert after["restart_count"] == before["restart_count"] + 1
    assert record["seconds"] < RECOVERY_BOUND, "\n".join([f"{record['seconds']} s (VM load {record['vm_load']})"] + record["journal"])


def test_the_vm_rebooted_after_the_kill(host, record):
    assert host.file("/proc/sys/kernel/random/boot_id").content_string.strip() != record["boot_id"]
    assert record["system"] in ("running", "degraded")


@pytest.mark.parametrize("name", ["molecule-always", "molecule-unless", SETTINGS["molecule_container"]])
def test_containers_with_a_restart_policy_run_again_after_the_reboot(host, name):
    assert supervised(host, name)
    now = state(host, name)
    assert now["state"] == "running" and not now.get("stopped_by_user")
    assert host.file(f"/proc/{now['pid']}/status").exists
    # The supervisor is the main process of the container's unit, which is enabled for boot.
    unit = host.service(f"dockerless-{name}")
    assert unit.is_enabled and unit.is_running
    main_pid = host.run("systemctl show -P MainPID dockerless-%s.service", name).stdout.strip()
    assert int(main_pid) == now["supervisor_pid"]


def test_a_container_without_restart_policy_stays_down_and_has_no_unit(host):
    assert POLICIES["molecule-no"] == "no"
    assert not supervised(host, "molecule-no")
    assert state(host, "molecule-no")["state"] in ("dead", "exited")
    assert not host.file("/etc/systemd/system/dockerless-molecule-no.service").exists


def test_a_container_the_user_stopped_stays_stopped_across_the_reboot(host):
    assert not supervised(host, STOPPED)
    now = state(host, STOPPED)
    assert now["stopped_by_user"] is True and now["state"] == "exited"
    unit = host.service(f"dockerless-{STOPPED}")
    assert unit.is_enabled and not unit.is_running     # the unit's ExecCondition kept it down
    journal = host.run("journalctl -b -u dockerless-%s.service -o cat", STOPPED).stdout
    assert f"{STOPPED}: skipped: stopped by the user" in journal, journal


def test_the_units_run_the_cli_of_the_installed_engine(host):
    show = host.run("systemctl show -P ExecStart -P ExecCondition dockerless-molecule-always.service")
    assert show.rc == 0 and show.stdout.count(f"{ENGINE}/bin/dockerless") == 2, show.stdout
    assert show.stdout.count("--by-policy") == 2 and "--check" in show.stdout, show.stdout
    # The engine copy is a package tree compiled ahead (no compile on a restart), the old loader's files are gone.
    assert host.file(f"{MODULE_UTILS}/runtime/supervisor.py").is_file
    assert host.run("ls %s/runtime/__pycache__/ | grep -c '^supervisor\\.'", MODULE_UTILS).stdout.strip() != "0"
    assert not host.file(f"{ENGINE}/dockerless_boot.py").exists and not host.file(f"{ENGINE}/engine.json").exists
    # The same CLI is the admin's dockerless on the host.
    ps = host.run("/usr/local/bin/dockerless ps -a --json")
    assert ps.rc == 0, ps.stderr
    names = {c["name"] for c in json.loads(ps.stdout)}
    assert {"molecule-always", "molecule-unless", "molecule-no", STOPPED} <= names
