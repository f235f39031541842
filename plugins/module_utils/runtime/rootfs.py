# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container's file system, built by the init before ``pivot_root`` (runc's libcontainer ``rootfs_linux.go``):
the rootfs (overlayfs over the layer folders, or a merged copy), /proc, /dev, /sys, /sys/fs/cgroup, volumes
and tmpfs mounts, the switch to the new root, then the masked and read-only paths.

Paths from the image are hostile: mount points are resolved inside the rootfs and held as fds
(``open_target``), volume sources are pinned by device and inode (``open_volume_source``), /proc and /dev/null
are proven by fstatfs/fstat before anything is bound from or over them. The init runs this after it lost the
host's library path for good, so nothing here imports lazily.
"""

from __future__ import annotations

import errno
import os
import stat

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import whiteouts
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.process import Step

# Docker's masked and read-only paths (moby oci/defaults.go).
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# The only /proc files a volume may cover (lxcfs's), as runc's checkProcMount allows (libcontainer
# rootfs_linux.go): anything else under /proc would hide the procfs the runtime and its masks rely on
# (CVE-2019-19921, CVE-2023-27561).
PROC_BIND_ALLOWED = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                     "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid")
# What a volume pins at create time (runtime_spec.parse_volume) and the init checks at every start.
# host_path: the path as given, to notice a relinked one; boot: the kernel's boot_id then (device numbers of
# btrfs subvolumes, LVM or NFS can change with a reboot, inode numbers don't).
VOLUME_PIN_KEYS = ("dev", "ino", "boot", "host_path")
BOOT_ID = "/proc/sys/kernel/random/boot_id"
MOUNT_ATTRS = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC  # == MOUNT_ATTR_* bits

# The /dev a container gets: (name, major, minor), all 0666 root:root (runc libcontainer/specconv AllowedDevices).
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_MAX_SYMLINKS = 255


def secure_join(root: str, unsafe_path: str) -> str:
    """``root`` joined with ``unsafe_path`` as if ``root`` were ``/``: ``..`` and symlinks (absolute or
    relative) are resolved inside ``root`` and can never leave it (the filepath-securejoin algorithm).
    Components that don't exist yet are kept as they are. Raises RuntimeSetupError on a symlink loop."""
    root = os.path.abspath(root)
    resolved = ""
    parts = [p for p in unsafe_path.split("/") if p]
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = os.path.dirname(resolved) if resolved else ""
            if resolved == "/":
                resolved = ""
            continue
        candidate = resolved + "/" + part
        try:
            st = os.lstat(root + candidate)
        except OSError:
            resolved = candidate
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise RuntimeSetupError(f"resolving {unsafe_path} in {root}: too many symlinks. Fix the image.")
            target = os.readlink(root + candidate)
            if target.startswith("/"):
                resolved = ""
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved = candidate
    return root + resolved if resolved else root


def merge_layers(lowers_top_to_bottom: list[str], dest: str) -> None:
    """Flatten the layer folders into ``dest`` (the copy fallback when overlayfs can't be used): the same merge
    as ``whiteouts.merge`` (what a ``dest`` tree gets), both forms of whiteouts, fd-relative, never following a
    layer's link. ``dest`` must not exist or be empty."""
    whiteouts.merge(list(reversed(lowers_top_to_bottom)), dest)


def mount(source, target, fstype, flags, data, what: str) -> None:
    with Step(what):
        linux.mount(source, target, fstype, flags, data)


def _mkdir_p(path: str, mode: int = 0o755) -> None:
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except FileExistsError:
        pass


def real_dir(root: str, name: str, image: str) -> str:
    """``root/name`` for /proc, /sys, /dev: created when missing, refused when a symlink or not a directory."""
    path = os.path.join(root, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return path
    if stat.S_ISLNK(st.st_mode):
        raise RuntimeSetupError(
            f"container {image}: /{name} in the image is a symlink (to {os.readlink(path)!r}); refusing to mount "
            f"over it, a link could send the mount outside the container. Rebuild the image with a real /{name}.")
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeSetupError(f"container {image}: /{name} in the image is not a directory. Rebuild the image.")
    return path


def mount_rootfs(rootfs: dict, cid: str, nodev: int) -> str:
    target = rootfs["mountpoint"]
    _mkdir_p(target, 0o700)
    mode = rootfs.get("mode") or "auto"
    # overlayfs reads only overlay-form whiteouts: a plain-form folder (or an opaque layer root) would bring
    # deleted files back, so "auto" copies instead and "overlay" says why it can't.
    unfit = whiteouts.overlay_unfit(rootfs["lower"]) if mode in ("auto", "overlay") else None
    if unfit is not None and mode == "overlay":
        raise RuntimeSetupError(f"container {cid}: mounting the overlay rootfs: {unfit}; overlayfs would show "
                                "deleted files. Use rootfs mode 'copy' or 'auto', or pull the image again as root.")
    if unfit is None and mode in ("auto", "overlay"):
        try:
            _mount_overlay(rootfs["lower"], rootfs["upper"], rootfs["work"], target, nodev,
                           volatile=bool(rootfs.get("volatile")))
            return "overlay"
        except OSError as exc:
            if mode == "overlay":
                raise RuntimeSetupError(f"container {cid}: mounting the overlay rootfs: {exc}. Use rootfs mode "
                                        "'copy' or put the store on a filesystem overlayfs supports.") from None
    copy = rootfs["copy"]
    done = copy + ".done"
    if not os.path.exists(done):
        with Step(f"container {cid}: copying the image layers into {copy}"):
            whiteouts.remove_tree(copy)
            merge_layers(rootfs["lower"], copy)
            with open(done, "w"):
                pass
    # pivot_root needs a mount point: bind the copy onto the mount target. Not recursive: nothing mounted under
    # the copy on the host comes along, so the rootfs is one mount and `read_only` covers all of it.
    mount(copy, target, None, linux.MS_BIND, None, f"container {cid}: binding the rootfs copy")
    if nodev:
        mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | nodev | linux.mount_flags_of(target), None,
              f"container {cid}: remounting the rootfs copy nodev")
    return "copy"


def _mount_overlay(lower: list[str], upper: str, work: str, target: str, flags: int = 0,
                   volatile: bool = False) -> None:
    """overlayfs with lowerdir top→bottom. Lower dirs sharing one parent (the store's layers/sha256) are
    given relative to it: the whole option string must fit in one page (4096 bytes).

    ``volatile`` (a one-shot's writable layer, thrown away after the run): overlayfs skips every sync of the
    upper filesystem, above all the syncfs(2) of the whole filesystem when the mount goes away with the
    container's mount namespace (a writeback of every dirty inode of the store's filesystem and a disk cache
    flush, 2-7 ms of each one-shot here). The kernel marks the work dir with ``work/incompat/volatile``
    and refuses a later mount until it is removed (runtime.OneShotDir does). Kernels before 5.10 don't know the
    option: mounted without it."""
    for path in [upper, work] + list(lower):
        if any(c in path for c in ",:\\"):
            raise OSError(errno.EINVAL, f"overlay path {path!r} contains ',', ':' or '\\'")
    _mkdir_p(upper, 0o755)
    _mkdir_p(work, 0o700)
    parents = {os.path.dirname(p) for p in lower}
    if len(parents) == 1 and len(lower) > 1:
        os.chdir(parents.pop())
        lowers = [os.path.basename(p) for p in lower]
    else:
        lowers = list(lower)
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    if len(data) >= 4000:
        raise RuntimeSetupError(f"{len(lower)} layers don't fit in overlayfs' mount options ({len(data)} bytes). "
                                "Squash the image into fewer layers.")
    if volatile:
        try:
            linux.mount("overlay", target, "overlay", flags, data + ",volatile")
            return
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    linux.mount("overlay", target, "overlay", flags, data)


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, super options) of the host's cgroup hierarchies under /sys/fs/cgroup."""
    result = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for raw in handle.read().decode("utf-8", "replace").splitlines():
            left, right = (raw.split(" - ", 1) + [""])[:2]
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            point, fstype = fields[4], rfields[0]
            if point.startswith("/sys/fs/cgroup") and fstype in ("cgroup", "cgroup2", "tmpfs"):
                opts = ",".join(o for o in rfields[2].split(",") if o not in ("rw", "ro"))
                result.append((point, fstype, opts))
    return result


def mount_cgroups(root: str, flags: int) -> None:
    target = os.path.join(root, "sys/fs/cgroup")
    if not os.path.isdir(target):
        return
    mounts = _cgroup_mounts()
    kinds = {m[0]: m[1] for m in mounts}
    if kinds.get("/sys/fs/cgroup") == "cgroup2":
        mount("cgroup2", target, "cgroup2", flags, None, "mounting /sys/fs/cgroup (cgroup2)")
        return
    # v1 or hybrid: a tmpfs holding one mount per hierarchy, then the tmpfs made read-only.
    mount("tmpfs", target, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, "mode=755",
          "mounting the /sys/fs/cgroup tmpfs")
    for point, fstype, opts in mounts:
        if point == "/sys/fs/cgroup" or os.path.dirname(point) != "/sys/fs/cgroup":
            continue
        dest = os.path.join(target, os.path.basename(point))
        os.mkdir(dest, 0o755)
        try:
            linux.mount("cgroup", dest, fstype, flags, opts if fstype == "cgroup" else None)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EBUSY, errno.EINVAL):
                raise RuntimeSetupError(f"mounting {point}: {exc}") from None
            # Without the right to mount this hierarchy (user namespace): the host's, read-only all the way down.
            bind_path_tree(point, dest, flags & MOUNT_ATTRS, f"binding {point}")
    for entry in os.listdir("/sys/fs/cgroup"):
        host = os.path.join("/sys/fs/cgroup", entry)
        if os.path.islink(host) and not os.path.lexists(os.path.join(target, entry)):
            os.symlink(os.readlink(host), os.path.join(target, entry))
    if flags & linux.MS_RDONLY:
        mount(None, target, None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NOEXEC
              | linux.MS_NODEV, "mode=755", "remounting /sys/fs/cgroup read-only")


def make_dev(root: str, nodev: int) -> None:
    """/dev as a tmpfs with the standard devices. Without a devices cgroup (Docker has one; v2 needs eBPF), the
    allow-list is made with ``nodev``: the tmpfs is nodev, so a node created inside with CAP_MKNOD can't be
    opened, and the standard devices are bind mounts of the host's nodes, which keep their own mount flags."""
    dev = os.path.join(root, "dev")
    mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME | nodev, "mode=755,size=65536k",
          "mounting /dev")
    for name, major, minor in DEVICES:
        path = os.path.join(dev, name)
        try:
            if nodev:
                raise PermissionError
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        except PermissionError:
            # On a nodev /dev, or without mknod (user namespace): bind the host's node (runc does the latter).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))
            mount("/dev/" + name, path, None, linux.MS_BIND, None, f"binding /dev/{name}")
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    try:
        linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                    "newinstance,ptmxmode=0666,mode=0620,gid=5")
    except OSError:
        # gid 5 may not be mapped in a user namespace.
        mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620",
              "mounting /dev/pts")
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    mount("shm", shm, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, "mode=1777,size=65536k",
          "mounting /dev/shm")
    mqueue = os.path.join(dev, "mqueue")
    os.mkdir(mqueue, 0o755)
    try:
        linux.mount("mqueue", mqueue, "mqueue", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, None)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):  # mqueue needs an IPC namespace we own
            raise RuntimeSetupError(f"mounting /dev/mqueue: {exc}") from None
    for name, target in DEV_SYMLINKS:
        os.symlink(target, os.path.join(dev, name))


def bind_tree(src_fd: int, tgt_fd: int, attrs: int, what: str) -> None:
    """Bind the mount tree at ``src_fd`` (with its submounts) onto ``tgt_fd``, every mount of it with ``attrs``
    (MS_RDONLY/NOSUID/NODEV/NOEXEC, equal to the MOUNT_ATTR_* bits). Both ends are fds: no path is looked up
    again between the checks and the mount.

    Linux 5.12+: a detached copy (open_tree), ``mount_setattr(AT_RECURSIVE)`` on it, then attached: the tree is
    never visible without its flags. Before: ``mount(MS_BIND|MS_REC)`` through /proc/self/fd, then each submount
    remounted from /proc/self/mountinfo; a submount that can't be remounted fails the start (Docker 25's
    recursive read-only: never left writable)."""
    try:
        tree = linux.open_tree(src_fd, "", linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC | linux.AT_RECURSIVE
                               | linux.AT_EMPTY_PATH)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise RuntimeSetupError(f"{what}: {exc}") from None
        tree = None
    if tree is not None:
        try:
            if attrs:
                linux.mount_setattr(tree, "", linux.AT_EMPTY_PATH | linux.AT_RECURSIVE, attrs)
            linux.move_mount(tree, tgt_fd)
            return
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise RuntimeSetupError(f"{what}: {exc}") from None
        finally:
            os.close(tree)
    mount(f"/proc/self/fd/{src_fd}", f"/proc/self/fd/{tgt_fd}", None, linux.MS_BIND | linux.MS_REC, None, what)
    if attrs:
        remount_tree(os.readlink(f"/proc/self/fd/{tgt_fd}"), attrs, what)


def bind_path_tree(source: str, target: str, attrs: int, what: str) -> None:
    """``bind_tree`` for runtime-owned paths (/sys, the host's cgroup hierarchies): neither is a symlink."""
    with Step(what):
        src = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            tgt = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                bind_tree(src, tgt, attrs, what)
            finally:
                os.close(tgt)
        finally:
            os.close(src)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def remount_tree(path: str, attrs: int, what: str) -> None:
    """Kernels without mount_setattr: remount ``path`` and every mount below it (from /proc/self/mountinfo,
    shallow first) with ``attrs`` added to the flags each already has. Any failure refuses the start."""
    prefix = path.rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for raw in handle.read().decode("utf-8", "surrogateescape").splitlines():
            fields = raw.split(" ")
            if len(fields) > 4:
                point = _unescape_mountinfo(fields[4])
                if point == path or point.startswith(prefix):
                    points.append(point)
    for point in sorted(set(points), key=lambda p: p.count("/")):
        try:
            linux.mount(None, point, None, linux.MS_BIND | linux.MS_REMOUNT | attrs | linux.mount_flags_of(point),
                        None)
        except OSError as exc:
            raise RuntimeSetupError(
                f"{what}: this kernel has no mount_setattr (Linux 5.12) and the submount {point} can't be remounted "
                f"with flags 0x{attrs:x} ({exc.strerror}); refusing to leave it writable. Use a newer kernel or a "
                "volume without submounts.") from None


def boot_id(path: str = BOOT_ID) -> str | None:
    """The kernel's boot_id (a new one at every boot), None where it can't be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(64).decode("ascii", "replace").strip() or None
    except OSError:
        return None


def open_volume_source(vol: dict, cid: str) -> tuple[int, bool]:
    """The volume's source as an O_PATH fd, opened following no symlink, and checked against the device and inode
    pinned when the container was created: a source swapped since (by a container writing a shared parent, as
    ``mv config x; ln -s / config``) fails the start instead of mounting whatever is there now."""
    source, target = vol["source"], vol["target"]
    name = f"container {cid}: volume {source}:{target}"
    try:
        fd = linux.open_no_symlinks(source)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RuntimeSetupError(
                f"{name}: the source changed since the container was created: a symlink now stands in its path "
                "(it was resolved to a real path then); refusing to follow it, it could lead anywhere on the host. "
                f"Check {source}, then recreate the container (recreate: true).") from None
        if exc.errno == errno.ENOENT:
            raise RuntimeSetupError(f"{name}: the source no longer exists. Create it again and recreate the "
                                    "container (recreate: true).") from None
        raise RuntimeSetupError(f"{name}: opening the source: {exc}") from None
    st = os.fstat(fd)
    same_boot = vol.get("boot") is None or vol.get("boot") == boot_id()
    if vol.get("ino") is not None and (st.st_ino != vol["ino"] or (same_boot and st.st_dev != vol.get("dev"))):
        os.close(fd)
        raise RuntimeSetupError(
            f"{name}: the source changed since the container was created (device:inode {vol.get('dev')}:"
            f"{vol['ino']} then, {st.st_dev}:{st.st_ino} now): it was replaced, perhaps by a container writing its "
            f"parent. Check {source}, then recreate the container (recreate: true) to mount what is there now.")
    return fd, stat.S_ISDIR(st.st_mode)


def _open_in_root(root: str, root_fd: int, rel: str) -> int:
    """O_PATH fd of ``rel`` resolved inside ``root`` (``RESOLVE_IN_ROOT``: ``..`` and absolute symlinks stay
    under it; no magic links). Before 5.6: secure_join's path walked component by component without following."""
    try:
        return linux.openat2(root_fd, rel, os.O_PATH, linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    resolved = os.path.relpath(secure_join(root, "/" + rel), os.path.abspath(root))
    fd = os.dup(root_fd)
    try:
        for part in [] if resolved == "." else resolved.split("/"):
            nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, f"{rel}: {part!r} became a symlink")
        fd, result = -1, fd
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def open_target(root: str, root_fd: int, target: str, is_dir: bool, what: str) -> int:
    """O_PATH fd of the mount point ``target`` inside the rootfs, made when missing: every component created and
    reopened by fd under the root (mkdirat, openat O_CREAT|O_EXCL), never through a symlink out of it."""
    try:
        return _open_in_root(root, root_fd, target.lstrip("/"))
    except FileNotFoundError:
        pass
    # Missing parts: along the path secure_join resolves (the image's own symlinks followed, inside the root).
    resolved = os.path.relpath(secure_join(root, target), os.path.abspath(root))
    parts = resolved.split("/")
    parent = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            rel = "/".join(parts[:i + 1])
            try:
                nxt = _open_in_root(root, root_fd, rel)
            except FileNotFoundError:
                try:
                    if i == len(parts) - 1 and not is_dir:
                        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                         0o644, dir_fd=parent))
                    else:
                        os.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                nxt = _open_in_root(root, root_fd, rel)
            os.close(parent)
            parent = nxt
        parent, result = -1, parent
        return result
    except OSError as exc:
        raise RuntimeSetupError(f"{what}: creating the mount point: {exc}") from None
    finally:
        if parent >= 0:
            os.close(parent)


def _check_target_fs(root: str, fd: int, what: str) -> None:
    """A mount point on procfs is refused (runc's checkProcMount), except the few files lxcfs covers: the path was
    checked by the spec, this catches an image symlink leading there (CVE-2019-19921, CVE-2023-27561)."""
    if linux.fstatfs_type(fd) != linux.PROC_SUPER_MAGIC:
        return
    where = "/" + os.path.relpath(os.readlink(f"/proc/self/fd/{fd}"), os.path.abspath(root))
    if where not in PROC_BIND_ALLOWED:
        raise RuntimeSetupError(f"{what}: the mount point resolves to {where}, on procfs; a mount over /proc is "
                                "refused (it would hide the procfs the container's masks rely on). Choose another "
                                "container path, or fix the image's symlink.")


def mount_volume(root: str, vol: dict, cid: str, nodev: int) -> None:
    """Bind a volume: source pinned and opened without symlinks, target resolved under the rootfs, both by fd;
    read-only (``:ro``) and, unless privileged, nosuid and nodev on every submount."""
    what = f"container {cid}: binding volume {vol['source']} on {vol['target']}"
    src_fd, is_dir = open_volume_source(vol, cid)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tgt_fd = open_target(root, root_fd, vol["target"], is_dir, what)
        try:
            _check_target_fs(root, tgt_fd, what)
            attrs = (linux.MS_RDONLY if vol.get("read_only") else 0) | (linux.MS_NOSUID | nodev if nodev else 0)
            bind_tree(src_fd, tgt_fd, attrs, what)
        finally:
            os.close(tgt_fd)
    finally:
        os.close(root_fd)
        os.close(src_fd)


def mount_tmpfs(root: str, entry: dict, cid: str) -> None:
    what = f"container {cid}: mounting tmpfs on {entry['target']}"
    flags = linux.MS_NOSUID | linux.MS_NODEV
    options = []
    for opt in (entry.get("options") or "").split(","):
        opt = opt.strip()
        if opt in ("", "rw"):
            continue
        if opt == "ro":
            flags |= linux.MS_RDONLY
        elif opt == "noexec":
            flags |= linux.MS_NOEXEC
        elif opt in ("exec", "suid", "dev", "nosuid", "nodev"):
            continue
        else:
            options.append(opt)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_target(root, root_fd, entry["target"], True, what)
    finally:
        os.close(root_fd)
    try:
        _check_target_fs(root, fd, what)
        mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", flags, ",".join(options) or None, what)
    finally:
        os.close(fd)


def pivot(root: str) -> None:
    """pivot_root(".", "."): the old root ends up stacked on the new one and is detached right away, so no
    directory for it is needed in the image (runc's trick, see pivot_root(2) NOTES)."""
    with Step("pivot_root"):
        os.chdir(root)
        linux.pivot_root(".", ".")
        # Make the old root a slave so the unmount below can't propagate anywhere (belt and braces: all private).
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC, None)
        linux.umount2(".", linux.MNT_DETACH)
        os.chdir("/")


def open_dev_null(path: str = "/dev/null") -> int:
    """An O_PATH fd of ``path``, proven by fstat to be the character device 1:3: the source masked files are
    bound from. Anything else there (a volume over /dev/null, a symlink to a procfs file) fails the start rather
    than being bound over /proc/kcore and the like (CVE-2025-31133)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeSetupError(f"masking paths: opening {path}: {exc.strerror}; refusing to start unmasked.") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != (1, 3):
        os.close(fd)
        raise RuntimeSetupError(
            f"masking paths: {path} in the container is not the character device 1:3 (null); refusing to bind it "
            "over the masked paths. Don't mount a volume over /dev/null.")
    return fd


def mask_paths(paths) -> None:
    """Masked directories get a read-only tmpfs, files the verified /dev/null; both mounted through fds."""
    null = None
    try:
        for path in paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode):
                    continue
                if not stat.S_ISDIR(mode) and null is None:
                    null = open_dev_null()
                with Step(f"masking {path}"):
                    if stat.S_ISDIR(mode):
                        linux.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", linux.MS_RDONLY, None)
                    else:
                        linux.mount(f"/proc/self/fd/{null}", f"/proc/self/fd/{fd}", None, linux.MS_BIND, None)
            finally:
                os.close(fd)
    finally:
        if null is not None:
            os.close(null)


def readonly_paths(paths) -> None:
    """Each path bound onto itself read-only, with every submount, through an fd opened without following a
    final symlink (the same bind_tree as volumes: the clone keeps procfs' nosuid/nodev/noexec)."""
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                continue
            bind_tree(fd, fd, linux.MS_RDONLY, f"making {path} read-only")
        finally:
            os.close(fd)
