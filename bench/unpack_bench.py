# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer extraction speed: unpack.extract_layer against GNU tar on the same gzip layer, interleaved.

    .venv/bin/python bench/unpack_bench.py [--src /usr/include] [--rounds 5] [--workdir /var/tmp/dockerless-bench]

Builds a gzip tar of ``--src`` once (kept in the work dir), then extracts it ``--rounds`` times with each tool,
alternating which goes first, into fresh directories on the work dir's filesystem, with ``sync`` before each run
and the previous tree removed outside the timing. Prints each run, the medians and tar/ours (> 1: we are faster).
Also times ``flatten`` of the extracted layer against ``cp -a``. The machine may be shared: look at the spread.
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

from ansible_collections.dockerless.containers.plugins.module_utils.unpack import (  # noqa: E402
    MEDIA_TYPE_TAR_GZIP,
    extract_layer,
    flatten,
)


def _fresh(path: str) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path)
    subprocess.run(["sync"], check=True)


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="/usr/include")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", default="/var/tmp/dockerless-bench")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.abspath(args.src)
    layer = os.path.join(args.workdir, src.strip("/").replace("/", "_") + ".tgz")
    if not os.path.exists(layer):
        subprocess.run(["tar", "-C", "/", "-czf", layer, src.lstrip("/")], check=True)
    listing = subprocess.run(["tar", "-tzf", layer], capture_output=True, text=True, check=True).stdout
    count = len(listing.splitlines())
    print(f"layer {layer}: {os.path.getsize(layer) >> 20} MiB gzip, {count} entries")
    ours_dir = os.path.join(args.workdir, "ours")
    tar_dir = os.path.join(args.workdir, "tar")

    def run_ours() -> None:
        with open(layer, "rb") as fh:
            extract_layer(fh, MEDIA_TYPE_TAR_GZIP, ours_dir)

    def run_tar() -> None:
        os.mkdir(tar_dir)
        subprocess.run(["tar", "-xzf", layer, "-C", tar_dir], check=True)

    times: dict[str, list[float]] = {"ours": [], "tar": []}
    for i in range(args.rounds):
        order = [("ours", ours_dir, run_ours), ("tar", tar_dir, run_tar)]
        if i % 2:
            order.reverse()
        for name, path, fn in order:
            _fresh(path)
            t = _time(fn)
            times[name].append(t)
            print(f"round {i + 1}: {name:4s} {t:6.2f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median: ours {med['ours']:.2f} s, GNU tar {med['tar']:.2f} s, tar/ours = {med['tar'] / med['ours']:.2f}")

    flat_dir = os.path.join(args.workdir, "flat")
    cp_dir = os.path.join(args.workdir, "cp")
    ft: dict[str, list[float]] = {"flatten": [], "cp -a": []}
    for _round in range(max(1, args.rounds // 2)):
        _fresh(flat_dir)
        ft["flatten"].append(_time(lambda: flatten([ours_dir], flat_dir)))
        _fresh(cp_dir)
        ft["cp -a"].append(_time(lambda: subprocess.run(["cp", "-a", ours_dir, cp_dir], check=True)))
    fmed = {k: statistics.median(v) for k, v in ft.items()}
    print(f"median: flatten {fmed['flatten']:.2f} s, cp -a {fmed['cp -a']:.2f} s")
    for path in (ours_dir, tar_dir, flat_dir, cp_dir):
        _fresh(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
