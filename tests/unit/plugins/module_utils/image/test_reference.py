# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os
import random
import re
import sys

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import ImageReferenceError
from ansible_collections.dockerless.containers.plugins.module_utils.image import reference
from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
    is_loopback_host,
    parse_reference,
    validate_digest,
)

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fresh_python import run_fresh  # noqa: E402

D = "sha256:" + "a" * 64

VALID = [
    # text, domain, registry (API host), repository, tag, digest
    ("alpine", "docker.io", "registry-1.docker.io", "library/alpine", "latest", None),
    ("alpine:3.20", "docker.io", "registry-1.docker.io", "library/alpine", "3.20", None),
    ("library/alpine:latest", "docker.io", "registry-1.docker.io", "library/alpine", "latest", None),
    ("docker.io/library/alpine:3.20", "docker.io", "registry-1.docker.io", "library/alpine", "3.20", None),
    ("docker.io/alpine", "docker.io", "registry-1.docker.io", "library/alpine", "latest", None),
    ("index.docker.io/library/alpine", "docker.io", "registry-1.docker.io", "library/alpine", "latest", None),
    ("registry-1.docker.io/library/alpine", "docker.io", "registry-1.docker.io", "library/alpine", "latest", None),
    ("user/repo", "docker.io", "registry-1.docker.io", "user/repo", "latest", None),
    ("user/repo:v1.2.3", "docker.io", "registry-1.docker.io", "user/repo", "v1.2.3", None),
    ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000", "127.0.0.1:5000", "team/app", "1", None),
    ("127.0.0.1:5000/app", "127.0.0.1:5000", "127.0.0.1:5000", "app", "latest", None),
    ("localhost/app", "localhost", "localhost", "app", "latest", None),
    ("localhost:5000/app:dev", "localhost:5000", "localhost:5000", "app", "dev", None),
    ("registry.example.com/ns/sub/app:tag_1", "registry.example.com", "registry.example.com", "ns/sub/app", "tag_1", None),
    ("ghcr.io/owner/image", "ghcr.io", "ghcr.io", "owner/image", "latest", None),
    ("quay.io/a.b/c-d__e:X.Y-z", "quay.io", "quay.io", "a.b/c-d__e", "X.Y-z", None),
    (f"alpine@{D}", "docker.io", "registry-1.docker.io", "library/alpine", None, D),
    (f"alpine:3.20@{D}", "docker.io", "registry-1.docker.io", "library/alpine", "3.20", D),
    (f"127.0.0.1:5000/app@{D}", "127.0.0.1:5000", "127.0.0.1:5000", "app", None, D),
    ("[::1]:5000/app:1", "[::1]:5000", "[::1]:5000", "app", "1", None),
    ("Registry.Example.com/app", "Registry.Example.com", "Registry.Example.com", "app", "latest", None),
    ("a/b/c/d/e", "docker.io", "registry-1.docker.io", "a/b/c/d/e", "latest", None),
    ("my-registry:443/x", "my-registry:443", "my-registry:443", "x", "latest", None),
    ("  busybox  ", "docker.io", "registry-1.docker.io", "library/busybox", "latest", None),
    ("a" * 100 + ":" + "t" * 128, "docker.io", "registry-1.docker.io", "library/" + "a" * 100, "t" * 128, None),
]

INVALID = [
    "",
    "   ",
    "Alpine",                      # upper case repository
    "alpine:",                     # empty tag
    "alpine:-bad",                 # tag starting with '-'
    "alpine:.bad",
    "alpine:" + "t" * 129,         # tag too long
    "alpine@sha256:abc",           # short digest
    "alpine@sha256:" + "A" * 64,   # upper case hex
    "alpine@sha256:../../x" + "a" * 57,
    "alpine@md5:" + "a" * 32,      # unknown algorithm
    "alpine@",
    "https://registry/app",        # scheme
    "app with space",
    "-app",
    "app-",
    "a//b",
    "registry:5000/",
    "registry:99999/app",          # port out of range
    "x/" + "a" * 300,              # too long
    "ns/app!",
    "/app",
    "app/",
    "..",
    "a/../b",
]


@pytest.mark.parametrize("text,domain,registry,repository,tag,digest", VALID)
def test_valid_references(text, domain, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.domain, ref.registry, ref.repository, ref.tag, ref.digest) == (domain, registry, repository, tag, digest)
    # Normalisation is a fixed point.
    assert parse_reference(ref.name) == ref


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references(text):
    with pytest.raises(ImageReferenceError) as info:
        parse_reference(text)
    assert str(info.value)  # every error says something


def test_names_and_forms():
    ref = parse_reference("alpine")
    assert ref.name == "docker.io/library/alpine:latest"
    assert ref.familiar == "alpine:latest"
    assert ref.reference == "latest"
    ref = parse_reference(f"127.0.0.1:5000/team/app@{D}")
    assert ref.name == f"127.0.0.1:5000/team/app@{D}"
    assert ref.reference == D
    assert ref.familiar == f"127.0.0.1:5000/team/app@{D}"
    assert parse_reference("user/app:1").with_tag("2").name == "docker.io/user/app:2"


@pytest.mark.parametrize("digest", ["sha256:" + "0" * 64, D])
def test_validate_digest_ok(digest):
    assert validate_digest(digest) == digest


@pytest.mark.parametrize("digest", [
    None, "", "sha256:", "sha256:" + "g" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65,
    "sha256:../" + "a" * 61, "SHA256:" + "a" * 64, "sha512:" + "a" * 128, "sha256:" + "a" * 64 + "\n",
])
def test_validate_digest_rejects(digest):
    with pytest.raises(ImageReferenceError):
        validate_digest(digest)


def test_unknown_algorithm_message():
    with pytest.raises(ImageReferenceError, match="unsupported algorithm"):
        validate_digest("sha512:" + "a" * 128)


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True), ("localhost", True),
    ("[::1]:5000", True), ("::1", True), ("10.0.0.1:5000", False), ("registry-1.docker.io", False),
    ("127.0.0.1.example.com", False), ("localhost.example.com:5000", False),
])
def test_loopback(host, expected):
    assert is_loopback_host(host) is expected


# -- the validators against the regular expressions they replace (reference.py no longer imports re) --

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
ORACLES = {
    "_is_path": re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$"),
    "_is_tag": re.compile(r"^[\w][\w.-]{0,127}$"),
    "_is_domain": re.compile(
        rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?$"),
    "_is_sha256_digest": re.compile(r"^sha256:[a-f0-9]{64}$"),
    "_is_any_digest": re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"),
}
# Characters each grammar cares about, a few it must refuse (upper case, Unicode letters and digits, which \w
# accepts, whitespace, newline, '/' and '@'), and the separators of every rule.
_ALPHABET = "ab09AZ._-_+=:/[]@é١\u00b2 \n\tfF"


def _samples(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out = ["", "a", "a.b", "a__b", "a___b", "a--b", "a-", "-a", "A", "é", "١", "a\n", "\na", "[::1]", "[::1]:5000",
           "[]", "[::1]x", "host:", "host:123456", "host:12345", "a.b.c:1", "a..b", ".a", "sha256:" + "a" * 64,
           "sha256:" + "a" * 64 + "\n", "md5:" + "A" * 32, "a+b:x", "a++b:x", "a:", ":x", "t" * 128, "t" * 129,
           "_x", ".x", "x.-_", "a/b", "a//b", "/a", "a/"]
    for _round in range(count):
        length = rng.choice((1, 2, 3, 4, 5, 7, 9, 12, 20))
        out.append("".join(rng.choice(_ALPHABET) for _char in range(length)))
        # Mostly-valid shapes with one change, where the interesting boundaries are.
        base = rng.choice(["registry.example.com:5000", "ns/sub_app", "v1.2-rc__3", "sha256:" + "0f" * 32,
                           "sha512+x.y:AbC=_-", "[fe80::1]:443", "a-b--c"])
        i = rng.randrange(len(base) + 1)
        out.append(base[:i] + rng.choice(_ALPHABET) + base[i + 1:])
        out.append(base[:i] + base[i:])
    return out


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_validators_equal_the_regular_expressions_they_replace(name):
    check = getattr(reference, name)
    samples = _samples(sum(map(ord, name)), 6000)
    wrong = [s for s in samples if check(s) != bool(ORACLES[name].fullmatch(s))]
    assert wrong == [], f"{name} disagrees with its pattern on {wrong[:10]!r}"
    accepted = sum(map(check, samples))
    assert 500 < accepted < len(samples) - 500  # both answers, many times


@pytest.mark.parametrize("domain", ["registry:5000", "[::1]:5000", "[::1]", "a.b", "h:0", "h:65535", "h:99999"])
def test_port_is_what_the_old_search_found(domain):
    old = re.search(r"(?<!:):([0-9]{1,5})$", domain) if not domain.endswith("]") else None
    assert reference._split_port(domain)[1] == (old.group(1) if old else None)


def test_parsing_references_imports_no_re():
    out = run_fresh(
        "from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference\n"
        "ref = parse_reference('127.0.0.1:5000/team/app:1@sha256:' + 'a' * 64)\n"
        "print(ref.name, 're' in sys.modules, 'enum' in sys.modules)\n")
    assert out.stdout.split() == ["127.0.0.1:5000/team/app:1@sha256:" + "a" * 64, "False", "False"]
