# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the default scenario (testinfra, read-only): the image the images role built, pushed and pulled
back, the container the containers role runs from it (namespaces, cgroup v2 limits, capabilities, seccomp, logs,
boot unit) and the WSL export."""

from __future__ import annotations

import json
import os

import pytest
import yaml

with open(os.path.join(os.path.dirname(__file__), "..", "vars.yml"), encoding="utf-8") as _f:
    SETTINGS = yaml.safe_load(_f)

STORE = "/var/lib/dockerless"
IMAGE = SETTINGS["molecule_image"]
PULLED = SETTINGS["molecule_image_pulled"]
NAME = SETTINGS["molecule_container"]
CONTAINER_DIR = f"{STORE}/containers/{NAME}"
USER = SETTINGS["dockerless_registry_users"][0]
CA = "/etc/dockerless/registry/tls.crt"
EXPORT = SETTINGS["molecule_export"]
# Docker's default capability set (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
# NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP) as /proc/PID/status prints it.
DOCKER_DEFAULT_CAPS = "00000000a80425fb"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")


def read_json(host, path: str):
    f = host.file(path)
    assert f.exists, f"{path} is missing"
    return json.loads(f.content_string)


def sha256_of(host, path: str) -> str:
    out = host.run("sha256sum %s", path)
    assert out.rc == 0, f"sha256sum {path}: {out.stderr}"
    return out.stdout.split()[0]


def descriptors(host) -> dict[str, dict]:
    """index.json's manifest descriptors by their reference name."""
    index = read_json(host, f"{STORE}/index.json")
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def check_blob(host, descriptor: dict) -> str:
    """The blob's sha256 recomputed in the VM equals its name and the descriptor's digest; its size too."""
    algorithm, hexdigest = descriptor["digest"].split(":", 1)
    assert algorithm == "sha256"
    path = f"{STORE}/blobs/sha256/{hexdigest}"
    assert host.file(path).is_file, f"{path} is missing"
    assert sha256_of(host, path) == hexdigest, f"{path}: content does not match its name"
    assert host.file(path).size == descriptor["size"], f"{path}: size differs from the descriptor"
    return path


@pytest.fixture(scope="module")
def state(host) -> dict:
    data = read_json(host, f"{CONTAINER_DIR}/state.json")
    assert data["state"] == "running", f"{NAME} is {data['state']}: {data.get('error')}"
    return data


@pytest.fixture(scope="module")
def pid(state) -> int:
    return int(state["pid"])


def status_field(host, pid: int, key: str) -> str:
    for line in host.file(f"/proc/{pid}/status").content_string.splitlines():
        name, _sep, value = line.partition(":")
        if name == key:
            return value.strip()
    raise AssertionError(f"/proc/{pid}/status has no {key}")


def test_modules_ran_without_requests(host):
    """The VM image has no python3-requests and the roles, given no proxy, installed none: everything above was
    pulled and pushed by the standard library alone (requests is needed only behind an HTTP proxy)."""
    assert not host.package("python3-requests").is_installed
    assert host.run("python3 -c 'import requests'").rc != 0


def test_store_is_an_oci_layout(host):
    assert json.loads(host.file(f"{STORE}/oci-layout").content_string) == {"imageLayoutVersion": "1.0.0"}
    index = read_json(host, f"{STORE}/index.json")
    assert index["schemaVersion"] == 2


def test_built_and_pulled_tags_name_the_same_manifest(host):
    found = descriptors(host)
    assert IMAGE in found and PULLED in found, f"index.json names {sorted(found)}"
    assert found[IMAGE]["digest"] == found[PULLED]["digest"]
    assert found[IMAGE]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_manifest_config_and_layers_match_their_digests(host):
    manifest_path = check_blob(host, descriptors(host)[IMAGE])
    manifest = json.loads(host.file(manifest_path).content_string)
    config_path = check_blob(host, manifest["config"])
    assert manifest["layers"], "the manifest has no layer"
    for layer in manifest["layers"]:
        check_blob(host, layer)
    config = json.loads(host.file(config_path).content_string)
    assert config["config"]["Cmd"] == ["busybox", "sh"]
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
    for diff_id in config["rootfs"]["diff_ids"]:
        layer_dir = f"{STORE}/layers/sha256/{diff_id.split(':', 1)[1]}"
        assert host.file(f"{layer_dir}/usr/bin/busybox").is_file, f"{layer_dir} lacks usr/bin/busybox"


@pytest.mark.parametrize("reference", [IMAGE, PULLED])
def test_registry_serves_the_stored_manifest(host, reference):
    repository, tag = reference.split("/", 1)[1].rsplit(":", 1)
    out = host.run(
        "curl -sS -o /dev/null -D - --cacert %s -u %s -H %s https://%s/v2/%s/manifests/%s",
        CA,
        f"{USER['name']}:{USER['password']}",
        "Accept: " + ",".join(MANIFEST_TYPES),
        SETTINGS["molecule_registry"],
        repository,
        tag,
    )
    assert out.rc == 0, out.stderr
    headers = {k.strip().lower(): v.strip() for k, _sep, v in (line.partition(":") for line in out.stdout.splitlines())}
    assert headers.get("docker-content-digest") == descriptors(host)[IMAGE]["digest"]


def test_container_runs_the_pulled_image(host):
    spec = read_json(host, f"{CONTAINER_DIR}/spec.json")["spec"]
    assert spec["image"] == PULLED
    assert spec["image_digest"] == descriptors(host)[PULLED]["digest"]
    assert spec["restart_policy"] == "unless-stopped"


def test_container_is_pid_1_of_its_own_pid_namespace(host, pid):
    nspid = status_field(host, pid, "NSpid").split()
    assert len(nspid) == 2 and nspid[-1] == "1", f"NSpid {nspid}: not PID 1 of a child PID namespace"
    assert host.file(f"/proc/{pid}/comm").content_string.strip() == "busybox"


@pytest.mark.parametrize("namespace", ["pid", "mnt", "uts", "ipc", "net", "cgroup"])
def test_container_namespace_differs_from_the_hosts(host, pid, namespace):
    mine = host.run("readlink /proc/%s/ns/%s", str(pid), namespace).stdout.strip()
    hosts = host.run("readlink /proc/1/ns/%s", namespace).stdout.strip()
    assert mine.startswith(f"{namespace}:[") and hosts.startswith(f"{namespace}:[")
    assert mine != hosts, f"{namespace} namespace shared with the host ({mine})"


def test_container_cgroup_v2_limits(host, pid):
    lines = host.file(f"/proc/{pid}/cgroup").content_string.splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::"), f"not a pure cgroup v2 process: {lines}"
    folder = "/sys/fs/cgroup" + lines[0][3:]
    assert folder != "/sys/fs/cgroup/", "the container is in the root cgroup"
    memory = SETTINGS["molecule_container_memory_mib"] * 1024 * 1024
    assert host.file(f"{folder}/memory.max").content_string.strip() == str(memory)
    assert host.file(f"{folder}/pids.max").content_string.strip() == str(SETTINGS["molecule_container_pids_limit"])
    quota, period = host.file(f"{folder}/cpu.max").content_string.split()
    assert int(quota) == round(SETTINGS["molecule_container_cpus"] * int(period))


def test_container_has_dockers_default_capabilities(host, pid):
    assert status_field(host, pid, "CapEff") == DOCKER_DEFAULT_CAPS
    assert status_field(host, pid, "CapBnd") == DOCKER_DEFAULT_CAPS
    assert status_field(host, pid, "CapPrm") == DOCKER_DEFAULT_CAPS


def test_container_is_filtered_by_seccomp(host, pid):
    assert status_field(host, pid, "Seccomp") == "2"
    assert status_field(host, pid, "NoNewPrivs") == "1"


def test_container_root_is_the_image(host, pid):
    # Through /proc/PID/root the VM sees the container's own root: the image's busybox, not the VM's /etc.
    assert host.file(f"/proc/{pid}/root/usr/bin/busybox").is_file
    assert not host.file(f"/proc/{pid}/root/etc/debian_version").exists


def test_container_output_logged(host):
    log = host.file(f"{CONTAINER_DIR}/stdout.log").content_string
    assert f"{SETTINGS['molecule_container_greeting']}, PID 1" in log


def test_container_starts_at_boot(host):
    # container_run's unit (restart_policy unless-stopped); the supervisor is its main process.
    unit = host.service(f"dockerless-{NAME}")
    assert unit.is_enabled
    assert unit.is_running


def test_wsl_export_has_the_recorded_checksum(host):
    export = host.file(EXPORT)
    assert export.is_file
    assert export.mode == 0o600
    recorded = host.file(f"{EXPORT}.sha256").content_string.split()
    assert recorded[1] == os.path.basename(EXPORT)
    assert len(recorded[0]) == 64
    assert sha256_of(host, EXPORT) == recorded[0]


def test_wsl_export_holds_the_image_files(host):
    out = host.run("tar -tzf %s", EXPORT)
    assert out.rc == 0, out.stderr
    names = {n.lstrip("./").rstrip("/") for n in out.stdout.splitlines()}
    assert {"usr/bin/busybox", "etc/passwd"} <= names
