# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mount wall on the real kernel: pinned volume sources, fd-resolved targets, recursive read-only and
nosuid/nodev, the /sys bind in a user namespace, and runc's regression cases (CVE-2019-19921, CVE-2023-27561,
CVE-2025-31133, CVE-2025-52881) as tests of ours."""

from __future__ import annotations

import errno
import os
import uuid

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs
from test_runtime_supervisor import wait_for

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import rootfs as rootfs_lib
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    return make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))


@pytest.fixture(params=["new-kernel", "before-5.6"])
def kernel(request, monkeypatch):
    """Runs a test twice: on this kernel's openat2/open_tree/mount_setattr, then as on a kernel without them (the
    wrappers fail with ENOSYS; the container init is forked from this process, so it takes the fallbacks)."""
    if request.param == "before-5.6":
        def enosys(*_args, **_kwargs):
            raise OSError(errno.ENOSYS, "not on this kernel")

        for name in ("openat2", "open_tree", "move_mount", "mount_setattr"):
            monkeypatch.setattr(linux, name, enosys)
    return request.param


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "store"))
    yield rt
    for info in rt.list():
        rt.remove(info.name)


def spec_for(rootfs, command, **kwargs):
    return build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[rootfs], command=command, **kwargs)


def run(runtime, rootfs, script, **kwargs):
    return runtime.run(spec_for(rootfs, ["/bin/sh", "-c", script], **kwargs), timeout=20)


def in_child(body) -> None:
    """Run ``body()`` in a forked child in its own private mount namespace; re-raise its failure here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - observed through the pipe
        os.close(r)
        try:
            linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWUTS)  # UTS: a write that slips through stays here
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
            body()
            os.write(w, b"ok")
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, f"{type(exc).__name__}: {exc}".encode()[:4000])
        os._exit(0)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    assert out == b"ok", out.decode()


# -- a volume's source is pinned; the target is resolved under the rootfs -------------------------------

def test_restart_after_a_volume_source_was_swapped_for_a_symlink_fails_and_never_mounts_host_root(
        runtime, rootfs, tmp_path):
    app = tmp_path / "app"
    (app / "config").mkdir(parents=True)
    (app / "config" / "marker").write_text("m")
    script = ("if [ -e /config/marker ]; then mv /app/config /app/x; ln -s / /app/config; exit 1; fi; "
              "ls /config > /app/second-run; exit 0")
    spec = spec_for(rootfs, ["/bin/sh", "-c", script], name="pinned", restart_policy="on-failure",
                    volumes=[f"{app}:/app", f"{app}/config:/config:ro"])
    runtime.apply(runtime.plan("pinned", "started", spec))
    wait_for(lambda: runtime.inspect("pinned").state == "exited" and not runtime.inspect("pinned").supervised,
             timeout=20)
    info = runtime.inspect("pinned")
    assert not (app / "second-run").exists(), (app / "second-run").read_text()
    assert info.error and "/config" in info.error and "changed since the container was created" in info.error


def test_a_volume_source_replaced_by_another_directory_fails_the_start(kernel, runtime, rootfs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    spec = spec_for(rootfs, ["/bin/true"], volumes=[f"{data}:/data"])
    os.rename(data, tmp_path / "old")
    data.mkdir()                                   # same path, another inode
    with pytest.raises(RuntimeSetupError, match="changed since the container was created"):
        runtime.run(spec, timeout=20)


def test_after_a_reboot_only_the_inode_is_compared(kernel, runtime, rootfs, tmp_path):
    # Device numbers (btrfs subvolumes, LVM, NFS) may change with a reboot: a pin from another boot compares the
    # inode only, which still catches a replaced source.
    data = tmp_path / "data"
    data.mkdir()
    spec = spec_for(rootfs, ["/bin/true"], volumes=[f"{data}:/data"])
    spec.volumes[0].update(boot="another-boot", dev=spec.volumes[0]["dev"] + 1)
    assert runtime.run(spec, timeout=20).rc == 0
    spec.volumes[0].update(boot=None)
    with pytest.raises(RuntimeSetupError, match="changed since the container was created"):
        runtime.run(spec, timeout=20)
    spec.volumes[0].update(boot="another-boot", ino=spec.volumes[0]["ino"] + 1)
    with pytest.raises(RuntimeSetupError, match="changed since the container was created"):
        runtime.run(spec, timeout=20)


def test_a_record_without_a_pin_still_starts_and_refuses_a_symlinked_source(kernel, runtime, rootfs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("old record\n")
    spec = spec_for(rootfs, ["/bin/cat", "/data/f"], volumes=[f"{data}:/data"])
    spec.volumes = [{k: v[k] for k in ("source", "target", "read_only")} for v in spec.volumes]  # a pre-pin record
    assert runtime.run(spec, timeout=20).stdout == b"old record\n"
    os.rename(data, tmp_path / "moved")
    os.symlink("/", data)
    with pytest.raises(RuntimeSetupError, match="symlink"):
        runtime.run(spec, timeout=20)


# -- read-only recursively, nosuid and nodev on every volume ------------------------------------------

def test_a_read_only_volume_of_host_root_is_read_only_and_nodev_all_the_way_down(kernel, runtime, rootfs):
    name = f"dl-ro-{uuid.uuid4().hex[:8]}"
    script = (f"(touch /host/dev/shm/{name}) 2>/dev/null && echo WROTE-SHM; "
              "(exec 3>>/host/proc/sys/kernel/core_pattern) 2>/dev/null && echo OPENED-CORE-PATTERN; "
              "(exec 3<>/host/dev/loop0) 2>/dev/null && echo OPENED-LOOP0; "
              "(exec 3</host/dev/loop0) 2>/dev/null && echo OPENED-LOOP0-READ; "
              "(mkdir /host/sys/fs/cgroup/pids/" + name + ") 2>/dev/null && echo MKDIR-CGROUP; "
              "echo done; grep ' /host' /proc/self/mountinfo")
    try:
        result = run(runtime, rootfs, script, volumes=["/:/host:ro"])
    finally:
        for leftover in (f"/dev/shm/{name}",):
            if os.path.exists(leftover):
                os.unlink(leftover)
        if os.path.isdir(f"/sys/fs/cgroup/pids/{name}"):
            os.rmdir(f"/sys/fs/cgroup/pids/{name}")
    out = result.stdout.decode()
    head, _sep, mountinfo = out.partition("done\n")
    assert head == "", out
    top = {}                                       # mount point -> its options, the last (topmost) of a stack
    every = []
    for line in mountinfo.splitlines():
        fields = line.split()
        top[fields[4]] = fields[5].split(",")
        every.append((fields[4], fields[5].split(",")))
    assert len(top) > 5, mountinfo               # /host, /host/proc, /host/sys, /host/dev, ...
    # mount_setattr reaches every mount, even one hidden under another; the walk of older kernels the visible ones
    checked = every if kernel == "new-kernel" else list(top.items())
    for point, options in checked:
        assert {"ro", "nosuid", "nodev"} <= set(options), (point, options)


def test_every_volume_is_nosuid_and_nodev_unless_privileged(kernel, runtime, rootfs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    script = "grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6"
    plain = run(runtime, rootfs, script, volumes=[f"{data}:/data"]).stdout.decode().split(",")
    assert "nosuid" in plain and "nodev" in plain and "rw" in plain
    privileged = run(runtime, rootfs, script, volumes=[f"{data}:/data"], privileged=True).stdout.decode().split(",")
    assert "nosuid" not in privileged and "nodev" not in privileged


def test_the_submount_walk_makes_every_submount_read_only(tmp_path):
    # The path kernels before 5.12 take (no mount_setattr): each submount remounted on its own.
    top, sub, view = tmp_path / "top", tmp_path / "top" / "sub", tmp_path / "view"
    top.mkdir()
    view.mkdir()

    def body():
        linux.mount("tmpfs", str(top), "tmpfs", 0, "size=1m")
        sub.mkdir()
        linux.mount("tmpfs", str(sub), "tmpfs", 0, "size=1m")
        linux.mount(str(top), str(view), None, linux.MS_BIND | linux.MS_REC)
        rootfs_lib.remount_tree(str(view), linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV, "test")
        for path in (view / "f", view / "sub" / "f"):
            try:
                path.write_text("x")
            except OSError as exc:
                assert exc.errno == errno.EROFS
            else:
                raise AssertionError(f"{path} is writable")
        (top / "f").write_text("the source stays writable")
        (sub / "f").write_text("its submount too")

    in_child(body)


def test_the_submount_walk_refuses_when_a_submount_cannot_be_remounted(tmp_path, monkeypatch):
    # Where a remount is impossible the volume is refused, never left writable.
    def refuse(*_args, **_kwargs):
        raise OSError(errno.EPERM, "mount: Operation not permitted")

    monkeypatch.setattr(linux, "mount", refuse)
    with pytest.raises(RuntimeSetupError, match="refusing to leave it writable"):
        rootfs_lib.remount_tree("/proc", linux.MS_RDONLY, "volume /x on /y")


def test_mount_setattr_recursive_read_only(tmp_path):
    top, sub = tmp_path / "top", tmp_path / "top" / "sub"
    top.mkdir()

    def body():
        linux.mount("tmpfs", str(top), "tmpfs", 0, "size=1m")
        sub.mkdir()
        linux.mount("tmpfs", str(sub), "tmpfs", 0, "size=1m")
        fd = os.open(str(top), os.O_PATH | os.O_CLOEXEC)
        try:
            linux.mount_setattr(fd, "", linux.AT_EMPTY_PATH | linux.AT_RECURSIVE, linux.MOUNT_ATTR_RDONLY)
        finally:
            os.close(fd)
        try:
            (sub / "f").write_text("x")
        except OSError as exc:
            assert exc.errno == errno.EROFS
        else:
            raise AssertionError("the submount stayed writable")

    in_child(body)


def test_read_only_rootfs_copy_carries_no_writable_submount(runtime, rootfs):
    result = run(runtime, rootfs, "(touch /x) 2>&1; (touch /bin/x) 2>&1; true", read_only=True, rootfs_mode="copy")
    assert result.stdout.decode().count("Read-only file system") == 2, result.stdout.decode()


# -- /sys/fs/cgroup is never writable from a non-privileged container ---------------------------------

def test_userns_host_network_without_cgroupns_cannot_write_the_hosts_cgroupfs(kernel, runtime, rootfs):
    name = f"dl-cg-{uuid.uuid4().hex[:8]}"
    targets = [f"/sys/fs/cgroup/{name}", f"/sys/fs/cgroup/pids/{name}", f"/sys/fs/cgroup/memory/{name}"]
    script = "; ".join(f"(mkdir {t}) 2>/dev/null && echo WROTE {t}" for t in targets) + \
        "; (touch /sys/kernel/x) 2>/dev/null && echo WROTE-SYSFS; echo done"
    try:
        result = run(runtime, rootfs, script, userns=True, network="host", namespaces=["pid", "mount", "uts", "ipc"])
    finally:
        for target in targets:
            if os.path.isdir(target):
                os.rmdir(target)
    assert result.stdout.decode().splitlines() == ["done"], result.stdout.decode()


# -- runc's regression cases ------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/proc", "/proc/sys/kernel", "/proc/self/attr/current", "/proc/1/mem"])
def test_a_volume_over_proc_is_refused(target, tmp_path):
    # CVE-2019-19921 / CVE-2023-27561: a volume mounted over /proc hides the procfs the runtime trusts.
    (tmp_path / "d").mkdir()
    with pytest.raises(RuntimeSetupError, match="refused"):
        spec_for("/nonexistent", ["/bin/true"], volumes=[f"{tmp_path}/d:{target}"])


def test_a_volume_reaching_proc_through_an_image_symlink_is_refused(kernel, runtime, tmp_path):
    # The path check above sees /evil; the symlink in the image sends it to /proc: caught when resolved.
    image = make_busybox_rootfs(str(tmp_path / "img"))
    os.symlink("/proc", os.path.join(image, "evil"))
    data = tmp_path / "vol"
    data.mkdir()
    with pytest.raises(RuntimeSetupError, match="procfs"):
        runtime.run(spec_for(image, ["/bin/true"], volumes=[f"{data}:/evil"]), timeout=20)


def test_a_masked_path_source_that_is_not_dev_null_fails_the_start(runtime, rootfs, tmp_path):
    # CVE-2025-31133: the /dev/null a masked path is bound from is checked by fd to be the 1:3 device.
    fake = tmp_path / "fake-null"
    fake.write_text("not null\n")
    with pytest.raises(RuntimeSetupError, match="1:3"):
        run(runtime, rootfs, "cat /proc/kcore", volumes=[f"{fake}:/dev/null"])


def test_dev_null_check_accepts_only_the_character_device_1_3(tmp_path):
    fd = rootfs_lib.open_dev_null("/dev/null")
    os.close(fd)
    (tmp_path / "file").write_text("")
    os.symlink("/dev/zero", tmp_path / "link")
    for path in (tmp_path / "file", tmp_path / "link", "/dev/zero"):
        with pytest.raises(RuntimeSetupError, match="1:3"):
            rootfs_lib.open_dev_null(str(path))


def test_procfs_writes_go_only_through_fds_verified_as_procfs(tmp_path):
    # CVE-2025-52881: a write meant for procfs, redirected by a bind mount, is refused (fstatfs and mount id).
    linux.write_proc("/proc/self/comm", "dl-test")
    with open("/proc/self/comm") as handle:
        assert handle.read().strip() == "dl-test"
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(OSError, match="not procfs"):
        linux.write_proc(str(plain), "x")

    def body():
        pid = os.getpid()
        linux.mount(str(plain), f"/proc/{pid}/comm", None, linux.MS_BIND)
        try:
            linux.write_proc(f"/proc/{pid}/comm", "x")
        except OSError as exc:
            assert "not procfs" in str(exc), exc
        else:
            raise AssertionError("wrote through a bind mount over procfs")
        linux.umount2(f"/proc/{pid}/comm")
        # Another procfs file bound over the target: same filesystem type, another mount; refused too.
        linux.mount("/proc/sys/kernel/domainname", f"/proc/{pid}/comm", None, linux.MS_BIND)
        try:
            linux.write_proc(f"/proc/{pid}/comm", "x")
        except OSError as exc:
            assert "mount" in str(exc), exc
        else:
            raise AssertionError("wrote through a procfs file bound over another")

    in_child(body)
    assert plain.read_text() == ""


def test_the_runtime_writes_procfs_only_through_write_proc():
    # Every write under /proc (uid_map, gid_map, setgroups, comm, oom_score_adj, ...) goes through the one
    # verified helper; a plain open() for writing under /proc anywhere in the engine is a regression.
    import re

    here = os.path.dirname(os.path.abspath(linux.__file__))
    pattern = re.compile(r"""open\(\s*f?["']/proc/[^"']*["']\s*,\s*["'][wa+]""")
    offenders = []
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if pattern.search(line):
                        offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
