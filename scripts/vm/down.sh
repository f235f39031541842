#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Stops a VM started by up.sh and deletes its state directory (overlay, console log).
#
# Usage: scripts/vm/down.sh NAME [--keep]
#   --keep   shut the guest down cleanly (ACPI power button, up to 60 s) and keep its overlay, so the next
#            `up.sh NAME PORT` boots the same disk again; without it qemu is stopped at once and the overlay
#            deleted (nothing in it is kept, so a clean shutdown would only cost time).
# A VM that is not running is not an error: its leftover state is still removed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$HERE/lib.sh"

[ $# -ge 1 ] || vm_die "usage: $0 NAME [--keep]"
name=$1
keep=0
if [ "${2:-}" = "--keep" ]; then
    keep=1
elif [ -n "${2:-}" ]; then
    vm_die "usage: $0 NAME [--keep]"
fi
vm_check_name "$name" down
state="$VM_STATE/$name"

# wait_gone SECONDS: true once qemu has exited.
wait_gone() {
    local i
    for ((i = 0; i < $1 * 5; i++)); do
        vm_alive "$name" || return 0
        sleep 0.2
    done
    return 1
}

if vm_alive "$name"; then
    pid=$(cat "$state/qemu.pid")
    if [ "$keep" = 1 ]; then
        printf 'system_powerdown\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
s.close()' "$state/monitor.sock" || true
        wait_gone 60 || vm_log "down $name: no clean shutdown within 60 s; stopping qemu"
    fi
    if vm_alive "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone 10 || kill -KILL "$pid" 2>/dev/null || true
        wait_gone 5 || vm_die "down $name: qemu (pid $pid) did not exit; check it with ps -p $pid"
    fi
    vm_log "down $name: stopped"
fi

if [ "$keep" = 1 ]; then
    rm -f "$state/qemu.pid" "$state/monitor.sock"
else
    rm -rf "$state"
fi
