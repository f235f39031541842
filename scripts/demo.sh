#!/usr/bin/env bash
# `make demo`: make sure a registry answers on 127.0.0.1:5000 (start Debian's docker-registry there if none
# does), seed it with the demo image, run playbooks/demo.yml against localhost, and print what to try next
# (scripts/demo-hints.sh).
# DEMO_REGISTRY=host:port points the demo at another registry (it must already run and hold the images).
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_COLLECTIONS_PATH="$PWD/.build/collections"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-}"
registry=${DEMO_REGISTRY:-127.0.0.1:5000}
root=${DEMO_REGISTRY_ROOT:-/var/tmp/dockerless-demo-registry}

if curl -fsS -o /dev/null --max-time 3 "http://$registry/v2/" 2>/dev/null; then
    echo "demo: a registry answers on $registry; using it"
elif [ -z "${DEMO_REGISTRY:-}" ]; then
    echo "demo: starting docker-registry on $registry (data in $root; stop it with: python3 scripts/registry.py stop --root $root)"
    python3 scripts/registry.py start --root "$root" --port "${registry##*:}" >/dev/null
else
    echo "demo: DEMO_REGISTRY=$registry does not answer on http://$registry/v2/" >&2
    exit 1
fi

if [ -z "${DEMO_REGISTRY:-}" ]; then
    echo "demo: seeding $registry with library/busybox:latest (built from Debian's busybox-static)"
    python3 scripts/seed_images.py --registry "$registry" --images busybox >/dev/null
fi

.venv/bin/ansible-playbook -i localhost, -e "ansible_python_interpreter=$PWD/.venv/bin/python" playbooks/demo.yml
# Commands for the user's own shell, where neither `ansible` (.venv) nor the collection path is set up.
scripts/demo-hints.sh
