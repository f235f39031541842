# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the integration-test harness itself: registries, token server, seeded images, running Ansible."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Optional

import harness
import pytest
import requests
from harness import TOKEN_SERVICE, run_seed
from token_server import parse_scope

registry_lib = harness.load_script("registry")

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def _challenge(resp: requests.Response) -> dict[str, str]:
    """``Bearer realm="...",service="..."`` -> {"scheme": "Bearer", "realm": ..., "service": ...}."""
    header = resp.headers["WWW-Authenticate"]
    scheme, _sep, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    params["scheme"] = scheme
    return params


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _get_token(reg: Any, scope: str, auth: Optional[tuple] = None) -> requests.Response:
    return requests.get(
        reg.token_server.realm,
        params={"service": TOKEN_SERVICE, "scope": scope},
        auth=auth,
        verify=reg.ca_path,
        timeout=10,
    )


def _skopeo(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["skopeo", "--insecure-policy"] + args, capture_output=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc


def _cert_dir(reg: Any, tmp_path: Path) -> str:
    d = tmp_path / "certs"
    d.mkdir(exist_ok=True)
    (d / "ca.crt").write_bytes(Path(reg.ca_path).read_bytes())
    return str(d)


def _authfile(reg: Any, tmp_path: Path) -> str:
    path = tmp_path / "auth.json"
    token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    path.write_text(json.dumps({"auths": {reg.host: {"auth": token}}}))
    path.chmod(0o600)
    return str(path)


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


# --- pure helpers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            '127.0.0.1 - - [28/Nov/2026:07:46:38 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"',
            ("GET", "/v2/", 200, 2, "curl/7.88.1"),
        ),
        (
            '127.0.0.1 - - [28/Nov/2026:07:46:38 +0000] "HEAD /v2/a/b/blobs/sha256:00 HTTP/1.1" 404 - "" "x y"',
            ("HEAD", "/v2/a/b/blobs/sha256:00", 404, 0, "x y"),
        ),
        ('time="2026-11-28T07:46:37Z" level=info msg="listening on 127.0.0.1:5999"', None),
    ],
)
def test_parse_access_log(line: str, expected: Optional[tuple]) -> None:
    entries = registry_lib.parse_access_log(line + "\n")
    if expected is None:
        assert entries == []
    else:
        assert [(e.method, e.path, e.status, e.size, e.user_agent) for e in entries] == [expected]


@pytest.mark.parametrize(
    "scope, expected",
    [
        ("repository:team/app:pull,push", ("repository", "team/app", ["pull", "push"])),
        ("repository(plugin):a:pull", ("repository", "a", ["pull"])),
        ("registry:catalog:*", ("registry", "catalog", ["*"])),
        ("repository:a", None),
        (":a:pull", None),
        ("repository::pull", None),
    ],
)
def test_parse_scope(scope: str, expected: Optional[tuple]) -> None:
    assert parse_scope(scope) == expected


# --- registries -------------------------------------------------------------------------------------------


def test_plain_registry_answers_v2_and_logs_requests(registry: Any) -> None:
    assert registry.url == f"http://{registry.host}" and registry.host == f"127.0.0.1:{registry.port}"
    assert (registry.ca_path, registry.username, registry.password) == (None, None, None)
    mark = registry.mark()
    resp = requests.get(registry.url + "/v2/", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    missing = requests.get(registry.url + "/v2/harness/none/manifests/latest", headers={"Accept": MANIFEST_ACCEPT}, timeout=5)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    log = registry.request_log(since=mark)
    assert [(e.method, e.path, e.status) for e in log] == [
        ("GET", "/v2/", 200),
        ("GET", "/v2/harness/none/manifests/latest", 404),
    ]
    assert registry.request_count() == mark + 2


def test_tls_registry_requires_basic_auth(registry_tls: Any) -> None:
    url = registry_tls.url + "/v2/"
    assert url.startswith("https://127.0.0.1:")
    anonymous = requests.get(url, verify=registry_tls.ca_path, timeout=5)
    assert anonymous.status_code == 401
    assert _challenge(anonymous)["scheme"] == "Basic"
    wrong = requests.get(url, auth=(registry_tls.username, "wrong"), verify=registry_tls.ca_path, timeout=5)
    assert wrong.status_code == 401
    ok = requests.get(url, auth=(registry_tls.username, registry_tls.password), verify=registry_tls.ca_path, timeout=5)
    assert ok.status_code == 200
    # The test CA is not in the system bundle: without ca_path verification fails (no silent trust).
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, timeout=5)
    # The password is in no file the harness writes except the bcrypt htpasswd.
    for name in ("registry.json", "config.yml", "access.log", "registry.log"):
        assert registry_tls.password not in Path(registry_tls.root, name).read_text()


def test_token_registry_challenges_with_our_realm(registry_token: Any) -> None:
    resp = requests.get(registry_token.url + "/v2/", verify=registry_token.ca_path, timeout=5)
    assert resp.status_code == 401
    challenge = _challenge(resp)
    assert challenge["scheme"] == "Bearer"
    assert challenge["realm"] == registry_token.token_server.realm
    assert challenge["realm"].startswith("https://127.0.0.1:")
    assert challenge["service"] == TOKEN_SERVICE


def test_anonymous_token_can_pull_but_not_push(registry_token: Any) -> None:
    ts = registry_token.token_server
    repo = f"harness/anon-{secrets.token_hex(4)}"
    mark = ts.mark()
    resp = _get_token(registry_token, f"repository:{repo}:pull,push")
    assert resp.status_code == 200
    body = resp.json()
    assert body["token"] == body["access_token"] and body["expires_in"] > 0
    claims = _jwt_claims(body["token"])
    assert claims["access"] == [{"type": "repository", "name": repo, "actions": ["pull"]}]
    assert claims["aud"] == TOKEN_SERVICE and claims["sub"] == ""
    bearer = {"Authorization": f"Bearer {body['token']}"}

    # Pull is authorised: the registry looks the repository up and says it does not exist.
    tags = requests.get(f"{registry_token.url}/v2/{repo}/tags/list", headers=bearer, verify=registry_token.ca_path, timeout=5)
    assert tags.status_code == 404
    assert tags.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    # Push is not: the registry asks for a token with push scope.
    upload = requests.post(f"{registry_token.url}/v2/{repo}/blobs/uploads/", headers=bearer, verify=registry_token.ca_path, timeout=5)
    assert upload.status_code == 401
    challenge = _challenge(upload)
    assert challenge.get("error") == "insufficient_scope"
    assert "push" in challenge["scope"]

    seen = ts.requests[mark:]
    assert len(seen) == 1
    assert (seen[0].username, seen[0].status, seen[0].granted) == (None, 200, (("repository", repo, ("pull",)),))


def test_user_token_can_push_and_wrong_password_is_refused(registry_token: Any) -> None:
    ts = registry_token.token_server
    repo = f"harness/user-{secrets.token_hex(4)}"
    mark = ts.mark()
    denied = _get_token(registry_token, f"repository:{repo}:pull,push", auth=(registry_token.username, "wrong"))
    assert denied.status_code == 401
    assert "token" not in denied.text

    resp = _get_token(registry_token, f"repository:{repo}:pull,push", auth=(registry_token.username, registry_token.password))
    assert resp.status_code == 200
    token = resp.json()["token"]
    assert _jwt_claims(token)["access"] == [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    bearer = {"Authorization": f"Bearer {token}"}
    start = requests.post(f"{registry_token.url}/v2/{repo}/blobs/uploads/", headers=bearer, verify=registry_token.ca_path, timeout=5)
    assert start.status_code == 202
    blob = b"harness blob\n"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    location = requests.compat.urljoin(registry_token.url, start.headers["Location"])
    put = requests.put(
        location, params={"digest": digest}, data=blob, headers=dict(bearer, **{"Content-Type": "application/octet-stream"}),
        verify=registry_token.ca_path, timeout=5,
    )
    assert put.status_code == 201
    head = requests.head(f"{registry_token.url}/v2/{repo}/blobs/{digest}", headers=bearer, verify=registry_token.ca_path, timeout=5)
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == digest

    assert [(r.username, r.status) for r in ts.requests[mark:]] == [
        (registry_token.username, 401),
        (registry_token.username, 200),
    ]


def test_token_server_oauth2_post_and_fault_injection(registry_token: Any) -> None:
    ts = registry_token.token_server
    repo = f"harness/oauth-{secrets.token_hex(4)}"
    url, ca = ts.realm, registry_token.ca_path
    form = {"grant_type": "password", "service": TOKEN_SERVICE, "scope": f"repository:{repo}:pull,push",
            "client_id": "harness", "access_type": "offline", "username": registry_token.username,
            "password": registry_token.password}
    resp = requests.post(url, data=form, verify=ca, timeout=5)
    assert resp.status_code == 200
    body = resp.json()
    assert _jwt_claims(body["access_token"])["access"] == [{"type": "repository", "name": repo, "actions": ["pull", "push"]}]
    refreshed = requests.post(
        url, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "service": TOKEN_SERVICE,
                   "scope": f"repository:{repo}:pull", "client_id": "harness"},
        verify=ca, timeout=5,
    )
    assert refreshed.status_code == 200
    assert _jwt_claims(refreshed.json()["access_token"])["sub"] == registry_token.username
    assert requests.post(url, data=dict(form, password="wrong"), verify=ca, timeout=5).status_code == 401
    assert requests.post(url, data=dict(form, grant_type="implicit"), verify=ca, timeout=5).status_code == 400
    ts.force_status = 503
    try:
        assert _get_token(registry_token, f"repository:{repo}:pull").status_code == 503
    finally:
        ts.force_status = None
    assert _get_token(registry_token, f"repository:{repo}:pull").status_code == 200


def test_skopeo_pushes_and_pulls_through_token_auth(registry_token: Any, seeded_registry: Any, tmp_path: Path) -> None:
    """A real client (skopeo) speaks our token server's protocol: push as the user, pull anonymously."""
    ts = registry_token.token_server
    cert_dir = _cert_dir(registry_token, tmp_path)
    dest = f"docker://{registry_token.host}/harness/busybox:copied"
    mark = ts.mark()
    _skopeo([
        "copy", "--quiet", "--src-tls-verify=false", "--dest-cert-dir", cert_dir,
        "--dest-authfile", _authfile(registry_token, tmp_path),
        f"docker://{seeded_registry.ref('busybox')}", dest,
    ])
    assert ts.count > mark
    assert all(r.status == 200 and r.username == registry_token.username for r in ts.requests[mark:])

    raw = _skopeo(["inspect", "--raw", "--cert-dir", cert_dir, dest]).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == seeded_registry.digest("busybox")

    refused = _skopeo([
        "copy", "--quiet", "--src-tls-verify=false", "--dest-cert-dir", cert_dir,
        f"docker://{seeded_registry.ref('busybox')}", f"docker://{registry_token.host}/harness/busybox:anonymous",
    ], check=False)
    assert refused.returncode != 0
    assert b"unauthorized" in refused.stderr.lower() or b"authentication required" in refused.stderr.lower()


def test_registry_factory_stop_leaves_no_process(registry_factory: Any) -> None:
    reg = registry_factory()
    assert reg.ping() == 200 and reg.alive()
    reg.stop()
    assert not reg.alive()
    assert _wait_gone(reg.pid)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(reg.url + "/v2/", timeout=2)
    reg.stop()  # idempotent


def test_registry_cli_start_status_stop(tmp_path: Path) -> None:
    root = tmp_path / "cli"
    script = str(harness.SCRIPTS / "registry.py")
    start = subprocess.run(
        [sys.executable, script, "start", "--root", str(root), "--port", "0", "--tls", "--htpasswd", "cliuser:cli-pass-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert start.returncode == 0, start.stderr
    url = start.stdout.strip()
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", url)
    state = json.loads((root / "registry.json").read_text())
    pid = state["pid"]
    try:
        assert state["url"] == url and state["username"] == "cliuser" and "cli-pass-1" not in json.dumps(state)
        status = subprocess.run([sys.executable, script, "status", "--root", str(root)], capture_output=True, text=True, timeout=30, check=False)
        assert status.returncode == 0 and "401" in status.stdout
        ok = requests.get(url + "/v2/", auth=("cliuser", "cli-pass-1"), verify=state["ca_path"], timeout=5)
        assert ok.status_code == 200
    finally:
        stop = subprocess.run([sys.executable, script, "stop", "--root", str(root)], capture_output=True, text=True, timeout=30, check=False)
    assert stop.returncode == 0
    assert _wait_gone(pid)
    status = subprocess.run([sys.executable, script, "status", "--root", str(root)], capture_output=True, text=True, timeout=30, check=False)
    assert status.returncode == 1
    assert not (root / "registry.pid").exists()


def test_registry_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A pytest killed with SIGKILL leaves no registry behind (PR_SET_PDEATHSIG)."""
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(harness.__file__).parent)!r})
        import harness
        reg = harness.load_script("registry").start_registry({str(tmp_path / "orphan")!r})
        print(reg.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert os.path.exists(f"/proc/{pid}")
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        parent.stdout.close()
    assert _wait_gone(pid), f"registry {pid} outlived its parent"


# --- seeded images ----------------------------------------------------------------------------------------


def test_seeded_images_match_skopeo_inspect(seeded_registry: Any) -> None:
    images = seeded_registry.images
    assert set(images) == {"busybox", "layers", "multi", "zstd"}
    raws = {}
    for name, info in images.items():
        assert info["reference"].startswith(seeded_registry.registry.host + "/")
        raw = _skopeo(["inspect", "--raw", "--tls-verify=false", f"docker://{info['reference']}"]).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == info["digest"], name
        raws[name] = json.loads(raw)
        assert raws[name]["mediaType"] == info["media_type"], name

    assert images["busybox"]["reference"].endswith("/library/busybox:latest")
    config = json.loads(_skopeo(["inspect", "--config", "--tls-verify=false", f"docker://{images['busybox']['reference']}"]).stdout)
    assert config["config"]["Cmd"] == ["sh"] and config["architecture"] == "amd64"

    assert len(raws["layers"]["layers"]) == 3
    assert {layer["mediaType"] for layer in raws["layers"]["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    assert [layer["mediaType"] for layer in raws["zstd"]["layers"]] == ["application/vnd.oci.image.layer.v1.tar+zstd"]

    platforms = {}
    for m in raws["multi"]["manifests"]:
        p = m["platform"]
        platforms["/".join(filter(None, (p["os"], p["architecture"], p.get("variant"))))] = m["digest"]
    assert platforms == images["multi"]["platforms"]
    assert set(platforms) == {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    assert platforms["linux/amd64"] == images["busybox"]["oci_digest"]
    for key, digest in platforms.items():
        repo = images["multi"]["reference"].rsplit(":", 1)[0]
        raw = _skopeo(["inspect", "--raw", "--tls-verify=false", f"docker://{repo}@{digest}"]).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest, key


def test_seeding_again_pushes_the_same_digests(seeded_registry: Any, tmp_path: Path) -> None:
    assert run_seed(seeded_registry.registry, tmp_path / "again") == seeded_registry.images


def test_seed_over_tls_with_basic_auth_gives_the_same_digest(registry_tls: Any, seeded_registry: Any, tmp_path: Path) -> None:
    """Builds are reproducible, and the script pushes over https with a CA and credentials too."""
    images = run_seed(registry_tls, tmp_path / "layout", images="layers")
    assert images["layers"]["digest"] == seeded_registry.digest("layers")
    assert images["layers"]["reference"] == f"{registry_tls.host}/test/layers:1"


@pytest.mark.root
def test_layers_image_unpacks_as_documented(seeded_registry: Any, tmp_path: Path) -> None:
    """umoci (the oracle) flattens test/layers:1 into what seed_images.py's docstring promises."""
    layout = tmp_path / "oci"
    _skopeo(["copy", "--quiet", "--src-tls-verify=false", f"docker://{seeded_registry.ref('layers')}", f"oci:{layout}:layers"])
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:layers", str(bundle)], check=True, capture_output=True, timeout=60)
    root = bundle / "rootfs"
    assert (root / "etc/hostname").read_text() == "layers v2\n"
    assert not (root / "keep/deleted.txt").exists() and (root / "keep/kept.txt").exists()
    assert sorted(os.listdir(root / "gone-dir")) == ["new.txt"]
    assert sorted(os.listdir(root / "opaque")) == ["upper.txt"]
    assert (root / "flip").is_dir() and (root / "flip/inside.txt").read_text() == "inside\n"
    assert (root / "usr/bin/tool").read_text().endswith("tool v2\n")
    assert (root / "usr/bin/tool-hardlink").read_text().endswith("tool v1\n")
    new, link = (root / "home/user/new.txt").stat(), (root / "home/user/new-link.txt").stat()
    assert new.st_ino == link.st_ino and (new.st_uid, new.st_gid, new.st_mode & 0o7777) == (1000, 1000, 0o600)
    assert os.readlink(root / "etc/hostname-abs") == "/etc/hostname"
    assert os.readlink(root / "bin/up-rel") == "../usr/bin/tool"
    assert os.readlink(root / "dangling") == "/nonexistent"
    assert (root / "usr/bin/tool-rel").is_file() and not (root / "usr/bin/tool-rel").is_symlink()
    assert (root / "usr/bin/setuid-tool").stat().st_mode & 0o7777 == 0o4755
    setgid = (root / "usr/bin/setgid-tool").stat()
    assert (setgid.st_mode & 0o7777, setgid.st_gid) == (0o2755, 50)
    assert (root / "secret").stat().st_mode & 0o7777 == 0o700
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    home = (root / "home/user").stat()
    assert (home.st_uid, home.st_gid, home.st_mode & 0o7777) == (1000, 1000, 0o750)
    assert (root / "var/lib/nobody-owned").stat().st_uid == 65534
    assert os.getxattr(root / "xattr-file", "user.dockerless") == b"seed"


# --- running Ansible --------------------------------------------------------------------------------------


def test_collection_env_finds_the_checkout(collection_env: dict[str, str]) -> None:
    assert collection_env["ANSIBLE_COLLECTIONS_PATH"] == str(harness.COLLECTIONS_PATH)
    proc = subprocess.run(
        [str(harness.VENV_BIN / "ansible-galaxy"), "collection", "list", "dockerless.containers", "--format", "json"],
        env=collection_env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    paths = [p for p, colls in found.items() if "dockerless.containers" in colls]
    assert paths == [str(harness.COLLECTIONS_PATH / "ansible_collections")]
    assert Path(paths[0], "dockerless", "containers").resolve() == harness.CHECKOUT


def test_run_module_ping_passes_arguments_literally(run_module: Any) -> None:
    result = run_module("ansible.builtin.ping", {"data": "{{ not_templated }}"})
    assert result["failed"] is False and result["changed"] is False
    assert result["ping"] == "{{ not_templated }}"
    assert result["diff"] is None and result["msg"] == ""
    assert result.status == "ok" and result.rc == 0


def test_run_module_reports_failures(run_module: Any) -> None:
    result = run_module("ansible.builtin.ping", {"data": "crash"})
    assert result["failed"] is True and "boom" in result["msg"]
    assert result.status == "failed" and result.rc == 2


def test_run_module_check_mode_and_diff(run_module: Any, tmp_path: Path) -> None:
    dest = tmp_path / "file.txt"
    checked = run_module("ansible.builtin.copy", {"content": "hello\n", "dest": str(dest)}, check=True, diff=True)
    assert checked["failed"] is False and checked["changed"] is True
    assert not dest.exists()
    assert checked["diff"][0]["after"] == "hello\n"
    real = run_module("ansible.builtin.copy", {"content": "hello\n", "dest": str(dest)})
    assert real["changed"] is True and dest.read_text() == "hello\n"


def test_run_module_unknown_module_raises(run_module: Any) -> None:
    with pytest.raises(harness.HarnessError, match="couldn't resolve module"):
        run_module("no_such_module", {})


def test_run_playbook_returns_every_task(run_playbook: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent(
            """
            - hosts: localhost
              gather_facts: false
              tasks:
                - name: ping with an extra var
                  ansible.builtin.ping:
                    data: "{{ word }}"
                - name: a failure that is ignored
                  ansible.builtin.command: /bin/false
                  ignore_errors: true
                - name: skipped
                  ansible.builtin.ping:
                  when: false
            """
        )
    )
    run = run_playbook(playbook, {"word": "hello"})
    assert run.rc == 0 and not run.failed
    assert [(t.task, t.status) for t in run] == [
        ("ping with an extra var", "ok"),
        ("a failure that is ignored", "failed"),
        ("skipped", "skipped"),
    ]
    assert run.named("ping with an extra var")[0].result["ping"] == "hello"
    assert run.named("a failure that is ignored")[0].ignore_errors is True
