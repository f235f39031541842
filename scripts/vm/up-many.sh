#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Boots several VMs in parallel (molecule's create): one VM per line on stdin, each line the arguments of
# up.sh (NAME PORT [--fleet IP/PREFIX] [--forward H:G]...). Builds the image first, once. Prints the JSON
# line of every VM in input order; exits 1 if any VM failed to come up (its messages on stderr), after stopping
# nothing: down.sh (molecule's destroy) cleans up.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$HERE/lib.sh"

"$HERE/build-image.sh" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pids=()
n=0
while read -r -a args; do
    [ "${#args[@]}" -eq 0 ] && continue
    "$HERE/up.sh" "${args[@]}" >"$work/$n.out" 2>"$work/$n.err" &
    pids+=("$!")
    n=$((n + 1))
done
status=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        status=1
    fi
    cat "$work/$i.err" >&2
done
[ "$status" = 0 ] || vm_die "up-many: a VM did not come up (messages above)"
for i in "${!pids[@]}"; do
    tail -n 1 "$work/$i.out"
done
