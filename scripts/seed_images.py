# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build test images with real tools and push them with skopeo into a registry on loopback.

    python3 scripts/seed_images.py --registry 127.0.0.1:5000 [--images busybox,layers,multi,zstd]
        [--ca-cert CA.pem] [--username U  (password in $DOCKERLESS_SEED_PASSWORD)] [--layout DIR]

Prints a JSON summary ``{name: {"reference", "digest", "media_type", ...}}`` on stdout. Builds are
deterministic (fixed timestamps, owners and compression settings), so running it again pushes the same digests:
the script is idempotent.

Images (all linux):

``<registry>/library/busybox:latest`` (Docker v2 schema 2)
    Debian's static ``/bin/busybox`` plus one symlink per applet (``busybox --list-full``: ``bin/sh``,
    ``bin/ls``, ``bin/cat``, ``bin/echo`` ...), ``etc/passwd``/``etc/group`` (root, nobody), ``tmp`` (1777),
    built with ``umoci new``/``unpack``/``repack``/``config``; Cmd ``["sh"]``.

``<registry>/test/layers:1`` (OCI, three gzip layers written here with :mod:`tarfile`)
    layer 1: ``etc/hostname``; ``usr/bin/tool`` (0755) and its hardlink ``usr/bin/tool-hardlink``;
    symlinks ``usr/bin/tool-rel -> tool``, ``bin/up-rel -> ../usr/bin/tool``, ``etc/hostname-abs ->
    /etc/hostname``, ``dangling -> /nonexistent``; ``usr/bin/setuid-tool`` (04755), ``usr/bin/setgid-tool``
    (02755, gid 50); ``xattr-file`` with ``user.dockerless=seed`` (PAX ``SCHILY.xattr``); ``secret/`` (0700,
    ``secret/key`` 0600); ``home/user/`` (0750, 1000:1000) with ``notes.txt`` (0640, 1000:1000);
    ``opaque/{lower-a.txt,lower-b.txt,sub/deep.txt}``; ``gone-dir/{a.txt,sub/b.txt}``;
    ``keep/{deleted.txt,kept.txt}``; ``flip`` (a file); ``tmp/`` (1777).
    layer 2: whiteout ``keep/.wh.deleted.txt``; whiteout of a directory ``.wh.gone-dir``; ``opaque/upper.txt``
    *then* the opaque marker ``opaque/.wh..wh..opq`` (it hides lower layers only, wherever it appears);
    ``etc/hostname`` and ``usr/bin/tool`` rewritten; ``home/user/new.txt`` (0600, 1000:1000) and its hardlink
    ``home/user/new-link.txt``; ``flip/`` becomes a directory holding ``inside.txt``.
    layer 3: ``gone-dir/new.txt`` (the deleted directory comes back with only this file); ``usr/bin/tool-rel``
    becomes a regular file; ``var/lib/nobody-owned`` (65534:65534).
    Flattened, the image holds: etc/hostname = "layers v2", no keep/deleted.txt, gone-dir/ = {new.txt},
    opaque/ = {upper.txt}, flip/inside.txt, usr/bin/tool-hardlink = the layer-1 content of tool.

``<registry>/test/multi:1`` (OCI image index, pushed with ``skopeo copy --all``)
    linux/amd64 = the busybox image (OCI form), linux/arm64 and linux/arm/v7 = tiny distinct images whose
    only file is ``etc/arch`` ("arm64" / "arm/v7").

``<registry>/test/zstd:1`` (OCI, one ``tar+zstd`` layer)
    The busybox image with its layer recompressed by the ``zstd`` CLI. skopeo 1.9's ``--dest-compress-format
    zstd`` is not used: once the gzip blob is in the registry, skopeo reuses it and silently pushes gzip.

Only the standard library, ``umoci``, ``skopeo``, ``zstd`` and Debian's busybox-static are needed.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

ALL_IMAGES = ("busybox", "layers", "multi", "zstd")
EPOCH = 946684800  # 2000-01-01T00:00:00Z: every file and config timestamp, so builds are reproducible
CREATED = "2000-01-01T00:00:00Z"
BUSYBOX = "/bin/busybox"

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


class SeedError(RuntimeError):
    """A build or push step failed; the message names the image and the tool."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SeedError(f"seeding images: {name} is not installed. Run scripts/install-deps.sh as root.")
    return path


def _run(cmd: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run([_tool(cmd[0])] + cmd[1:], capture_output=True, check=False, **kwargs)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        raise SeedError(f"{what}: {cmd[0]} {cmd[1]} failed (exit {proc.returncode}): {err.strip()[-1500:]}")
    return proc


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


# --- a minimal OCI image layout writer -------------------------------------------------------------------


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Optional[dict[str, str]] = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            doc["platform"] = self.platform
        return doc


class Layout:
    """An OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``) that skopeo reads as ``oci:DIR:tag``."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w", encoding="ascii") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        self._tags: dict[str, Descriptor] = {}

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.root, "blobs", "sha256", digest.split(":", 1)[1])

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)
        return Descriptor(media_type, digest, len(data))

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def add_json(self, doc: dict[str, Any], media_type: str) -> Descriptor:
        return self.add_blob(_canonical(doc), media_type)

    def tag(self, name: str, desc: Descriptor) -> None:
        self._tags[name] = desc
        manifests = []
        for tag, d in sorted(self._tags.items()):
            entry = Descriptor(d.media_type, d.digest, d.size).to_json()
            entry["annotations"] = {REF_ANNOTATION: tag}
            manifests.append(entry)
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests}
        tmp = os.path.join(self.root, "index.json.tmp")
        with open(tmp, "wb") as f:
            f.write(_canonical(index))
        os.replace(tmp, os.path.join(self.root, "index.json"))

    def image(self, config: dict[str, Any], layers: list[Descriptor], platform: Optional[dict[str, str]] = None):
        """Store config + manifest; return the manifest descriptor (with ``platform`` for use in an index)."""
        config_desc = self.add_json(config, MT_OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": config_desc.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
        desc = self.add_json(manifest, MT_OCI_MANIFEST)
        desc.platform = platform
        return desc


def _config(diff_ids: list[str], arch: str = "amd64", variant: Optional[str] = None, **settings: Any):
    config: dict[str, Any] = {"created": CREATED, "architecture": arch, "os": "linux"}
    if variant:
        config["variant"] = variant
    config["config"] = settings
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = [{"created": CREATED, "created_by": f"seed_images.py layer {i + 1}"} for i in range(len(diff_ids))]
    return config


# --- tar layers written with tarfile ------------------------------------------------------------------------


@dataclass
class Entry:
    """One tar member: ``kind`` is file, dir, symlink, hardlink; ``target`` is the link target."""

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""
    xattrs: Optional[dict[str, str]] = None


def _d(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, "dir", mode=mode, uid=uid, gid=gid)


def _f(path: str, data: str, mode: int = 0o644, uid: int = 0, gid: int = 0, **kw: Any) -> Entry:
    return Entry(path, "file", data.encode(), mode=mode, uid=uid, gid=gid, **kw)


def _sl(path: str, target: str) -> Entry:
    return Entry(path, "symlink", mode=0o777, target=target)


def _hl(path: str, target: str) -> Entry:
    return Entry(path, "hardlink", target=target)


def make_tar(entries: Iterable[Entry]) -> bytes:
    """A PAX tar in the given order with fixed mtimes (order matters: whiteouts and opaque markers)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
            info.mtime = EPOCH
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.kind == "file":
                info.type = tarfile.REGTYPE
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
                continue
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.target
            elif e.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = e.target
            else:
                raise ValueError(f"make_tar: unknown entry kind {e.kind!r} for {e.path}")
            tar.addfile(info)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name in the header: the same input gives the same digest."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def zstd_bytes(data: bytes) -> bytes:
    """Compress with the ``zstd`` CLI (level 3, single thread: reproducible output)."""
    return _run(["zstd", "-3", "-q", "-c", "--single-thread"], "compressing a layer with zstd", input=data).stdout


def add_layer(layout: Layout, tar: bytes, compression: str = "gzip") -> tuple[Descriptor, str]:
    """Store a compressed layer; returns (descriptor, diff_id)."""
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    if compression == "gzip":
        return layout.add_blob(gzip_bytes(tar), MT_OCI_LAYER_GZIP), diff_id
    return layout.add_blob(zstd_bytes(tar), MT_OCI_LAYER_ZSTD), diff_id


LAYER1 = [
    _d("bin"),
    _d("etc"),
    _f("etc/hostname", "layers\n"),
    _f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
       "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    _f("etc/group", "root:x:0:\nstaff:x:50:\nuser:x:1000:\nnogroup:x:65534:\n"),
    _sl("etc/hostname-abs", "/etc/hostname"),
    _d("usr"),
    _d("usr/bin"),
    _f("usr/bin/tool", "#!/bin/sh\necho tool v1\n", 0o755),
    _hl("usr/bin/tool-hardlink", "usr/bin/tool"),
    _sl("usr/bin/tool-rel", "tool"),
    _sl("bin/up-rel", "../usr/bin/tool"),
    _f("usr/bin/setuid-tool", "#!/bin/sh\necho setuid\n", 0o4755),
    _f("usr/bin/setgid-tool", "#!/bin/sh\necho setgid\n", 0o2755, gid=50),
    _sl("dangling", "/nonexistent"),
    _f("xattr-file", "has an xattr\n", xattrs={"user.dockerless": "seed"}),
    _d("secret", 0o700),
    _f("secret/key", "not really a key\n", 0o600),
    _d("home"),
    _d("home/user", 0o750, 1000, 1000),
    _f("home/user/notes.txt", "notes\n", 0o640, 1000, 1000),
    _d("opaque"),
    _f("opaque/lower-a.txt", "a\n"),
    _f("opaque/lower-b.txt", "b\n"),
    _d("opaque/sub"),
    _f("opaque/sub/deep.txt", "deep\n"),
    _d("gone-dir"),
    _f("gone-dir/a.txt", "a\n"),
    _d("gone-dir/sub"),
    _f("gone-dir/sub/b.txt", "b\n"),
    _d("keep"),
    _f("keep/deleted.txt", "deleted in layer 2\n"),
    _f("keep/kept.txt", "kept\n"),
    _f("flip", "a file in layer 1, a directory in layer 2\n"),
    _d("tmp", 0o1777),
]

LAYER2 = [
    _d("keep"),
    _f("keep/.wh.deleted.txt", ""),
    _f(".wh.gone-dir", ""),
    _d("opaque"),
    _f("opaque/upper.txt", "upper\n"),
    # The marker comes after a same-layer file on purpose: it hides lower layers only, wherever it appears.
    _f("opaque/.wh..wh..opq", ""),
    _d("etc"),
    _f("etc/hostname", "layers v2\n"),
    _d("usr"),
    _d("usr/bin"),
    _f("usr/bin/tool", "#!/bin/sh\necho tool v2\n", 0o755),
    _d("home"),
    _d("home/user", 0o750, 1000, 1000),
    _f("home/user/new.txt", "new\n", 0o600, 1000, 1000),
    _hl("home/user/new-link.txt", "home/user/new.txt"),
    _d("flip"),
    _f("flip/inside.txt", "inside\n"),
]

LAYER3 = [
    _d("gone-dir"),
    _f("gone-dir/new.txt", "back\n"),
    _d("usr"),
    _d("usr/bin"),
    _f("usr/bin/tool-rel", "now a regular file\n", 0o755),
    _d("var"),
    _d("var/lib"),
    _f("var/lib/nobody-owned", "nobody\n", 0o644, 65534, 65534),
]


def build_layers(layout: Layout) -> Descriptor:
    layers, diff_ids = [], []
    for entries in (LAYER1, LAYER2, LAYER3):
        desc, diff_id = add_layer(layout, make_tar(entries))
        layers.append(desc)
        diff_ids.append(diff_id)
    config = _config(
        diff_ids,
        Env=["PATH=/usr/bin:/bin"],
        Cmd=["/usr/bin/tool"],
        WorkingDir="/",
        Labels={"org.dockerless.test": "layers"},
    )
    desc = layout.image(config, layers)
    layout.tag("layers", desc)
    return desc


# --- busybox with umoci ---------------------------------------------------------------------------------


def _busybox_applets() -> list[str]:
    out = _run([BUSYBOX, "--list-full"], "listing busybox applets").stdout.decode()
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def build_busybox(layout: Layout, workdir: str) -> Descriptor:
    """Build busybox with umoci in its own layout, then copy its blobs into ``layout`` (tag ``busybox``)."""
    if not os.path.exists(BUSYBOX):
        raise SeedError(f"building busybox: {BUSYBOX} is missing. Install busybox-static (scripts/install-deps.sh).")
    umoci_layout = os.path.join(workdir, "umoci-busybox")
    bundle = os.path.join(workdir, "umoci-bundle")
    for path in (umoci_layout, bundle):
        shutil.rmtree(path, ignore_errors=True)
    image = f"{umoci_layout}:busybox"
    _run(["umoci", "init", "--layout", umoci_layout], "building busybox")
    _run(["umoci", "new", "--image", image], "building busybox")
    _run(["umoci", "unpack", "--image", image, bundle], "building busybox")
    rootfs = os.path.join(bundle, "rootfs")
    for d, mode in (("bin", 0o755), ("sbin", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755), ("etc", 0o755),
                    ("root", 0o700), ("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                    ("home", 0o755), ("var", 0o755)):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        os.chmod(os.path.join(rootfs, d), mode)
    shutil.copyfile(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
    os.chmod(os.path.join(rootfs, "bin", "busybox"), 0o755)
    for applet in _busybox_applets():
        if applet == "bin/busybox":
            continue
        link = os.path.join(rootfs, applet)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
            os.symlink(os.path.relpath("/bin/busybox", "/" + os.path.dirname(applet)), link)
    with open(os.path.join(rootfs, "etc", "passwd"), "w", encoding="ascii") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    with open(os.path.join(rootfs, "etc", "group"), "w", encoding="ascii") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(rootfs, (EPOCH, EPOCH))
    _run(["umoci", "repack", "--image", image, "--history.created", CREATED,
          "--history.created_by", "seed_images.py: busybox-static", bundle], "building busybox")
    _run(["umoci", "config", "--image", image, "--created", CREATED, "--history.created", CREATED,
          "--config.cmd", "sh", "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
          "--architecture", "amd64", "--os", "linux"], "building busybox")
    shutil.rmtree(bundle, ignore_errors=True)

    # Copy the image into the shared layout.
    with open(os.path.join(umoci_layout, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    entry = next(m for m in index["manifests"] if m.get("annotations", {}).get(REF_ANNOTATION) == "busybox")
    src = Layout(umoci_layout)
    manifest_bytes = src.read_blob(entry["digest"])
    manifest = json.loads(manifest_bytes)
    for d in [manifest["config"]] + manifest["layers"]:
        layout.add_blob(src.read_blob(d["digest"]), d["mediaType"])
    desc = layout.add_blob(manifest_bytes, MT_OCI_MANIFEST)
    layout.tag("busybox", desc)
    return desc


def build_zstd(layout: Layout, busybox: Descriptor) -> Descriptor:
    """The busybox image with its layer decompressed and recompressed as zstd (same diff_ids)."""
    manifest = json.loads(layout.read_blob(busybox.digest))
    config = json.loads(layout.read_blob(manifest["config"]["digest"]))
    layers = []
    for layer in manifest["layers"]:
        tar = gzip.decompress(layout.read_blob(layer["digest"]))
        desc, _diff_id = add_layer(layout, tar, "zstd")
        layers.append(desc)
    desc = layout.image(config, layers)
    layout.tag("zstd", desc)
    return desc


def build_multi(layout: Layout, busybox: Descriptor) -> tuple[Descriptor, dict[str, str]]:
    """An OCI index: amd64 = busybox, plus tiny arm64 and arm/v7 images."""
    entries = [Descriptor(busybox.media_type, busybox.digest, busybox.size, {"architecture": "amd64", "os": "linux"})]
    for arch, variant in (("arm64", None), ("arm", "v7")):
        name = arch + (f"/{variant}" if variant else "")
        layer, diff_id = add_layer(layout, make_tar([_d("etc"), _f("etc/arch", name + "\n")]))
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        config = _config([diff_id], arch, variant, Cmd=["/bin/sh"], Labels={"org.dockerless.test": "multi"})
        entries.append(layout.image(config, [layer], platform))
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [e.to_json() for e in entries]}
    desc = layout.add_json(index, MT_OCI_INDEX)
    layout.tag("multi", desc)
    platforms = {}
    for e in entries:
        p = e.platform or {}
        key = "/".join(filter(None, (p.get("os"), p.get("architecture"), p.get("variant"))))
        platforms[key] = e.digest
    return desc, platforms


# --- push -----------------------------------------------------------------------------------------------


@dataclass
class Destination:
    """Where and how skopeo pushes: ``host`` is HOST:PORT; ``ca_cert`` makes it https with that CA."""

    host: str
    ca_cert: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None

    def skopeo_args(self, tmp: str) -> list[str]:
        args = []
        if self.ca_cert:
            cert_dir = os.path.join(tmp, "certs")
            os.makedirs(cert_dir, exist_ok=True)
            shutil.copyfile(self.ca_cert, os.path.join(cert_dir, "ca.crt"))
            args += ["--dest-tls-verify=true", "--dest-cert-dir", cert_dir]
        else:
            args += ["--dest-tls-verify=false"]
        if self.username:
            authfile = os.path.join(tmp, "auth.json")
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"auths": {self.host: {"auth": token}}}, f)
            args += ["--dest-authfile", authfile]
        return args


def push(layout: Layout, tag: str, dest: Destination, repo_tag: str, tmp: str, *, fmt: Optional[str] = None,
         all_images: bool = False) -> str:
    """``skopeo copy oci:LAYOUT:tag docker://HOST/repo_tag``; returns the pushed manifest digest."""
    digest_file = os.path.join(tmp, "digest")
    cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--retry-times", "2", "--digestfile", digest_file]
    cmd += dest.skopeo_args(tmp)
    if fmt:
        cmd += ["--format", fmt]
    else:
        cmd += ["--preserve-digests"]
    if all_images:
        cmd += ["--all"]
    cmd += [f"oci:{layout.root}:{tag}", f"docker://{dest.host}/{repo_tag}"]
    _run(cmd, f"pushing {dest.host}/{repo_tag}")
    with open(digest_file, encoding="ascii") as f:
        return f.read().strip()


def seed(
    dest: Destination, images: Iterable[str] = ALL_IMAGES, layout_dir: Optional[str] = None
) -> dict[str, dict[str, Any]]:
    """Build the requested images into an OCI layout and push them; return the summary."""
    images = list(images)
    unknown = sorted(set(images) - set(ALL_IMAGES))
    if unknown:
        raise SeedError(f"seeding images: unknown image(s) {', '.join(unknown)}; choose from {', '.join(ALL_IMAGES)}")
    with tempfile.TemporaryDirectory(prefix="dockerless-seed-") as tmp:
        root = layout_dir or os.path.join(tmp, "oci")
        if os.path.exists(root):
            shutil.rmtree(root)
        layout = Layout(root)
        summary: dict[str, dict[str, Any]] = {}
        busybox = None
        if {"busybox", "multi", "zstd"} & set(images):
            busybox = build_busybox(layout, tmp)
        if "busybox" in images:
            ref = "library/busybox:latest"
            digest = push(layout, "busybox", dest, ref, tmp, fmt="v2s2")
            summary["busybox"] = {"reference": f"{dest.host}/{ref}", "digest": digest, "media_type": MT_DOCKER_MANIFEST,
                                  "oci_digest": busybox.digest}
        if "layers" in images:
            desc = build_layers(layout)
            ref = "test/layers:1"
            summary["layers"] = _checked(push(layout, "layers", dest, ref, tmp), desc, dest, ref)
        if "multi" in images:
            desc, platforms = build_multi(layout, busybox)
            ref = "test/multi:1"
            summary["multi"] = _checked(push(layout, "multi", dest, ref, tmp, all_images=True), desc, dest, ref)
            summary["multi"]["platforms"] = platforms
        if "zstd" in images:
            desc = build_zstd(layout, busybox)
            ref = "test/zstd:1"
            summary["zstd"] = _checked(push(layout, "zstd", dest, ref, tmp), desc, dest, ref)
        return summary


def _checked(pushed: str, desc: Descriptor, dest: Destination, ref: str) -> dict[str, Any]:
    if pushed != desc.digest:
        raise SeedError(
            f"pushing {dest.host}/{ref}: the registry has {pushed}, the layout {desc.digest}; skopeo rewrote "
            "the manifest. Check the skopeo version (1.9 expected)."
        )
    return {"reference": f"{dest.host}/{ref}", "digest": pushed, "media_type": desc.media_type}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Build test images and push them to a registry on loopback.")
    parser.add_argument("--registry", required=True, metavar="HOST:PORT")
    parser.add_argument("--images", default=",".join(ALL_IMAGES), help=f"comma-separated subset of {ALL_IMAGES}")
    parser.add_argument("--ca-cert", help="the registry's CA (PEM): push over https and verify with it")
    parser.add_argument("--username", help="registry user; the password is read from $DOCKERLESS_SEED_PASSWORD")
    parser.add_argument("--layout", help="keep the built OCI layout in this directory (recreated each run)")
    args = parser.parse_args(argv)
    password = os.environ.get("DOCKERLESS_SEED_PASSWORD")
    if args.username and not password:
        parser.error("--username needs the password in $DOCKERLESS_SEED_PASSWORD")
    dest = Destination(args.registry, args.ca_cert, args.username, password)
    try:
        summary = seed(dest, [i.strip() for i in args.images.split(",") if i.strip()],
                       os.path.abspath(args.layout) if args.layout else None)
    except SeedError as exc:
        print(f"seed_images.py: {exc}", file=sys.stderr)
        return 1
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
