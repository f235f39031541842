# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull orchestration: reference → registry → verified blobs in the store → unpacked layer folders.

Observe, decide, act: the tag's digest is asked with one HEAD; when the store already holds that digest and
every layer is unpacked, nothing else happens. Otherwise the manifest (and index) are fetched by digest,
the config and missing layers follow, each layer streamed once: the compressed bytes are teed into the blob
store while they are decompressed, hashed (diff_id) and extracted. Layers download in parallel.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DigestMismatchError,
    RegistryError,
    StoreError,
    UnpackError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import (
    ensure_unpacked,
    extract_into_store,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
    Reference,
    parse_platform,
    parse_reference,
    platform_matches,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import (
    ANNOTATION_REMOTE_DIGEST,
    ANNOTATION_SOURCE,
    ImageRecord,
    Store,
    atomic_write,
    remove_tree,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import (
    Factory,
    Record,
    json_dumps,
    json_loads,
    sha256_hex,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.options import (  # noqa: F401 - re-exported
    RegistryOptions,
)

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from typing import Any

PARALLEL_LAYERS = 4
# The top of a ``dest`` tree: reachable by its owner only (see check_dest_mode).
DEST_MODE = 0o700
PROGRESS_PIECE = 1 << 16  # bytes per progress report of a download


class PullResult(Record):
    changed: bool
    image: ImageRecord | None
    before: str | None                      # manifest digest the name pointed to before
    after: str | None                       # manifest digest it points to now (or would)
    actions: list[str] = Factory(list)
    downloaded_bytes: int = 0
    layers_fetched: int = 0
    layers_reused: int = 0
    rootfs: str | None = None
    rootfs_changed: bool = False


def _with_progress(blob, layer: dict, progress):
    """``blob``, or with ``progress`` a stream that reports ``{"event": "bytes"}`` per piece read from the registry
    (from the download thread that reads it)."""
    if not progress:
        return blob
    event = {"event": "bytes", "digest": layer["digest"], "size": layer["size"]}
    return _Counted(blob, lambda n: progress(dict(event, bytes=n)))


class _Counted:
    """A read-only stream that reports the bytes read (per-layer progress of the CLI). Reads go to the source in
    pieces of at most PROGRESS_PIECE bytes, so a 1 MiB read of a slow download is seen while it arrives; like a
    buffered read, it still returns ``size`` bytes unless the stream ends."""

    def __init__(self, source, report: Callable[[int], None]):
        self._source = source
        self._report = report

    def read(self, size: int = -1) -> bytes:
        parts = []
        left = size if size is not None and size >= 0 else -1
        while left != 0:
            data = self._source.read(PROGRESS_PIECE if left < 0 else min(left, PROGRESS_PIECE))
            if not data:
                break
            self._report(len(data))
            parts.append(data)
            if left > 0:
                left -= len(data)
        return b"".join(parts)

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


def _fetch_layer(store: Store, client, repository: str, layer: dict,
                 progress: Callable[[dict], None] | None = None, unpack: bool = True) -> int:
    """Download one layer blob into the store (verified); with ``unpack`` also make its layer folder from the
    same stream. A pull with ``dest`` passes False: dest is built from the blobs, and a layer folder is made only
    when a container needs it (store_layers.ensure_unpacked)."""
    if store.has_blob(layer["digest"], layer["size"]):
        if unpack and not store.has_layer(layer["diff_id"]):
            with store.open_blob(layer["digest"]) as raw:
                extract_into_store(store, layer, raw)
        return 0
    with client.open_blob(repository, layer["digest"], layer["size"]) as blob, \
            store.ingest(layer["digest"], layer["size"], source=blob) as writer:
        raw = _with_progress(blob, layer, progress)
        if not unpack or store.has_layer(layer["diff_id"]):
            import shutil  # pylint: disable=import-outside-toplevel  # a download only

            shutil.copyfileobj(raw, writer, 1 << 20)
        else:
            extract_into_store(store, layer, raw, tee_sink=writer)
    return layer["size"]


def _remote_digest(client, ref: Reference) -> str:
    if ref.digest:
        return ref.digest
    head = client.head_manifest(ref.repository, ref.reference)
    if head is None:
        raise RegistryError(
            f"pulling {ref.familiar}: manifest unknown (404). Check the name and tag, or push the image first.",
            status=404, codes=("MANIFEST_UNKNOWN",))
    return head[0]


def _load_existing(store: Store, name: str) -> ImageRecord | None:
    desc = store.resolve(name) if store.exists() else None
    if desc is None:
        return None
    try:
        return store.load_image(name, desc)
    except (StoreError, oci.ManifestError):
        return None  # a damaged entry is repaired by pulling again


def pull_image(
    store: Store,
    name: str | Reference,
    *,
    registry: RegistryOptions | None = None,
    platform: str | None = None,
    policy: str = "always",
    check_mode: bool = False,
    dest: str | None = None,
    dest_mode: int = DEST_MODE,
    progress: Callable[[dict], None] | None = None,
) -> PullResult:
    """Pull ``name`` into ``store``. ``policy``: ``always`` (ask the registry; download what changed) or
    ``missing`` (no network when the image is already complete in the store).

    ``progress`` gets ``{"event": "start", "name", "digest", "layers": [{"digest", "size"}]}`` once the manifest
    is known, ``{"event": "bytes", "digest", "size", "bytes"}`` per chunk downloaded (called from the download
    threads) and ``{"event": "layer", "digest", "size"}`` when a layer is in place.

    ``dest`` gets the flattened root filesystem, its top directory ``dest_mode`` (0700 unless asked otherwise:
    see check_dest_mode). ``name`` may be a parsed Reference (it is then not parsed again)."""
    ref = name if isinstance(name, Reference) else parse_reference(name)
    if dest:
        check_dest_mode(dest_mode)
    want = parse_platform(platform)
    registry = registry or RegistryOptions()
    existing = _load_existing(store, ref.name)
    existing_matches_platform = existing is None or not existing.platform or platform_matches(
        want, parse_platform(existing.platform).as_dict())
    before = existing.digest if existing else None
    # Blobs are the content; layer folders are a cache rebuilt from them without the network.
    complete = existing is not None and existing_matches_platform and all(
        store.has_blob(layer["digest"], layer["size"]) for layer in existing.layers)

    result = PullResult(changed=False, image=existing, before=before, after=before)
    if policy == "missing" and complete:
        result.actions.append(f"{ref.name} is in the store ({before}); not asking the registry (pull: missing)")
        if not check_mode and not dest:
            ensure_unpacked(store, existing)
        result.rootfs, result.rootfs_changed = _maybe_rootfs(store, existing, dest, check_mode, dest_mode, result.actions)
        result.changed = result.rootfs_changed
        return result

    client = registry.client(ref.registry)
    remote = _remote_digest(client, ref)
    if complete and existing.remote_digest == remote:
        result.actions.append(f"{ref.name} is up to date ({remote})")
        if not check_mode and not dest:
            ensure_unpacked(store, existing)
        result.rootfs, result.rootfs_changed = _maybe_rootfs(store, existing, dest, check_mode, dest_mode, result.actions)
        result.changed = result.rootfs_changed
        return result

    # Fetch the manifest by digest (verified by the client) and resolve an index to one platform.
    body, media_type, digest = client.get_manifest(ref.repository, remote)
    media_type, doc = oci.classify(body, media_type, f"{ref.familiar} manifest {digest}")
    index_body = None
    descriptor_platform = None
    if media_type in oci.INDEX_TYPES:
        index_body = body
        chosen = oci.select_platform(doc, want, f"{ref.familiar} index {digest}")
        descriptor_platform = chosen.get("platform")
        body, media_type, digest = client.get_manifest(ref.repository, chosen["digest"])
        media_type, doc = oci.classify(body, media_type, f"{ref.familiar} manifest {digest}")
        if media_type in oci.INDEX_TYPES:
            raise oci.ManifestError(f"{ref.familiar}: nested index {digest}; not supported.")
    for i, layer in enumerate(doc["layers"]):
        oci.check_layer_media_type(layer.get("mediaType", ""), layer["digest"], f"{ref.familiar} layer {i}")
    if media_type == oci.DOCKER_MANIFEST:
        # Stored as OCI so skopeo/umoci read the layout; the registry's digest stays in the annotations.
        body = oci.docker_to_oci_manifest(doc)
        media_type, doc = oci.classify(body, oci.OCI_MANIFEST, f"{ref.familiar} manifest (as OCI)")
        digest = "sha256:" + sha256_hex(body)

    result.after = digest
    if check_mode:
        result.changed = before != digest or not complete
        result.actions.append(f"would pull {ref.name} {digest}" + (f" (was {before})" if before else ""))
        return result

    store.ensure()
    with store.gc_guard():
        config_desc = doc["config"]
        if store.has_blob(config_desc["digest"], config_desc["size"]):
            config_body = store.read_blob(config_desc["digest"])
        else:
            with client.open_blob(ref.repository, config_desc["digest"], config_desc["size"]) as raw:
                config_body = raw.read(oci.MAX_MANIFEST_SIZE + 1)
                if len(config_body) > oci.MAX_MANIFEST_SIZE:
                    raise oci.ManifestError(f"{ref.familiar}: config larger than {oci.MAX_MANIFEST_SIZE} bytes.")
                raw.read(1)  # reach EOF so the client verifies size and digest
        config = oci.parse_config(config_body, doc, f"{ref.familiar} config {config_desc['digest']}")
        layers = [
            {"digest": layer["digest"], "diff_id": diff_id, "size": layer["size"], "media_type": layer.get("mediaType", "")}
            for layer, diff_id in zip(doc["layers"], config["rootfs"]["diff_ids"])
        ]
        # Layers in parallel; each is verified and committed on its own.
        fetched = [layer for layer in layers if not store.has_blob(layer["digest"], layer["size"])]
        if progress:
            progress({"event": "start", "name": ref.name, "digest": digest,
                      "layers": [{"digest": la["digest"], "size": la["size"]} for la in layers]})
        tree = _dest_tree_for(dest, digest, dest_mode)
        try:
            downloaded = _fetch_layers(store, client, ref.repository, layers, progress, tree)
            store.put_blob(config_body, config_desc["digest"])
            store.put_blob(body, digest)
            if index_body is not None:
                store.put_blob(index_body, remote)
            annotations = {ANNOTATION_REMOTE_DIGEST: remote, ANNOTATION_SOURCE: ref.name}
            descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body),
                                          "annotations": annotations}
            plat = descriptor_platform or {k: config[k] for k in ("os", "architecture", "variant") if config.get(k)}
            if plat:
                descriptor["platform"] = {k: plat[k] for k in ("os", "architecture", "variant") if plat.get(k)}
            store.tag(ref.name, descriptor)
            image = store.image(ref.name)
            if tree is not None:
                tree.commit(image)
        except BaseException:
            if tree is not None:
                tree.discard()
            raise
    result.image = image
    result.changed = True
    result.downloaded_bytes = downloaded
    result.layers_fetched = len(fetched)
    result.layers_reused = len(layers) - len(fetched)
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import inflaters_used
    inflated = f"; gzip inflated with {' and '.join(inflaters_used())}" if fetched and inflaters_used() else ""
    result.actions.append(
        f"pulled {ref.name} {digest}: {len(fetched)} layer(s) downloaded ({downloaded} bytes), "
        f"{result.layers_reused} already in the store{inflated}")
    if tree is not None:
        result.rootfs, result.rootfs_changed = tree.dest, True
    else:
        result.rootfs, result.rootfs_changed = _maybe_rootfs(store, image, dest, check_mode, dest_mode, result.actions)
    return result


def _fetch_layers(store: Store, client, repository: str, layers: list[dict],
                  progress: Callable[[dict], None] | None, tree: _DestTree | None) -> int:
    """Download the layers missing from the store, in parallel; returns the bytes downloaded.

    Without ``tree`` each download is extracted into its layer folder as it arrives. With ``tree`` (a ``dest``
    to build) the downloads go to the blob store only, and this thread applies the layers onto the tree in order
    while the others still download: the bottom layer straight from its download stream (teed into the store),
    each next one from its blob as soon as it is committed. On any error the tree is discarded."""
    from concurrent.futures import ThreadPoolExecutor  # only when layers download

    streamed = None
    if tree is not None and not store.has_blob(layers[0]["digest"], layers[0]["size"]):
        streamed = layers[0]
    downloaded = 0
    errors = []
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL_LAYERS) as pool:
            if tree is not None:
                tree.prepare()
            staged = tree is not None and tree.parallel
            futures = [None if layer is streamed else
                       pool.submit(_stage_layer, store, client, repository, layer, progress, tree, index)
                       if staged and index else
                       pool.submit(_fetch_layer, store, client, repository, layer, progress, tree is None)
                       for index, layer in enumerate(layers)]
            if tree is not None and not staged:
                for index, future in enumerate(futures):
                    if future is not None:
                        future.add_done_callback(lambda _done, i=index: tree.ready(store, layers, i))
            for index, (layer, future) in enumerate(zip(layers, futures)):
                try:
                    if future is None and not errors:
                        tree.begin(store, layers, index)
                        downloaded += _stream_layer(store, client, repository, layer, progress, tree)
                    elif staged and index:
                        size, result = future.result()
                        downloaded += size
                        if not errors:
                            if result is None:
                                tree.apply_blob(store, layers, index)  # a hard link into a lower layer
                            else:
                                tree.move(index, result)
                    elif future is not None:
                        downloaded += future.result()
                        if tree is not None and not errors:
                            tree.apply_blob(store, layers, index)
                    if progress:
                        progress({"event": "layer", "digest": layer["digest"], "size": layer["size"]})
                except (RegistryError, DigestMismatchError, UnpackError, StoreError, oci.ManifestError) as exc:
                    errors.append(exc)  # the other downloads still finish: their blobs serve the next pull
        if errors:
            raise errors[0]
    except BaseException:
        if tree is not None:
            tree.discard()
        raise
    return downloaded


def _stream_layer(store: Store, client, repository: str, layer: dict, progress: Callable[[dict], None] | None,
                  tree: _DestTree) -> int:
    """Download one layer blob into the store and apply it onto ``tree`` from the same stream. The extractor reads
    the stream to its end, where the registry client checks the blob's size and digest (DigestMismatchError) and
    the store's writer checks them again before it commits; the diff_id is checked after that. An error at any
    point leaves the tree to be discarded by the caller: it is committed as ``dest`` only after the whole pull."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import Tee

    with client.open_blob(repository, layer["digest"], layer["size"]) as blob, \
            store.ingest(layer["digest"], layer["size"], source=blob) as writer:
        raw = _with_progress(blob, layer, progress)
        tee = Tee(raw, writer)
        tree.apply(layer, tee, drain=tee.drain)
    return layer["size"]


def _stage_layer(store: Store, client, repository: str, layer: dict, progress: Callable[[dict], None] | None,
                 tree: _DestTree, index: int) -> tuple:
    """Download one layer blob into the store (or read it from there) and extract it, in this thread, into its own
    staging folder of ``tree`` (see move_merge); returns (bytes downloaded, the extraction's LayerResult, its
    diff_id verified). The result is None when the layer can't be extracted on its own (a hard link to a file of
    a lower layer, or a layer the extractor refuses): the caller then applies it from its blob in merge mode,
    which gives the real error of a bad layer."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import Tee

    folder = tree.stage_folder(index)
    if store.has_blob(layer["digest"], layer["size"]):
        with store.open_blob(layer["digest"]) as raw:
            try:
                result = extract_layer(raw, layer["media_type"], folder, record=True)
            except UnpackError:
                return 0, None
        _check_diff_id(layer, result.diff_id)
        return 0, result
    with client.open_blob(repository, layer["digest"], layer["size"]) as blob, \
            store.ingest(layer["digest"], layer["size"], source=blob) as writer:
        tee = Tee(_with_progress(blob, layer, progress), writer)
        try:
            result = extract_layer(tee, layer["media_type"], folder, record=True)
        except UnpackError:
            result = None  # the blob is still stored (and verified) for the merge-mode apply
        tee.drain()
    if result is not None:
        _check_diff_id(layer, result.diff_id)
    return layer["size"], result


def _dest_path(dest: str) -> str:
    dest = os.path.abspath(os.path.expanduser(dest.rstrip("/") or "/"))
    if dest == "/":
        raise StoreError("dest '/': refusing to write a root filesystem over the host's root.")
    return dest


def _dest_tree_for(dest: str | None, digest: str, dest_mode: int) -> _DestTree | None:
    """The tree to build while the layers download, or None: no ``dest``, or ``dest`` already holds ``digest``
    (then only its mode may change, in _maybe_rootfs)."""
    if not dest:
        return None
    dest = _dest_path(dest)
    if rootfs_digest(dest) == digest and _top_mode(dest) is not None:
        return None
    return _DestTree(dest, dest_mode)


def _marker_path(dest: str) -> str:
    dest = os.path.abspath(dest.rstrip("/"))
    return os.path.join(os.path.dirname(dest), f".{os.path.basename(dest)}.dockerless.json")


def rootfs_digest(dest: str) -> str | None:
    """The manifest digest a ``dest`` folder was last written from (recorded beside it, not inside it)."""
    try:
        with open(_marker_path(dest), "rb") as handle:
            return json_loads(handle.read()).get("digest")
    except (OSError, ValueError):
        return None


def check_dest_mode(mode: int) -> int:
    """``mode`` when it is a valid mode for the top of a ``dest`` tree, else StoreError.

    The tree holds the image's setuid binaries and device nodes with their owners and modes: reachable by other
    local users, a setuid-root shell in it is their root shell and a ``dev/loop0`` 0666 their host's disk. So the
    top is 0700 by default, as umoci and containerd make their unpacked trees; a wider mode is the user's explicit
    choice. The owner keeps rwx (the tree is replaced and removed as a whole)."""
    if isinstance(mode, bool) or not isinstance(mode, int) or mode & ~0o777 or mode & 0o700 != 0o700:
        shown = f"{mode:04o}" if isinstance(mode, int) and not isinstance(mode, bool) and mode >= 0 else repr(mode)
        raise StoreError(f"dest mode {shown}: expected permission bits like 0700 or 0755 with rwx for the owner "
                         "(no setuid, setgid or sticky bits). Use 0700 unless other users must read the tree.")
    return mode


def parse_dest_mode(text: str | int) -> int:
    """An octal mode as users write it (``"0700"``, ``"755"``) -> the int checked by check_dest_mode."""
    if isinstance(text, int) and not isinstance(text, bool):
        return check_dest_mode(text)
    try:
        value = int(str(text), 8)
    except ValueError:
        raise StoreError(f"dest mode {text!r}: not an octal mode; write it like 0700 or 0755.") from None
    return check_dest_mode(value)


def _top_mode(dest: str) -> int | None:
    """Permission bits of the directory ``dest`` itself (never through a symlink), or None when it is none."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISDIR(st.st_mode) else None


def _chmod_top(dest: str, mode: int) -> None:
    """chmod the directory ``dest`` through an fd opened without following a symlink."""
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _maybe_rootfs(store: Store, image: ImageRecord | None, dest: str | None, check_mode: bool,
                  dest_mode: int = DEST_MODE, actions: list[str] | None = None):
    if not dest or image is None:
        return None, False
    dest = _dest_path(dest)
    actions = actions if actions is not None else []
    current = _top_mode(dest)
    if rootfs_digest(dest) == image.digest and current is not None:
        if current == dest_mode:
            return dest, False
        # A tree written before dest trees were private (or with another dest_mode): only its top changes.
        actions.append(f"{'would set' if check_mode else 'set'} the mode of {dest} to {dest_mode:04o} "
                       f"(was {current:04o})")
        if not check_mode:
            _chmod_top(dest, dest_mode)
        return dest, True
    if check_mode:
        return dest, True
    write_rootfs(store, image, dest, dest_mode)
    return dest, True


def _check_diff_id(layer: dict, diff_id: str) -> None:
    if diff_id != layer["diff_id"]:
        raise DigestMismatchError(
            f"layer {layer['digest']}: uncompressed content hashes to {diff_id}, the image config says "
            f"{layer['diff_id']}. The image is corrupt; dest was not written. Remove the image from the store and "
            "pull it again.")


class _DestTree:
    """A ``dest`` tree under construction: every layer applied from its blob (or from its download) straight onto
    one tree, bottom to top (the extractor's merge mode applies each layer's whiteouts and opaque directories to
    the layers below). Each file of the image is created once, not once in a layer folder and again in the
    flattened tree: on a disk where creating files is the cost, that is half the work.

    The tree is built inside a 0700 holder beside ``dest`` (no other user reaches it before its top has its final
    mode) and becomes ``dest`` only in ``commit``, which the caller runs after every blob digest and every diff_id
    verified; ``discard`` (or any error) removes it, so nothing unpacked is committed before that.

    Inflating a layer is about as slow as creating its files, and each runs in a thread of its own; so that both
    cores stay busy across layer boundaries, the layer above the one being applied starts inflating as soon as
    its blob is in the store (``ready``), up to LOOKAHEAD_CHUNKS MiB ahead."""

    LOOKAHEAD_CHUNKS = 16
    PARALLEL = True  # False: every layer applied in merge mode, one after the other (the tests' reference)

    def __init__(self, dest: str, dest_mode: int = DEST_MODE):
        import threading  # pylint: disable=import-outside-toplevel  # only when a dest tree is built

        self.dest = dest
        self.dest_mode = check_dest_mode(dest_mode)
        self.holder = dest + ".dockerless-new"
        self.staging = ""
        self._lock = threading.Lock()
        self._current = -1              # index of the layer being applied
        self._ahead: dict[int, tuple] = {}  # index -> (blob file, decompressing reader already running)
        self._closed = False
        # As root, layers above the bottom one are extracted in parallel into staging folders and moved onto the
        # tree (move_merge); without root (no whiteout devices, no chown) they are applied one after the other.
        self.parallel = self.PARALLEL and os.geteuid() == 0
        self._stages: dict[int, str] = {}  # layer index -> its staging folder's name in the holder

    def prepare(self) -> None:
        os.makedirs(os.path.dirname(self.dest), exist_ok=True)
        remove_tree(self.holder)
        os.mkdir(self.holder, 0o700)
        # The tree is the top of its own hierarchy with a random name: on ext2/3/4 it goes to a block group chosen
        # from that name, not next to a tree removed moments ago, where every create pays for the freed inodes it
        # skips (see dirfd.mark_hierarchy_top; the store's layer folders are placed the same way).
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.dirfd import mark_hierarchy_top

        mark_hierarchy_top(self.holder)
        self.staging = os.path.join(self.holder, "rootfs-" + os.urandom(6).hex())

    def ready(self, store: Store, layers: list[dict], index: int) -> None:
        """The blob of ``layers[index]`` is in the store: start inflating it now when it is the next layer to
        apply (any thread). Best effort: when this can't, ``apply_blob`` opens the blob itself."""
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import layer_reader

        if self.parallel:
            return  # the layers above the bottom one are extracted in their own threads
        with self._lock:
            if self._closed or index != self._current + 1 or index in self._ahead or index >= len(layers):
                return
            layer = layers[index]
            if not store.has_blob(layer["digest"], layer["size"]):
                return
            try:
                raw = store.open_blob(layer["digest"])
            except (OSError, StoreError):
                return
            try:
                self._ahead[index] = (raw, layer_reader(raw, layer["media_type"], self.LOOKAHEAD_CHUNKS))
            except BaseException:
                raw.close()
                raise

    def begin(self, store: Store, layers: list[dict], index: int) -> tuple | None:
        """Layer ``index`` is applied next: returns its (blob, reader) when it already inflates, and lets the
        layer above it start."""
        with self._lock:
            self._current = index
            ahead = self._ahead.pop(index, None)
        self.ready(store, layers, index + 1)
        return ahead

    def apply(self, layer: dict, raw, drain: Callable[[], None] | None = None, decoded=None) -> None:
        """Apply one layer's compressed stream ``raw`` and check its diff_id. ``drain`` reads what follows the
        compressed stream (a download teed into the store: those bytes belong to the blob and its digest)."""
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer

        result = extract_layer(raw, layer["media_type"], self.staging, merge=True, decoded=decoded)
        if drain is not None:
            drain()
        _check_diff_id(layer, result.diff_id)

    def stage_folder(self, index: int) -> str:
        """A new staging folder for layer ``index`` (not made yet: the extractor makes it)."""
        self._stages[index] = f"layer-{index}-" + os.urandom(6).hex()
        return os.path.join(self.holder, self._stages[index])

    def move(self, index: int, result) -> None:
        """Move the staging folder of layer ``index`` (extracted and verified) onto the tree."""
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.move_merge import move_layer
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import remove_at

        folder = self._stages.pop(index)
        hfd = os.open(self.holder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            tfd = os.open(os.path.basename(self.staging), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=hfd)
            try:
                ufd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=hfd)
                try:
                    move_layer(tfd, ufd, result.whiteouts, result.opaque, result.explicit_dirs)
                finally:
                    os.close(ufd)
            finally:
                os.close(tfd)
            remove_at(hfd, folder)
        finally:
            os.close(hfd)

    def apply_blob(self, store: Store, layers: list[dict], index: int) -> None:
        """Apply ``layers[index]`` from its blob in the store (verified when the store committed it)."""
        ahead = self.begin(store, layers, index)
        raw, decoded = ahead if ahead is not None else (store.open_blob(layers[index]["digest"]), None)
        try:
            self.apply(layers[index], raw, decoded=decoded)
        finally:
            if decoded is not None:
                decoded.close()
            raw.close()

    def commit(self, image: ImageRecord) -> None:
        """Swap the finished tree in as ``dest`` and record the manifest digest it was written from."""
        self._close_ahead()
        old = self.dest + ".dockerless-old"
        remove_tree(old)
        try:
            _chmod_top(self.staging, self.dest_mode)
            if os.path.lexists(self.dest):
                os.rename(self.dest, old)
            os.rename(self.staging, self.dest)
        finally:
            remove_tree(self.holder)
        remove_tree(old)
        atomic_write(_marker_path(self.dest), json_dumps({"digest": image.digest, "name": image.name}).encode())

    def discard(self) -> None:
        self._close_ahead()
        remove_tree(self.holder)

    def _close_ahead(self) -> None:
        with self._lock:
            self._closed = True
            ahead, self._ahead = list(self._ahead.values()), {}
        for raw, decoded in ahead:
            decoded.close()
            raw.close()


def write_rootfs(store: Store, image: ImageRecord, dest: str, dest_mode: int = DEST_MODE) -> None:
    """Flatten ``image`` into ``dest`` (replaced as a whole: new tree beside it, then swapped), its top directory
    ``dest_mode``, from the blobs in the store (see _DestTree); the store's layer folders are not made."""
    tree = _DestTree(dest, dest_mode)
    tree.prepare()
    try:
        with store.gc_guard():
            for index in range(len(image.layers)):
                tree.apply_blob(store, image.layers, index)
        tree.commit(image)
    except BaseException:
        tree.discard()
        raise


def ensure_image(store: Store, ref: Reference | str, policy: str = "missing", registry: RegistryOptions | None = None,
                 platform: str | None = None, check_mode: bool = False) -> ImageRecord | None:
    """The image ``ref`` with every layer unpacked, pulling it per ``policy`` (``missing``, ``always``,
    ``never``): the one way the runtime (container_run, the CLI) gets an image it lacks.

    In check mode nothing is downloaded or unpacked: the stored record comes back when it would be used as it
    is, None when the image would be pulled first (not in the store, or ``always`` and the registry has another
    digest). With ``never`` an image not in the store raises the store's "pull it first" error either way."""
    if not isinstance(ref, Reference):
        ref = parse_reference(ref)
    if check_mode:
        present = store.exists() and store.resolve(ref.name) is not None
        if not present:
            if policy == "never":
                store.image(ref.name)  # raises the store's "not in the store; pull it first" error
            return None
        record = store.image(ref.name)
        if policy == "always":
            result = pull_image(store, ref, registry=registry, platform=platform, policy="always", check_mode=True)
            if result.after != record.digest:
                return None
        return record
    if policy == "never":
        image = store.image(ref.name)
    else:
        image = pull_image(store, ref, registry=registry, platform=platform, policy=policy).image
        if image is None:
            raise StoreError(f"image {ref.name}: pull finished without an image; pull it again.")
    ensure_unpacked(store, image)
    return image
