# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small ELF reader and a model of the glibc loader's library search, stdlib only.

Nothing here ever executes the file under inspection: ``read_elf`` parses the ELF header, the program headers
(``PT_INTERP``, ``PT_LOAD``, ``PT_DYNAMIC``) and the dynamic section (``DT_NEEDED``, ``DT_SONAME``,
``DT_RPATH``, ``DT_RUNPATH``, ``DT_FLAGS_1``) the way the kernel and ``ld.so`` see them, through the program
headers, so stripped binaries without section headers work too.

``resolve_closure`` follows glibc's ``elf/dl-load.c`` search order for every ``DT_NEEDED`` name:
``DT_RPATH`` of the object and of its loaders (only when the object has no ``DT_RUNPATH``), the object's own
``DT_RUNPATH``, the directories of ``ld.so.conf`` (with ``include`` globs; stands in for ``ld.so.cache``),
then the default directories. Candidates whose ELF class, byte order or machine differ are skipped, as the
loader does. Libraries loaded with ``dlopen`` (NSS modules, gconv, plugins) are outside any static closure.

All host paths are looked up below ``root`` (default ``/``) as if it were ``/``: symlinks are followed inside
that root, never out of it, which is what tests use to model a host in ``tmp_path``.
"""

from __future__ import annotations

import os
import stat
import struct

from ansible_collections.dockerless.containers.plugins.module_utils.common import DEFAULT_SEARCH_PATH
from ansible_collections.dockerless.containers.plugins.module_utils.errors import BuildError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record

ELF_MAGIC = b"\x7fELF"
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

ET_EXEC = 2
ET_DYN = 3

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PN_XNUM = 0xFFFF

DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_FLAGS_1 = 0x6FFFFFFB
DF_1_NODEFLIB = 0x00000800
DF_1_PIE = 0x08000000

# Bounds that keep a hostile file from making us allocate or loop without end.
MAX_PHNUM = 4096
MAX_DYN_ENTRIES = 65536
MAX_STRING = 4096
MAX_INTERP = 4096
MAX_SYMLINK_HOPS = 40
MAX_CLOSURE = 10000

# e_machine -> (OCI/GOARCH architecture for 32-bit, for 64-bit); None where the pair does not exist.
# Values from the ELF gABI machine table; names from the OCI image spec (GOARCH).
_MACHINES = {
    3: ("386", None),
    8: ("mips", "mips64"),  # little endian gets the "le" suffix below
    20: ("ppc", None),
    21: (None, "ppc64"),  # little endian: ppc64le
    22: ("s390", "s390x"),
    40: ("arm", None),
    43: (None, "sparc64"),
    62: (None, "amd64"),
    183: (None, "arm64"),
    243: ("riscv32", "riscv64"),
    258: ("loong32", "loong64"),
}
_OSABI = {0: "linux", 3: "linux", 2: "netbsd", 6: "solaris", 9: "freebsd", 12: "openbsd"}

# Debian/Ubuntu multiarch triplets, so the default search includes /lib/<triplet> as Debian's ld.so does.
_TRIPLETS = {
    "amd64": "x86_64-linux-gnu",
    "386": "i386-linux-gnu",
    "arm64": "aarch64-linux-gnu",
    "arm": "arm-linux-gnueabihf",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
    "riscv64": "riscv64-linux-gnu",
    "mips64le": "mips64el-linux-gnuabi64",
    "mipsle": "mipsel-linux-gnu",
    "loong64": "loongarch64-linux-gnu",
}
_PLATFORMS = {
    "amd64": "x86_64",
    "386": "i686",
    "arm64": "aarch64",
    "arm": "armv7l",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

# ElfInfo, PathStep and Closure are runtime_record.Record classes (dataclass-like, without the per-class code
# generation of @dataclass at import: a build is a short command).


class ElfInfo(Record):
    """What the loader needs to know about one ELF file."""

    FROZEN = True

    path: str
    elf_class: int
    byte_order: int
    machine: int
    osabi: int
    elf_type: int
    interpreter: str | None = None
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] | None = None
    flags_1: int = 0
    dynamic: bool = False

    @property
    def bits(self) -> int:
        return 64 if self.elf_class == ELFCLASS64 else 32

    @property
    def compat_key(self) -> tuple[int, int, int]:
        """Objects the loader can combine share class, byte order and machine."""
        return (self.elf_class, self.byte_order, self.machine)

    @property
    def architecture(self) -> str:
        """The OCI ``architecture`` (GOARCH) value, e.g. ``amd64``, ``arm64``, ``ppc64le``."""
        pair = _MACHINES.get(self.machine)
        name = None
        if pair is not None:
            name = pair[1] if self.elf_class == ELFCLASS64 else pair[0]
        if name is None:
            raise BuildError(
                f"reading {self.path}: ELF machine {self.machine} ({self.bits}-bit) has no OCI architecture name. "
                "Set the architecture explicitly."
            )
        little = self.byte_order == ELFDATA2LSB
        if name in ("mips", "mips64") and little:
            name += "le"
        if name == "ppc64" and little:
            name = "ppc64le"
        return name

    @property
    def os(self) -> str:
        """The OCI ``os`` value from ``EI_OSABI`` (``SYSV`` and ``GNU`` both mean Linux)."""
        return _OSABI.get(self.osabi, "linux")


def _fail(path: str, what: str) -> BuildError:
    return BuildError(f"reading ELF file {path}: {what}. Name a real ELF executable or library.")


def is_elf(path: str) -> bool:
    """True when ``path`` (not followed if it is a symlink) is a regular file starting with the ELF magic."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, 4) == ELF_MAGIC
    finally:
        os.close(fd)


class _Reader:
    """Bounded reads from an open file; every out-of-range access is a BuildError naming the file."""

    def __init__(self, fd: int, path: str, size: int):
        self.fd = fd
        self.path = path
        self.size = size

    def read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _fail(self.path, f"{what} lies outside the file (offset {offset}, length {length})")
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise _fail(self.path, f"short read of {what}")
        return data


def read_elf(path: str) -> ElfInfo:
    """Parse the headers of the ELF file at ``path`` (a symlink is followed) without executing it.

    Raises BuildError for anything that is not a well-formed ELF file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise BuildError(f"reading ELF file {path}: {exc.strerror}. Check the path and its permissions.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _fail(path, "not a regular file")
        return _parse(_Reader(fd, path, st.st_size))
    finally:
        os.close(fd)


def _parse(r: _Reader) -> ElfInfo:
    path = r.path
    if r.size < 52:
        raise _fail(path, "too short for an ELF header")
    ident = r.read(0, 16, "e_ident")
    if ident[:4] != ELF_MAGIC:
        raise _fail(path, "no ELF magic")
    elf_class, data, osabi = ident[4], ident[5], ident[7]
    if elf_class not in (ELFCLASS32, ELFCLASS64):
        raise _fail(path, f"unknown ELF class {elf_class}")
    if data not in (ELFDATA2LSB, ELFDATA2MSB):
        raise _fail(path, f"unknown byte order {data}")
    end = "<" if data == ELFDATA2LSB else ">"
    is64 = elf_class == ELFCLASS64
    hdr_fmt = end + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    hdr = struct.unpack(hdr_fmt, r.read(16, struct.calcsize(hdr_fmt), "ELF header"))
    e_type, e_machine, _ver, _entry, e_phoff, e_shoff, _flags, _ehsize, e_phentsize, e_phnum = hdr[:10]
    e_shentsize = hdr[10]
    ph_fmt = end + ("IIQQQQQQ" if is64 else "IIIIIIII")
    ph_size = struct.calcsize(ph_fmt)
    if e_phnum == PN_XNUM:
        # More than 0xfffe program headers: the real count is in section header 0's sh_info (gABI).
        sh_fmt = end + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
        if e_shentsize < struct.calcsize(sh_fmt):
            raise _fail(path, "PN_XNUM without a usable section header 0")
        sh0 = struct.unpack(sh_fmt, r.read(e_shoff, struct.calcsize(sh_fmt), "section header 0"))
        e_phnum = sh0[7]
    if e_phnum > MAX_PHNUM:
        raise _fail(path, f"{e_phnum} program headers (more than {MAX_PHNUM})")
    if e_phnum and e_phentsize < ph_size:
        raise _fail(path, f"program header entries of {e_phentsize} bytes (need {ph_size})")

    loads: list[tuple[int, int, int]] = []  # (vaddr, filesz, offset)
    interp_ph = None
    dyn_ph = None
    for i in range(e_phnum):
        raw = r.read(e_phoff + i * e_phentsize, ph_size, f"program header {i}")
        fields = struct.unpack(ph_fmt, raw)
        if is64:
            p_type, _pflags, p_offset, p_vaddr, _paddr, p_filesz = fields[:6]
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = fields[:5]
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == PT_INTERP and interp_ph is None:
            interp_ph = (p_offset, p_filesz)
        elif p_type == PT_DYNAMIC and dyn_ph is None:
            dyn_ph = (p_offset, p_filesz)

    interpreter = None
    if interp_ph is not None:
        off, size = interp_ph
        if size == 0 or size > MAX_INTERP:
            raise _fail(path, f"PT_INTERP of {size} bytes")
        raw = r.read(off, size, "PT_INTERP")
        interpreter = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if not interpreter.startswith("/"):
            raise _fail(path, f"relative ELF interpreter {interpreter!r}")

    needed: list[str] = []
    soname = None
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] | None = None
    flags_1 = 0
    if dyn_ph is not None:
        dyn_fmt = end + ("qQ" if is64 else "iI")
        dyn_size = struct.calcsize(dyn_fmt)
        off, size = dyn_ph
        count = min(size // dyn_size, MAX_DYN_ENTRIES)
        raw = r.read(off, count * dyn_size, "PT_DYNAMIC")
        tags: list[tuple[int, int]] = []
        for i in range(count):
            tag, val = struct.unpack_from(dyn_fmt, raw, i * dyn_size)
            if tag == DT_NULL:
                break
            tags.append((tag, val))
        strtab = next((v for t, v in tags if t == DT_STRTAB), None)
        strsz = next((v for t, v in tags if t == DT_STRSZ), None)
        string_tags = {DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH}
        if any(t in string_tags for t, _v in tags):
            if strtab is None:
                raise _fail(path, "dynamic section without DT_STRTAB")
            str_off = _vaddr_to_offset(loads, strtab)
            if str_off is None:
                raise _fail(path, f"DT_STRTAB address {strtab:#x} is in no PT_LOAD segment")
            limit = r.size - str_off if strsz is None else min(strsz, r.size - str_off)

            def string(index: int) -> str:
                if index < 0 or index >= limit:
                    raise _fail(path, f"string index {index} outside DT_STRTAB")
                chunk = r.read(str_off + index, min(MAX_STRING, limit - index), "dynamic string")
                nul = chunk.find(b"\0")
                if nul < 0:
                    raise _fail(path, "unterminated or overlong dynamic string")
                return chunk[:nul].decode("utf-8", "surrogateescape")

            for tag, val in tags:
                if tag == DT_NEEDED:
                    needed.append(string(val))
                elif tag == DT_SONAME:
                    soname = string(val)
                elif tag == DT_RPATH:
                    rpath += tuple(p for p in string(val).split(":") if p)
                elif tag == DT_RUNPATH:
                    runpath = (runpath or ()) + tuple(p for p in string(val).split(":") if p)
        for tag, val in tags:
            if tag == DT_FLAGS_1:
                flags_1 = val
        # glibc ignores DT_RPATH when DT_RUNPATH is present (elf/get-dynamic-info.h).
        if runpath is not None:
            rpath = ()

    return ElfInfo(
        path=path,
        elf_class=elf_class,
        byte_order=data,
        machine=e_machine,
        osabi=osabi,
        elf_type=e_type,
        interpreter=interpreter,
        needed=tuple(needed),
        soname=soname,
        rpath=rpath,
        runpath=runpath,
        flags_1=flags_1,
        dynamic=dyn_ph is not None,
    )


def _vaddr_to_offset(loads: list[tuple[int, int, int]], addr: int) -> int | None:
    for vaddr, filesz, offset in loads:
        if vaddr <= addr < vaddr + filesz:
            return offset + (addr - vaddr)
    return None


# --------------------------------------------------------------------------------------------------------------
# Paths below a root, the way the kernel walks them


class PathStep(Record):
    """One component met while walking a path: a directory, a symlink (with its target) or the final object."""

    FROZEN = True

    path: str  # absolute path as seen inside the root, e.g. "/lib"
    kind: str  # "dir", "symlink", "file" or "other"
    target: str | None = None


class RootFS:
    """Resolve absolute paths inside ``root`` as if it were ``/``; symlinks never lead outside it.

    What ``lstat`` and ``readlink`` told ``walk`` about each path is kept for the object's life (one plan): the
    closure of two executables walks the same few directories and links about 40 times (200 ``lstat`` calls
    became 30, a millisecond of a short build). The files themselves are checked again when they are read."""

    def __init__(self, root: str = "/"):
        self.root = os.path.abspath(root)
        self._seen: dict[str, tuple[int, str | None]] = {}  # path inside the root -> (st_mode, link target)

    def _lstat(self, path: str) -> tuple[int, str | None]:
        """(st_mode, symlink target or None) of ``path`` inside the root, not followed; OSError as lstat."""
        seen = self._seen.get(path)
        if seen is None:
            host = self.host(path)
            mode = os.lstat(host).st_mode
            seen = (mode, os.readlink(host) if stat.S_ISLNK(mode) else None)
            self._seen[path] = seen
        return seen

    def host(self, path: str) -> str:
        """The host path of an absolute path inside the root (no symlinks followed)."""
        rel = path.lstrip("/")
        return os.path.join(self.root, rel) if rel else self.root

    def walk(self, path: str, follow_last: bool = True) -> tuple[str, list[PathStep]]:
        """Resolve ``path``; return the real path inside the root and every symlink met on the way.

        Raises FileNotFoundError for a missing component and BuildError for symlink loops.
        """
        if not path.startswith("/"):
            raise BuildError(f"resolving {path!r}: not an absolute path. Use a path starting with '/'.")
        steps: list[PathStep] = []
        pending = [c for c in path.split("/") if c]
        pending.reverse()
        current: list[str] = []
        hops = 0
        while pending:
            comp = pending.pop()
            if comp == ".":
                continue
            if comp == "..":
                if current:
                    current.pop()
                continue
            candidate = "/" + "/".join(current + [comp])
            mode, target = self._lstat(candidate)
            is_last = not pending
            if target is not None and (follow_last or not is_last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise BuildError(f"resolving {path}: too many levels of symbolic links. Fix the link chain.")
                steps.append(PathStep(candidate, "symlink", target))
                parts = [c for c in target.split("/") if c]
                if target.startswith("/"):
                    current = []
                pending.extend(reversed(parts))
                continue
            if not is_last and not stat.S_ISDIR(mode):
                raise NotADirectoryError(candidate)
            current.append(comp)
        return "/" + "/".join(current), steps

    def realpath(self, path: str) -> str:
        return self.walk(path)[0]

    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(self.host(path))

    def exists(self, path: str) -> bool:
        try:
            self.walk(path)
        except (OSError, BuildError):
            return False
        return True

    def is_regular(self, path: str) -> bool:
        try:
            real = self.realpath(path)
            return stat.S_ISREG(self._lstat(real)[0])
        except (OSError, BuildError):
            return False


# --------------------------------------------------------------------------------------------------------------
# ld.so.conf and the search


def _wildcard_match(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase(name, pattern)`` for a pattern whose only wildcards are ``*`` and ``?``."""
    n = p = 0
    star_p, star_n = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star_p, star_n = p, n
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            n += 1
            p += 1
        elif star_p >= 0:  # let the last '*' take one more character
            star_n += 1
            n, p = star_n, star_p + 1
        else:
            return False
    return pattern[p:] == "*" * (len(pattern) - p)


def glob_paths(pattern: str) -> list[str]:
    """``glob.glob(pattern)``. The shapes ld.so.conf and the hwcaps look-up use (``*``/``?`` in the last component
    only, e.g. ``/etc/ld.so.conf.d/*.conf``) are listed here with os.scandir; anything else goes to ``glob``,
    which imports ``re`` (enum, functools, collections: a sixth of a short build's CPU time)."""
    directory, base = os.path.split(pattern)
    if "[" in pattern or any(c in directory for c in "*?") or not base or not any(c in base for c in "*?"):
        import glob  # the general case

        return glob.glob(pattern)
    try:
        with os.scandir(directory or os.curdir) as it:
            names = [entry.name for entry in it]
    except OSError:
        return []
    hidden = base.startswith(".")  # glob leaves names starting with '.' to patterns starting with '.'
    return [os.path.join(directory, name) for name in names
            if (hidden or not name.startswith(".")) and _wildcard_match(name, base)]


def read_ld_so_conf(fs: RootFS, conf: str = "/etc/ld.so.conf", _depth: int = 0) -> list[str]:
    """Directories listed in ``ld.so.conf`` in order, following ``include`` globs (relative to the file)."""
    if _depth > 10:
        return []
    try:
        with open(fs.host(fs.realpath(conf)), "rb") as fh:
            text = fh.read(1 << 20).decode("utf-8", "surrogateescape")
    except (OSError, BuildError):
        return []
    dirs: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8] in (" ", "\t"):
            for pattern in line[8:].split():
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(conf), pattern)
                matches = sorted(glob_paths(fs.host(pattern)))
                for m in matches:
                    inner = "/" + os.path.relpath(m, fs.root)
                    dirs.extend(read_ld_so_conf(fs, inner, _depth + 1))
            continue
        if line.startswith("hwcap "):
            continue
        # ldconfig accepts several directories per line separated by ':', ',' or blanks, and the old "dir=TYPE".
        for d in line.replace(",", " ").replace(":", " ").split():
            d = d.split("=", 1)[0]
            if d.startswith("/"):
                dirs.append(d.rstrip("/") or "/")
    seen: set[str] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def default_dirs(info: ElfInfo) -> list[str]:
    """glibc's built-in trusted directories for this class/machine (Debian multiarch first)."""
    dirs: list[str] = []
    try:
        arch = info.architecture
    except BuildError:
        arch = ""
    triplet = _TRIPLETS.get(arch)
    if triplet:
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    if info.bits == 64:
        dirs += ["/lib64", "/usr/lib64"]
    else:
        dirs += ["/lib32", "/usr/lib32"]
    dirs += ["/lib", "/usr/lib"]
    return dirs


def expand_tokens(entry: str, origin: str, info: ElfInfo) -> list[str]:
    """Expand ``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` (also ``${...}``) in an RPATH/RUNPATH entry.

    ``$LIB`` is distribution specific (``lib64`` on Fedora, ``lib/<triplet>`` on Debian): every plausible
    value is returned, the loader would find the library in one of them.
    """
    out = [entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)]
    if "$LIB" in out[0] or "${LIB}" in out[0]:
        try:
            arch = info.architecture
        except BuildError:
            arch = ""
        libs = ["lib64" if info.bits == 64 else "lib"]
        if arch in _TRIPLETS:
            libs.append("lib/" + _TRIPLETS[arch])
        libs.append("lib")
        out = [out[0].replace("${LIB}", lib).replace("$LIB", lib) for lib in dict.fromkeys(libs)]
    if any("PLATFORM" in o for o in out):
        try:
            plat = _PLATFORMS.get(info.architecture, info.architecture)
        except BuildError:
            plat = ""
        out = [o.replace("${PLATFORM}", plat).replace("$PLATFORM", plat) for o in out]
    return [os.path.normpath(o) for o in out if o.startswith("/")]


class Closure(Record):
    """Result of ``resolve_closure``: the files the loader would map, as paths inside the root."""

    files: list[str] = Factory(list)  # executables, interpreters and libraries, in BFS order
    elves: dict[str, ElfInfo] = Factory(dict)  # path -> parsed headers
    resolved: dict[str, dict[str, str]] = Factory(dict)  # object -> {needed name: path}
    notes: list[str] = Factory(list)
    architecture: str | None = None
    os: str | None = None


class LibraryResolver:
    """Find shared libraries below ``root`` the way glibc's ld.so would, without running anything."""

    def __init__(self, root: str = "/", ld_so_conf: str = "/etc/ld.so.conf", fs: RootFS | None = None):
        self.fs = fs if fs is not None and fs.root == os.path.abspath(root) else RootFS(root)
        self.conf_dirs = read_ld_so_conf(self.fs, ld_so_conf)
        self._elf_cache: dict[str, ElfInfo | None] = {}

    def elf(self, path: str) -> ElfInfo:
        """Parse the ELF at ``path`` inside the root (cached)."""
        cached = self._elf_cache.get(path)
        if cached is None:
            cached = read_elf(self.fs.host(self.fs.realpath(path)))
            cached = ElfInfo(**{**cached.__dict__, "path": path})
            self._elf_cache[path] = cached
        return cached

    def _candidate(self, directory: str, name: str, want: tuple[int, int, int]) -> str | None:
        path = os.path.normpath(os.path.join(directory, name))
        if not self.fs.is_regular(path):
            return None
        try:
            info = self.elf(path)
        except BuildError:
            return None
        # ld.so skips files of another class or machine and keeps searching (elf/dl-load.c open_verify).
        if info.compat_key != want:
            return None
        return path

    def find(self, name: str, obj: ElfInfo, loaders: list[ElfInfo]) -> str | None:
        """Resolve one ``DT_NEEDED`` ``name`` needed by ``obj`` (loaded by the chain ``loaders``)."""
        want = obj.compat_key
        if "/" in name:
            if name.startswith("/"):
                return self._candidate("/", name, want)
            return None
        dirs: list[str] = []
        if obj.runpath is None:
            # DT_RPATH of the object, then of each object that loaded it, up to the executable.
            for o in [obj] + loaders:
                origin = os.path.dirname(o.path)
                for entry in o.rpath:
                    dirs += expand_tokens(entry, origin, o)
        else:
            origin = os.path.dirname(obj.path)
            for entry in obj.runpath:
                dirs += expand_tokens(entry, origin, obj)
        if not obj.flags_1 & DF_1_NODEFLIB:
            dirs += self.conf_dirs + default_dirs(obj)
        for d in dict.fromkeys(dirs):
            found = self._candidate(d, name, want)
            if found:
                return found
        return None

    def hwcaps_variants(self, path: str, want: tuple[int, int, int]) -> list[str]:
        """Optimised copies in ``<dir>/glibc-hwcaps/<level>/`` (glibc 2.33+) the loader may prefer at run time."""
        directory, name = os.path.split(path)
        out = []
        for sub in sorted(glob_paths(os.path.join(self.fs.host(directory), "glibc-hwcaps", "*"))):
            cand = self._candidate(os.path.join(directory, "glibc-hwcaps", os.path.basename(sub)), name, want)
            if cand:
                out.append(cand)
        return out


def find_on_path(fs: RootFS, name: str, search_path: tuple[str, ...] | list[str] = DEFAULT_SEARCH_PATH) -> str:
    """``name`` if absolute, otherwise the first executable ``dir/name`` on ``search_path`` (inside the root)."""
    if name.startswith("/"):
        return os.path.normpath(name)
    if "/" in name:
        raise BuildError(f"finding executable {name!r}: a relative path. Give an absolute path or a bare name.")
    for d in search_path:
        cand = os.path.join(d, name)
        try:
            real = fs.realpath(cand)
            st = os.stat(fs.host(real), follow_symlinks=False)
        except (OSError, BuildError):
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise BuildError(
        f"finding executable {name!r}: not found in {':'.join(search_path)}. Install it or give its absolute path."
    )


def read_shebang(fs: RootFS, path: str) -> tuple[str, str | None] | None:
    """``(interpreter, argument)`` from a ``#!`` line, or None when the file has none."""
    try:
        with open(fs.host(fs.realpath(path)), "rb") as fh:
            head = fh.read(256)
    except (OSError, BuildError):
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip()
    if not line:
        return None
    parts = line.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else None)


def resolve_closure(
    executables: list[str],
    root: str = "/",
    ld_so_conf: str = "/etc/ld.so.conf",
    search_path: tuple[str, ...] | list[str] = DEFAULT_SEARCH_PATH,
    fs: RootFS | None = None,
) -> Closure:
    """The files an image needs so each of ``executables`` can start: itself, its interpreter, its libraries.

    ``executables`` are absolute paths or names looked up on ``search_path``. A script (``#!``) brings its
    interpreter (and, for ``#!/usr/bin/env NAME``, ``NAME`` from ``search_path``) with a note. Raises
    BuildError naming the file for a missing executable, a file that is neither ELF nor script, an
    unresolvable library, or ELF files of different classes/machines. ``fs``: a RootFS of ``root`` to share what
    it has looked up with the caller.
    """
    resolver = LibraryResolver(root, ld_so_conf, fs)
    fs = resolver.fs
    result = Closure()
    seen: set[str] = set()
    key: tuple[int, int, int] | None = None
    key_owner = ""

    def add_file(path: str) -> None:
        if path not in seen:
            seen.add(path)
            result.files.append(path)

    def check_key(info: ElfInfo) -> None:
        nonlocal key, key_owner
        if key is None:
            key, key_owner = info.compat_key, info.path
            result.architecture, result.os = info.architecture, info.os
        elif info.compat_key != key:
            raise BuildError(
                f"building from {info.path}: it is a {info.bits}-bit {_describe(info)} ELF file but {key_owner} "
                f"is {_describe_key(key)}. An image holds one architecture; build them separately."
            )

    # Breadth-first, as ld.so maps DT_NEEDED entries (elf/dl-deps.c).
    queue: list[tuple[ElfInfo, list[ElfInfo]]] = []
    loaded_by_name: dict[str, str] = {}

    def start(name: str, depth: int = 0) -> None:
        if depth > 4:
            raise BuildError(f"resolving {name}: more than 4 nested script interpreters. Point at the real binary.")
        path = find_on_path(fs, name, search_path)
        try:
            fs.walk(path)
        except FileNotFoundError:
            raise BuildError(f"adding executable {path}: no such file. Install it or fix the path.") from None
        except NotADirectoryError as exc:
            raise BuildError(f"adding executable {path}: {exc} is not a directory. Fix the path.") from None
        if not fs.is_regular(path):
            raise BuildError(f"adding executable {path}: not a regular file. Name an ELF binary or a script.")
        real = fs.realpath(path)
        if is_elf(fs.host(real)):
            info = resolver.elf(path)
            if info.elf_type not in (ET_EXEC, ET_DYN):
                raise BuildError(f"adding executable {path}: ELF type {info.elf_type} is not executable.")
            add_file(path)
            check_key(info)
            _enqueue(info, [])
            return
        shebang = read_shebang(fs, path)
        if shebang is None:
            raise BuildError(
                f"adding executable {path}: neither an ELF file nor a script with '#!'. "
                "Add it under 'files' if it is data."
            )
        interp, arg = shebang
        add_file(path)
        result.notes.append(f"{path} is a script; added its interpreter {interp}" + (f" {arg}" if arg else ""))
        start(interp, depth + 1)
        if os.path.basename(interp) == "env" and arg and not arg.startswith("-"):
            start(arg.split()[0], depth + 1)

    def _enqueue(info: ElfInfo, loaders: list[ElfInfo]) -> None:
        if info.interpreter:
            try:
                fs.walk(info.interpreter)
            except (FileNotFoundError, NotADirectoryError):
                raise BuildError(
                    f"resolving the ELF interpreter of {info.path}: {info.interpreter} does not exist. "
                    "Install the matching libc or use a static binary."
                ) from None
            if info.interpreter not in seen:
                interp = resolver.elf(info.interpreter)
                check_key(interp)
                add_file(info.interpreter)
                queue.append((interp, []))
        queue.append((info, loaders))

    for name in executables:
        start(name)

    done: set[str] = set()
    while queue:
        info, loaders = queue.pop(0)
        if info.path in done:
            continue
        done.add(info.path)
        if info.soname:
            loaded_by_name.setdefault(info.soname, info.path)
        mapping: dict[str, str] = {}
        for name in info.needed:
            found = loaded_by_name.get(name) or resolver.find(name, info, loaders)
            if found is None:
                raise BuildError(
                    f"resolving library {name} needed by {info.path}: not found in its RPATH/RUNPATH, "
                    "ld.so.conf or the default directories. Install the package that provides it, "
                    "or add it under 'files'."
                )
            mapping[name] = found
            loaded_by_name.setdefault(name, found)
            if found not in seen:
                lib = resolver.elf(found)
                check_key(lib)
                add_file(found)
                for variant in resolver.hwcaps_variants(found, lib.compat_key):
                    add_file(variant)
                if len(seen) > MAX_CLOSURE:
                    raise BuildError(f"resolving libraries of {info.path}: more than {MAX_CLOSURE} files.")
                queue.append((lib, [info] + loaders))
        result.resolved[info.path] = mapping
        result.elves[info.path] = info
    return result


def _describe(info: ElfInfo) -> str:
    try:
        return info.architecture
    except BuildError:
        return f"machine {info.machine}"


def _describe_key(key: tuple[int, int, int]) -> str:
    cls, order, machine = key
    fake = ElfInfo(path="", elf_class=cls, byte_order=order, machine=machine, osabi=0, elf_type=ET_DYN)
    return f"{fake.bits}-bit {_describe(fake)}"
