# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deterministic tar writer, read back by Python's tarfile, GNU tar and the zstd/gzip tools."""

from __future__ import annotations

import _thread
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zlib

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.image import tarwriter as tw
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from fresh_python import run_fresh  # noqa: E402

E = tw.TarEntry


def sample_entries():
    return [
        E("etc", tw.DIR, 0o755),
        E("etc/passwd", tw.FILE, 0o644, data=b"root:x:0:0::/root:/bin/sh\n"),
        E("usr/bin/su", tw.FILE, 0o4755, data=b"\x7fELF fake"),
        E("usr", tw.DIR, 0o755),
        E("usr/bin", tw.DIR, 0o755),
        E("tmp", tw.DIR, 0o1777),
        E("lib", tw.SYMLINK, 0o777, linkname="usr/lib"),
        E("dev/null", tw.CHAR, 0o666, devmajor=1, devminor=3),
        E("dev", tw.DIR, 0o755),
        E("dev/sda", tw.BLOCK, 0o660, gid=6, devmajor=8, devminor=0),
        E("run/fifo", tw.FIFO, 0o600, uid=1000, gid=1000),
        E("run", tw.DIR, 0o755),
    ]


def read_back(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def test_roundtrip_and_order():
    buf = io.BytesIO()
    paths = tw.write_entries(sample_entries(), buf, mtime=1700000000)
    assert paths == ["dev", "dev/null", "dev/sda", "etc", "etc/passwd", "lib", "run", "run/fifo", "tmp", "usr",
                     "usr/bin", "usr/bin/su"]
    members = {m.name: m for m in read_back(buf.getvalue())}
    assert list(members) == paths
    assert members["usr/bin/su"].mode == 0o4755 and members["usr/bin/su"].isreg()
    assert members["tmp"].mode == 0o1777 and members["tmp"].isdir()
    assert members["lib"].issym() and members["lib"].linkname == "usr/lib"
    assert members["dev/null"].ischr() and (members["dev/null"].devmajor, members["dev/null"].devminor) == (1, 3)
    assert members["dev/sda"].isblk() and members["dev/sda"].gid == 6
    assert members["run/fifo"].isfifo() and members["run/fifo"].uid == 1000
    for m in members.values():
        assert m.mtime == 1700000000
        assert m.uname == "" and m.gname == ""
        assert not m.pax_headers  # nothing here needs PAX
    data = buf.getvalue()
    assert len(data) % 512 == 0 and data.endswith(b"\0" * 1024)


def test_same_entries_any_order_same_bytes():
    a, b = io.BytesIO(), io.BytesIO()
    tw.write_entries(sample_entries(), a)
    tw.write_entries(list(reversed(sample_entries())), b)
    assert a.getvalue() == b.getvalue()


def test_known_digest_is_stable():
    """The format is ours, not tarfile's: this digest must not move between Python versions or hosts."""
    buf = io.BytesIO()
    tw.write_entries([E("a", tw.DIR, 0o755), E("a/b", tw.FILE, 0o644, data=b"hello\n")], buf)
    data = buf.getvalue()
    assert len(data) == 3 * 512 + 1024  # two headers, one data block, the end marker
    # Header of "a/": name, octal fields with trailing NUL, ustar magic "ustar\0" + version "00".
    assert data[:2] == b"a/" and data[100:108] == b"0000755\0" and data[257:265] == b"ustar\x0000"
    assert data[156:157] == b"5" and data[512 + 156 : 512 + 157] == b"0"
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(_reference_tar()).hexdigest()


def _reference_tar() -> bytes:
    """The same two members written field by field from the POSIX ustar spec, as an independent oracle."""

    def hdr(name, mode, typeflag, size):
        h = bytearray(512)
        h[0 : len(name)] = name
        h[100:108] = b"%07o\0" % mode
        h[108:116] = b"0000000\0"
        h[116:124] = b"0000000\0"
        h[124:136] = b"%011o\0" % size
        h[136:148] = b"00000000000\0"
        h[148:156] = b" " * 8
        h[156:157] = typeflag
        h[257:265] = b"ustar\x0000"
        h[329:337] = b"0000000\0"
        h[337:345] = b"0000000\0"
        h[148:156] = b"%06o\0 " % sum(h)
        return bytes(h)

    return (hdr(b"a/", 0o755, b"5", 0) + hdr(b"a/b", 0o644, b"0", 6) + b"hello\n".ljust(512, b"\0") + b"\0" * 1024)


@pytest.mark.parametrize(
    "entry,pax_keys",
    [
        (E("d/" + "n" * 99, tw.FILE, data=b""), set()),  # fits name (101 with prefix split)
        (E("p" * 150 + "/" + "n" * 99, tw.FILE, data=b""), set()),  # prefix + name
        (E("x" * 300, tw.FILE, data=b""), {"path"}),
        (E("caf\u00e9", tw.FILE, data=b""), {"path"}),
        (E(os.fsdecode(b"raw\xff"), tw.FILE, data=b""), {"path"}),
        (E("l", tw.SYMLINK, linkname="/" + "t" * 120), {"linkpath"}),
        (E("u", tw.FILE, uid=2**21, gid=2**22, data=b""), {"uid", "gid"}),
        (E("x", tw.FILE, data=b"", xattrs={"security.capability": b"\x01\x00\x00\x02"}),
         {"SCHILY.xattr.security.capability"}),
    ],
)
def test_pax_only_when_needed(entry, pax_keys):
    buf = io.BytesIO()
    tw.write_entries([entry], buf)
    (member,) = read_back(buf.getvalue())
    assert set(member.pax_headers) == pax_keys
    assert member.name == entry.path
    if entry.kind == tw.SYMLINK:
        assert member.linkname == entry.linkname
    assert (member.uid, member.gid) == (entry.uid, entry.gid)
    has_x = buf.getvalue()[156:157] == b"x"
    assert has_x == bool(pax_keys)


@pytest.mark.parametrize("length", [1, 5, 6, 7, 8, 90, 91, 92, 93, 994, 995, 996, 997, 998])
def test_pax_record_length_field_counts_itself(length):
    rec = tw._pax_record("path", b"a" * length)
    size, _space, rest = rec.partition(b" ")
    assert int(size) == len(rec)
    assert rest == b"path=" + b"a" * length + b"\n"


def test_hardlinks_by_inode(tmp_path):
    (tmp_path / "one").write_bytes(b"shared")
    os.link(tmp_path / "one", tmp_path / "two")
    st = os.stat(tmp_path / "one")
    ino = (st.st_dev, st.st_ino)
    entries = [
        E("z/two", tw.FILE, size=6, source=str(tmp_path / "two"), inode=ino),
        E("a/one", tw.FILE, size=6, source=str(tmp_path / "one"), inode=ino),
        E("a", tw.DIR, 0o755),
        E("z", tw.DIR, 0o755),
    ]
    buf = io.BytesIO()
    tw.write_entries(entries, buf)
    m = {x.name: x for x in read_back(buf.getvalue())}
    assert m["a/one"].isreg() and m["a/one"].size == 6
    assert m["z/two"].islnk() and m["z/two"].linkname == "a/one" and m["z/two"].size == 0


def test_source_file_checks(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"12345")
    # Size changed since planning.
    with pytest.raises(DockerlessError, match="changed while"):
        tw.write_entries([E("f", tw.FILE, size=3, source=str(f))], io.BytesIO())
    # Swapped for a symlink: O_NOFOLLOW refuses to read through it.
    os.symlink("/etc/passwd", tmp_path / "link")
    with pytest.raises(DockerlessError, match="reading"):
        tw.write_entries([E("f", tw.FILE, size=5, source=str(tmp_path / "link"))], io.BytesIO())
    # Swapped for a FIFO: refused without blocking.
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(DockerlessError, match="no longer a regular file"):
        tw.write_entries([E("f", tw.FILE, size=5, source=str(tmp_path / "fifo"))], io.BytesIO())
    # Another inode than planned.
    st = os.stat(f)
    with pytest.raises(DockerlessError, match="changed while"):
        tw.write_entries([E("f", tw.FILE, size=5, source=str(f), inode=(st.st_dev, st.st_ino + 1))], io.BytesIO())


@pytest.mark.parametrize("path, parts", [
    ("/usr//bin/./x", ["usr", "bin", "x"]), ("usr/bin/", ["usr", "bin"]), ("/", []), ("", []), ("./.", []),
    ("a/../b", None), ("..", None), ("/a/b/..", None), ("a/..b/.c", ["a", "..b", ".c"]),
])
def test_path_parts_one_rule_for_members_and_image_paths(path, parts):
    """The archive members' and build's image paths share the rule: empty and '.' dropped, '..' refused."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image import build

    assert tw.path_parts(path) == parts
    if parts is None:
        with pytest.raises(DockerlessError, match="'..' is not allowed"):
            tw.normalize_member(path)
        with pytest.raises(DockerlessError, match="contains '..'"):
            build.image_path("/" + path, "t")
    elif parts:
        assert tw.normalize_member(path) == build.image_path("/" + path, "t") == "/".join(parts)


def test_refusals():
    with pytest.raises(DockerlessError, match="listed twice"):
        tw.write_entries([E("a", tw.FILE, data=b""), E("a", tw.FILE, data=b"")], io.BytesIO())
    with pytest.raises(DockerlessError, match="'..' is not allowed"):
        tw.normalize_member("a/../../etc")
    assert tw.normalize_member("/usr//bin/./x") == "usr/bin/x"
    with pytest.raises(DockerlessError, match="does not fit"):
        tw.write_entries([E("d", tw.CHAR, devmajor=2**22)], io.BytesIO())
    with pytest.raises(DockerlessError, match="mtime"):
        tw.TarWriter(io.BytesIO(), mtime=-1)


def test_gnu_tar_extracts_what_we_wrote(tmp_path):
    """GNU tar as the oracle: listing and extraction (modes, setuid, links) match the entries."""
    src = tmp_path / "big"
    src.write_bytes(os.urandom(70000))
    entries = sample_entries() + [E("data/big", tw.FILE, 0o640, size=70000, source=str(src)), E("data", tw.DIR, 0o750)]
    out = tmp_path / "x.tar"
    with open(out, "wb") as fh:
        tw.write_entries([e for e in entries if e.kind not in (tw.CHAR, tw.BLOCK)], fh)
    listing = subprocess.run(["tar", "-tvf", str(out), "--numeric-owner"], capture_output=True, text=True, check=True)
    assert listing.stderr == ""
    assert "-rwsr-xr-x 0/0" in listing.stdout and "lrwxrwxrwx 0/0               0 1970-01-01 00:00 lib -> usr/lib" in listing.stdout
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xpf", str(out), "-C", str(dest), "--numeric-owner"], check=True)
    assert (dest / "data/big").read_bytes() == src.read_bytes()
    assert oct(os.stat(dest / "data/big").st_mode & 0o7777) == "0o640"
    assert os.readlink(dest / "lib") == "usr/lib"


def test_write_archive_digests_and_gzip_header(tmp_path):
    out = io.BytesIO()
    res = tw.write_archive(sample_entries(), out, "gzip", mtime=0)
    blob = out.getvalue()
    assert res.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and res.size == len(blob)
    raw = gzip.decompress(blob)
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() and res.uncompressed_size == len(raw)
    # RFC 1952: ID1 ID2 CM FLG MTIME(4) XFL OS — no FNAME flag, mtime zero.
    assert blob[:3] == b"\x1f\x8b\x08" and blob[3] & 0x08 == 0 and blob[4:8] == b"\0\0\0\0"
    assert res.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    # Digests only (check mode): same numbers, nothing written.
    again = tw.write_archive(sample_entries(), None, "gzip", mtime=0)
    assert (again.digest, again.diff_id, again.size) == (res.digest, res.diff_id, res.size)
    plain = tw.write_archive(sample_entries(), None, "none")
    assert plain.digest == plain.diff_id == res.diff_id


class _TrustedSink:
    """A SHA256_SINK that reports a digest of its own choosing: what write_archive reports shows whose hash it is."""

    SHA256_SINK = True

    def __init__(self):
        self.buf = io.BytesIO()
        self.size = 0
        self.digest = "sha256:" + "0" * 64

    def write(self, data) -> int:
        self.size += len(data)
        return self.buf.write(data)


def test_write_archive_hashes_the_compressed_bytes_once_into_a_hashing_sink(tmp_path):
    """The store's blob writer hashes what it stores: write_archive takes its digest and size instead of hashing
    the compressed stream a second time, and the blob it commits is the one a plain writer gets."""
    sink = _TrustedSink()
    res = tw.write_archive(sample_entries(), sink, "gzip", mtime=0)
    assert res.digest == "sha256:" + "0" * 64 and res.size == sink.size == len(sink.buf.getvalue())
    plain = tw.write_archive(sample_entries(), io.BytesIO(), "gzip", mtime=0)
    assert res.diff_id == plain.diff_id and sink.buf.getvalue() and res.size == plain.size

    store = Store(str(tmp_path / "store"))
    with store.ingest() as writer:
        stored = tw.write_archive(sample_entries(), writer, "gzip", mtime=0)
    assert (stored.digest, stored.size, stored.diff_id) == (plain.digest, plain.size, plain.diff_id)
    assert store.has_blob(stored.digest, stored.size)
    with store.open_blob(stored.digest) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == stored.digest.split(":", 1)[1]


def _pseudo_binary(seed: bytes, size: int) -> bytes:
    """Deterministic bytes that compress about as badly as executables do (hash output with some text)."""
    out = bytearray()
    h = hashlib.sha256(seed).digest()
    i = 0
    while len(out) < size:
        h = hashlib.sha256(h).digest()
        out += h + b"text line %d of %s\n" % (i, seed) if i % 3 else h * 3
        i += 1
    return bytes(out[:size])


def _fixed_layer(tmp_path) -> list:
    """A layer of host files (read through the writer, crossing 1 MiB blocks), in-memory data, a symlink, an
    empty file and directories: about 3 MiB of tar, four gzip blocks, the last one short."""
    files = {"big": _pseudo_binary(b"big", 1536 * 1024 + 77), "mid": _pseudo_binary(b"mid", 700 * 1024),
             "tiny": b"abc", "empty": b""}
    entries = [E("opt", tw.DIR, 0o755), E("opt/app", tw.DIR, 0o750, 1000, 1000),
               E("opt/app/link", tw.SYMLINK, 0o777, linkname="big")]
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        st = path.stat()
        entries.append(E("opt/app/" + name, tw.FILE, 0o644, size=st.st_size, source=str(path),
                         inode=(st.st_dev, st.st_ino)))
    entries.append(E("opt/data", tw.FILE, 0o600, data=_pseudo_binary(b"data", 900 * 1024)))
    return entries


# The fixed layer's (digest, diff_id, size) by zlib version, as the writer made it before files were read straight
# into the gzip blocks and the blocks hashed after they went to the workers: how the work is arranged must
# never show in the bytes (image digests users pin would move).
_FIXED_LAYER = {
    "1.2.13": ("sha256:7a6af1734d45e28d7e1e5ccc0a4cc415731cea01dd3e512c6b90f1a344e57aaa",
               "sha256:9cd8612ce134a56a3804a49cc016d01e019085e190f83fa3e6dc407daedeaae9", 1713682),
}


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fixed_layer_keeps_its_digests(tmp_path, monkeypatch, threads):
    monkeypatch.setattr(tw, "gzip_threads", lambda: threads)
    entries = _fixed_layer(tmp_path)
    out = io.BytesIO()
    res = tw.write_archive(entries, out, "gzip", mtime=946684800)
    tar = gzip.decompress(out.getvalue())
    assert res.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest() and res.uncompressed_size == len(tar) == 3217408
    assert res.digest == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest() and res.size == len(out.getvalue())
    store = Store(str(tmp_path / "store"))
    with store.ingest() as writer:
        stored = tw.write_archive(entries, writer, "gzip", mtime=946684800)
    assert (stored.digest, stored.diff_id, stored.size) == (res.digest, res.diff_id, res.size)
    version = zlib.ZLIB_RUNTIME_VERSION
    if version not in _FIXED_LAYER:
        pytest.fail(f"no recorded digests for zlib {version}: add {(res.digest, res.diff_id, res.size)!r} after "
                    "checking the layer with tar and zcat")
    assert (res.digest, res.diff_id, res.size) == _FIXED_LAYER[version]


def test_gzip_writer_reads_files_into_its_blocks_as_write_would(tmp_path):
    """write_from (the file read straight into the block being filled) is write of the same bytes: same stream,
    same input digest and size, whatever the read sizes and block boundaries."""
    data = _pseudo_binary(b"f", 5 * 65536 + 4321)
    path = tmp_path / "f"
    path.write_bytes(data)
    outputs = set()
    for cut in (1000, 65536, 100000, len(data)):
        out = io.BytesIO()
        writer = tw.ParallelGzipWriter(out, 1, threads=2, block_size=65536, hash_input=True)
        writer.write(b"head")
        fd = os.open(path, os.O_RDONLY)
        try:
            while True:
                got = writer.write_from(fd, cut)
                if not got:
                    break
                assert 0 < got <= cut
        finally:
            os.close(fd)
        writer.close()
        assert writer.input_size == len(data) + 4
        assert writer.input_digest == "sha256:" + hashlib.sha256(b"head" + data).hexdigest()
        outputs.add(out.getvalue())
    assert outputs == {_pgzip(b"head" + data, threads=1, cut=len(data) + 4, block_size=65536)}


def test_gzip_writer_without_hash_input_has_no_input_digest():
    writer = tw.ParallelGzipWriter(io.BytesIO(), 1)
    writer.write(b"x")
    writer.close()
    with pytest.raises(DockerlessError, match="not hashed"):
        writer.input_digest  # noqa: B018 - the property raises


def test_zstd_roundtrip(tmp_path):
    if shutil.which("zstd") is None:
        pytest.fail("the zstd command is missing (scripts/install-deps.sh installs it)")
    out = io.BytesIO()
    res = tw.write_archive(sample_entries(), out, "zstd")
    raw = subprocess.run(["zstd", "-d", "-c"], input=out.getvalue(), capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == res.diff_id
    assert res.media_type.endswith("+zstd")
    again = tw.write_archive(sample_entries(), None, "zstd")
    assert again.digest == res.digest


def test_compression_levels_validated():
    with pytest.raises(DockerlessError, match="level 0"):
        tw.write_archive([], None, "gzip", level=0)
    with pytest.raises(DockerlessError, match="unknown compression"):
        tw.write_archive([], None, "xz")


# --- parallel gzip -----------------------------------------------------------------------------------------


def _sample_stream(size: int) -> bytes:
    """Compressible, non-repeating bytes (text-like), deterministic."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += b"line %d: %s\n" % (i, hashlib.sha256(str(i % 977).encode()).hexdigest().encode())
        i += 1
    return bytes(out[:size])


def _pgzip(data: bytes, threads: int, cut: int, block_size: int = tw.GZIP_BLOCK, level: int = 1) -> bytes:
    out = io.BytesIO()
    writer = tw.ParallelGzipWriter(out, level, threads=threads, block_size=block_size)
    for i in range(0, len(data), cut):
        writer.write(data[i:i + cut])
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, 65536 - 1, 65536, 3 * 65536, 5 * 65536 + 123])
def test_parallel_gzip_same_bytes_whatever_threads_and_writes(size):
    """The output depends on the input, block size and level only: not on the thread count or write sizes."""
    data = _sample_stream(size)
    outputs = {(threads, cut): _pgzip(data, threads, cut, block_size=65536)
               for threads in (1, 2, 5) for cut in (1000, 65536, 200000)}
    assert len(set(outputs.values())) == 1
    blob = next(iter(outputs.values()))
    assert gzip.decompress(blob) == data
    # One gzip member (RFC 1952): no name, mtime 0, OS 255; CRC-32 and length of the whole input at the end.
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    assert blob[-8:] == zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little")
    # The blocks really are chained: each one decodes only with the previous block's window.
    if size > 2 * 65536:
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        assert d.decompress(blob[10:-8]) == data and d.eof and not d.unused_data


def test_parallel_gzip_accepted_by_gzip_and_zcat(tmp_path):
    data = _sample_stream(3 * tw.GZIP_BLOCK + 4567)  # four default-size blocks
    blob = _pgzip(data, threads=3, cut=300000)
    path = tmp_path / "x.gz"
    path.write_bytes(blob)
    subprocess.run(["gzip", "-t", str(path)], check=True)
    assert subprocess.run(["zcat", str(path)], capture_output=True, check=True).stdout == data
    assert blob == _pgzip(data, threads=1, cut=len(data) or 1)


# sha256 of _pgzip(_sample_stream(3 MiB + 4567), level 1) with the default 1 MiB blocks, by zlib version: the
# layer format must not move between hosts or Python versions (only a different zlib may change it).
_PGZIP_DIGESTS = {
    "1.2.13": "b7f9563819a4baf1694af7a842f13b354173c26048fed42b552da126609e9fa5",
}


def test_parallel_gzip_known_digest():
    data = _sample_stream(3 * tw.GZIP_BLOCK + 4567)
    digest = hashlib.sha256(_pgzip(data, threads=2, cut=100000)).hexdigest()
    version = zlib.ZLIB_RUNTIME_VERSION
    if version not in _PGZIP_DIGESTS:
        pytest.fail(f"no recorded digest for zlib {version}: add {digest!r} after checking the output with zcat")
    assert digest == _PGZIP_DIGESTS[version]


def test_build_digest_independent_of_gzip_threads(monkeypatch, tmp_path):
    src = tmp_path / "big"
    src.write_bytes(_sample_stream(2 * tw.GZIP_BLOCK + 99))
    entries = [E("data", tw.DIR, 0o755), E("data/big", tw.FILE, 0o640, size=src.stat().st_size, source=str(src))]
    results = []
    for threads in (1, 2, 4):
        monkeypatch.setattr(tw, "gzip_threads", lambda n=threads: n)
        out = io.BytesIO()
        res = tw.write_archive(entries, out, "gzip", mtime=0)
        results.append((res.digest, res.diff_id, res.size, out.getvalue()))
    assert len(set(results)) == 1
    assert hashlib.sha256(gzip.decompress(results[0][3])).hexdigest() == results[0][1].split(":")[1]


def _threads_back_to(before: tuple[int, int]) -> bool:
    """The thread counts are ``before`` again: a joined _thread worker has released its lock and is returning,
    its count drops a moment later."""
    deadline = time.monotonic() + 2
    while (threading.active_count(), _thread._count()) != before and time.monotonic() < deadline:
        time.sleep(0.001)
    return (threading.active_count(), _thread._count()) == before


def test_parallel_gzip_stops_its_threads_on_errors(tmp_path):
    before = (threading.active_count(), _thread._count())  # the gzip workers are _thread threads
    src = tmp_path / "f"
    src.write_bytes(_sample_stream(3 * tw.GZIP_BLOCK))
    size = src.stat().st_size
    # "a" fills three blocks (the workers run), then "b" fails its size check.
    entries = [E("a", tw.FILE, 0o644, size=size, source=str(src)), E("b", tw.FILE, 0o644, size=size + 1, source=str(src))]
    with pytest.raises(DockerlessError, match="changed while the archive was written"):
        tw.write_archive(entries, io.BytesIO(), "gzip")
    assert _threads_back_to(before)
    with pytest.raises(DockerlessError, match="level 10"):
        tw.ParallelGzipWriter(io.BytesIO(), 10)


def test_parallel_gzip_worker_error_reaches_the_writer_and_stops_the_workers(monkeypatch):
    """A block whose deflate fails in a worker raises from write/close, and no worker thread is left behind."""
    before = (threading.active_count(), _thread._count())  # the gzip workers are _thread threads
    real = tw._deflate_block
    calls = []

    def failing(data, zdict, level, last):
        calls.append(len(data))
        if len(calls) == 2:
            raise zlib.error("injected")
        return real(data, zdict, level, last)

    monkeypatch.setattr(tw, "_deflate_block", failing)
    writer = tw.ParallelGzipWriter(io.BytesIO(), 1, threads=2)
    with pytest.raises(zlib.error, match="injected"):
        for _i in range(6):
            writer.write(_sample_stream(tw.GZIP_BLOCK))
        writer.close()
    writer.abort()
    assert len(calls) >= 2 and _threads_back_to(before)


def test_gzip_layers_need_neither_concurrent_futures_nor_subprocess():
    """A build is a short command whose imports count. tarwriter, in a fresh interpreter, writes a
    several-block gzip layer (worker threads) without importing concurrent.futures (logging), threading (its
    workers are _thread threads), functools, collections, subprocess or shutil (only zstd layers need those)."""
    code = (
        "import io\n"
        "from ansible_collections.dockerless.containers.plugins.module_utils.image import tarwriter as tw\n"
        "data = bytes(range(256)) * (3 * 4096 + 17)\n"
        "res = tw.write_archive([tw.TarEntry('f', tw.FILE, data=data)], io.BytesIO(), 'gzip')\n"
        "assert res.size > 0\n"
        "print(','.join(sorted(m for m in ('concurrent.futures', 'logging', 'subprocess', 'shutil', 'zstandard',\n"
        "                                  'threading', 'functools', 'collections', 'queue') if m in sys.modules)))\n"
    )
    out = run_fresh(code)
    assert out.stdout.strip() == "", f"a gzip layer imports {out.stdout.strip()}"


def test_tar_entry_keeps_the_dataclass_behaviour():
    """TarEntry is a plain __slots__ class now: same constructor, defaults, == and repr as before."""
    a = E("x", tw.FILE)
    b = E(path="x", kind=tw.FILE, mode=0o644, uid=0, gid=0)
    assert a == b and a != E("x", tw.FILE, 0o600) and a.__eq__("x") is NotImplemented
    assert a.xattrs == {} and a.xattrs is not b.xattrs  # one dict per entry, like field(default_factory=dict)
    assert E("y", tw.DIR, xattrs=None).xattrs is None   # an explicit value is kept as given
    assert repr(a) == ("TarEntry(path='x', kind='file', mode=420, uid=0, gid=0, size=0, linkname='', devmajor=0, "
                       "devminor=0, source=None, data=None, inode=None, xattrs={})")
    with pytest.raises(TypeError):
        hash(a)
    with pytest.raises(TypeError):
        E("z")  # kind is required
    stray = "colour"
    with pytest.raises(AttributeError):
        setattr(a, stray, "red")  # __slots__: no stray attributes
