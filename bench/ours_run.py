# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container start path as the smallest command-line front: what the container-start cases time.

    python -I -S bench/ours_run.py --store S --image REF [--seccomp default|unconfined|PATH] [--] ARGV …

Runs ARGV once in a container of image REF (already in the store: no registry; the pull engine only to unpack
layer folders the store lacks, e.g. of a built image) and prints one
JSON line: ``rc``, ``rootfs_mode``, ``seccomp`` and ``engine_s`` (imports + store lookup + run, interpreter start
not included). ``-I -S`` keeps the interpreter's own start small: the start path is stdlib-only, so it needs no
site-packages. No argparse (it alone costs more than the container's setup: gettext and locale look-ups).
Once the container has exited, its state is removed and the JSON line is flushed, the command ends with
``os._exit``: CPython's finalization of the imported modules (about 5 ms of CPU here) does nothing a finished
command needs, and ``runc`` has no such step either.
"""

import os
import sys
import time

_START = time.perf_counter()
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_CHECKOUT, ".build", "collections"))

USAGE = "usage: ours_run.py --store S --image REF [--seccomp default|unconfined|PATH] [--] ARGV …"


def parse(argv: list) -> dict:
    """``{"store", "image", "seccomp", "argv"}`` from the command line; ValueError with the usage on a mistake."""
    opts = {"store": None, "image": None, "seccomp": None}
    rest = list(argv)
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if flag == "--":
            break
        key = flag[2:]
        if key not in opts or not rest:
            raise ValueError(f"{flag}: unknown or without a value. {USAGE}")
        opts[key] = rest.pop(0)
    if not opts["store"] or not opts["image"] or not rest:
        raise ValueError(USAGE)
    opts["argv"] = rest
    return opts


def unpack_missing(store_root: str, name: str) -> None:
    """Layer folders the store lacks (a built image: image_build stores the blob only) made from the blobs, as
    container_run's pull.ensure_image does; a pulled image has them all and never gets here."""
    from ansible_collections.dockerless.containers.plugins.module_utils.pull import ensure_unpacked
    from ansible_collections.dockerless.containers.plugins.module_utils.store import Store

    store = Store(store_root)
    ensure_unpacked(store, store.image(name))


def run(opts: dict) -> dict:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import Runtime
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime_image import image_for_start
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime_spec import build_spec

    # The one image: index.json, its manifest and config (digests verified), nothing else of the store.
    image = image_for_start(opts["store"], opts["image"])
    if not all(os.path.isdir(d) for d in image.lower_dirs):
        unpack_missing(opts["store"], image.name)
    extra = {} if opts["seccomp"] is None else {"seccomp": opts["seccomp"]}
    spec = build_spec(image_config=image.config, lower_dirs=image.lower_dirs, image=image.name,
                      image_digest=image.digest, diff_ids=image.diff_ids, command=opts["argv"], **extra)
    result = Runtime(opts["store"]).run(spec)
    return {"rc": result.rc, "rootfs_mode": result.rootfs_mode, "seccomp": spec.seccomp,
            "stdout": result.stdout.decode(errors="replace")}


def main(argv: list) -> int:
    try:
        opts = parse(argv)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    out = run(opts)
    out["engine_s"] = round(time.perf_counter() - _START, 4)
    # json.dumps through _json (runtime_record): ``import json`` would load re and enum for one line.
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime_record import json_dumps

    sys.stdout.write(json_dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
