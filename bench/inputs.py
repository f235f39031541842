# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark inputs, made here and cached under ``/var/cache/dockerless/bench/<name>-<hash>/``.

Each input is a recipe: a JSON-able dict of everything that determines the output, hashed into the cache
key, and a function that builds an OCI layout (tag ``image``) from it. A finished entry has a ``.complete``
marker; a half-built one is removed and built again.

``busybox``  the image ``scripts/seed_images.py`` builds (Debian's busybox-static, made with umoci).
``debian``   ``mmdebstrap --variant=minbase bookworm`` (about 180 MB, 8,700 entries), split by path into four
             gzip layers (usr/lib, usr/share, the rest of usr, the rest): about 60 MB compressed.
``small``    busybox plus a 3 MiB data layer: the 5 MB image of the start-time case.
``big``      busybox plus four data layers of 200, 150, 100 and 50 MiB of word-like text with some noise
             (compresses to about 55 %): the 500 MB image.

``seed_registry`` pushes them with ``skopeo copy --preserve-digests`` to a registry on loopback whose storage
is kept in the cache too, so a second ``make bench`` pushes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from layout import Layout

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
CACHE = os.environ.get("DOCKERLESS_BENCH_CACHE", "/var/cache/dockerless/bench")
RECIPE_VERSION = 1  # bump when the code below changes what an input contains
TAG = "image"
MIB = 1 << 20

DEBIAN_GROUPS = ("usr/lib", "usr/share", "usr", "")  # bottom → top; a path goes to the first prefix it matches
DEBIAN_SKIP_CONTENTS = ("dev", "proc", "sys")  # kept as empty directories, as in Docker's images
BIG_LAYERS_MIB = (200, 150, 100, 50)
SMALL_LAYERS_MIB = (3,)
FILE_MIB = 10


class InputError(RuntimeError):
    """An input could not be made; the message names it and the tool that failed."""


def _sha_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def _run(cmd: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise InputError(f"{what}: {cmd[0]} is not installed. Run bench/bench.sh (it installs the bench tools).")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise InputError(f"{what}: {' '.join(cmd[:3])} … failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return proc


@dataclass
class Entry:
    """A built (or to be built) cache entry."""

    name: str
    recipe: dict[str, Any]
    build: Callable[[Entry, str], None]  # (entry, workdir) → fills entry.path

    @property
    def key(self) -> str:
        text = json.dumps({"name": self.name, "version": RECIPE_VERSION, **self.recipe}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def path(self) -> str:
        return os.path.join(CACHE, f"{self.name}-{self.key}")

    @property
    def layout(self) -> str:
        return os.path.join(self.path, "oci")

    @property
    def complete(self) -> bool:
        return os.path.exists(os.path.join(self.path, ".complete"))

    def ensure(self, log: Callable[[str], None] = print) -> Entry:
        if self.complete:
            return self
        shutil.rmtree(self.path, ignore_errors=True)
        os.makedirs(self.path, mode=0o700)
        start = time.monotonic()
        log(f"inputs: building {self.name} ({self.path})")
        with tempfile.TemporaryDirectory(prefix=f"bench-{self.name}-", dir=CACHE) as work:
            self.build(self, work)
        with open(os.path.join(self.path, "recipe.json"), "w", encoding="utf-8") as f:
            json.dump({"name": self.name, "version": RECIPE_VERSION, **self.recipe}, f, indent=2, sort_keys=True)
        with open(os.path.join(self.path, ".complete"), "w", encoding="ascii") as f:
            f.write(f"{time.time():.0f}\n")
        log(f"inputs: {self.name} built in {time.monotonic() - start:.1f}s")
        return self

    def open(self) -> Layout:
        return Layout(self.layout)

    def size(self) -> tuple[int, int]:
        """(compressed bytes of the layers, number of layers)."""
        manifest = self.open().resolve(TAG)[0]
        return sum(layer["size"] for layer in manifest["layers"]), len(manifest["layers"])


# --- busybox (scripts/seed_images.py) ----------------------------------------------------------------------


def _seed_module():
    sys.path.insert(0, os.path.join(CHECKOUT, "scripts"))
    try:
        import seed_images  # noqa: PLC0415 - a sibling script, not a package
    finally:
        sys.path.pop(0)
    return seed_images


def _build_busybox(entry: Entry, work: str) -> None:
    seed = _seed_module()
    seed.build_busybox(seed.Layout(entry.layout), work)
    layout = Layout(entry.layout)
    layout.tag(TAG, layout._tags["busybox"])


BUSYBOX = Entry(
    "busybox",
    {
        "seed_images.py": _sha_file(os.path.join(CHECKOUT, "scripts", "seed_images.py")),
        "busybox": _sha_file("/bin/busybox") if os.path.exists("/bin/busybox") else "missing",
    },
    _build_busybox,
)


# --- Debian (mmdebstrap) ------------------------------------------------------------------------------------

DEBIAN_ROOTFS_RECIPE = {"tool": "mmdebstrap", "variant": "minbase", "suite": "bookworm", "mode": "root"}


def debian_rootfs(log: Callable[[str], None] = print) -> str:
    """The cached mmdebstrap tree (also the 180 MB directory of the build case)."""
    key = hashlib.sha256(json.dumps(DEBIAN_ROOTFS_RECIPE, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, f"debian-rootfs-{key}")
    if os.path.exists(path + ".complete"):
        return path
    shutil.rmtree(path, ignore_errors=True)
    start = time.monotonic()
    log(f"inputs: mmdebstrap --variant=minbase bookworm {path} (about 2 minutes, from Debian's mirror)")
    _run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root", "--format=directory", "bookworm", path],
         "making the Debian input")
    with open(path + ".complete", "w", encoding="ascii") as f:
        f.write(f"{time.time():.0f}\n")
    log(f"inputs: Debian rootfs made in {time.monotonic() - start:.1f}s")
    return path


def _walk(root: str) -> Iterator[str]:
    """Relative paths under ``root`` (directories included), sorted so parents come before children."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames.sort()
        if rel in DEBIAN_SKIP_CONTENTS:
            dirnames[:] = []
            filenames = []
        for name in dirnames + filenames:
            yield name if rel == "." else f"{rel}/{name}"


def group_of(rel: str, groups: tuple[str, ...] = DEBIAN_GROUPS) -> int:
    """Index of the layer a path belongs to: the first group that is the path or one of its parents."""
    for i, prefix in enumerate(groups):
        if not prefix or rel == prefix or rel.startswith(prefix + "/"):
            return i
    raise ValueError(f"{rel}: no layer group matches")


def split_layers(paths: list[str], groups: tuple[str, ...] = DEBIAN_GROUPS) -> list[list[str]]:
    """Paths per layer, each with the parent directories it needs (a parent may repeat in several layers)."""
    members: list[set[str]] = [set() for _group in groups]
    for rel in paths:
        i = group_of(rel, groups)
        members[i].add(rel)
        parent = os.path.dirname(rel)
        while parent:
            members[i].add(parent)
            parent = os.path.dirname(parent)
    return [sorted(m) for m in members]


def _build_debian(entry: Entry, work: str) -> None:
    root = debian_rootfs()
    layers_paths = split_layers(list(_walk(root)))
    layout = Layout(entry.layout)

    def layer(paths: list[str]):
        def write(tar: tarfile.TarFile) -> None:
            for rel in paths:
                tar.add(os.path.join(root, rel), arcname=rel, recursive=False)
        return layout.add_layer(write, level=entry.recipe["gzip_level"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        layers = list(pool.map(layer, layers_paths))
    config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/bash"]}
    layout.image(TAG, layers, config)


DEBIAN = Entry("debian", {"rootfs": DEBIAN_ROOTFS_RECIPE, "groups": list(DEBIAN_GROUPS), "gzip_level": 6},
               _build_debian)


# --- data images: busybox + layers of compressible data ----------------------------------------------------


def text_data(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of word-like text with a little noise: compresses to about 55 % with gzip."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _c in range(rng.randint(2, 10))) for _w in range(4096)]
    pool = " ".join(rng.choices(vocab, k=200_000)).encode()
    out = bytearray()
    while len(out) < size:
        off = rng.randrange(0, len(pool) - 65536)
        out += pool[off:off + 65536]
        out += rng.randbytes(256)
    return bytes(out[:size])


def _data_layer(layout: Layout, index: int, mib: int, seed: int, level: int):
    def write(tar: tarfile.TarFile) -> None:
        import io

        rng = random.Random(seed * 1000 + index)
        top = tarfile.TarInfo("data/")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, 946684800
        tar.addfile(top)
        d = tarfile.TarInfo(f"data/layer{index}/")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 946684800
        tar.addfile(d)
        left, n = mib * MIB, 0
        while left > 0:
            size = min(left, FILE_MIB * MIB)
            info = tarfile.TarInfo(f"data/layer{index}/part{n:03d}.txt")
            info.size, info.mode, info.mtime = size, 0o644, 946684800
            tar.addfile(info, io.BytesIO(text_data(rng, size)))
            left -= size
            n += 1
    return layout.add_layer(write, level=level)


def _build_data_image(entry: Entry, work: str) -> None:
    base = BUSYBOX.ensure().open()
    base_manifest, base_config = base.resolve(TAG)
    layout = Layout(entry.layout)
    layers = []
    for layer in base_manifest["layers"]:
        src = base.blob_path(layer["digest"])
        shutil.copyfile(src, layout.blob_path(layer["digest"]))
    for layer, diff_id in zip(base_manifest["layers"], base_config["rootfs"]["diff_ids"]):
        from layout import Descriptor

        layers.append((Descriptor(layer["mediaType"], layer["digest"], layer["size"]), diff_id))
    sizes = entry.recipe["layers_mib"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        data = list(pool.map(lambda a: _data_layer(layout, a[0], a[1], entry.recipe["seed"], entry.recipe["gzip_level"]),
                             enumerate(sizes)))
    layout.image(TAG, layers + data, base_config.get("config") or {})


SMALL = Entry("small", {"base": BUSYBOX.key, "layers_mib": list(SMALL_LAYERS_MIB), "seed": 5, "gzip_level": 6},
              _build_data_image)
BIG = Entry("big", {"base": BUSYBOX.key, "layers_mib": list(BIG_LAYERS_MIB), "seed": 500, "gzip_level": 1},
            _build_data_image)

ALL = {"busybox": BUSYBOX, "debian": DEBIAN, "small": SMALL, "big": BIG}

# Where each input is pushed in the source registry. library/busybox:latest is what playbooks/demo.yml pulls.
REPOSITORIES = {
    "busybox": ["bench/busybox:1", "library/busybox:latest"],
    "debian": ["bench/debian:1"],
    "small": ["bench/small:1"],
    "big": ["bench/big:1"],
}


def skopeo_push(layout_dir: str, tag: str, host: str, repo_tag: str) -> None:
    _run(["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
          f"oci:{layout_dir}:{tag}", f"docker://{host}/{repo_tag}"], f"pushing {host}/{repo_tag}")


def seed_registry(host: str, names: list[str], log: Callable[[str], None] = print) -> dict[str, str]:
    """Push the inputs ``names`` to ``host``; returns ``{name: reference}`` (the first repository of each)."""
    refs = {}
    for name in names:
        entry = ALL[name].ensure(log)
        for repo_tag in REPOSITORIES[name]:
            skopeo_push(entry.layout, TAG, host, repo_tag)
        refs[name] = f"{host}/{REPOSITORIES[name][0]}"
    return refs
