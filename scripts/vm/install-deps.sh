#!/usr/bin/env bash
# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Installs what the VM harness (scripts/vm/*.sh, molecule/) needs on a Debian 12 host, as root: mmdebstrap to
# build the image offline from Debian's packages, qemu to boot it (TCG), qemu-utils for qcow2 overlays,
# e2fsprogs for `mke2fs -d`, an SSH client for the harness. Idempotent: installs only what is missing.
set -euo pipefail

VM_DEB_PACKAGES=(mmdebstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client)
missing=()
for p in "${VM_DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "vm/install-deps: missing Debian packages ${missing[*]}; run this script as root or install them" >&2
    exit 1
fi
echo "vm/install-deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
