# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references as users write them, normalised the way Docker does.

``alpine`` → ``docker.io/library/alpine:latest`` (API host ``registry-1.docker.io``);
``127.0.0.1:5000/team/app:1`` stays on its registry; ``…@sha256:<hex>`` pins a digest.
The grammar follows distribution/reference (reference.go, normalize.go). A platform (``linux/arm64/v8``, the
host's by default) is the other half of what a user names, matched as containerd's ``platforms`` package does;
``oci`` re-exports it. Both live here because a container start needs them and nothing else of ``oci``.

Its regular expressions are checked here with plain string tests, each equal to the ``re`` pattern it replaces
(the patterns are in the comments; tests/unit compare both on thousands of strings): ``import re`` brings enum,
functools and collections, about a sixth of a short build's CPU time, and every engine module parses
references.
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils.errors import ImageReferenceError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")

_MAX_NAME = 255

_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX_LOWER = frozenset("0123456789abcdef")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_ENCODED_CHARS = _ALNUM | frozenset("=_-")


def _runs(text: str, word: frozenset) -> list[str] | None:
    """``text`` cut into alternating runs of ``word`` characters and separators, starting and ending with a word
    run; None when it does not (empty, or a separator first or last)."""
    if not text or text[0] not in word or text[-1] not in word:
        return None
    runs, start = [], 0
    for i in range(1, len(text)):
        if (text[i] in word) != (text[i - 1] in word):
            runs.append(text[start:i])
            start = i
    runs.append(text[start:])
    return runs


def _is_component(text: str) -> bool:
    """``[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`` (a repository path component)."""
    runs = _runs(text, _LOWER_ALNUM)
    return runs is not None and all(sep in (".", "_", "__") or sep == "-" * len(sep) for sep in runs[1::2])


def _is_path(text: str) -> bool:
    """``^component(?:/component)*$``."""
    return all(_is_component(part) for part in text.split("/"))


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"  # re's \w on str: Unicode alphanumerics and '_'


def _is_tag(text: str) -> bool:
    r"""``^[\w][\w.-]{0,127}$``."""
    return (0 < len(text) <= 128 and _is_word_char(text[0])
            and all(c in ".-" or _is_word_char(c) for c in text[1:]))


def _is_domain_component(text: str) -> bool:
    """``[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]``."""
    return (bool(text) and text[0] in _ALNUM and text[-1] in _ALNUM
            and all(c in _ALNUM or c == "-" for c in text))


def _is_port(text: str) -> bool:
    """``[0-9]{1,5}``."""
    return 0 < len(text) <= 5 and all(c in _DIGITS for c in text)


def _split_port(domain: str) -> tuple[str, str | None] | None:
    """(host, port digits or None) of a domain shaped like ``host(?::port)?`` (host: name or ``[ipv6]``), else
    None."""
    if domain.startswith("["):
        close = domain.find("]")
        if close < 0:
            return None
        host, rest = domain[: close + 1], domain[close + 1 :]
    else:
        host, colon, port = domain.partition(":")
        rest = colon + port
    if not rest:
        return host, None
    if rest[0] != ":" or not _is_port(rest[1:]):
        return None
    return host, rest[1:]


def _is_domain(domain: str) -> bool:
    r"""``^(?:dc(?:\.dc)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$`` with dc a domain component."""
    split = _split_port(domain)
    if split is None:
        return False
    host = split[0]
    if host.startswith("["):
        return len(host) > 2 and host.endswith("]") and all(c in _IPV6_CHARS for c in host[1:-1])
    return all(_is_domain_component(part) for part in host.split("."))


def _is_sha256_digest(text: str) -> bool:
    """``^sha256:[a-f0-9]{64}$``."""
    return len(text) == 71 and text.startswith("sha256:") and all(c in _HEX_LOWER for c in text[7:])


def _is_any_digest(text: str) -> bool:
    """``^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`` (any algorithm)."""
    algorithm, colon, encoded = text.partition(":")
    runs = _runs(algorithm, _LOWER_ALNUM)
    return (bool(colon) and runs is not None and all(sep in (".", "+", "_", "-") for sep in runs[1::2])
            and bool(encoded) and all(c in _ENCODED_CHARS for c in encoded))


def validate_digest(text: str) -> str:
    """Return ``text`` when it is a ``sha256:<64 lowercase hex>`` digest, raise ImageReferenceError otherwise.

    Called before a digest is ever used in a path or URL, so ``sha256:../../x`` can't reach either.
    """
    if not isinstance(text, str) or not _is_sha256_digest(text):
        shown = text if isinstance(text, str) and len(text) < 100 else repr(text)[:100]
        if isinstance(text, str) and _is_any_digest(text) and not text.startswith("sha256:"):
            raise ImageReferenceError(
                f"digest {shown!s}: unsupported algorithm; only sha256 digests are supported."
            )
        raise ImageReferenceError(
            f"digest {shown!s}: not a valid digest; expected 'sha256:' followed by 64 lowercase hex characters."
        )
    return text


class Reference(Record):
    """A normalised image reference.

    ``domain`` is what users see (``docker.io``), ``registry`` the host the API is reached on
    (``registry-1.docker.io`` for Docker Hub), ``repository`` the path (``library/alpine``).
    """

    FROZEN = True

    domain: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def registry(self) -> str:
        return DOCKER_HUB_REGISTRY if self.domain == DOCKER_HUB_DOMAIN else self.domain

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def repo_name(self) -> str:
        """``domain/repository`` without tag or digest."""
        return f"{self.domain}/{self.repository}"

    @property
    def name(self) -> str:
        """The full normalised name, e.g. ``docker.io/library/alpine:latest``."""
        text = self.repo_name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``alpine:latest``, ``127.0.0.1:5000/app:1``."""
        repo = self.repository
        if self.domain == DOCKER_HUB_DOMAIN:
            if repo.startswith("library/") and repo.count("/") == 1:
                repo = repo[len("library/"):]
        else:
            repo = f"{self.domain}/{repo}"
        if self.tag:
            repo += f":{self.tag}"
        if self.digest:
            repo += f"@{self.digest}"
        return repo

    def with_tag(self, tag: str) -> Reference:
        if not _is_tag(tag):
            raise ImageReferenceError(f"tag {tag!r}: invalid; tags are 1-128 of [A-Za-z0-9_.-], not starting with . or -.")
        return Reference(self.domain, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.repository, self.tag, validate_digest(digest))

    def __str__(self) -> str:
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    # distribution/reference: the first component is a registry host when it looks like one (has '.' or ':',
    # is 'localhost', or has upper case letters, which repository paths never have).
    if sep and (("." in first or ":" in first) or first == "localhost" or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_HUB_DOMAIN, name
    if domain in _HUB_ALIASES:
        domain = DOCKER_HUB_DOMAIN
    if domain == DOCKER_HUB_DOMAIN and "/" not in remainder:
        remainder = f"library/{remainder}"
    return domain, remainder


def parse_reference(text: str, default_tag: str = "latest") -> Reference:
    """Parse and normalise an image reference; raise ImageReferenceError with the reason when invalid."""
    if not isinstance(text, str) or not text.strip():
        raise ImageReferenceError("image reference is empty; give a name like 'alpine' or 'registry:5000/team/app:1'.")
    original = text
    text = text.strip()
    if len(text) > 1024:
        raise ImageReferenceError("image reference is longer than 1024 characters.")
    if any(c.isspace() for c in text):
        raise ImageReferenceError(f"image reference {original!r}: contains whitespace.")
    if "://" in text:
        raise ImageReferenceError(
            f"image reference {original!r}: drop the URL scheme; write 'registry.example.com/ns/app:tag'."
        )

    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        validate_digest(digest)

    # A tag is the part after the last ':' when that ':' comes after the last '/' (else it is a port).
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _is_tag(tag):
            raise ImageReferenceError(
                f"image reference {original!r}: invalid tag {tag!r}; tags are 1-128 of [A-Za-z0-9_.-], "
                "not starting with '.' or '-'."
            )

    domain, repository = _split_domain(text)
    if not _is_domain(domain):
        raise ImageReferenceError(f"image reference {original!r}: invalid registry host {domain!r}.")
    port_digits = _split_port(domain)[1]  # type: ignore[index]  # a valid domain splits
    if port_digits:
        port = int(port_digits)
        if not 0 < port < 65536:
            raise ImageReferenceError(f"image reference {original!r}: port {port} out of range.")
    if not repository:
        raise ImageReferenceError(f"image reference {original!r}: missing repository name.")
    if repository.lower() != repository:
        raise ImageReferenceError(
            f"image reference {original!r}: repository names must be lowercase ({repository!r})."
        )
    if not _is_path(repository):
        raise ImageReferenceError(
            f"image reference {original!r}: invalid repository {repository!r}; use lowercase letters, digits and "
            "separators ('.', '_', '__', '-') between path components."
        )
    if len(f"{domain}/{repository}") > _MAX_NAME:
        raise ImageReferenceError(f"image reference {original!r}: name longer than {_MAX_NAME} characters.")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain, repository, tag, digest)


def is_loopback_host(registry: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``, with or without a port (Docker's insecure default)."""
    host = registry
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost" or host == "::1":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)


class Platform(Record):
    FROZEN = True
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def as_dict(self) -> dict:
        data = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            data["variant"] = self.variant
        return data


_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


def host_platform() -> Platform:
    arch, variant = _MACHINE_TO_ARCH.get(os.uname().machine, (os.uname().machine, None))
    return Platform("linux", arch, variant)


def parse_platform(text: str | None) -> Platform:
    """``linux/amd64``, ``linux/arm/v7``, ``arm64`` → Platform; None → the host's."""
    if not text:
        return host_platform()
    parts = text.strip().split("/")
    if len(parts) == 1:
        parts = ["linux"] + parts
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageReferenceError(f"platform {text!r}: expected os/arch[/variant], e.g. 'linux/amd64' or 'linux/arm/v7'.")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _normal_variant(arch: str, variant: str | None) -> str | None:
    # containerd's platforms.Normalize: arm64 defaults to v8, arm to v7; amd64 has no variant that matters.
    if arch == "arm64":
        return variant or "v8"
    if arch == "arm":
        return variant or "v7"
    return variant


def platform_matches(want: Platform, have: dict) -> bool:
    if have.get("os") != want.os or have.get("architecture") != want.architecture:
        return False
    if want.architecture in ("arm", "arm64"):
        return _normal_variant(want.architecture, want.variant) == _normal_variant(
            have["architecture"], have.get("variant"))
    return not want.variant or have.get("variant") in (None, want.variant)
