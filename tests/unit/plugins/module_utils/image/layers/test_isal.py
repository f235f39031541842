# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the ISA-L inflater (isal.py, decompress._IsalGzipReader): the same bytes and the same errors as the
zlib reader on the same inputs (real file trees, generated multi-member streams cut at every byte, damaged
streams), the struct layout against ISA-L's own header, the fallback to zlib when the library is missing, wrong
or fails its self-test, DOCKERLESS_INFLATE, and the GIL released while ISA-L inflates.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import re
import subprocess
import tarfile
import threading
import time
import zlib

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import decompress, isal
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import (
    CHUNK,
    MEDIA_TYPE_TAR_GZIP,
    decompressing_reader,
    layer_reader,
)

HEADER_H = "/usr/include/isa-l/igzip_lib.h"  # libisal-dev (scripts/install-deps.sh)


@pytest.fixture(scope="module")
def lib():
    lib, why = decompress.isal_inflater()
    assert lib is not None, f"ISA-L is not usable here ({why}): scripts/install-deps.sh installs libisal2"
    return lib


class Pieces:
    """A raw blob stream whose reads return at most ``sizes[i % len(sizes)]`` bytes, the i-th time."""

    def __init__(self, data: bytes, sizes=(CHUNK,)):
        self._data = data
        self._pos = 0
        self._sizes = sizes
        self._i = 0

    def read(self, n=-1):
        size = self._sizes[self._i % len(self._sizes)]
        self._i += 1
        if n is not None and n >= 0:
            size = min(size, n)
        piece = self._data[self._pos:self._pos + size]
        self._pos += len(piece)
        return piece


def read_all(reader, sizes=(CHUNK,)):
    """(everything read, the UnpackError text or None); ``sizes`` cycles the read sizes."""
    out = []
    i = 0
    try:
        while True:
            chunk = reader.read(sizes[i % len(sizes)])
            i += 1
            if not chunk:
                return b"".join(out), None
            assert len(chunk) <= sizes[(i - 1) % len(sizes)]
            out.append(chunk)
    except UnpackError as exc:
        return b"".join(out), str(exc)


def both(blob: bytes, lib, raw_sizes=(CHUNK,), sizes=(CHUNK,)):
    """(zlib's (output, error), ISA-L's (output, error)) for ``blob``."""
    z = read_all(decompress._GzipReader(Pieces(blob, raw_sizes), "layer (test)"), sizes)
    i = read_all(decompress._IsalGzipReader(Pieces(blob, raw_sizes), "layer (test)", lib), sizes)
    return z, i


def deflate(data: bytes, level: int = 6, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    return c.compress(data) + c.flush()


def member(data: bytes, body: bytes | None = None, header: bytes = b"\x1f\x8b\x08\x00\0\0\0\0\0\xff",
           crc: int | None = None, isize: int | None = None) -> bytes:
    """One gzip member by hand: ``header``, ``body`` (deflate of ``data`` by default) and the trailer."""
    body = deflate(data) if body is None else body
    crc = zlib.crc32(data) if crc is None else crc
    isize = len(data) & 0xFFFFFFFF if isize is None else isize
    return header + body + crc.to_bytes(4, "little") + isize.to_bytes(4, "little")


def full_header(flags: int, extra: bytes = b"AP\x02\0hi", name: bytes = b"layer.tar", comment: bytes = b"c") -> bytes:
    """A header with the optional fields ``flags`` asks for (FEXTRA 4, FNAME 8, FCOMMENT 16, FHCRC 2)."""
    head = b"\x1f\x8b\x08" + bytes([flags]) + b"\x01\x02\x03\x04\x00\x03"
    if flags & 4:
        head += len(extra).to_bytes(2, "little") + extra
    if flags & 8:
        head += name + b"\0"
    if flags & 16:
        head += comment + b"\0"
    if flags & 2:
        head += (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little")
    return head


def text(size: int, seed: int = 1) -> bytes:
    """Text-like bytes (about 3:1 with gzip -6, as layers are), with matches reaching far back in the window."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randrange(2, 9)).hex().encode() for _word in range(3000)]
    return b" ".join(rng.choice(words) for _word in range(size // 6))[:size]


# -- the binding ------------------------------------------------------------------------------------------------


def test_struct_layout_matches_igzip_lib_h(tmp_path, lib):
    """Every offset of struct inflate_state and its size, from the C compiler reading ISA-L's own header, equal
    the ctypes layout isal.py uses."""
    fields = [name for name, _ctype in lib.State._fields_]
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <isa-l/igzip_lib.h>\nint main(void) {\n"
        '  printf("sizeof %zu\\n", sizeof(struct inflate_state));\n'
        + "".join(f'  printf("{f} %zu\\n", offsetof(struct inflate_state, {f}));\n' for f in fields)
        + "  return 0;\n}\n"
    )
    assert os.path.exists(HEADER_H), "libisal-dev is not installed (scripts/install-deps.sh installs it)"
    subprocess.run(["gcc", "-o", str(tmp_path / "layout"), str(src)], check=True)
    out = subprocess.run([str(tmp_path / "layout")], stdout=subprocess.PIPE, check=True, text=True).stdout
    c_layout = dict((k, int(v)) for k, v in (line.split() for line in out.splitlines()))
    ours = {"sizeof": lib.ctypes.sizeof(lib.State)}
    ours.update((f, getattr(lib.State, f).offset) for f in fields)
    assert ours == c_layout


def test_library_is_opened_by_soname_without_a_subprocess(monkeypatch):
    """ctypes.util.find_library runs ldconfig or gcc: the loader opens libisal.so.2 itself."""
    import ctypes.util

    def refuse(*_args):
        raise AssertionError("find_library called")

    monkeypatch.setattr(ctypes.util, "find_library", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(isal, "_LOADED", {})
    assert isal.load() is not None


# -- the same bytes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tree", ["/usr/lib/python3.11/email", "/usr/share/perl5", "/usr/lib/x86_64-linux-gnu/perl-base"])
def test_same_bytes_as_zlib_on_real_trees(tmp_path, lib, tree):
    """A layer as builders make it (tar of a real tree, gzip -6 by Python's gzip), and the same tar as two
    members by the gzip command (``cat a.gz b.gz``, as some image tools write): both inflaters give the tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(tree, arcname="root", filter=lambda ti: ti if ti.isfile() or ti.isdir() or ti.issym() else None)
    data = buf.getvalue()
    assert len(data) > 500_000
    half = len(data) // 2
    by_command = b"".join(
        subprocess.run(["gzip", "-c", "-n", "-9"], input=part, stdout=subprocess.PIPE, check=True).stdout
        for part in (data[:half], data[half:])
    )
    for blob in (gzip.compress(data, 6), by_command):
        (z_out, z_err), (i_out, i_err) = both(blob, lib)
        assert z_err is None and i_err is None
        assert z_out == data and i_out == data


STREAMS = {
    "one member": member,
    "several members": lambda d: member(d[:50000]) + member(d[50000:120000]) + member(d[120000:]),
    "empty members": lambda d: member(b"") + member(d) + member(b"") + member(b""),
    "only an empty member": lambda d: member(b""),
    "zero padding": lambda d: member(d[:1000]) + bytes(5) + member(d[1000:]) + bytes(3000),
    "stored blocks": lambda d: member(d, deflate(d, 0)),
    "fixed Huffman codes": lambda d: member(d, deflate(d, 9, zlib.Z_FIXED)),
    "level 9 and level 1": lambda d: member(d[:70000], deflate(d[:70000], 9)) + member(d[70000:], deflate(d[70000:], 1)),
    "every header field": lambda d: member(d[:3], header=full_header(2 | 4 | 8 | 16)) + member(d[3:], header=full_header(8)),
    "long name and extra": lambda d: member(d, header=full_header(2 | 4 | 8, extra=bytes(60000), name=b"n" * 70000)),
    "incompressible": member,
}


def _content(name):
    return os.urandom(1000) + text(100) if name == "incompressible" else text(200000)


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize(
    "raw_sizes, sizes",
    [
        ((CHUNK,), (CHUNK,)),
        ((1, 2, 3, 5, 8), (CHUNK,)),  # tiny reads from the registry: headers and trailers cut everywhere
        ((65536,), (1, 7, 4096)),  # tiny reads of the output
        ((777, 4093), (65536, 3)),
    ],
)
def test_generated_streams_give_the_same_bytes(lib, name, raw_sizes, sizes):
    content = _content(name)
    blob = STREAMS[name](content)
    if name == "only an empty member":
        content = b""
    (z_out, z_err), (i_out, i_err) = both(blob, lib, raw_sizes, sizes)
    assert (z_err, i_err) == (None, None)
    assert z_out == content and i_out == content


def test_every_cut_between_two_reads(lib):
    """A two-member stream with every header field, handed over as two reads cut at each byte in turn: a member
    boundary, a header or a trailer inside any read, and the deflate data cut anywhere."""
    content = text(3000)
    blob = member(content[:1000], header=full_header(2 | 4 | 8 | 16)) + bytes(2) + member(content[1000:])
    for cut in range(len(blob) + 1):
        raw = Pieces(blob, (cut or len(blob), len(blob)))
        out, err = read_all(decompress._IsalGzipReader(raw, "layer (test)", lib))
        assert (out, err) == (content, None), cut


def test_a_read_of_nothing_returns_nothing(lib):
    blob = member(b"abc")
    reader = decompress._IsalGzipReader(io.BytesIO(blob), "layer (test)", lib)
    assert reader.read(0) == b"" and reader.read(2) == b"ab" and reader.read(0) == b"" and reader.read() == b"c"


def test_a_read_spanning_a_member_boundary_returns_at_most_the_member(lib):
    """The ISA-L reader fills a read up to its size; at a member's end it returns what it has (like zlib's)."""
    content = text(3 << 20)
    blob = member(content[:1_500_001]) + member(content[1_500_001:]) + bytes(300)
    reader = decompress._IsalGzipReader(io.BytesIO(blob), "layer (test)", lib)
    chunks = list(iter(lambda: reader.read(1 << 20), b""))
    assert b"".join(chunks) == content
    assert [len(c) for c in chunks] == [1 << 20, 1_500_001 - (1 << 20), 1 << 20, len(content) - 1_500_001 - (1 << 20)]
    assert reader.compressed_bytes == len(blob)


# -- the same errors ----------------------------------------------------------------------------------------------


def _flip(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x55]) + blob[at + 1:]


GOOD = member(text(20000)) + member(text(5000, seed=2), header=full_header(2 | 4 | 8 | 16))
FIRST = len(member(text(20000)))
BAD = [
    (b"", "truncated"),
    (b"\x1f", "truncated"),
    (bytes(1024), r"corrupt \(incorrect header check\)"),  # a plain tar declared as gzip
    (b"\x1f\x8c\x08\x00" + bytes(20), r"corrupt \(incorrect header check\)"),
    (b"\x1f\x8b\x07\x00", r"corrupt \(unknown compression method\)"),  # checked as soon as the 4th byte is there
    (b"\x1f\x8b\x08\x20" + bytes(20), r"corrupt \(unknown header flags set\)"),
    (member(b"x", header=full_header(2)[:-2] + b"\0\0"), r"corrupt \(header crc mismatch\)"),
    (b"\x1f\x8b\x08\x00" + b"\xff" * 40, r"corrupt \(invalid deflate data\)"),
    (member(b"abc", body=b"\x07" + bytes(10)), r"corrupt \(invalid deflate data\)"),  # reserved block type
    (member(b"a" * 300, body=deflate(b"a" * 300)[:1] + b"\xff" * 6), r"corrupt \(invalid deflate data\)"),
    (member(text(100), crc=1), r"corrupt \(incorrect data check\)"),
    (member(text(100), isize=99), r"corrupt \(incorrect length check\)"),
    (member(text(100), crc=1)[:-4], r"corrupt \(incorrect data check\)"),  # CRC checked before ISIZE arrives
    (GOOD[:-1], "truncated"),
    (GOOD[:FIRST + 5], "truncated"),
    (GOOD + b"garbage", "not gzip"),
    (GOOD + bytes(7) + b"\x01", "not gzip"),
    (GOOD + b"\x1f", "not gzip"),
    (GOOD + b"\x1f\x8b", "truncated"),
    (GOOD + b"\x1f\x8b\x09\x00", r"corrupt \(unknown compression method\)"),
    (_flip(GOOD, 3), r"corrupt \(unknown header flags set\)"),
    (_flip(GOOD, FIRST + 12), r"corrupt \(header crc mismatch\)"),
    (_flip(GOOD, 3000), r"corrupt \((invalid deflate data|incorrect data check)\)"),
    (_flip(GOOD, FIRST - 3), r"corrupt \(incorrect length check\)"),
]


@pytest.mark.parametrize("blob, match", BAD)
@pytest.mark.parametrize("raw_sizes", [(CHUNK,), (1,), (3, 700)])
def test_damaged_streams_fail_the_same_way(lib, blob, match, raw_sizes):
    """Both inflaters fail with the same message (the kind, and zlib's words for what is wrong)."""
    (_z_out, z_err), (_i_out, i_err) = both(blob, lib, raw_sizes)
    assert z_err is not None and re.search(match, z_err), z_err
    assert i_err == z_err


def test_every_truncation_and_random_damage_fail_the_same_way(lib):
    first = member(text(4000))
    blob = first + member(text(300, seed=3), header=full_header(2 | 8))
    for cut in range(len(blob)):
        (_z, z_err), (_i, i_err) = both(blob[:cut], lib)
        assert i_err == z_err, cut
        if cut == len(first):
            assert z_err is None
        elif cut == len(first) + 1:  # one byte after a member cannot start another
            assert "not gzip" in z_err
        else:
            assert "truncated" in z_err, cut
    rng = random.Random(21)
    kinds = set()
    for _case in range(600):
        damaged = bytearray(blob)
        for _bit in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        (z_out, z_err), (i_out, i_err) = both(bytes(damaged), lib, (rng.choice((CHUNK, 1, 97)),))
        assert i_err == z_err, bytes(damaged).hex()
        if z_err is None:
            assert i_out == z_out
        kinds.add(re.sub(r"^layer \(test\): (.*?)\. .*", r"\1", z_err or "ok"))
    # The damage reached headers, data and trailers.
    assert {"gzip data is corrupt (invalid deflate data)", "gzip data is corrupt (incorrect data check)"} < kinds


# -- choosing the inflater ---------------------------------------------------------------------------------------


def test_readers_say_which_inflater_runs(lib, monkeypatch):
    blob = gzip.compress(b"x" * 100)
    for env, backend in (("zlib", "zlib"), ("isal", "isal"), ("", "isal"), ("auto", "isal"), (" ZLIB ", "zlib")):
        monkeypatch.setenv("DOCKERLESS_INFLATE", env)
        assert decompressing_reader(io.BytesIO(blob), MEDIA_TYPE_TAR_GZIP).backend == backend
        reader = layer_reader(io.BytesIO(blob), MEDIA_TYPE_TAR_GZIP)
        try:
            assert reader.backend == backend and reader.read() == b"x" * 100
        finally:
            reader.close()
        assert backend in decompress.inflaters_used()
    monkeypatch.setenv("DOCKERLESS_INFLATE", "fast")
    with pytest.raises(UnpackError, match="DOCKERLESS_INFLATE='fast' is not a choice: use auto"):
        decompressing_reader(io.BytesIO(blob), MEDIA_TYPE_TAR_GZIP)


def _fake_isal(tmp_path, body: str) -> str:
    """A shared library with ISA-L's three symbols doing ``body`` in isal_inflate (gcc, as the layout test)."""
    src = tmp_path / "fake.c"
    src.write_text(
        "#include <stdint.h>\n#include <string.h>\n"
        "struct st { uint8_t *next_out; uint32_t avail_out, total_out; uint8_t *next_in; uint64_t read_in;"
        " uint32_t avail_in; };\n"
        "void isal_inflate_init(void *s) { (void)s; }\nvoid isal_inflate_reset(void *s) { (void)s; }\n"
        "int isal_inflate(struct st *s) {" + body + "}\n"
    )
    lib = tmp_path / "libfakeisal.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return str(lib)


@pytest.mark.parametrize(
    "library, why",
    [
        ("/nonexistent/libisal.so.2", "cannot be loaded or lacks isal_inflate"),
        ("libz.so.1", "cannot be loaded or lacks isal_inflate"),  # a real library without ISA-L's symbols
        # Copies its input to its output and never ends a member: ISA-L of another layout would look like this.
        ("copy", "self-test failed: .*truncated"),
        # Consumes nothing and writes nothing.
        ("stall", "self-test failed"),
        ("error", "self-test failed: .*corrupt"),
    ],
)
def test_a_missing_or_wrong_library_means_zlib(tmp_path, monkeypatch, library, why):
    bodies = {
        "copy": "uint32_t n = s->avail_in < s->avail_out ? s->avail_in : s->avail_out;"
                " memcpy(s->next_out, s->next_in, n); s->next_in += n; s->avail_in -= n; s->next_out += n;"
                " s->avail_out -= n; return 0;",
        "stall": "return 0;",
        "error": "return -2;",
    }
    if library in bodies:
        library = _fake_isal(tmp_path, bodies[library])
    lib, reason = decompress.isal_inflater(library)
    assert lib is None and re.search(why, reason), reason
    # The whole engine then inflates with zlib, and DOCKERLESS_INFLATE=isal says why it cannot.
    monkeypatch.setattr(isal, "LIBISAL", library)
    monkeypatch.delenv("DOCKERLESS_INFLATE", raising=False)
    data = text(100000)
    reader = decompressing_reader(io.BytesIO(gzip.compress(data)), MEDIA_TYPE_TAR_GZIP)
    assert reader.backend == "zlib" and reader.read() == data
    monkeypatch.setenv("DOCKERLESS_INFLATE", "isal")
    with pytest.raises(UnpackError, match=r"DOCKERLESS_INFLATE=isal but ISA-L cannot be used \(.*\)\. Install libisal2"):
        decompressing_reader(io.BytesIO(b""), MEDIA_TYPE_TAR_GZIP)


def test_the_self_test_runs_once_per_process(lib, monkeypatch):
    calls = []
    monkeypatch.setattr(decompress, "_isal_self_test", calls.append)  # None: passed
    monkeypatch.setattr(decompress, "_ISAL_CHECKED", {})
    for _i in range(3):
        assert decompress.isal_inflater()[0] is lib
    assert len(calls) == 1


def test_the_self_test_stream_covers_the_cases():
    """Several members with an empty one, a header with every field, padding, and a first member longer than the
    32 KiB window; zlib reads it back to its content."""
    stream, content = decompress._self_test_stream()
    assert len(content) > 3 * 32768
    assert gzip.decompress(stream) == content
    assert stream.count(b"\x1f\x8b\x08") >= 4


# -- the GIL ------------------------------------------------------------------------------------------------------


def test_isal_inflate_releases_the_gil(lib):
    """While one isal_inflate call runs in a thread (here about 0.1-1 s), Python code runs in another: the
    extractor overlaps with the inflating thread."""
    data = bytes(100 << 20)  # zeros: one long call, output-bound
    body = deflate(data, 1)
    inflater = isal.Inflater(lib)
    out = isal.output_buffer(lib, len(data))
    span = {}

    def work():
        span["start"] = time.perf_counter()
        _data, _pos, produced, _done = inflater.inflate(body, 0, lib.ctypes.addressof(out), len(data))
        span["end"] = time.perf_counter()
        span["produced"] = produced

    thread = threading.Thread(target=work)
    ticks = []
    thread.start()
    while thread.is_alive():
        ticks.append(time.perf_counter())
    thread.join()
    assert span["produced"] == len(data)
    start, end = span["start"], span["end"]
    # The middle of the call, away from the GIL hand-overs at its start and end.
    middle = [t for t in ticks if start + (end - start) * 0.3 < t < end - (end - start) * 0.3]
    assert end - start > 0.02
    assert len(middle) > 100, (len(ticks), end - start)
