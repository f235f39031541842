# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/execution-environment.yml, what ansible-builder reads from a collection: its dependency files exist, are
relative to the collection root (ansible-builder refuses absolute ones), ship in the tarball (not in galaxy.yml's
build_ignore), and hold what the engine really uses, as Debian packages that exist here."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
EE = ROOT / "meta" / "execution-environment.yml"
# bindep: a package name, then optional [profile ...] selectors (comments are whole lines).
BINDEP_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9.+_-]*)(?:\s+\[(?P<profiles>[^\]]+)\])?$")


def _deps() -> dict[str, str]:
    data = yaml.safe_load(EE.read_text())
    assert set(data) <= {"version", "dependencies"}, data
    deps = data["dependencies"]
    assert set(deps) == {"python", "system"}, deps
    return deps


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _bindep() -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for line in _lines(ROOT / _deps()["system"]):
        match = BINDEP_LINE.match(line)
        assert match, f"not a bindep line: {line!r}"
        packages[match["name"]] = set((match["profiles"] or "").split())
    return packages


def test_dependency_files_exist_relative_and_ship_in_the_tarball() -> None:
    ignore = yaml.safe_load((ROOT / "galaxy.yml").read_text())["build_ignore"]
    for kind, rel in _deps().items():
        assert not Path(rel).is_absolute() and ".." not in Path(rel).parts, (kind, rel)
        assert (ROOT / rel).is_file(), f"{kind}: {rel} is missing"
        parts = Path(rel).parts
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        ignored = [p for p in ignore for prefix in prefixes if fnmatch.fnmatch(prefix, p)]
        assert not ignored, f"{rel} is in galaxy.yml build_ignore ({ignored}): ansible-builder would not see it"


def test_python_requirements_are_what_the_modules_import() -> None:
    path = ROOT / _deps()["python"]
    names = {Requirement(line).name.lower() for line in _lines(path)}
    # The engine is the standard library; requests only behind a proxy (docs/architecture.md, registry).
    assert names == {"requests"}, names
    text = path.read_text()
    assert re.search(r"requests is needed ONLY .*proxy", text, re.S), "say why requests is listed"


def test_system_packages_cover_libseccomp_on_both_families_and_exist_on_debian() -> None:
    packages = _bindep()
    assert packages["libseccomp2"] == {"platform:dpkg"} and packages["libseccomp"] == {"platform:rpm"}
    # The library container_run loads is the one the Debian package ships.
    seccomp = (ROOT / "plugins" / "module_utils" / "runtime" / "seccomp" / "filter.py").read_text()
    assert 'LIBSECCOMP = "libseccomp.so.2"' in seccomp
    owner = subprocess.run(["dpkg", "-S", "*/libseccomp.so.2"], capture_output=True, text=True, check=True)
    assert {line.split(":", 1)[0] for line in owner.stdout.splitlines()} == {"libseccomp2"}, owner.stdout
    debian = [name for name, profiles in packages.items() if not profiles or "platform:dpkg" in profiles]
    known = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\n", *debian], capture_output=True, text=True,
                           check=False)
    assert sorted(known.stdout.split()) == sorted(debian), known.stderr


def test_system_packages_offer_isal_on_both_families_and_name_the_library_the_engine_opens() -> None:
    packages = _bindep()
    assert packages["libisal2"] == {"platform:dpkg"} and packages["isa-l"] == {"platform:rpm"}
    isal = (ROOT / "plugins" / "module_utils" / "image" / "layers" / "isal.py").read_text()
    assert 'LIBISAL = "libisal.so.2"' in isal
    owner = subprocess.run(["dpkg", "-S", "*/libisal.so.2"], capture_output=True, text=True, check=True)
    assert {line.split(":", 1)[0] for line in owner.stdout.splitlines()} == {"libisal2"}, owner.stdout
