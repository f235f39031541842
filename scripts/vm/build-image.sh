#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Builds the Debian 12 VM image the molecule scenarios boot, offline from Debian's packages (mmdebstrap), once:
# the result is cached under $DOCKERLESS_VM_CACHE (default /var/cache/dockerless/vm) by a hash of every input
# (this script, guest/*, the package list, the suite, the mirrors, the disk size, the SSH public key). A fresh
# clone on the same machine reuses it; a changed input or a fresh machine rebuilds it (2-4 minutes, see
# docs/molecule.md).
#
# Output (printed on stdout as the last line): the image directory holding
#   disk.img      raw ext4 root filesystem (boot it through a qcow2 overlay, never directly)
#   vmlinuz       the image's own kernel
#   initrd.img    the image's own initramfs
#   packages.txt  `dpkg-query -W` of the image
# and the SSH key pair for root in $DOCKERLESS_VM_CACHE/ssh/id_ed25519{,.pub}.
#
# Usage: scripts/vm/build-image.sh [--force]
# The mmdebstrap hooks are single-quoted on purpose: "$1" is the target directory when mmdebstrap runs them.
# shellcheck disable=SC2016
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$HERE/lib.sh"

force=0
if [ "${1:-}" = "--force" ]; then
    force=1
fi

SUITE=bookworm
MIRROR=${DOCKERLESS_VM_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DOCKERLESS_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DISK_SIZE=${DOCKERLESS_VM_DISK_SIZE:-2G}
# What the VMs have without internet: the base system, what Ansible needs (python3, python3-apt for
# ansible.builtin.apt), what the roles install (docker-registry, apache2-utils for htpasswd, openssl for TLS,
# libisal2 for the faster gzip inflate),
# what tests run inside the VM (python3-pytest; pyelftools, the ELF tests' oracle), and small tools verify uses
# (procps, curl, kmod for `modprobe overlay`), nftables for the bridge networks' rules. No python3-requests: the engine needs it only behind an HTTP proxy,
# and the default scenario checks that everything works without it.
PACKAGES=(
    linux-image-amd64 systemd-sysv udev dbus iproute2 openssh-server kmod procps
    python3 python3-apt python3-pyelftools python3-pytest python3-pytest-timeout
    busybox-static docker-registry apache2-utils openssl ca-certificates curl zstd nftables libisal2
)

vm_require_root build-image
for tool in mmdebstrap mke2fs ssh-keygen sha256sum flock; do
    command -v "$tool" >/dev/null || vm_die "build-image: $tool is missing; run scripts/vm/install-deps.sh"
done

mkdir -p "$VM_CACHE/images" "$VM_CACHE/ssh"
chmod 0700 "$VM_CACHE" "$VM_CACHE/ssh"
# One build at a time: molecule creates the fleet's VMs in parallel and each asks for the image.
exec 9>"$VM_CACHE/.build.lock"
flock 9

if [ ! -f "$VM_KEY" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "dockerless-vm" -f "$VM_KEY"
fi

inputs_hash=$(
    {
        sha256sum "$0" "$HERE"/guest/* | cut -d' ' -f1
        printf '%s\n' "$SUITE" "$MIRROR" "$SECURITY_MIRROR" "$DISK_SIZE" "${PACKAGES[@]}"
        cat "$VM_KEY.pub"
    } | sha256sum | cut -c1-16
)
out="$VM_CACHE/images/$inputs_hash"
if [ "$force" = 0 ] && [ -f "$out/.complete" ]; then
    vm_log "build-image: cached image $out"
    echo "$out"
    exit 0
fi

work=$(mktemp -d "$VM_CACHE/images/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"
pubkey=$(cat "$VM_KEY.pub")
start=$(date +%s)
vm_log "build-image: mmdebstrap $SUITE with ${#PACKAGES[*]} packages into $work (about a minute)"

include=$(IFS=,; echo "${PACKAGES[*]}")
# Hooks run on the host with the target directory as $1. They configure:
# - root's authorized_keys (the only way in: root has no password);
# - dockerless-net.service (guest/dockerless-net): static addresses with iproute2 for the user-mode NIC
#   (10.0.2.15, what slirp always gives) and the optional fleet NIC (dockerless.fleet_ip= on the kernel command
#   line, so one image serves every VM); no DHCP client, no systemd-networkd (it cost tens of seconds under TCG);
# - fstab, hostname (up.sh overrides it per VM with systemd.hostname=), no periodic jobs that slow boots;
# - a small initramfs (guest/initramfs-hook: virtio disk and NIC, ext4), configured before the kernel is
#   installed so it is built once: building and unpacking Debian's default one costs minutes and seconds;
#   virtio_net in it makes the NICs exist before systemd starts;
# - the journal in memory only (flushing it to disk sat on the path to sshd).
# The .deb files of the last build are kept in $VM_CACHE/debs and offered to the next one, so a rebuild after
# an input change downloads only what changed.
mkdir -p "$VM_CACHE/debs" "$work/debs"
mmdebstrap --variant=minbase --include="$include" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in '$VM_CACHE/debs' /var/cache/apt/archives/" \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"' \
    --essential-hook='echo MODULES=list > "$1/etc/initramfs-tools/conf.d/dockerless-vm.conf"' \
    --essential-hook="install -m 0755 '$HERE/guest/initramfs-hook' \"\$1/etc/initramfs-tools/hooks/dockerless-vm\"" \
    --customize-hook='mkdir -p "$1/root/.ssh" && chmod 0700 "$1/root/.ssh"' \
    --customize-hook="echo '$pubkey' > \"\$1/root/.ssh/authorized_keys\"" \
    --customize-hook='chmod 0600 "$1/root/.ssh/authorized_keys"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='echo dockerless-vm > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 dockerless-vm\n::1 localhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
    --customize-hook="install -m 0755 '$HERE/guest/dockerless-net' \"\$1/usr/local/sbin/dockerless-net\"" \
    --customize-hook="install -m 0644 '$HERE/guest/dockerless-net.service' \"\$1/etc/systemd/system/dockerless-net.service\"" \
    --customize-hook='chroot "$1" systemctl enable dockerless-net.service' \
    --customize-hook='mkdir -p "$1/etc/systemd/journald.conf.d" && printf "[Journal]\nStorage=volatile\n" > "$1/etc/systemd/journald.conf.d/dockerless-vm.conf"' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service' \
    --customize-hook="sync-out /var/cache/apt/archives '$work/debs'" \
    --customize-hook='chroot "$1" dpkg-query -W > "$1/../packages.txt"' \
    --customize-hook='cp -L "$1"/boot/vmlinuz-* "$1/../vmlinuz" && cp -L "$1"/boot/initrd.img-* "$1/../initrd.img"' \
    "$SUITE" "$root" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main" \
    </dev/null 2>&1 | while IFS= read -r line; do printf '%s %s\n' "$(date +%T)" "$line"; done >"$work/mmdebstrap.log" \
    || { tail -n 30 "$work/mmdebstrap.log" >&2; vm_die "build-image: mmdebstrap failed (log above); check the Debian mirror $MIRROR is reachable"; }

vm_log "build-image: mke2fs -t ext4 -d ($DISK_SIZE)"
mke2fs -q -t ext4 -L root -d "$root" "$work/disk.img" "$DISK_SIZE" >&2 \
    || vm_die "build-image: mke2fs -d $root failed; is there $DISK_SIZE free under $VM_CACHE?"
rm -rf "$root" "$VM_CACHE/debs"
mv "$work/debs" "$VM_CACHE/debs"
date -u +%Y-%m-%dT%H:%M:%SZ >"$work/.complete"

rm -rf "$out"
mv "$work" "$out"
trap - EXIT
# Older images go, except those a VM's overlay still uses (its state directory names the image).
for old in "$VM_CACHE"/images/*/; do
    old=${old%/}
    [ "$old" = "$out" ] && continue
    grep -qxF "$old" "$VM_STATE"/*/image 2>/dev/null || rm -rf "$old"
done
vm_log "build-image: built $out in $(($(date +%s) - start)) s"
echo "$out"
