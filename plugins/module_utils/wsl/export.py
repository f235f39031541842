# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export an image of the store as what WSL imports: a root filesystem tar, ``.tar.gz`` or ``.wsl``.

The flattened image is never written to disk. ``MergedTree`` walks the image's layer folders top → bottom and
keeps, for every path, the entry of the topmost layer that has it, applying whiteouts (``.wh.NAME`` or the
overlay form, a character device 0/0) and opaque directories (``.wh..wh..opq`` or ``trusted.overlay.opaque=y``)
as read by ``whiteouts.read_dir``, the rules ``whiteouts.merge`` and the runtime's copy fallback apply. The
files WSL needs (``/etc/wsl.conf``, ``/etc/wsl-distribution.conf``, a default user) are added as in-memory
entries, then everything goes through tarwriter.py: sorted, one fixed mtime, numeric owners,
modes/setuid/symlinks/hardlinks kept. The same image and options give the same sha256.

Microsoft's recommendations for custom distributions (learn.microsoft.com/windows/wsl/build-custom-distro,
"WSL custom Linux distribution recommendations") are checked and reported as warnings, or fixed when ``fix``
names the rule (``FIXES``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError, StoreError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import (
    WhiteoutError,
    read_dir,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.image.tarwriter import (
    BLOCK,
    CHAR,
    DIR,
    FIFO,
    FILE,
    SYMLINK,
    HashingWriter,
    TarEntry,
    open_compressor,
    sort_key,
    write_entries,
)

FORMATS = ("tar", "tar.gz", "wsl")
FIXES = ("resolv_conf", "root_user", "shadow_hashes", "config_permissions", "kernel", "systemd_units")

# Units Microsoft lists as breaking under WSL when systemd is enabled (system and user units alike).
WSL_BAD_UNITS = (
    "systemd-resolved.service",
    "systemd-networkd.service",
    "NetworkManager.service",
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-setup-dev.service",
    "tmp.mount",
)
_UNIT_DIRS = {
    "system": ("usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system"),
    "user": ("usr/lib/systemd/user", "lib/systemd/user", "etc/systemd/user"),
}
_KERNEL_RE = re.compile(r"(boot/)?(vmlinuz|vmlinux|initrd\.img|initramfs|initrd)([-.].*)?")
# wsl-distribution.conf keys WSL 2.4.4+ reads (build-custom-distro.md, "WSL distribution file configuration").
DISTRIBUTION_KEYS = {
    "oobe": {"command": str, "defaultUid": int, "defaultName": str},
    "shortcut": {"enabled": bool, "icon": str},
    "windowsterminal": {"enabled": bool, "ProfileTemplate": str, "profileTemplate": str},
}
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,30}\$?")
_XATTR_KEEP = ("user.", "security.capability")
MAX_TEXT = 16 << 20
WSL_INTEROP = ("/proc/sys/fs/binfmt_misc/WSLInterop", "/proc/sys/fs/binfmt_misc/WSLInterop-late")


class WslError(DockerlessError):
    """An export or an import into WSL failed."""


# ---------------------------------------------------------------------------------------------------------------
# The merged (flattened) view of the layer folders


@dataclass
class Node:
    """One path of the flattened image: a host file in a layer folder, an in-memory file, or a whiteout."""

    path: str
    kind: str  # tarwriter kinds, or "whiteout"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    host: str | None = None
    data: bytes | None = None
    linkname: str = ""
    rdev: tuple[int, int] = (0, 0)
    inode: tuple[int, int] | None = None
    xattrs: dict[str, bytes] = field(default_factory=dict)
    layer: int = -1
    block_below: int | None = None  # layers with a lower index can't contribute below this path

    def entry(self) -> TarEntry:
        return TarEntry(
            path=self.path,
            kind=self.kind,
            mode=self.mode,
            uid=self.uid,
            gid=self.gid,
            size=len(self.data) if self.data is not None else self.size,
            linkname=self.linkname,
            devmajor=self.rdev[0],
            devminor=self.rdev[1],
            source=None if self.data is not None else self.host,
            data=self.data,
            inode=self.inode,
            xattrs=self.xattrs,
        )


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISCHR(mode):
        return CHAR
    if stat.S_ISBLK(mode):
        return BLOCK
    if stat.S_ISFIFO(mode):
        return FIFO
    return None  # sockets have no tar form


def _xattrs(path: str, keep_all_names: list[str] | None = None) -> dict[str, bytes]:
    out = {}
    for name in keep_all_names or []:
        if name.startswith(_XATTR_KEEP):
            with contextlib.suppress(OSError):
                out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


class MergedTree:
    """The flattened image as a table ``{path: Node}``, built from layer folders given bottom → top."""

    def __init__(self, layer_dirs: list[str]):
        self.nodes: dict[str, Node] = {}
        self.skipped: list[str] = []
        self.read_xattrs = os.geteuid() == 0
        for index in range(len(layer_dirs) - 1, -1, -1):
            if self._layer(index, layer_dirs[index]):
                break  # an opaque layer root: nothing below it shows (as whiteouts.merge merges it)

    # -- building ------------------------------------------------------------------------------------------
    def _blocked(self, rel: str, index: int) -> bool:
        node = self.nodes.get(rel)
        return node is not None and node.block_below is not None and index < node.block_below

    def _layer(self, index: int, top: str) -> bool:
        """Add what layer ``index`` shows; returns True when its root is opaque. The whiteout rules (both forms)
        are whiteouts.read_dir's, the ones flatten and the runtime's copy fallback apply."""
        try:
            st = os.lstat(top)
        except OSError as exc:
            raise WslError(f"reading layer folder {top}: {exc.strerror}. Pull the image again.") from None
        if not stat.S_ISDIR(st.st_mode):
            raise WslError(f"reading layer folder {top}: not a directory. Pull the image again.")
        root_opaque = False
        stack = [("", top)]
        while stack:
            rel_dir, host_dir = stack.pop()
            try:
                found = read_dir(host_dir)
            except WhiteoutError as exc:
                rel = f"{rel_dir}/{exc.name}" if rel_dir else exc.name
                raise WslError(f"reading layer folder {top}: whiteout {rel!r} names nothing valid.") from None
            for name, cst in sorted(found.entries, key=lambda item: item[0]):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                host = os.path.join(host_dir, name)
                existing = self.nodes.get(rel)
                kind = _kind(cst.st_mode)
                if existing is not None:
                    # A higher layer has this path. Its directory may still let ours contribute children; but if
                    # ours is not a directory, it replaced whatever lower layers had there.
                    if existing.kind == DIR and kind == DIR and not self._blocked(rel, index):
                        stack.append((rel, host))
                    elif existing.block_below is None:
                        existing.block_below = index
                    continue
                if kind is None:
                    self.skipped.append("/" + rel)
                    continue
                node = Node(
                    path=rel,
                    kind=kind,
                    mode=stat.S_IMODE(cst.st_mode),
                    uid=cst.st_uid,
                    gid=cst.st_gid,
                    size=cst.st_size if kind == FILE else 0,
                    host=host,
                    linkname=os.readlink(host) if kind == SYMLINK else "",
                    rdev=(os.major(cst.st_rdev), os.minor(cst.st_rdev)) if kind in (CHAR, BLOCK) else (0, 0),
                    inode=(cst.st_dev, cst.st_ino) if kind == FILE and cst.st_nlink > 1 else None,
                    layer=index,
                    block_below=None if kind == DIR else index,
                )
                if self.read_xattrs and kind in (FILE, DIR):
                    with contextlib.suppress(OSError):
                        node.xattrs = _xattrs(host, os.listxattr(host, follow_symlinks=False))
                self.nodes[rel] = node
                if kind == DIR:
                    stack.append((rel, host))
            # A whiteout hides lower layers only; a same-layer entry of that name survives (image-spec layer.md).
            for target in found.deleted:
                rel = f"{rel_dir}/{target}" if rel_dir else target
                existing = self.nodes.get(rel)
                if existing is None:
                    self.nodes[rel] = Node(path=rel, kind="whiteout", layer=index, block_below=index)
                elif existing.block_below is None:
                    # Re-created by this or a higher layer: what lower layers had below it stays deleted.
                    existing.block_below = index
            if found.opaque:
                if not rel_dir:
                    root_opaque = True
                    continue
                node = self.nodes.get(rel_dir)
                if node is not None and node.block_below is None:
                    node.block_below = index
        return root_opaque

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, path: str) -> Node | None:
        node = self.nodes.get(path.strip("/"))
        return None if node is None or node.kind == "whiteout" else node

    def resolve(self, path: str) -> Node | None:
        """The node ``path`` leads to, following symlinks inside the image (at most 40)."""
        pending = [c for c in path.split("/") if c and c != "."]
        pending.reverse()
        current: list[str] = []
        hops = 0
        node = None
        while pending:
            comp = pending.pop()
            if comp == "..":
                if current:
                    current.pop()
                continue
            node = self.get("/".join(current + [comp]))
            if node is None:
                return None
            if node.kind == SYMLINK:
                hops += 1
                if hops > 40:
                    return None
                parts = [c for c in node.linkname.split("/") if c and c != "."]
                if node.linkname.startswith("/"):
                    current = []
                pending.extend(reversed(parts))
                node = None
                continue
            if pending and node.kind != DIR:
                return None
            current.append(comp)
        return node if node is not None else (self.get("/".join(current)) if current else None)

    def read(self, path: str) -> bytes | None:
        """Content of a regular file (through symlinks), None when absent."""
        node = self.resolve(path)
        if node is None or node.kind != FILE:
            return None
        if node.data is not None:
            return node.data
        if node.size > MAX_TEXT:
            raise WslError(f"reading /{node.path} of the image: larger than {MAX_TEXT} bytes; refusing to edit it.")
        with open(node.host or "", "rb") as fh:
            return fh.read(MAX_TEXT + 1)

    def exists(self, path: str) -> bool:
        return self.get(path) is not None

    # -- editing -------------------------------------------------------------------------------------------
    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[:i])
            node = self.get(rel)
            if node is None:
                self.nodes[rel] = Node(path=rel, kind=DIR, mode=0o755)
            elif node.kind != DIR:
                raise WslError(
                    f"writing /{path} into the export: /{rel} is a {node.kind} in the image, not a directory. "
                    "Fix the image or drop the option that writes there."
                )

    def put_file(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        path = path.strip("/")
        self._parents(path)
        old = self.get(path)
        if old is not None and old.kind == DIR:
            raise WslError(f"writing /{path} into the export: it is a directory in the image.")
        self.nodes[path] = Node(path=path, kind=FILE, mode=mode, uid=uid, gid=gid, data=data)

    def put_dir(self, path: str, mode: int, uid: int = 0, gid: int = 0) -> None:
        path = path.strip("/")
        self._parents(path)
        self.nodes[path] = Node(path=path, kind=DIR, mode=mode, uid=uid, gid=gid)

    def put_symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        self._parents(path)
        self.nodes[path] = Node(path=path, kind=SYMLINK, mode=0o777, linkname=target)

    def remove(self, path: str) -> None:
        path = path.strip("/")
        prefix = path + "/"
        for key in [k for k in self.nodes if k == path or k.startswith(prefix)]:
            del self.nodes[key]

    def set_meta(self, path: str, mode: int, uid: int, gid: int) -> None:
        node = self.get(path)
        if node is not None:
            node.mode, node.uid, node.gid = mode, uid, gid

    def entries(self) -> list[TarEntry]:
        return [n.entry() for n in self.nodes.values() if n.kind != "whiteout"]

    def paths(self) -> list[str]:
        return sorted((p for p, n in self.nodes.items() if n.kind != "whiteout"), key=sort_key)


# ---------------------------------------------------------------------------------------------------------------
# INI files (wsl.conf, wsl-distribution.conf)


def parse_ini(text: str) -> dict[str, dict[str, str]]:
    """Sections → keys → raw values; comments and blank lines dropped, keys keep their case."""
    out: dict[str, dict[str, str]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            out.setdefault(section, {})
            continue
        if "=" in line and section is not None:
            key, value = line.split("=", 1)
            out[section][key.strip()] = value.strip()
    return out


def _ini_value(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise WslError(f"{what}: values can't contain line breaks.")
        return value
    raise WslError(f"{what}: {type(value).__name__} values are not supported; use strings, numbers or booleans.")


def render_ini(sections: dict[str, dict[str, str]], header: str) -> bytes:
    lines = [f"# {header}"]
    for name, keys in sections.items():
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in keys.items():
            lines.append(f"{key} = {value}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def merge_ini(existing: bytes | None, updates: dict[str, dict[str, Any]], what: str) -> dict[str, dict[str, str]]:
    sections = parse_ini(existing.decode("utf-8", "replace")) if existing else {}
    for section, keys in updates.items():
        if not isinstance(keys, dict):
            raise WslError(f"{what}: section {section!r} must be a dict of keys to values.")
        if not section or any(c in str(section) for c in "[]\n\r"):
            raise WslError(f"{what}: section name {section!r} is not valid.")
        target = sections.setdefault(str(section), {})
        for key, value in keys.items():
            if not key or any(c in str(key) for c in "=[]\n\r#;"):
                raise WslError(f"{what}: key {key!r} in [{section}] is not valid.")
            if value is None:
                target.pop(str(key), None)
                continue
            target[str(key)] = _ini_value(value, f"{what} [{section}] {key}")
    return sections


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


# ---------------------------------------------------------------------------------------------------------------
# The export


@dataclass
class ExportOptions:
    image: str
    dest: str
    format: str | None = None
    default_user: str | None = None
    default_uid: int = 1000
    wsl_conf: dict[str, dict[str, Any]] = field(default_factory=dict)
    distribution_conf: dict[str, dict[str, Any]] = field(default_factory=dict)
    fix: list[str] = field(default_factory=list)
    import_to: dict[str, str] | None = None
    compression_level: int = 6
    source_date_epoch: int | None = None
    mode: int = 0o600


@dataclass
class ExportResult:
    changed: bool
    dest: str
    sha256: str
    size: int
    format: str
    warnings: list[str]
    fixed: list[str]
    before: str | None
    image: dict[str, Any]
    files: int
    actions: list[str] = field(default_factory=list)
    imported: bool = False


def detect_format(dest: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise WslError(f"exporting to {dest}: format {fmt!r} is not one of {', '.join(FORMATS)}.")
        return fmt
    lower = dest.lower()
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if lower.endswith(".wsl"):
        return "wsl"
    if lower.endswith(".tar"):
        return "tar"
    raise WslError(
        f"exporting to {dest}: can't tell the format from the extension. Use .tar, .tar.gz or .wsl, or set 'format'."
    )


def _epoch(value: int | None, image_created: Any) -> int:
    if value is not None:
        if value < 0:
            raise WslError(f"source_date_epoch {value}: negative; use seconds since 1970.")
        return value
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if env.isdigit():
        return int(env)
    if isinstance(image_created, str):
        with contextlib.suppress(ValueError):
            text = image_created.replace("Z", "+00:00")
            text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Go writes nanoseconds; Python reads microseconds
            return max(0, int(datetime.datetime.fromisoformat(text).timestamp()))
    return 0


def _passwd_entries(text: bytes | None) -> list[list[str]]:
    if not text:
        return []
    rows = []
    for line in text.decode("utf-8", "replace").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _apply_rules(tree: MergedTree, opts: ExportOptions, warnings: list[str], fixed: list[str]) -> None:
    """Microsoft's custom-distribution recommendations: warn, or fix when ``opts.fix`` names the rule."""
    fix = set(FIXES) if "all" in opts.fix else set(opts.fix)

    # Do not include /etc/resolv.conf: WSL generates it.
    if tree.get("etc/resolv.conf") is not None:
        if "resolv_conf" in fix:
            tree.remove("etc/resolv.conf")
            fixed.append("removed /etc/resolv.conf (WSL generates it)")
        else:
            warnings.append("/etc/resolv.conf is in the image; WSL generates it. Set fix: [resolv_conf] to leave it out.")

    # Do include a root user with uid 0.
    passwd = tree.read("etc/passwd")
    rows = _passwd_entries(passwd)
    if not any(len(r) > 2 and r[0] == "root" and r[2] == "0" for r in rows):
        if "root_user" in fix:
            line = f"root:x:0:0:root:/root:{_login_shell(tree)}\n".encode()
            rest = b"".join(
                (":".join(r) + "\n").encode() for r in rows if not (r and r[0] == "root")
            )
            tree.put_file("etc/passwd", line + rest)
            if not tree.exists("root"):
                tree.put_dir("root", 0o700)
            fixed.append("added the root user (uid 0) to /etc/passwd")
        else:
            warnings.append("/etc/passwd has no root user with uid 0; WSL needs one. Set fix: [root_user] to add it.")

    # No password hashes in /etc/shadow.
    shadow = tree.read("etc/shadow")
    if shadow:
        hashed = []
        out_rows = []
        for row in _passwd_entries(shadow):
            field_ = row[1] if len(row) > 1 else ""
            bare = field_.lstrip("!")
            if bare not in ("", "*", "x"):
                hashed.append(row[0])
                row = [row[0], "!" if field_.startswith("!") else "*"] + row[2:]
            out_rows.append(row)
        if hashed:
            if "shadow_hashes" in fix:
                node = tree.resolve("etc/shadow")
                mode, gid = (node.mode, node.gid) if node else (0o640, 0)
                tree.put_file("etc/shadow", "".join(":".join(r) + "\n" for r in out_rows).encode(), mode, 0, gid)
                fixed.append(f"removed password hashes from /etc/shadow ({', '.join(hashed)})")
            else:
                warnings.append(
                    f"/etc/shadow holds password hashes for {', '.join(hashed)}; custom distributions should ship "
                    "none. Set fix: [shadow_hashes] to lock them."
                )

    # Configuration files root:root 0644.
    for conf in ("etc/wsl.conf", "etc/wsl-distribution.conf"):
        node = tree.get(conf)
        if node is not None and node.kind == FILE and (node.mode, node.uid, node.gid) != (0o644, 0, 0):
            if "config_permissions" in fix:
                tree.set_meta(conf, 0o644, 0, 0)
                fixed.append(f"/{conf} set to root:root 0644")
            else:
                warnings.append(
                    f"/{conf} is {node.uid}:{node.gid} {node.mode:04o}; it should be root:root 0644. "
                    "Set fix: [config_permissions] to correct it."
                )

    # No kernel or initramfs.
    kernels = [p for p in tree.paths() if _KERNEL_RE.fullmatch(p) and tree.nodes[p].kind in (FILE, SYMLINK)]
    if kernels:
        if "kernel" in fix:
            for p in kernels:
                tree.remove(p)
            fixed.append(f"removed kernel/initramfs files: {', '.join('/' + p for p in kernels)}")
        else:
            warnings.append(
                f"the image holds a kernel or initramfs ({', '.join('/' + p for p in kernels)}); WSL brings its own. "
                "Set fix: [kernel] to leave them out."
            )

    # With systemd enabled, units that break under WSL should be masked.
    conf = parse_ini((tree.read("etc/wsl.conf") or b"").decode("utf-8", "replace"))
    if _truthy(conf.get("boot", {}).get("systemd")):
        active = []
        for scope, dirs in _UNIT_DIRS.items():
            for unit in WSL_BAD_UNITS:
                mask = tree.get(f"etc/systemd/{scope}/{unit}")
                if mask is not None and mask.kind == SYMLINK and mask.linkname == "/dev/null":
                    continue
                if any(tree.get(f"{d}/{unit}") is not None for d in dirs):
                    active.append((scope, unit))
        if active:
            if "systemd_units" in fix:
                for scope, unit in active:
                    tree.remove(f"etc/systemd/{scope}/{unit}")
                    tree.put_symlink(f"etc/systemd/{scope}/{unit}", "/dev/null")
                fixed.append("masked " + ", ".join(f"{s} unit {u}" for s, u in active))
            else:
                warnings.append(
                    "systemd is enabled and these units break under WSL: "
                    + ", ".join(f"{u} ({s})" for s, u in active)
                    + ". Set fix: [systemd_units] to mask them."
                )


def _login_shell(tree: MergedTree) -> str:
    """The first shell the image has, as /etc/passwd should name it."""
    for shell in ("/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh"):
        node = tree.resolve(shell)
        if node is not None and node.kind == FILE:
            return shell
    return "/bin/sh"


def _add_default_user(tree: MergedTree, opts: ExportOptions, warnings: list[str]) -> str:
    name = opts.default_user or ""
    if not _USER_RE.fullmatch(name):
        raise WslError(f"default_user {name!r}: not a valid user name (lower case letters, digits, '_', '-').")
    uid = opts.default_uid
    if not 1 <= uid <= 60000:
        raise WslError(f"default_uid {uid}: use a regular user id between 1 and 60000 (WSL expects 1000).")
    passwd_rows = _passwd_entries(tree.read("etc/passwd"))
    group_rows = _passwd_entries(tree.read("etc/group"))
    existing = next((r for r in passwd_rows if r and r[0] == name), None)
    if existing is not None:
        if len(existing) > 2 and existing[2] != str(uid):
            warnings.append(f"user {name} already exists in the image with uid {existing[2]}; kept it.")
        home = existing[5] if len(existing) > 5 and existing[5] else f"/home/{name}"
        if not tree.exists(home.strip("/")) and len(existing) > 3 and existing[2].isdigit() and existing[3].isdigit():
            if not tree.exists("home") and home.startswith("/home/"):
                tree.put_dir("home", 0o755)
            tree.put_dir(home, 0o750, int(existing[2]), int(existing[3]))
        return name
    taken = next((r[0] for r in passwd_rows if len(r) > 2 and r[2] == str(uid)), None)
    if taken:
        raise WslError(
            f"creating user {name} with uid {uid}: uid {uid} belongs to {taken} in the image. "
            f"Use default_user: {taken}, or another default_uid."
        )
    group = next((r for r in group_rows if r and r[0] == name), None)
    if group is not None and len(group) > 2 and group[2].isdigit():
        gid = int(group[2])
    else:
        if any(len(r) > 2 and r[2] == str(uid) for r in group_rows):
            raise WslError(f"creating group {name} with gid {uid}: that gid is taken in the image. Choose another default_uid.")
        gid = uid
        group_rows.append([name, "x", str(gid), ""])
    shell = _login_shell(tree)
    if not any(r and r[0] == "root" for r in passwd_rows):
        passwd_rows.insert(0, ["root", "x", "0", "0", "root", "/root", shell])
    if not any(r and r[0] == "root" for r in group_rows):
        group_rows.insert(0, ["root", "x", "0", ""])
    passwd_rows.append([name, "x", str(uid), str(gid), "", f"/home/{name}", shell])
    tree.put_file("etc/passwd", "".join(":".join(r) + "\n" for r in passwd_rows).encode())
    tree.put_file("etc/group", "".join(":".join(r) + "\n" for r in group_rows).encode())
    shadow = tree.read("etc/shadow")
    if shadow is not None:
        node = tree.resolve("etc/shadow")
        mode, sgid = (node.mode, node.gid) if node else (0o640, 0)
        # '!': no password (login by password locked); WSL starts the default user without one.
        tree.put_file("etc/shadow", shadow + ("" if shadow.endswith(b"\n") or not shadow else "\n").encode()
                      + f"{name}:!:::::::\n".encode(), mode, 0, sgid)
    gshadow = tree.read("etc/gshadow")
    if gshadow is not None and group is None:
        node = tree.resolve("etc/gshadow")
        mode, sgid = (node.mode, node.gid) if node else (0o640, 0)
        tree.put_file("etc/gshadow", gshadow + ("" if gshadow.endswith(b"\n") or not gshadow else "\n").encode()
                      + f"{name}:!::\n".encode(), mode, 0, sgid)
    if not tree.exists("home"):
        tree.put_dir("home", 0o755)
    if not tree.exists(f"home/{name}"):
        tree.put_dir(f"home/{name}", 0o750, uid, gid)
    return name


def _check_distribution_conf(conf: dict[str, dict[str, Any]], fmt: str, warnings: list[str]) -> None:
    for section, keys in conf.items():
        known = DISTRIBUTION_KEYS.get(section)
        if known is None:
            warnings.append(f"distribution_conf: section [{section}] is not one WSL reads (oobe, shortcut, windowsterminal).")
            continue
        for key, value in (keys or {}).items():
            if key not in known:
                warnings.append(f"distribution_conf: [{section}] {key} is not a key WSL reads.")
            elif known[key] is int and not (isinstance(value, int) and not isinstance(value, bool)):
                raise WslError(f"distribution_conf: [{section}] {key} must be an integer, got {value!r}.")
    if fmt == "wsl" and not (conf.get("oobe") or {}).get("defaultName"):
        warnings.append("a .wsl file installs by double-click only with oobe.defaultName in /etc/wsl-distribution.conf.")


def build_tree(store: Store, opts: ExportOptions, fmt: str, warnings: list[str], fixed: list[str]):
    """The image's merged tree with the WSL files and fixes applied, and the image record."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import ensure_unpacked

    name = parse_reference(opts.image).name
    if not store.exists() or store.resolve(name) is None:
        raise StoreError(f"exporting {name}: not in the store {store.root}. Pull or build it first.")
    image = store.image(name)
    layer_dirs = ensure_unpacked(store, image)
    if os.geteuid() != 0:
        warnings.append("running without root: owners in the export are those of the unpacked layer folders, "
                        "not the image's. Run as root for a faithful export.")
    tree = MergedTree(layer_dirs)
    if tree.skipped:
        warnings.append(f"left out {len(tree.skipped)} sockets (tar can't hold them): {', '.join(tree.skipped[:5])}")

    wsl_updates: dict[str, dict[str, Any]] = {k: dict(v or {}) for k, v in (opts.wsl_conf or {}).items()}
    if opts.default_user:
        user = _add_default_user(tree, opts, warnings)
        wsl_updates.setdefault("user", {})["default"] = user
    if wsl_updates:
        sections = merge_ini(tree.read("etc/wsl.conf"), wsl_updates, "wsl_conf")
        tree.remove("etc/wsl.conf")
        tree.put_file("etc/wsl.conf", render_ini(sections, "/etc/wsl.conf, written by dockerless.containers.wsl_export"))
    if opts.distribution_conf:
        _check_distribution_conf(opts.distribution_conf, fmt, warnings)
        sections = merge_ini(tree.read("etc/wsl-distribution.conf"), opts.distribution_conf, "distribution_conf")
        tree.remove("etc/wsl-distribution.conf")
        tree.put_file("etc/wsl-distribution.conf",
                      render_ini(sections, "/etc/wsl-distribution.conf, written by dockerless.containers.wsl_export"))
    elif fmt == "wsl" and tree.get("etc/wsl-distribution.conf") is None:
        warnings.append("a .wsl file should carry /etc/wsl-distribution.conf (set distribution_conf).")
    _apply_rules(tree, opts, warnings, fixed)
    return tree, image


def _sha256_file(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            h = hashlib.sha256()
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    return h.hexdigest()
                h.update(chunk)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise WslError(f"exporting to {path}: it is a directory. Give a file name ending in .tar, .tar.gz or .wsl.") from None


# -- import into WSL -------------------------------------------------------------------------------------------


def find_wsl_exe(interop_paths: tuple[str, ...] = WSL_INTEROP) -> str | None:
    """``wsl.exe`` when this Linux runs inside WSL with Windows interop enabled, else None."""
    if not any(os.path.exists(p) for p in interop_paths):
        return None
    return shutil.which("wsl.exe") or next(
        (p for p in ("/mnt/c/Windows/System32/wsl.exe",) if os.access(p, os.X_OK)), None
    )


def _windows_path(path: str) -> str:
    wslpath = shutil.which("wslpath")
    if not wslpath:
        return path
    proc = subprocess.run([wslpath, "-w", path], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else path


def _decode_wsl_output(data: bytes) -> str:
    # wsl.exe writes UTF-16LE to pipes.
    if b"\x00" in data:
        return data.decode("utf-16-le", "replace")
    return data.decode("utf-8", "replace")


def import_command(wsl_exe: str, name: str, location: str, dest: str) -> list[str]:
    return [wsl_exe, "--import", name, location, _windows_path(dest)]


def import_distribution(import_to: dict[str, str], dest: str, check_mode: bool,
                        interop_paths: tuple[str, ...] = WSL_INTEROP) -> bool:
    """Run ``wsl.exe --import`` unless the distribution is registered. Returns True when it imported (or would)."""
    name = import_to.get("name") or ""
    location = import_to.get("install_location") or ""
    wsl_exe = find_wsl_exe(interop_paths)
    if wsl_exe is None:
        raise WslError(
            f"importing {dest} as WSL distribution {name!r}: wsl.exe is not reachable (this host is not WSL with "
            f"Windows interop). Copy {dest} to Windows and run there: wsl.exe --import {name} {location} "
            f"<path of the copied file>; or drop import_to."
        )
    listed = subprocess.run([wsl_exe, "--list", "--quiet"], capture_output=True, check=False, timeout=120)
    registered = {line.strip() for line in _decode_wsl_output(listed.stdout).splitlines() if line.strip()}
    if name in registered:
        return False
    if check_mode:
        return True
    proc = subprocess.run(import_command(wsl_exe, name, location, dest), capture_output=True, check=False, timeout=3600)
    if proc.returncode != 0:
        out = _decode_wsl_output(proc.stdout + proc.stderr).strip()
        raise WslError(f"importing {dest} as WSL distribution {name!r}: wsl.exe exited {proc.returncode}: {out[:500]}")
    return True


def _check_import_possible(import_to: dict[str, str] | None, dest: str, interop_paths: tuple[str, ...]) -> None:
    if not import_to:
        return
    for key in ("name", "install_location"):
        if not import_to.get(key):
            raise WslError(f"import_to: '{key}' is required.")
    if find_wsl_exe(interop_paths) is None:
        import_distribution(import_to, dest, True, interop_paths)  # raises the explanatory error


def export_image(
    store: Store,
    opts: ExportOptions,
    check_mode: bool = False,
    interop_paths: tuple[str, ...] = WSL_INTEROP,
) -> ExportResult:
    """Write the image as a WSL root filesystem archive at ``opts.dest`` (only when its sha256 changes)."""
    dest = os.path.abspath(os.path.expanduser(opts.dest))
    fmt = detect_format(dest, opts.format)
    _check_import_possible(opts.import_to, dest, interop_paths)
    if not 1 <= opts.compression_level <= 9:
        raise WslError(f"compression_level {opts.compression_level}: use 1-9.")
    warnings: list[str] = []
    fixed: list[str] = []
    tree, image = build_tree(store, opts, fmt, warnings, fixed)
    mtime = _epoch(opts.source_date_epoch, image.config.get("created"))
    entries = tree.entries()
    before = _sha256_file(dest)
    compression = "none" if fmt == "tar" else "gzip"
    actions: list[str] = []

    def write(out) -> tuple[str, int]:
        sink = HashingWriter(out)
        comp = open_compressor(compression, sink, opts.compression_level if compression == "gzip" else None)
        try:
            write_entries(entries, comp, mtime)
        finally:
            comp.close()
        return sink.digest.split(":", 1)[1], sink.size

    if check_mode:
        sha, size = write(None)
    else:
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            raise WslError(f"exporting to {dest}: directory {directory} does not exist. Create it first.")
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                sha, size = write(fh)
                fh.flush()
                os.fchmod(fh.fileno(), opts.mode)
                os.fsync(fh.fileno())
            if sha != before:
                os.rename(tmp, dest)
                dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    changed = sha != before
    if changed:
        actions.append(("would write " if check_mode else "wrote ") + f"{dest} ({fmt}, sha256 {sha})")
    else:
        actions.append(f"{dest} already holds this export (sha256 {sha})")
        current_mode = stat.S_IMODE(os.stat(dest).st_mode)
        if current_mode != opts.mode:
            changed = True
            actions.append(("would change " if check_mode else "changed ") + f"its mode {current_mode:04o} to {opts.mode:04o}")
            if not check_mode:
                os.chmod(dest, opts.mode)
    imported = False
    if opts.import_to:
        imported = import_distribution(opts.import_to, dest, check_mode, interop_paths)
        if imported:
            actions.append(("would import " if check_mode else "imported ") + f"{dest} as {opts.import_to['name']}")
    return ExportResult(
        changed=changed or imported,
        dest=dest,
        sha256=sha,
        size=size,
        format=fmt,
        warnings=warnings,
        fixed=fixed,
        before=before,
        image={"name": image.name, "digest": image.digest},
        files=len(entries),
        actions=actions,
        imported=imported,
    )
