# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""runtime_record: the dataclass subset the runtime's records use, without importing dataclasses."""

from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.records import (
    Factory,
    Record,
    json_dumps,
    json_loads,
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


JSON_VALUES = [
    {"a": [1, 2.5, None, True, False, "\u00e9\u2028\n\"\\"], "b": {"z": 1, "a": -0.0, "m": 10 ** 30}},
    [], {}, 0, -7, 1e300, 1.5e-7, None, True, [[[]]], {"\ud800": "\udfff"}, {"k": float("inf")}, [float("nan")],
    {"nested": {"list": [{"x": "y"}] * 3}}, {1: "int key", None: "null key", 2.5: "float key", False: "bool key"},
]


@pytest.mark.parametrize("value", JSON_VALUES)
@pytest.mark.parametrize("sort_keys", [False, True])
def test_json_dumps_is_json_dumps(value, sort_keys):
    # Mixed key types can't be sorted: then both raise the same TypeError.
    assert (_outcome(lambda v: json_dumps(v, sort_keys=sort_keys), value)
            == _outcome(lambda v: json.dumps(v, sort_keys=sort_keys), value))
    if not sort_keys:
        assert json_dumps(value) == json.dumps(value)


JSON_OPTIONS = [
    {"indent": 2, "sort_keys": True},                                   # the store's index.json
    {"separators": (",", ":"), "ensure_ascii": False, "sort_keys": True},  # image_build's canonical JSON
    {"separators": (",", ":")},                                         # oci.docker_to_oci
    {"indent": 0}, {"indent": 4, "ensure_ascii": False}, {"indent": 2, "separators": (", ", " = ")},
    {"indent": "\t"}, {"indent": -1}, {"ensure_ascii": False},
]


@pytest.mark.parametrize("value", JSON_VALUES + ["a string", "caf\u00e9", ("a", ("b",), {"c": ()}),
                                                 {"x": [{"y": [1, {}, []]}, {"z": None}]}])
@pytest.mark.parametrize("options", JSON_OPTIONS)
def test_json_dumps_with_options_is_json_dumps(value, options):
    assert _outcome(lambda v: json_dumps(v, **options), value) == _outcome(lambda v: json.dumps(v, **options), value)


@pytest.mark.parametrize("bad", [{1j: 1}, [object()], {(1, 2): 3}, [b"bytes"], {"s": {1, 2}}, {"a": [{"b": b"x"}]}])
def test_indented_json_dumps_fails_like_json_dumps(bad):
    assert (_outcome(lambda v: json_dumps(v, indent=2), bad) == _outcome(lambda v: json.dumps(v, indent=2), bad))


def test_indented_json_dumps_detects_cycles_and_allows_shared_values_like_json_dumps():
    loop: list = []
    loop.append({"again": loop})
    assert _outcome(lambda v: json_dumps(v, indent=2), loop) == _outcome(lambda v: json.dumps(v, indent=2), loop)
    assert "Circular reference" in _outcome(lambda v: json_dumps(v, indent=2), loop)[1]
    shared = {"k": [1]}
    assert json_dumps([shared, shared, [shared]], indent=2) == json.dumps([shared, shared, [shared]], indent=2)


@pytest.mark.parametrize("value", JSON_VALUES + ["a string", "caf\u00e9"])
def test_json_loads_is_json_loads(value):
    text = json.dumps(value)
    for data in (text, " \n\t" + text + "\r\n ", text.encode(), bytearray(text.encode()),
                 text.encode("utf-16"), text.encode("utf-32-le")):
        assert repr(json_loads(data)) == repr(json.loads(data))


def _outcome(fn, arg):
    try:
        return ("ok", repr(fn(arg)))
    except Exception as exc:  # noqa: BLE001 - the exact exception is what is compared
        return (type(exc), str(exc), getattr(exc, "pos", None))


@pytest.mark.parametrize("bad", ["", "   ", "{", "[1,]", "1 2", "{\"a\":1}x", "NaNx", "[1, 2", "\"\x01\"", "tru",
                                 "\ufeff{}", b"\xef\xbb\xbf{}", b"\xff\xfe", b"{\"a\": \"\xff\"}", "{'a': 1}",
                                 '{"a" 1}', "[1e5.3]", "\"\\ud800\"", "-"])
def test_json_loads_fails_like_json_loads(bad):
    assert _outcome(json_loads, bad) == _outcome(json.loads, bad)


@pytest.mark.parametrize("bad", [{1j: 1}, [object()], {(1, 2): 3}, [b"bytes"], {"s": {1, 2}}])
def test_json_dumps_fails_like_json_dumps(bad):
    assert _outcome(json_dumps, bad) == _outcome(json.dumps, bad)


def test_json_dumps_detects_cycles_like_json_dumps():
    loop: dict = {}
    loop["self"] = loop
    assert _outcome(json_dumps, loop) == _outcome(json.dumps, loop)
    assert "Circular reference" in _outcome(json_dumps, loop)[1]
