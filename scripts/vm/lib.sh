# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this file
#
# Shared settings of the VM scripts (sourced, not run). Every path can be moved with an environment variable:
#   DOCKERLESS_VM_CACHE   built images and the SSH key pair   (default /var/cache/dockerless/vm)
#   DOCKERLESS_VM_STATE   one directory per running VM        (default /var/tmp/dockerless-vm)

VM_CACHE=${DOCKERLESS_VM_CACHE:-/var/cache/dockerless/vm}
VM_STATE=${DOCKERLESS_VM_STATE:-/var/tmp/dockerless-vm}
VM_KEY="$VM_CACHE/ssh/id_ed25519"
# Every VM boots from the same image, so host keys are the same and ports are reused between runs: the
# harness does not record host keys. These VMs live on loopback only.
VM_SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o IdentitiesOnly=yes -o ConnectTimeout=5 -o ServerAliveInterval=15 -i "$VM_KEY")

vm_log() {
    echo "$*" >&2
}

vm_die() {
    echo "$*" >&2
    exit 1
}

vm_require_root() {
    [ "$(id -u)" = 0 ] || vm_die "$1: needs root (qemu, mke2fs -d and mmdebstrap keep file ownership); rerun as root"
}

vm_check_name() {
    case "$1" in
        "" | *[!A-Za-z0-9_.-]* | .*) vm_die "$2: VM name '$1' must be letters, digits, '.', '_' or '-', not starting with '.'" ;;
    esac
}

# vm_alive NAME: true when the VM's qemu process runs.
vm_alive() {
    local pidfile="$VM_STATE/$1/qemu.pid" pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q qemu "/proc/$pid/comm" 2>/dev/null
}

# vm_port NAME: the host port forwarded to the VM's SSH.
vm_port() {
    cat "$VM_STATE/$1/ssh_port" 2>/dev/null || vm_die "VM '$1' is not known under $VM_STATE; start it with scripts/vm/up.sh $1 PORT"
}
