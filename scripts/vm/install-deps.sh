#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Installs what the VM harness (scripts/vm/*.sh, molecule/) needs on a Debian 12 host, as root: mmdebstrap to
# build the image offline from Debian's packages, qemu to boot it (TCG), qemu-utils for qcow2 overlays,
# e2fsprogs for `mke2fs -d`, an SSH client for the harness. Idempotent: installs only what is missing.
set -euo pipefail

VM_DEB_PACKAGES=(mmdebstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client)
"$(dirname "$0")/../deb-ensure.sh" vm/install-deps "${VM_DEB_PACKAGES[@]}"
