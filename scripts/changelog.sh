#!/usr/bin/env bash
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The changelog of the collection, made by antsibull-changelog from changelogs/fragments/*.yml.
#
#   scripts/changelog.sh              lint every fragment, then print the changelog the coming release
#                                     (galaxy.yml's version) would get. It is rendered in a scratch copy of
#                                     the collection: nothing in the checkout changes.
#   scripts/changelog.sh --format md  the same, printing the Markdown rendering instead of the RST one
#   scripts/changelog.sh --release    lint, then release galaxy.yml's version: writes changelogs/changelog.yaml
#                                     and the files of changelogs/config.yaml's output (CHANGELOG.rst,
#                                     CHANGELOG.md), and removes the fragments it used (keep_fragments: false).
#                                     Run it once, when every fragment of the release has landed.
#
# Releasing also lists the new modules, from each module's version_added; a module whose DOCUMENTATION does
# not parse makes antsibull-changelog fail, and this script says which.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD

mode=preview
format=rst
while [ $# -gt 0 ]; do
    case "$1" in
        --release) mode=release ;;
        --format) shift; format=${1:-} ;;
        --format=*) format=${1#--format=} ;;
        -h|--help) sed -n '6,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "changelog.sh: unknown argument '$1'; see scripts/changelog.sh --help" >&2; exit 2 ;;
    esac
    shift
done
case "$format" in
    rst|md) ;;
    *) echo "changelog.sh: --format takes rst or md, not '$format'" >&2; exit 2 ;;
esac

venv_bin="$checkout/.venv/bin"
if [ ! -x "$venv_bin/antsibull-changelog" ]; then
    echo "changelog.sh: $venv_bin/antsibull-changelog is missing; run scripts/install-deps.sh (requirements-dev.txt)" >&2
    exit 1
fi
# antsibull-changelog runs ansible-doc from PATH to find the new modules.
export PATH="$venv_bin:$PATH"
export ANSIBLE_NOCOLOR=1

version=$(sed -n 's/^version:[[:space:]]*\([^[:space:]#]*\).*/\1/p' galaxy.yml)
if [ -z "$version" ]; then
    echo "changelog.sh: no version in galaxy.yml; set 'version: X.Y.Z' there" >&2
    exit 1
fi

echo "changelog.sh: linting changelogs/fragments/ (antsibull-changelog lint)" >&2
if ! lint=$(antsibull-changelog lint 2>&1) || [ -n "$lint" ]; then
    printf '%s\n' "$lint" >&2
    echo "changelog.sh: the fragments above do not lint; fix them (format: changelogs/config.yaml sections)" >&2
    exit 1
fi

release() {
    if ! out=$(antsibull-changelog release --version "$version" --date "$(date +%F)" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "changelog.sh: antsibull-changelog could not release $version (see above). A module whose" \
             "DOCUMENTATION does not parse is the usual cause: ansible-doc dockerless.containers.<module>" >&2
        return 1
    fi
    # antsibull-changelog's remarks (warnings) go to stderr with ours.
    printf '%s\n' "$out" | grep -v '^$' >&2 || true
}

# antsibull-changelog copies the collection before it asks ansible-doc for the modules; a scratch copy of only
# what it reads keeps that fast (the checkout holds .venv). --release copies the results back.
scratch=$(mktemp -d /tmp/dockerless-changelog.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
copy="$scratch/ansible_collections/dockerless/containers"
mkdir -p "$copy"
cp -a galaxy.yml meta plugins changelogs "$copy/"
find "$copy" -name __pycache__ -prune -exec rm -rf {} +
export ANSIBLE_COLLECTIONS_PATH="$scratch"
(cd "$copy" && release)
outputs=$(sed -n 's/^- file:[[:space:]]*//p' changelogs/config.yaml)

if [ "$mode" = release ]; then
    cp "$copy/changelogs/changelog.yaml" changelogs/changelog.yaml
    [ -f "$copy/changelogs/.plugin-cache.yaml" ] && cp "$copy/changelogs/.plugin-cache.yaml" changelogs/
    for out in $outputs; do
        cp "$copy/$out" "$out"
    done
    removed=0
    for fragment in changelogs/fragments/*; do
        [ -e "$fragment" ] || continue
        if [ ! -e "$copy/$fragment" ]; then
            rm -- "$fragment"
            removed=$((removed + 1))
        fi
    done
    echo "changelog.sh: released $version: changelogs/changelog.yaml, ${outputs//$'\n'/ }; $removed" \
         "fragment(s) removed. Commit them together." >&2
    exit 0
fi

if [ "$format" = md ]; then
    file=CHANGELOG.md
else
    file=CHANGELOG.rst
fi
if [ ! -f "$copy/$file" ]; then
    echo "changelog.sh: antsibull-changelog wrote no $file; add it to 'output' in changelogs/config.yaml" >&2
    exit 1
fi
echo "changelog.sh: preview of $version ($file; nothing in the checkout changed)" >&2
cat "$copy/$file"
