# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI / Docker media types and strict parsing of manifests, indexes and image configs.

Documents are checked before anything they name is fetched or stored: the digests they carry must be valid,
the kind of document must be unambiguous (image-spec manifest.md / image-index.md), and an image config's
``rootfs.diff_ids`` must match its manifest's layers one to one.
"""

from __future__ import annotations

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError, ImageReferenceError
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
    Platform,
    platform_matches,
    validate_digest,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_dumps, json_loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

IMAGE_MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)
LAYER_TYPES = (OCI_LAYER_TAR, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER_GZIP)
FOREIGN_LAYER_MARKERS = ("nondistributable", "foreign")

MAX_MANIFEST_SIZE = 4 * 2**20
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


class ManifestError(DockerlessError):
    """A manifest, index or config that is malformed, ambiguous or unsupported."""


def _load(body: bytes, what: str) -> dict:
    if len(body) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"{what}: larger than {MAX_MANIFEST_SIZE} bytes; refusing to parse it.")
    try:
        data = json_loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what}: not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{what}: expected a JSON object.")
    return data


def _descriptor(data: Any, what: str) -> dict:
    if not isinstance(data, dict):
        raise ManifestError(f"{what}: descriptor is not an object.")
    try:
        validate_digest(data.get("digest"))
    except ImageReferenceError as exc:
        raise ManifestError(f"{what}: {exc}") from None
    size = data.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what}: descriptor size {size!r} is not a non-negative integer.")
    if not isinstance(data.get("mediaType", ""), str):
        raise ManifestError(f"{what}: descriptor mediaType is not a string.")
    return data


def classify(body: bytes, content_type: str | None, what: str) -> tuple[str, dict]:
    """Return (media_type, document) for a manifest or index, refusing ambiguous or unsupported documents."""
    data = _load(body, what)
    declared = data.get("mediaType")
    ctype = (content_type or "").split(";")[0].strip() or None
    if ctype in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1 or data.get("schemaVersion") == 1:
        raise ManifestError(
            f"{what}: Docker schema 1 manifests are deprecated and not supported; "
            "push the image again with a current client (schema 2 or OCI)."
        )
    if data.get("schemaVersion") != 2:
        raise ManifestError(f"{what}: schemaVersion {data.get('schemaVersion')!r} is not supported (expected 2).")
    if "manifests" in data and ("layers" in data or "config" in data):
        raise ManifestError(f"{what}: ambiguous document with both 'manifests' and 'layers'/'config'; refusing it.")
    if declared is not None and ctype is not None and ctype in MANIFEST_MEDIA_TYPES and declared != ctype:
        raise ManifestError(f"{what}: mediaType {declared!r} differs from Content-Type {ctype!r}; refusing it.")
    media_type = declared or ctype
    if media_type not in MANIFEST_MEDIA_TYPES:
        # OCI allows mediaType to be absent; infer from the shape.
        media_type = OCI_INDEX if "manifests" in data else OCI_MANIFEST if "layers" in data else None
    if media_type is None:
        raise ManifestError(f"{what}: unsupported document type {declared or ctype!r}.")
    if media_type in INDEX_TYPES:
        manifests = data.get("manifests")
        if not isinstance(manifests, list):
            raise ManifestError(f"{what}: index without a 'manifests' list.")
        for i, desc in enumerate(manifests):
            _descriptor(desc, f"{what} manifests[{i}]")
    else:
        _descriptor(data.get("config"), f"{what} config")
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise ManifestError(f"{what}: manifest without a 'layers' list.")
        for i, desc in enumerate(layers):
            _descriptor(desc, f"{what} layers[{i}]")
    return media_type, data


def select_platform(index: dict, want: Platform, what: str) -> dict:
    """Pick the manifest descriptor for ``want`` from an index / manifest list (skips attestations)."""
    candidates = []
    for desc in index.get("manifests", []):
        plat = desc.get("platform") or {}
        if desc.get("mediaType") not in (None, *IMAGE_MANIFEST_TYPES):
            continue
        if plat.get("os") == "unknown" or plat.get("architecture") == "unknown":
            continue  # buildkit attestation manifests
        if platform_matches(want, plat):
            candidates.append(desc)
    if not candidates:
        available = sorted({
            "/".join(filter(None, (d.get("platform", {}).get("os"), d.get("platform", {}).get("architecture"),
                                   d.get("platform", {}).get("variant"))))
            for d in index.get("manifests", []) if d.get("platform")
        })
        raise ManifestError(
            f"{what}: no image for platform {want}; available: {', '.join(available) or 'none'}. "
            "Set 'platform' to one of them."
        )
    return candidates[0]


def parse_config(body: bytes, manifest: dict, what: str) -> dict:
    """Parse an image config and check ``rootfs.diff_ids`` against the manifest's layers."""
    config = _load(body, what)
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" or not isinstance(rootfs.get("diff_ids"), list):
        raise ManifestError(f"{what}: missing rootfs.diff_ids.")
    diff_ids = rootfs["diff_ids"]
    if len(diff_ids) != len(manifest["layers"]):
        raise ManifestError(
            f"{what}: {len(diff_ids)} rootfs.diff_ids for {len(manifest['layers'])} layers; the image is inconsistent."
        )
    for d in diff_ids:
        try:
            validate_digest(d)
        except ImageReferenceError as exc:
            raise ManifestError(f"{what}: rootfs.diff_ids: {exc}") from None
    return config


def check_layer_media_type(media_type: str, digest: str, what: str) -> None:
    if media_type in LAYER_TYPES:
        return
    if any(marker in (media_type or "") for marker in FOREIGN_LAYER_MARKERS):
        raise ManifestError(
            f"{what}: layer {digest} is a foreign/non-distributable layer ({media_type}); such layers "
            "(Windows base images) are not served by the registry and can't be pulled here."
        )
    raise ManifestError(f"{what}: layer {digest} has unsupported media type {media_type!r}.")


_DOCKER_TO_OCI_LAYER = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER_TAR,
    OCI_LAYER_TAR: OCI_LAYER_TAR,
    OCI_LAYER_GZIP: OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD: OCI_LAYER_ZSTD,
}


def docker_to_oci_manifest(doc: dict) -> bytes:
    """Rewrite a Docker v2 schema 2 manifest as an OCI image manifest (what ``skopeo copy docker:// oci:``
    does). The config and layer blobs are byte-identical; only media types change, so the OCI manifest has
    its own digest. The store keeps OCI documents because skopeo's and umoci's OCI layout readers skip
    descriptors with Docker media types."""
    config = dict(doc["config"], mediaType=OCI_CONFIG)
    layers = []
    for layer in doc["layers"]:
        media_type = layer.get("mediaType", "")
        if media_type not in _DOCKER_TO_OCI_LAYER:
            check_layer_media_type(media_type, layer.get("digest", "?"), "Docker manifest")
        layers.append(dict(layer, mediaType=_DOCKER_TO_OCI_LAYER[media_type]))
    out = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    if doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return json_dumps(out, separators=(",", ":")).encode()
