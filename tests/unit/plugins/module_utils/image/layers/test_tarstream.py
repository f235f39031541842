# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of tarstream.py: the tar dialect (PAX, GNU long names), the end of the archive (padding hashed, data
refused, missing end blocks) and header checksums.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from test_extract import E, extract, sha, tar_bytes

from ansible_collections.dockerless.containers.plugins.module_utils.errors import UnpackError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.decompress import (
    MEDIA_TYPE_TAR,
)
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.extract import extract_layer


def test_pax_times_long_names_and_gnu_format(tmp_path):
    long = "x/" * 60 + "file-with-a-long-name-" + "y" * 80
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        root = tmp_path / f"root{fmt}"
        entries = [E(long, data=b"long"), E("link", "l", link="/" + long)]
        if fmt == tarfile.PAX_FORMAT:
            entries.append(E("t", data=b"t", pax={"mtime": "1600000000.5", "atime": "1500000000.25"}))
        extract(tar_bytes(*entries, fmt=fmt), root)
        assert (root / long).read_bytes() == b"long"
        assert os.readlink(root / "link") == "/" + long
        if fmt == tarfile.PAX_FORMAT:
            st = os.lstat(root / "t")
            assert st.st_mtime_ns == 1_600_000_000_500_000_000
            assert st.st_atime_ns == 1_500_000_000_250_000_000


def test_zero_padding_after_end_of_archive_is_hashed(tmp_path):
    data = tar_bytes(E("f", data=b"f"))
    blob = data + bytes(10240)  # a record-size pad, as tar writers add
    res = extract(blob, tmp_path / "root")
    assert res.diff_id == sha(blob)
    assert res.size == len(blob)
    assert res.entries == 1
    assert sorted(os.listdir(tmp_path / "root")) == ["f"]


def test_data_after_end_of_archive_is_rejected(tmp_path):
    blob = tar_bytes(E("f", data=b"f")) + b"trailing garbage that is not a tar header" * 50
    with pytest.raises(UnpackError, match="follows the end of the tar archive"):
        extract(blob, tmp_path / "root")
    assert not (tmp_path / "root").exists() or os.listdir(tmp_path / "root") == []


def test_stream_without_end_blocks_and_empty_stream(tmp_path):
    data = tar_bytes(E("f", data=b"f"))
    body = data[: data.index(bytes(1024), 1024)]  # cut the end-of-archive blocks
    assert extract(body, tmp_path / "a").entries == 1
    res = extract(b"", tmp_path / "b")
    assert res.entries == 0 and res.diff_id == sha(b"")


@pytest.mark.parametrize("block", [bytes(512), b"\xff" * 512, bytes(range(256)) * 2, os.urandom(512)])
def test_header_byte_sum_is_exact(block):
    """The checksum's byte sum (computed with adler32 in two halves) equals the plain sum for any block."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.tarstream import byte_sum

    assert byte_sum(block) == sum(block)


def test_signed_and_unsigned_header_checksums(tmp_path):
    """A header with bytes >= 128 (a UTF-8 name) verifies with the unsigned sum (POSIX) and with the signed sum
    (old Sun tar); any other value is refused."""
    name = "caf\u00e9-\u00fc".encode()
    header = bytearray(512)
    header[0 : len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    header[124:136] = b"00000000001\0"
    header[136:148] = b"14000000000\0"
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    unsigned = sum(header)
    signed = sum(b - 256 if b >= 128 else b for b in header)
    assert unsigned != signed
    for i, value in enumerate((unsigned, signed)):
        header[148:156] = b"%06o\0 " % value
        raw = bytes(header) + b"x" + bytes(511) + bytes(1024)
        dest = tmp_path / f"ok{i}"
        extract_layer(io.BytesIO(raw), MEDIA_TYPE_TAR, str(dest))
        assert (dest / name.decode()).read_bytes() == b"x"
    header[148:156] = b"%06o\0 " % (unsigned + 1)
    with pytest.raises(UnpackError, match="checksum"):
        extract_layer(io.BytesIO(bytes(header) + b"x" + bytes(511) + bytes(1024)), MEDIA_TYPE_TAR, str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_a_header_error_names_the_layer_and_the_fault_once(tmp_path):
    """Header errors are raised by the stream, before any entry: the message is 'extracting LAYER into DIR: WHAT.
    NEXT STEP', with no empty entry part (it used to read 'DIR:: tar header checksum mismatch')."""
    header = bytearray(tar_bytes(E("a", data=b"x"))[:512])
    header[148:156] = b"0000000\0"
    dest = tmp_path / "bad"
    with pytest.raises(UnpackError) as err:
        extract_layer(io.BytesIO(bytes(header) + bytes(1536)), MEDIA_TYPE_TAR, str(dest))
    assert str(err.value).startswith(f"extracting layer ({MEDIA_TYPE_TAR}) into {dest}: tar header checksum mismatch")
    assert "::" not in str(err.value)
