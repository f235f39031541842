# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process entering a running named container (runtime/exec.py), on the real kernel."""

from __future__ import annotations

import os

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime, exec_target
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture(scope="module")
def web(rootfs, tmp_path_factory):
    """One running container for the read-only probes: hostname, a pids limit, a marker file, its own mount."""
    rt = Runtime(str(tmp_path_factory.mktemp("store")))
    spec = build_spec(image_config={"Env": ["PATH=/bin", "FROM_IMAGE=1"]}, lower_dirs=[rootfs], name="web",
                      command=["sh", "-c", "echo inside > /tmp/marker; mkdir -p /mnt/t; "
                                           "mount -t tmpfs none /mnt/t 2>/dev/null; exec sleep 300"],
                      hostname="webhost", limits={"pids_limit": 40}, tmpfs=["/scratch"])
    rt.apply(rt.plan("web", "started", spec))
    yield rt
    rt.remove("web", force_kill=True)


def ex(rt, name, argv, **kwargs):
    target = exec_target(rt, name)
    stdin = kwargs.pop("stdin", None)
    timeout = kwargs.pop("timeout", 20)
    return runtime_exec.run(target, runtime_exec.exec_config(target.config, argv, **kwargs), stdin_data=stdin,
                            timeout=timeout)


def status_fields(text: str) -> dict:
    return {k.strip(): v.strip() for k, _sep, v in (line.partition(":") for line in text.splitlines())}


def test_sees_the_containers_pid_1_hostname_and_files(web):
    result = ex(web, "web", ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; cat /tmp/marker; "
                                         "echo $FROM_IMAGE"])
    assert result.rc == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("sleep 300")
    assert lines[1:] == ["webhost", "inside", "1"]


def test_sees_the_containers_mounts_and_network(web):
    info = web.inspect("web")
    inside = ex(web, "web", ["cat", "/proc/self/mountinfo"]).stdout.decode()
    assert " /scratch " in inside
    with open(f"/proc/{info.pid}/net/dev") as handle:
        theirs = handle.read()
    ours = ex(web, "web", ["cat", "/proc/net/dev"]).stdout.decode()
    # On the default bridge (root's default): the exec'ed process sees the container's eth0, not the host's links.
    assert sorted(line.split(":")[0].strip() for line in ours.splitlines()[2:]) == ["eth0", "lo"]
    assert sorted(line.split(":")[0].strip() for line in theirs.splitlines()[2:]) == ["eth0", "lo"]
    assert os.readlink(f"/proc/{info.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    links = ex(web, "web", ["sh", "-c", "for n in mnt net uts ipc pid cgroup; do readlink /proc/self/ns/$n; done"])
    theirs = [os.readlink(f"/proc/{info.pid}/ns/{n}") for n in ("mnt", "net", "uts", "ipc", "pid", "cgroup")]
    assert links.stdout.decode().split() == theirs


def test_capabilities_no_new_privs_and_seccomp_match_pid_1(web):
    info = web.inspect("web")
    with open(f"/proc/{info.pid}/status") as handle:
        theirs = status_fields(handle.read())
    ours = status_fields(ex(web, "web", ["cat", "/proc/self/status"]).stdout.decode())
    for key in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp"):
        assert ours[key] == theirs[key], key
    assert ours["Seccomp"] == "2" and ours["NoNewPrivs"] == "1"
    assert ours["CapBnd"] == "00000000a80425fb"


def test_non_root_user_gets_no_effective_capabilities(web):
    result = ex(web, "web", ["sh", "-c", "id -u; grep -E 'CapEff|CapBnd' /proc/self/status"], user="app")
    lines = result.stdout.decode().split("\n")
    assert lines[0] == "1000"
    fields = status_fields("\n".join(lines[1:]))
    assert fields["CapEff"] == "0000000000000000" and fields["CapBnd"] == "00000000a80425fb"


def test_only_fds_0_to_2(web):
    leaked = os.open("/etc/hostname", os.O_RDONLY)  # inheritable in the caller: must still not reach the process
    os.set_inheritable(leaked, True)
    try:
        result = ex(web, "web", ["ls", "/proc/self/fd"])
    finally:
        os.close(leaked)
    # ls itself opens one fd for the directory it lists
    assert len(result.stdout.split()) == 4, result.stdout


def test_in_the_containers_cgroups(web):
    info = web.inspect("web")
    with open(f"/proc/{info.pid}/cgroup") as handle:
        theirs = handle.read()
    result = ex(web, "web", ["sh", "-c", "cat /proc/self/cgroup; cat /proc/1/cgroup"])
    ours = result.stdout.decode()
    half = len(ours.splitlines()) // 2
    assert ours.splitlines()[:half] == ours.splitlines()[half:]
    assert len(theirs.splitlines()) == half


def test_env_workdir_stdin_and_exit_code(web):
    result = ex(web, "web", ["sh", "-c", "pwd; echo $GREETING; cat; exit 7"], env={"GREETING": "hi"},
                workdir="/tmp", stdin=b"fed\n")
    assert (result.rc, result.stdout) == (7, b"/tmp\nhi\nfed\n")


def test_fork_bomb_stops_at_the_containers_pids_limit(web):
    result = ex(web, "web", ["sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 3 & i=$((i+1)); done; echo done"],
                timeout=30)
    # Counted in the container's cgroup (pids_limit 40): the shell can't fork long before a hundred.
    assert b"can't fork" in result.stderr, result.stderr[-300:]
    ex(web, "web", ["sh", "-c", "kill $(pidof sleep | tr ' ' '\\n' | grep -v '^1$') 2>/dev/null; true"])


def test_timeout_kills_the_process(web):
    result = ex(web, "web", ["sleep", "30"], timeout=0.5)
    assert result.timed_out and result.rc == 137


def test_command_not_found(web):
    with pytest.raises(RuntimeSetupError, match="nosuchcmd"):
        ex(web, "web", ["nosuchcmd"])


def test_missing_and_stopped_containers_are_named(rootfs, tmp_path):
    rt = Runtime(str(tmp_path / "store"))
    with pytest.raises(RuntimeSetupError, match="container ghost: no such container"):
        exec_target(rt, "ghost")
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], name="done", command=["true"])
    rt.create("done", spec)
    with pytest.raises(RuntimeSetupError, match=r"container done is not running \(created\)"):
        exec_target(rt, "done")
