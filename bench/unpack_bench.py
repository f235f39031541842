# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer extraction speed: extract.extract_layer against GNU tar on the same gzip layer, interleaved.

    .venv/bin/python bench/unpack_bench.py [--src /usr/include] [--rounds 5] [--workdir /var/tmp/dockerless-unpack-bench]
                                           [--fresh-fs]   # as root: a new ext4 (loop device) for every run

Builds a gzip tar of ``--src`` once (kept in the work dir), then extracts it ``--rounds`` times with each tool,
alternating which goes first, into new directories on the work dir's filesystem, with ``sync`` before each run.
Trees are removed only at the end: on ext4, creating inodes right after many were deleted is much slower (the
allocator skips recently deleted inodes, ``recently_deleted()`` in the kernel profile), which would make the
results depend on the order of the runs. Prints each run, the medians and tar/ours (> 1: we are faster). Also
times ``flatten`` of the extracted layer against ``cp -a``. The machine may be shared: look at the spread.
``--fresh-fs`` makes every run start from the same state: a new 3 GiB ext4 image, loop-mounted, per run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".build", "collections"))

from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import MEDIA_TYPE_TAR_GZIP  # noqa: E402
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer  # noqa: E402
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.whiteouts import merge as flatten  # noqa: E402


def _sync() -> None:
    subprocess.run(["sync"], check=True)


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="/usr/include")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default="/var/tmp/dockerless-unpack-bench")
    ap.add_argument("--fresh-fs", action="store_true", help="a new loop-mounted ext4 for every run (root)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.abspath(args.src)
    layer = os.path.join(args.workdir, src.strip("/").replace("/", "_") + ".tgz")
    if not os.path.exists(layer):
        subprocess.run(["tar", "-C", "/", "-czf", layer, src.lstrip("/")], check=True)
    listing = subprocess.run(["tar", "-tzf", layer], capture_output=True, text=True, check=True).stdout
    count = len(listing.splitlines())
    print(f"layer {layer}: {os.path.getsize(layer) >> 20} MiB gzip, {count} entries")
    runs = os.path.join(args.workdir, "runs")
    if os.path.lexists(runs):
        shutil.rmtree(runs)
    os.mkdir(runs)

    def run_ours(path: str) -> None:
        with open(layer, "rb") as fh:
            extract_layer(fh, MEDIA_TYPE_TAR_GZIP, path)

    def run_tar(path: str) -> None:
        os.mkdir(path)
        subprocess.run(["tar", "-xzf", layer, "-C", path], check=True)

    times: dict[str, list[float]] = {"ours": [], "tar": []}
    image = os.path.join(args.workdir, "fs.img")
    mnt = os.path.join(args.workdir, "mnt")
    for i in range(args.rounds):
        order = [("ours", run_ours), ("tar", run_tar)]
        if i % 2:
            order.reverse()
        for name, fn in order:
            path = os.path.join(runs, f"{name}{i}")
            if args.fresh_fs:
                subprocess.run(["truncate", "-s", "0", image], check=False)
                subprocess.run(["truncate", "-s", "3G", image], check=True)
                subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
                os.makedirs(mnt, exist_ok=True)
                subprocess.run(["mount", "-o", "loop", image, mnt], check=True)
                path = os.path.join(mnt, name)
            try:
                _sync()
                t = _time(lambda fn=fn, path=path: fn(path))
            finally:
                if args.fresh_fs:
                    subprocess.run(["umount", mnt], check=True)
            times[name].append(t)
            print(f"round {i + 1}: {name:4s} {t:6.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median: ours {med['ours']:.2f} s, GNU tar {med['tar']:.2f} s, tar/ours = {med['tar'] / med['ours']:.2f}")

    layer_dir = os.path.join(runs, "ours0")
    if not os.path.isdir(layer_dir):
        run_ours(layer_dir)
    ft: dict[str, list[float]] = {"flatten": [], "cp -a": []}
    for i in range(max(1, args.rounds // 2)):
        _sync()
        ft["flatten"].append(_time(lambda i=i: flatten([layer_dir], os.path.join(runs, f"flat{i}"))))
        _sync()
        ft["cp -a"].append(
            _time(lambda i=i: subprocess.run(["cp", "-a", layer_dir, os.path.join(runs, f"cp{i}")], check=True))
        )
    fmed = {k: statistics.median(v) for k, v in ft.items()}
    print(f"median: flatten {fmed['flatten']:.2f} s, cp -a {fmed['cp -a']:.2f} s")
    shutil.rmtree(runs)
    if os.path.exists(image):
        os.unlink(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
