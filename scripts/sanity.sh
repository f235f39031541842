#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Runs `ansible-test sanity --local --python 3.11` OFFLINE, then `ruff check .` at the checkout.
#
#   scripts/sanity.sh                          # all sanity tests
#   scripts/sanity.sh --test validate-modules  # extra arguments go to ansible-test
#   SANITY_REQUIREMENTS=1 scripts/sanity.sh    # force --requirements (otherwise only on the first run)
#
# Why the detours (docs/ENVIRONMENT facts):
# * ansible-test bootstraps pip in its sanity venvs with a script it downloads from the internet, unless a cached
#   copy exists at ~/.ansible/test/cache/get_pip_<pip version>.py. We write a stand-in there that runs
#   `python -m ensurepip` in a subprocess (in-process, ensurepip drops the machine's pip certificate setting)
#   and then `python -m pip install` with ansible-test's arguments minus --no-setuptools/--no-wheel.
# * ansible-test needs its working directory to be .../ansible_collections/dockerless/containers as a real path,
#   so the files git knows about (tracked, plus untracked but not ignored) are copied with rsync into
#   .build/sanity/run-<pid>/ansible_collections/dockerless/containers/ (with an empty `git init`, see below) and
#   the tests run there. The copy is fresh each run: a stale tests/output (with an old venv) breaks two sanity
#   tests, and concurrent runs must not share it.
# Exits non-zero if either ansible-test or ruff fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
CHECKOUT=$(pwd -P)
VENV="$CHECKOUT/.venv"
PY="$VENV/bin/python"
PY_VERSION=3.11

if [ ! -x "$VENV/bin/ansible-test" ]; then
    echo "sanity: $VENV/bin/ansible-test is missing; run scripts/install-deps.sh first" >&2
    exit 2
fi

# 1. The offline pip bootstrap ansible-test looks for.
pip_version=$("$PY" - <<'EOF'
import pathlib
import re

import ansible_test

src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
match = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", src)
print(match.group(1) if match else "")
EOF
)
if [ -z "$pip_version" ]; then
    echo "sanity: could not find the pip version ansible-test bootstraps (ansible_test/_internal/python_requirements.py)" >&2
    exit 2
fi
cache_dir="$HOME/.ansible/test/cache"
get_pip="$cache_dir/get_pip_${pip_version//./_}.py"
mkdir -p "$cache_dir"
cat > "$get_pip.tmp" <<'EOF'
# Offline stand-in for ansible-test's get-pip download, written by dockerless.containers scripts/sanity.sh.
# ansible-test runs it in-process (runpy) with pip's arguments, e.g. `pip==24.2 --no-setuptools --no-wheel`.
import subprocess
import sys

# ensurepip must run in a subprocess: in-process it drops the machine's pip certificate setting and pip then
# fails on TLS.
subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
EOF
mv "$get_pip.tmp" "$get_pip"

# 2. A copy of the collection where ansible-test wants it: one per run (several engineers run this script in the
#    same checkout at once), removed at exit unless SANITY_KEEP=1; copies left by dead runs are removed first.
base="$CHECKOUT/.build/sanity"
mkdir -p "$base"
for stale in "$base"/run-*; do
    [ -d "$stale" ] || continue
    stale_pid=${stale##*/run-}
    if ! kill -0 "$stale_pid" 2>/dev/null; then
        rm -rf "$stale"
    fi
done
run_dir="$base/run-$$"
dest="$run_dir/ansible_collections/dockerless/containers"
rm -rf "$run_dir"
mkdir -p "$dest"
if [ "${SANITY_KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$run_dir"' EXIT
fi
git -C "$CHECKOUT" ls-files -z -co --exclude-standard \
    | rsync -a --from0 --files-from=- --ignore-missing-args "$CHECKOUT/" "$dest/"
rc=$?
if [ $rc -ne 0 ]; then
    echo "sanity: copying the checkout to $dest failed (rsync exit $rc)" >&2
    exit 2
fi
# ansible-test lists files with git from the nearest .git upwards: without one here it would find the checkout's
# .git, where .build/ is ignored, and skip every target. An empty repository makes it list the copy's files.
git -C "$dest" init -q

# 3. ansible-test sanity; --requirements the first time for this ansible-core (or when asked).
core_version=$("$PY" -c 'import ansible.release; print(ansible.release.__version__)')
stamp="$base/.requirements-$core_version-py$PY_VERSION"
req=()
if [ ! -f "$stamp" ] || [ "${SANITY_REQUIREMENTS:-0}" = 1 ]; then
    req=(--requirements)
fi
echo "sanity: ansible-test sanity --local --python $PY_VERSION ${req[*]} $* (in $dest)"
(cd "$dest" && PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-test" sanity --local --python "$PY_VERSION" "${req[@]}" "$@")
sanity_rc=$?
if [ $sanity_rc -eq 0 ] && [ "${#req[@]}" -gt 0 ]; then
    touch "$stamp"
fi

# 4. ruff at the checkout.
echo "sanity: ruff check ."
"$VENV/bin/ruff" check .
ruff_rc=$?

if [ $sanity_rc -ne 0 ] || [ $ruff_rc -ne 0 ]; then
    echo "sanity: FAILED (ansible-test exit $sanity_rc, ruff exit $ruff_rc)" >&2
    exit 1
fi
echo "sanity: OK"
