# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store's layer folders made from its blobs: the part of pulling that needs no registry.

A built image (image_build stores the layer blob only), a store whose layer folders were collected, and a
download (pull tees the registry's stream into the blob store through ``extract_into_store``) all get their
folders here. Every consumer (pull, the runtime, the CLI, the WSL export) imports it from this room; ``dockerless
run`` of such an image comes here without importing the pull engine (``pull`` imports the registry client, TLS
and HTTP: more than a container's whole start), and the extractor is imported only when a folder is missing.

Nothing unpacked is committed before the blob digest and the diff_id verify: the layer is extracted into a temp
folder of the store, the extractor reads the blob stream to its end (the tee drains what follows the compressed
stream) and only then is the diff_id compared and the folder moved into place (``extract_into_store``). A
downloaded blob is verified by the registry's ``BlobReader`` at that end (size and sha256, DigestMismatchError),
so a wrong blob fails before the diff_id is even compared; a blob read from the store was verified when the
store committed it.
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DigestMismatchError
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import ImageRecord, Store, remove_tree


class Tee:
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


def extract_into_store(store: Store, layer: dict, raw, tee_sink=None) -> None:
    """Extract one layer stream into a temp folder, check its diff_id, and move it into place. ``tee_sink`` (a
    blob writer) gets every byte of ``raw`` as it is read, the bytes after the compressed stream included."""
    # Imported here: a start whose layer folders all exist never loads the extractor.
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.dirfd import mark_hierarchy_top
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer

    tmp = store.make_tmp_dir("layer-")
    # The layer folder is the top of its own hierarchy: on ext2/3/4 its tree goes to a block group chosen from a
    # hash of its (random) name, not next to trees just removed from the store (see dirfd.mark_hierarchy_top).
    mark_hierarchy_top(tmp)
    dest = os.path.join(tmp, "rootfs-" + os.urandom(6).hex())
    try:
        stream = Tee(raw, tee_sink) if tee_sink is not None else raw
        result = extract_layer(stream, layer["media_type"], dest)
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
            extract_into_store(store, layer, raw)
    return [store.layer_dir(layer["diff_id"]) for layer in image.layers]
