#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# `scripts/deb-ensure.sh WHO PACKAGE...`: install the Debian packages that are not installed yet (apt-get, as
# root); nothing to do, no apt-get at all. WHO prefixes the messages (the calling script's name). Used by
# scripts/install-deps.sh, scripts/vm/install-deps.sh and bench/bench.sh.
set -euo pipefail
who=$1
shift
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "$who: missing Debian packages ${missing[*]}; run as root or install them" >&2
    exit 1
fi
echo "$who: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
