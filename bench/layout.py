# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small, streaming OCI image layout writer for the benchmark inputs.

Layers are written as a tar stream that is hashed (diff_id), gzip-compressed with mtime 0 and hashed again
(blob digest) on its way to disk, so a 200 MiB layer never sits in memory. The result is an OCI layout that
``skopeo copy oci:DIR:TAG docker://…`` pushes as is (``--preserve-digests``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Optional

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
CREATED = "2000-01-01T00:00:00Z"


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class _GzipHashSink:
    """Write side of a layer: hash the tar bytes, gzip them (deterministic header), hash and store the result."""

    def __init__(self, out: BinaryIO, level: int):
        self.out = out
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.size = 0
        # wbits 31 = gzip container; zlib writes mtime 0 and no file name, so equal input gives equal bytes.
        self.z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.size += len(data)
            self.out.write(data)

    def write(self, data) -> int:
        self.diff.update(data)
        self._emit(self.z.compress(data))
        return len(data)

    def close(self) -> None:
        self._emit(self.z.flush())


@dataclass
class Layout:
    """An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256``)."""

    root: str
    _tags: dict[str, Descriptor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(self.root, "oci-layout"), "w", encoding="ascii") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        index = os.path.join(self.root, "index.json")
        if os.path.exists(index):
            with open(index, encoding="utf-8") as f:
                for m in json.load(f).get("manifests", []):
                    name = m.get("annotations", {}).get(REF_ANNOTATION)
                    if name:
                        self._tags[name] = Descriptor(m["mediaType"], m["digest"], m["size"])

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

    def add_layer(self, write_tar: Callable[[tarfile.TarFile], None], level: int = 6) -> tuple[Descriptor, str]:
        """Stream a gzip layer: ``write_tar(tar)`` adds the entries. Returns (descriptor, diff_id)."""
        tmp = os.path.join(self.root, "blobs", f".layer-{os.getpid()}-{id(write_tar)}.tmp")
        with open(tmp, "wb") as out:
            sink = _GzipHashSink(out, level)
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                write_tar(tar)
            sink.close()
        digest = "sha256:" + sink.blob.hexdigest()
        os.replace(tmp, self.blob_path(digest))
        return Descriptor(MT_LAYER_GZIP, digest, sink.size), "sha256:" + sink.diff.hexdigest()

    def image(self, tag: str, layers: list[tuple[Descriptor, str]], config: dict[str, Any],
              history: Optional[list[dict[str, Any]]] = None) -> Descriptor:
        """Write config + manifest for ``layers`` (bottom → top) and tag it."""
        doc = {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _desc, diff_id in layers]},
            "history": history or [{"created": CREATED, "created_by": "bench/inputs.py"} for _layer in layers],
        }
        cfg = self.add_blob(canonical(doc), MT_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": cfg.as_dict(),
            "layers": [d.as_dict() for d, _diff_id in layers],
        }
        desc = self.add_blob(canonical(manifest), MT_MANIFEST)
        self.tag(tag, desc)
        return desc

    def tag(self, name: str, desc: Descriptor) -> None:
        self._tags[name] = desc
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {**d.as_dict(), "annotations": {REF_ANNOTATION: n}} for n, d in sorted(self._tags.items())
            ],
        }
        tmp = os.path.join(self.root, "index.json.tmp")
        with open(tmp, "wb") as f:
            f.write(canonical(index))
        os.replace(tmp, os.path.join(self.root, "index.json"))

    def resolve(self, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(manifest, config) of ``tag``."""
        manifest = json.loads(self.read_blob(self._tags[tag].digest))
        config = json.loads(self.read_blob(manifest["config"]["digest"]))
        return manifest, config

    def layer_blobs(self, tag: str) -> list[str]:
        """Paths of the compressed layer blobs of ``tag``, bottom → top."""
        manifest = self.resolve(tag)[0]
        return [self.blob_path(layer["digest"]) for layer in manifest["layers"]]
