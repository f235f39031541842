# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every validator of a name refuses control characters, trailing ones included.

A pattern anchored with ``$`` and checked with ``re.match`` accepts ``"web\\n"`` (``$`` also matches before a
final newline): the name then reaches a cgroup (which the kernel refuses), a path or a URL. Each validator is
given a valid name, which it must accept, and the same name with a control character appended or inserted.
"""
from __future__ import annotations

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import hierarchy, limits
from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    CgroupError,
    ImageReferenceError,
    RuntimeSetupError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image import reference
from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import spec as runtime_spec


def _refuses(error: type[Exception], func):
    """refuses(text): True when ``func`` raises ``error`` for it."""
    def check(text: str) -> bool:
        try:
            func(text)
        except error:
            return True
        return False
    return check


def _predicate(func):
    """refuses(text) of a boolean check."""
    return lambda text: not func(text)


def _hostname(text: str):
    return runtime_spec.build_spec(image_config={}, lower_dirs=["/nonexistent"], command=["true"], hostname=text)


# validator -> (refuses(text) -> bool, a valid name it must accept)
VALIDATORS = {
    "runtime_spec.validate_name (container name)": (_refuses(RuntimeSetupError, runtime_spec.validate_name), "web-1"),
    "runtime_spec.build_spec hostname": (_refuses(RuntimeSetupError, _hostname), "box.local"),
    "runtime_spec.validate_user": (_refuses(RuntimeSetupError, runtime_spec.validate_user), "app:staff"),
    "hierarchy.container_cgroup_path (cgroup name)": (_refuses(CgroupError, hierarchy.container_cgroup_path), "web"),
    "hierarchy.validate_path (cgroup path component)": (_refuses(CgroupError, hierarchy.validate_path), "dockerless/web"),
    "reference tag": (_predicate(reference._is_tag), "v1.2"),
    "reference repository path": (_predicate(reference._is_path),
                                  "team/app"),
    "reference registry host": (_predicate(reference._is_domain),
                                "registry.example.com:5000"),
    "reference.validate_digest": (_refuses(ImageReferenceError, reference.validate_digest), "sha256:" + "a" * 64),
    "Reference.with_tag": (_refuses(ImageReferenceError, reference.parse_reference("app:1").with_tag), "v2"),
    "RegistryClient repository": (_refuses(ImageReferenceError, RegistryClient._check_repository), "team/app"),
    "RegistryClient tag": (_refuses(ImageReferenceError, RegistryClient._check_reference), "v1.2"),
}

CONTROL = ["\n", "\r", "\t", "\0", "\x01", "\x1b", "\x7f", "\r\n", "\v", "\f"]


@pytest.mark.parametrize("validator", sorted(VALIDATORS))
def test_validator_accepts_its_valid_name(validator):
    refuses, valid = VALIDATORS[validator]
    assert not refuses(valid)


@pytest.mark.parametrize("char", CONTROL, ids=repr)
@pytest.mark.parametrize("validator", sorted(VALIDATORS))
def test_validator_refuses_control_characters(validator, char):
    refuses, valid = VALIDATORS[validator]
    cut = max(1, len(valid) // 2)
    shapes = {"trailing": valid + char, "inside": valid[:cut] + char + valid[cut:]}
    accepted = [shape for shape, text in shapes.items() if not refuses(text)]
    assert accepted == [], f"{validator} accepted {[shapes[s] for s in accepted]!r}"


@pytest.mark.parametrize("char", [c for c in CONTROL if not c.isspace()], ids=repr)
def test_image_references_refuse_control_characters(char):
    """parse_reference strips surrounding whitespace (a name pasted with its newline is that name); any other
    control character, at the end or inside, is refused."""
    for text in (f"team/app:1{char}", f"team/a{char}pp:1", f"registry.example.com{char}/app:1",
                 f"app@sha256:{'a' * 64}{char}"):
        with pytest.raises(ImageReferenceError):
            reference.parse_reference(text)


@pytest.mark.parametrize("text", ["app:1\n", "app:1\r\n", "\tapp:1"], ids=repr)
def test_image_references_with_surrounding_whitespace_are_the_clean_name(text):
    assert reference.parse_reference(text).name == "docker.io/library/app:1"


def test_cgroup_lists_match_whole():
    """A kernel-format list is read whole: surrounding whitespace is stripped, a NUL is refused."""
    assert limits.parse_cpu_list("0-3\n") == [0, 1, 2, 3]
    with pytest.raises(CgroupError):
        limits.parse_cpu_list("0,2\0")


@pytest.mark.parametrize("char", CONTROL, ids=repr)
def test_device_numbers_match_whole(char):
    """``8:0\n`` is not taken as the device number 8:0 (it is looked up as a path, and found nowhere)."""
    assert limits._resolve_device("8:0") == "8:0"
    with pytest.raises(CgroupError):
        limits._resolve_device("8:0" + char)
