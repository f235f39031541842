# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of decompress.py: media types, gzip (several members, padding, corruption), zstd (with and without the
command), foreign layers, and the diff_id over many chunks of the prefetching reader. The gzip tests run with
both inflaters (``inflate``: zlib, and ISA-L through isal.py); test_isal.py compares the two directly.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess

import pytest
from test_extract import E, extract, sha, tar_bytes

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import (
    MEDIA_TYPE_DOCKER_GZIP,
    MEDIA_TYPE_TAR,
    MEDIA_TYPE_TAR_GZIP,
    MEDIA_TYPE_TAR_ZSTD,
    decompressing_reader,
)


@pytest.fixture(params=["zlib", "isal"])
def inflate(request, monkeypatch):
    """DOCKERLESS_INFLATE for the test: ``isal`` fails the test if ISA-L cannot be used (never a quiet zlib run)."""
    monkeypatch.setenv("DOCKERLESS_INFLATE", request.param)
    return request.param


@pytest.mark.parametrize(
    "media, compress",
    [
        (MEDIA_TYPE_TAR, lambda b: b),
        (MEDIA_TYPE_TAR_GZIP, lambda b: gzip.compress(b, 6)),
        (MEDIA_TYPE_DOCKER_GZIP, lambda b: gzip.compress(b, 1)),
        (MEDIA_TYPE_TAR_ZSTD, lambda b: subprocess.run(["zstd", "-q", "-c"], input=b, stdout=subprocess.PIPE, check=True).stdout),
        (MEDIA_TYPE_TAR_GZIP + "; charset=binary", gzip.compress),
    ],
)
def test_media_types_and_diff_id(tmp_path, media, compress, inflate):
    data = tar_bytes(E("a/b", data=os.urandom(300000)), E("c", data=b"c" * 5000))
    blob = compress(data)
    res = extract(blob, tmp_path / "root", media)
    assert res.diff_id == sha(data)
    assert res.size == len(data)
    assert (tmp_path / "root/c").read_bytes() == b"c" * 5000


def test_gzip_multi_member_and_zero_padding(tmp_path, inflate):
    data = tar_bytes(E("f", data=os.urandom(100000)), E("g", data=b"g"))
    blob = gzip.compress(data[:40000]) + gzip.compress(data[40000:]) + bytes(700)
    res = extract(blob, tmp_path / "root", MEDIA_TYPE_TAR_GZIP)
    assert res.diff_id == sha(data)
    assert (tmp_path / "root/g").read_bytes() == b"g"


@pytest.mark.parametrize(
    "blob, match",
    [
        (gzip.compress(tar_bytes(E("f", data=b"f"))) + b"garbage", "not gzip"),
        (gzip.compress(tar_bytes(E("f", data=os.urandom(100000))))[:-20], "truncated"),
        (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "corrupt"),
        (bytes(1024), "corrupt"),  # a plain tar declared as gzip
    ],
)
def test_bad_gzip_is_rejected(tmp_path, blob, match, inflate):
    with pytest.raises(UnpackError, match=match):
        extract(blob, tmp_path / "root", MEDIA_TYPE_TAR_GZIP)
    assert not (tmp_path / "root").exists()


def test_bad_zstd_is_rejected(tmp_path):
    good = subprocess.run(
        ["zstd", "-q", "-c"], input=tar_bytes(E("f", data=b"f" * 10000)), stdout=subprocess.PIPE, check=True
    ).stdout
    for blob in (good[:-6], b"\x28\xb5\x2f\xfd" + b"\x00" * 30, b"not zstd at all"):
        with pytest.raises(UnpackError, match="zstd failed"):
            extract(blob, tmp_path / "root", MEDIA_TYPE_TAR_ZSTD)
        assert not (tmp_path / "root").exists()


def test_zstd_without_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH with no zstd in it
    with pytest.raises(UnpackError, match="install the zstd package|Install the zstd package"):
        extract(b"", tmp_path / "root", MEDIA_TYPE_TAR_ZSTD)
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    "media, match",
    [
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "non-distributable"),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "non-distributable"),
        ("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "unsupported layer media type"),
        ("application/vnd.oci.image.layer.v1.tar+bzip2", "unsupported layer media type"),
        ("", "unsupported layer media type"),
    ],
)
def test_foreign_and_unknown_media_types(tmp_path, media, match):
    with pytest.raises(UnpackError, match=match):
        decompressing_reader(io.BytesIO(b""), media)
    with pytest.raises(UnpackError, match=match):
        extract(tar_bytes(E("f")), tmp_path / "root", media)
    assert not (tmp_path / "root").exists()


def test_decompressing_reader_reads_everything(inflate):
    data = tar_bytes(E("f", data=os.urandom(3 << 20)))
    blob = gzip.compress(data)
    reader = decompressing_reader(io.BytesIO(blob), MEDIA_TYPE_TAR_GZIP)
    assert reader.read() == data
    assert reader.compressed_bytes == len(blob)
    zblob = subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    zreader = decompressing_reader(io.BytesIO(zblob), MEDIA_TYPE_TAR_ZSTD)
    try:
        out = b"".join(iter(lambda: zreader.read(65536), b""))
    finally:
        zreader.close()
    assert out == data
    assert zreader.compressed_bytes == len(zblob)


def test_gzip_diff_id_over_many_chunks(tmp_path, inflate):
    """The diff_id of a gzip layer is hashed in the inflating thread: over several 1 MiB chunks and the zero
    padding after the end-of-archive blocks, it equals sha256 of the whole decompressed stream."""
    data = tar_bytes(
        E("big1", data=os.urandom(3 * 2**20 + 123)), E("d", kind="d"), E("d/big2", data=os.urandom(2**20 + 7))
    ) + bytes(20 * 512)
    res = extract(gzip.compress(data, compresslevel=1), tmp_path / "root", MEDIA_TYPE_TAR_GZIP)
    assert res.diff_id == sha(data)
    assert res.size == len(data)
    assert (tmp_path / "root/d/big2").stat().st_size == 2**20 + 7


class _ZlibSpy:
    """zlib.decompressobj as it is, recording how many input bytes each decompress call was given."""

    def __init__(self, fed: list[int]):
        import zlib

        self._fed = fed
        self._make = zlib.decompressobj

    def __call__(self, wbits):
        real = self._make(wbits)
        fed = self._fed

        class Spy:
            def decompress(self, data, max_length=0):
                fed.append(len(data))
                return real.decompress(data, max_length)

            def __getattr__(self, name):
                return getattr(real, name)

        return Spy()


def test_gzip_is_fed_to_zlib_in_small_pieces_and_read_in_large_chunks(monkeypatch):
    """zlib gets at most FEED input bytes a call (a bounded-output call returns what it left of its input as a new
    bytes object: fed a whole 1 MiB read, that is a copy of most of it each time); the reader still hands out
    chunks of n/2..n bytes, since its consumers count their read-ahead in chunks."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import decompress

    fed: list[int] = []
    monkeypatch.setenv("DOCKERLESS_INFLATE", "zlib")
    monkeypatch.setattr(decompress.zlib, "decompressobj", _ZlibSpy(fed))
    # Text-like data (about 3:1, as layers are) in two members, the boundary inside a 64 KiB piece of input.
    words = [os.urandom(4).hex().encode() for _word in range(4000)]
    data = b" ".join(words[i % 4000] for i in range(700_000))[: 5 << 20]
    blob = gzip.compress(data[:3_000_001]) + gzip.compress(data[3_000_001:]) + bytes(300)
    reader = decompress.decompressing_reader(io.BytesIO(blob), MEDIA_TYPE_TAR_GZIP)
    chunks = list(iter(lambda: reader.read(1 << 20), b""))
    assert b"".join(chunks) == data
    assert reader.compressed_bytes == len(blob)
    assert fed and max(fed) <= decompress.FEED
    assert all(len(c) <= 1 << 20 for c in chunks)
    # Every chunk but the last of each member holds at least half of what was asked.
    assert sum(1 for c in chunks if len(c) < 1 << 19) <= 2


@pytest.mark.parametrize("size", [1, 2, 3, 511, 4096])
def test_gzip_small_reads_give_the_whole_stream(size, inflate):
    data = tar_bytes(E("f", data=os.urandom(70000)), E("g", data=b"g" * 100000))
    blob = gzip.compress(data[:33333]) + gzip.compress(data[33333:])
    reader = decompressing_reader(io.BytesIO(blob), MEDIA_TYPE_TAR_GZIP)
    out = []
    while True:
        piece = reader.read(size)
        if not piece:
            break
        assert len(piece) <= size
        out.append(piece)
    assert b"".join(out) == data
