# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the default scenario (testinfra, read-only): the registry role's service, files and answers."""

from __future__ import annotations

import json
import os

import pytest
import yaml

with open(os.path.join(os.path.dirname(__file__), "..", "vars.yml"), encoding="utf-8") as _f:
    SETTINGS = yaml.safe_load(_f)

PORT = SETTINGS["dockerless_registry_port"]
USER = SETTINGS["dockerless_registry_users"][0]
CONFIG_DIR = "/etc/dockerless/registry"
URL = f"https://127.0.0.1:{PORT}/v2/"


def curl_status(host, *args: str) -> int:
    """HTTP status of a GET of the registry's /v2/ from inside the VM, TLS verified against the role's cert."""
    cmd = host.run(
        "curl -sS -o /dev/null -w '%%{http_code}' --cacert %s %s " + " ".join(["%s"] * len(args)),
        f"{CONFIG_DIR}/tls.crt",
        URL,
        *args,
    )
    assert cmd.rc == 0, f"curl {URL} failed: {cmd.stderr}"
    return int(cmd.stdout)


def test_vm_is_pure_cgroup_v2(host):
    assert host.run("stat -fc %T /sys/fs/cgroup").stdout.strip() == "cgroup2fs"
    controllers = host.file("/sys/fs/cgroup/cgroup.controllers").content_string.split()
    assert {"memory", "pids", "cpu", "io"} <= set(controllers)


def test_service_enabled_and_running(host):
    service = host.service("dockerless-registry")
    assert service.is_enabled
    assert service.is_running
    main_pid = int(host.run("systemctl show -p MainPID --value dockerless-registry").stdout)
    assert main_pid > 0
    assert host.process.get(pid=main_pid).user == "docker-registry"


def test_packaged_service_stopped_and_disabled(host):
    packaged = host.service("docker-registry")
    assert not packaged.is_running
    assert not packaged.is_enabled


def test_listens_on_configured_port(host):
    assert host.socket(f"tcp://0.0.0.0:{PORT}").is_listening


@pytest.mark.parametrize(
    "name, mode, owner, group",
    [
        ("config.yml", 0o640, "root", "docker-registry"),
        ("htpasswd", 0o640, "root", "docker-registry"),
        ("tls.key", 0o640, "root", "docker-registry"),
        ("tls.crt", 0o644, "root", "docker-registry"),
    ],
)
def test_config_files_modes(host, name, mode, owner, group):
    f = host.file(f"{CONFIG_DIR}/{name}")
    assert f.is_file
    assert f.mode == mode
    assert f.user == owner
    assert f.group == group


def test_config_points_at_tls_and_htpasswd(host):
    config = yaml.safe_load(host.file(f"{CONFIG_DIR}/config.yml").content_string)
    assert config["http"]["addr"] == f"0.0.0.0:{PORT}"
    assert config["http"]["tls"] == {"certificate": f"{CONFIG_DIR}/tls.crt", "key": f"{CONFIG_DIR}/tls.key"}
    assert config["auth"]["htpasswd"]["path"] == f"{CONFIG_DIR}/htpasswd"
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/dockerless-registry"


def test_password_stored_only_as_bcrypt(host):
    lines = host.file(f"{CONFIG_DIR}/htpasswd").content_string.splitlines()
    assert len(lines) == 1
    name, hashed = lines[0].split(":", 1)
    assert name == USER["name"]
    assert hashed.startswith(("$2y$10$", "$2b$10$"))
    assert USER["password"] not in hashed


def test_storage_writable_by_service_user_only(host):
    storage = host.file("/var/lib/dockerless-registry")
    assert storage.is_directory
    assert storage.user == "docker-registry"
    assert storage.mode == 0o750


def test_anonymous_request_is_challenged(host):
    assert curl_status(host) == 401
    headers = host.run("curl -sS -D - -o /dev/null --cacert %s %s", f"{CONFIG_DIR}/tls.crt", URL).stdout
    assert 'www-authenticate: basic realm="dockerless registry"' in headers.lower()


def test_user_is_let_in(host):
    assert curl_status(host, "-u", f"{USER['name']}:{USER['password']}") == 200


def test_wrong_password_is_refused(host):
    assert curl_status(host, "-u", f"{USER['name']}:not-the-password") == 401


def test_catalog_answers_json(host):
    out = host.run(
        "curl -sS --cacert %s -u %s %s",
        f"{CONFIG_DIR}/tls.crt",
        f"{USER['name']}:{USER['password']}",
        URL + "_catalog",
    )
    assert out.rc == 0
    assert "repositories" in json.loads(out.stdout)


def test_plain_http_is_not_served(host):
    out = host.run("curl -sS -o /dev/null -w '%%{http_code}' http://127.0.0.1:%s/v2/", str(PORT))
    # The TLS listener answers a plain-HTTP request with 400, never with the API.
    assert out.stdout.strip() in ("400", "000")
