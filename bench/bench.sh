#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# `make bench`: install the benchmark's own tools (Debian: mmdebstrap for the Debian input, podman and buildah
# as peers; PyPI: bench/requirements.txt into .venv), then run bench/run.py with any extra arguments.
# Expects scripts/install-deps.sh to have run (make's `deps`). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DEB_PACKAGES=(mmdebstrap podman buildah iptables time)
scripts/deb-ensure.sh bench "${BENCH_DEB_PACKAGES[@]}"

stamp=.venv/.bench-requirements.sha256
want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q -r bench/requirements.txt
    echo "$want" > "$stamp"
fi

exec .venv/bin/python bench/run.py "$@"
