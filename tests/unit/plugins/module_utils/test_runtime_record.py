# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""runtime_record: the dataclass subset the runtime's records use, without importing dataclasses."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.runtime_record import (
    Factory,
    Record,
    sha256_hex,
)


class Point(Record):
    x: int
    y: int = 0
    tags: list = Factory(list)


class Frozen(Record):
    FROZEN = True
    name: str
    items: tuple = ()


class Child(Point):
    z: int = 5


def test_fields_defaults_and_factories():
    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 0, [])
    q = Point(x=1)
    p.tags.append("a")
    assert q.tags == []                       # a new list per record
    assert Point.field_names() == ("x", "y", "tags")
    assert Child.field_names() == ("x", "y", "tags", "z")
    assert Point(1, 2, ["t"]).as_dict() == {"x": 1, "y": 2, "tags": ["t"]}


def test_construction_errors_name_the_field():
    with pytest.raises(TypeError, match="missing field 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected field 'w'"):
        Point(1, w=2)
    with pytest.raises(TypeError, match="field 'x' twice"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="takes 3 fields"):
        Point(1, 2, [], 4)
    with pytest.raises(TypeError, match="without a default follows"):
        class Bad(Record):
            a: int = 1
            b: int


def test_equality_repr_and_deep_copy():
    a, b = Point(1, 2, [{"k": [1]}]), Point(1, 2, [{"k": [1]}])
    assert a == b and a != Point(1, 3) and a != Child(1, 2, [{"k": [1]}])
    assert repr(a) == "Point(x=1, y=2, tags=[{'k': [1]}])"
    d = a.as_dict()
    d["tags"][0]["k"].append(2)
    assert a.tags == [{"k": [1]}]             # as_dict copies, like dataclasses.asdict
    with pytest.raises(TypeError):
        hash(a)


def test_frozen_records_refuse_assignment_and_hash():
    f = Frozen("n", ("a",))
    with pytest.raises(AttributeError, match="frozen"):
        f.name = "m"
    with pytest.raises(AttributeError, match="frozen"):
        del f.name
    assert hash(f) == hash(Frozen("n", ("a",)))
    assert f.as_dict() == {"name": "n", "items": ("a",)}


def test_sha256_hex_matches_hashlib():
    for data in (b"", b"abc", bytes(range(256)) * 1000):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
