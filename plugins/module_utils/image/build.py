# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build an image in the store from host files and executables, reproducibly.

Observe → decide → act:

1. plan: resolve each executable's shared-library closure (elf.py, nothing is executed), expand every path to
   the symlinks met on the way (``/lib`` → ``usr/lib`` on merged-/usr hosts, ``libfoo.so.1`` → the real file),
   walk the ``files`` items; the result is one table ``{image path: TarEntry}``;
2. hash: write the layer as a sorted, fixed-mtime tar (tarwriter.py) through gzip/zstd, hashing the tar
   (diff_id) and the compressed bytes (digest) — into the store, or nowhere in check mode;
3. config and manifest are canonical JSON (sorted keys, no spaces, no host names or build times), so their
   digests depend only on the inputs; ``changed`` is whether ``name`` already points at that manifest digest.

Host files are read only where they were named: symlinks in ``files`` are copied as symlinks, never followed
(unless ``follow`` is set for that item's top-level ``src``), devices, FIFOs and sockets are refused.
"""

from __future__ import annotations

import os
import stat
import time

from ansible_collections.dockerless.containers.plugins.module_utils.errors import BuildError, DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.elf import (
    DEFAULT_SEARCH_PATH,
    RootFS,
    resolve_closure,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
    host_platform,
    parse_reference,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import ImageRecord, Store
from ansible_collections.dockerless.containers.plugins.module_utils.image.tarwriter import (
    DIR,
    FILE,
    SYMLINK,
    ArchiveResult,
    TarEntry,
    path_parts,
    sort_key,
    write_archive,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import (
    Factory,
    Record,
    json_dumps,
    json_loads,
    sha256_hex,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a build's imports count)
if TYPE_CHECKING:
    from typing import Any

CREATED_BY = "dockerless.containers.image_build"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker media types of layers keep their bytes in an OCI manifest; only the name changes (image-spec media-types.md).
_LAYER_TYPE_TO_OCI = {
    oci.DOCKER_LAYER_GZIP: oci.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}


# The records below are runtime_record.Record classes (fields, defaults, ==, repr like dataclasses): generating a
# dataclass's methods costs about a millisecond per class at import, a visible part of a small build.


class FileSpec(Record):
    """One item of ``files``: host ``src`` (file, directory or symlink) copied to absolute ``dest`` in the image."""

    src: str
    dest: str
    mode: int | None = None
    owner: int | None = None
    group: int | None = None
    follow: bool = False


class BuildSpec(Record):
    """Everything that determines the image. Equal specs over equal host files give equal digests."""

    name: str
    executables: list[str] = Factory(list)
    files: list[FileSpec] = Factory(list)
    base: str | None = None
    env: dict[str, str] = Factory(dict)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    labels: dict[str, str] = Factory(dict)
    exposed_ports: list[str] = Factory(list)
    volumes: list[str] = Factory(list)
    compression: str = "gzip"
    compression_level: int | None = None
    source_date_epoch: int | None = None
    host_root: str = "/"
    search_path: list[str] = Factory(lambda: list(DEFAULT_SEARCH_PATH))


class LayerPlan(Record):
    """The new layer's entries (keyed by path without leading slash) and what the closure taught us."""

    entries: dict[str, TarEntry]
    architecture: str | None = None
    os: str | None = None
    notes: list[str] = Factory(list)

    @property
    def files(self) -> list[str]:
        return ["/" + p for p in sorted(self.entries, key=sort_key)]


class BuildResult(Record):
    changed: bool
    image: dict[str, Any]
    before: str | None
    after: str
    files: list[str]
    notes: list[str] = Factory(list)
    actions: list[str] = Factory(list)
    diff: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------------------------
# Parameter normalisation


def _is_octal_mode(text: str) -> bool:
    """``0?[0-7]{3,4}`` (without ``re``: a build's imports count)."""
    return 3 <= len(text) <= 5 and all(c in "01234567" for c in text) and (len(text) < 5 or text[0] == "0")


def parse_mode(value: Any, what: str) -> int | None:
    """``0755``, ``"0755"``, ``"755"`` or 493 → 0o755; symbolic modes are refused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BuildError(f"{what}: mode {value!r} is not an octal mode. Write it like '0755'.")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and _is_octal_mode(value.strip()):
        mode = int(value.strip(), 8)
    else:
        raise BuildError(f"{what}: mode {value!r} is not an octal mode. Write it like '0755' (quoted).")
    if not 0 <= mode <= 0o7777:
        raise BuildError(f"{what}: mode {oct(mode)} is out of range. Use 0000-7777.")
    return mode


def parse_id(value: Any, what: str) -> int | None:
    """Numeric uid/gid (int or digits); names are refused: layers store numbers, and the image's
    /etc/passwd, not the host's, would give them meaning."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BuildError(f"{what}: {value!r} is not a numeric id.")
    if isinstance(value, int):
        num = value
    elif isinstance(value, str) and value.strip().isdigit():
        num = int(value.strip())
    else:
        raise BuildError(f"{what}: {value!r} is not a numeric id. Give the number (e.g. 1000); names are not resolved.")
    if not 0 <= num <= 0xFFFFFFFE:
        raise BuildError(f"{what}: {num} is out of range.")
    return num


def image_path(dest: str, what: str) -> str:
    """An absolute image path → its archive form (``usr/bin/x``); '' for the root. ``..`` is refused."""
    if not isinstance(dest, str) or not dest.startswith("/"):
        raise BuildError(f"{what}: dest {dest!r} is not an absolute path. Write it like '/usr/local/bin/tool'.")
    parts = path_parts(dest)
    if parts is None:
        raise BuildError(f"{what}: dest {dest!r} contains '..'. Give the plain absolute path inside the image.")
    if "\0" in dest:
        raise BuildError(f"{what}: dest contains a NUL byte.")
    return "/".join(parts)


def source_date_epoch(value: int | None) -> int:
    """The explicit value, else ``$SOURCE_DATE_EPOCH``, else 0 (reproducible-builds.org spec)."""
    if value is not None:
        if value < 0:
            raise BuildError(f"source_date_epoch {value}: negative. Use seconds since 1970 (>= 0).")
        return int(value)
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not env:
        return 0
    if not env.isdigit():
        raise BuildError(f"SOURCE_DATE_EPOCH={env!r}: not a non-negative integer. Fix or unset it.")
    return int(env)


_MAX_RFC3339_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


def rfc3339(epoch: int) -> str:
    """``2023-11-14T22:13:20Z``. ``time.gmtime`` gives what ``datetime`` does for years 1970-9999 without
    importing it (a build's imports are a good part of its time); beyond that ``datetime`` answers (an error)."""
    if 0 <= epoch <= _MAX_RFC3339_EPOCH:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the same document always has the same digest."""
    return json_dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Planning the layer


class _Planner:
    def __init__(self, fs: RootFS):
        self.fs = fs
        self.entries: dict[str, TarEntry] = {}
        self.explicit: set[str] = set()

    # -- helpers -------------------------------------------------------------------------------------------
    def _parents(self, path: str, what: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            existing = self.entries.get(parent)
            if existing is None:
                self.entries[parent] = TarEntry(parent, DIR, 0o755)
            elif existing.kind != DIR:
                raise BuildError(
                    f"{what}: /{path} would go through /{parent}, which is a {existing.kind} in the image. "
                    f"Use the real directory (what /{parent} points to) as dest."
                )

    def _put(self, entry: TarEntry, what: str, explicit: bool = True) -> None:
        self._parents(entry.path, what)
        existing = self.entries.get(entry.path)
        if existing is not None:
            if existing.kind == DIR and entry.kind == DIR:
                if explicit:
                    if entry.path in self.explicit and (existing.mode, existing.uid, existing.gid) != (
                        entry.mode, entry.uid, entry.gid
                    ):
                        raise BuildError(
                            f"{what}: directory /{entry.path} is given twice with different mode/owner. "
                            "Give it once."
                        )
                    self.entries[entry.path] = entry
                    self.explicit.add(entry.path)
                return
            if _same(existing, entry):
                return
            raise BuildError(
                f"{what}: /{entry.path} is already in the image as a {existing.kind} from another input. "
                "Give each path once."
            )
        self.entries[entry.path] = entry
        if explicit:
            self.explicit.add(entry.path)

    def _file_entry(self, path: str, host: str, st: os.stat_result, uid: int, gid: int, mode: int | None) -> TarEntry:
        return TarEntry(
            path,
            FILE,
            mode if mode is not None else stat.S_IMODE(st.st_mode),
            uid,
            gid,
            size=st.st_size,
            source=host,
            inode=(st.st_dev, st.st_ino) if st.st_nlink > 1 else None,
        )

    # -- executables ---------------------------------------------------------------------------------------
    def add_host_path(self, path: str, what: str) -> None:
        """Add ``path`` (absolute, inside the host root) with every symlink met while resolving it."""
        try:
            real, steps = self.fs.walk(path)
        except FileNotFoundError:
            raise BuildError(f"{what}: {path} does not exist on the host. Install it or fix the path.") from None
        for step in steps:
            rel = image_path(step.path, what)
            self._put(TarEntry(rel, SYMLINK, 0o777, linkname=step.target or ""), what, explicit=False)
        rel = image_path(real, what)
        host = self.fs.host(real)
        st = os.lstat(host)
        if not stat.S_ISREG(st.st_mode):
            raise BuildError(f"{what}: {real} is not a regular file on the host.")
        self._put(self._file_entry(rel, host, st, 0, 0, None), what, explicit=False)

    # -- files ---------------------------------------------------------------------------------------------
    def add_item(self, item: FileSpec, index: int) -> None:
        what = f"files[{index}] (src {item.src})"
        if not isinstance(item.src, str) or not item.src.startswith("/"):
            raise BuildError(f"{what}: src must be an absolute host path.")
        dest = item.dest
        if isinstance(dest, str) and dest.endswith("/"):
            dest = dest + os.path.basename(item.src.rstrip("/"))
        rel = image_path(dest, what)
        src = os.path.normpath(item.src)
        if item.follow:
            try:
                src = self.fs.realpath(src)
            except (FileNotFoundError, NotADirectoryError):
                raise BuildError(f"{what}: {item.src} does not exist on the host.") from None
        host = self.fs.host(src)
        try:
            # The parent chain may hold symlinks (e.g. /bin -> usr/bin): the user named this path, that is fine;
            # only the last component is taken as it is (lstat), so a symlink is copied as a symlink.
            parent_real = self.fs.realpath(os.path.dirname(src) or "/")
            host = self.fs.host(os.path.join(parent_real, os.path.basename(src)))
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            raise BuildError(f"{what}: {item.src} does not exist on the host. Fix the path.") from None
        except PermissionError:
            raise BuildError(f"{what}: {item.src} is not readable. Fix its permissions or run as root.") from None
        uid = item.owner or 0
        gid = item.group or 0
        if stat.S_ISDIR(st.st_mode):
            if rel:
                self._put(TarEntry(rel, DIR, item.mode if item.mode is not None else stat.S_IMODE(st.st_mode),
                                   uid, gid), what)
            self._walk_dir(host, rel, uid, gid, what, item.src)
        else:
            if not rel:
                raise BuildError(f"{what}: a file can't replace the image root '/'. Give a path below it.")
            self._put(self._entry_for(host, rel, st, uid, gid, item.mode, what, item.src), what)

    def _entry_for(
        self, host: str, rel: str, st: os.stat_result, uid: int, gid: int, mode: int | None, what: str, shown: str
    ) -> TarEntry:
        if stat.S_ISREG(st.st_mode):
            return self._file_entry(rel, host, st, uid, gid, mode)
        if stat.S_ISLNK(st.st_mode):
            # Copied as a link: its target, even absolute or pointing outside, is never read.
            return TarEntry(rel, SYMLINK, 0o777, uid, gid, linkname=os.readlink(host))
        kind = (
            "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
            else "character device" if stat.S_ISCHR(st.st_mode) else "block device" if stat.S_ISBLK(st.st_mode)
            else "special file"
        )
        raise BuildError(
            f"{what}: {shown} is a {kind}; only regular files, directories and symlinks are copied. "
            "Leave it out (or create it at run time)."
        )

    def _walk_dir(self, host_dir: str, rel_dir: str, uid: int, gid: int, what: str, shown_dir: str) -> None:
        try:
            with os.scandir(host_dir) as it:
                children = sorted(it, key=lambda e: os.fsencode(e.name))
        except PermissionError:
            raise BuildError(f"{what}: directory {shown_dir} is not readable. Fix its permissions.") from None
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            shown = os.path.join(shown_dir, child.name)
            st = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._put(TarEntry(rel, DIR, stat.S_IMODE(st.st_mode), uid, gid), what)
                self._walk_dir(child.path, rel, uid, gid, what, shown)
            else:
                self._put(self._entry_for(child.path, rel, st, uid, gid, None, what, shown), what)


def _same(a: TarEntry, b: TarEntry) -> bool:
    return (a.kind, a.mode, a.uid, a.gid, a.linkname, a.size) == (b.kind, b.mode, b.uid, b.gid, b.linkname, b.size) and (
        a.kind != FILE or os.path.realpath(a.source or "") == os.path.realpath(b.source or "")
    )


def plan_layer(spec: BuildSpec) -> LayerPlan:
    """Decide every entry of the new layer without reading file contents."""
    fs = RootFS(spec.host_root)
    planner = _Planner(fs)
    plan = LayerPlan(entries=planner.entries)
    if spec.executables:
        closure = resolve_closure(list(spec.executables), root=spec.host_root, search_path=spec.search_path, fs=fs)
        plan.architecture, plan.os = closure.architecture, closure.os
        plan.notes.extend(closure.notes)
        for path in closure.files:
            planner.add_host_path(path, f"executable closure ({path})")
    for i, item in enumerate(spec.files):
        planner.add_item(item, i)
    return plan


# ---------------------------------------------------------------------------------------------------------------
# Config and manifest


def _port(value: Any) -> str:
    text = str(value).strip().lower()
    import re  # only images that expose ports

    if re.fullmatch(r"\d{1,5}", text):
        text += "/tcp"
    m = re.fullmatch(r"(\d{1,5})/(tcp|udp|sctp)", text)
    if not m or not 0 < int(m.group(1)) < 65536:
        raise BuildError(f"exposed_ports: {value!r} is not a port. Write it like '8080' or '53/udp'.")
    return text


def make_config(
    spec: BuildSpec, base: ImageRecord | None, plan: LayerPlan, layer: ArchiveResult | None, epoch: int
) -> dict:
    """The image config (image-spec config.md) — base config carried over, our settings on top."""
    created = rfc3339(epoch)
    if base is not None:
        doc = json_loads(json_dumps(base.config))
        # These describe the base's own last build step (Docker's container/container_config), not ours.
        for key in ("container", "container_config", "docker_version", "config_digest"):
            doc.pop(key, None)
        base_arch, base_os = doc.get("architecture"), doc.get("os")
        if plan.architecture and (plan.architecture, plan.os) != (base_arch, base_os):
            raise BuildError(
                f"building {spec.name} on {spec.base}: the executables are {plan.os}/{plan.architecture}, the base "
                f"image is {base_os}/{base_arch}. Use a base image of the executables' architecture."
            )
    else:
        if plan.architecture:
            arch, osname = plan.architecture, plan.os
        else:
            host = host_platform()
            arch, osname = host.architecture, host.os
            plan.notes.append(f"no executables and no base: architecture {osname}/{arch} taken from this host")
        doc = {"architecture": arch, "os": osname, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    cfg = doc.setdefault("config", {}) or {}
    doc["config"] = cfg
    env = list(cfg.get("Env") or [])
    if base is None and not any(e.startswith("PATH=") for e in env) and "PATH" not in spec.env:
        env.append(DEFAULT_PATH_ENV)
    for key in sorted(spec.env):
        if not key or "=" in key:
            raise BuildError(f"env: {key!r} is not a variable name. Names can't be empty or contain '='.")
        value = "" if spec.env[key] is None else str(spec.env[key])
        env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
    if env:
        cfg["Env"] = env
    if spec.entrypoint is not None:
        cfg["Entrypoint"] = list(spec.entrypoint)
        if spec.cmd is None:
            cfg.pop("Cmd", None)  # as a Dockerfile ENTRYPOINT resets an inherited CMD
    if spec.cmd is not None:
        cfg["Cmd"] = list(spec.cmd)
    if spec.workdir is not None:
        cfg["WorkingDir"] = spec.workdir
    if spec.user is not None:
        cfg["User"] = spec.user
    if spec.labels:
        cfg["Labels"] = dict(cfg.get("Labels") or {}, **{str(k): str(v) for k, v in spec.labels.items()})
    if spec.exposed_ports:
        ports = dict(cfg.get("ExposedPorts") or {})
        ports.update({_port(p): {} for p in spec.exposed_ports})
        cfg["ExposedPorts"] = ports
    if spec.volumes:
        vols = dict(cfg.get("Volumes") or {})
        for v in spec.volumes:
            if not isinstance(v, str) or not v.startswith("/"):
                raise BuildError(f"volumes: {v!r} is not an absolute path.")
            vols[v] = {}
        cfg["Volumes"] = vols
    doc["created"] = created
    rootfs = doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["type"] = "layers"
    rootfs["diff_ids"] = list(rootfs.get("diff_ids") or []) + ([layer.diff_id] if layer else [])
    history = list(doc.get("history") or [])
    step = {"created": created, "created_by": CREATED_BY}
    if layer is None:
        step["empty_layer"] = True
    else:
        step["comment"] = f"{len(plan.entries)} paths"
    doc["history"] = history + [step]
    return doc


def make_manifest(base: ImageRecord | None, layer: ArchiveResult | None, config_body: bytes, config_digest: str) -> dict:
    layers = []
    if base is not None:
        for desc in base.manifest.get("layers", []):
            d = {k: v for k, v in desc.items() if k in ("mediaType", "digest", "size", "annotations", "urls")}
            d["mediaType"] = _LAYER_TYPE_TO_OCI.get(d.get("mediaType", ""), d.get("mediaType", oci.OCI_LAYER_GZIP))
            layers.append(d)
    if layer is not None:
        layers.append({"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size})
    return {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": len(config_body)},
        "layers": layers,
    }


def _digest(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


# ---------------------------------------------------------------------------------------------------------------
# The build


def _layer_file_list(store: Store, image: ImageRecord) -> list[str] | None:
    """Paths in the top layer of an existing image, for the diff (None when it can't be read cheaply)."""
    import tarfile  # only diff mode reads an old layer back

    if not image.layers:
        return []
    top = image.layers[-1]
    if top["media_type"] not in (oci.OCI_LAYER_GZIP, oci.OCI_LAYER_TAR, oci.DOCKER_LAYER_GZIP):
        return None
    try:
        with store.open_blob(top["digest"]) as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            return ["/" + m.name.rstrip("/") for m in tar if m.name not in (".", "./")]
    except (tarfile.TarError, OSError, DockerlessError, EOFError):
        return None


def build_image(store: Store, spec: BuildSpec, check_mode: bool = False, want_diff: bool = False) -> BuildResult:
    """Build ``spec`` into ``store`` (or only compute its digest in check mode)."""
    ref = parse_reference(spec.name)
    if ref.digest:
        raise BuildError(f"building {spec.name}: name pins a digest; give a tag (name:tag) to build into.")
    name = ref.name
    epoch = source_date_epoch(spec.source_date_epoch)
    base = None
    if spec.base:
        base_name = parse_reference(spec.base).name
        if not store.exists() or store.resolve(base_name) is None:
            raise BuildError(
                f"building {name}: base image {base_name} is not in the store {store.root}. "
                "Pull it first (dockerless.containers.image_pull)."
            )
        base = store.image(base_name)

    plan = plan_layer(spec)
    old_desc = store.resolve(name) if store.exists() else None
    before = old_desc["digest"] if old_desc else None
    actions: list[str] = []

    def finish(layer: ArchiveResult | None) -> tuple[bytes, str, bytes, str]:
        config = make_config(spec, base, plan, layer, epoch)
        config_body = canonical_json(config)
        config_digest = _digest(config_body)
        manifest_body = canonical_json(make_manifest(base, layer, config_body, config_digest))
        return config_body, config_digest, manifest_body, _digest(manifest_body)

    level = spec.compression_level
    if check_mode:
        layer = write_archive(plan.entries.values(), None, spec.compression, level, epoch) if plan.entries else None
        config_body, config_digest, manifest_body, digest = finish(layer)
    else:
        store.ensure()
        with store.gc_guard():
            layer = None
            # Only the blob: the layer folder is made from it by whoever needs it first (container_run,
            # wsl_export, image_pull's dest call store_layers.ensure_unpacked), as umoci repack leaves unpacking to
            # umoci unpack. Extracting while writing cost a bash+ls build about 12 ms of CPU.
            writer = store.blob_writer() if plan.entries else None
            staged = None
            try:
                if writer is not None:
                    layer = write_archive(plan.entries.values(), writer, spec.compression, level, epoch)
                    # The disk writes the layer while the config and manifest are made and written, and
                    # index.json's new copy beside them: four fsyncs overlap instead of following each other.
                    # Each blob is still on the disk before it is in blobs/, and in blobs/ before index.json
                    # names it (store.tag commits them just before its rename).
                    writer.start_sync()
                config_body, config_digest, manifest_body, digest = finish(layer)
                staged = store.stage_blobs(config_body, manifest_body, first=writer)
                if digest != before:
                    store.tag(name, _descriptor(manifest_body, digest, config_body), blobs=staged)
                else:
                    staged.commit()
            except BaseException:
                if staged is not None:
                    staged.abort()
                elif writer is not None:
                    writer.abort()
                raise
    changed = digest != before
    image = _record(name, digest, manifest_body, config_body, config_digest)
    if changed:
        actions.append(("would build " if check_mode else "built ") + f"{name} {digest}" +
                       (f" (was {before})" if before else ""))
    else:
        actions.append(f"{name} is already {digest}")
    diff = None
    if want_diff:
        old_files: list[str] | None = None
        if before and before != digest and old_desc is not None:
            try:
                old_files = _layer_file_list(store, store.load_image(name, old_desc))
            except DockerlessError:
                old_files = None
        elif before == digest:
            old_files = plan.files
        diff = {
            "before": {"digest": before, "files": old_files or []},
            "after": {"digest": digest, "files": plan.files},
        }
    return BuildResult(
        changed=changed,
        image=image.as_dict(),
        before=before,
        after=digest,
        files=plan.files,
        notes=plan.notes,
        actions=actions,
        diff=diff,
    )


def _descriptor(manifest_body: bytes, digest: str, config_body: bytes) -> dict:
    config = json_loads(config_body)
    platform = {k: config[k] for k in ("os", "architecture", "variant") if config.get(k)}
    return {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(manifest_body), "platform": platform}


def _record(name: str, digest: str, manifest_body: bytes, config_body: bytes, config_digest: str) -> ImageRecord:
    manifest = json_loads(manifest_body)
    config = json_loads(config_body)
    layers = [
        {"digest": d["digest"], "diff_id": diff_id, "size": d["size"], "media_type": d["mediaType"]}
        for d, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"])
    ]
    plat = "/".join(config[k] for k in ("os", "architecture", "variant") if config.get(k))
    return ImageRecord(
        name=name,
        digest=digest,
        media_type=oci.OCI_MANIFEST,
        manifest=manifest,
        config_digest=config_digest,
        config=config,
        layers=layers,
        platform=plat,
        size=len(manifest_body) + len(config_body) + sum(d["size"] for d in layers),
    )
