# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device controller (cgroup_devices.py): the rule list, the v1 writes, the BPF program's encoding and
meaning (read back by a small interpreter here), then the real kernel: a process in a container's cgroup, v1
``devices`` controller and cgroup2 BPF program alike, cannot open a block device even on a mount that allows
devices, while the standard devices work; privileged containers keep full access."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import devices as cd
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

W = cd.WILDCARD
V1_DEVICES = "/sys/fs/cgroup/devices"
UNIFIED = "/sys/fs/cgroup/unified"

# -- the rules ---------------------------------------------------------------------------------------------------


def test_default_rules_are_runcs_allowed_devices_after_a_deny_all():
    # libcontainer/specconv AllowedDevices (the list opencontainers/cgroups tests as the built-in allow list),
    # after Docker's {allow: false, access: rwm}.
    assert cd.DEFAULT_RULES[0] == ("a", W, W, "rwm", False)
    assert sorted(cd.DEFAULT_RULES[1:]) == sorted([
        ("c", W, W, "m", True), ("b", W, W, "m", True),
        ("c", 1, 3, "rwm", True), ("c", 1, 8, "rwm", True), ("c", 1, 7, "rwm", True), ("c", 5, 0, "rwm", True),
        ("c", 1, 5, "rwm", True), ("c", 1, 9, "rwm", True), ("c", 136, W, "rwm", True), ("c", 5, 2, "rwm", True),
        ("c", 10, 200, "rwm", True),
    ])


def test_v1_writes_deny_everything_first_then_one_allow_line_per_rule():
    writes = cd.v1_writes()
    assert writes[0] == ("devices.deny", "a *:* rwm")
    assert writes[1:3] == [("devices.allow", "c *:* m"), ("devices.allow", "b *:* m")]
    assert ("devices.allow", "c 136:* rwm") in writes and ("devices.allow", "c 10:200 rwm") in writes
    assert [name for name, _line in writes[1:]] == ["devices.allow"] * 11


@pytest.mark.parametrize("rule", [
    ("x", 1, 3, "rwm", True), ("c", 1, 3, "rwx", True), ("c", 1, 3, "", True), ("c", -2, 3, "r", True),
    ("a", 1, W, "rwm", True), ("c", 1, 3, "r", "yes"), ("b", 2**31, 0, "r", True),
])
def test_bad_rules_are_refused(rule):
    with pytest.raises(ValueError, match="device rule"):
        cd.emit([rule])


# -- the program: encoding -----------------------------------------------------------------------------------------


def decode(program: bytes) -> list[tuple[int, int, int, int, int]]:
    """(code, dst, src, off, imm) per instruction (little-endian hosts: dst is the low nibble)."""
    assert len(program) % 8 == 0
    out = []
    for i in range(0, len(program), 8):
        code, regs, off, imm = struct.unpack_from("=BBhi", program, i)
        dst, src = (regs & 15, regs >> 4) if sys.byteorder == "little" else (regs >> 4, regs & 15)
        out.append((code, dst, src, off, imm))
    return out


PROLOGUE = [
    (0x61, 2, 1, 0, 0),      # LdXMemW r2 = *(u32 *)(r1 + 0)
    (0x54, 2, 0, 0, 0xFFFF),  # AndImm32 r2 &= 0xffff
    (0x61, 3, 1, 0, 0),      # LdXMemW r3 = *(u32 *)(r1 + 0)
    (0x74, 3, 0, 0, 16),     # RShImm32 r3 >>= 16
    (0x61, 4, 1, 4, 0),      # LdXMemW r4 = major
    (0x61, 5, 1, 8, 0),      # LdXMemW r5 = minor
]


def ret(value):
    return [(0xB4, 0, 0, 0, value), (0x95, 0, 0, 0, 0)]   # MovImm32 r0 = value; Exit


def test_no_rules_reject_everything():
    # devicefilter_test.go TestDeviceFilter_Nil
    assert decode(cd.emit([])) == PROLOGUE + ret(0)


def test_allow_all_accepts_everything():
    # TestDeviceFilter_Privileged
    assert decode(cd.emit([("a", W, W, "rwm", True)])) == PROLOGUE + ret(1)


def test_allow_all_but_one_block_device():
    # TestDeviceFilter_PrivilegedExceptSingleDevice: type, major, minor checks jump past the block.
    prog = decode(cd.emit([("a", W, W, "rwm", True), ("b", 8, 0, "rwm", False)]))
    assert prog == PROLOGUE + [(0x55, 2, 0, 4, 1), (0x55, 4, 0, 3, 8), (0x55, 5, 0, 2, 0)] + ret(0) + ret(1)


def test_an_a_rule_drops_the_rules_before_it():
    # TestDeviceFilter_Weird: b 8:1 deny is undone by the later allow-all (cgroup v1 semantics).
    prog = decode(cd.emit([("b", 8, 1, "rwm", False), ("a", W, W, "rwm", True), ("b", 8, 2, "rwm", False)]))
    assert prog == PROLOGUE + [(0x55, 2, 0, 4, 1), (0x55, 4, 0, 3, 8), (0x55, 5, 0, 2, 2)] + ret(0) + ret(1)


def test_partial_access_is_a_subset_check_and_wildcards_skip_their_compare():
    prog = decode(cd.emit([("a", W, W, "rwm", False), ("c", W, W, "m", True)]))
    # r1 = r3; r1 &= MKNOD; if r1 != r3 skip (the access asked for is not within the rule's)
    assert prog == PROLOGUE + [(0x55, 2, 0, 5, 2), (0xBC, 1, 3, 0, 0), (0x54, 1, 0, 0, 1), (0x5D, 1, 3, 2, 0)] \
        + ret(1) + ret(0)


def test_default_program_size_and_cache():
    # 6 loads, 11 allow blocks (2 with an access check), the final reject: what runc emits for this list (64).
    assert len(cd.default_program()) // 8 == 64
    assert cd.default_program() is cd.default_program()


# -- the program: meaning, by a tiny interpreter of the instructions the emitter uses ------------------------------


def interpret(program: bytes, kind: str, major: int, minor: int, access: str) -> int:
    ctx = ((cd._access_bits(access) << 16) | {"b": 1, "c": 2}[kind], major, minor)
    regs = [0] * 11
    prog, pc = decode(program), 0
    while True:
        code, dst, src, off, imm = prog[pc]
        pc += 1
        if code == 0x61:
            regs[dst] = ctx[off // 4]
        elif code == 0x54:
            regs[dst] &= imm
        elif code == 0x74:
            regs[dst] >>= imm
        elif code == 0xBC:
            regs[dst] = regs[src]
        elif code == 0xB4:
            regs[dst] = imm
        elif code == 0x55:
            pc += off if regs[dst] != imm else 0
        elif code == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("device, access, allowed", [
    (("c", 1, 3), "rwm", 1), (("c", 1, 5), "r", 1), (("c", 1, 7), "w", 1), (("c", 1, 8), "r", 1),
    (("c", 1, 9), "rw", 1), (("c", 5, 0), "rw", 1), (("c", 5, 2), "rw", 1), (("c", 136, 0), "rw", 1),
    (("c", 136, 4000), "r", 1), (("c", 10, 200), "rw", 1),
    (("b", 7, 0), "m", 1), (("c", 4, 0), "m", 1),                     # mknod of anything
    (("b", 7, 0), "r", 0), (("b", 7, 0), "rm", 0), (("b", 8, 0), "w", 0), (("c", 5, 1), "rw", 0),   # console
    (("c", 1, 1), "r", 0), (("c", 10, 237), "rw", 0), (("c", 4, 0), "w", 0), (("b", 1, 3), "r", 0),
    (("c", 10, 201), "r", 0), (("c", 137, 0), "r", 0),
])
def test_default_program_decides_like_the_v1_list(device, access, allowed):
    assert interpret(cd.default_program(), *device, access) == allowed


# -- the real kernel ----------------------------------------------------------------------------------------------

def probe_in(procs: str, block_node: str) -> dict[str, str]:
    """A child joins the cgroup (``procs``: its cgroup.procs) and opens devices; ``ok`` or the errno name each.
    Run on the host, where /dev and ``block_node`` are on mounts that allow devices: only the controller stands
    between the child and the node."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read_fd)
        results = []
        try:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))
            for path in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                         "/dev/net/tun", "/dev/loop0", block_node):
                try:
                    os.close(os.open(path, os.O_RDWR | os.O_NOCTTY))
                    results.append(f"{path}=ok")
                except OSError as exc:
                    results.append(f"{path}={errno.errorcode[exc.errno]}")
            try:
                master, slave = os.openpty()        # /dev/ptmx (5:2), then /dev/pts/N (136:N)
                results.append("pty=ok")
            except OSError as exc:
                results.append(f"pty={errno.errorcode[exc.errno]}")
            made = block_node + ".null"
            try:
                os.mknod(made, 0o600 | 0o020000, os.makedev(1, 3))      # mknod is allowed, like Docker
                os.close(os.open(made, os.O_WRONLY))
                results.append("mknod=ok")
            except OSError as exc:
                results.append(f"mknod={errno.errorcode[exc.errno]}")
        finally:
            os.write(write_fd, "\n".join(results).encode())
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 4096):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def check_probe(found: dict[str, str], block_node: str) -> None:
    for path in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/net/tun"):
        assert found[path] == "ok", found
    assert found["pty"] == "ok" and found["mknod"] == "ok", found
    assert found["/dev/tty"] in ("ok", "ENXIO"), found     # allowed: no controlling terminal is another matter
    assert found["/dev/loop0"] == "EPERM", found
    assert found[block_node] == "EPERM", found


@pytest.fixture
def block_node(tmp_path):
    """A b 7:0 node (loop0) made in a temporary directory on a mount that allows devices."""
    node = str(tmp_path / "loop0")
    os.mknod(node, 0o666 | 0o060000, os.makedev(7, 0))
    with open(node, "rb"):      # the host itself, outside any controller, can open it
        pass
    return node


def fresh_cgroup(mount: str) -> str:
    path = os.path.join(mount, f"dockerless-devtest-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    return path


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: cgroups, mknod")
@pytest.mark.skipif(not os.path.exists(os.path.join(V1_DEVICES, "devices.deny")),
                    reason="needs a cgroup v1 devices controller at /sys/fs/cgroup/devices")
def test_v1_controller_on_the_real_kernel(block_node):
    path = fresh_cgroup(V1_DEVICES)
    try:
        cd.install_v1(path)
        with open(os.path.join(path, "devices.list")) as handle:
            listed = handle.read().split("\n")
        assert sorted(filter(None, listed)) == sorted(line for _f, line in cd.v1_writes()[1:])
        check_probe(probe_in(os.path.join(path, "cgroup.procs"), block_node), block_node)
    finally:
        os.rmdir(path)


V1_OPENS = """
import os, sys
from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import devices
opened = []
sys.addaudithook(lambda event, args: opened.append(os.path.basename(str(args[0]))) if event == "open" else None)
devices.install_v1(sys.argv[1])
print(" ".join(opened))
"""


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: cgroups")
@pytest.mark.skipif(not os.path.exists(os.path.join(V1_DEVICES, "devices.deny")),
                    reason="needs a cgroup v1 devices controller at /sys/fs/cgroup/devices")
def test_v1_rules_go_through_one_fd_per_file(block_node):
    """Every rule is its own write (devices.list above holds them all), but devices.allow is opened once: this
    runs before each container's fork."""
    path = fresh_cgroup(V1_DEVICES)
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.run([sys.executable, "-S", "-c", V1_OPENS, path], capture_output=True, text=True, env=env,
                              timeout=60, check=False)
        assert (proc.returncode, proc.stdout.split()) == (0, ["devices.deny", "devices.allow"]), proc.stderr
        with open(os.path.join(path, "devices.list")) as handle:
            listed = handle.read().split("\n")
        assert sorted(filter(None, listed)) == sorted(line for _f, line in cd.v1_writes()[1:])
    finally:
        os.rmdir(path)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: cgroups, bpf(2), mknod")
@pytest.mark.skipif(not os.path.exists(os.path.join(UNIFIED, "cgroup.controllers")),
                    reason="needs the cgroup2 hierarchy at /sys/fs/cgroup/unified (hybrid host)")
def test_v2_bpf_program_on_the_real_kernel(block_node):
    path = fresh_cgroup(UNIFIED)
    try:
        cd.install_v2(path)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert cd.attached(fd) == 1
        finally:
            os.close(fd)
        check_probe(probe_in(os.path.join(path, "cgroup.procs"), block_node), block_node)
    finally:
        os.rmdir(path)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: bpf(2)")
def test_a_program_the_verifier_refuses_names_the_verifier():
    bad = cd._insn(0x61, 2, 1, 0) + cd._insn(0x95)     # exits with r0 never set
    with pytest.raises(OSError, match="(?s)verifier: .*R0 !read_ok"):
        os.close(cd.load(bad))


# -- through the engine: one-shot (v1 here, and cgroup2 with cgroup_root at the unified mount), named, privileged --

STANDARD = (
    "echo x > /dev/null && head -c 1 /dev/zero | wc -c && head -c 1 /dev/urandom | wc -c && "
    "head -c 1 /dev/random | wc -c && (echo x > /dev/full) 2>&1; (exec 3</dev/tty) 2>&1; "
    "(exec 3<>/dev/ptmx && ls /dev/pts) 2>&1; "
)


def busybox_rootfs(tmp_path_factory):
    from test_runtime import make_busybox_rootfs

    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    return busybox_rootfs(tmp_path_factory)


def container_cgroup_of(mount: str, marker: str, timeout: float = 20.0) -> str:
    """The directory under ``mount``/dockerless whose processes have ``marker`` on their command line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        top = os.path.join(mount, "dockerless")
        for entry in os.listdir(top) if os.path.isdir(top) else ():
            try:
                with open(os.path.join(top, entry, "cgroup.procs")) as handle:
                    pids = handle.read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        if marker.encode() in handle.read():
                            return os.path.join(top, entry)
                except OSError:
                    continue
        time.sleep(0.02)
    raise AssertionError(f"no cgroup under {mount}/dockerless holds the container ({marker})")


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
@pytest.mark.parametrize("cgroup_root, version, limits", [
    ("/sys/fs/cgroup", 1, None),                  # the device controller's directory only: the monitor joins it
    ("/sys/fs/cgroup", 1, {"pids_limit": 100}),   # with the full cgroup (every hierarchy, joined by the caller)
    (UNIFIED, 2, None),
])
def test_a_one_shot_containers_cgroup_holds_the_device_controller(rootfs, tmp_path, block_node, cgroup_root,
                                                                  version, limits):
    where = cd.locate(cgroup_root)
    if where is None or where[0] != version:
        pytest.skip(f"needs a cgroup v{version} device controller under {cgroup_root}")
    runtime = Runtime(str(tmp_path / "store"), cgroup_root=cgroup_root)
    vol = tmp_path / "vol"
    vol.mkdir()
    marker = f"devtest-{uuid.uuid4().hex[:8]}"
    script = STANDARD + f"echo ready > /vol/ready; while [ ! -e /vol/done ]; do sleep 0.02; done # {marker}"
    spec = build_spec(lower_dirs=[rootfs], command=["/bin/sh", "-c", script], image_config={"Env": ["PATH=/bin"]},
                      volumes=[f"{vol}:/vol"], limits=limits)
    result = {}
    thread = threading.Thread(target=lambda: result.update(run=runtime.run(spec, timeout=30)))
    thread.start()
    try:
        directory = container_cgroup_of(where[1], marker)
        if version == 2:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                assert cd.attached(fd) == 1
            finally:
                os.close(fd)
        check_probe(probe_in(os.path.join(directory, "cgroup.procs"), block_node), block_node)
    finally:
        (vol / "done").write_text("")
        thread.join(30)
    run = result["run"]
    assert run.rc == 0, run.stderr
    out = run.stdout.decode().splitlines()
    # /dev/full: ENOSPC on write (so it opened); /dev/tty: no controlling terminal (ENXIO: past the controller);
    # /dev/ptmx opened and its pts node 0 appeared.
    assert out[:3] == ["1", "1", "1"] and "No space left on device" in out[3], out
    assert "No such device or address" in out[4] and out[5:] == ["0", "ptmx"], out
    assert not os.path.exists(directory), "the device cgroup outlived the container"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_privileged_keeps_full_device_access(rootfs, tmp_path):
    # The same node made inside: a privileged container (no nodev, no controller) reads the loop device; a
    # default one cannot.
    script = "mknod /tmp/l b 7 0 && dd if=/tmp/l of=/dev/null bs=512 count=1 2>&1 | head -c 60; echo; echo rc=$?"
    runtime = Runtime(str(tmp_path / "store"))
    spec = build_spec(lower_dirs=[rootfs], command=["/bin/sh", "-c", script], image_config={"Env": ["PATH=/bin"]},
                      privileged=True)
    privileged = runtime.run(spec, timeout=30)
    assert privileged.rc == 0 and b"records in" in privileged.stdout, privileged.stdout + privileged.stderr
    spec = build_spec(lower_dirs=[rootfs], command=["/bin/sh", "-c", script], image_config={"Env": ["PATH=/bin"]})
    default = runtime.run(spec, timeout=30)
    assert b"records in" not in default.stdout and b"ermission denied" in default.stdout, default.stdout


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
def test_a_named_container_gets_the_device_controller_and_loses_it_on_remove(rootfs, tmp_path, block_node):
    where = cd.locate("/sys/fs/cgroup")
    runtime = Runtime(str(tmp_path / "store"))
    name = f"devtest-{uuid.uuid4().hex[:8]}"
    spec = build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=["sleep", "60"], name=name,
                      stop_timeout=0)
    runtime.apply(runtime.plan(name, "started", spec))
    directory = os.path.join(where[1], "dockerless", name)
    try:
        check_probe(probe_in(os.path.join(directory, "cgroup.procs"), block_node), block_node)
    finally:
        runtime.remove(name)
    assert not os.path.exists(directory)


# -- where there can be no controller ---------------------------------------------------------------------------------


def test_rootless_gets_no_device_controller_and_no_directory(tmp_path, monkeypatch):
    # A non-root caller: the kernel would refuse devices.deny and a cgroup BPF program (runc skips it too).
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import ContainerCgroup

    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "devices.deny").write_text("")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cgroup = ContainerCgroup("c1", None, str(tmp_path))
    cgroup.create(full=False)
    assert cgroup.device_controller is None and cgroup.join_tasks == []
    assert not (tmp_path / "devices" / "dockerless").exists()


def test_root_in_a_user_namespace_counts_as_rootless(tmp_path, monkeypatch):
    uid_map = tmp_path / "uid_map"
    real_open = open

    def fake_open(path, *args, **kwargs):
        return real_open(uid_map if path == "/proc/self/uid_map" else path, *args, **kwargs)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("builtins.open", fake_open)
    uid_map.write_text("         0       1000          1\n")
    assert cd.rootless() is True
    uid_map.write_text("         0          0 4294967295\n")
    assert cd.rootless() is False


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the device controller is installed only as root")
def test_a_controller_that_cannot_be_installed_fails_the_start_and_says_why(tmp_path):
    # A "v1 devices hierarchy" that is a plain directory: the new cgroup has no devices.deny to write.
    from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import ContainerCgroup

    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "devices.deny").write_text("")
    cgroup = ContainerCgroup("c1", None, str(tmp_path))
    with pytest.raises(RuntimeSetupError, match=r"container c1: installing the device controller \(cgroup v1\) in "
                       r".*/devices/dockerless/c1: No such file or directory\. Check that the cgroup hierarchy"):
        cgroup.create(full=False)
    assert not (tmp_path / "devices" / "dockerless" / "c1").exists()     # what it made is gone again


def test_locate_prefers_v1_devices_then_the_unified_mount(tmp_path):
    assert cd.locate(str(tmp_path)) is None
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("")
    assert cd.locate(str(tmp_path)) == (2, str(tmp_path / "unified"))
    (tmp_path / "cpu,devices").mkdir()
    (tmp_path / "cpu,devices" / "devices.deny").write_text("")
    assert cd.locate(str(tmp_path)) == (1, str(tmp_path / "cpu,devices"))
    (tmp_path / "cgroup.controllers").write_text("")
    assert cd.locate(str(tmp_path)) == (2, str(tmp_path))     # pure v2


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")
@pytest.mark.skipif(not os.path.exists("/dev/loop0"), reason="needs /dev/loop0 on the host")
def test_the_hosts_dev_as_a_rw_volume_opens_no_block_device(rootfs, tmp_path):
    # HOSTILE.md: a rw volume of /dev. nodev (volumes) and the device controller both stand in the way; the
    # cgroup-level tests above show the controller alone holds where a mount allows devices.
    # Opened, never written: a failure must not touch the host's device.
    script = "(exec 3</hostdev/loop0) 2>/dev/null && echo OPENED; (exec 3<>/hostdev/loop0) 2>/dev/null || echo denied"
    spec = build_spec(lower_dirs=[rootfs], command=["/bin/sh", "-c", script], image_config={"Env": ["PATH=/bin"]},
                      volumes=["/dev:/hostdev"])
    result = Runtime(str(tmp_path / "store")).run(spec, timeout=30)
    assert result.rc == 0 and result.stdout == b"denied\n", (result.stdout, result.stderr)
