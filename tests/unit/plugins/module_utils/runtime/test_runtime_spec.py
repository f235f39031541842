# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""runtime_spec: Docker's merge rules for command/env/user, option validation, the idempotence diff."""

from __future__ import annotations

import os

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import boot_id
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import (
    build_spec,
    env_digests,
    merge_env,
    parse_tmpfs,
    parse_ulimit,
    parse_volume,
    resolve_argv,
    resolve_capabilities,
    spec_diff,
    validate_name,
    validate_user,
)

IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["serve", "--port", "80"], "Env": ["PATH=/usr/bin:/bin", "A=1"],
         "WorkingDir": "/app", "User": "app"}


@pytest.mark.parametrize("command, entrypoint, expected", [
    (None, None, ["/entry", "serve", "--port", "80"]),
    (["run", "x"], None, ["/entry", "run", "x"]),
    ("run 'a b'", None, ["/entry", "run", "a b"]),
    (None, ["/bin/sh"], ["/bin/sh"]),                      # --entrypoint drops the image's Cmd
    (["-c", "true"], "/bin/sh", ["/bin/sh", "-c", "true"]),
])
def test_resolve_argv_follows_docker(command, entrypoint, expected):
    assert resolve_argv(IMAGE, command, entrypoint) == expected


def test_resolve_argv_without_anything_is_refused():
    with pytest.raises(RuntimeSetupError, match="neither Entrypoint nor Cmd"):
        resolve_argv({}, None, None)


def test_merge_env_overrides_and_keeps_order():
    env = merge_env(["PATH=/bin", "A=1", "B=x=y"], {"A": 2, "C": True, "D": ""})
    assert list(env.items()) == [("PATH", "/bin"), ("A", "2"), ("B", "x=y"), ("C", "true"), ("D", "")]


@pytest.mark.parametrize("bad", [{"": "x"}, {"A=B": "x"}, {"A": None}, {"A": "a\0b"}])
def test_merge_env_refuses_bad_entries(bad):
    with pytest.raises(RuntimeSetupError):
        merge_env([], bad)


def test_parse_volume(tmp_path):
    st = os.stat(tmp_path)
    assert parse_volume(f"{tmp_path}:/data:ro") == {"source": str(tmp_path), "target": "/data", "read_only": True,
                                                    "dev": st.st_dev, "ino": st.st_ino, "boot": boot_id(),
                                                    "host_path": str(tmp_path)}
    assert parse_volume(f"{tmp_path}:/data/")["read_only"] is False
    # lxcfs's files are the only /proc paths a volume may cover (runc's rule)
    assert parse_volume(f"{tmp_path}:/proc/cpuinfo")["target"] == "/proc/cpuinfo"
    with pytest.raises(RuntimeSetupError, match="refused"):
        parse_tmpfs("/proc/sys")


def test_a_record_without_volume_pins_compares_equal(tmp_path):
    # Records made before sources were pinned (no dev/ino) are not recreated for it.
    spec = build_spec(image_config={"Cmd": ["true"]}, lower_dirs=["/l"], volumes=[f"{tmp_path}:/data"])
    before = spec.as_dict()
    before["volumes"] = [{"source": str(tmp_path), "target": "/data", "read_only": False}]
    assert spec_diff(before, spec) == {}


@pytest.mark.parametrize("text, match", [
    ("relative:/data", "absolute"),
    ("/nonexistent-dockerless-xyz:/data", "does not exist"),
    ("{tmp}:data", "absolute path inside"),
    ("{tmp}:/a/../etc", r"'\.\.'"),
    ("{tmp}:/", "over the container's /"),
    ("{tmp}:/data:rx", "mode"),
    ("{tmp}", "expected"),
])
def test_parse_volume_refuses(tmp_path, text, match):
    with pytest.raises(RuntimeSetupError, match=match):
        parse_volume(text.format(tmp=tmp_path))


def test_parse_tmpfs_and_ulimit():
    assert parse_tmpfs("/run:size=64m,mode=755") == {"target": "/run", "options": "size=64m,mode=755"}
    assert parse_ulimit("nofile=1024:2048") == {"name": "nofile", "soft": 1024, "hard": 2048}
    assert parse_ulimit("core=unlimited") == {"name": "core", "soft": -1, "hard": -1}
    with pytest.raises(RuntimeSetupError, match="soft limit is above"):
        parse_ulimit("nofile=4096:1024")
    with pytest.raises(RuntimeSetupError, match="expected name"):
        parse_ulimit("bogus=1")


def test_capabilities_default_add_drop_all():
    assert set(resolve_capabilities(None, None)) == set(DEFAULT_CAPABILITIES)
    caps = resolve_capabilities(["net_admin"], ["CAP_MKNOD", "chown"])
    assert "CAP_NET_ADMIN" in caps and "CAP_MKNOD" not in caps and "CAP_CHOWN" not in caps
    assert resolve_capabilities(["KILL"], ["ALL"]) == ["CAP_KILL"]
    assert len(resolve_capabilities(["ALL"], None)) == 41
    with pytest.raises(RuntimeSetupError, match="unknown"):
        resolve_capabilities(["CAP_FLY"], None)


@pytest.mark.parametrize("user", ["4294967295", "2147483648", "0:4294967296", "-1", "a/b"])
def test_validate_user_refuses_out_of_range(user):
    with pytest.raises(RuntimeSetupError):
        validate_user(user)


def test_validate_user_and_name_accept_valid():
    assert validate_user("1000:1000") == "1000:1000"
    assert validate_user("www-data") == "www-data"
    assert validate_name("web-1.a_b") == "web-1.a_b"
    for bad in ("", "-x", "a/b", "x" * 129, "a b"):
        with pytest.raises(RuntimeSetupError):
            validate_name(bad)


def test_build_spec_merges_image_config():
    spec = build_spec(image_config=IMAGE, lower_dirs=["/l2", "/l1"], image="docker.io/library/x:1",
                      image_digest="sha256:" + "a" * 64, env={"A": "2"}, name="web")
    assert spec.argv == ["/entry", "serve", "--port", "80"]
    assert spec.env == {"PATH": "/usr/bin:/bin", "A": "2"}
    assert (spec.workdir, spec.user, spec.hostname) == ("/app", "app", "web")
    assert spec.namespaces == ["pid", "mount", "uts", "ipc", "net", "cgroup"]
    config = spec.init_config("id1", "/store/containers/web", name="web")
    assert config["rootfs"]["lower"] == ["/l2", "/l1"]
    assert config["rootfs"]["upper"] == "/store/containers/web/upper"
    assert config["env"] == ["PATH=/usr/bin:/bin", "A=2"]


def test_build_spec_without_published_ports_records_none():
    spec = build_spec(image_config=IMAGE, lower_dirs=["/l"])
    assert spec.published_ports == [] and spec.compared()["published_ports"] == []


def test_build_spec_network_host_and_chroot():
    assert "net" not in build_spec(image_config=IMAGE, lower_dirs=["/l"], network="host").namespaces
    assert build_spec(image_config=IMAGE, lower_dirs=["/l"], isolation="chroot").namespaces == ["mount"]


def test_chroot_isolation_never_grants_cap_sys_chroot():
    # With it, chroot into a subdirectory + ".." + chroot(".") leaves the image for the host's /.
    chroot = build_spec(image_config=IMAGE, lower_dirs=["/l"], isolation="chroot")
    assert "CAP_SYS_CHROOT" not in chroot.capabilities and "CAP_SYS_CHROOT" not in chroot.effective_capabilities()
    assert "CAP_SYS_CHROOT" not in chroot.init_config("id1", "/c")["capabilities"]
    assert "CAP_SYS_CHROOT" in build_spec(image_config=IMAGE, lower_dirs=["/l"]).capabilities
    assert "CAP_SYS_CHROOT" not in build_spec(image_config=IMAGE, lower_dirs=["/l"], isolation="chroot",
                                              cap_add=["ALL"]).capabilities
    for name in ("SYS_CHROOT", "cap_sys_chroot"):
        with pytest.raises(RuntimeSetupError, match="cap_add SYS_CHROOT: refused with isolation 'chroot'"):
            build_spec(image_config=IMAGE, lower_dirs=["/l"], isolation="chroot", cap_add=[name])


@pytest.mark.parametrize("kwargs, match", [
    ({"workdir": "/proc/self/fd/7"}, "under /proc"),
    ({"workdir": "relative"}, "absolute"),
    ({"volumes": ["/tmp:/proc"]}, "a mount on /proc is refused"),
    ({"volumes": ["/tmp:/proc/sys/kernel:ro"]}, "a mount on /proc/sys/kernel is refused"),
    ({"tmpfs": ["/proc"]}, "a mount on /proc is refused"),
    ({"volumes": ["/tmp:/proc/../proc"]}, "'..' and NUL are not allowed"),
    ({"hostname": "bad_host!"}, "hostname"),
    ({"namespaces": ["pid", "net"]}, "'mount' is required"),
    ({"namespaces": ["mount", "time"]}, "unknown"),
    ({"restart_policy": "sometimes"}, "restart_policy"),
    ({"isolation": "vm"}, "isolation"),
    ({"limits": {"swap": 1}}, "unknown"),
    ({"user": "99999999999"}, "out of range"),
    ({"lower_dirs": []}, "no layer folders"),
    ({"published_ports": ["8080:80"], "network": "none"}, "published_ports: a container on network .none. has no address to publish to"),
    ({"published_ports": ["8080:80"], "network": "host"}, "on network 'host' has no address"),
])
def test_build_spec_refuses(kwargs, match):
    args = {"image_config": IMAGE, "lower_dirs": ["/l"]}
    args.update(kwargs)
    with pytest.raises(RuntimeSetupError, match=match):
        build_spec(**args)


def test_spec_diff_names_changed_keys_only():
    before = build_spec(image_config=IMAGE, lower_dirs=["/l"], env={"A": "1"})
    after = build_spec(image_config=IMAGE, lower_dirs=["/l"], env={"A": "2"}, limits={"memory": "64m"},
                       stop_timeout=99)
    diff = spec_diff(before.compared(), after)
    assert set(diff) == {"env", "limits"}
    assert diff["limits"] == {"before": {}, "after": {"memory": "64m"}}
    assert spec_diff(after.compared(), after) == {}
    assert set(spec_diff(None, after)) >= {"image", "argv", "env"}


SECRET = "pa55-W0RD-never-shown"


def test_spec_diff_shows_env_keys_and_value_digests_only():
    """A changed secret is a visible change (its digest differs) and never its value; the comparison itself is
    of the values."""
    before = build_spec(image_config=IMAGE, lower_dirs=["/l"], env={"DB_PASSWORD": SECRET, "A": "1"})
    after = build_spec(image_config=IMAGE, lower_dirs=["/l"], env={"DB_PASSWORD": SECRET + "2", "A": "1"})
    diff = spec_diff(before.compared(), after)
    assert set(diff) == {"env"} and SECRET not in repr(diff)
    shown_before, shown_after = diff["env"]["before"], diff["env"]["after"]
    assert [item.split("=")[0] for item in shown_after] == sorted(after.env)
    assert shown_before != shown_after and shown_before[0] == shown_after[0]  # A unchanged, DB_PASSWORD changed
    assert SECRET not in repr(spec_diff(None, after))
    assert spec_diff(after.compared(), after) == {}


@pytest.mark.parametrize("env, shown", [
    ({"K": "v"}, ["K=sha256:" + "4c94485e0c21"]),
    (["K=v", "A=="], ["A=sha256:" + "380918b946a5", "K=sha256:" + "4c94485e0c21"]),
    ({"EMPTY": ""}, ["EMPTY=sha256:" + "e3b0c44298fc"]),
    ({}, []),
    (None, None),
])
def test_env_digests(env, shown):
    assert env_digests(env) == shown


def test_userns_comes_first_and_defaults_to_the_callers_identity():
    spec = build_spec(image_config=IMAGE, lower_dirs=["/l"], userns=True)
    assert spec.namespaces[0] == "user" and spec.userns
    auto = build_spec(image_config=IMAGE, lower_dirs=["/l"], userns=None)
    assert auto.userns is (os.geteuid() != 0)
    assert build_spec(image_config=IMAGE, lower_dirs=["/l"], isolation="chroot", userns=True).namespaces == [
        "user", "mount"]
