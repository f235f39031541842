#!/usr/bin/env bash
# The closing hints of `make demo` (scripts/demo.sh runs this after the playbook): commands that work when pasted
# into a new shell, anywhere. `ansible` is only in this checkout's .venv and the collection is found through
# .build/collections, so the first line puts both where the shell and Ansible look; every path is absolute.
# tests/unit/test_demo_hints.py runs what this prints in an empty environment.
# DEMO_CONTAINER names the demo's detached container (playbooks/demo.yml's demo_container).
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
container=${DEMO_CONTAINER:-demo-busybox}
venv_bin=$(printf '%q' "$checkout/.venv/bin")
collections=$(printf '%q' "$checkout/.build/collections")

cat <<HINTS

What next, from any shell (Ansible is in this checkout's .venv, the collection in .build/collections):

  export PATH=$venv_bin:\$PATH ANSIBLE_COLLECTIONS_PATH=$collections
  ansible localhost -m dockerless.containers.container_info -a 'name=$container logs=5'
  ansible localhost -m dockerless.containers.container_run -a 'name=$container state=absent'
  ansible-doc dockerless.containers.container_run

The first line makes the others work; the second shows the detached container $container and the tail of its
logs, the third stops and removes it, the fourth documents the module. To use the collection from your own
playbooks and your own Ansible, see "Use it in your playbooks" in README.md.
HINTS
