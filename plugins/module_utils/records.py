# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dataclass-like records for the container start path, without importing ``dataclasses``.

``import dataclasses`` brings inspect, ast, dis, tokenize and linecache; with the per-class code generation of
``@dataclass`` that was about a fifth of the CPU time of a whole container start of ``/bin/true`` (measured on
the start path). The runtime's records (ContainerSpec, RunResult, seccomp.Filter, …) derive from
:class:`Record` instead and keep what they used of dataclasses:

* fields are the class's annotations, in order (base classes first); a class attribute is the default, and
  ``Factory(callable)`` a default made per instance (``field(default_factory=…)``);
* construction by keyword or position, a TypeError for a missing or unknown field;
* ``==`` (same class, equal fields), ``repr``, ``as_dict()`` (a deep copy like ``dataclasses.asdict``),
  ``field_names()``; ``FROZEN = True`` refuses assignment after ``__init__`` (``frozen=True``); the fields named in
  ``_NO_REPR`` are left out of ``repr`` (``field(repr=False)``: secrets).
"""

from __future__ import annotations

_MISSING = object()


class Factory:
    """A default made by calling ``make()`` for each new record (``dataclasses.field(default_factory=make)``)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class Record:
    """Base of the runtime's records; see the module docstring."""

    FROZEN = False
    _NO_REPR: tuple = ()  # fields left out of repr (``field(repr=False)``: passwords, tokens)
    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        defaults: dict = {}
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if name.startswith("_") or name.isupper():
                    continue                      # class-level settings, not fields
                if name not in names:
                    names.append(name)
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        seen_default = False
        for name in names:
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
        cls._fields = tuple(names)
        cls._defaults = defaults

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} fields, {len(args)} were given")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{type(self).__name__}() got an unexpected field {name!r}")
            if name in values:
                raise TypeError(f"{type(self).__name__}() got field {name!r} twice")
            values[name] = value
        setter = object.__setattr__
        for name in fields:
            if name in values:
                setter(self, name, values[name])
                continue
            default = self._defaults.get(name, _MISSING)
            if default is _MISSING:
                raise TypeError(f"{type(self).__name__}() is missing field {name!r}")
            setter(self, name, default.make() if isinstance(default, Factory) else default)

    def __setattr__(self, name, value) -> None:
        if self.FROZEN:
            raise AttributeError(f"{type(self).__name__} is frozen: can't set {name!r}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name) -> None:
        if self.FROZEN:
            raise AttributeError(f"{type(self).__name__} is frozen: can't delete {name!r}")
        object.__delattr__(self, name)

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self):
        if not self.FROZEN:
            raise TypeError(f"unhashable type: {type(self).__name__!r}")
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields if name not in self._NO_REPR)
        return f"{type(self).__name__}({inner})"

    @classmethod
    def field_names(cls) -> tuple:
        return cls._fields

    def as_dict(self) -> dict:
        """Fields as a dict, records, lists, tuples and dicts copied recursively (``dataclasses.asdict``)."""
        return {name: _plain(getattr(self, name)) for name in self._fields}


def _plain(value):
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, (str, int, float, bool, bytes, type(None))):
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    import copy

    return copy.deepcopy(value)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``. CPython's built-in SHA-256 when it has one: ``import hashlib`` loads OpenSSL's
    libcrypto, about a tenth of a container start's CPU time, for the two small documents and the cache key
    the start path hashes. OpenSSL's once :func:`new_sha256` has loaded it. Same digest either way; hashlib where
    the built-in module is absent."""
    global _SHA256
    if _SHA256_STREAM is not None:  # libcrypto is loaded already (new_sha256): no second module to import
        return _SHA256_STREAM(data).hexdigest()
    if _SHA256 is None:
        try:
            from _sha2 import sha256 as impl  # Python 3.12+
        except ImportError:
            try:
                from _sha256 import sha256 as impl  # Python 3.9-3.11
            except ImportError:
                from hashlib import sha256 as impl
        _SHA256 = impl
    return _SHA256(data).hexdigest()


_SHA256 = None


def new_sha256():
    """A SHA-256 object for large streams (layers, blobs): OpenSSL's, as ``hashlib.sha256`` gives it (about six
    times the built-in module's speed where the CPU has SHA instructions), taken from ``_hashlib`` directly:
    ``import hashlib`` also imports ``_blake2`` and builds a constructor for every algorithm, which a short build
    pays for and never uses. hashlib where ``_hashlib`` is missing or refuses."""
    global _SHA256_STREAM
    if _SHA256_STREAM is None:
        try:
            from _hashlib import openssl_sha256 as impl

            impl()
        except (ImportError, AttributeError, ValueError):
            from hashlib import sha256 as impl
        _SHA256_STREAM = impl
    return _SHA256_STREAM()


_SHA256_STREAM = None


# -- JSON without the json package ------------------------------------------------------------------------------
# ``import json`` brings ``re`` (for the decoder's whitespace pattern), and ``re`` brings enum, functools and
# collections: about as much as the rest of the start path's imports together. The parsing and
# encoding themselves are C code in ``_json``, which json uses too; these two functions call it directly and
# give the same results. Anything but the plain case (an error, a BOM, UTF-16/32 bytes, no ``_json``) is
# handed to the json package itself, so errors are exactly json's.

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}

try:  # made at import: the init uses them after pivot_root, where nothing can be imported any more
    from _json import encode_basestring as _encode_str_utf8
    from _json import encode_basestring_ascii as _encode_str
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - an interpreter without the C accelerator: json does it all
    _make_scanner = _make_encoder = _encode_str = _encode_str_utf8 = None


class _ScanContext:
    """The attributes ``_json.make_scanner`` reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _not_serializable(obj):
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


_SCANNER = _make_scanner(_ScanContext()) if _make_scanner else None


def json_loads(data):
    """``json.loads(data)`` for ``str`` or ``bytes``: same value, same exceptions."""
    text = data
    if isinstance(data, (bytes, bytearray)):
        # json.detect_encoding: UTF-8 unless a BOM or NUL bytes in the first four say otherwise.
        text = None
        if data[:3] != b"\xef\xbb\xbf" and b"\x00" not in data[:4]:
            try:
                text = bytes(data).decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                pass
    if _SCANNER is not None and isinstance(text, str) and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WS))
        try:
            value, end = _SCANNER(text, start)
        except StopIteration:
            end = -1
        if end >= 0 and not text[end:].strip(_WS):
            return value
    import json  # the uncommon case: json's own answer (or its exception)

    return json.loads(data)


def json_dumps(value, sort_keys: bool = False, separators: tuple[str, str] | None = None, ensure_ascii: bool = True,
               indent: int | None = None) -> str:
    """``json.dumps(value, sort_keys=…, separators=…, ensure_ascii=…, indent=…)``: same text, same exceptions.

    With ``indent``, json itself encodes in Python; here the containers are laid out in Python and every scalar
    goes through the C encoder (json writes them the same way). A value this does not lay out as plainly (keys
    that are not strings, a type json would hand to ``default``, a cycle) is given to json."""
    if _make_encoder is not None and not isinstance(value, str):
        if separators is not None:
            item_sep, key_sep = separators
        else:
            item_sep, key_sep = (", ", ": ") if indent is None else (",", ": ")
        encode_str = _encode_str if ensure_ascii else _encode_str_utf8
        encode = _make_encoder({}, _not_serializable, encode_str, None, key_sep, item_sep, bool(sort_keys), False,
                               True)
        if indent is None:
            return "".join(encode(value, 0))
        if isinstance(indent, int) and not isinstance(indent, bool):
            try:
                return _indented(value, encode, encode_str, " " * indent, item_sep, key_sep, bool(sort_keys))
            except _NotPlain:
                pass
    import json

    return json.dumps(value, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii, indent=indent)


class _NotPlain(Exception):
    """A value json_dumps's indented layout leaves to json."""


def _indented(value, encode, encode_str, indent: str, item_sep: str, key_sep: str, sort_keys: bool) -> str:
    """json's indented layout (json.encoder._make_iterencode) of dicts with str keys, lists, tuples and scalars."""
    active: set[int] = set()

    def walk(obj, level: int) -> str:
        if isinstance(obj, (str, int, float)) or obj is None:
            return "".join(encode(obj, 0))
        if isinstance(obj, dict):
            opener, closer = "{", "}"
            if not all(isinstance(key, str) for key in obj):
                raise _NotPlain
            items = sorted(obj.items()) if sort_keys else obj.items()
        elif isinstance(obj, (list, tuple)):
            opener, closer, items = "[", "]", None
        else:
            raise _NotPlain  # json calls default: a TypeError
        if not obj:
            return opener + closer
        if id(obj) in active:
            raise _NotPlain  # json: "Circular reference detected"
        active.add(id(obj))
        newline = "\n" + indent * (level + 1)
        if items is None:
            parts = [walk(v, level + 1) for v in obj]
        else:
            parts = [encode_str(k) + key_sep + walk(v, level + 1) for k, v in items]
        active.discard(id(obj))
        return opener + newline + (item_sep + newline).join(parts) + "\n" + indent * level + closer

    return walk(value, 0)
