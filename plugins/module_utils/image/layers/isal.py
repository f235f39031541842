# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ISA-L's inflate (``libisal.so.2``: Debian's and Ubuntu's ``libisal2``, Fedora's ``isa-l``) through ctypes.

ISA-L inflates Debian's layers in about half the CPU time of zlib on x86-64 (SIMD Huffman decoding). It is
optional: ``load()`` returns None when the library is missing or lacks a symbol, and decompress.py runs a
self-test through it before the first layer and keeps zlib for the whole process on any mismatch. What is used
here: ``isal_inflate_init`` / ``isal_inflate_reset`` / ``isal_inflate`` on a ``struct inflate_state`` (laid out
below as in ``igzip_lib.h`` of ISA-L 2.x), inflating raw deflate with ``crc_flag = ISAL_GZIP_NO_HDR``: ISA-L
keeps the CRC-32 of the output, the gzip header and trailer are read by decompress.py. ISA-L's own gzip header
reader is not used: ``isal_inflate`` restarts it with a fresh header struct at every call, so a header cut
across two reads (an optional name or comment field) is not parsed reliably.

``ctypes.CDLL`` functions release the GIL during the call, so inflating in ``decompress.Prefetch``'s helper
thread overlaps with the extractor.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

# The soname, opened directly: ctypes.util.find_library runs ldconfig (or gcc) in a subprocess.
LIBISAL = "libisal.so.2"

# igzip_lib.h
ISAL_GZIP_NO_HDR = 2            # raw deflate, CRC-32 of the output kept in ``crc``, no header or trailer read
ISAL_BLOCK_FINISH = 5           # enum isal_block_state: the final block is decoded and all output handed out
ISAL_DECOMP_OK = 0
ISAL_INVALID_BLOCK = -1
ISAL_INVALID_SYMBOL = -2
ISAL_INVALID_LOOKBACK = -3
DEFLATE_ERRORS = frozenset((ISAL_INVALID_BLOCK, ISAL_INVALID_SYMBOL, ISAL_INVALID_LOOKBACK))

_DEF_HIST_SIZE = 32 * 1024
_DEF_MAX_HDR_SIZE = 328
_DEF_LIT_LEN_SYMBOLS = 257 + 29
_DEF_DIST_SYMBOLS = 30
_LOOK_AHEAD = (258 + 31) & ~31
_DECODE_LONG_BITS = 12
_DECODE_SHORT_BITS = 10


def _huff_long_aligned(symbols: int, rem: int) -> int:
    """ISAL_HUFF_CODE_{LARGE,SMALL}_LONG_ALIGNED: the long lookup table's length, as igzip_lib.h computes it."""
    dup = (1 << rem) - (rem + 1)
    unused = (1 << rem) - (1 << (rem // 2)) - (1 << ((rem + 1) // 2)) + 1
    size = symbols + dup + unused
    return size + (-size & 0xF)


class IsalError(Exception):
    """``isal_inflate`` returned an error code (``code``), or the stream made no progress."""

    def __init__(self, code: int) -> None:
        super().__init__(f"isal_inflate returned {code}")
        self.code = code


class Isal:
    """The bound library: ``state()`` gives a new inflate state, ``Inflater(isal)`` inflates with it."""

    def __init__(self, library: str = LIBISAL) -> None:
        import ctypes  # only on the pull path, once per process

        class HuffLarge(ctypes.Structure):
            _fields_ = [
                ("short_code_lookup", ctypes.c_uint32 * (1 << _DECODE_LONG_BITS)),
                ("long_code_lookup", ctypes.c_uint16 * _huff_long_aligned(_DEF_LIT_LEN_SYMBOLS, 21 - _DECODE_LONG_BITS)),
            ]

        class HuffSmall(ctypes.Structure):
            _fields_ = [
                ("short_code_lookup", ctypes.c_uint16 * (1 << _DECODE_SHORT_BITS)),
                ("long_code_lookup", ctypes.c_uint16 * _huff_long_aligned(_DEF_DIST_SYMBOLS, 15 - _DECODE_SHORT_BITS)),
            ]

        class InflateState(ctypes.Structure):
            # struct inflate_state; the union of type0_block_len / count / dict_id is one 32-bit field here.
            _fields_ = [
                ("next_out", ctypes.c_void_p),
                ("avail_out", ctypes.c_uint32),
                ("total_out", ctypes.c_uint32),
                ("next_in", ctypes.c_void_p),
                ("read_in", ctypes.c_uint64),
                ("avail_in", ctypes.c_uint32),
                ("read_in_length", ctypes.c_int32),
                ("lit_huff_code", HuffLarge),
                ("dist_huff_code", HuffSmall),
                ("block_state", ctypes.c_int),
                ("dict_length", ctypes.c_uint32),
                ("bfinal", ctypes.c_uint32),
                ("crc_flag", ctypes.c_uint32),
                ("crc", ctypes.c_uint32),
                ("hist_bits", ctypes.c_uint32),
                ("type0_block_len", ctypes.c_int32),
                ("write_overflow_lits", ctypes.c_int32),
                ("write_overflow_len", ctypes.c_int32),
                ("copy_overflow_length", ctypes.c_int32),
                ("copy_overflow_distance", ctypes.c_int32),
                ("wrapper_flag", ctypes.c_int16),
                ("tmp_in_size", ctypes.c_int16),
                ("tmp_out_valid", ctypes.c_int32),
                ("tmp_out_processed", ctypes.c_int32),
                ("tmp_in_buffer", ctypes.c_uint8 * _DEF_MAX_HDR_SIZE),
                ("tmp_out_buffer", ctypes.c_uint8 * (2 * _DEF_HIST_SIZE + _LOOK_AHEAD)),
            ]

        lib = ctypes.CDLL(library)  # OSError when missing
        # AttributeError when a symbol is missing (another library under that name)
        self.inflate_init = lib.isal_inflate_init
        self.inflate_reset = lib.isal_inflate_reset
        self.inflate = lib.isal_inflate
        for fn in (self.inflate_init, self.inflate_reset, self.inflate):
            fn.argtypes = [ctypes.c_void_p]
        self.inflate_init.restype = None
        self.inflate_reset.restype = None
        self.inflate.restype = ctypes.c_int
        self.library = library
        self.State = InflateState
        self.ctypes = ctypes


class Inflater:
    """One raw deflate stream at a time (a gzip member's body), with the CRC-32 and size of what it produced.

    ``inflate`` takes the input as a bytes object and a position in it (no copies: ISA-L reads the object's
    buffer) and writes to ``out`` (an address) at most ``avail`` bytes."""

    def __init__(self, isal: Isal) -> None:
        self._isal = isal
        self._st = isal.State()
        self._addr = isal.ctypes.addressof(self._st)
        isal.inflate_init(self._addr)
        self._st.crc_flag = ISAL_GZIP_NO_HDR
        self._tail = b""   # the last bytes fed before ``self._last`` (see ``inflate``)
        self._last: bytes | None = None

    def reset(self) -> None:
        """Ready for the next member (isal_inflate_reset keeps crc_flag and hist_bits)."""
        self._isal.inflate_reset(self._addr)
        self._tail = b""
        self._last = None

    @property
    def crc(self) -> int:
        return self._st.crc

    @property
    def total_out(self) -> int:
        """Bytes produced by this member, modulo 2**32 (as the gzip trailer's ISIZE)."""
        return self._st.total_out

    def inflate(self, data: bytes, pos: int, out: int, avail: int) -> tuple[bytes, int, int, bool]:
        """Inflates ``data[pos:]`` into ``avail`` bytes at address ``out``. Returns (data, pos, produced, done):
        ``data[pos:]`` is the input left; when ``done`` (the final block's end) it starts right after the deflate
        stream, and ``data`` may then be a new object that also holds a few bytes fed earlier. Raises
        IsalError on corrupt data."""
        st = self._st
        if data is not self._last:
            if self._last is not None:
                # ISA-L buffers up to 8 input bytes in ``read_in``; when the stream ends, the whole bytes still
                # buffered are not part of it, and may have come from an earlier input object.
                self._tail = (self._tail + self._last[-8:])[-8:]
            self._last = data
        base = self._isal.ctypes.cast(self._isal.ctypes.c_char_p(data), self._isal.ctypes.c_void_p).value or 0
        st.next_in = base + pos
        st.avail_in = len(data) - pos
        st.next_out = out
        st.avail_out = avail
        ret = self._isal.inflate(self._addr)
        if ret != ISAL_DECOMP_OK:
            raise IsalError(ret)
        produced = avail - st.avail_out
        new_pos = (st.next_in or 0) - base
        if not 0 <= new_pos <= len(data):
            raise IsalError(-100)  # next_in outside the buffer: not the layout this binding expects
        done = st.block_state == ISAL_BLOCK_FINISH
        if done:
            new_pos -= st.read_in_length // 8
            if new_pos < 0:
                if -new_pos > len(self._tail):
                    raise IsalError(-101)
                data = self._tail[new_pos:] + data
                new_pos = 0
        elif produced == 0 and new_pos == pos and pos < len(data):
            raise IsalError(-102)  # input and room for output, yet no progress
        return data, new_pos, produced, done


_LOCK = threading.Lock()
_LOADED: dict = {}


def load(library: str = LIBISAL) -> Isal | None:
    """The library bound once per process (per name), or None when it cannot be opened or lacks a symbol."""
    with _LOCK:
        if library not in _LOADED:
            try:
                _LOADED[library] = Isal(library)
            except Exception:  # pylint: disable=broad-exception-caught  # missing, no such symbol, ...: zlib then
                _LOADED[library] = None
        return _LOADED[library]


def output_buffer(isal: Isal, size: int) -> Any:
    """A C buffer of ``size`` bytes for ``Inflater.inflate``'s output (``isal.ctypes.addressof`` gives its address)."""
    return isal.ctypes.create_string_buffer(size)
