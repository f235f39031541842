#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Runs a molecule scenario on qemu VMs from the checkout: `scripts/vm/molecule.sh default` (the whole test
# sequence) or `scripts/vm/molecule.sh fleet converge` (one molecule command). Needs root, the .venv with
# molecule and pytest-testinfra (requirements-dev.txt) and the VM tools (scripts/vm/install-deps.sh).
# Prints the wall time at the end.
set -euo pipefail
export PY_COLORS=0 ANSIBLE_NOCOLOR=1 NO_COLOR=1

HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
scenario=${1:-default}
command=${2:-test}
shift $(($# > 2 ? 2 : $#))

cd "$CHECKOUT"
"$HERE/install-deps.sh"
[ -x .venv/bin/molecule ] || { echo "molecule.sh: .venv/bin/molecule is missing; run scripts/install-deps.sh (requirements-dev.txt lists molecule)" >&2; exit 1; }
# molecule runs `ansible-playbook` and the testinfra verifier runs `pytest` from PATH: use the .venv's.
export PATH="$CHECKOUT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$CHECKOUT/.build/collections"
mkdir -p .build/collections/ansible_collections/dockerless
[ -e .build/collections/ansible_collections/dockerless/containers ] \
    || ln -sfn ../../../.. .build/collections/ansible_collections/dockerless/containers

start=$(date +%s)
status=0
# Each output line gets the seconds since the start, so the log shows what every step cost.
molecule "$command" -s "$scenario" "$@" 2>&1 | while IFS= read -r line; do
    printf '[%4ds] %s\n' "$(($(date +%s) - start))" "$line"
done || status=$?
echo "molecule $command -s $scenario: exit $status after $(($(date +%s) - start)) s (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$status"
