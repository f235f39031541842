# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seccomp: Docker's default syscall filter (or a profile of the user's) for every container.

The work is split so that the container's start path stays light:

* In the **parent** (before any fork): ``load_profile`` reads the profile (Docker's JSON format: our copy of
  moby's ``profiles/seccomp/default.json`` lives in ``seccomp_default.py``), ``resolve_profile`` applies
  Docker's ``includes``/``excludes`` rules against the container's capability set (the bounding set, as Docker
  does), the architecture and the kernel version, which gives the OCI ``linux.seccomp`` section runc would
  receive, and ``compile_profile`` turns that into a BPF program with **libseccomp** (``libseccomp.so.2``
  through ctypes: it knows every architecture's syscall table) and prepends the ENOSYS stub described below.
  ``prepare`` does all of it with a per-process cache.
* In the **child** (the container's init, after ``pivot_root``, no_new_privs, the user switch and capset, just
  before exec): ``apply`` makes one ``prctl(PR_SET_SECCOMP)`` (or ``seccomp(2)`` when the profile has flags)
  with the precompiled program. Nothing is imported or loaded there: libseccomp is not needed in the child,
  and the host's library path is gone after ``pivot_root`` anyway.

The ENOSYS stub (runc does the same, libcontainer/seccomp/patchbpf): a syscall whose number is above every
syscall the profile names, for an architecture of the filter, gets ENOSYS instead of the default action's
EPERM. Such a syscall is newer than the profile, and C libraries treat ENOSYS as "not implemented, fall back"
(glibc's ``fchmodat2``/``clone3`` paths) where EPERM would be a hard failure. ``clone3`` itself gets ENOSYS
from an explicit rule of Docker's profile, so glibc falls back to ``clone``, whose namespace flags the profile
can inspect (clone3 passes them in memory, which seccomp can't read).

Only the x86_64 family (x86_64, x32, i386) is tested on real hardware here; the aarch64/arm filters are
compiled and checked against a BPF interpreter in the unit tests.
"""

from __future__ import annotations

import errno
import os
import struct

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import (
    Factory,
    Record,
    json_dumps,
    json_loads,
    sha256_hex,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the container start path
if TYPE_CHECKING:
    from typing import Any

DEFAULT = "default"
UNCONFINED = "unconfined"
PROFILE_SIZE_LIMIT = 1 << 20        # a profile file larger than this is refused before parsing
BPF_MAXINSNS = 4096                 # the kernel's limit on one classic BPF program (include/uapi/linux/bpf_common.h)
LIBSECCOMP = "libseccomp.so.2"

# Actions: libseccomp's values (include/seccomp.h), which are the kernel's SECCOMP_RET_* values.
# SCMP_ACT_NOTIFY needs a listener (listenerPath) that we don't provide: refused.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,          # = SCMP_ACT_KILL_THREAD
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,         # | errno
    "SCMP_ACT_TRACE": 0x7FF00000,         # | message for the tracer
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# Actions a syscall newer than the profile must not be turned into ENOSYS under (runc's isAllowAction).
_ALLOWING = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# seccomp(2) filter flags a profile may ask for (include/uapi/linux/seccomp.h). TSYNC is accepted and has no
# effect: the container's init is single-threaded.
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}

# ``uname -m`` (or a Docker/Go name) → the name Docker's ``includes.arches``/``excludes.arches`` use
# (moby profiles/seccomp: goToNative).
ARCH_NAMES = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "x86": "x86", "x32": "x32",
    "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm", "arm": "arm",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "ppc": "ppc", "s390x": "s390x", "s390": "s390",
    "riscv64": "riscv64", "mips64": "mips64", "mips64el": "mipsel64", "mipsel64": "mipsel64", "mips": "mips",
    "mipsel": "mipsel",
}
# Docker arch name → the SCMP_ARCH_* of that native architecture (moby: nativeToSeccomp).
NATIVE_SCMP_ARCH = {
    "amd64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86", "x32": "SCMP_ARCH_X32", "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "ppc64": "SCMP_ARCH_PPC64", "ppc": "SCMP_ARCH_PPC",
    "s390x": "SCMP_ARCH_S390X", "s390": "SCMP_ARCH_S390", "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64", "mipsel64": "SCMP_ARCH_MIPSEL64", "mips": "SCMP_ARCH_MIPS",
    "mipsel": "SCMP_ARCH_MIPSEL",
}
# AUDIT_ARCH_* (include/uapi/linux/audit.h): what the kernel puts in seccomp_data.arch. x32 shares x86_64's
# value and sets bit 30 in the syscall number. Architectures missing here get no ENOSYS stub (s390 multiplexes
# unknown syscalls through syscall 0 and would need runc's special case).
AUDIT_ARCH = {
    "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0xC000003E, "SCMP_ARCH_X86": 0x40000003,
    "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028, "SCMP_ARCH_PPC64LE": 0xC0000015,
    "SCMP_ARCH_PPC64": 0x80000015, "SCMP_ARCH_PPC": 0x00000014, "SCMP_ARCH_RISCV64": 0xC00000F3,
}
X32_SYSCALL_BIT = 0x40000000

# Classic BPF opcodes used by the stub (include/uapi/linux/filter.h, bpf_common.h).
BPF_LD_W_ABS = 0x20
BPF_JMP_JA = 0x05
BPF_JMP_JEQ_K = 0x15
BPF_JMP_JGT_K = 0x25
BPF_JMP_JSET_K = 0x45
BPF_RET_K = 0x06
_INSN = struct.Struct("=HBBI")      # struct sock_filter, in the host's byte order (what the kernel reads)

# prctl(2) / seccomp(2) (include/uapi/linux/prctl.h, seccomp.h).
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1

# libseccomp filter attributes (enum scmp_filter_attr).
_SCMP_FLTATR_CTL_NNP = 3
_SCMP_FLTATR_CTL_OPTIMIZE = 8
_NR_SCMP_ERROR = -1

# The start path's C calls through linux.py's _ctypes bindings: ``import ctypes`` is only needed (and only paid
# for) to compile a profile with libseccomp (``_libseccomp``).
_prctl = linux.libc_function("prctl", [linux.c_int, linux.c_ulong, linux.c_ulong, linux.c_ulong, linux.c_ulong])
_syscall = linux.libc_function("syscall", None, linux.c_long)


class _SockFprog(linux.Structure):
    _fields_ = [("len", linux.c_ushort), ("filter", linux.c_void_p)]


class Filter(Record):
    """A compiled seccomp filter, ready for ``apply`` in a child process without any further work."""

    FROZEN = True

    profile: str                        # "default" or the profile's path
    program: bytes                      # struct sock_filter[], host byte order, ENOSYS stub included
    arch: str                           # Docker's name of the native architecture it was resolved for
    architectures: tuple[str, ...]      # SCMP_ARCH_* the filter accepts (others: killed, libseccomp's default)
    default_action: str
    default_errno: int | None
    allowed: tuple[str, ...]            # syscalls with an unconditional allow rule
    conditional: tuple[str, ...]        # syscalls with argument filters
    denied: tuple[str, ...]             # syscalls with an explicit non-allow rule (clone3 → ENOSYS)
    skipped: tuple[str, ...]            # names libseccomp does not know (left to the default action)
    enosys_above: dict[str, int] = Factory(dict)   # SCMP_ARCH_* → highest syscall in the profile
    flags: int = 0
    seccomp_nr: int = -1                # seccomp(2) on the host, used only when ``flags`` is set
    libseccomp: str = ""

    @property
    def instructions(self) -> int:
        return len(self.program) // _INSN.size

    @property
    def sha256(self) -> str:
        return sha256_hex(self.program)


# -- profiles ------------------------------------------------------------------------------------------------

_DEFAULT_CHECKED = False
# Where seccomp_default is (the file the quick index identifies), known without importing it: the start path
# finds a cached filter without the profile's data (a 0.5 ms import).
_DEFAULT_MODULE_FILE = os.path.join(os.path.dirname(__file__), "default.py")


def _default_profile() -> dict:
    """Docker's default profile (seccomp_default.PROFILE), imported when first needed."""
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import (
        default as seccomp_default,
    )

    return seccomp_default.PROFILE


def load_profile(spec: str | None) -> dict | None:
    """The profile named by ``spec``: ``default`` (Docker's default profile), ``unconfined`` or None (no
    filter: returns None), or the path of a JSON profile in Docker's format. The profile is validated."""
    if spec is None or spec == UNCONFINED:
        return None
    if spec == DEFAULT:
        global _DEFAULT_CHECKED
        profile = json_loads(json_dumps(_default_profile()))
        if not _DEFAULT_CHECKED:
            validate_profile(profile, DEFAULT)
            _DEFAULT_CHECKED = True
        return profile
    else:
        if not isinstance(spec, str) or not spec.startswith("/"):
            raise RuntimeSetupError(
                f"seccomp profile {spec!r}: use 'default', 'unconfined' or the absolute path of a JSON profile in "
                "Docker's format.")
        try:
            with open(spec, "rb") as handle:
                raw = handle.read(PROFILE_SIZE_LIMIT + 1)
        except OSError as exc:
            raise RuntimeSetupError(f"seccomp profile {spec}: can't read it ({exc.strerror}). Check the path.") from None
        if len(raw) > PROFILE_SIZE_LIMIT:
            raise RuntimeSetupError(f"seccomp profile {spec}: larger than {PROFILE_SIZE_LIMIT} bytes. Is it a profile?")
        try:
            profile = json_loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RuntimeSetupError(f"seccomp profile {spec}: not valid JSON ({exc}). Fix the file.") from None
    validate_profile(profile, spec)
    return profile


def _fail(where: str, what: str) -> RuntimeSetupError:
    return RuntimeSetupError(f"seccomp profile {where}: {what}. Fix the profile (Docker's seccomp JSON format).")


def _check_filter(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _fail(where, "must be an object with 'caps', 'arches' and/or 'minKernel'")
    for key in ("caps", "arches"):
        items = value.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(i, str) for i in items)):
            raise _fail(where, f"'{key}' must be a list of strings")
    if value.get("minKernel"):
        _kernel_tuple(value["minKernel"], where)


def validate_profile(profile: Any, name: str = "profile") -> None:
    """Check a profile's structure (Docker's ``Seccomp`` type) before anything is built from it."""
    if not isinstance(profile, dict):
        raise _fail(name, "the top level must be a JSON object")
    action = profile.get("defaultAction", "")
    if action not in ACTIONS:
        raise _fail(name, f"defaultAction {action!r} is not one of {', '.join(sorted(ACTIONS))}")
    _check_errno(profile.get("defaultErrnoRet"), f"{name}: defaultErrnoRet")
    if profile.get("listenerPath"):
        raise _fail(name, "listenerPath (SCMP_ACT_NOTIFY agents) is not supported")
    if profile.get("architectures") and profile.get("archMap"):
        raise _fail(name, "'architectures' and 'archMap' are both set; use one")
    for arch in profile.get("architectures") or []:
        if not isinstance(arch, str) or not arch.startswith("SCMP_ARCH_"):
            raise _fail(name, f"architecture {arch!r} is not a SCMP_ARCH_* name")
    for entry in profile.get("archMap") or []:
        if not isinstance(entry, dict) or not str(entry.get("architecture", "")).startswith("SCMP_ARCH_"):
            raise _fail(name, f"archMap entry {entry!r} needs 'architecture': 'SCMP_ARCH_...'")
        subs = entry.get("subArchitectures") or []
        if not isinstance(subs, list) or not all(isinstance(s, str) and s.startswith("SCMP_ARCH_") for s in subs):
            raise _fail(name, f"archMap entry {entry['architecture']}: subArchitectures must be SCMP_ARCH_* names")
    for flag in profile.get("flags") or []:
        if flag not in FLAGS:
            raise _fail(name, f"flag {flag!r} is not one of {', '.join(sorted(FLAGS))}")
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _fail(name, "'syscalls' must be a list")
    for i, call in enumerate(syscalls):
        where = f"{name}: syscalls[{i}]"
        if not isinstance(call, dict):
            raise _fail(where, "must be an object")
        names = call.get("names")
        if call.get("name") and names:
            raise _fail(where, "'name' and 'names' are both set; use one")
        names = [call["name"]] if call.get("name") else names
        if not names or not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _fail(where, "needs 'names', a non-empty list of syscall names")
        if call.get("action") not in ACTIONS:
            raise _fail(where, f"action {call.get('action')!r} is not one of {', '.join(sorted(ACTIONS))}")
        _check_errno(call.get("errnoRet"), f"{where}: errnoRet")
        args = call.get("args") or []
        if not isinstance(args, list):
            raise _fail(where, "'args' must be a list")
        for arg in args:
            if not isinstance(arg, dict):
                raise _fail(where, "each of 'args' must be an object")
            index = arg.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
                raise _fail(where, f"argument index {index!r} must be 0-5")
            for key in ("value", "valueTwo"):
                value = arg.get(key, 0)
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
                    raise _fail(where, f"argument {key} {value!r} must be an unsigned 64-bit integer")
            if arg.get("op") not in OPERATORS:
                raise _fail(where, f"argument op {arg.get('op')!r} is not one of {', '.join(sorted(OPERATORS))}")
        _check_filter(call.get("includes"), f"{where}: includes")
        _check_filter(call.get("excludes"), f"{where}: excludes")


def _check_errno(value: Any, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise _fail(where, f"{value!r} must be an errno number (0-65535)")


def _kernel_tuple(text: str, where: str = "kernel") -> tuple[int, int, int]:
    """``"4.8"``, ``"6.18.44-fc-v657"`` → (4, 8, 0), (6, 18, 44) (moby pkg/parsers/kernel: kernel.major.minor)."""
    parts = []
    for piece in str(text).split("-", 1)[0].split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    if len(parts) < 2:
        raise _fail(where, f"kernel version {text!r} is not like '4.8' or '5.10.1'")
    return (parts + [0])[0], parts[1], (parts + [0, 0])[2]


def normalize_arch(arch: str | None = None) -> str:
    """Docker's name for ``arch`` (``uname -m`` or Docker names); the host's when None."""
    machine = arch or os.uname().machine
    try:
        return ARCH_NAMES[machine]
    except KeyError:
        raise RuntimeSetupError(f"seccomp: architecture {machine!r} is unknown. Use one of "
                                f"{', '.join(sorted(set(ARCH_NAMES.values())))}, or seccomp 'unconfined'.") from None


def _cap_name(name: str) -> str:
    key = str(name).upper()
    return key if key.startswith("CAP_") else "CAP_" + key


def resolve_profile(profile: dict, capabilities, arch: str | None = None, kernel: str | None = None) -> dict:
    """Docker's ``setupSeccomp`` (moby profiles/seccomp): keep the rules whose ``includes`` all hold and whose
    ``excludes`` don't (capabilities against the container's bounding set ``capabilities``; arches against the
    native ``arch``; ``minKernel`` against ``kernel``, default the running one), and pick the architectures
    from ``archMap``. Returns the OCI runtime-spec ``linux.seccomp`` object (what runc would be given)."""
    validate_profile(profile)
    return _resolve(profile, capabilities, arch, kernel)


def _resolve(profile: dict, capabilities, arch: str | None, kernel: str | None) -> dict:
    arch = normalize_arch(arch)
    caps = {_cap_name(c) for c in capabilities or ()}
    running = _kernel_tuple(kernel or os.uname().release)

    if profile.get("architectures"):
        architectures = list(profile["architectures"])
    else:
        architectures = []
        native = NATIVE_SCMP_ARCH.get(arch)
        for entry in profile.get("archMap") or []:
            if native and entry["architecture"] == native:
                architectures = [native] + list(entry.get("subArchitectures") or [])
                break

    def holds(condition: dict | None, include: bool, where: str) -> bool:
        """For includes: every condition met. For excludes: any condition met."""
        if not condition:
            return include
        results = []
        if condition.get("arches"):
            results.append(arch in condition["arches"])
        if condition.get("caps"):
            have = [_cap_name(c) in caps for c in condition["caps"]]
            results.append(all(have) if include else any(have))
        if condition.get("minKernel"):
            results.append(running >= _kernel_tuple(condition["minKernel"], where))
        return all(results) if include else any(results)

    syscalls = []
    for i, call in enumerate(profile.get("syscalls") or []):
        where = f"syscalls[{i}]"
        if holds(call.get("excludes"), False, where) or not holds(call.get("includes"), True, where):
            continue
        rule: dict[str, Any] = {"names": [call["name"]] if call.get("name") else list(call["names"]),
                                "action": call["action"]}
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        if call.get("args"):
            rule["args"] = [{"index": a["index"], "value": a.get("value", 0), "valueTwo": a.get("valueTwo", 0),
                             "op": a["op"]} for a in call["args"]]
        syscalls.append(rule)

    resolved: dict[str, Any] = {"defaultAction": profile["defaultAction"], "architectures": architectures,
                                "syscalls": syscalls}
    if profile.get("defaultErrnoRet") is not None:
        resolved["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("flags"):
        resolved["flags"] = list(profile["flags"])
    return resolved


# -- libseccomp ----------------------------------------------------------------------------------------------

_LIB: Any = None
_ScmpArgCmp: Any = None         # struct scmp_arg_cmp, made with libseccomp's bindings (_libseccomp)


def _libseccomp(profile: str) -> Any:
    """libseccomp.so.2, loaded once (in the parent only)."""
    global _LIB, _ScmpArgCmp
    if _LIB is None:
        import ctypes  # only here: compiling a profile (a cache miss), not on the start path

        class ScmpArgCmp(ctypes.Structure):
            _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                        ("datum_b", ctypes.c_uint64)]

        class ScmpVersion(ctypes.Structure):
            _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

        try:
            lib = ctypes.CDLL(LIBSECCOMP, use_errno=True)
        except OSError:
            raise RuntimeSetupError(
                f"seccomp profile {profile!r}: {LIBSECCOMP} is not installed; it is needed to compile the filter. "
                "Install libseccomp2 (Debian, Ubuntu) or libseccomp (RHEL, Fedora), or set seccomp: unconfined."
            ) from None
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_remove.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_exist.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_native.argtypes = []
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(ScmpArgCmp)]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_version.argtypes = []
        lib.seccomp_version.restype = ctypes.POINTER(ScmpVersion)
        _LIB, _ScmpArgCmp = lib, ScmpArgCmp
    return _LIB


def libseccomp_version() -> str | None:
    """``major.minor.micro`` of the libseccomp found, None when it is missing."""
    try:
        lib = _libseccomp("-")
    except RuntimeSetupError:
        return None
    version = lib.seccomp_version().contents
    return f"{version.major}.{version.minor}.{version.micro}"


def _action_value(action: str, errno_ret: int | None) -> int:
    value = ACTIONS[action]
    if action == "SCMP_ACT_ERRNO":
        value |= errno.EPERM if errno_ret is None else errno_ret
    elif action == "SCMP_ACT_TRACE":
        value |= errno.EPERM if errno_ret is None else errno_ret
    return value


def _arch_token(lib: Any, scmp_arch: str, profile: str) -> int:
    token = lib.seccomp_arch_resolve_name(scmp_arch[len("SCMP_ARCH_"):].lower().encode())
    if not token:
        raise RuntimeSetupError(f"seccomp profile {profile!r}: architecture {scmp_arch} is unknown to libseccomp "
                                f"{libseccomp_version()}. Remove it from the profile or update libseccomp.")
    return token


def compile_profile(profile: dict, capabilities, arch: str | None = None, *, name: str = "custom",
                    kernel: str | None = None) -> Filter:
    """Resolve ``profile`` for a container with bounding set ``capabilities`` (see ``resolve_profile``) and
    compile it into a ``Filter`` for ``arch`` (default: the host's)."""
    return compile_resolved(resolve_profile(profile, capabilities, arch, kernel), arch=arch, name=name)


def compile_resolved(resolved: dict, arch: str | None = None, name: str = "custom") -> Filter:
    """Compile an OCI ``linux.seccomp`` object (``resolve_profile``'s result) with libseccomp, the way runc's
    libcontainer/seccomp does: rules equal to the default action are dropped, unknown syscall names are skipped,
    conditions on distinct arguments make one rule (AND), several conditions on the same argument make one rule
    each (OR)."""
    arch = normalize_arch(arch)
    lib = _libseccomp(name)
    default = _action_value(resolved["defaultAction"], resolved.get("defaultErrnoRet"))
    architectures = list(resolved.get("architectures") or [])
    if not architectures:
        native = NATIVE_SCMP_ARCH.get(arch)
        if native is None:
            raise RuntimeSetupError(f"seccomp profile {name!r}: no SCMP_ARCH_* known for architecture {arch}. "
                                    "List it in the profile's 'architectures'.")
        architectures = [native]
    tokens = [_arch_token(lib, a, name) for a in architectures]

    ctx = lib.seccomp_init(default)
    if not ctx:
        raise RuntimeSetupError(f"seccomp profile {name!r}: libseccomp refused the default action "
                                f"{resolved['defaultAction']}. Fix the profile.")
    allowed: list[str] = []
    conditional: list[str] = []
    denied: list[str] = []
    skipped: list[str] = []
    try:
        host = lib.seccomp_arch_native()
        for token in tokens:
            rc = lib.seccomp_arch_add(ctx, token)
            if rc not in (0, -errno.EEXIST):
                raise RuntimeSetupError(f"seccomp profile {name!r}: adding an architecture: {os.strerror(-rc)}")
        if host not in tokens:
            # Compiling for another architecture (tests, or an image for a foreign arch under binfmt).
            lib.seccomp_arch_remove(ctx, host)
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0)
        if len(resolved["syscalls"]) > 32:
            # libseccomp's binary tree: a few comparisons per syscall instead of a scan of the whole list (runc
            # uses the same threshold; libseccomp <= 2.5.4 misbehaves with the tree and no rules).
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for rule in resolved["syscalls"]:
            value = _action_value(rule["action"], rule.get("errnoRet"))
            if value == default:
                continue
            conditions = [_ScmpArgCmp(a["index"], OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
                          for a in rule.get("args") or []]
            indexes = [a["index"] for a in rule.get("args") or []]
            if len(set(indexes)) == len(indexes):
                groups = [conditions] if conditions else [[]]
            else:
                groups = [[c] for c in conditions]
            for syscall in rule["names"]:
                nr = lib.seccomp_syscall_resolve_name(syscall.encode())
                if nr == _NR_SCMP_ERROR:
                    skipped.append(syscall)
                    continue
                for group in groups:
                    array = (_ScmpArgCmp * len(group))(*group) if group else None
                    rc = lib.seccomp_rule_add_array(ctx, value, nr, len(group), array)
                    if rc < 0:
                        raise RuntimeSetupError(
                            f"seccomp profile {name!r}: adding the rule for {syscall} ({rule['action']}): "
                            f"{os.strerror(-rc)}. Check for conflicting rules for {syscall} in the profile.")
                if rule["action"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
                    (conditional if conditions else allowed).append(syscall)
                else:
                    denied.append(syscall)
        program = _export(lib, ctx, name)
    finally:
        lib.seccomp_release(ctx)

    enosys_above: dict[str, int] = {}
    if resolved["defaultAction"] not in _ALLOWING:
        names = {n for rule in resolved["syscalls"] for n in rule["names"]}
        for scmp_arch, token in zip(architectures, tokens):
            numbers = [lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in sorted(names)]
            numbers = [nr for nr in numbers if nr >= 0]
            if numbers and scmp_arch in AUDIT_ARCH:
                enosys_above[scmp_arch] = max(numbers)
        program = enosys_stub(enosys_above, len(program) // _INSN.size) + program
    if len(program) // _INSN.size > BPF_MAXINSNS:
        raise RuntimeSetupError(f"seccomp profile {name!r}: the filter has {len(program) // _INSN.size} BPF "
                                f"instructions, more than the kernel's {BPF_MAXINSNS}. Simplify the profile.")
    flags = 0
    for flag in resolved.get("flags") or []:
        flags |= FLAGS[flag]
    return Filter(
        profile=name, program=program, arch=arch, architectures=tuple(architectures),
        default_action=resolved["defaultAction"], default_errno=resolved.get("defaultErrnoRet"),
        allowed=tuple(sorted(set(allowed))), conditional=tuple(sorted(set(conditional))),
        denied=tuple(sorted(set(denied))), skipped=tuple(sorted(set(skipped))), enosys_above=enosys_above,
        flags=flags, seccomp_nr=lib.seccomp_syscall_resolve_name(b"seccomp"), libseccomp=libseccomp_version() or "",
    )


def _export(lib: Any, ctx: Any, name: str) -> bytes:
    fd = os.memfd_create("dockerless-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise RuntimeSetupError(f"seccomp profile {name!r}: libseccomp could not generate the filter: "
                                    f"{os.strerror(-rc)}. Check the profile.")
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return _INSN.pack(code, jt, jf, k & 0xFFFFFFFF)


def enosys_stub(limits: dict[str, int], program_length: int = 0) -> bytes:
    """BPF prepended to the filter: for each architecture in ``limits`` (SCMP_ARCH_* → highest syscall number
    the profile names), a larger syscall number returns ENOSYS; everything else falls through to the filter.

    Layout: ``ld arch``; per AUDIT_ARCH ``jeq arch, 0, 1; ja section``; ``ja filter``; then each section
    ``ld nr`` and ``jgt max, 0, 1; ret ENOSYS; ja filter`` (x86_64 first tests bit 30 to tell x32 apart).
    Conditional jumps only skip a few instructions (8-bit offsets); long jumps use ``ja`` (32-bit)."""
    if not limits:
        return b""
    by_audit: dict[int, dict[str, int]] = {}
    for scmp_arch, limit in limits.items():
        by_audit.setdefault(AUDIT_ARCH[scmp_arch], {})[scmp_arch] = limit
    enosys = ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS

    # Instructions as (code, jt, jf, k, label): ``label`` is the target of a ``ja`` resolved at the end.
    prog: list[tuple[int, int, int, int, Any]] = [(BPF_LD_W_ABS, 0, 0, 4, None)]
    for audit in by_audit:
        prog.append((BPF_JMP_JEQ_K, 0, 1, audit, None))
        prog.append((BPF_JMP_JA, 0, 0, 0, ("section", audit)))
    prog.append((BPF_JMP_JA, 0, 0, 0, "filter"))
    labels: dict[Any, int] = {}

    def check(limit: int | None) -> list[tuple[int, int, int, int, Any]]:
        if limit is None:
            return [(BPF_JMP_JA, 0, 0, 0, "filter")]
        return [(BPF_JMP_JGT_K, 0, 1, limit, None), (BPF_RET_K, 0, 0, enosys, None),
                (BPF_JMP_JA, 0, 0, 0, "filter")]

    for audit, arches in by_audit.items():
        labels[("section", audit)] = len(prog)
        prog.append((BPF_LD_W_ABS, 0, 0, 0, None))
        if audit == AUDIT_ARCH["SCMP_ARCH_X86_64"]:
            x32 = check(arches.get("SCMP_ARCH_X32"))
            prog.append((BPF_JMP_JSET_K, 0, len(x32), X32_SYSCALL_BIT, None))
            prog.extend(x32)
            prog.extend(check(arches.get("SCMP_ARCH_X86_64")))
        else:
            prog.extend(check(next(iter(arches.values()))))
    labels["filter"] = len(prog)
    out = []
    for index, (code, jt, jf, k, label) in enumerate(prog):
        if label is not None:
            k = labels[label] - index - 1
        out.append(_insn(code, jt, jf, k))
    return b"".join(out)


# -- the parent's entry point ------------------------------------------------------------------------------------

_CACHE: dict[str, Filter] = {}       # by the resolved profile's key
_FAST: dict[tuple, Filter] = {}       # by (spec, capabilities, arch, file identity): no parsing at all
CACHE_FORMAT = 1
AUTO = "auto"


def default_cache_dir() -> str | None:
    """Where compiled filters are kept between processes: /run/dockerless/seccomp as root,
    $XDG_RUNTIME_DIR/dockerless/seccomp otherwise (None without XDG_RUNTIME_DIR). Both are tmpfs, emptied at
    boot, and private to the user."""
    if os.geteuid() == 0:
        return "/run/dockerless/seccomp"
    base = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(base, "dockerless", "seccomp") if base else None


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _read_private(directory: str, name: str, limit: int) -> bytes | None:
    """The content of ``directory/name`` (at most ``limit`` bytes), trusted only when the directory and the file
    are our own and nobody else can write them; None for anything else (missing, foreign, a symlink, an error)."""
    try:
        if not _private(os.stat(directory)):
            return None
        fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _private(os.fstat(fd)):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _write_private(directory: str, name: str, data: bytes) -> None:
    """Best effort: ``data`` as ``directory/name`` (0600, written to a temporary name and renamed into place), in
    a directory of our own (made 0700 when missing); nothing is written into a directory others can write."""
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _private(os.stat(directory)):
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(directory, name))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _cache_read(directory: str, key: str) -> Filter | None:
    """A filter compiled earlier, trusted only from a directory and file of our own that nobody else can
    write; anything unexpected is ignored (the filter is compiled again)."""
    raw = _read_private(directory, key + ".json", 4 * BPF_MAXINSNS * _INSN.size + 65536)
    if raw is None:
        return None
    try:
        doc = json_loads(raw.decode("utf-8"))
        if doc.pop("format") != CACHE_FORMAT or doc.pop("key") != key:
            return None
        program = bytes.fromhex(doc.pop("program"))
        if sha256_hex(program) != doc.pop("sha256"):
            return None
        for name in ("architectures", "allowed", "conditional", "denied", "skipped"):
            doc[name] = tuple(doc[name])
        return Filter(program=program, **doc)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _cache_write(directory: str, key: str, compiled: Filter) -> None:
    """Best effort: a cache that can't be written only costs the next start a compilation."""
    doc = {"format": CACHE_FORMAT, "key": key, "sha256": compiled.sha256, "program": compiled.program.hex()}
    for name in Filter.field_names():
        if name != "program":
            value = getattr(compiled, name)
            doc[name] = list(value) if isinstance(value, tuple) else value
    _write_private(directory, key + ".json", json_dumps(doc, sort_keys=True).encode())


def kernel_supports_seccomp(proc: str = "/proc") -> bool:
    """True when the running kernel has seccomp filters (``Seccomp:`` in /proc/self/status, CONFIG_SECCOMP)."""
    try:
        with open(os.path.join(proc, "self/status"), "rb") as handle:
            return any(line.startswith(b"Seccomp:") for line in handle)
    except OSError:
        return False


def prepare(spec: str | None, capabilities, privileged: bool = False, arch: str | None = None,
            cache_dir: str | None = AUTO) -> Filter | None:
    """What the runtime calls in the parent before it forks: the compiled filter for seccomp option ``spec``
    and the container's bounding set ``capabilities``, or None for no filter (``unconfined``, or a privileged
    container: Docker loads no profile for those).

    libseccomp takes about 0.1 s to compile Docker's profile for x86_64+x86+x32, so compiled filters are kept
    per process and in ``cache_dir`` (``auto``: ``default_cache_dir()``; None: no files), keyed by the resolved
    profile, the architecture and the libseccomp version."""
    if spec is None or spec == UNCONFINED or privileged:
        return None
    arch = normalize_arch(arch)
    fast = (spec, tuple(sorted({_cap_name(c) for c in capabilities or ()})), arch, _identity(spec))
    compiled = _FAST.get(fast)
    if compiled is not None:
        return compiled
    directory = default_cache_dir() if cache_dir == AUTO else cache_dir
    if spec == DEFAULT:
        if not kernel_supports_seccomp():
            raise RuntimeSetupError(f"seccomp profile {spec!r}: the running kernel has no seccomp support "
                                    "(no 'Seccomp:' in /proc/self/status). Set seccomp: unconfined.")
        quick = _quick_key(spec, fast[1], arch) if directory else None
        compiled = _quick_read(directory, quick) if quick else None
        if compiled is not None:
            _FAST[fast] = compiled
            return compiled
    # The built-in profile is read in place (resolving never modifies a profile) and not validated again: it is
    # generated code, and a unit test validates it (test_the_built_in_profile_is_valid); a file is loaded each time.
    profile = _default_profile() if spec == DEFAULT else load_profile(spec)
    if profile is None:
        return None
    if not kernel_supports_seccomp():
        raise RuntimeSetupError(f"seccomp profile {spec!r}: the running kernel has no seccomp support "
                                "(no 'Seccomp:' in /proc/self/status). Set seccomp: unconfined.")
    version = libseccomp_version()
    if version is None:
        _libseccomp(spec)                 # raises the "not installed" error
    resolved = _resolve(profile, capabilities, arch, None)
    key = sha256_hex(json_dumps([CACHE_FORMAT, spec, arch, version, resolved], sort_keys=True).encode())
    compiled = _CACHE.get(key)
    if compiled is not None:
        return compiled
    if directory:
        compiled = _cache_read(directory, key)
    if compiled is None:
        compiled = compile_resolved(resolved, arch=arch, name=spec)
        if directory:
            _cache_write(directory, key, compiled)
    if directory and spec == DEFAULT:
        _quick_write(directory, _quick_key(spec, fast[1], arch), key)
    _CACHE[key] = _FAST[fast] = compiled
    return compiled


# The quick index: for the built-in profile, the cache key of its compiled filter found without loading
# libseccomp or resolving the profile (about 1 ms of a container start). Its key covers what the full
# key is made from, by identity instead of content: the capability set, the architecture, the kernel release,
# the seccomp_default module file and the loader's search path; the libseccomp file that compiled the filter is
# recorded in the entry and must be unchanged (an upgrade replaces it: then the full path runs again).

def _file_identity(path: str) -> list | None:
    try:
        st = os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    return [path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _quick_key(spec: str, caps: tuple, arch: str) -> str | None:
    module = _file_identity(_DEFAULT_MODULE_FILE)
    if module is None:
        return None
    return sha256_hex(json_dumps([CACHE_FORMAT, "quick", spec, list(caps), arch, os.uname().release, module,
                                  os.environ.get("LD_LIBRARY_PATH"), os.environ.get("LD_PRELOAD")]).encode())


def _loaded_libseccomp() -> list | None:
    """Identity of the libseccomp file this process has mapped (None when none is)."""
    try:
        with open("/proc/self/maps", "rb") as handle:
            for line in handle:
                path = line.split(None, 5)[-1].strip().decode("utf-8", "surrogateescape")
                if path.startswith("/") and os.path.basename(path).startswith("libseccomp.so"):
                    return _file_identity(path)
    except OSError:
        pass
    return None


def _quick_read(directory: str, quick: str) -> Filter | None:
    """The filter the quick index names, when its libseccomp is the same file; None otherwise."""
    raw = _read_private(directory, f"quick-{quick}.json", 65536)
    if raw is None:
        return None
    try:
        doc = json_loads(raw.decode("utf-8"))
        lib, key = doc["libseccomp"], doc["key"]
        if doc["format"] != CACHE_FORMAT or not isinstance(lib, list) or not lib or _file_identity(lib[0]) != lib:
            return None
        if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            return None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None
    return _cache_read(directory, key)


def _quick_write(directory: str, quick: str | None, key: str) -> None:
    lib = _loaded_libseccomp()
    if quick is None or lib is None:
        return
    _write_private(directory, f"quick-{quick}.json",
                   json_dumps({"format": CACHE_FORMAT, "key": key, "libseccomp": lib}).encode())


def _identity(spec: str) -> tuple | None:
    """What tells a profile file's versions apart (the default profile never changes within a process)."""
    if spec == DEFAULT:
        return None
    try:
        st = os.stat(spec)
    except (OSError, TypeError, ValueError):
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


# -- the child's side ------------------------------------------------------------------------------------------

def apply(compiled: Filter | None) -> None:
    """Load ``compiled`` into the calling thread (the container's init, just before exec). No-op for None.

    The kernel requires no_new_privs or CAP_SYS_ADMIN in the caller (EACCES otherwise). Nothing here imports or
    loads a library: it is safe after ``pivot_root``."""
    if compiled is None:
        return
    program = (linux.c_char * len(compiled.program)).from_buffer_copy(compiled.program)
    fprog = _SockFprog(len(compiled.program) // _INSN.size, linux.addressof(program))
    if compiled.flags:
        rc = _syscall(linux.c_long(compiled.seccomp_nr), linux.c_ulong(SECCOMP_SET_MODE_FILTER),
                      linux.c_ulong(compiled.flags), linux.byref(fprog))
    else:
        rc = _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, linux.addressof(fprog), 0, 0)
    if rc != 0:
        err = linux.get_errno()
        hint = {
            errno.EACCES: "the process has neither no_new_privs nor CAP_SYS_ADMIN; enable no_new_privileges",
            errno.EINVAL: "the kernel rejected the program or its flags; check the profile's flags",
            errno.EFAULT: "the program could not be read",
        }.get(err, "set seccomp: unconfined to run without a filter")
        raise RuntimeSetupError(f"loading seccomp profile {compiled.profile!r}: {os.strerror(err)}: {hint}.")


def check_spec(spec: str | None) -> str:
    """Validate a ``seccomp`` option value before anything is created (build_spec): ``default``, ``unconfined``
    (also for None) or the absolute path of a readable, valid profile. Returns the value to record."""
    if spec is None or spec == UNCONFINED:
        return UNCONFINED
    if spec == DEFAULT:
        return DEFAULT  # built in, validated by the unit tests: no copy, no validation on each start
    load_profile(spec)
    return spec


def report(spec: str | None, capabilities, privileged: bool = False) -> dict:
    """What container_run and container_info return under ``seccomp`` for a container recorded with option
    ``spec``: ``describe`` of the filter it gets (compiled or taken from the caches)."""
    if privileged and spec not in (None, UNCONFINED):
        return {"profile": spec, "enabled": False, "reason": "privileged containers get no filter (as with Docker)"}
    try:
        return describe(prepare(spec, capabilities, privileged), spec)
    except RuntimeSetupError as exc:
        # container_info must still answer when a recorded profile file is gone or libseccomp was removed.
        return {"profile": spec, "enabled": None, "error": str(exc)}


def describe(compiled: Filter | None, spec: str | None = None) -> dict:
    """What container_run and container_info report about a container's filter."""
    if compiled is None:
        return {"profile": spec if spec not in (None, "") else UNCONFINED, "enabled": False}
    return {
        "profile": compiled.profile,
        "enabled": True,
        "default_action": compiled.default_action,
        "default_errno": compiled.default_errno if compiled.default_errno is not None else (
            errno.EPERM if compiled.default_action == "SCMP_ACT_ERRNO" else None),
        "architectures": list(compiled.architectures),
        "syscalls_allowed": len(compiled.allowed),
        "syscalls_conditional": list(compiled.conditional),
        "syscalls_denied": list(compiled.denied),
        "syscalls_unknown": list(compiled.skipped),
        "instructions": compiled.instructions,
        "sha256": compiled.sha256,
        "libseccomp": compiled.libseccomp,
    }
