#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Runs pytest INSIDE a VM started by up.sh, on a copy of this checkout: for what this host can't do (cgroup v2
# memory/pids limits, a pure-v2 hierarchy). The VM has python3-pytest and python3-pyelftools
# from Debian; the copy goes to /root/dockerless/ansible_collections/dockerless/containers (plugins/, tests/,
# scripts/, conftest.py, pyproject.toml), replacing the previous copy.
#
# Usage: scripts/vm/pytest-in-vm.sh NAME [PYTEST ARGS...]
#   e.g. scripts/vm/pytest-in-vm.sh dockerless-default tests/unit/plugins/module_utils/cgroups/test_cgroups.py -m root
# DOCKERLESS_STRICT_SKIPS=1 in the environment is passed on (a skipped test then fails, as under make test).
# Exit status: pytest's.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$HERE/lib.sh"

[ $# -ge 1 ] || vm_die "usage: $0 NAME [PYTEST ARGS...]"
name=$1
shift
vm_check_name "$name" pytest-in-vm
vm_alive "$name" || vm_die "pytest-in-vm: VM '$name' is not running; start it with scripts/vm/up.sh $name PORT"
port=$(vm_port "$name")
dest=/root/dockerless/ansible_collections/dockerless/containers

paths=()
for p in plugins tests scripts conftest.py pyproject.toml; do
    [ -e "$CHECKOUT/$p" ] && paths+=("$p")
done
tar -C "$CHECKOUT" --exclude=__pycache__ --exclude=.pytest_cache --exclude=tests/output -czf - "${paths[@]}" \
    | ssh "${VM_SSH_OPTS[@]}" -p "$port" root@127.0.0.1 "rm -rf $dest && mkdir -p $dest && tar -C $dest -xzf -"

quoted=""
if [ $# -gt 0 ]; then
    quoted=$(printf ' %q' "$@")
fi
exec ssh "${VM_SSH_OPTS[@]}" -p "$port" root@127.0.0.1 \
    "cd $dest && DOCKERLESS_STRICT_SKIPS=${DOCKERLESS_STRICT_SKIPS:-0} PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -p no:cacheprovider$quoted"
