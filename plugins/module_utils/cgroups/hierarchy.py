# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where cgroups live: :func:`detect` finds the hierarchy each controller is attached to (pure v2, v1 with one
mount per controller, or hybrid: systemd's v1 controllers plus a cgroup2 mount at ``<root>/unified``), and the
path rules: :func:`validate_path` (never the root, never outside the hierarchy), :func:`container_cgroup_path`
(``dockerless/<name>``, the convention container_run and cgroup_limit share) and :func:`cgroup_dir`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError

# v1 mounts controllers under their own names; only "io" was called "blkio" there.
_V1_NAME = {"io": "blkio"}
_KNOWN_V1 = frozenset(
    "cpu cpuacct cpuset memory devices freezer net_cls net_prio blkio perf_event hugetlb pids rdma misc".split()
)
# fullmatch: "$" also matches before a trailing newline, which the kernel then refuses.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def container_cgroup_path(name: str) -> str:
    """The cgroup of container ``name`` of container_run: ``dockerless/<name>`` (shared convention)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > 128:
        raise CgroupError(
            f"container name {name!r}: expected letters, digits, '_', '.' or '-' (not first), at most 128 characters"
        )
    return f"dockerless/{name}"


def validate_path(path: str) -> str:
    """A cgroup path relative to the hierarchy root -> its normal form, or :class:`CgroupError`.

    A leading ``/`` is accepted (``/dockerless/web`` as in /proc/PID/cgroup); ``..``, ``.``, empty components,
    NUL and the root itself are refused: this module never manages the root cgroup or leaves the hierarchy.
    """
    if not isinstance(path, str):
        raise CgroupError(f"cgroup path {path!r}: expected a string like 'dockerless/web'")
    parts = path.strip("/").split("/")
    if path.strip("/") == "":
        raise CgroupError("cgroup path '/': refusing to manage the root cgroup; give a path like 'dockerless/web'")
    for part in parts:
        # Control characters too: the kernel refuses a '\n' in a cgroup name, and none is a sane name.
        if part in ("", ".", "..") or len(part.encode()) > 255 or any(c < " " or c == "\x7f" for c in part):
            raise CgroupError(
                f"cgroup path {path!r}: component {part!r} is not allowed (no '..', '.', empty or over-long "
                "components, no control characters); give a path below the hierarchy root like 'dockerless/web'"
            )
    return "/".join(parts)


@dataclass(frozen=True)
class Mount:
    """Where one controller lives: cgroup ``version`` (1 or 2) and the hierarchy's mount directory."""

    controller: str  # the v2 name (io, not blkio)
    version: int
    path: str


@dataclass
class Hierarchy:
    """The cgroup layout under ``root``: ``mode`` is ``v1``, ``v2`` or ``hybrid``."""

    root: str
    mode: str
    controllers: dict[str, Mount] = field(default_factory=dict)
    unified: str | None = None  # the cgroup2 mount (root on v2, root/unified on hybrid), None on pure v1

    def mount(self, controller: str) -> Mount | None:
        return self.controllers.get(controller)

    def describe(self) -> str:
        names = ", ".join(f"{c} (v{m.version})" for c, m in sorted(self.controllers.items())) or "none"
        return f"{self.mode} hierarchy at {self.root} with controllers: {names}"


def read_text(path: str) -> str | None:
    """A cgroupfs file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CgroupError(f"reading {path}: {exc.strerror}; check that cgroupfs is mounted and readable (run as root)")


def detect(cgroup_root: str = "/sys/fs/cgroup") -> Hierarchy:
    """Find which hierarchy each controller is on: pure v2 (``cgroup.controllers`` at the root), v1 (one
    directory per controller mount, combined mounts like ``cpu,cpuacct`` included) or hybrid (v1 plus a cgroup2
    mount, usually ``unified``, whose ``cgroup.controllers`` lists what is not bound to v1)."""
    root = os.path.abspath(cgroup_root)
    if not os.path.isdir(root):
        raise CgroupError(f"cgroup root {root}: not a directory; is cgroupfs mounted? Pass cgroup_root to override")
    top = read_text(os.path.join(root, "cgroup.controllers"))
    if top is not None:
        ctrls = {c: Mount(c, 2, root) for c in top.split()}
        return Hierarchy(root=root, mode="v2", controllers=ctrls, unified=root)
    controllers: dict[str, Mount] = {}
    unified = None
    unified_ctrls: list[str] = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if not os.path.isdir(path):
            continue
        v2 = read_text(os.path.join(path, "cgroup.controllers"))
        if v2 is not None:
            if unified is None:
                unified, unified_ctrls = path, v2.split()
            continue
        if not os.path.exists(os.path.join(path, "cgroup.procs")):
            continue
        real = os.path.realpath(path)
        for name in os.path.basename(real).split(","):
            if name not in _KNOWN_V1:
                continue  # named hierarchies such as name=systemd carry no controller
            logical = "io" if name == "blkio" else name
            controllers.setdefault(logical, Mount(logical, 1, real))
    for name in unified_ctrls:
        controllers.setdefault(name, Mount(name, 2, unified))
    if not controllers and unified is None:
        raise CgroupError(
            f"cgroup root {root}: no cgroup v1 controller mounts and no cgroup2 mount found; mount cgroupfs or "
            "pass cgroup_root"
        )
    mode = "hybrid" if unified is not None and any(m.version == 1 for m in controllers.values()) else "v1"
    if unified is not None and mode == "v1":
        mode = "v2"  # only a cgroup2 mount below root: treat it as the v2 hierarchy
    return Hierarchy(root=root, mode=mode, controllers=controllers, unified=unified)


def v1_name(controller: str) -> str:
    """The name cgroup v1 mounts ``controller`` (a v2 name) under."""
    return _V1_NAME.get(controller, controller)


def cgroup_dir(mount_path: str, path: str) -> str:
    """The directory of cgroup ``path`` (validated, relative) in the hierarchy mounted at ``mount_path``."""
    target = os.path.join(mount_path, *path.split("/"))
    # cgroupfs has no symlinks; a fake or tampered tree might. Never act outside the mount.
    real_mount = os.path.realpath(mount_path)
    if os.path.commonpath([os.path.realpath(target), real_mount]) != real_mount:
        raise CgroupError(f"cgroup {path}: {target} resolves outside {mount_path}; refusing to use it")
    return target
