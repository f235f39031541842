#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a Debian 12 machine as root: Debian packages (the real
# registry and the peer tools used as oracles) and a .venv with the Python packages. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# libisal2 is the optional faster gzip inflate (the unit tests run both inflaters); libisal-dev has igzip_lib.h,
# which image/layers/test_isal.py compiles against to check the ctypes layout of isal.py.
DEB_PACKAGES=(docker-registry skopeo umoci runc apache2-utils zstd openssl openssh-client busybox-static python3-venv python3-requests rsync curl shellcheck libseccomp2 nftables gcc libc6-dev libisal2 libisal-dev)
scripts/deb-ensure.sh install-deps "${DEB_PACKAGES[@]}"

# The VM harness (qemu, mmdebstrap) for the molecule stage of `make test` (docs/molecule.md).
scripts/vm/install-deps.sh

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# requirements-dev.txt, and the benchmark harness's own (matplotlib, py-spy): `make test` runs bench/tests too.
stamp=.venv/.requirements.sha256
want=$(cat requirements-dev.txt bench/requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q -r requirements-dev.txt -r bench/requirements.txt
    echo "$want" > "$stamp"
fi

# The collection as Ansible finds it: .build/collections/ansible_collections/dockerless/containers -> checkout.
mkdir -p .build/collections/ansible_collections/dockerless
ln -sfn ../../../.. .build/collections/ansible_collections/dockerless/containers
