# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the fleet scenario on every node (testinfra, read-only): the container runs from the image the
registry host pushed, with its own namespaces and its cgroup v2 limits."""

from __future__ import annotations

import json
import os

import pytest
import testinfra

testinfra_hosts = ["nodes"]

REGISTRY = "192.168.77.10:5000"
IMAGE = f"{REGISTRY}/fleet/tools:1"
CONTAINER_DIR = "/var/lib/dockerless/containers/fleet-app"
ACCEPT = ",".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@pytest.fixture(scope="module")
def registry_digest() -> str:
    """The digest the registry host's registry serves for the fleet image (asked on the registry host)."""
    registry = testinfra.get_host(
        "ansible://dockerless-registry", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"]
    )
    out = registry.run(
        "curl -sS -o /dev/null -D - -H %s http://127.0.0.1:5000/v2/fleet/tools/manifests/1", f"Accept: {ACCEPT}"
    )
    assert out.rc == 0, out.stderr
    for line in out.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "docker-content-digest":
            return value.strip()
    raise AssertionError(f"no Docker-Content-Digest in the registry's answer: {out.stdout}")


def read_json(host, path: str) -> dict:
    f = host.file(path)
    assert f.exists, f"{path} is missing"
    return json.loads(f.content_string)


def test_node_reaches_the_registry_on_the_fleet_segment(host):
    out = host.run("curl -sS -o /dev/null -w '%%{http_code}' http://%s/v2/", REGISTRY)
    assert out.stdout == "200", out.stderr


def test_container_runs_the_pushed_image(host, registry_digest):
    spec = read_json(host, f"{CONTAINER_DIR}/spec.json")["spec"]
    assert spec["image"] == IMAGE
    assert spec["image_digest"] == registry_digest


def test_container_is_pid_1_of_its_own_namespaces(host):
    state = read_json(host, f"{CONTAINER_DIR}/state.json")
    assert state["state"] == "running"
    pid = int(state["pid"])
    status = host.file(f"/proc/{pid}/status").content_string
    nspid = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[1:]
    assert nspid[-1] == "1", f"NSpid {nspid}: not PID 1 of its namespace"
    for ns in ("pid", "mnt", "uts", "ipc"):
        mine = host.run("readlink /proc/%s/ns/%s", str(pid), ns).stdout.strip()
        hosts = host.run("readlink /proc/1/ns/%s", ns).stdout.strip()
        assert mine and hosts and mine != hosts, f"{ns} namespace shared with the host ({mine})"


def test_container_cgroup_v2_limits(host):
    pid = int(read_json(host, f"{CONTAINER_DIR}/state.json")["pid"])
    lines = host.file(f"/proc/{pid}/cgroup").content_string.splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), f"not a pure cgroup v2 process: {lines}"
    folder = "/sys/fs/cgroup" + lines[0][3:]
    assert host.file(f"{folder}/memory.max").content_string.strip() == str(64 * 1024 * 1024)
    assert host.file(f"{folder}/pids.max").content_string.strip() == "64"


def test_container_output_logged(host):
    assert "fleet-app up, PID 1" in host.file(f"{CONTAINER_DIR}/stdout.log").content_string


def test_container_starts_at_boot(host):
    assert host.service("dockerless-fleet-app").is_enabled   # container_run's unit (restart_policy on-failure)
