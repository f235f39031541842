#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The fleet numbers of docs/molecule.md, as root from the checkout: `scripts/vm/bench-fleet.sh [OUTDIR]`.
#   round 1, fresh VMs: create; converge (registry + 2 nodes); idempotence (the re-run, zero changes); a playbook
#            of as many ansible.builtin.stat tasks per host as the re-run ran tasks (ok) on that host; destroy
#   round 2, fresh VMs: create; converge limited to the registry and dockerless-node1 (1 node); destroy
# Each step prints its wall time and the load average; the molecule logs go to OUTDIR (default a temp dir).
# ROUNDS=1 or ROUNDS=2 runs one round only. Not part of any test run: it takes 30-60 minutes on a 2-core host,
# more under load.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$(mktemp -d /tmp/dockerless-bench-fleet.XXXXXX)}
mkdir -p "$OUT"
cd "$CHECKOUT"

load() { cut -d' ' -f1-3 /proc/loadavg; }
# step NAME COMMAND...: run it with its output in OUT/NAME.log, print its wall time and the load average.
step() {
    local name=$1 t0 status=0
    shift
    t0=$(date +%s)
    "$@" >"$OUT/$name.log" 2>&1 || status=$?
    printf '%-24s %5d s   load before/after: %s / %s\n' "$name" "$(($(date +%s) - t0))" "$before" "$(load)"
    if [ "$status" != 0 ]; then
        tail -n 40 "$OUT/$name.log" >&2
        echo "bench-fleet: $name failed (exit $status); log: $OUT/$name.log" >&2
        "$HERE/molecule.sh" fleet destroy >/dev/null 2>&1 || true
        exit "$status"
    fi
}
run() { before=$(load); step "$@"; }

echo "bench-fleet: logs in $OUT"
round1() {
    run destroy-0 "$HERE/molecule.sh" fleet destroy
    run create-1 "$HERE/molecule.sh" fleet create
    run converge-2-nodes "$HERE/molecule.sh" fleet converge
    run idempotence-2-nodes "$HERE/molecule.sh" fleet idempotence

    # The stat playbook: per host, as many tasks as the idempotent re-run reported ok (a skipped task runs nothing
    # on the host, so it is not counted). Same inventory and ansible.cfg as molecule's.
    ephemeral=$(find "$HOME/.ansible/tmp" -maxdepth 1 -name 'molecule.*.fleet' -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
    playbook="$OUT/stat.yml"
    echo "---" >"$playbook"
    recap_of() {
        sed 's/^\[ *[0-9]*s\] //' "$1" | awk '/PLAY RECAP/ {recap = 1; next}
            recap && $2 == ":" && $3 ~ /^ok=/ { split($3, ok, "="); print $1, ok[2] }' | sort -u
    }
    # molecule prints the re-run's recap; if a version does not, the converge's has the same ok counts.
    counts=$(recap_of "$OUT/idempotence-2-nodes.log")
    [ -n "$counts" ] || counts=$(recap_of "$OUT/converge-2-nodes.log")
    # Hosts with the same count share one play, so they run side by side as the fleet's nodes do in its own play
    # (the first round measured them one play per host, one host after the other, which overstated the stat side).
    echo "$counts" | awk '{hosts[$2] = hosts[$2] ? hosts[$2] "," $1 : $1} END {for (c in hosts) print c, hosts[c]}' |
        sort -rn | while read -r count hosts; do
        printf -- '- name: stat x %s on %s\n  hosts: %s\n  gather_facts: false\n  tasks:\n' "$count" "$hosts" "$hosts"
        for i in $(seq "$count"); do
            printf '    - name: stat %s\n      ansible.builtin.stat:\n        path: /etc/hostname\n' "$i"
        done
    done >>"$playbook"
    grep '^- name' "$playbook"
    export PATH="$CHECKOUT/.venv/bin:$PATH"
    ANSIBLE_CONFIG="$ephemeral/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$CHECKOUT/.build/collections" \
        ANSIBLE_FORKS=5 run stat-same-count ansible-playbook -i "$ephemeral/inventory" "$playbook"
    run destroy-1 "$HERE/molecule.sh" fleet destroy
}

round2() {
    run destroy-0b "$HERE/molecule.sh" fleet destroy
    run create-2 "$HERE/molecule.sh" fleet create
    run converge-1-node "$HERE/molecule.sh" fleet converge -- --limit localhost,dockerless-registry,dockerless-node1
    run destroy-2 "$HERE/molecule.sh" fleet destroy
}

# ROUNDS="1 2" (default): both rounds; ROUNDS=1 or ROUNDS=2: one of them.
for round in ${ROUNDS:-1 2}; do
    case $round in
        1) round1 ;;
        2) round2 ;;
        *) echo "bench-fleet: ROUNDS holds 1 and/or 2, not '$round'" >&2; exit 2 ;;
    esac
done
echo "bench-fleet: done (rounds ${ROUNDS:-1 2}); logs in $OUT"
