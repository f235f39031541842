# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Known container escapes, replayed on the real kernel against one-shot and named containers.

runc's and containerd's regression cases as tests of ours (docs/security.md lists them): the chroot escape of
``isolation: chroot``, CVE-2024-21626 (a host fd leaked into the container, a working directory under
``/proc/self/fd``) and CVE-2019-5736 (the host binary that starts the container reached through
``/proc/PID/exe``). The hostile commands run as the container's root with its default capabilities.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import init_sequence
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import rootfs as rootfs_lib
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

HOST_PYTHON = "/usr/bin/python3"   # Debian's: its libraries and stdlib are all under /usr (merged-/usr host)
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]
PR_GET_DUMPABLE = 3


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture(scope="module")
def python_rootfs(tmp_path_factory) -> str:
    """The busybox image plus the host's Python through a read-only ``/usr`` volume (``python_volume``): the
    escapes below need system calls busybox's applets don't make in that order (chroot without chdir)."""
    root = make_busybox_rootfs(str(tmp_path_factory.mktemp("image-py") / "rootfs"))
    os.makedirs(os.path.join(root, "usr"))
    for name in ("lib", "lib64"):
        os.symlink(f"usr/{name}", os.path.join(root, name))
    return root


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "store"))
    yield rt
    for info in rt.list():
        rt.remove(info.name)


def spec_for(rootfs: str, command, **kwargs):
    kwargs.setdefault("image_config", {"Env": ["PATH=/bin"]})
    return build_spec(lower_dirs=[rootfs], command=command, **kwargs)


def python_volume() -> list[str]:
    if not os.path.isfile(HOST_PYTHON) or os.path.islink("/usr") or not os.path.islink("/lib"):
        pytest.skip("needs a merged-/usr host with Debian's python3 in /usr/bin")
    return ["/usr:/usr:ro"]


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def run_named(runtime, rootfs, name, command, **kwargs):
    """Start ``command`` as a named, supervised container; wait until it exited; its (stdout, stderr)."""
    spec = spec_for(rootfs, command, name=name, **kwargs)
    info = runtime.apply(runtime.plan(name, "started", spec))
    assert info.supervised
    wait_for(lambda: not runtime.inspect(name).supervised)
    return runtime.logs(name)


# -- isolation: chroot is not a boundary, but chroot(2) no longer walks out of it ---------------------------------

# The classic escape: chroot into a subdirectory without chdir, so the cwd is outside the new root; climb with
# ".." past the old root; chroot(".") there. It needs CAP_SYS_CHROOT and the chroot syscall.
CHROOT_ESCAPE = r"""
import os, sys
marker = sys.argv[1]
try:
    os.makedirs("/escape", exist_ok=True)
    os.chroot("/escape")
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    print("chroot: allowed")
except OSError as exc:
    print("chroot:", os.strerror(exc.errno))
print("host marker:", "seen" if os.path.exists(marker) else "absent")
"""


def test_chroot_isolation_cannot_be_left_with_chroot(runtime, python_rootfs, tmp_path):
    # As root without a user namespace (the default): CAP_SYS_CHROOT there is the host's.
    marker = tmp_path / "host-only-marker"
    marker.write_text("host\n")
    result = runtime.run(spec_for(python_rootfs, [HOST_PYTHON, "-I", "-S", "-c", CHROOT_ESCAPE, str(marker)],
                                  isolation="chroot", volumes=python_volume()), timeout=30)
    out = result.stdout.decode()
    assert result.rc == 0, result.stderr
    assert "chroot: Operation not permitted" in out
    assert "host marker: absent" in out


def test_chroot_isolation_has_no_cap_sys_chroot(runtime, rootfs):
    script = "mkdir -p /x; chroot /x /bin/true 2>&1; grep -E '^Cap(Bnd|Eff)' /proc/self/status"
    result = runtime.run(spec_for(rootfs, ["/bin/sh", "-c", script], isolation="chroot"), timeout=20)
    out = result.stdout.decode()
    assert "Operation not permitted" in out
    for line in out.splitlines()[-2:]:
        assert not int(line.split()[1], 16) >> linux.CAPABILITIES["CAP_SYS_CHROOT"] & 1, line


def test_a_chroot_isolation_record_from_before_still_starts_without_cap_sys_chroot(runtime, rootfs):
    # A named container created by an older version keeps CAP_SYS_CHROOT in its stored init config; the init
    # drops it anyway in chroot isolation.
    spec = spec_for(rootfs, ["/bin/sh", "-c", "grep CapBnd /proc/self/status"], isolation="chroot")
    spec.capabilities = sorted(spec.capabilities + ["CAP_SYS_CHROOT"])
    out = runtime.run(spec, timeout=20).stdout.decode()
    assert not int(out.split()[1], 16) >> linux.CAPABILITIES["CAP_SYS_CHROOT"] & 1, out


# -- CVE-2024-21626: no host fd reaches the container; no working directory under /proc ---------------------------

# The fds of the command itself (the shell; "; exit 0" keeps it from exec'ing ls), not of the ls listing them.
FDS = "ls /proc/$$/fd; exit 0"


def test_only_fds_0_to_2_in_a_one_shot(runtime, rootfs):
    held = [os.open("/", os.O_RDONLY | os.O_DIRECTORY) for _fd in range(8)]   # host fds the caller has open
    try:
        result = runtime.run(spec_for(rootfs, ["/bin/sh", "-c", FDS]), timeout=20)
    finally:
        for fd in held:
            os.close(fd)
    assert result.rc == 0, result.stderr
    assert sorted(result.stdout.decode().split()) == ["0", "1", "2"]


def test_only_fds_0_to_2_in_a_named_container(runtime, rootfs):
    held = [os.open("/", os.O_RDONLY | os.O_DIRECTORY) for _fd in range(8)]
    try:
        stdout, stderr = run_named(runtime, rootfs, "fds", ["/bin/sh", "-c", FDS])
    finally:
        for fd in held:
            os.close(fd)
    assert sorted(stdout.decode().split()) == ["0", "1", "2"], stderr


@pytest.mark.parametrize("fd", range(3, 11))
def test_workdir_under_proc_self_fd_is_refused(rootfs, fd):
    with pytest.raises(RuntimeSetupError, match=rf"workdir '/proc/self/fd/{fd}': a working directory under /proc"):
        spec_for(rootfs, ["/bin/true"], workdir=f"/proc/self/fd/{fd}")


@pytest.mark.parametrize("named", [False, True], ids=["one-shot", "named"])
def test_workdir_under_proc_self_fd_is_refused_by_the_init_too(runtime, rootfs, tmp_path, named):
    # A config that skipped build_spec (a record written by hand or by an older version): the init refuses
    # the path itself, before any chdir, whatever fds the caller holds open on host directories.
    held = [os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY) for _fd in range(8)]
    try:
        for fd in range(3, 11):
            spec = spec_for(rootfs, ["/bin/sh", "-c", "pwd; ls"], name=f"wd{fd}" if named else None)
            spec.workdir = f"/proc/self/fd/{fd}"
            with pytest.raises(RuntimeSetupError, match=rf"working directory '/proc/self/fd/{fd}' is under /proc"):
                if named:
                    runtime.apply(runtime.plan(f"wd{fd}", "started", spec))
                else:
                    runtime.run(spec, timeout=20)
    finally:
        for fd in held:
            os.close(fd)


# -- CVE-2019-19921, CVE-2023-27561: no volume over /proc ------------------------------------------------------------

@pytest.mark.parametrize("link, mount", [
    ("/proc", {"volumes": ["{fake}:/x"]}),
    ("/proc/sys", {"volumes": ["{fake}:/x:ro"]}),
    ("/proc", {"tmpfs": ["/x"]}),
], ids=["volume-on-proc", "volume-on-proc-sys", "tmpfs-on-proc"])
@pytest.mark.parametrize("named", [False, True], ids=["one-shot", "named"])
def test_a_mount_led_onto_proc_by_a_symlink_is_refused(runtime, tmp_path, link, mount, named):
    # build_spec refuses /proc paths; the image's symlink x -> /proc leads a mount on /x there all the same.
    # The fake /proc would feed the init's fd list (the fds it closes before exec) and its masked paths.
    image = make_busybox_rootfs(str(tmp_path / "image"))
    os.symlink(link, os.path.join(image, "x"))
    fake = tmp_path / "fake"
    (fake / "self" / "fd").mkdir(parents=True)
    options = {key: [v.format(fake=fake) for v in values] for key, values in mount.items()}
    name = "overproc" if named else None
    spec = spec_for(image, ["/bin/sh", "-c", "echo ran; ls /proc"], name=name, **options)
    with pytest.raises(RuntimeSetupError, match=r"the mount point resolves to /proc(/sys)?, on procfs; a mount over /proc is refused"):
        if named:
            runtime.apply(runtime.plan(name, "started", spec))
        else:
            runtime.run(spec, timeout=20)
    assert os.listdir(fake) == ["self"]


def test_volume_paths_under_proc_are_refused_before_anything_runs(rootfs, tmp_path):
    for options in ({"volumes": [f"{tmp_path}:/proc"]}, {"volumes": [f"{tmp_path}:/proc/self/fd:ro"]},
                    {"tmpfs": ["/proc/sys"]}):
        with pytest.raises(RuntimeSetupError, match=r"a mount on /proc(/self/fd|/sys)? is refused"):
            spec_for(rootfs, ["/bin/true"], **options)


# -- CVE-2019-5736: the host binary behind /proc/PID/exe ------------------------------------------------------------

EXE = r"""
for f in /proc/[0-9]*/exe; do
  [ -L "$f" ] || continue
  echo "seen $f"
  (: >> "$f") 2>/dev/null && echo "WRITABLE $f"
done
echo "exe1 $(stat -L -c '%d %i' /proc/1/exe)"
echo "busybox $(stat -L -c '%d %i' /bin/busybox)"
"""


def _exe_report(text: str) -> dict:
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith("WRITABLE")], text
    assert "seen /proc/1/exe" in lines, text     # the loop did run over the container's processes
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in lines if line.startswith(("exe1", "busybox"))}


def _host_python() -> str:
    st = os.stat(os.path.realpath(sys.executable))
    return f"{st.st_dev} {st.st_ino}"


@pytest.mark.parametrize("named", [False, True], ids=["one-shot", "named"])
def test_proc_exe_is_the_containers_binary_and_never_writable(runtime, rootfs, named):
    if named:
        stdout, stderr = run_named(runtime, rootfs, "exe", ["/bin/sh", "-c", EXE])
    else:
        result = runtime.run(spec_for(rootfs, ["/bin/sh", "-c", EXE]), timeout=20)
        stdout, stderr = result.stdout, result.stderr
    seen = _exe_report(stdout.decode())
    assert seen["exe1"] == seen["busybox"], (stdout, stderr)
    assert seen["exe1"] != _host_python()


def test_chroot_isolation_sees_the_host_python_but_cannot_open_it_through_proc_exe(runtime, rootfs):
    # Without a PID namespace the caller (this Python) and the container's monitor are in /proc: their exe
    # links must open neither for writing nor for reading (no CAP_SYS_PTRACE, fewer capabilities than they have).
    script = EXE + f"cat /proc/{os.getpid()}/exe >/dev/null 2>&1 && echo READABLE caller; echo caller done\n"
    result = runtime.run(spec_for(rootfs, ["/bin/sh", "-c", script], isolation="chroot"), timeout=30)
    out = result.stdout.decode()
    assert f"seen /proc/{os.getpid()}/exe" in out, out
    assert "WRITABLE" not in out and "READABLE" not in out and "caller done" in out, out


def test_host_python_run_in_the_container_is_not_writable_through_proc_exe(runtime, python_rootfs):
    # The worst case of CVE-2019-5736: the container's PID 1 *is* a host binary (the host's Python through a
    # read-only volume). /proc/1/exe then names the host's file; opening it for writing must still fail.
    script = ("import os, glob\n"
              "for path in sorted(glob.glob('/proc/[0-9]*/exe')):\n"
              "    try:\n"
              "        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))\n"
              "        print('WRITABLE', path)\n"
              "    except OSError as exc:\n"
              "        print('refused', path, os.strerror(exc.errno))\n")
    result = runtime.run(spec_for(python_rootfs, [HOST_PYTHON, "-I", "-S", "-c", script], volumes=python_volume()),
                         timeout=30)
    out = result.stdout.decode()
    assert result.rc == 0, result.stderr
    assert "refused /proc/1/exe" in out and "WRITABLE" not in out, out


def test_the_init_is_not_dumpable_during_setup(runtime, rootfs, monkeypatch, tmp_path):
    # The setup window: until execve the init is the host's Python, so it must not be dumpable (ptrace,
    # /proc/1/exe, /proc/1/mem of a process that joins early). The init is a fork of this process: wrapped
    # steps run in it. One right after the rootfs is mounted (still the host's view: a host file), one at the
    # last step before exec (the container's view: its stderr).
    early = tmp_path / "dumpable-early"
    mount_rootfs, apply_seccomp = rootfs_lib.mount_rootfs, init_sequence.apply_seccomp

    def spy_mount_rootfs(*args, **kwargs):
        early.write_text(str(linux.prctl(PR_GET_DUMPABLE)))
        return mount_rootfs(*args, **kwargs)

    def spy_apply_seccomp(compiled):
        os.write(2, b"dumpable-late %d\n" % linux.prctl(PR_GET_DUMPABLE))
        return apply_seccomp(compiled)

    monkeypatch.setattr(rootfs_lib, "mount_rootfs", spy_mount_rootfs)
    monkeypatch.setattr(init_sequence, "apply_seccomp", spy_apply_seccomp)
    result = runtime.run(spec_for(rootfs, ["/bin/sh", "-c", "grep -c . /proc/self/status >/dev/null; echo ran"]),
                         timeout=20)
    assert result.stdout == b"ran\n", result.stderr
    assert early.read_text() == "0"
    assert b"dumpable-late 0\n" in result.stderr
    assert linux.prctl(PR_GET_DUMPABLE) == 1     # the caller itself is untouched
