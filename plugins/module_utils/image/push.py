# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push orchestration: an image in the store → a registry, idempotent by digest.

Observe, decide, act (go-containerregistry's ``remote.Write`` follows the same order):

1. HEAD every target tag's manifest. A tag that already points to our manifest digest (or to the digest the
   image was pulled as, ``io.dockerless.remote-digest``) needs nothing; when every tag is like that, the push
   is ``changed: false`` after those HEAD requests alone.
2. For each blob (config, layers): HEAD it in the target repository; when missing, try a cross-repository
   mount from a repository of the same registry known to hold it (the store's ``index.json`` annotations name
   where each image came from and where it was pushed), else upload it streamed from the store. Blobs go in
   parallel; the client restarts failed uploads from a fresh session.
3. PUT the manifest (the stored bytes, so the digest is ours) for each tag that needs it.

Check mode stops after the HEAD requests and reports what is missing. After a real push the target is
recorded on the store entry (``io.dockerless.pushed``) so later pushes of images sharing these blobs can mount
them instead of uploading again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DigestMismatchError,
    DockerlessError,
    ImageReferenceError,
    StoreError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import Reference, parse_reference
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import (
    ANNOTATION_SOURCE,
    ImageRecord,
    Store,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import DEFAULT_CHUNK_SIZE
from ansible_collections.dockerless.containers.plugins.module_utils.registry.options import RegistryOptions

ANNOTATION_PUSHED = "io.dockerless.pushed"  # space-separated references this image was pushed to
PARALLEL_UPLOADS = 4
_MAX_PUSHED_RECORDS = 16


@dataclass
class BlobCounts:
    """What happened to the image's blobs (or would, in check mode)."""

    uploaded: int = 0
    uploaded_bytes: int = 0
    mounted: int = 0
    mounted_bytes: int = 0
    present: int = 0
    present_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class PushResult:
    changed: bool
    name: str                                   # the image in the store
    digest: str                                 # its manifest digest
    media_type: str
    repository: str                             # the target, e.g. 127.0.0.1:5000/team/app
    tags: list[str]                             # full references pushed (or that would be)
    before: dict[str, str | None]               # reference → the digest the registry had before
    blobs: BlobCounts = field(default_factory=BlobCounts)
    actions: list[str] = field(default_factory=list)

    def image_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "media_type": self.media_type,
            "repository": self.repository,
            "tags": list(self.tags),
        }


@dataclass
class _Blob:
    digest: str
    size: int
    sources: list[str]                          # repositories of the same registry that should hold it
    outcome: str = ""                           # present / mounted / uploaded (or would be)
    mounted_from: str | None = None


def _target(name: Reference, repository: str | None, tags: list[str] | None) -> tuple[Reference, list[str]]:
    """The target repository and the tags to point at the manifest (first one from ``repository``)."""
    target = parse_reference(repository, default_tag=None) if repository else name
    if target.digest:
        raise ImageReferenceError(
            f"push target {repository}: a digest can't be pushed to; give a tag (registry/name:tag)."
        )
    first = target.tag or name.tag or "latest"
    wanted = [first]
    for tag in tags or []:
        wanted.append(target.with_tag(tag).tag)  # validates the tag
    return Reference(target.domain, target.repository), list(dict.fromkeys(wanted))


def _references(name: str, desc: dict) -> list[str]:
    """References an index entry says its blobs are at: pushes first (they succeeded), then source, then name."""
    annotations = desc.get("annotations") or {}
    refs = str(annotations.get(ANNOTATION_PUSHED) or "").split()
    refs.reverse()
    if annotations.get(ANNOTATION_SOURCE):
        refs.append(str(annotations[ANNOTATION_SOURCE]))
    refs.append(name)
    return refs


def mount_sources(store: Store, target: Reference) -> dict[str, list[str]]:
    """digest → repositories of ``target``'s registry (other than the target) that should hold that blob."""
    sources: dict[str, list[str]] = {}
    for name, desc in store.images():
        repos = []
        for text in _references(name, desc):
            try:
                ref = parse_reference(text)
            except ImageReferenceError:
                continue
            if ref.registry == target.registry and ref.repository != target.repository:
                repos.append(ref.repository)
        if not repos:
            continue
        try:
            manifest = json.loads(store.read_blob(desc["digest"]))
            digests = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
        except (StoreError, ValueError, KeyError, TypeError):
            continue  # an index entry or a damaged one: nothing to learn from it
        for digest in digests:
            known = sources.setdefault(digest, [])
            known.extend(r for r in repos if r not in known)
    return sources


def _record_push(store: Store, image: ImageRecord, pushed: list[str]) -> None:
    """Remember where the image now is, for later mounts. Only while the store entry still is this image."""
    desc = store.resolve(image.name)
    if desc is None or desc.get("digest") != image.digest:
        return
    known = str((desc.get("annotations") or {}).get(ANNOTATION_PUSHED) or "").split()
    own = parse_reference(image.name).repo_name  # the name already says the blobs are there
    new = [ref for ref in pushed if ref not in known and parse_reference(ref).repo_name != own]
    if not new:
        return
    store.annotate(image.name, image.digest, {ANNOTATION_PUSHED: " ".join((known + new)[-_MAX_PUSHED_RECORDS:])})


def push_image(
    store: Store,
    name: str,
    *,
    repository: str | None = None,
    tags: list[str] | None = None,
    registry: RegistryOptions | None = None,
    check_mode: bool = False,
    client: Any = None,
    parallel: int = PARALLEL_UPLOADS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[dict], None] | None = None,
) -> PushResult:
    """Push the store's image ``name`` to ``repository`` (default: ``name`` itself) under its tag and ``tags``.

    ``client`` is a ready ``RegistryClient`` for the target registry (tests); by default one is made from
    ``registry``. Returns what was (or, in check mode, would be) done.
    """
    source = parse_reference(name)
    image = store.image(source.name)
    body = store.read_blob(image.digest)
    target, tag_list = _target(source, repository, tags)
    references = [f"{target.repo_name}:{tag}" for tag in tag_list]
    what = f"pushing {image.name} to {target.repo_name}"

    descriptors = [image.manifest["config"], *image.manifest["layers"]]
    blobs: dict[str, _Blob] = {}
    for desc in descriptors:
        if desc["digest"] not in blobs:
            if not store.has_blob(desc["digest"], desc["size"]):
                raise StoreError(
                    f"{what}: blob {desc['digest']} is missing from the store {store.root}; pull or build the image "
                    "again."
                )
            blobs[desc["digest"]] = _Blob(desc["digest"], desc["size"], [])

    if client is None:
        client = (registry or RegistryOptions()).client(target.registry)
    result = PushResult(changed=False, name=image.name, digest=image.digest, media_type=image.media_type,
                        repository=target.repo_name, tags=references, before={})

    # 1. Observe the tags.
    ours = {image.digest} | ({image.remote_digest} if image.remote_digest else set())
    stale = []
    for tag, ref in zip(tag_list, references):
        head = client.head_manifest(target.repository, tag)
        result.before[ref] = head[0] if head else None
        if head is None or head[0] not in ours:
            stale.append((tag, ref))
    if not stale:
        result.blobs.present = len(blobs)
        result.blobs.present_bytes = sum(b.size for b in blobs.values())
        result.actions.append(f"{', '.join(references)} already point(s) to {image.digest}; nothing to push")
        if not check_mode:
            _record_push(store, image, references)
        return result

    # 2. Blobs: observe each, then mount or upload what is missing (in parallel).
    sources = mount_sources(store, target)
    for blob in blobs.values():
        blob.sources = sources.get(blob.digest, [])

    def handle(blob: _Blob) -> None:
        size = client.blob_exists(target.repository, blob.digest)
        if size is not None:
            blob.outcome = "present"
            return
        if check_mode:
            blob.outcome = "mounted" if blob.sources else "uploaded"
            blob.mounted_from = blob.sources[0] if blob.sources else None
            return
        if blob.sources and client.mount_blob(target.repository, blob.digest, blob.sources[0]):
            blob.outcome, blob.mounted_from = "mounted", blob.sources[0]
            return
        client.upload_blob(target.repository, blob.digest, blob.size, lambda: store.open_blob(blob.digest),
                           chunk_size=chunk_size)
        blob.outcome = "uploaded"
        if progress:
            progress({"event": "blob", "digest": blob.digest, "size": blob.size})

    errors: list[BaseException] = []
    # The shared GC lock keeps garbage collection from removing blobs while they are read (not in check mode,
    # which writes nothing, not even the lock file).
    guard = contextlib.nullcontext() if check_mode else store.gc_guard()
    with guard, ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        # Largest first: the long uploads start at once and the small ones fill in around them.
        futures = [pool.submit(handle, blob) for blob in sorted(blobs.values(), key=lambda b: -b.size)]
        for future in futures:
            try:
                future.result()
            except (DockerlessError, OSError) as exc:
                errors.append(exc)
    if errors:
        exc = errors[0]
        if isinstance(exc, OSError):
            raise StoreError(f"{what}: reading the store failed ({exc.strerror or exc}); check {store.root}.")
        raise exc

    counts = result.blobs
    for blob in blobs.values():
        setattr(counts, blob.outcome, getattr(counts, blob.outcome) + 1)
        setattr(counts, f"{blob.outcome}_bytes", getattr(counts, f"{blob.outcome}_bytes") + blob.size)
    verb = "would " if check_mode else ""
    mounted_from = sorted({b.mounted_from for b in blobs.values() if b.outcome == "mounted" and b.mounted_from})
    result.actions.append(
        f"{verb}upload {counts.uploaded} blob(s) ({counts.uploaded_bytes} bytes), "
        f"{verb}mount {counts.mounted} ({counts.mounted_bytes} bytes)"
        + (f" from {', '.join(mounted_from)}" if mounted_from else "")
        + f"; {counts.present} already in {target.repo_name}"
    )

    # 3. Point the stale tags at the manifest.
    for tag, ref in stale:
        if check_mode:
            result.actions.append(f"would put manifest {image.digest} as {ref} (was {result.before[ref]})")
            continue
        digest = client.put_manifest(target.repository, tag, body, image.media_type)
        if digest != image.digest:
            raise DigestMismatchError(f"{what}: the registry stored the manifest as {digest}, not {image.digest}.")
        result.actions.append(f"put manifest {image.digest} as {ref}")
    result.changed = True
    if not check_mode:
        try:
            _record_push(store, image, references)
        except (StoreError, OSError):
            pass  # bookkeeping for later mounts only; the push itself succeeded
    return result
