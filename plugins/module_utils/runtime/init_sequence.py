# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container's init, from the monitor's fork to ``execve``: runc's ``standard_init_linux.go`` order, readable
top to bottom in ``run``. Mount work is in ``rootfs``, user resolution in ``users``, the process helpers in
``process``; the parent side (``spawn``, the monitor) in ``spawn``.

The order: mount propagation private, the rootfs (overlayfs over the layer folders, or a copy), /proc, /dev,
/sys, /sys/fs/cgroup, volumes, ``pivot_root(".", ".")`` and a lazy unmount of the old root, masked and
read-only paths, hostname, loopback up, rlimits, no_new_privs, bounding set, user and groups, capabilities,
the seccomp filter (``apply_seccomp``; compiled by ``spawn`` in the caller), close every fd but 0-2, exec.
The init reports to the caller on a close-on-exec pipe: newline-separated JSON messages (rootfs mode,
errors). End of file without an error means ``execve`` succeeded.

Everything the init needs must be imported before ``pivot_root``: once the old root is gone, nothing can be
loaded from the host's library path, so the init's modules (this one, rootfs, users,
capabilities, process) import their few stdlib modules at the top and never lazily.

The config (a JSON-able dict, built by runtime_spec) has these keys: ``id``, ``argv``, ``env`` (list of
``K=V``), ``workdir``, ``user``, ``hostname``, ``namespaces`` (list of linux.NAMESPACE_FLAGS keys),
``isolation`` (``container``/``chroot``), ``rootfs`` (``lower`` top→bottom, ``upper``, ``work``,
``mountpoint``, ``copy``, ``mode`` auto/overlay/copy, ``read_only``), ``volumes`` (source, target,
read_only, the source's pinned ``dev``/``ino``: runtime_spec.parse_volume), ``tmpfs`` (target, options),
``capabilities`` (names), ``privileged``, ``no_new_privileges``,
``masked_paths``, ``readonly_paths``, ``rlimits`` (name, soft, hard), ``stdin_null`` (default true: fd 0
becomes the container's /dev/null), ``terminal`` (fds 0-2 are a pty slave to take as controlling terminal),
``seccomp`` (``default``, a profile path,
or None/``unconfined``: see seccomp.py), ``oom_score_adj`` (the container's, default 0: a supervisor lowers its
own and the init must not keep it).
"""

from __future__ import annotations

import errno
import fcntl
import os

try:
    import _signal as signal  # plain ints, no enum: the start path's import economies (runtime/__init__.py)
except ImportError:  # pragma: no cover - every CPython has it
    import signal

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import capabilities, rootfs
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.process import (
    DEFAULT_PATH,
    Step,
    find_executable,
    keep_only_fds,
    report,
    reset_oom_score_adj,
    set_rlimits,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.users import read_account_file, resolve_user


def apply_seccomp(compiled) -> None:
    """The seccomp hook: load the filter ``spawn`` compiled (``seccomp.Filter``; None: nothing to load). Called
    after no_new_privs, the user switch and capset, right before the fds are closed and the command is exec'd
    (runc loads the filter as late as possible when no_new_privs is set). With no_new_privs off, ``run`` calls
    it before capabilities are dropped instead: loading a filter needs no_new_privs or CAP_SYS_ADMIN."""
    seccomp.apply(compiled)


def run(config: dict, status_w: int, seccomp_filter=None, tiocsctty: int | None = None) -> None:
    """PID 1 of the container until execve. Raises RuntimeSetupError; never returns on success.
    ``tiocsctty``: termios.TIOCSCTTY, for a container on a terminal (``spawn`` looks it up)."""
    cid = config.get("name") or config["id"]
    # Before non-dumpable: a non-dumpable process's /proc/self files belong to root, which a rootless init is not.
    # Nothing but this process runs in the container yet, and /proc is still the host's.
    reset_oom_score_adj(int(config.get("oom_score_adj") or 0))
    # Non-dumpable until exec: processes of the container can't ptrace us or open /proc/1/exe, which is the
    # host's Python until execve replaces it (CVE-2019-5736).
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # the container never outlives its monitor
    os.setsid()
    if config.get("terminal"):
        # stdio is a pty slave (the CLI's ``run -t``): make it the session's controlling terminal, so the
        # container's line discipline turns Ctrl-C / Ctrl-Z into signals (runc's console setup does this).
        with Step("taking the terminal"):
            if tiocsctty is None:
                raise RuntimeSetupError("no TIOCSCTTY: the terminal was not prepared by spawn()")
            fcntl.ioctl(0, tiocsctty, 0)
    # Signal dispositions and mask: the monitor reset them right before it forked us (and sets its forwarding
    # handlers only afterwards), so they are the defaults already; 62 more sigaction calls would change nothing.
    os.umask(0)
    namespaces = set(config.get("namespaces") or ())
    container = config.get("isolation", "container") == "container"
    privileged = bool(config.get("privileged"))
    ro = 0 if privileged else linux.MS_RDONLY
    nodev = 0 if privileged else linux.MS_NODEV

    if "mount" in namespaces:
        # Nothing mounted from here on may propagate back to the host.
        rootfs.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE, None, "making / private")
    layout = config["rootfs"]
    mode = rootfs.mount_rootfs(layout, cid, nodev)
    report(status_w, rootfs=mode)
    root = layout["mountpoint"]
    image = config.get("image") or cid

    proc = rootfs.real_dir(root, "proc", image)
    rootfs.real_dir(root, "dev", image)
    sys_dir = rootfs.real_dir(root, "sys", image)
    rootfs.mount("proc", proc, "proc", linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, None, "mounting /proc")
    rootfs.make_dev(root, nodev)
    sys_flags = linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV | ro
    try:
        linux.mount("sysfs", sys_dir, "sysfs", sys_flags, None)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise RuntimeSetupError(f"mounting /sys: {exc}") from None
        # sysfs can only be mounted by the owner of the network namespace: bind the host's. Read-only (unless
        # privileged) on every submount too: the host's cgroupfs sits under it, and with a user namespace mapping
        # our root to the host's, a writable one would be the host's cgroups (/sys/fs/cgroup never writable).
        rootfs.bind_path_tree("/sys", sys_dir, sys_flags & rootfs.MOUNT_ATTRS, "binding /sys")
    if "cgroup" in namespaces:
        rootfs.mount_cgroups(root, sys_flags)
    # User mounts last, shallow before deep, so a volume can sit inside another.
    mounts = [("v", v) for v in config.get("volumes") or ()] + [("t", t) for t in config.get("tmpfs") or ()]
    for kind, entry in sorted(mounts, key=lambda m: os.path.normpath(m[1]["target"]).count("/")):
        if kind == "v":
            rootfs.mount_volume(root, entry, cid, nodev)
        else:
            rootfs.mount_tmpfs(root, entry, cid)

    if container:
        rootfs.pivot(root)
    else:
        with Step("chroot"):
            os.chdir(root)
            os.chroot(".")
            os.chdir("/")
    # stdin from /dev/null: use the container's node, not the host's (runc reOpenDevNull).
    if config.get("stdin_null", True):
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    if layout.get("read_only"):
        with Step("remounting / read-only"):
            linux.mount(None, "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.mount_flags_of("/"),
                        None)
    os.umask(0o022)
    if "uts" in namespaces and config.get("hostname"):
        with Step(f"setting the hostname {config['hostname']!r}"):
            linux.sethostname(config["hostname"])
    if not privileged:
        rootfs.readonly_paths(config.get("readonly_paths", rootfs.READONLY_PATHS))
        rootfs.mask_paths(config.get("masked_paths", rootfs.MASKED_PATHS))
    if "net" in namespaces:
        with Step("bringing up the loopback interface"):
            linux.interface_up("lo")
    set_rlimits(config.get("rlimits"))

    user = resolve_user(config.get("user") or "", read_account_file("/etc/passwd"), read_account_file("/etc/group"))
    env = {}
    for item in config.get("env") or ():
        key, value = (item.split("=", 1) + [""])[:2]
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", user["home"])
    if config.get("hostname"):
        env.setdefault("HOSTNAME", config["hostname"])

    workdir = config.get("workdir") or "/"
    if os.path.normpath(workdir) == "/proc" or os.path.normpath(workdir).startswith("/proc/"):
        # Refused before any chdir, also for a config that never went through build_spec: /proc/self/fd/N is
        # a host directory if an fd leaked (CVE-2024-21626).
        raise RuntimeSetupError(f"working directory {workdir!r} is under /proc: refused. Choose a directory of "
                                "the image.")
    with Step(f"entering the working directory {workdir}"):
        if not os.path.isdir(workdir):
            os.makedirs(workdir, 0o755)
        os.chdir(workdir)
        cwd = os.getcwd()  # ENOENT for a directory outside our root (CVE-2024-21626: leaked fd as cwd)
        if not cwd.startswith("/") or cwd.startswith("/proc/"):
            raise RuntimeSetupError(f"working directory {workdir!r} resolves to {cwd!r}, outside the container")

    if config.get("no_new_privileges", True):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    else:
        # Without no_new_privs the filter needs CAP_SYS_ADMIN to load: now, before capabilities are dropped
        # (runc's order). Docker's profile allows the prctl/setgroups/setresuid/capset calls that follow.
        apply_seccomp(seccomp_filter)
        seccomp_filter = None
    last = linux.last_cap()
    caps = capabilities.of_config(config)
    with Step("dropping capabilities"):
        linux.drop_bounding_set(caps, last)
    if "user" in namespaces and (user["uid"] or user["gid"]):
        raise RuntimeSetupError(f"user {config.get('user')!r} (uid {user['uid']}, gid {user['gid']}): the user "
                                "namespace maps only root (your own uid). Run as user root, or without userns.")
    with Step(f"switching to user {config.get('user') or '0'} (uid {user['uid']}, gid {user['gid']})"):
        if "user" not in namespaces:      # setgroups is denied in our user namespace (single-id map)
            os.setgroups(user["groups"])
        os.setresgid(user["gid"], user["gid"], user["gid"])
        os.setresuid(user["uid"], user["uid"], user["uid"])
    # Docker's rule: a non-root user starts with empty effective and permitted sets (the bounding set still
    # limits what setuid binaries and file capabilities can give back).
    granted = caps if user["uid"] == 0 else 0
    with Step("setting capabilities"):
        linux.capset(granted, granted, 0)
        linux.clear_ambient()
    apply_seccomp(seccomp_filter)

    path = find_executable(config["argv"][0], env)
    keep_only_fds({0, 1, 2, status_w})
    try:
        os.execve(path, config["argv"], env)
    except OSError as exc:
        raise RuntimeSetupError(f"exec {config['argv'][0]!r}: {exc.strerror}. Check 'command' and the image.")
