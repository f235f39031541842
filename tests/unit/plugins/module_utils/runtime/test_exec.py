# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process entering a running named container (runtime/exec.py), on the real kernel."""

from __future__ import annotations

import os
import subprocess

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


@pytest.fixture(scope="module")
def plain(rootfs, tmp_path_factory):
    """A running container of its own for the tests that fork inside it (``web``'s pids end up held by the fork
    bomb's zombies: its PID 1, sleep, reaps none)."""
    rt = Runtime(str(tmp_path_factory.mktemp("store")))
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], name="plain", command=["sleep", "300"])
    rt.apply(rt.plan("plain", "started", spec))
    yield rt
    rt.remove("plain", force_kill=True)


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


def test_the_monitor_has_a_process_group_of_its_own(plain):
    """A Ctrl-C typed at the caller's terminal goes to the caller's process group: the monitor is not in it, so
    the process gets the signal once, as the caller forwards it, not a second time through the monitor."""
    target = exec_target(plain, "plain")
    with open(os.devnull, "r+b") as null:
        proc = runtime_exec.spawn(target, runtime_exec.exec_config(target.config, ["sleep", "5"]), null.fileno(),
                                  null.fileno(), null.fileno())
    try:
        proc.read_status()
        assert proc.error is None
        assert os.getpgid(proc.monitor_pid) == proc.monitor_pid != os.getpgrp()
    finally:
        proc.kill()
        proc.wait()
        proc.close()


def test_exec_tty_is_a_pty_of_the_containers_own_devpts(plain):
    """``exec -t``'s pty comes from the container's devpts instance (opened through its root, proved to be a
    devpts ptmx): the process's terminal is a /dev/pts/N of the container, which ``tty`` names."""
    target = exec_target(plain, "plain")
    master, slave = runtime_exec.open_pty(target)
    try:
        assert os.fstat(slave).st_dev != os.stat("/dev/pts/ptmx").st_dev     # not of the host's devpts
        config = runtime_exec.exec_config(target.config, ["sh", "-c", "tty; ls /dev/pts"], terminal=True)
        proc = runtime_exec.spawn(target, config, slave, slave, slave)
        os.close(slave)
        slave = None
        proc.read_status()
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:          # EIO: the last slave fd closed
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait() == 0, out
        proc.close()
        lines = out.decode().split()
        assert lines[0] == "/dev/pts/0" and "0" in lines[1:], out
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)


def test_exec_tty_falls_back_to_a_host_pty_when_the_containers_ptmx_is_not_devpts(plain):
    """A ptmx that is not a devpts ptmx (here the container's /dev/pts made a tmpfs with a plain file named ptmx) is
    never opened read-write: the pty is one of the host's."""
    target = exec_target(plain, "plain")
    # From the host, in the container's mount namespace and root (an exec'd process has no CAP_SYS_ADMIN).
    setup = subprocess.run(["nsenter", "-t", str(target.pid), "-m", "-r", "sh", "-c", "mkdir -p /tmp/fake && "
                            "touch /tmp/fake/ptmx && mount --bind /tmp/fake /dev/pts && echo bound"],
                           capture_output=True, timeout=30, check=False)
    assert setup.stdout == b"bound\n", setup.stderr
    try:
        master, slave = runtime_exec.open_pty(target)
        try:
            assert os.fstat(slave).st_dev == os.stat("/dev/pts/ptmx").st_dev  # the host's devpts
        finally:
            os.close(master)
            os.close(slave)
        assert ex(plain, "plain", ["cat", "/tmp/fake/ptmx"]).stdout == b""
    finally:
        subprocess.run(["nsenter", "-t", str(target.pid), "-m", "-r", "umount", "/dev/pts"], capture_output=True,
                       timeout=30, check=True)
