# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import ImageReferenceError
from ansible_collections.dockerless.containers.plugins.module_utils.reference import (
    is_loopback_host,
    parse_reference,
    validate_digest,
)

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
