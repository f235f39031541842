# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``dockerless.containers.registry`` role on this machine, for real, without touching the host's registry.

The host has no systemd as PID 1, so the role runs with ``dockerless_registry_manage_service: false`` (it
writes the configuration, users, certificate and storage directory into a temporary directory) and the test
starts ``docker-registry serve`` on that configuration itself, as the ``docker-registry`` user, to prove the
files work: TLS verified against the test CA, basic auth with the htpasswd users, blobs stored. The systemd
side runs in the VM (molecule/default).
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import pytest
import requests

registry_lib = harness.load_script("registry")

REGISTRY_BINARY = "/usr/bin/docker-registry"
SERVICE_USER = "docker-registry"

APPLY = """\
- name: Apply the registry role
  hosts: localhost
  gather_facts: false
  roles:
    - role: dockerless.containers.registry
"""

pytestmark = pytest.mark.skipif(
    not os.path.exists(REGISTRY_BINARY) or shutil.which("htpasswd") is None,
    reason="needs Debian's docker-registry and apache2-utils (scripts/install-deps.sh installs them)",
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the registry's service user can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="dockerless-registry-role-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def changed_tasks(run: harness.PlaybookResult) -> list[str]:
    """Names of the tasks that changed something, without the ``dockerless.containers.registry : `` prefix."""
    return [t.task.split(" : ", 1)[-1] for t in run.tasks if t.status == "changed"]


def assert_ok(run: harness.PlaybookResult) -> None:
    failures = [(t.task, t.result.get("msg")) for t in run.tasks if t.failed]
    assert not run.failed, f"ansible-playbook rc={run.rc}, failed tasks: {failures}\n{run.stderr[-2000:]}"


def assert_no_secret(run: harness.PlaybookResult, secrets: list[str]) -> None:
    everything = run.stdout + run.stderr + json.dumps([t.result for t in run.tasks])
    for secret in secrets:
        assert secret not in everything, "a password or private key appeared in Ansible's output"


class ServedRegistry:
    """``docker-registry serve CONFIG`` as the service user, stopped by ``stop()``."""

    def __init__(self, config: Path, port: int, ca_path: str):
        self.url = f"https://127.0.0.1:{port}"
        self.ca_path = ca_path
        self.log = config.parent.parent / "serve.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["runuser", "-u", SERVICE_USER, "--", REGISTRY_BINARY, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/v2/", verify=self.ca_path, timeout=2)
                return
            except requests.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"docker-registry did not serve {self.url}: {self.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def get(self, path: str, auth: tuple[str, str] | None = None) -> requests.Response:
        return requests.get(self.url + path, auth=auth, verify=self.ca_path, timeout=10)

    def push_blob(self, repo: str, data: bytes, auth: tuple[str, str]) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = requests.post(f"{self.url}/v2/{repo}/blobs/uploads/", auth=auth, verify=self.ca_path, timeout=10)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        sep = "&" if "?" in location else "?"
        put = requests.put(
            f"{location}{sep}digest={digest}",
            data=data,
            auth=auth,
            headers={"Content-Type": "application/octet-stream"},
            verify=self.ca_path,
            timeout=10,
        )
        assert put.status_code == 201, put.text
        return digest

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def mode_owner(path: Path) -> tuple[int, str, str]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


@pytest.mark.root
def test_role_writes_a_working_registry_and_is_idempotent(workdir: Path, harness_ca: Any) -> None:
    playbook = workdir / "apply.yml"
    playbook.write_text(APPLY)
    cert = registry_lib.issue_cert(harness_ca, str(workdir / "pki"), "role-registry")
    key_pem = Path(cert.key_path).read_text()
    port = registry_lib.free_port()
    alice = ("alice", "alice-Pa55-" + os.urandom(4).hex())
    bob = ("bob", "bob-Pa55-" + os.urandom(4).hex())
    config_dir = workdir / "etc"
    storage = workdir / "storage"
    settings: dict[str, Any] = {
        "dockerless_registry_manage_service": False,
        # A string, as from `-e` or an INI inventory: the role must read it as a boolean, not as true.
        "dockerless_registry_install_packages": "no",
        "dockerless_registry_listen_address": "127.0.0.1",
        "dockerless_registry_port": port,
        "dockerless_registry_config_dir": str(config_dir),
        "dockerless_registry_storage_path": str(storage),
        "dockerless_registry_bcrypt_cost": 5,
        "dockerless_registry_tls": {"certificate": Path(cert.cert_path).read_text(), "key": key_pem},
        "dockerless_registry_users": [{"name": n, "password": p} for n, p in (alice, bob)],
    }
    secrets = [alice[1], bob[1], key_pem.strip().splitlines()[1]]

    first = harness.run_playbook(playbook, settings)
    assert_ok(first)
    assert_no_secret(first, secrets)
    assert {
        "Create the configuration directory",
        "Create the storage directory",
        "Write the TLS certificate",
        "Write the TLS key",
        "Write the htpasswd file",
        "Write the registry configuration",
    } <= set(changed_tasks(first))

    # Idempotence, first in check mode (nothing would change), then for real.
    check = harness.run_playbook(playbook, settings, check=True)
    assert_ok(check)
    assert changed_tasks(check) == []
    again = harness.run_playbook(playbook, settings)
    assert_ok(again)
    assert changed_tasks(again) == []
    assert_no_secret(again, secrets)

    assert mode_owner(config_dir) == (0o750, "root", SERVICE_USER)
    assert mode_owner(config_dir / "config.yml") == (0o640, "root", SERVICE_USER)
    assert mode_owner(config_dir / "htpasswd") == (0o640, "root", SERVICE_USER)
    assert mode_owner(config_dir / "tls.key") == (0o640, "root", SERVICE_USER)
    assert mode_owner(storage) == (0o750, SERVICE_USER, SERVICE_USER)
    lines_before = (config_dir / "htpasswd").read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines_before] == ["alice", "bob"]
    assert all(line.split(":", 1)[1].startswith("$2y$05$") for line in lines_before)

    served = ServedRegistry(config_dir / "config.yml", port, harness_ca.cert_path)
    try:
        anonymous = served.get("/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith('Basic realm="dockerless registry"')
        assert served.get("/v2/", auth=alice).status_code == 200
        assert served.get("/v2/", auth=(alice[0], "wrong")).status_code == 401
        data = os.urandom(4096)
        digest = served.push_blob("role/test", data, bob)
        fetched = served.get(f"/v2/role/test/blobs/{digest}", auth=alice)
        assert fetched.status_code == 200
        assert fetched.content == data
    finally:
        served.stop()

    # A changed password rewrites only that user's line; distribution reads htpasswd at start, so the role's
    # service restarts (in the VM); here the test restarts the process itself.
    new_bob = (bob[0], "bob-N3w-" + os.urandom(4).hex())
    settings["dockerless_registry_users"] = [{"name": n, "password": p} for n, p in (alice, new_bob)]
    changed = harness.run_playbook(playbook, settings)
    assert_ok(changed)
    assert_no_secret(changed, secrets + [new_bob[1]])
    assert changed_tasks(changed) == ["Write the htpasswd file"]
    lines_after = (config_dir / "htpasswd").read_text().splitlines()
    assert lines_after[0] == lines_before[0]
    assert lines_after[1] != lines_before[1]

    served = ServedRegistry(config_dir / "config.yml", port, harness_ca.cert_path)
    try:
        assert served.get("/v2/", auth=new_bob).status_code == 200
        assert served.get("/v2/", auth=bob).status_code == 401
        assert served.get("/v2/", auth=alice).status_code == 200
    finally:
        served.stop()

    # absent: configuration goes, stored images stay unless asked.
    absent = harness.run_playbook(playbook, {**settings, "dockerless_registry_state": "absent"})
    assert_ok(absent)
    assert not config_dir.exists()
    assert storage.is_dir() and any(storage.iterdir())
    purge = harness.run_playbook(
        playbook, {**settings, "dockerless_registry_state": "absent", "dockerless_registry_remove_storage": True}
    )
    assert_ok(purge)
    assert not storage.exists()


# name -> (role variables, words the failure message must contain)
BAD_INPUT: dict[str, tuple[dict[str, Any], list[str]]] = {
    "port_not_a_number": ({"dockerless_registry_port": "lots"}, ["dockerless_registry_port", "int"]),
    "port_out_of_range": ({"dockerless_registry_port": 70000}, ["port in 1-65535", "got 70000"]),
    "unknown_state": ({"dockerless_registry_state": "running"}, ["dockerless_registry_state", "started"]),
    "user_without_password": (
        {"dockerless_registry_users": [{"name": "carol"}]},
        ["password", "dockerless_registry_users"],
    ),
    "user_without_name": (
        {"dockerless_registry_users": [{"password": "never-shown-Pa55"}]},
        ["name", "dockerless_registry_users"],
    ),
    "duplicate_users": (
        {"dockerless_registry_users": [{"name": "dan", "password": "a"}, {"name": "dan", "password": "b"}]},
        ["unique", "dan"],
    ),
    "user_name_with_colon": (
        {"dockerless_registry_users": [{"name": "e:ve", "password": "a"}]},
        ["':'", "dockerless_registry_users"],
    ),
    "tls_without_key": (
        {"dockerless_registry_tls": {"certificate": "-----BEGIN CERTIFICATE-----"}},
        ["key", "dockerless_registry_tls"],
    ),
    "relative_storage_path": ({"dockerless_registry_storage_path": "data/registry"}, ["absolute", "data/registry"]),
    "bad_log_level": ({"dockerless_registry_log_level": "loud"}, ["dockerless_registry_log_level", "debug"]),
}


def test_role_rejects_bad_input(workdir: Path) -> None:
    """Every bad input fails before the role changes anything, with a message naming the variable."""
    # Safe settings under every case: even an input wrongly accepted only writes into workdir.
    safe = {
        "dockerless_registry_manage_service": False,
        "dockerless_registry_install_packages": False,
        "dockerless_registry_config_dir": str(workdir / "etc"),
        "dockerless_registry_storage_path": str(workdir / "storage"),
    }
    plays = []
    for name, (variables, _words) in BAD_INPUT.items():
        plays.append(
            {
                "name": f"case {name}",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "block": [
                            {
                                "name": f"apply {name}",
                                "ansible.builtin.include_role": {"name": "dockerless.containers.registry"},
                                "vars": {**safe, **variables},
                            },
                            {"name": f"accepted: {name}", "ansible.builtin.debug": {"msg": "accepted"}},
                        ],
                        "rescue": [
                            {
                                "name": f"rejected: {name}",
                                "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"},
                            }
                        ],
                    }
                ],
            }
        )
    playbook = workdir / "bad.yml"
    playbook.write_text(json.dumps(plays))
    run = harness.run_playbook(playbook)
    assert run.rc == 0, run.stderr[-3000:]
    assert "never-shown-Pa55" not in run.stdout + run.stderr + json.dumps([t.result for t in run.tasks])
    for name, (_variables, words) in BAD_INPUT.items():
        assert run.named(f"accepted: {name}") == [], f"{name}: the role accepted bad input"
        rejected = run.named(f"rejected: {name}")
        assert len(rejected) == 1, f"{name}: no rejection recorded"
        msg = rejected[0].result["msg"]
        for word in words:
            assert word in msg, f"{name}: {word!r} not in the failure message {msg!r}"
    assert not (workdir / "etc").exists(), "a rejected input still wrote the configuration"
