# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credential resolution: parameters → environment → config.json (credHelpers, credsStore, auths)."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import (
    Credentials,
    registry_key,
    resolve_credentials,
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _config(tmp_path, data) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_parameters_win_over_everything(tmp_path):
    path = _config(tmp_path, {"auths": {"r.example:5000": {"auth": _b64("cfg:cfgpw")}}})
    env = {"DOCKER_USERNAME": "envu", "DOCKER_PASSWORD": "envpw"}
    creds = resolve_credentials("r.example:5000", "alice", "s3cret", path, env)
    assert (creds.username, creds.password, creds.source) == ("alice", "s3cret", "parameters")


@pytest.mark.parametrize("username,password", [("alice", None), (None, "pw"), ("", "pw")])
def test_half_given_parameters_are_an_error(username, password):
    with pytest.raises(DockerlessError, match="missing; give both username and password"):
        resolve_credentials("r.example", username, password, env={})


def test_environment_before_config(tmp_path):
    path = _config(tmp_path, {"auths": {"r.example": {"auth": _b64("cfg:cfgpw")}}})
    creds = resolve_credentials("r.example", auth_file=path,
                                env={"DOCKER_USERNAME": "envu", "DOCKER_PASSWORD": "envpw"})
    assert (creds.username, creds.password, creds.source) == ("envu", "envpw", "environment")


def test_half_environment_is_ignored_with_a_note(tmp_path):
    path = _config(tmp_path, {"auths": {"r.example": {"auth": _b64("cfg:cfg:pw")}}})
    creds = resolve_credentials("r.example", auth_file=path, env={"DOCKER_USERNAME": "envu"})
    # The password keeps everything after the first ':'.
    assert (creds.username, creds.password, creds.source) == ("cfg", "cfg:pw", f"config.json:{path}")
    assert any("DOCKER_USERNAME/DOCKER_PASSWORD" in n for n in creds.notes)


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "docker.io", "registry-1.docker.io", "index.docker.io"])
@pytest.mark.parametrize("registry", ["registry-1.docker.io", "docker.io", "index.docker.io"])
def test_docker_hub_keys_all_match(tmp_path, key, registry):
    path = _config(tmp_path, {"auths": {key: {"auth": _b64("hubuser:hubpw")}}})
    creds = resolve_credentials(registry, auth_file=path, env={})
    assert (creds.username, creds.password) == ("hubuser", "hubpw")


def test_username_password_fields_and_key_forms(tmp_path):
    path = _config(tmp_path, {"auths": {"http://Reg.Example:5000/v2/": {"username": "u", "password": "p"}}})
    creds = resolve_credentials("reg.example:5000", auth_file=path, env={})
    assert (creds.username, creds.password) == ("u", "p")
    # Another port is another registry.
    assert resolve_credentials("reg.example:5001", auth_file=path, env={}).anonymous


def test_default_paths_docker_config_then_home(tmp_path):
    dc = tmp_path / "dc"
    dc.mkdir()
    (dc / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": _b64("a:1")}}}))
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": _b64("b:2")}}}))
    assert resolve_credentials("r.example", env={"DOCKER_CONFIG": str(dc), "HOME": str(home)}).username == "a"
    creds = resolve_credentials("r.example", env={"HOME": str(home)})
    assert creds.username == "b"
    assert creds.source == f"config.json:{home}/.docker/config.json"


def test_no_config_is_anonymous(tmp_path):
    creds = resolve_credentials("r.example", env={"HOME": str(tmp_path)})
    assert creds.anonymous and creds.source == "anonymous"
    assert any("does not exist" in n for n in creds.notes)


def test_explicit_missing_auth_file_is_an_error(tmp_path):
    with pytest.raises(DockerlessError, match="does not exist. Fix auth_file"):
        resolve_credentials("r.example", auth_file=str(tmp_path / "nope.json"), env={})


def test_malformed_config_names_the_file_not_the_content(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"auths": {"r.example": {"auth": "c2VjcmV0LXZhbHVl"}, }')
    with pytest.raises(DockerlessError) as info:
        resolve_credentials("r.example", auth_file=str(path), env={})
    assert str(path) in str(info.value) and "not valid JSON" in str(info.value)
    assert "c2VjcmV0" not in str(info.value)


def test_bad_auth_entries_are_skipped_with_notes(tmp_path):
    path = _config(tmp_path, {"auths": {"a.example": {"auth": "!!notbase64"}, "b.example": {"auth": _b64("nocolon")},
                                        "c.example": {"identitytoken": "xyz"}, "d.example": {}}})
    for registry, note in [("a.example", "not base64"), ("b.example", "without 'user:password'"),
                           ("c.example", "identity token"), ("d.example", "holds no credentials")]:
        creds = resolve_credentials(registry, auth_file=path, env={})
        assert creds.anonymous
        assert any(note in n for n in creds.notes), creds.notes
        assert "xyz" not in creds.describe()


def test_secret_never_in_repr_or_describe():
    creds = Credentials("bob", "hunter2", "parameters")
    assert "hunter2" not in repr(creds) and "hunter2" not in creds.describe() and "hunter2" not in str(creds)
    assert "bob" in creds.describe() and "parameters" in creds.describe()


def _helper(tmp_path, name: str, script: str) -> dict[str, str]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = bindir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '')}"}


def test_cred_helper_is_run_with_the_server_url(tmp_path, monkeypatch):
    log = tmp_path / "stdin.txt"
    env = _helper(tmp_path, "fake", f'[ "$1" = get ] || exit 3\ncat > {log}\n'
                                    'echo \'{"ServerURL":"x","Username":"helperuser","Secret":"helperpw"}\'\n')
    monkeypatch.setenv("PATH", env["PATH"])
    path = _config(tmp_path, {"credHelpers": {"registry-1.docker.io": "fake"},
                              "auths": {"docker.io": {"auth": _b64("cfg:cfgpw")}}})
    creds = resolve_credentials("registry-1.docker.io", auth_file=path, env={})
    assert (creds.username, creds.password) == ("helperuser", "helperpw")
    assert creds.source == "credential-helper:docker-credential-fake"
    assert log.read_text() == "https://index.docker.io/v1/"


def test_creds_store_then_auths_when_store_has_nothing(tmp_path, monkeypatch):
    env = _helper(tmp_path, "store", "echo 'credentials not found in native keychain'\nexit 1\n")
    monkeypatch.setenv("PATH", env["PATH"])
    path = _config(tmp_path, {"credsStore": "store", "auths": {"r.example:5000": {"auth": _b64("cfg:cfgpw")}}})
    creds = resolve_credentials("r.example:5000", auth_file=path, env={})
    assert (creds.username, creds.source) == ("cfg", f"config.json:{path}")
    assert any("docker-credential-store has no credentials" in n for n in creds.notes)


def test_missing_helper_is_ignored_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    path = _config(tmp_path, {"credHelpers": {"r.example": "absent-helper"}})
    creds = resolve_credentials("r.example", auth_file=path, env={})
    assert creds.anonymous
    assert any("docker-credential-absent-helper is not on PATH" in n for n in creds.notes)
    assert "docker-credential-absent-helper is not on PATH" in creds.describe()


def test_helper_name_cannot_escape_to_a_path(tmp_path):
    path = _config(tmp_path, {"credsStore": "../../bin/sh"})
    creds = resolve_credentials("r.example", auth_file=path, env={})
    assert creds.anonymous and any("invalid" in n for n in creds.notes)


@pytest.mark.parametrize("text,key", [
    ("https://index.docker.io/v1/", "docker.io"), ("registry-1.docker.io", "docker.io"),
    ("HTTP://Reg.example:5000/v2/", "reg.example:5000"), ("127.0.0.1:5000", "127.0.0.1:5000"),
])
def test_registry_key(text, key):
    assert registry_key(text) == key


def test_no_secret_in_the_repr_of_any_record_that_holds_one():
    """Credentials, RegistryOptions and the registry's bearer token are records without dataclasses (a pull
    imports less); their secrets stay out of repr as field(repr=False) kept them out."""
    from ansible_collections.dockerless.containers.plugins.module_utils.registry import auth
    from ansible_collections.dockerless.containers.plugins.module_utils.registry import options as registry

    assert "hunter2" not in repr(registry.RegistryOptions(username="me", password="hunter2"))
    assert "me" in repr(registry.RegistryOptions(username="me", password="hunter2"))
    token = auth.Token("hunter2", frozenset({"repository:a:pull"}), 1.0)
    assert "hunter2" not in repr(token) and "repository:a:pull" in repr(token)
    assert registry.RegistryOptions(password="x") == registry.RegistryOptions(password="x")
    assert registry.RegistryOptions(password="x") != registry.RegistryOptions(password="y")
