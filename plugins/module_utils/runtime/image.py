# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container start path's read-only look-up of one image in the store.

``store.Store.image`` is the store's full reader (strict OCI parsing, platform selection, GC, writers); importing
it brings the store's and the OCI parser's imports, which cost more than a container's whole setup (the
start path must import little). A container start needs three documents of one image and nothing else, so
``image_for_start`` reads exactly those with json and SHA-256 only:

* ``index.json``: the descriptor tagged ``name`` (``org.opencontainers.image.ref.name``), the same entry
  ``Store.resolve`` finds;
* the manifest blob and the config blob, each re-verified against its sha256 digest (the store parsed and
  validated both when they were ingested: what verifies is what it accepted);
* the layers' diff_ids, each checked to be ``sha256:<64 hex>`` before it becomes a path under ``layers/``.

Anything unexpected (no such tag, an index instead of an image, a blob missing or corrupt, a bad diff_id)
raises StoreError naming the image and what to do, like the store itself. tests/unit check that the result equals
``Store.image`` for the same image.
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils.errors import StoreError
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_loads, sha256_hex

REF_NAME = "org.opencontainers.image.ref.name"   # oci.ANNOTATION_REF_NAME
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")  # oci.INDEX_TYPES
MAX_DOCUMENT = 4 << 20                            # oci.MAX_MANIFEST_SIZE
_HEX = frozenset("0123456789abcdef")


class StartImage:
    """What a container start needs of an image: its digest, its config's ``config`` object, the diff_ids
    (bottom → top), their unpacked folders (top → bottom, overlayfs' lowerdir order) and its platform
    (``{"os", "architecture", "variant"}`` as far as known: the index entry's, else the config's, as
    ``Store.load_image`` takes it)."""

    __slots__ = ("name", "digest", "config", "diff_ids", "lower_dirs", "platform")

    def __init__(self, name: str, digest: str, config: dict, diff_ids: list, lower_dirs: list,
                 platform: dict | None = None):
        self.name, self.digest, self.config = name, digest, config
        self.diff_ids, self.lower_dirs = diff_ids, lower_dirs
        self.platform = platform or {}

    def unpacked(self) -> bool:
        """Every layer has its folder (a built image has only its blobs until a container needs the folders)."""
        return all(os.path.isdir(d) for d in self.lower_dirs)

    def __repr__(self) -> str:
        return f"StartImage({self.name!r}, {self.digest!r}, {len(self.diff_ids)} layer(s))"


def _digest_hex(digest, what: str, name: str) -> str:
    if (not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71
            or not _HEX.issuperset(digest[7:])):
        raise StoreError(f"image {name}: {what} {str(digest)[:100]!r} is not a sha256 digest; the store entry is "
                         "damaged. Pull the image again.")
    return digest[7:]


def _read_blob(root: str, digest: str, what: str, name: str) -> dict:
    path = os.path.join(root, "blobs", "sha256", _digest_hex(digest, what, name))
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_DOCUMENT + 1)
    except FileNotFoundError:
        raise StoreError(f"image {name}: its {what} {digest} is missing from the store {root}; pull the image "
                         "again.") from None
    if len(data) > MAX_DOCUMENT or "sha256:" + sha256_hex(data) != digest:
        raise StoreError(f"image {name}: its {what} {digest} is corrupt on disk in the store {root}; remove the "
                         "image and pull it again.")
    try:
        doc = json_loads(data)
    except ValueError as exc:
        raise StoreError(f"image {name}: its {what} {digest} is not JSON ({exc}); pull the image again.") from None
    if not isinstance(doc, dict):
        raise StoreError(f"image {name}: its {what} {digest} is not a JSON object; pull the image again.")
    return doc


def image_for_start(store_root: str, name: str) -> StartImage:
    """The image tagged ``name`` (a normalised reference, as the store keys it) in the store at ``store_root``,
    read for a container start. Raises StoreError when it is not there or not usable as it is."""
    root = os.path.abspath(store_root)
    try:
        with open(os.path.join(root, "index.json"), "rb") as handle:
            index = json_loads(handle.read())
    except FileNotFoundError:
        index = {"manifests": []}
    except ValueError as exc:
        raise StoreError(f"store {root}: index.json is not valid JSON ({exc}); restore it or remove the store.")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise StoreError(f"store {root}: index.json has no 'manifests' list.")
    desc = next((d for d in manifests if isinstance(d, dict) and (d.get("annotations") or {}).get(REF_NAME) == name),
                None)
    if desc is None:
        raise StoreError(f"image {name}: not in the store {root}; pull or build it first.")
    digest = desc.get("digest")
    manifest = _read_blob(root, digest, "manifest", name)
    if (manifest.get("mediaType") or desc.get("mediaType")) in INDEX_TYPES or "manifests" in manifest:
        raise StoreError(f"image {name}: the store entry is an index, not a single-platform image; pull it again.")
    config_desc = manifest.get("config")
    layers = manifest.get("layers")
    if not isinstance(config_desc, dict) or not isinstance(layers, list):
        raise StoreError(f"image {name}: manifest {digest} has no config or layers; pull the image again.")
    config = _read_blob(root, config_desc.get("digest"), "config", name)
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise StoreError(f"image {name}: its config lists {len(diff_ids or [])} diff_ids for {len(layers)} layers; "
                         "pull the image again.")
    layers_dir = os.path.join(root, "layers", "sha256")
    lower = [os.path.join(layers_dir, _digest_hex(d, "layer diff_id", name)) for d in reversed(diff_ids)]
    platform = desc.get("platform") if isinstance(desc.get("platform"), dict) else {
        k: config[k] for k in ("os", "architecture", "variant") if isinstance(config.get(k), str) and config[k]}
    return StartImage(name, digest, config.get("config") or {}, list(diff_ids), lower, platform)
