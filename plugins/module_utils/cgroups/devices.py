# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device controller of a container's cgroup: which device nodes its processes may open or create.

``nodev`` on the container's mounts is one wall; this is the second, as runc builds it. A device node that
reaches a container by any route (a volume, a ``dev`` mount, a gap in a mount flag, ``mknod`` with CAP_MKNOD)
still cannot be opened unless its type and numbers are on the allow list below, checked by the kernel at
``open(2)`` and ``mknod(2)`` against the cgroup of the calling process:

* cgroup v1: the ``devices`` controller. ``a`` is written to ``devices.deny`` (deny everything, clear the
  inherited exceptions), then each rule to ``devices.allow``.
* cgroup v2 (no ``devices`` file there): a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the cgroup
  directory with ``BPF_F_ALLOW_MULTI`` (programs of the ancestors still run; the kernel allows an access only
  when every program allows it). The program is emitted from the same rules, block by block as
  opencontainers/cgroups ``devices/devicefilter.go`` does, and loaded with ``bpf(2)`` through linux.py's
  ``_ctypes`` bindings (no ``ctypes`` import on the start path). The program is attached to the cgroup: it stays
  in force after its fd is closed and goes away with the cgroup directory.

Rootless containers get no device controller: writing ``devices.deny`` needs CAP_SYS_ADMIN in the initial user
namespace and loading a cgroup BPF program CAP_BPF/CAP_SYS_ADMIN there (runc skips it in rootless mode too).
Such containers rely on ``nodev`` and on the kernel, which never honours a device node made or mounted inside a
user namespace.

This module is on the start path of every container: it imports only ``os``, ``struct`` and linux.py.
"""

from __future__ import annotations

import os
import struct
import sys

from ansible_collections.dockerless.containers.plugins.module_utils import linux

WILDCARD = -1

# A rule: (type, major, minor, access, allow). type "c" (char), "b" (block) or "a" (all, with both numbers
# WILDCARD); access a subset of "rwm" (read, write, mknod).
#
# Docker's default list: the OCI spec Docker writes denies everything ({allow: false, access: rwm}) and runc
# appends libcontainer/specconv AllowedDevices, which is this list (the same one opencontainers/cgroups' tests
# carry as "the built-in allow list"). /dev/console (5:1) is not on it; tun (10:200) is.
DEFAULT_RULES: tuple[tuple[str, int, int, str, bool], ...] = (
    ("a", WILDCARD, WILDCARD, "rwm", False),
    ("c", WILDCARD, WILDCARD, "m", True),     # mknod of any node (opening it is another matter)
    ("b", WILDCARD, WILDCARD, "m", True),
    ("c", 1, 3, "rwm", True),                 # /dev/null
    ("c", 1, 8, "rwm", True),                 # /dev/random
    ("c", 1, 7, "rwm", True),                 # /dev/full
    ("c", 5, 0, "rwm", True),                 # /dev/tty
    ("c", 1, 5, "rwm", True),                 # /dev/zero
    ("c", 1, 9, "rwm", True),                 # /dev/urandom
    ("c", 136, WILDCARD, "rwm", True),        # /dev/pts/*
    ("c", 5, 2, "rwm", True),                 # /dev/ptmx
    ("c", 10, 200, "rwm", True),              # /dev/net/tun
)


def rule_text(rule) -> str:
    """A rule as cgroup v1 writes and lists it: ``c 1:3 rwm``, ``c 136:* rwm``, ``a *:* rwm``."""
    kind, major, minor, access, _allow = rule
    return f"{kind} {'*' if major == WILDCARD else major}:{'*' if minor == WILDCARD else minor} {access}"


def v1_writes(rules=DEFAULT_RULES) -> list[tuple[str, str]]:
    """(file, line) pairs for a v1 devices cgroup, in order: each line is one write(2), as the kernel wants."""
    return [("devices.allow" if rule[4] else "devices.deny", rule_text(rule)) for rule in rules]


# -- eBPF (include/uapi/linux/bpf.h, bpf_common.h) -------------------------------------------------------------
# Instruction classes, ops and sources.
_LDX, _ALU, _JMP = 0x01, 0x04, 0x05
_MEM, _W = 0x60, 0x00
_AND, _RSH, _MOV, _JNE, _EXIT = 0x50, 0x70, 0xB0, 0x50, 0x90
_K, _X = 0x00, 0x08
# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: access_type is
# (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
_DEV_TYPE = {"b": 1, "c": 2}                   # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}             # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
# Registers of the program: r1 the context, r2 device type, r3 access, r4 major, r5 minor, r0 the verdict.
_R0, _R1, _R2, _R3, _R4, _R5 = range(6)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: u8 code, u8 dst_reg:4 src_reg:4 (bit-field order follows the byte order),
    s16 off, s32 imm, in the host's byte order."""
    regs = (dst | src << 4) if sys.byteorder == "little" else (dst << 4 | src)
    return struct.pack("=BBhi", code, regs, off, imm)


def _access_bits(access: str) -> int:
    bits = 0
    for char in access:
        bits |= _ACCESS[char]
    return bits


def validate_rules(rules) -> None:
    """ValueError for a rule the emitter and v1 cannot both express."""
    for rule in rules:
        kind, major, minor, access, allow = rule
        if kind not in ("a", "b", "c") or not access or set(access) - set("rwm") or not isinstance(allow, bool):
            raise ValueError(f"device rule {rule!r}: expected (a|b|c, major, minor, subset of 'rwm', allow)")
        for number in (major, minor):
            if not isinstance(number, int) or number < WILDCARD or number > 0x7FFFFFFF:
                raise ValueError(f"device rule {rule!r}: numbers must be 0..2^31-1 or WILDCARD")
        if kind == "a" and (major != WILDCARD or minor != WILDCARD):
            raise ValueError(f"device rule {rule!r}: an 'a' rule covers every device; its numbers must be '*'")


def _block(rule) -> list[bytes]:
    """The checks of one rule: each mismatch jumps past the block (offsets patched by the caller)."""
    kind, major, minor, access, allow = rule
    body = []
    if kind != "a":
        body.append(("jne", _R2, _DEV_TYPE[kind]))
    bits = _access_bits(access)
    if bits != 7:
        # Allowed only when the requested access is a subset of the rule's: (access & bits) == access.
        body.append(_insn(_ALU | _MOV | _X, _R1, _R3))
        body.append(_insn(_ALU | _AND | _K, _R1, imm=bits))
        body.append(("jner", _R1, _R3))
    if major != WILDCARD:
        body.append(("jne", _R4, major))
    if minor != WILDCARD:
        body.append(("jne", _R5, minor))
    body.append(_insn(_ALU | _MOV | _K, _R0, imm=int(allow)))
    body.append(_insn(_JMP | _EXIT))
    out = []
    for pc, item in enumerate(body):
        if isinstance(item, bytes):
            out.append(item)
            continue
        skip = len(body) - pc - 1          # jump to the first instruction after this block
        op, reg, value = item
        if op == "jne":
            out.append(_insn(_JMP | _JNE | _K, reg, off=skip, imm=value))
        else:
            out.append(_insn(_JMP | _JNE | _X, reg, value, off=skip))
    return out


def emit(rules=DEFAULT_RULES) -> bytes:
    """The BPF_PROG_TYPE_CGROUP_DEVICE program for ``rules``: returns 1 (allow) or 0 (deny) for an access.

    Same semantics as v1: an ``a`` rule sets the default and drops every rule before it; after it, the last rule
    that matches decides (the rules are emitted in reverse order, first match returns). A rule matches when the
    type and both numbers match (WILDCARD matches anything) and the requested access is within the rule's.
    """
    validate_rules(rules)
    default, rest = False, list(rules)
    for index in range(len(rules) - 1, -1, -1):
        if rules[index][0] == "a":
            default, rest = rules[index][4], list(rules[index + 1:])
            break
    prog = [
        _insn(_LDX | _MEM | _W, _R2, _R1, 0),      # r2 = ctx->access_type & 0xffff: device type
        _insn(_ALU | _AND | _K, _R2, imm=0xFFFF),
        _insn(_LDX | _MEM | _W, _R3, _R1, 0),      # r3 = ctx->access_type >> 16: access
        _insn(_ALU | _RSH | _K, _R3, imm=16),
        _insn(_LDX | _MEM | _W, _R4, _R1, 4),      # r4 = ctx->major
        _insn(_LDX | _MEM | _W, _R5, _R1, 8),      # r5 = ctx->minor
    ]
    for rule in reversed(rest):
        if rule[4] != default:                     # a rule that says what the default says changes nothing
            prog.extend(_block(rule))
    prog.append(_insn(_ALU | _MOV | _K, _R0, imm=int(default)))
    prog.append(_insn(_JMP | _EXIT))
    return b"".join(prog)


# -- bpf(2) ---------------------------------------------------------------------------------------------------
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
# bpf has no glibc wrapper (arch/*/entry/syscalls, asm-generic/unistd.h).
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280, "i686": 357,
            "armv7l": 386}
_LICENSE = b"GPL\0"
_syscall = linux.libc_function("syscall", None, linux.c_long)


def _buffer(data: bytes):
    """A mutable C char array holding ``data`` (what ``(ctypes.c_char * n).from_buffer_copy`` gives)."""
    kind = type("char_array", (linux._ctypes.Array,), {"_type_": linux.c_char, "_length_": max(1, len(data))})
    return kind.from_buffer_copy(data) if data else kind()


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    number = _SYS_BPF.get(os.uname().machine)
    if number is None:
        raise OSError(38, f"bpf: unknown syscall number on {os.uname().machine}")
    buf = _buffer(attr)
    result = _syscall(linux.c_long(number), linux.c_int(cmd), buf, linux.c_uint(len(attr)))
    if result < 0:
        err = linux.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def load(program: bytes) -> int:
    """BPF_PROG_LOAD of a cgroup device program; returns its fd (close it once attached). On a verifier refusal
    the kernel's log is in the message."""
    insns, license_, log = _buffer(program), _buffer(_LICENSE), _buffer(bytes(4096))
    addr = linux.addressof
    attr = struct.pack("=IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8, addr(insns),
                       addr(license_), 0, 0, 0, 0, 0, b"dockerless_dev", 0, BPF_CGROUP_DEVICE)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD, cgroup device program)")
    except OSError as exc:
        if exc.errno not in (13, 22):           # EACCES, EINVAL: the verifier refused it; ask it why
            raise
    attr = struct.pack("=IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8, addr(insns),
                       addr(license_), 1, len(log), addr(log), 0, 0, b"dockerless_dev", 0, BPF_CGROUP_DEVICE)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD, cgroup device program)")
    except OSError as exc:
        text = bytes(log).split(b"\0", 1)[0].decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}; verifier: {text or 'no log'}") from None


def attach(cgroup_fd: int, prog_fd: int) -> None:
    """BPF_PROG_ATTACH of ``prog_fd`` to the cgroup2 directory ``cgroup_fd`` as its device program."""
    attr = struct.pack("=IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0)
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)")


def attached(cgroup_fd: int) -> int:
    """How many device programs are attached to the cgroup2 directory ``cgroup_fd`` itself (BPF_PROG_QUERY)."""
    ids = _buffer(bytes(4 * 64))
    attr = _buffer(struct.pack("=IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, linux.addressof(ids), 64))
    number = _SYS_BPF.get(os.uname().machine)
    if _syscall(linux.c_long(number), linux.c_int(BPF_PROG_QUERY), attr, linux.c_uint(len(bytes(attr)))) < 0:
        err = linux.get_errno()
        raise OSError(err, f"bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE): {os.strerror(err)}")
    return struct.unpack_from("=I", bytes(attr), 24)[0]


_PROGRAM: list[bytes] = []


def default_program() -> bytes:
    """The program for DEFAULT_RULES, emitted once per process."""
    if not _PROGRAM:
        _PROGRAM.append(emit(DEFAULT_RULES))
    return _PROGRAM[0]


def install_v2(directory: str, program: bytes | None = None) -> None:
    """Attach the device program (default: DEFAULT_RULES) to the cgroup2 ``directory``."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        prog_fd = load(default_program() if program is None else program)
        try:
            attach(dir_fd, prog_fd)
        finally:
            os.close(prog_fd)
    finally:
        os.close(dir_fd)


def install_v1(directory: str, rules=DEFAULT_RULES) -> None:
    """Write ``rules`` to the v1 devices cgroup ``directory`` (deny-all first: the kernel refuses an allow-all
    cgroup's deny of everything only when it has children, and a new cgroup has none). One write() per rule (the
    kernel reads one rule a write), through one fd per file: it runs before every container's fork, and an open
    and close of a cgroup file per rule were two dozen syscalls of that critical path."""
    fds: dict[str, int] = {}
    try:
        for name, line in v1_writes(rules):
            fd = fds.get(name)
            if fd is None:
                fd = fds[name] = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CLOEXEC)
            os.write(fd, line.encode())
    finally:
        for fd in fds.values():
            os.close(fd)


def locate(cgroup_root: str = "/sys/fs/cgroup") -> tuple[int, str] | None:
    """Where a device controller goes: ``(1, mount)`` for a v1 ``devices`` hierarchy, ``(2, mount)`` for the
    cgroup2 hierarchy (pure v2 at the root, or a hybrid's ``unified`` when no v1 devices controller is mounted),
    None when there is neither. Cheap: a few stat calls, no parsing (it runs at every start)."""
    if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")):
        return 2, cgroup_root
    devices = os.path.join(cgroup_root, "devices")
    if os.path.exists(os.path.join(devices, "devices.deny")):
        return 1, devices
    unified = None
    try:
        entries = sorted(os.listdir(cgroup_root))
    except OSError:
        return None
    for entry in entries:
        path = os.path.join(cgroup_root, entry)
        if "devices" in entry.split(",") and os.path.exists(os.path.join(path, "devices.deny")):
            return 1, path
        if unified is None and os.path.exists(os.path.join(path, "cgroup.controllers")):
            unified = path
    return None if unified is None else (2, unified)


def rootless() -> bool:
    """True when this process cannot install a device controller: not root, or root of a user namespace other
    than the initial one (its uid_map is not the identity over the whole range)."""
    if os.geteuid() != 0:
        return True
    try:
        with open("/proc/self/uid_map", "rb") as handle:
            fields = handle.read().split()
    except OSError:
        return False
    return fields[:3] != [b"0", b"0", b"4294967295"]
