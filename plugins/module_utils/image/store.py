# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local store: an OCI image layout plus one unpacked folder per layer.

Layout (image-spec image-layout.md)::

    <root>/oci-layout, index.json, blobs/sha256/<hex>      readable by skopeo, umoci and podman
    <root>/layers/sha256/<diff_id hex>/                     unpacked layers in overlay form (layers/extract.py)
    <root>/containers/<name>/                               container state (runtime)
    <root>/tmp/                                             in-flight work, same filesystem as the rest

Nothing unverified enters ``blobs/``: content is written to ``tmp/``, hashed while written, fsynced, compared
with the expected digest and size, and only then renamed into place. ``index.json`` is replaced the same way
under an exclusive ``flock``. A pull holds a shared lock on ``.gc.lock`` for its whole duration so garbage
collection (exclusive) never removes what a running pull has written but not yet tagged.
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os
import stat

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DigestMismatchError,
    DockerlessError,
    StoreError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
    parse_reference,
    validate_digest,
)
from ansible_collections.dockerless.containers.plugins.module_utils.records import (
    Factory,
    Record,
    json_dumps,
    json_loads,
    new_sha256,
    sha256_hex,
)
from ansible_collections.dockerless.containers.plugins.module_utils.store_root import default_store_root

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# No contextlib, re or collections here: with threading they were about half of a short build's imports.
# The store's context managers are small classes (_FileLock, _Ingest).

ANNOTATION_REMOTE_DIGEST = "io.dockerless.remote-digest"   # what the registry answered for the tag (may be an index)
ANNOTATION_SOURCE = "io.dockerless.source"                 # the reference the image was pulled from / pushed to
_CHUNK = 1 << 20


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# tempfile's mkstemp/mkdtemp without importing tempfile (which brings shutil, random, bz2, lzma and weakref: a
# fifth of a short build's imports): a random name, created exclusively, owner-only, retried on a clash.
_TMP_ATTEMPTS = 100


def make_temp_file(directory: str, prefix: str) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=prefix, dir=directory)``: an fd open for writing and the new file's path."""
    for _attempt in range(_TMP_ATTEMPTS):
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        return fd, os.path.abspath(path)
    raise FileExistsError(errno.EEXIST, f"no free temporary name with prefix {prefix!r}", directory)


def make_temp_dir(directory: str, prefix: str) -> str:
    """``tempfile.mkdtemp(prefix=prefix, dir=directory)``: a new owner-only directory's path."""
    for _attempt in range(_TMP_ATTEMPTS):
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return os.path.abspath(path)
    raise FileExistsError(errno.EEXIST, f"no free temporary name with prefix {prefix!r}", directory)


def atomic_write(path: str, data: bytes, mode: int = 0o644, before_rename=None) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, rename over ``path``, fsync the directory.
    ``before_rename``: called once the temp file is on the disk, before it replaces ``path`` (an error there leaves
    ``path`` as it was)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = make_temp_file(directory, ".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


class _Fsync:
    """``os.fsync(fd)`` on a helper thread (the system call releases the GIL); ``wait()`` returns when it is done
    and raises what it raised. A plain ``_thread`` thread: ``threading`` is a visible part of a short build's
    imports.

    The constructor returns once the helper runs: a new thread needs the GIL before it can call fsync, and a
    busy caller that only lets go of it for short system calls kept it waiting for milliseconds (a bash+ls build's
    layer fsync started 4 ms late, after the config's and manifest's)."""

    def __init__(self, fd: int):
        self.error: BaseException | None = None
        self._done = _thread.allocate_lock()
        self._done.acquire()  # released by the helper when fsync has returned
        started = _thread.allocate_lock()
        started.acquire()
        _thread.start_new_thread(self._run, (fd, started))
        started.acquire()  # waiting here hands the GIL over

    def _run(self, fd: int, started) -> None:
        try:
            started.release()
            os.fsync(fd)
        except BaseException as exc:  # raised by wait()
            self.error = exc
        finally:
            self._done.release()

    def wait(self) -> None:
        with self._done:
            pass
        if self.error is not None:
            raise self.error


class BlobWriter:
    """Hashes while writing; ``commit()`` verifies digest and size, fsyncs and renames into ``blobs/``. ``size`` and
    ``digest`` (until the commit: of what was written so far) make it a tarwriter ``SHA256_SINK``: a layer written
    into it by tarwriter.write_archive is hashed once. ``start_sync()`` begins the fsync early, on a helper
    thread, so that the disk writes this blob while the caller makes and writes the next ones; ``commit()``
    then waits for it (the blob is still on the disk before its name is in ``blobs/``)."""

    SHA256_SINK = True

    def __init__(self, store: Store, expected_digest: str | None, expected_size: int | None, source=None):
        if expected_digest is not None:
            validate_digest(expected_digest)
        self._store = store
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        # ``source``: the registry's BlobReader every written byte comes from, in order. It hashes the stream it
        # delivers (it must: a resumed download is checked against that running hash) and sets ``verified`` only
        # at its EOF, when size and sha256 match its digest. Hashing the same bytes again here would only repeat
        # that check, so the commit requires the reader's verdict instead: no verified reader, no commit.
        self._source = source if source is not None and expected_digest is not None else None
        # Without a source: made on the first write (loading libcrypto waits until there is something to hash).
        self._hash = None
        self.size = 0
        self._sync: _Fsync | None = None
        self._done = False
        fd, self._tmp = make_temp_file(store.tmp_dir, "blob-")
        self._file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> int:
        if self.expected_size is not None and self.size + len(data) > self.expected_size:
            raise DigestMismatchError(
                f"blob {self.expected_digest}: more than the {self.expected_size} bytes its descriptor declares; "
                "the source is corrupt or lying. Nothing was stored."
            )
        if self._source is None:
            if self._hash is None:
                self._hash = new_sha256()
            self._hash.update(data)
        self.size += len(data)
        self._file.write(data)
        return len(data)

    def start_sync(self) -> None:
        """Everything is written: flush and start the fsync on a helper thread (``commit`` waits for it)."""
        if self._sync is None:
            self._file.flush()
            self._sync = _Fsync(self._file.fileno())

    def commit(self) -> str:
        if self._source is not None:
            src = self._source
            if not (getattr(src, "verified", False) and src.digest == self.expected_digest
                    and src.bytes_read == self.size):
                self.abort()
                raise DigestMismatchError(
                    f"blob {self.expected_digest}: the download was not read to its verified end ({self.size} bytes "
                    "written). Nothing was stored; pull again.")
            digest = self.expected_digest
        else:
            digest = self.digest
        if self.expected_size is not None and self.size != self.expected_size:
            self.abort()
            raise DigestMismatchError(
                f"blob {self.expected_digest or digest}: got {self.size} bytes, descriptor says {self.expected_size}. "
                "Nothing was stored; pull again."
            )
        if self.expected_digest is not None and digest != self.expected_digest:
            self.abort()
            raise DigestMismatchError(
                f"blob {self.expected_digest}: content hashes to {digest}. Nothing was stored; the registry or "
                "the network corrupted it — pull again."
            )
        if self._sync is None:
            self._file.flush()
            os.fsync(self._file.fileno())
        else:
            try:
                self._sync.wait()
            except BaseException:
                self.abort()
                raise
        self._file.close()
        os.chmod(self._tmp, 0o644)
        os.rename(self._tmp, self._store.blob_path(digest))
        self._done = True
        return digest

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the bytes written so far (after ``commit``: of the blob); with a ``source``, the
        digest the source verified."""
        if self._source is not None:
            return self.expected_digest
        if self._hash is None:
            self._hash = new_sha256()
        return "sha256:" + self._hash.hexdigest()

    def abort(self) -> None:
        """Remove the temporary file (nothing after a commit)."""
        if self._done:
            return
        self._done = True
        if self._sync is not None:
            try:
                self._sync.wait()  # the helper's fsync uses the fd: close it only after
            except Exception:  # noqa: BLE001 - the blob is dropped either way
                pass
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.unlink(self._tmp)
        except OSError:
            pass


class StagedBlobs:
    """Blobs written to ``tmp/`` with their fsyncs running (``Store.stage_blobs``): ``commit()`` renames each
    into ``blobs/`` once its fsync has returned, ``first`` before the others; ``abort()`` removes what is left.
    ``digests``: ``(digest, size)`` of each blob given, in order."""

    def __init__(self, first: BlobWriter | None):
        self.first = first
        self.writers: list[BlobWriter] = []
        self.digests: list[tuple[str, int]] = []

    def commit(self) -> None:
        for writer in ([self.first] if self.first is not None else []) + self.writers:
            writer.commit()

    def abort(self) -> None:
        for writer in ([self.first] if self.first is not None else []) + self.writers:
            writer.abort()


class _FileLock:
    """``with``: ``flock`` on a file of the store (created 0600), released by closing it. One use per object."""

    def __init__(self, root: str, name: str, shared: bool):
        self._root, self._name, self._shared = root, name, shared
        self._fd = -1

    def __enter__(self) -> None:
        os.makedirs(self._root, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self._root, self._name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if self._shared else fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(self, exc_type, exc, tb) -> bool:
        fd, self._fd = self._fd, -1
        os.close(fd)
        return False


class _Ingest:
    """``with store.ingest(...) as writer``: a BlobWriter, committed when the block ends without error, else
    aborted."""

    def __init__(self, store: Store, expected_digest: str | None, expected_size: int | None, source=None):
        self._store = store
        self._expected = (expected_digest, expected_size)
        self._source = source
        self._writer: BlobWriter | None = None

    def __enter__(self) -> BlobWriter:
        self._writer = self._store.blob_writer(*self._expected, source=self._source)
        return self._writer

    def __exit__(self, exc_type, exc, tb) -> bool:
        writer, self._writer = self._writer, None
        if exc_type is not None:
            writer.abort()  # type: ignore[union-attr]
            return False
        writer.commit()  # type: ignore[union-attr]
        return False


class ImageRecord(Record):
    """An image in the store, resolved down to one platform manifest."""

    name: str
    digest: str
    media_type: str
    manifest: dict
    config_digest: str
    config: dict
    layers: list[dict]
    platform: str
    size: int
    remote_digest: str | None = None
    annotations: dict = Factory(dict)

    def as_dict(self) -> dict[str, Any]:
        cfg = self.config.get("config") or {}
        return {
            "name": self.name,
            "digest": self.digest,
            "remote_digest": self.remote_digest,
            "media_type": self.media_type,
            "config_digest": self.config_digest,
            "platform": self.platform,
            "layers": self.layers,
            "size": self.size,
            "created": self.config.get("created"),
            "config": {
                "env": cfg.get("Env") or [],
                "entrypoint": cfg.get("Entrypoint"),
                "cmd": cfg.get("Cmd"),
                "workdir": cfg.get("WorkingDir") or "",
                "user": cfg.get("User") or "",
                "labels": cfg.get("Labels") or {},
                "exposed_ports": sorted((cfg.get("ExposedPorts") or {}).keys()),
                "volumes": sorted((cfg.get("Volumes") or {}).keys()),
            },
        }


class Store:
    """The store at ``root`` (created on first write, 0700)."""

    def __init__(self, root: str | None = None):
        self.root = os.path.abspath(os.path.expanduser(root or default_store_root()))
        self.blobs_dir = os.path.join(self.root, "blobs", "sha256")
        self.layers_dir = os.path.join(self.root, "layers", "sha256")
        self.tmp_dir = os.path.join(self.root, "tmp")
        self.containers_dir = os.path.join(self.root, "containers")
        self.index_path = os.path.join(self.root, "index.json")
        self._ensured = False

    # -- layout -------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return os.path.isfile(os.path.join(self.root, "oci-layout"))

    def ensure(self) -> None:
        """Create the layout if missing. Directories are 0700: layers may hold setuid files and devices that
        other host users must not reach (CVE-2021-41103). Checked once per Store object: every write calls this,
        and nothing in the engine removes the layout's folders once they are there (gc empties ``tmp/``)."""
        if self._ensured:
            return
        for path in (self.root, self.blobs_dir, self.layers_dir, self.tmp_dir, self.containers_dir):
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"store {self.root}: can't create {path}: {exc.strerror}. "
                                 "Choose another 'store' or fix the permissions.") from None
        for path in (self.root, os.path.dirname(self.blobs_dir), os.path.dirname(self.layers_dir)):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o700)
        layout = os.path.join(self.root, "oci-layout")
        if not os.path.exists(layout):
            atomic_write(layout, json_dumps({"imageLayoutVersion": "1.0.0"}).encode())
        if not os.path.exists(self.index_path):
            with self.lock():
                if not os.path.exists(self.index_path):
                    self._write_index({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []})
        self._ensured = True

    def _flock(self, name: str, shared: bool) -> _FileLock:
        return _FileLock(self.root, name, shared)

    def lock(self) -> _FileLock:
        """Exclusive lock for read-modify-write of ``index.json`` (a context manager)."""
        return self._flock(".lock", shared=False)

    def gc_guard(self) -> _FileLock:
        """Shared lock held by writers (pull, build) so GC can't collect their untagged blobs (a context
        manager)."""
        return self._flock(".gc.lock", shared=True)

    # -- blobs ---------------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, validate_digest(digest)[len("sha256:"):])

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def open_blob(self, digest: str):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"store {self.root}: blob {digest} is missing; pull the image again.") from None

    def read_blob(self, digest: str, max_size: int = oci.MAX_MANIFEST_SIZE) -> bytes:
        """Read a small blob (manifest, config) whole, re-verifying its digest."""
        with self.open_blob(digest) as handle:
            data = handle.read(max_size + 1)
        if len(data) > max_size:
            raise StoreError(f"store {self.root}: blob {digest} is larger than {max_size} bytes; refusing to read it.")
        if "sha256:" + sha256_hex(data) != digest:
            raise StoreError(f"store {self.root}: blob {digest} is corrupt on disk; remove it and pull again.")
        return data

    def ingest(self, expected_digest: str | None = None, expected_size: int | None = None, source=None) -> _Ingest:
        """``with store.ingest(...) as writer``: write a blob; committed (verified, fsynced, renamed) when the
        block exits without error, removed otherwise. ``source``: the verifying registry BlobReader the bytes are
        read from (see BlobWriter): its verdict at EOF replaces a second hash of the same bytes."""
        return _Ingest(self, expected_digest, expected_size, source)

    def blob_writer(self, expected_digest: str | None = None, expected_size: int | None = None,
                    source=None) -> BlobWriter:
        """A BlobWriter into this store (made if missing): the caller commits or aborts it (``ingest`` does both).
        ``source``: see BlobWriter."""
        self.ensure()
        return BlobWriter(self, expected_digest, expected_size, source)

    def stage_blobs(self, *blobs: bytes, first: BlobWriter | None = None) -> StagedBlobs:
        """Write each of ``blobs`` (small documents) to ``tmp/`` and start its fsync: they all run at the same time,
        beside ``first``'s too when given (a writer whose ``start_sync`` was called: a layer, committed before the
        config and manifest that name it). Nothing is in ``blobs/`` before ``commit()`` of the result, and each
        blob only after its own fsync returned; the caller commits or aborts it (``first`` included)."""
        self.ensure()
        staged = StagedBlobs(first)
        try:
            for data in blobs:
                digest = "sha256:" + sha256_hex(data)
                staged.digests.append((digest, len(data)))
                if self.has_blob(digest, len(data)) or any(w.expected_digest == digest for w in staged.writers):
                    continue
                writer = BlobWriter(self, digest, len(data))
                staged.writers.append(writer)
                writer.write(data)
                writer.start_sync()
        except BaseException:
            staged.abort()
            raise
        return staged

    def put_blobs(self, *blobs: bytes, first: BlobWriter | None = None) -> list[tuple[str, int]]:
        """``put_blob`` of each of ``blobs``, their fsyncs running together (``stage_blobs``, then commit)."""
        staged = self.stage_blobs(*blobs, first=first)
        try:
            staged.commit()
        except BaseException:
            staged.abort()
            raise
        return staged.digests

    def put_blob(self, data: bytes, expected_digest: str | None = None) -> tuple[str, int]:
        digest = "sha256:" + sha256_hex(data)
        if expected_digest is not None and digest != expected_digest:
            raise DigestMismatchError(f"blob {expected_digest}: content hashes to {digest}; nothing was stored.")
        if not self.has_blob(digest, len(data)):
            with self.ingest(digest, len(data)) as writer:
                writer.write(data)
        return digest, len(data)

    # -- index ---------------------------------------------------------------------------------------------
    def _read_index(self) -> dict:
        try:
            with open(self.index_path, "rb") as handle:
                index = json_loads(handle.read())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": []}
        except ValueError as exc:
            raise StoreError(f"store {self.root}: index.json is not valid JSON ({exc}); restore it or remove the store.")
        if not isinstance(index.get("manifests"), list):
            raise StoreError(f"store {self.root}: index.json has no 'manifests' list.")
        return index

    def _write_index(self, index: dict, before_rename=None) -> None:
        atomic_write(self.index_path, json_dumps(index, indent=2, sort_keys=True).encode() + b"\n",
                     before_rename=before_rename)

    def images(self) -> list[tuple[str, dict]]:
        """(name, descriptor) for every tagged manifest, in index order."""
        out = []
        for desc in self._read_index()["manifests"]:
            name = (desc.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME)
            if name:
                out.append((name, desc))
        return out

    def resolve(self, name: str) -> dict | None:
        for ref_name, desc in self.images():
            if ref_name == name:
                return desc
        return None

    def tag(self, name: str, descriptor: dict, blobs: StagedBlobs | None = None) -> bool:
        """Point ``name`` at ``descriptor`` (replacing an older entry). Returns True when index.json changed.
        ``blobs``: what the entry names, still being fsynced (``stage_blobs``): the new index.json is written and
        fsynced beside them, and they are committed into ``blobs/`` before it replaces the old one (also when the
        index does not change)."""
        self.ensure()
        desc = dict(descriptor)
        desc["annotations"] = dict(desc.get("annotations") or {}, **{oci.ANNOTATION_REF_NAME: name})
        with self.lock():
            index = self._read_index()
            kept = [d for d in index["manifests"] if (d.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) != name]
            if len(kept) == len(index["manifests"]) - 1 and desc in index["manifests"]:
                if blobs is not None:
                    blobs.commit()
                return False
            index["manifests"] = kept + [desc]
            self._write_index(index, before_rename=blobs.commit if blobs is not None else None)
        return True

    def annotate(self, name: str, expected_digest: str, annotations: dict) -> bool:
        """Merge ``annotations`` into the entry ``name`` only if it still points at ``expected_digest``
        (compare-and-set under the index lock). Returns True when index.json changed."""
        with self.lock():
            index = self._read_index()
            for desc in index["manifests"]:
                if (desc.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) != name:
                    continue
                if desc.get("digest") != expected_digest:
                    return False
                merged = dict(desc.get("annotations") or {}, **annotations)
                if merged == desc.get("annotations"):
                    return False
                desc["annotations"] = merged
                self._write_index(index)
                return True
        return False

    def untag(self, name: str) -> bool:
        if not self.exists():
            return False
        with self.lock():
            index = self._read_index()
            kept = [d for d in index["manifests"] if (d.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) != name]
            if len(kept) == len(index["manifests"]):
                return False
            index["manifests"] = kept
            self._write_index(index)
        return True

    # -- images --------------------------------------------------------------------------------------------
    def load_image(self, name: str, descriptor: dict) -> ImageRecord:
        """Read and check the manifest and config an index entry points to."""
        digest = descriptor["digest"]
        body = self.read_blob(digest)
        media_type, manifest = oci.classify(body, descriptor.get("mediaType"), f"image {name} manifest {digest}")
        if media_type in oci.INDEX_TYPES:
            raise StoreError(f"image {name}: the store entry is an index, not a single-platform image; pull it again.")
        config_desc = manifest["config"]
        config = oci.parse_config(self.read_blob(config_desc["digest"]), manifest, f"image {name} config")
        diff_ids = config["rootfs"]["diff_ids"]
        layers = [
            {"digest": layer["digest"], "diff_id": diff_id, "size": layer["size"],
             "media_type": layer.get("mediaType", "")}
            for layer, diff_id in zip(manifest["layers"], diff_ids)
        ]
        plat = descriptor.get("platform") or {
            k: v for k, v in (("os", config.get("os")), ("architecture", config.get("architecture")),
                              ("variant", config.get("variant"))) if v
        }
        annotations = descriptor.get("annotations") or {}
        return ImageRecord(
            name=name,
            digest=digest,
            media_type=media_type,
            manifest=manifest,
            config_digest=config_desc["digest"],
            config=config,
            layers=layers,
            platform="/".join(plat[k] for k in ("os", "architecture", "variant") if plat.get(k)),
            size=len(body) + config_desc["size"] + sum(layer["size"] for layer in layers),
            remote_digest=annotations.get(ANNOTATION_REMOTE_DIGEST),
            annotations=annotations,
        )

    def image(self, name: str) -> ImageRecord:
        """The image tagged ``name`` (a normalised reference, see reference.py); StoreError when absent."""
        desc = self.resolve(name)
        if desc is None:
            raise StoreError(f"image {name}: not in the store {self.root}; pull or build it first.")
        return self.load_image(name, desc)

    def is_complete(self, image: ImageRecord) -> bool:
        """All blobs present and every layer unpacked."""
        return all(self.has_blob(layer["digest"], layer["size"]) and self.has_layer(layer["diff_id"])
                   for layer in image.layers)

    # -- layer folders -------------------------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, validate_digest(diff_id)[len("sha256:"):])

    def has_layer(self, diff_id: str) -> bool:
        # A layer folder only ever appears by rename of a fully extracted temp folder.
        return os.path.isdir(self.layer_dir(diff_id))

    def commit_layer_dir(self, tmp_path: str, diff_id: str) -> str:
        """Move a fully extracted folder into place; if another process won the race, keep theirs."""
        target = self.layer_dir(diff_id)
        try:
            os.rename(tmp_path, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            remove_tree(tmp_path)
        return target

    def make_tmp_dir(self, prefix: str) -> str:
        self.ensure()
        return make_temp_dir(self.tmp_dir, prefix)

    # -- garbage collection --------------------------------------------------------------------------------
    def container_layers(self) -> dict[str, set[str]]:
        """The diff_ids each container records in ``containers/<entry>/spec.json`` (the runtime writes them
        there before it mounts them), by container: its name, or ``one-shot <id>`` for a one-shot run in a
        reusable slot (``containers/.one-shot-<n>/``), whose record's id names it. What GC keeps for
        containers and what image_remove reports as kept are both this."""
        used: dict[str, set[str]] = {}
        if not os.path.isdir(self.containers_dir):
            return used
        for entry in sorted(os.listdir(self.containers_dir)):
            try:
                with open(os.path.join(self.containers_dir, entry, "spec.json"), "rb") as handle:
                    record = json_loads(handle.read())
            except (OSError, ValueError):
                continue
            if not isinstance(record, dict):
                continue
            if record.get("one_shot"):
                label = f"one-shot {str(record.get('id') or entry)[:12]}"
            else:
                label = str(record.get("name") or entry)
            layers = used.setdefault(label, set())
            for key in ("diff_ids", "layers"):  # "layers": what records of earlier versions may hold
                value = record.get(key)
                if isinstance(value, list):
                    layers.update(d for d in value if isinstance(d, str))
        return used

    def _used_by_containers(self) -> set[str]:
        used: set[str] = set()
        for layers in self.container_layers().values():
            used |= layers
        return used

    def gc(self, dry_run: bool = False, untagged: Iterable[str] = ()) -> dict:
        """Remove blobs and layer folders no tagged image (or container) uses. Returns what was (or would be)
        removed. Waits for running pulls/builds (they hold ``gc_guard``). ``untagged``: names counted as
        already untagged, for a dry run of "remove these, then collect" without touching index.json."""
        untagged = frozenset(untagged)
        if not self.exists():
            return {"blobs": [], "layers": [], "bytes": 0}
        with self._flock(".gc.lock", shared=False), self.lock():
            keep_blobs: set[str] = set()
            keep_layers = self._used_by_containers()
            for name, desc in self.images():
                if name in untagged:
                    continue
                keep_blobs.add(desc["digest"])
                try:
                    body = self.read_blob(desc["digest"])
                    media_type, doc = oci.classify(body, desc.get("mediaType"), name)
                except Exception:  # a broken entry keeps what it names by digest only
                    continue
                manifests = [doc] if media_type not in oci.INDEX_TYPES else []
                for m in manifests:
                    keep_blobs.add(m["config"]["digest"])
                    keep_blobs.update(layer["digest"] for layer in m["layers"])
                    try:
                        config = json_loads(self.read_blob(m["config"]["digest"]))
                        keep_layers.update(config["rootfs"]["diff_ids"])
                    except Exception:
                        pass
                # The remote index a tag came from (kept for cross-checks) is recorded by digest.
                remote = (desc.get("annotations") or {}).get(ANNOTATION_REMOTE_DIGEST)
                if remote:
                    keep_blobs.add(remote)
            removed_blobs, removed_layers, freed = [], [], 0
            for hexname in sorted(os.listdir(self.blobs_dir)) if os.path.isdir(self.blobs_dir) else []:
                digest = "sha256:" + hexname
                if digest in keep_blobs:
                    continue
                path = os.path.join(self.blobs_dir, hexname)
                freed += os.lstat(path).st_size
                removed_blobs.append(digest)
                if not dry_run:
                    os.unlink(path)
            for hexname in sorted(os.listdir(self.layers_dir)) if os.path.isdir(self.layers_dir) else []:
                if "sha256:" + hexname in keep_layers:
                    continue
                removed_layers.append("sha256:" + hexname)
                if not dry_run:
                    remove_tree(os.path.join(self.layers_dir, hexname))
            if not dry_run and os.path.isdir(self.tmp_dir):
                # Nothing is in flight while we hold the exclusive GC lock: leftovers of killed runs go.
                for entry in os.listdir(self.tmp_dir):
                    remove_tree(os.path.join(self.tmp_dir, entry))
        return {"blobs": removed_blobs, "layers": removed_layers, "bytes": freed}


def describe_images(store: Store, names: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """image_info's and ``dockerless images``' query: the images ``names`` (every tagged one when None), each
    ``ImageRecord.as_dict()`` with its ``tags`` (the names sharing its digest) and ``unpacked`` (every layer
    has its folder), and the normalised names not in the store."""
    entries = store.images() if store.exists() else []
    tags_by_digest: dict[str, list[str]] = {}
    for tag, desc in entries:
        tags_by_digest.setdefault(desc["digest"], []).append(tag)
    wanted = [entry[0] for entry in entries] if names is None else [parse_reference(n).name for n in names]
    by_name = dict(entries)
    images, missing = [], []
    for name in wanted:
        if name not in by_name:
            missing.append(name)
            continue
        record = store.load_image(name, by_name[name])
        info = record.as_dict()
        info["tags"] = sorted(tags_by_digest.get(record.digest, []))
        info["unpacked"] = all(store.has_layer(layer["diff_id"]) for layer in record.layers)
        images.append(info)
    return images, missing


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


class RemoveResult(Record):
    """What ``remove_images`` did (in check mode, would do); filled as it goes, so a failure still tells."""

    removed: list = Factory(list)            # [{"name", "digest"}] of the tags removed
    missing: list = Factory(list)            # requested names not in the store
    actions: list = Factory(list)
    gc: dict = Factory(lambda: {"blobs": [], "layers": [], "bytes": 0})
    kept_for_containers: dict = Factory(dict)

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.gc["blobs"] or self.gc["layers"])

    @property
    def diff(self) -> dict:
        return {"before": {"images": {r["name"]: r["digest"] for r in self.removed}, "blobs": self.gc["blobs"],
                           "layers": self.gc["layers"]},
                "after": {"images": {}, "blobs": [], "layers": []}}


def remove_images(store: Store, names: list[str], gc: bool = True, check_mode: bool = False,
                  result: RemoveResult | None = None) -> RemoveResult:
    """Untag ``names`` (as given; normalised here) and, with ``gc``, collect what nothing uses any more. In
    check mode nothing changes: GC runs dry as if the tags were gone. Layers of the removed images that
    containers still record are reported by container (``kept_for_containers``)."""
    result = RemoveResult() if result is None else result
    wanted = list(dict.fromkeys(parse_reference(n).name for n in names))
    tagged = dict(store.images()) if store.exists() else {}
    removed_layers: set[str] = set()
    for name in wanted:
        desc = tagged.get(name)
        if desc is None:
            result.missing.append(name)
            continue
        result.removed.append({"name": name, "digest": desc["digest"]})
        result.actions.append(f"untag {name} ({desc['digest']})")
        try:
            removed_layers.update(layer["diff_id"] for layer in store.load_image(name, desc).layers)
        except DockerlessError:
            pass  # a damaged entry is still removed; its layers are whatever GC finds unused
    if not check_mode:
        for item in result.removed:
            store.untag(item["name"])
    if gc and store.exists():
        result.gc = store.gc(dry_run=check_mode, untagged=[r["name"] for r in result.removed])
    for container, layers in store.container_layers().items():
        shared = sorted(layers & removed_layers)
        if shared:
            result.kept_for_containers[container] = shared
    if result.gc["blobs"] or result.gc["layers"]:
        result.actions.append(f"delete {_plural(len(result.gc['blobs']), 'blob')} ({result.gc['bytes']} bytes) "
                              f"and {_plural(len(result.gc['layers']), 'layer folder')}")
    for container, layers in result.kept_for_containers.items():
        result.actions.append(f"keep {_plural(len(layers), 'layer folder')} used by container {container}")
    return result


def remove_tree(path: str) -> None:
    """Remove a file or directory tree without following symlinks; tolerates read-only dirs inside layers."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return

    def _onerror(func, failed, _exc_info):
        parent = os.path.dirname(failed)
        try:
            os.chmod(parent, 0o700)
        except OSError:
            pass
        try:
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
        except OSError:
            pass
        func(failed)

    import shutil  # only removals need it (a build imports none of it)

    shutil.rmtree(path, onerror=_onerror)
