#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Boots one VM from the cached image (built first if needed) and waits until root can log in over SSH.
#
# Usage: scripts/vm/up.sh NAME PORT [--fleet IP/PREFIX] [--forward HOSTPORT:GUESTPORT]...
#   NAME     the VM's name and hostname; its state lives in $DOCKERLESS_VM_STATE/NAME (overlay, pid, console log)
#   PORT     host port on 127.0.0.1 forwarded to the VM's port 22
#   --fleet IP/PREFIX
#            adds a second NIC on the VMs' shared segment (a qemu multicast socket on the host, no root
#            networking needed) with this static address, e.g. 192.168.77.10/24: VMs started with --fleet
#            reach each other on every port. The segment is chosen by $DOCKERLESS_VM_FLEET_GROUP (default
#            230.0.77.1:47700), so two fleets on one host need two groups.
#   --forward HOSTPORT:GUESTPORT
#            also forward 127.0.0.1:HOSTPORT to the VM's GUESTPORT (repeatable), e.g. a registry for the host.
# Environment: DOCKERLESS_VM_MEMORY (MiB, default 1024), DOCKERLESS_VM_CPUS (default 2),
#   DOCKERLESS_VM_BOOT_TIMEOUT (seconds, default 600: a loaded 2-core host slows TCG down a lot),
#   DOCKERLESS_VM_APPEND (extra kernel command line arguments), DOCKERLESS_VM_CPU (qemu -cpu, default max).
# Prints one JSON line on stdout: the instance config molecule's delegated driver needs.
# Running it again for a VM that is up with the same port only prints that line.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$HERE/lib.sh"

usage="usage: $0 NAME PORT [--fleet IP/PREFIX] [--forward HOSTPORT:GUESTPORT]..."
[ $# -ge 2 ] || vm_die "$usage"
name=$1
port=$2
shift 2
vm_check_name "$name" up
case "$port" in
    '' | *[!0-9]*) vm_die "up $name: PORT '$port' must be a number (a free TCP port on 127.0.0.1)" ;;
esac
fleet_ip=""
forwards=()
while [ $# -gt 0 ]; do
    case "$1" in
        --fleet)
            [ $# -ge 2 ] || vm_die "$usage"
            fleet_ip=$2
            shift 2
            ;;
        --forward)
            [ $# -ge 2 ] || vm_die "$usage"
            [[ $2 =~ ^[0-9]+:[0-9]+$ ]] || vm_die "up $name: --forward '$2' must be HOSTPORT:GUESTPORT"
            forwards+=("$2")
            shift 2
            ;;
        *) vm_die "$usage" ;;
    esac
done
if [ -n "$fleet_ip" ] && ! [[ $fleet_ip =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$ ]]; then
    vm_die "up $name: --fleet '$fleet_ip' must be an IPv4 address with prefix, e.g. 192.168.77.10/24"
fi

vm_require_root "up $name"
memory=${DOCKERLESS_VM_MEMORY:-1024}
cpus=${DOCKERLESS_VM_CPUS:-2}
boot_timeout=${DOCKERLESS_VM_BOOT_TIMEOUT:-600}
fleet_group=${DOCKERLESS_VM_FLEET_GROUP:-230.0.77.1:47700}
state="$VM_STATE/$name"

instance_json() {
    printf '{"instance": "%s", "address": "127.0.0.1", "port": %s, "user": "root", "identity_file": "%s", "fleet_ip": "%s", "state_dir": "%s"}\n' \
        "$name" "$port" "$VM_KEY" "${fleet_ip%/*}" "$state"
}

if vm_alive "$name"; then
    running_port=$(cat "$state/ssh_port")
    [ "$running_port" = "$port" ] \
        || vm_die "up $name: already running with SSH on port $running_port, not $port; stop it with scripts/vm/down.sh $name"
    instance_json
    exit 0
fi

image=$("$HERE/build-image.sh" | tail -n 1)
[ -f "$image/disk.img" ] || vm_die "up $name: no image at '$image'; run scripts/vm/build-image.sh and read its errors"

mkdir -p "$state"
chmod 0700 "$state"
rm -f "$state/qemu.pid" "$state/console.log" "$state/monitor.sock"
# A qcow2 overlay per VM keeps the cached image clean. An overlay left by `down.sh --keep` is booted again
# (its disk state survives) as long as it was made from the same image.
if [ ! -f "$state/overlay.qcow2" ] || [ "$(cat "$state/image" 2>/dev/null)" != "$image" ]; then
    qemu-img create -q -f qcow2 -b "$image/disk.img" -F raw "$state/overlay.qcow2" >&2
    echo "$image" >"$state/image"
fi
echo "$port" >"$state/ssh_port"
echo "${fleet_ip}" >"$state/fleet_ip"

hostfwd="hostfwd=tcp:127.0.0.1:$port-:22"
for f in "${forwards[@]}"; do
    hostfwd+=",hostfwd=tcp:127.0.0.1:${f%%:*}-:${f##*:}"
done
append="root=/dev/vda rw console=ttyS0 quiet net.ifnames=0 systemd.hostname=$name ${DOCKERLESS_VM_APPEND:-}"
net=(-netdev "user,id=n0,$hostfwd" -device "virtio-net-pci,netdev=n0")
if [ -n "$fleet_ip" ]; then
    # A locally administered MAC derived from the address, so each VM on the segment has its own.
    IFS=./ read -r a b c d _ <<<"$fleet_ip"
    mac=$(printf '52:54:%02x:%02x:%02x:%02x' "$a" "$b" "$c" "$d")
    net+=(-netdev "socket,id=n1,mcast=$fleet_group,localaddr=127.0.0.1" -device "virtio-net-pci,netdev=n1,mac=$mac")
    append+=" dockerless.fleet_ip=$fleet_ip dockerless.fleet_mac=$mac"
fi

start_ns=$(date +%s%N)
# TCG, not KVM: /dev/kvm on these machines can't boot a stock Debian kernel (docs/molecule.md).
qemu-system-x86_64 -name "dockerless-$name" -accel tcg -cpu "${DOCKERLESS_VM_CPU:-max}" -smp "$cpus" -m "$memory" \
    -nodefaults -no-user-config -display none \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" -append "$append" \
    -drive "file=$state/overlay.qcow2,if=virtio,format=qcow2,discard=unmap" \
    "${net[@]}" \
    -device virtio-rng-pci \
    -serial "file:$state/console.log" \
    -monitor "unix:$state/monitor.sock,server,nowait" \
    -pidfile "$state/qemu.pid" -daemonize >"$state/qemu.log" 2>&1 \
    || vm_die "up $name: qemu failed to start: $(cat "$state/qemu.log"). Is port $port (or a --forward port) in use?"

deadline=$(($(date +%s) + boot_timeout))
until ssh "${VM_SSH_OPTS[@]}" -p "$port" root@127.0.0.1 true 2>/dev/null; do
    if ! vm_alive "$name"; then
        tail -n 20 "$state/console.log" >&2 || true
        vm_die "up $name: qemu exited while booting (console above, full log $state/console.log)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        tail -n 20 "$state/console.log" >&2 || true
        vm_die "up $name: no SSH on 127.0.0.1:$port after ${boot_timeout}s (console above, full log $state/console.log); stop it with scripts/vm/down.sh $name"
    fi
    sleep 1
done
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
vm_log "up $name: SSH on 127.0.0.1:$port after $((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100)) s"
instance_json
