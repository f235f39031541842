# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer folders made from blobs the store already holds: the part of pulling that needs no registry.

A built image (image_build stores the layer blob only) or a store whose layer folders were collected gets its
folders back from its blobs here. ``dockerless run`` of such an image comes here without importing the pull
engine (``pull`` imports the registry client, TLS and HTTP: more than a container's whole start); ``pull``
re-exports these functions and uses them for downloaded layers as well.
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import ImageRecord, Store, remove_tree


class _Tee:
    """A read-only stream that copies everything read into a blob writer."""

    def __init__(self, source, sink):
        self._source = source
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self._sink.write(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _unpack():
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import unpack

    return unpack


def _extract_into_store(store: Store, layer: dict, raw, tee_sink=None) -> None:
    """Extract one layer stream into a temp folder, check its diff_id, and move it into place."""
    unpack = _unpack()
    tmp = store.make_tmp_dir("layer-")
    # The layer folder is the top of its own hierarchy: on ext2/3/4 its tree goes to a block group chosen from a
    # hash of its (random) name, not next to trees just removed from the store (see unpack.mark_hierarchy_top).
    unpack.mark_hierarchy_top(tmp)
    dest = os.path.join(tmp, "rootfs-" + os.urandom(6).hex())
    try:
        stream = _Tee(raw, tee_sink) if tee_sink is not None else raw
        result = unpack.extract_layer(stream, layer["media_type"], dest)
        if tee_sink is not None:
            stream.drain()  # bytes after the end of the compressed stream still belong to the blob
        if result.diff_id != layer["diff_id"]:
            raise DigestMismatchError(
                f"layer {layer['digest']}: uncompressed content hashes to {result.diff_id}, the image config says "
                f"{layer['diff_id']}. The image is corrupt; nothing was stored."
            )
        store.commit_layer_dir(dest, layer["diff_id"])
    finally:
        remove_tree(tmp)


def ensure_unpacked(store: Store, image: ImageRecord) -> list[str]:
    """Make sure every layer of ``image`` has its folder (from blobs already in the store). Returns the layer
    folders bottom → top."""
    for layer in image.layers:
        if store.has_layer(layer["diff_id"]):
            continue
        with store.gc_guard(), store.open_blob(layer["digest"]) as raw:
            _extract_into_store(store, layer, raw)
    return [store.layer_dir(layer["diff_id"]) for layer in image.layers]
