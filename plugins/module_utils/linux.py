# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One small ctypes wrapper around the Linux syscalls Python's ``os`` module lacks (before 3.12).

Every syscall the runtime makes that ``os`` doesn't offer goes through here: unshare, setns, mount, umount2,
pivot_root, capget/capset, prctl, sethostname, socket (for the loopback ioctl), mknod stays in ``os``.
Failures raise ``OSError(errno, message)`` naming the call and its arguments, so callers can test ``errno``.

This module is imported by the container init before ``pivot_root``: it must not import anything lazily
(nothing from the host's library path can be loaded once the old root is gone).

It binds libc through ``_ctypes``, the C module ``ctypes`` is built on, with the few C types it needs defined
here the way ``ctypes/__init__.py`` defines them. ``import ctypes`` itself costs about 5 ms of CPU (it imports
``types`` and ``struct`` and builds every C type and its caches), a tenth of a container start;
``libc_function`` gives what ``ctypes.CDLL(None, use_errno=True).NAME`` gives. seccomp.py uses the same
bindings on the start path and imports ``ctypes`` only to compile a profile with libseccomp.
"""

from __future__ import annotations

import _ctypes
import errno
import fcntl
import os
import stat
import struct

# -- clone(2) / unshare(2) namespace flags (include/uapi/linux/sched.h) ------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "cgroup": CLONE_NEWCGROUP,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
}

# -- mount(2) flags (include/uapi/linux/mount.h) ---------------------------------------------------------------
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

MNT_DETACH = 0x2

# -- *at(2) flags, openat2(2) resolve flags, the new mount API (include/uapi/linux/{fcntl,openat2,mount}.h) --------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
# The MOUNT_ATTR_* bits have the values of the matching MS_* flags: one mask serves both APIs.
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
# Syscalls added after 5.0 share one number on every architecture (the unified table, 424 and up).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_OPENAT2 = 437
_SYS_MOUNT_SETATTR = 442
ENOSYS = errno.ENOSYS

# -- statfs(2) f_type values (include/uapi/linux/magic.h) ------------------------------------------------------
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270
DEVPTS_SUPER_MAGIC = 0x1CD1

# statvfs f_flag bits that a bind remount must keep (they are "locked" inside a user namespace).
ST_FLAGS_TO_MS = (
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

# -- prctl(2) options (include/uapi/linux/prctl.h) -------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# -- capabilities (include/uapi/linux/capability.h) -------------------------------------------------------------
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

# -- network ioctls (include/uapi/linux/sockios.h, if.h) ---------------------------------------------------------
AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

# pivot_root has no glibc wrapper: syscall numbers per architecture (arch/*/entry/syscalls, asm-generic/unistd.h).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41, "i686": 217,
                   "armv7l": 218}


# -- C types and functions through _ctypes (what ctypes/__init__.py defines, for the few types used here) ------
class c_int(_ctypes._SimpleCData):
    _type_ = "i"


class c_uint(_ctypes._SimpleCData):
    _type_ = "I"


class c_ushort(_ctypes._SimpleCData):
    _type_ = "H"


class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class c_ulonglong(_ctypes._SimpleCData):
    _type_ = "Q"


class c_ulong(_ctypes._SimpleCData):
    _type_ = "L"


class c_char_p(_ctypes._SimpleCData):
    _type_ = "z"


class c_void_p(_ctypes._SimpleCData):
    _type_ = "P"


class c_char(_ctypes._SimpleCData):
    _type_ = "c"


Structure = _ctypes.Structure
addressof = _ctypes.addressof
sizeof = _ctypes.sizeof
byref = _ctypes.byref
get_errno = _ctypes.get_errno


class _Process:
    """The process's own symbols (``dlopen(NULL)``): libc and what else is loaded, as ``ctypes.CDLL(None)``."""

    _handle = _ctypes.dlopen(None, os.RTLD_LOCAL)


class _Function(_ctypes.CFuncPtr):
    # ctypes.CDLL(..., use_errno=True)'s function class: cdecl, errno saved for get_errno(), int result.
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


def libc_function(name: str, argtypes: list | None = None, restype=c_int):
    """The C function ``name`` of the process (libc), like ``ctypes.CDLL(None, use_errno=True).name``:
    arguments converted by ``argtypes`` (None: as given), errno kept for ``get_errno()``."""
    function = _Function((name, _Process))
    if argtypes is not None:
        function.argtypes = argtypes
    function.restype = restype
    return function


class _Libc:
    """The libc functions this module calls."""

    mount = libc_function("mount", [c_char_p, c_char_p, c_char_p, c_ulong, c_char_p])
    umount2 = libc_function("umount2", [c_char_p, c_int])
    unshare = libc_function("unshare", [c_int])
    setns = libc_function("setns", [c_int, c_int])
    sethostname = libc_function("sethostname", [c_char_p, c_ulong])
    prctl = libc_function("prctl", [c_int, c_ulong, c_ulong, c_ulong, c_ulong])
    capget = libc_function("capget", [c_void_p, c_void_p])
    capset = libc_function("capset", [c_void_p, c_void_p])
    socket = libc_function("socket", [c_int, c_int, c_int])
    syscall = libc_function("syscall", None, c_long)
    fstatfs = libc_function("fstatfs", [c_int, c_void_p])


_libc = _Libc


def _fs(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def _check(result: int, what: str) -> int:
    if result == -1:
        err = get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_libc.unshare(flags), f"unshare(0x{flags:x})")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace that ``fd`` (an open ``/proc/PID/ns/*`` file) refers to."""
    _check(_libc.setns(fd, nstype), f"setns({fd}, 0x{nstype:x})")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2)."""
    _check(_libc.mount(_fs(source), _fs(target), _fs(fstype), flags, _fs(data)),
           f"mount({source!r}, {target!r}, {fstype!r}, 0x{flags:x})")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_fs(target), flags), f"umount2({target!r}, {flags})")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) through syscall(2): glibc has no wrapper."""
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {os.uname().machine}")
    _check(_libc.syscall(c_long(number), c_char_p(_fs(new_root)), c_char_p(_fs(put_old))),
           f"pivot_root({new_root!r}, {put_old!r})")


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's result (some options return a value)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option}, {arg2})")


class _CapHeader(Structure):
    _fields_ = [("version", c_uint), ("pid", c_int)]


class _CapData(Structure):
    _fields_ = [("effective", c_uint), ("permitted", c_uint), ("inheritable", c_uint)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): (effective, permitted, inheritable) of ``pid`` (0: the caller) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(byref(header), byref(data)), f"capget({pid})")
    return tuple((getattr(data[1], f) << 32) | getattr(data[0], f)  # type: ignore[return-value]
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) on the calling thread with 64-bit masks (version 3 header: two 32-bit words per set)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(byref(header), byref(data)),
           f"capset(eff=0x{effective:x}, prm=0x{permitted:x}, inh=0x{inheritable:x})")


def last_cap(proc: str = "/proc") -> int:
    """The highest capability number the running kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open(os.path.join(proc, "sys/kernel/cap_last_cap"), "rb") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def drop_bounding_set(keep: int, last: int) -> None:
    """Drop every capability not in mask ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(last + 1):
        if not keep & (1 << cap) and _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1:
            prctl(PR_CAPBSET_DROP, cap)


def clear_ambient() -> None:
    """Empty the ambient set; EINVAL means the kernel predates ambient capabilities (4.3), nothing to clear."""
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != 22:
            raise


def socket(domain: int, type_: int, protocol: int = 0) -> int:
    """socket(2), returning a bare fd (the ``socket`` module is not needed for one ioctl)."""
    return _check(_libc.socket(domain, type_, protocol), f"socket({domain}, {type_})")


def interface_up(name: str = "lo") -> None:
    """Set IFF_UP on interface ``name`` in the current network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS), the
    way ``ip link set lo up`` does, without the ``ip`` binary."""
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC)
    try:
        ifname = name.encode()[:15].ljust(16, b"\0")
        req = fcntl.ioctl(fd, SIOCGIFFLAGS, ifname + b"\0" * 24)
        flags = struct.unpack_from("H", req, 16)[0]
        if not flags & IFF_UP:
            fcntl.ioctl(fd, SIOCSIFFLAGS, ifname + struct.pack("H", flags | IFF_UP) + b"\0" * 22)
    finally:
        os.close(fd)


def mount_flags_of(path: str) -> int:
    """The MS_* flags a bind remount of ``path`` must keep (from statvfs), e.g. nosuid on /proc."""
    flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in ST_FLAGS_TO_MS if flags & st)


class _OpenHow(Structure):
    _fields_ = [("flags", c_ulonglong), ("mode", c_ulonglong), ("resolve", c_ulonglong)]


class _MountAttr(Structure):
    _fields_ = [("attr_set", c_ulonglong), ("attr_clr", c_ulonglong), ("propagation", c_ulonglong),
                ("userns_fd", c_ulonglong)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2) (Linux 5.6): ``path`` resolved under the ``RESOLVE_*`` rules; returns the fd (made
    close-on-exec). ENOSYS on older kernels: callers fall back to a walk with O_NOFOLLOW."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(c_long(_SYS_OPENAT2), c_int(dirfd), c_char_p(_fs(path)), byref(how),
                                c_ulong(sizeof(how))), f"openat2({dirfd}, {path!r}, resolve=0x{resolve:x})")


RENAME_NOREPLACE = 1  # include/uapi/linux/fs.h
_renameat2: list = []


def renameat2(src_dir_fd: int, src: str | bytes, dst_dir_fd: int, dst: str | bytes, flags: int) -> None:
    """renameat2(2) (Linux 3.15, glibc 2.28) between two directory fds; never follows a symlink in either name.
    ENOSYS where libc lacks it, EINVAL where the filesystem refuses the flags: callers fall back to renameat."""
    if not _renameat2:
        try:
            _renameat2.append(libc_function("renameat2", [c_int, c_char_p, c_int, c_char_p, c_uint]))
        except AttributeError:
            _renameat2.append(None)
    function = _renameat2[0]
    if function is None:
        raise OSError(ENOSYS, "renameat2: not in this libc")
    _check(function(src_dir_fd, _fs(src), dst_dir_fd, _fs(dst), flags), f"renameat2({src!r}, {dst!r}, 0x{flags:x})")


def open_tree(dirfd: int, path: str, flags: int) -> int:
    """open_tree(2) (Linux 5.2): with OPEN_TREE_CLONE, a detached copy of the mount (tree with AT_RECURSIVE)."""
    return _check(_libc.syscall(c_long(_SYS_OPEN_TREE), c_int(dirfd), c_char_p(_fs(path)), c_uint(flags)),
                  f"open_tree({dirfd}, {path!r}, 0x{flags:x})")


def move_mount(from_fd: int, to_fd: int) -> None:
    """move_mount(2) (Linux 5.2) of the tree ``from_fd`` onto the directory or file ``to_fd`` (both by fd)."""
    _check(_libc.syscall(c_long(_SYS_MOVE_MOUNT), c_int(from_fd), c_char_p(b""), c_int(to_fd), c_char_p(b""),
                         c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)),
           f"move_mount({from_fd}, {to_fd})")


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0) -> None:
    """mount_setattr(2) (Linux 5.12): set ``attr_set`` (MOUNT_ATTR_*) on the mount at ``dirfd``/``path``, and
    with AT_RECURSIVE on every mount below it in one step."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(_libc.syscall(c_long(_SYS_MOUNT_SETATTR), c_int(dirfd), c_char_p(_fs(path)), c_uint(flags), byref(attr),
                         c_ulong(sizeof(attr))), f"mount_setattr({dirfd}, {path!r}, set=0x{attr_set:x})")


def fstatfs_type(fd: int) -> int:
    """The ``f_type`` (filesystem magic) of the filesystem ``fd`` is on; works on O_PATH fds."""
    buf = (c_ulong * 32)()            # struct statfs is 120 bytes on 64-bit ABIs; f_type comes first
    _check(_libc.fstatfs(fd, byref(buf)), f"fstatfs({fd})")
    return buf[0] & 0xFFFFFFFF


def open_no_symlinks(path: str, flags: int = os.O_PATH) -> int:
    """Open absolute ``path`` following no symlink in any component (``RESOLVE_NO_SYMLINKS``); before 5.6,
    component by component with ``O_PATH|O_NOFOLLOW``. A symlink anywhere fails with ELOOP."""
    try:
        return openat2(AT_FDCWD, path, flags, RESOLVE_NO_SYMLINKS)
    except OSError as exc:
        if exc.errno != ENOSYS:
            raise
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in [p for p in path.split("/") if p]:
            if part == "..":
                raise OSError(errno.EINVAL, f"open {path!r}: '..' is not allowed")
            nxt = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, f"open {path!r}: {part!r} is a symlink")
        if flags & os.O_PATH:
            fd, result = -1, fd
            return result
        return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
    finally:
        if fd >= 0:
            os.close(fd)


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", "rb") as handle:
        for line in handle.read().splitlines():
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    raise OSError(22, f"no mnt_id in /proc/self/fdinfo/{fd}")


def write_proc(path: str, data: str | bytes, proc: str = "/proc") -> None:
    """Write ``data`` to the procfs file ``path`` (under ``proc``) only through an fd proven to be that procfs:
    ``fstatfs`` says PROC_SUPER_MAGIC and the file sits on the same mount as ``proc`` itself, so a bind mount
    over it (a regular file, or another procfs file such as core_pattern) is refused (CVE-2025-52881)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if fstatfs_type(fd) != PROC_SUPER_MAGIC:
            raise OSError(22, f"writing {path}: the file is not procfs (something is mounted over it); refused")
        root = os.open(proc, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if fstatfs_type(root) != PROC_SUPER_MAGIC:
                raise OSError(22, f"writing {path}: {proc} is not procfs (not procfs); refused")
            if _mount_id(fd) != _mount_id(root):
                raise OSError(22, f"writing {path}: the file is on another mount than {proc} (a bind mount over "
                                  "it); refused")
        finally:
            os.close(root)
        os.write(fd, raw)
    finally:
        os.close(fd)
