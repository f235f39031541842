# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic tar writing, shared by image_build (layers) and wsl_export (root filesystems).

The same entries always give the same bytes, on any host and Python version, because we write the headers
ourselves (POSIX ustar, IEEE Std 1003.1-2017 "pax" format) instead of relying on ``tarfile``'s defaults:

- entries sorted by path components (``a``, ``a/b``, ``a.b``), so parents precede children;
- one fixed mtime for every entry, no atime/ctime, empty uname/gname, numeric uid/gid;
- mode holds the permission bits only (setuid/setgid/sticky kept, file type bits left out);
- a PAX extended header only when ustar can't hold a value (long or non-ASCII names, ids over 2097151,
  sizes over 8 GiB, xattrs); its records are sorted and it is named ``././@PaxHeader``;
- a regular file met again with the same ``(st_dev, st_ino)`` becomes a hardlink to its first path;
- the archive ends with two zero blocks, without padding to a 10 KiB record (as Go's archive/tar).

Compression goes through deterministic streams: gzip without file name and with mtime 0 in its header
(RFC 1952), zstd through the ``zstd`` command (or the ``zstandard`` module when the command is missing).
The compressed bytes are still only as stable as the zlib/zstd version that makes them.

gzip is compressed in parallel the way pigz does it (``ParallelGzipWriter``): the input is cut into fixed
1 MiB blocks, each deflated by a worker thread (zlib releases the GIL) with the previous block's last 32 KiB as
its preset dictionary and ended on a byte boundary (``Z_SYNC_FLUSH``, the last one ``Z_FINISH``), and the raw
deflate pieces are written in order as one gzip member. Every block's bytes depend only on the input, the
block size and the level, never on the thread count or how ``write`` calls were cut, so a build gives the same
digest on a 2-core and a 64-core host.
"""

from __future__ import annotations

import _thread
import os
import stat
import zlib
from _collections import deque

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record, new_sha256

# subprocess, shutil and zstandard are imported where zstd is used, and the gzip workers are plain threads rather
# than concurrent.futures (which imports logging): a build is a short command whose imports are a good part of
# its time (the bash+ls case).

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a build's imports count)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
CHAR = "char"
BLOCK = "block"
FIFO = "fifo"

_TYPEFLAGS = {FILE: b"0", HARDLINK: b"1", SYMLINK: b"2", CHAR: b"3", BLOCK: b"4", DIR: b"5", FIFO: b"6"}

BLOCKSIZE = 512
CHUNK = 1 << 20
_MAX_OCTAL7 = 0o7777777
_MAX_OCTAL11 = 0o77777777777

MEDIA_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


_FIELDS = ("path", "kind", "mode", "uid", "gid", "size", "linkname", "devmajor", "devminor", "source", "data",
           "inode", "xattrs")
_NO_XATTRS = object()  # the default marker: each entry gets its own empty dict


class TarEntry:
    """One archive member. ``path`` is relative to the archive root (``usr/bin/bash``), without a leading slash.

    Regular files take their content from ``data`` or from the host file ``source`` (opened without following
    symlinks, checked to still have ``size`` bytes and, when given, the same ``inode``).

    A plain class with ``__slots__`` and the dataclass it replaces' constructor, ``==`` and ``repr``: a build makes
    one per path (thousands for a tree), and ``@dataclass`` costs about a millisecond of code generation at import,
    which a small build's time notices.
    """

    __slots__ = _FIELDS

    def __init__(self, path: str, kind: str, mode: int = 0o644, uid: int = 0, gid: int = 0, size: int = 0,
                 linkname: str = "", devmajor: int = 0, devminor: int = 0, source: str | None = None,
                 data: bytes | None = None, inode: tuple[int, int] | None = None,
                 xattrs: dict[str, bytes] = _NO_XATTRS):  # type: ignore[assignment]
        self.path = path
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.linkname = linkname
        self.devmajor = devmajor
        self.devminor = devminor
        self.source = source
        self.data = data
        self.inode = inode
        self.xattrs = {} if xattrs is _NO_XATTRS else xattrs

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # mutable, like a dataclass with eq and without frozen

    def __repr__(self) -> str:
        return "TarEntry(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"


def path_parts(path: str) -> list[str] | None:
    """The components of ``path`` without the empty and ``.`` ones (``/usr//bin/./x`` -> ``[usr, bin, x]``);
    None when one is ``..``: an archive member and a path inside an image never climb out of the root."""
    parts = []
    for comp in path.split("/"):
        if comp == "..":
            return None
        if comp not in ("", "."):
            parts.append(comp)
    return parts


def normalize_member(path: str) -> str:
    """``/usr//bin/./x`` -> ``usr/bin/x``; refuses ``..`` and empty paths."""
    parts = path_parts(path)
    if parts is None:
        raise DockerlessError(f"writing archive member {path!r}: '..' is not allowed. Use a path inside the root.")
    if not parts:
        raise DockerlessError(f"writing archive member {path!r}: empty path. Name a file below the root.")
    return "/".join(parts)


def sort_key(path: str) -> tuple[bytes, ...]:
    """Order by path components, compared as bytes: a directory's contents follow it directly."""
    return tuple(os.fsencode(path).split(b"/"))


def _octal(value: int, width: int) -> bytes:
    """``width`` bytes: zero-padded octal digits and a trailing NUL (POSIX ustar numeric fields)."""
    return b"%0*o" % (width - 1, value) + b"\0"


def _pax_record(key: str, value: bytes) -> bytes:
    body = key.encode("utf-8") + b"=" + value + b"\n"
    length = len(body) + 2  # at least one digit and the space
    while True:
        rec = str(length).encode() + b" " + body
        if len(rec) == length:
            return rec
        length = len(rec)


def _is_ascii(b: bytes) -> bool:
    return all(c < 128 for c in b)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for ustar, or None when the path needs a PAX ``path`` record."""
    if len(name) <= 100:
        return b"", name
    # Split at a slash so that prefix <= 155 and the rest <= 100 (ustar "prefix" field).
    idx = name.rfind(b"/", 0, 156)
    while idx > 0:
        if len(name) - idx - 1 <= 100:
            return name[:idx], name[idx + 1 :]
        idx = name.rfind(b"/", 0, idx)
    return None


def _header(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes,
    devmajor: int,
    devminor: int,
    prefix: bytes = b"",
) -> bytes:
    parts = [
        name.ljust(100, b"\0"),
        _octal(mode, 8),
        _octal(uid, 8),
        _octal(gid, 8),
        _octal(size, 12),
        _octal(mtime, 12),
        b" " * 8,  # checksum placeholder
        typeflag,
        linkname.ljust(100, b"\0"),
        b"ustar\x0000",
        b"\0" * 32,  # uname: left empty on purpose, only numeric ids count
        b"\0" * 32,  # gname
        _octal(devmajor, 8),
        _octal(devminor, 8),
        prefix.ljust(155, b"\0"),
        b"\0" * 12,
    ]
    hdr = bytearray(b"".join(parts))
    if len(hdr) != BLOCKSIZE:
        raise DockerlessError(f"writing archive member {name!r}: header of {len(hdr)} bytes (internal error)")
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return bytes(hdr)


class TarWriter:
    """Writes members to ``out`` (anything with ``write``); see the module docstring for the format."""

    def __init__(self, out, mtime: int = 0):
        if mtime < 0 or mtime > _MAX_OCTAL11:
            raise DockerlessError(f"writing an archive: mtime {mtime} out of range. Use a SOURCE_DATE_EPOCH >= 0.")
        self.out = out
        self.mtime = mtime
        self.paths: list[str] = []
        self._inodes: dict[tuple[int, int], str] = {}
        self._buffer: memoryview | None = None

    def add(self, entry: TarEntry) -> None:
        if entry.kind not in _TYPEFLAGS:
            raise DockerlessError(f"writing archive member {entry.path}: unknown kind {entry.kind!r}")
        kind = entry.kind
        linkname = entry.linkname
        size = entry.size if kind == FILE else 0
        if kind == FILE and entry.inode is not None:
            first = self._inodes.get(entry.inode)
            if first is not None:
                kind, linkname, size = HARDLINK, first, 0
            else:
                self._inodes[entry.inode] = entry.path
        if kind == FILE and entry.data is not None:
            size = len(entry.data)

        name = os.fsencode(entry.path) + (b"/" if kind == DIR else b"")
        link = os.fsencode(linkname) if kind in (HARDLINK, SYMLINK) else b""
        if entry.devmajor > _MAX_OCTAL7 or entry.devminor > _MAX_OCTAL7:
            raise DockerlessError(
                f"writing archive member {entry.path}: device {entry.devmajor}:{entry.devminor} does not fit "
                "in a tar header. Leave the device out."
            )
        pax: dict[str, bytes] = {}
        split = _split_ustar(name) if _is_ascii(name) else None
        if split is None:
            pax["path"] = name
            prefix, short = b"", _placeholder(name)
        else:
            prefix, short = split
        if len(link) > 100 or not _is_ascii(link):
            pax["linkpath"] = link
            link = _placeholder(link)
        uid, gid = entry.uid, entry.gid
        if uid < 0 or gid < 0:
            raise DockerlessError(f"writing archive member {entry.path}: negative uid/gid {uid}/{gid}")
        if uid > _MAX_OCTAL7:
            pax["uid"] = str(uid).encode()
            uid = 0
        if gid > _MAX_OCTAL7:
            pax["gid"] = str(gid).encode()
            gid = 0
        hdr_size = size
        if size > _MAX_OCTAL11:
            pax["size"] = str(size).encode()
            hdr_size = 0
        for key in sorted(entry.xattrs):
            pax["SCHILY.xattr." + key] = entry.xattrs[key]
        if pax:
            # Names that are not UTF-8 go in raw, without "hdrcharset=BINARY": GNU tar 1.34 warns about that
            # keyword, and readers (GNU tar, Go, Python's surrogateescape) all take the bytes as they are.
            records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
            self._write(_header(b"././@PaxHeader", 0o644, 0, 0, len(records), self.mtime, b"x", b"", 0, 0))
            self._write(records)
            self._pad(len(records))
        self._write(
            _header(
                short,
                entry.mode & 0o7777,
                uid,
                gid,
                hdr_size,
                self.mtime,
                _TYPEFLAGS[kind],
                link,
                entry.devmajor if kind in (CHAR, BLOCK) else 0,
                entry.devminor if kind in (CHAR, BLOCK) else 0,
                prefix,
            )
        )
        if kind == FILE:
            if entry.data is not None:
                self._write(entry.data)
            elif entry.source is not None:
                self._copy(entry, size)
            elif size:
                raise DockerlessError(f"writing archive member {entry.path}: no content given (internal error)")
            self._pad(size)
        self.paths.append(entry.path)

    def _copy(self, entry: TarEntry, size: int) -> None:
        src = entry.source or ""
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise DockerlessError(
                f"reading {src} for archive member {entry.path}: {exc.strerror}. Check that it exists and is readable."
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise DockerlessError(f"reading {src}: no longer a regular file. Keep inputs still while building.")
            if st.st_size != size or (entry.inode is not None and (st.st_dev, st.st_ino) != entry.inode):
                raise DockerlessError(f"reading {src}: it changed while the archive was written. Run it again.")
            left = size
            # The gzip writer reads the file straight into the block it is filling (one copy fewer per byte).
            read_into = getattr(self.out, "write_from", None)
            buf = None if read_into is not None else self._read_buffer(size)
            while left:
                if read_into is not None:
                    got = read_into(fd, left)
                else:
                    got = os.readv(fd, [buf[: min(len(buf), left)]])
                    if got:
                        self._write(buf[:got])
                if not got:
                    raise DockerlessError(f"reading {src}: it shrank while the archive was written. Run it again.")
                left -= got
            if os.read(fd, 1):
                raise DockerlessError(f"reading {src}: it grew while the archive was written. Run it again.")
        finally:
            os.close(fd)

    def _read_buffer(self, size: int) -> memoryview:
        """One buffer for every file read, reused: a fresh buffer per read costs a page fault per 4 KiB (a short
        build's reads were a fifth of its page faults). ``out.write`` gets views of it and, as the io
        contract of ``write`` says, must not keep them after returning; every writer here copies or consumes."""
        want = min(CHUNK, size)
        if self._buffer is None or len(self._buffer) < want:
            self._buffer = memoryview(bytearray(max(want, 64 * 1024)))
        return self._buffer

    def _write(self, data) -> None:
        self.out.write(data)

    def _pad(self, size: int) -> None:
        rem = size % BLOCKSIZE
        if rem:
            self._write(b"\0" * (BLOCKSIZE - rem))

    def close(self) -> None:
        self._write(b"\0" * (2 * BLOCKSIZE))


def _placeholder(name: bytes) -> bytes:
    """The ustar field value when the real name lives in a PAX record: its ASCII tail, at most 100 bytes."""
    ascii_only = bytes(c if c < 128 else 0x5F for c in name)
    return ascii_only[-100:]


def write_entries(entries: Iterable[TarEntry], out, mtime: int = 0) -> list[str]:
    """Sort ``entries``, refuse duplicates, write them and the end-of-archive marker; return the paths."""
    ordered = sorted(entries, key=lambda e: sort_key(e.path))
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.path == cur.path:
            raise DockerlessError(f"writing archive member {cur.path}: listed twice. Name each path once.")
    writer = TarWriter(out, mtime)
    for e in ordered:
        writer.add(e)
    writer.close()
    return writer.paths


# --------------------------------------------------------------------------------------------------------------
# Hashing and compression streams


class HashingWriter:
    """Counts and sha256-hashes what passes through, forwarding it to ``out`` (or nowhere).

    ``SHA256_SINK``: a writer that counts (``size``) and hashes (``digest``) what it is given itself, as this class
    and store.BlobWriter do; write_archive hands the compressed bytes to such an ``out`` without hashing them a
    second time."""

    SHA256_SINK = True

    def __init__(self, out=None):
        self.out = out
        self.size = 0
        self._sha = new_sha256()

    def write(self, data) -> int:
        self._sha.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self.out, "flush", None)
        if flush is not None:
            flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


class _Passthrough:
    def __init__(self, out):
        self.out = out

    def write(self, data) -> int:
        self.out.write(data)
        return len(data)

    def close(self) -> None:
        pass


class _ZstdProcess:
    """Feeds the ``zstd`` command on stdin and copies its stdout to ``out`` from a thread."""

    def __init__(self, out, level: int, binary: str):
        import subprocess  # only zstd layers need it

        self.out = out
        self.proc = subprocess.Popen(
            [binary, "-q", "-c", f"-{level}", "--single-thread", "--no-progress"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.error: BaseException | None = None
        import threading  # only zstd layers need it (the gzip workers are _thread threads)

        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        try:
            stdout = self.proc.stdout
            while stdout is not None:
                chunk = stdout.read(CHUNK)
                if not chunk:
                    break
                self.out.write(chunk)
        except BaseException as exc:  # re-raised in close()
            self.error = exc

    def write(self, data) -> int:
        if self.proc.stdin is None:
            raise DockerlessError("compressing with zstd: no pipe to the zstd command (internal error)")
        try:
            self.proc.stdin.write(data)
        except BrokenPipeError:
            self.close()
            raise DockerlessError("compressing with zstd: the zstd command stopped. Check its installation.") from None
        return len(data)

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        self.thread.join()
        err = self.proc.stderr.read().decode("utf-8", "replace").strip() if self.proc.stderr else ""
        rc = self.proc.wait()
        if self.error is not None:
            raise self.error
        if rc != 0:
            raise DockerlessError(f"compressing with zstd: exit status {rc}: {err[:300]}. Check the zstd command.")


def _zstandard_module():
    """The optional ``zstandard`` module (used only when the zstd command is missing), or None."""
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - depends on the host
        return None
    return zstandard


class _ZstdModule:
    def __init__(self, out, level: int, module=None):
        self.out = out
        module = module or _zstandard_module()
        self._c = module.ZstdCompressor(level=level, threads=0, write_checksum=True)
        self._obj = self._c.compressobj()

    def write(self, data) -> int:
        chunk = self._obj.compress(data)
        if chunk:
            self.out.write(chunk)
        return len(data)

    def close(self) -> None:
        self.out.write(self._obj.flush())


GZIP_BLOCK = 1 << 20      # part of the output format: changing it changes every gzip layer's digest
_GZIP_WINDOW = 32 * 1024  # deflate's window: the dictionary each block inherits from the one before
_GZIP_MAX_THREADS = 8


def gzip_threads() -> int:
    """Worker threads for gzip: the CPUs this process may run on (at least 2, so I/O overlaps), at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(2, min(_GZIP_MAX_THREADS, cpus))


def _deflate_block(data: bytes, zdict: bytes, level: int, last: bool) -> tuple[bytes, bytes]:
    """Raw deflate of one block, primed with ``zdict``, ending on a byte boundary (or the final block): the
    output of ``compress`` and of the closing ``flush``, to be written one after the other (joining them would
    copy half a megabyte per block into fresh memory)."""
    if zdict:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
    return comp.compress(data), comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class _DeflateJob:
    """One block handed to a worker; ``wait`` returns its deflate pieces (or raises what the worker raised)."""

    __slots__ = ("block", "zdict", "last", "result", "error", "cancelled", "_done", "_picked")

    def __init__(self, block: bytes, zdict: bytes, last: bool):
        self.block = block
        self.zdict = zdict
        self.last = last
        self.result: tuple[bytes, ...] = ()
        self.error: BaseException | None = None
        self.cancelled = False
        self._done = _thread.allocate_lock()
        self._done.acquire()  # released by the worker when the job is finished
        self._picked = _thread.allocate_lock()
        self._picked.acquire()  # released by the worker when it takes the job

    def wait_picked(self, timeout: float = 0.05) -> None:
        """Until a worker has taken the job (at most ``timeout`` seconds: this only hands the GIL over sooner)."""
        self._picked.acquire(True, timeout)

    def run(self, level: int) -> None:
        try:
            self._picked.release()
            if not self.cancelled:
                self.result = _deflate_block(self.block, self.zdict, level, self.last)
        except BaseException as exc:  # handed to the writer by wait()
            self.error = exc
        finally:
            self.block = self.zdict = b""
            self._done.release()

    def done(self) -> bool:
        return not self._done.locked()

    def wait(self) -> tuple[bytes, ...]:
        with self._done:
            pass
        if self.error is not None:
            raise self.error
        return self.result


def _simple_queue():
    """``queue.SimpleQueue`` from its C module: the ``queue`` module imports ``heapq`` for its other classes,
    which the gzip workers don't use (a short build's imports count)."""
    try:
        from _queue import SimpleQueue
    except ImportError:  # pragma: no cover - an interpreter without the C module
        from queue import SimpleQueue
    return SimpleQueue()


def _deflate_worker(jobs, level: int, finished) -> None:
    try:
        while True:
            job = jobs.get()
            if job is None:
                return
            job.run(level)
    finally:
        finished.release()


def _start_worker(jobs, level: int):
    """A deflate worker on a ``_thread`` thread; returns the lock it releases when it ends (acquire it to join).
    ``threading`` is not needed for that: it imports functools and collections, a good part of a short build's
    imports. Like a daemon thread, it does not hold up the interpreter's exit."""
    finished = _thread.allocate_lock()
    finished.acquire()
    _thread.start_new_thread(_deflate_worker, (jobs, level, finished))
    return finished


class ParallelGzipWriter:
    """A gzip stream (one RFC 1952 member) compressed by worker threads; ``write``/``close`` like a file.

    Header: no name, mtime 0, XFL by level as zlib sets it, OS 255 ("unknown"): nothing host or time specific.
    ``close`` writes the trailer (CRC-32 and length of the whole input) but does not close ``out``. Memory stays
    bounded: at most ``2 * threads`` blocks are in flight. With ``hash_input``, the input's SHA-256 (a layer's
    diff_id) is taken too: ``input_digest``, ``input_size``.

    A full block goes to a worker first and is checked (CRC-32, SHA-256) here afterwards, while the worker deflates
    it: the first blocks reach the workers without waiting for two passes over them, and the checks run beside
    the deflate (zlib and OpenSSL release the GIL for buffers this large). The workers are plain ``_thread`` threads fed by a queue
    (started as blocks arrive, up to ``threads``), not a ``concurrent.futures`` pool nor ``threading`` threads:
    those modules import ``logging``, ``functools`` and ``collections``, which cost a short build more than its
    whole tar.
    """

    def __init__(self, out, level: int = 1, threads: int | None = None, block_size: int = GZIP_BLOCK,
                 hash_input: bool = False):
        if not 1 <= level <= 9:
            raise DockerlessError(f"compressing with gzip: level {level} is not 1-9. Pick a level from 1 to 9.")
        if block_size < _GZIP_WINDOW:
            raise DockerlessError(f"compressing with gzip: block size {block_size} is below 32 KiB (internal error)")
        self.out = out
        self.level = level
        self.block_size = block_size
        self.threads = max(1, threads if threads is not None else gzip_threads())
        self._jobs = None  # queue.SimpleQueue, made with the first worker
        self._workers: list = []  # each worker's "finished" lock (_start_worker)
        self._pending: deque[_DeflateJob] = deque()
        # The block being filled: what ``write`` gets is copied into it once and the full block goes to a worker as
        # it is (a new one is started). Appending to a bytearray and slicing the block off it copied every byte
        # twice into fresh memory, and each fresh page costs a page fault (half of a short build's).
        self._block = bytearray(block_size)
        self._fill = 0
        self._zdict = b""
        self._crc = 0
        self._length = 0
        self._hash_input = hash_input
        self._sha = None  # made on the first block: loading libcrypto waits until a worker has the first one
        self._closed = False
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        # ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL OS=255 (RFC 1952 section 2.3). Written with the first deflated
        # piece: a store blob writer loads libcrypto for its first write, which can then wait until a worker runs.
        self._header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 255))

    def write(self, data) -> int:
        if self._closed:
            raise DockerlessError("compressing with gzip: write after close (internal error)")
        n = len(data)
        if not n:
            return 0
        view = memoryview(data)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        n = view.nbytes
        self._length += n
        pos = 0
        while pos < n:
            room = self.block_size - self._fill
            take = room if n - pos > room else n - pos
            self._block[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.block_size:
                block, self._block, self._fill = self._block, bytearray(self.block_size), 0
                self._submit(block, last=False)
        return len(data)

    def write_from(self, fd: int, count: int) -> int:
        """Read at most ``count`` bytes of ``fd`` straight into the block being filled (at most what it has room
        for); returns how many were read, 0 at the end of the file. Same stream as ``write`` of those bytes."""
        if self._closed:
            raise DockerlessError("compressing with gzip: write after close (internal error)")
        fill = self._fill
        take = min(count, self.block_size - fill)
        with memoryview(self._block) as view:
            got = os.readv(fd, [view[fill : fill + take]])
        self._fill = fill + got
        self._length += got
        if self._fill == self.block_size:
            block, self._block, self._fill = self._block, bytearray(self.block_size), 0
            self._submit(block, last=False)
        return got

    @property
    def input_size(self) -> int:
        """Bytes given so far (``write`` and ``write_from``)."""
        return self._length

    @property
    def input_digest(self) -> str:
        """``sha256:<hex>`` of the input (``hash_input``), complete after ``close``."""
        if not self._hash_input:
            raise DockerlessError("compressing with gzip: the input is not hashed (internal error)")
        if self._sha is None:
            self._sha = new_sha256()
        return "sha256:" + self._sha.hexdigest()

    def _check(self, block) -> None:
        """The stream's CRC-32 and (``hash_input``) SHA-256 over ``block``, the next piece of input in order."""
        self._crc = zlib.crc32(block, self._crc)
        if self._hash_input:
            if self._sha is None:
                self._sha = new_sha256()
            self._sha.update(block)

    def _write_out(self, pieces: tuple[bytes, ...]) -> None:
        if self._header:
            self.out.write(self._header)
            self._header = b""
        for piece in pieces:
            if piece:
                self.out.write(piece)

    def _submit(self, block, last: bool) -> None:
        """Hand ``block`` (a bytes-like object nobody writes to any more) to a worker, or deflate it here."""
        zdict = self._zdict
        self._zdict = bytes(block[-_GZIP_WINDOW:])  # every block but the last is at least 32 KiB
        if self.threads == 1 or last:
            # One worker, a stream of a single block (no thread to start), or the last block: this thread would
            # only wait for the workers, and a short last block alone on a worker left a core idle at the end.
            # Same bytes either way.
            self._check(block)
            pieces = _deflate_block(block, zdict, self.level, last)
            while self._pending:
                self._write_out(self._pending.popleft().wait())
            self._write_out(pieces)
            return
        if self._jobs is None:
            self._jobs = _simple_queue()
        job = _DeflateJob(block, zdict, last)
        self._jobs.put(job)
        started = len(self._workers) < self.threads and len(self._pending) >= len(self._workers)
        if started:
            self._workers.append(_start_worker(self._jobs, self.level))
        self._pending.append(job)
        if started:
            # A new worker needs the GIL before it can take the block: wait until it has, or it waits for this
            # thread to let go for long enough, and the next thing here may hold the GIL for milliseconds
            # (loading libcrypto for the first block's SHA-256). Later blocks find their workers running: this
            # thread lets go of the GIL for each read and checksum, and does not wait for the scheduler then.
            job.wait_picked()
        # The worker only reads the block: checking it at the same time is safe, and off the workers' path.
        self._check(block)
        # Write finished blocks in order; wait only when too many are in flight (bounded memory).
        while self._pending and (self._pending[0].done() or len(self._pending) > 2 * self.threads):
            self._write_out(self._pending.popleft().wait())

    def flush(self) -> None:
        """Nothing to flush before ``close``: a block is only complete at its full size or at the end."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            block, self._block = self._block, bytearray()
            self._submit(memoryview(block)[: self._fill], last=True)
            while self._pending:
                self._write_out(self._pending.popleft().wait())
            self.out.write((self._crc & 0xFFFFFFFF).to_bytes(4, "little") +
                           (self._length & 0xFFFFFFFF).to_bytes(4, "little"))
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop the workers without writing anything more (after an error)."""
        self._closed = True
        for job in self._pending:
            job.cancelled = True
        self._pending.clear()
        if self._jobs is not None:
            workers, self._workers = self._workers, []
            for sentinel in [None] * len(workers):  # one per worker: each ends at the first it takes
                self._jobs.put(sentinel)
            for finished in workers:
                with finished:  # released when that worker has ended
                    pass
            self._jobs = None


DEFAULT_LEVELS = {"gzip": 1, "zstd": 3, "none": 0}


def open_compressor(kind: str, out, level: int | None = None, hash_input: bool = False):
    """A writer with ``write``/``close`` that compresses into ``out`` deterministically. ``hash_input``: the gzip
    writer hashes what it is given (``input_digest``); the other kinds ignore it."""
    if level is None:
        level = DEFAULT_LEVELS.get(kind, 0)
    if kind == "none":
        return _Passthrough(out)
    if kind == "gzip":
        if not 1 <= level <= 9:
            raise DockerlessError(f"compressing with gzip: level {level} is not 1-9. Pick a level from 1 to 9.")
        return ParallelGzipWriter(out, level, hash_input=hash_input)
    if kind == "zstd":
        if not 1 <= level <= 19:
            raise DockerlessError(f"compressing with zstd: level {level} is not 1-19. Pick a level from 1 to 19.")
        import shutil  # only zstd layers need it

        binary = shutil.which("zstd")
        if binary:
            return _ZstdProcess(out, level, binary)
        module = _zstandard_module()
        if module is not None:
            return _ZstdModule(out, level, module)
        raise DockerlessError(
            "compressing with zstd: neither the zstd command nor the Python zstandard module is installed. "
            "Install zstd, or use gzip."
        )
    raise DockerlessError(f"compressing a layer: unknown compression {kind!r}. Use gzip, zstd or none.")


class ArchiveResult(Record):
    """Digests of one written archive: ``diff_id`` over the tar, ``digest``/``size`` over the compressed bytes."""

    diff_id: str
    digest: str
    size: int
    uncompressed_size: int
    paths: list[str]
    media_type: str


def write_archive(
    entries: Iterable[TarEntry],
    out: BinaryIO | None,
    compression: str = "gzip",
    level: int | None = None,
    mtime: int = 0,
) -> ArchiveResult:
    """Write a sorted, deterministic, compressed tar of ``entries`` to ``out`` (None: only compute digests).
    ``diff_id`` and the compressed ``digest``/``size`` are taken as the bytes pass; when ``out`` is a
    ``SHA256_SINK`` (see HashingWriter), its own ``digest`` and ``size``."""
    # The store's blob writer hashes what it stores: one SHA-256 pass over the compressed bytes, not two.
    blob = out if getattr(out, "SHA256_SINK", False) else HashingWriter(out)
    comp = open_compressor(compression, blob, level, hash_input=True)
    # The gzip writer hashes the tar itself, a block at a time (and reads files straight into its blocks); the
    # other compressors are given the tar through a HashingWriter.
    gzip_writer = comp if isinstance(comp, ParallelGzipWriter) else None
    tar = gzip_writer or HashingWriter(comp)
    try:
        paths = write_entries(entries, tar, mtime)
    except BaseException:
        abort = getattr(comp, "abort", None)
        (abort or comp.close)()
        raise
    comp.close()
    return ArchiveResult(
        diff_id=gzip_writer.input_digest if gzip_writer else tar.digest,
        digest=blob.digest,
        size=blob.size,
        uncompressed_size=gzip_writer.input_size if gzip_writer else tar.size,
        paths=paths,
        media_type=MEDIA_TYPES[compression],
    )
