# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""/etc/hostname, /etc/hosts and /etc/resolv.conf of a container: the pure builders, then real containers (one-shot
and named) reading their files on the real kernel."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.network import etc_files
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import containers as runtime_containers
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec, parse_etc_hosts

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def real_kernel(test):
    """Marks of a test that starts real containers."""
    test = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)")(test)
    test = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts")(test)
    return pytest.mark.root(test)


STUB = "# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
UPSTREAM = "nameserver 192.168.1.1\nnameserver 2001:db8::1\nsearch corp.example\n"


@pytest.mark.parametrize("host, own_network, kwargs, expected", [
    # A local stub in a network namespace of its own: systemd-resolved's upstream list instead.
    (STUB, True, {"systemd_text": UPSTREAM},
     "nameserver 192.168.1.1\nnameserver 2001:db8::1\nsearch lan\noptions edns0 trust-ad\n"),
    # Loopback only, no upstream list: Docker's fallback.
    ("nameserver 127.0.0.1\nnameserver ::1\n", True, {}, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
    # Loopback servers dropped, the others kept.
    ("nameserver 127.0.0.1\nnameserver 10.0.0.2\n", True, {}, "nameserver 10.0.0.2\n"),
    # The host's network reaches the stub: kept as it is.
    (STUB, False, {"systemd_text": UPSTREAM}, "nameserver 127.0.0.53\nsearch lan\noptions edns0 trust-ad\n"),
    # The options win; "." means no search domain.
    (STUB, True, {"dns_servers": ["1.1.1.1"], "dns_search": ["."]}, "nameserver 1.1.1.1\noptions edns0 trust-ad\n"),
    ("nameserver 10.0.0.2\nsearch a b\n", True, {"dns_search": ["x.example"]},
     "nameserver 10.0.0.2\nsearch x.example\n"),
])
def test_resolv_conf(host, own_network, kwargs, expected):
    assert etc_files.resolv_conf(host, own_network=own_network, **kwargs) == expected


def test_hosts_lines():
    text = etc_files.hosts(own_names=["web", "web", "0123456789ab"], extra={"db": "10.0.0.5", "cache": "10.0.0.6"})
    assert text.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert text.endswith("10.0.0.6\tcache\n10.0.0.5\tdb\n127.0.1.1\tweb 0123456789ab\n")
    on_host = etc_files.hosts(own_names=["h"], host_text="10.1.1.1 router")
    assert on_host == "10.1.1.1 router\n127.0.1.1\th\n"


@pytest.mark.parametrize("given, expected", [
    (["db:10.0.0.5", "v6=2001:db8::1", "x:[2001:db8::2]"], {"db": "10.0.0.5", "v6": "2001:db8::1", "x": "2001:db8::2"}),
    ({"db": "010.0.0.5 "}, None),
    (["db"], None),
    (["bad_name:10.0.0.1"], None),
    (["gw:host-gateway"], None),
])
def test_parse_etc_hosts(given, expected):
    if expected is None:
        with pytest.raises(RuntimeSetupError, match="etc_hosts"):
            parse_etc_hosts(given)
    else:
        assert parse_etc_hosts(given) == expected


def test_build_spec_validates_dns_options():
    spec = build_spec(lower_dirs=["/x"], image_config={}, command=["true"], dns_servers=["2001:DB8::1"],
                      dns_search_domains=["Example.org"])
    assert spec.dns_servers == ["2001:db8::1"] and spec.dns_search_domains == ["Example.org"]
    with pytest.raises(RuntimeSetupError, match="dns_servers 'nope'"):
        build_spec(lower_dirs=["/x"], image_config={}, command=["true"], dns_servers=["nope"])
    with pytest.raises(RuntimeSetupError, match="dns_search_domains"):
        build_spec(lower_dirs=["/x"], image_config={}, command=["true"], dns_search_domains=["a b"])


def test_etc_mounts_leave_a_users_mount_alone(tmp_path):
    mounts = etc_files.etc_mounts(str(tmp_path), taken_targets=["/etc/hosts/"])
    assert [m["target"] for m in mounts] == ["/etc/hostname", "/etc/resolv.conf"]
    assert all(os.path.dirname(m["source"]) == os.path.realpath(tmp_path) for m in mounts)


# -- real containers ------------------------------------------------------------------------------------------

SHOW = ("hostname; echo \"env=$HOSTNAME\"; echo '== hostname'; cat /etc/hostname; echo '== hosts'; cat /etc/hosts; "
        "echo '== resolv'; cat /etc/resolv.conf; echo '== end'")


def _sections(text: str) -> dict[str, str]:
    out, name = {"head": []}, "head"
    for line in text.splitlines():
        if line.startswith("== "):
            name = line[3:]
            out[name] = []
        else:
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    from test_runtime import make_busybox_rootfs

    root = make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))
    for name in ("proc", "dev", "sys"):   # as images have them: the init makes none in a slot's upper dir
        os.mkdir(os.path.join(root, name))
    return root


def _spec(rootfs, command, **kwargs):
    kwargs.setdefault("network", "none")   # the files without a bridge (test_attach.py has them with one)
    return build_spec(lower_dirs=[rootfs], image_config={"Env": ["PATH=/bin"]}, command=command, **kwargs)


@real_kernel
def test_one_shot_gets_its_id_as_hostname_and_the_three_files(rootfs, tmp_path, monkeypatch):
    host = tmp_path / "host"
    host.mkdir()
    (host / "resolv.conf").write_text("nameserver 127.0.0.53\nsearch lan\n")
    (host / "systemd.conf").write_text("nameserver 10.9.8.7\n")
    monkeypatch.setattr(etc_files, "HOST_RESOLV_CONF", str(host / "resolv.conf"))
    monkeypatch.setattr(etc_files, "SYSTEMD_RESOLV_CONF", str(host / "systemd.conf"))
    runtime = Runtime(str(tmp_path / "store"))
    result = runtime.run(_spec(rootfs, ["/bin/sh", "-c", SHOW], etc_hosts={"db": "10.0.0.5"}), timeout=20)
    assert result.rc == 0, result.stderr
    out = _sections(result.stdout.decode())
    short = result.id[:12]
    assert out["head"].splitlines() == [short, f"env={short}"]
    assert out["hostname"] == short
    assert out["hosts"].splitlines()[0] == "127.0.0.1\tlocalhost"
    assert out["hosts"].splitlines()[-2:] == ["10.0.0.5\tdb", f"127.0.1.1\t{short}"]
    assert out["resolv"] == "nameserver 10.9.8.7\nsearch lan"
    # The image's /etc was not written: the files are mounts over it, and they live beside the slot.
    assert sorted(os.listdir(os.path.join(rootfs, "etc"))) == ["group", "passwd"]
    containers = tmp_path / "store" / "containers"
    assert sorted(os.listdir(containers)) == [".one-shot-0", ".one-shot-0.etc"]
    assert sorted(os.listdir(containers / ".one-shot-0.etc")) == sorted(etc_files.ETC_FILES)
    # The next run in the same slot gets its own id in the same files.
    again = runtime.run(_spec(rootfs, ["cat", "/etc/hostname"]), timeout=20)
    assert again.stdout.decode() == again.id[:12] + "\n" != result.id[:12] + "\n"


@real_kernel
def test_a_fresh_one_shot_folder_takes_its_etc_files_along(rootfs, tmp_path):
    runtime = Runtime(str(tmp_path / "store"))
    result = runtime.run(_spec(rootfs, ["cat", "/etc/hosts"], namespaces=["mount", "uts", "net", "ipc"]),
                         timeout=20)
    assert result.rc == 0, result.stderr
    assert result.stdout.decode().endswith(f"127.0.1.1\t{result.id[:12]}\n")
    assert os.listdir(tmp_path / "store" / "containers") == []


@real_kernel
def test_host_network_keeps_the_hosts_resolv_conf(rootfs, tmp_path):
    runtime = Runtime(str(tmp_path / "store"))
    result = runtime.run(_spec(rootfs, ["cat", "/etc/resolv.conf"], network="host"), timeout=20)
    assert result.rc == 0, result.stderr
    with open("/etc/resolv.conf") as handle:
        servers = etc_files.parse_resolv_conf(handle.read())[0]
    assert etc_files.parse_resolv_conf(result.stdout.decode())[0] == servers


@real_kernel
def test_named_container_files_and_a_users_own_mount(rootfs, tmp_path):
    runtime = Runtime(str(tmp_path / "store"))
    mine = tmp_path / "my-resolv.conf"
    mine.write_text("nameserver 10.1.2.3\n")
    spec = _spec(rootfs, ["/bin/sh", "-c", SHOW], name="web", dns_servers=["192.0.2.1"],
                 dns_search_domains=["svc.example"], volumes=[f"{mine}:/etc/resolv.conf:ro"])
    runtime.create("web", spec)
    info = runtime.start("web")
    info = runtime.wait("web", 20)
    assert info.exit_code == 0
    out = _sections(runtime.logs("web")[0].decode())
    record_id = info.id[:12]
    assert out["head"].splitlines() == ["web", "env=web"]
    assert out["hosts"].splitlines()[-1] == f"127.0.1.1\tweb {record_id}"
    assert out["resolv"] == "nameserver 10.1.2.3"       # the user's mount wins over ours
    etc = tmp_path / "store" / "containers" / "web" / "etc"
    assert (etc / "resolv.conf").read_text() == "nameserver 192.0.2.1\nsearch svc.example\n"
    assert runtime.remove("web")
    assert not os.path.exists(tmp_path / "store" / "containers" / "web")


def test_no_recreate_for_a_container_recorded_before_the_dns_options():
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import spec_diff

    spec = build_spec(lower_dirs=["/x"], image_config={}, command=["true"])
    old = {k: v for k, v in spec.as_dict().items() if k not in ("dns_servers", "dns_search_domains", "etc_hosts")}
    assert spec_diff(old, spec) == {}
    changed = build_spec(lower_dirs=["/x"], image_config={}, command=["true"], etc_hosts={"db": "10.0.0.5"})
    assert spec_diff(spec.as_dict(), changed) == {"etc_hosts": {"before": {}, "after": {"db": "10.0.0.5"}}}


def test_etc_suffix_is_never_a_container_name():
    with pytest.raises(RuntimeSetupError):
        runtime_containers.validate_name(".one-shot-0" + runtime_containers.ETC_SUFFIX)


@real_kernel
def test_a_slot_stays_pristine_when_the_image_lacks_the_files(rootfs, tmp_path):
    """The mount points made in the upper dir for an image without the files are removed after the run (one
    rmdir), not the whole upper dir: the slot keeps its empty upper dir for the next run."""
    runtime = Runtime(str(tmp_path / "store"))
    slot = tmp_path / "store" / "containers" / ".one-shot-0"
    for _run in range(2):
        result = runtime.run(_spec(rootfs, ["cat", "/etc/hostname"]), timeout=20)
        assert result.rc == 0, result.stderr
        assert sorted(os.listdir(slot)) == ["upper", "work"] and os.listdir(slot / "upper") == []
        assert not [a for a in os.listxattr(slot / "upper") if "overlay.impure" in a]
    # A run that wrote into /etc leaves the upper dir to the pristine check, which removes it.
    wrote = runtime.run(_spec(rootfs, ["touch", "/etc/new"]), timeout=20)
    assert wrote.rc == 0, wrote.stderr
    assert sorted(os.listdir(slot)) == ["work"]
    assert "new" not in runtime.run(_spec(rootfs, ["ls", "/etc"]), timeout=20).stdout.decode().split()


@real_kernel
def test_a_start_rewrites_the_files_in_place_from_the_hosts_current_resolv_conf(rootfs, tmp_path, monkeypatch):
    host = tmp_path / "host-resolv.conf"
    host.write_text("nameserver 10.0.0.1\n")
    monkeypatch.setattr(etc_files, "HOST_RESOLV_CONF", str(host))
    runtime = Runtime(str(tmp_path / "store"))
    runtime.create("dhcp", _spec(rootfs, ["cat", "/etc/resolv.conf"], name="dhcp"))
    resolv = tmp_path / "store" / "containers" / "dhcp" / "etc" / "resolv.conf"
    inode = os.stat(resolv).st_ino
    assert resolv.read_text() == "nameserver 10.0.0.1\n"
    host.write_text("nameserver 10.0.0.2\n")       # the host got another resolver since
    runtime.start("dhcp")
    assert runtime.wait("dhcp", 20).exit_code == 0
    assert runtime.logs("dhcp")[0] == b"nameserver 10.0.0.2\n"
    assert os.stat(resolv).st_ino == inode
    runtime.remove("dhcp")


@real_kernel
def test_files_on_a_read_only_root_and_in_a_user_namespace(rootfs, tmp_path):
    """A read-only root still gets them (the mount points are made before the remount), writable as in Docker;
    with a user namespace the caller's files show as root's."""
    runtime = Runtime(str(tmp_path / "store"))
    result = runtime.run(_spec(rootfs, ["/bin/sh", "-c", "echo 10.0.0.9 extra >> /etc/hosts && tail -1 /etc/hosts; "
                                        "stat -c %u /etc/resolv.conf; touch /etc/x 2>&1"],
                               read_only=True, userns=True), timeout=20)
    assert result.rc != 0      # touch on the read-only root
    lines = result.stdout.decode().splitlines()
    assert lines[:2] == ["10.0.0.9 extra", "0"] and "Read-only file system" in lines[2], lines


@real_kernel
def test_an_image_symlink_on_etc_hosts_never_leads_the_mount_out_of_the_rootfs(rootfs, tmp_path):
    """An image whose /etc/hosts is a symlink out of its root (absolute, with ``..``): the mount point is
    resolved inside the rootfs, as for any volume; nothing is made or mounted at the host's path."""
    hostile = tmp_path / "hostile"
    shutil.copytree(rootfs, hostile, symlinks=True)
    marker = tmp_path / "host-side" / "hosts"
    os.symlink(f"/../../../..{marker}", hostile / "etc" / "hosts")
    runtime = Runtime(str(tmp_path / "store"))
    spec = build_spec(lower_dirs=[str(hostile)], image_config={"Env": ["PATH=/bin"]},
                      command=["/bin/sh", "-c", "cat /etc/hosts; cat " + str(marker)])
    result = runtime.run(spec, timeout=20)
    assert result.rc == 0, result.stderr
    assert result.stdout.decode().startswith("127.0.0.1\tlocalhost\n")
    assert not os.path.lexists(marker.parent)          # the host's side was never touched
