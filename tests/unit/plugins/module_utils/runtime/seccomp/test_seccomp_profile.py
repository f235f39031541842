# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""seccomp without the kernel: the default profile's data, profile validation and resolution (Docker's
includes/excludes rules), and the compiled BPF programs run through a classic-BPF interpreter written here for
every architecture of the filter (x86_64, i386, x32; aarch64 and arm compiled on this host too).

The programs are real: libseccomp (``libseccomp.so.2``) compiles them exactly as the runtime does. Only their
execution is simulated, which lets us ask about architectures this host can't run and about every syscall
number. The kernel tests (test_seccomp_kernel.py) run the same filters for real.

Run as a script to regenerate plugins/module_utils/runtime/seccomp/default.py from seccomp_default.json:
``PYTHONPATH=.build/collections .venv/bin/python tests/unit/plugins/module_utils/test_seccomp_profile.py --regenerate``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import pprint
import struct
import sys

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import default as seccomp_default
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_UTILS = os.path.join(HERE, "..", "..", "..", "..", "..", "..", "plugins", "module_utils")
JSON_PATH = os.path.normpath(os.path.join(MODULE_UTILS, "runtime", "seccomp", "default.json"))
PY_PATH = os.path.normpath(os.path.join(MODULE_UTILS, "runtime", "seccomp", "default.py"))

HAVE_LIBSECCOMP = seccomp.libseccomp_version() is not None
needs_libseccomp = pytest.mark.skipif(not HAVE_LIBSECCOMP, reason="libseccomp.so.2 is not installed")

ALLOW = seccomp.ACTIONS["SCMP_ACT_ALLOW"]
KILL = seccomp.ACTIONS["SCMP_ACT_KILL_THREAD"]


def ret_errno(code: int) -> int:
    return seccomp.ACTIONS["SCMP_ACT_ERRNO"] | code


EPERM = ret_errno(errno.EPERM)
ENOSYS = ret_errno(errno.ENOSYS)
AUDIT_X86_64 = 0xC000003E
AUDIT_I386 = 0x40000003
AUDIT_AARCH64 = 0xC00000B7
AUDIT_ARM = 0x40000028
X32 = 0x40000000


# -- the generated module -------------------------------------------------------------------------------------

HEADER = '''# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker's default seccomp profile, as Python data.

GENERATED from default.json (the same directory); do not edit by hand. The JSON is our copy of moby's
``profiles/seccomp/default.json`` in Docker's profile format (see docs/seccomp.md for its provenance). It is
held here as a .py module because AnsiballZ ships only the Python modules a module imports: a data file beside
module_utils never reaches the target. tests/unit/plugins/module_utils/test_seccomp_profile.py checks that the two are
equal and prints the command that regenerates this file.
"""

PROFILE = '''


def render_default_module(profile: dict) -> str:
    # Continuation lines aligned under the opening brace (pycodestyle E128), every line within 120 columns.
    body = pprint.pformat(profile, width=120 - len("PROFILE = "), sort_dicts=False, compact=True)
    return HEADER + body.replace("\n", "\n" + " " * len("PROFILE = ")) + "\n"


def test_default_module_is_generated_from_the_json():
    with open(JSON_PATH, encoding="utf-8") as handle:
        profile = json.load(handle)
    assert seccomp_default.PROFILE == profile, (
        "seccomp_default.py differs from seccomp_default.json; regenerate it with "
        "PYTHONPATH=.build/collections .venv/bin/python tests/unit/plugins/module_utils/test_seccomp_profile.py --regenerate")
    with open(PY_PATH, encoding="utf-8") as handle:
        assert handle.read() == render_default_module(profile), "regenerate seccomp_default.py (see above)"


def test_default_profile_keeps_dockers_policy():
    profile = seccomp.load_profile("default")
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == errno.EPERM
    assert {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]} in \
        profile["archMap"]
    assert {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]} in profile["archMap"]
    unconditional = profile["syscalls"][0]
    assert unconditional["action"] == "SCMP_ACT_ALLOW" and "includes" not in unconditional
    allowed = set(unconditional["names"])
    assert {"read", "write", "openat", "execve", "fork", "vfork", "wait4", "mkdir", "socketpair"} <= allowed
    # What Docker users rely on being denied is in no rule at all (default action) or only behind a capability.
    named = {n for rule in profile["syscalls"] for n in rule["names"]}
    assert not {"keyctl", "add_key", "request_key", "kexec_load", "userfaultfd", "pivot_root"} & named
    gated = {n for rule in profile["syscalls"] if rule.get("includes", {}).get("caps") for n in rule["names"]}
    assert {"bpf", "mount", "unshare", "setns", "perf_event_open", "open_by_handle_at", "ptrace"} <= gated
    assert not {"clone", "clone3", "socket", "personality", "mount", "unshare", "bpf", "ptrace"} & allowed
    # The load_profile copy is private: changing it never changes the built-in profile.
    profile["syscalls"].clear()
    assert seccomp.load_profile("default")["syscalls"]


def test_load_profile_specs(tmp_path):
    assert seccomp.load_profile("unconfined") is None
    assert seccomp.load_profile(None) is None
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}))
    assert seccomp.load_profile(str(path))["syscalls"][0]["errnoRet"] == 122


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[]", "top level must be a JSON object"),
    (b" " * (seccomp.PROFILE_SIZE_LIMIT + 1), "larger than"),
])
def test_load_profile_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(RuntimeSetupError, match=message) as info:
        seccomp.load_profile(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("spec, message", [
    ("relative/profile.json", "absolute path"),
    ("/nonexistent/profile.json", "can't read it"),
    ("Default", "absolute path"),
])
def test_load_profile_refuses_bad_specs(spec, message):
    with pytest.raises(RuntimeSetupError, match=message):
        seccomp.load_profile(spec)


def _base(**extra):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    profile.update(extra)
    return profile


def _rule(**rule):
    return _base(syscalls=[dict({"names": ["read"], "action": "SCMP_ACT_ALLOW"}, **rule)])


@pytest.mark.parametrize("profile, message", [
    (_base(defaultAction="SCMP_ACT_NOTIFY"), "defaultAction 'SCMP_ACT_NOTIFY'"),
    (_base(defaultAction=""), "defaultAction ''"),
    (_base(defaultErrnoRet=-1), "defaultErrnoRet"),
    (_base(defaultErrnoRet=70000), "defaultErrnoRet"),
    (_base(listenerPath="/run/agent.sock"), "listenerPath"),
    (_base(architectures=["SCMP_ARCH_X86_64"], archMap=[{"architecture": "SCMP_ARCH_X86_64"}]), "both set"),
    (_base(architectures=["x86_64"]), "not a SCMP_ARCH_"),
    (_base(archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": "SCMP_ARCH_X86"}]), "subArchitectures"),
    (_base(flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]), "flag"),
    (_base(syscalls={"names": ["read"]}), "'syscalls' must be a list"),
    (_base(syscalls=["read"]), "must be an object"),
    (_rule(names=[]), "needs 'names'"),
    (_rule(names=["read", 3]), "needs 'names'"),
    (_rule(name="write"), "'name' and 'names' are both set"),
    (_rule(action="SCMP_ACT_NOTIFY"), "action 'SCMP_ACT_NOTIFY'"),
    (_rule(errnoRet="1"), "errnoRet"),
    (_rule(args=[{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]), "index 6"),
    (_rule(args=[{"index": True, "value": 0, "op": "SCMP_CMP_EQ"}]), "index True"),
    (_rule(args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]), "unsigned 64-bit"),
    (_rule(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}]), "unsigned 64-bit"),
    (_rule(args=[{"index": 0, "value": 0, "op": "SCMP_CMP_MAGIC"}]), "op 'SCMP_CMP_MAGIC'"),
    (_rule(args={"index": 0}), "'args' must be a list"),
    (_rule(includes={"caps": "CAP_SYS_ADMIN"}), "'caps' must be a list"),
    (_rule(excludes=["CAP_SYS_ADMIN"]), "must be an object"),
    (_rule(includes={"minKernel": "four"}), "kernel version 'four'"),
])
def test_validate_profile_refuses(profile, message):
    with pytest.raises(RuntimeSetupError, match=message) as info:
        seccomp.validate_profile(profile, "p.json")
    assert "p.json" in str(info.value) and "Fix the profile" in str(info.value)


# -- resolution: Docker's setupSeccomp ------------------------------------------------------------------------

def resolved_rules(resolved: dict) -> dict[str, list[dict]]:
    """syscall name → the rules (without names) that mention it."""
    out: dict[str, list[dict]] = {}
    for rule in resolved["syscalls"]:
        for name in rule["names"]:
            out.setdefault(name, []).append({k: v for k, v in rule.items() if k != "names"})
    return out


DEFAULT = seccomp_default.PROFILE


def test_resolve_default_profile_for_dockers_default_capabilities():
    resolved = seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="x86_64", kernel="6.1.0")
    assert resolved["defaultAction"] == "SCMP_ACT_ERRNO" and resolved["defaultErrnoRet"] == 1
    assert resolved["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    rules = resolved_rules(resolved)
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "perf_event_open", "open_by_handle_at", "kcmp",
                 "reboot", "init_module", "acct", "iopl", "settimeofday", "vhangup", "mbind", "syslog"):
        assert name not in rules, name
    # clone: only without namespace flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET = 0x7E020000).
    assert rules["clone"] == [{"action": "SCMP_ACT_ALLOW",
                               "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert rules["clone3"] == [{"action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]
    assert rules["socket"] == [{"action": "SCMP_ACT_ALLOW",
                                "args": [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]}]
    assert sorted(r["args"][0]["value"] for r in rules["personality"]) == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    # CAP_SYS_CHROOT is one of Docker's 14: chroot is allowed; ptrace too (kernel >= 4.8).
    assert rules["chroot"] == [{"action": "SCMP_ACT_ALLOW"}]
    assert rules["ptrace"] == [{"action": "SCMP_ACT_ALLOW"}]
    assert rules["arch_prctl"] == rules["modify_ldt"] == [{"action": "SCMP_ACT_ALLOW"}]
    for name in ("set_tls", "cacheflush", "s390_runtime_instr", "riscv_flush_icache", "swapcontext"):
        assert name not in rules, name


def test_resolve_with_cap_sys_admin_allows_namespaces_and_mounts():
    caps = list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"]
    rules = resolved_rules(seccomp.resolve_profile(DEFAULT, caps, arch="amd64", kernel="6.1"))
    for name in ("mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "perf_event_open", "sethostname"):
        assert {"action": "SCMP_ACT_ALLOW"} in rules[name], name
    # The flag-filtered clone and clone3 → ENOSYS are excluded when the container holds CAP_SYS_ADMIN.
    assert rules["clone"] == [{"action": "SCMP_ACT_ALLOW"}]
    assert rules["clone3"] == [{"action": "SCMP_ACT_ALLOW"}]


@pytest.mark.parametrize("cap, names", [
    ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise"]),
    ("sys_nice", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("cap_bpf", ["bpf"]),
    ("PERFMON", ["perf_event_open"]),
    ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
    ("CAP_SYS_BOOT", ["reboot"]),
    ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
    ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
    ("CAP_SYS_TIME", ["settimeofday", "clock_settime"]),
    ("CAP_SYSLOG", ["syslog"]),
])
def test_resolve_capability_gated_rules(cap, names):
    without = resolved_rules(seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="amd64", kernel="6.1"))
    with_cap = resolved_rules(seccomp.resolve_profile(DEFAULT, list(DEFAULT_CAPABILITIES) + [cap], arch="amd64",
                                                      kernel="6.1"))
    for name in names:
        assert name not in without, name
        assert {"action": "SCMP_ACT_ALLOW"} in with_cap[name], name


def test_resolve_without_chroot_capability():
    caps = [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"]
    assert "chroot" not in resolved_rules(seccomp.resolve_profile(DEFAULT, caps, arch="amd64", kernel="6.1"))


def test_resolve_min_kernel():
    old = resolved_rules(seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="amd64", kernel="4.4.0-210"))
    assert "ptrace" not in old and "process_vm_readv" not in old
    new = resolved_rules(seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="amd64", kernel="4.8"))
    assert "ptrace" in new
    profile = _rule(excludes={"minKernel": "5.0"})
    assert seccomp.resolve_profile(profile, [], arch="amd64", kernel="4.19.3")["syscalls"]
    assert not seccomp.resolve_profile(profile, [], arch="amd64", kernel="5.0.0-rc1")["syscalls"]


@pytest.mark.parametrize("arch, architectures, present, absent", [
    ("aarch64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"], ["set_tls", "cacheflush", "arm_fadvise64_64", "clone"],
     ["arch_prctl", "modify_ldt", "swapcontext"]),
    ("armv7l", ["SCMP_ARCH_ARM"], ["set_tls"], ["arch_prctl"]),
    ("s390x", ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"], ["s390_runtime_instr", "clone"], ["arch_prctl"]),
    ("ppc64le", ["SCMP_ARCH_PPC64LE"], ["swapcontext", "sync_file_range2"], ["set_tls"]),
    ("riscv64", ["SCMP_ARCH_RISCV64"], ["riscv_flush_icache"], ["set_tls", "modify_ldt"]),
    ("i686", ["SCMP_ARCH_X86"], ["modify_ldt"], ["arch_prctl"]),
])
def test_resolve_architectures(arch, architectures, present, absent):
    resolved = seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch=arch, kernel="6.1")
    # ppc64le and armv7l have no archMap entry whose native arch matches (arm is only a sub-architecture of
    # aarch64), so Docker leaves the list empty and libseccomp uses the native architecture alone.
    expected = architectures if arch not in ("ppc64le", "armv7l", "i686") else []
    assert resolved["architectures"] == expected
    rules = resolved_rules(resolved)
    for name in present:
        assert name in rules, name
    for name in absent:
        assert name not in rules, name


def test_resolve_s390_clone_checks_the_second_argument():
    rules = resolved_rules(seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="s390x", kernel="6.1"))
    assert [r["args"][0]["index"] for r in rules["clone"]] == [1]


def test_resolve_includes_need_every_capability_excludes_any():
    profile = _base(syscalls=[
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
        {"names": ["umount2"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
        {"names": ["swapon"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["arm64"]}},
        {"name": "sync", "action": "SCMP_ACT_ALLOW", "includes": {}, "excludes": {"caps": []}},
    ])

    def names(caps, arch="amd64"):
        return sorted(resolved_rules(seccomp.resolve_profile(profile, caps, arch=arch, kernel="6.1")))

    assert names([]) == ["sync", "umount2"]
    assert names(["CAP_SYS_ADMIN"]) == ["sync"]
    assert names(["sys_admin", "net_admin"]) == ["mount", "sync"]
    assert names(["CAP_SYS_ADMIN"], arch="aarch64") == ["swapon", "sync"]


def test_resolve_explicit_architectures_and_flags():
    profile = _base(architectures=["SCMP_ARCH_X86_64"], flags=["SECCOMP_FILTER_FLAG_LOG"], defaultErrnoRet=13)
    resolved = seccomp.resolve_profile(profile, [], arch="amd64", kernel="6.1")
    assert resolved == {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                        "architectures": ["SCMP_ARCH_X86_64"],
                        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}


def test_unknown_architecture_is_refused():
    with pytest.raises(RuntimeSetupError, match="architecture 'vax' is unknown"):
        seccomp.resolve_profile(DEFAULT, [], arch="vax")


@pytest.mark.parametrize("text, expected", [
    ("4.8", (4, 8, 0)), ("6.18.44-fc-v657", (6, 18, 44)), ("5.10.0-28-amd64", (5, 10, 0)), ("3.10.0+", (3, 10, 0)),
    ("6.1-rc3", (6, 1, 0)),
])
def test_kernel_versions(text, expected):
    assert seccomp._kernel_tuple(text) == expected


# -- a classic BPF interpreter (what the kernel runs for seccomp) ----------------------------------------------

class BPFError(Exception):
    pass


def seccomp_data(nr: int, arch: int, args=(0, 0, 0, 0, 0, 0), ip: int = 0) -> bytes:
    """struct seccomp_data (include/uapi/linux/seccomp.h) in host byte order."""
    args = list(args) + [0] * (6 - len(args))
    return struct.pack("=iIQ6Q", nr, arch, ip, *[a & (1 << 64) - 1 for a in args])


def _alu(code: int, a: int, src: int) -> int | None:
    op = code & 0xF0
    if op in (0x30, 0x90) and not src:
        return None
    table = {0x00: lambda: a + src, 0x10: lambda: a - src, 0x20: lambda: a * src, 0x30: lambda: a // src,
             0x40: lambda: a | src, 0x50: lambda: a & src, 0x60: lambda: a << (src & 31),
             0x70: lambda: a >> (src & 31), 0x80: lambda: -a, 0x90: lambda: a % src, 0xA0: lambda: a ^ src}
    if op not in table:
        raise BPFError(f"unsupported alu 0x{code:x}")
    return table[op]()


def run_bpf(program: bytes, data: bytes) -> int:
    """Run a classic BPF program the way the kernel's seccomp does: loads from seccomp_data, ALU, jumps,
    scratch memory, and a return value. Unknown instructions and out-of-range accesses raise BPFError."""
    insns = [struct.unpack_from("=HBBI", program, off) for off in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    steps = 0
    while True:
        if pc >= len(insns):
            raise BPFError(f"fell off the end at {pc}")
        steps += 1
        if steps > 100000:
            raise BPFError("too many steps")
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:                           # BPF_LD
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x20 and size == 0x00:     # BPF_ABS | BPF_W
                if k % 4 or k + 4 > len(data):
                    raise BPFError(f"bad load offset {k}")
                a = struct.unpack_from("=I", data, k)[0]
            elif mode == 0x00:                    # BPF_IMM
                a = k
            elif mode == 0x60:                    # BPF_MEM
                a = mem[k]
            elif mode == 0x80:                    # BPF_LEN
                a = len(data)
            else:
                raise BPFError(f"unsupported load 0x{code:x}")
        elif cls == 0x01:                         # BPF_LDX
            mode = code & 0xE0
            if mode == 0x00:
                x = k
            elif mode == 0x60:
                x = mem[k]
            elif mode == 0x80:
                x = len(data)
            else:
                raise BPFError(f"unsupported ldx 0x{code:x}")
        elif cls == 0x02:                         # BPF_ST
            mem[k] = a
        elif cls == 0x03:                         # BPF_STX
            mem[k] = x
        elif cls == 0x04:                         # BPF_ALU
            value = _alu(code, a, x if code & 0x08 else k)
            if value is None:
                return 0                          # division by zero: the kernel returns 0 (kill)
            a = value & 0xFFFFFFFF
        elif cls == 0x05:                         # BPF_JMP
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:
                pc += k
            else:
                cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}.get(op)
                if cond is None:
                    raise BPFError(f"unsupported jump 0x{code:x}")
                pc += jt if cond else jf
        elif cls == 0x06:                         # BPF_RET
            return a if code & 0x18 == 0x10 else k
        elif cls == 0x07:                         # BPF_MISC
            if code == 0x07:
                x = a
            elif code == 0x87:
                a = x
            else:
                raise BPFError(f"unsupported misc 0x{code:x}")


def test_interpreter_runs_a_hand_written_program():
    program = b"".join(struct.pack("=HBBI", *i) for i in [
        (0x20, 0, 0, 4),            # ld arch
        (0x15, 0, 3, AUDIT_X86_64),  # jeq x86_64 else → kill
        (0x20, 0, 0, 0),            # ld nr
        (0x15, 0, 1, 39),           # jeq getpid
        (0x06, 0, 0, ALLOW),
        (0x06, 0, 0, EPERM),
    ])
    assert run_bpf(program, seccomp_data(39, AUDIT_X86_64)) == ALLOW
    assert run_bpf(program, seccomp_data(40, AUDIT_X86_64)) == EPERM
    assert run_bpf(program, seccomp_data(39, AUDIT_I386)) == EPERM   # jf=3 lands on the last instruction
    with pytest.raises(BPFError):
        run_bpf(program[:8], seccomp_data(0, 0))


# -- compiled filters ---------------------------------------------------------------------------------------------

def nr(name: str, arch: str = "x86_64") -> int:
    lib = seccomp._libseccomp("test")
    token = lib.seccomp_arch_resolve_name(arch.encode())
    number = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
    assert number >= 0, (name, arch)
    return number


def syscall_name(number: int, arch: str = "x86_64") -> str | None:
    lib = seccomp._libseccomp("test")
    fn = lib.seccomp_syscall_resolve_num_arch
    fn.argtypes = [ctypes.c_uint32, ctypes.c_int]
    fn.restype = ctypes.c_void_p
    pointer = fn(lib.seccomp_arch_resolve_name(arch.encode()), number)
    if not pointer:
        return None
    name = ctypes.string_at(pointer).decode()
    ctypes.CDLL(None).free(ctypes.c_void_p(pointer))
    return name


@pytest.fixture(scope="module")
def default_filter():
    return seccomp.compile_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="x86_64", name="default", kernel="6.1")


CLONE_THREAD_FLAGS = 0x003D0F00    # what glibc's pthread_create passes (CLONE_VM|FS|FILES|SIGHAND|THREAD|...)
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000


@needs_libseccomp
@pytest.mark.parametrize("arch_name, audit", [("x86_64", AUDIT_X86_64), ("x86", AUDIT_I386), ("x32", AUDIT_X86_64)])
def test_default_filter_decisions_on_each_x86_abi(default_filter, arch_name, audit):
    def decide(name, *args):
        return run_bpf(default_filter.program, seccomp_data(nr(name, arch_name), audit, args))

    for name in ("keyctl", "add_key", "request_key", "kexec_load", "mount", "umount2", "unshare", "setns", "bpf",
                 "perf_event_open", "open_by_handle_at", "userfaultfd", "pivot_root", "swapon", "reboot"):
        assert decide(name) == EPERM, name
    for name in ("read", "write", "openat", "close", "execve", "exit_group", "wait4", "getpid", "mkdir",
                 "ptrace", "chroot", "rt_sigreturn"):
        assert decide(name) == ALLOW, name
    assert decide("clone", CLONE_THREAD_FLAGS) == ALLOW
    assert decide("clone", 0x11) == ALLOW                         # fork(): SIGCHLD only
    assert decide("clone", CLONE_NEWUSER | 0x11) == EPERM
    assert decide("clone", CLONE_NEWNS) == EPERM
    assert decide("clone3", 0, 88) == ENOSYS                      # glibc falls back to clone
    assert decide("personality", 0) == ALLOW
    assert decide("personality", 0xFFFFFFFF) == ALLOW             # the query: allowed by Docker's profile
    assert decide("personality", 0x0040000) == EPERM              # ADDR_NO_RANDOMIZE
    # The sign-extended -1 is not 0xffffffff on x86_64 (libseccomp compares all 64 bits there); i386 and x32
    # arguments are 32 bits wide.
    assert decide("personality", (1 << 64) - 1) == (EPERM if arch_name == "x86_64" else ALLOW)
    if arch_name == "x86":
        assert decide("socketcall", 1, 0) == ALLOW                # i386 multiplexes sockets; Docker allows it
        assert decide("modify_ldt") == ALLOW
    else:
        assert decide("socket", 40, 1, 0) == EPERM                # AF_VSOCK
        assert decide("socket", 2, 1, 0) == ALLOW                 # AF_INET
        assert decide("socket", 1, 1, 0) == ALLOW                 # AF_UNIX
        assert decide("arch_prctl") == ALLOW


@needs_libseccomp
def test_default_filter_every_x86_64_syscall_matches_the_resolved_profile(default_filter):
    """For each syscall number of x86_64 (and a few past the end): the program's answer is what the resolved
    profile says for that name: allowed names ALLOW, unlisted ones EPERM, numbers above the profile's highest
    ENOSYS (the stub), and the argument-filtered ones (clone, socket, personality) checked above."""
    resolved = seccomp.resolve_profile(DEFAULT, DEFAULT_CAPABILITIES, arch="x86_64", kernel="6.1")
    rules = resolved_rules(resolved)
    highest = default_filter.enosys_above["SCMP_ARCH_X86_64"]
    assert highest == max(nr(n) for n in rules if seccomp._libseccomp("t").seccomp_syscall_resolve_name(n.encode()) >= 0)
    seen = 0
    for number in range(0, highest + 40):
        got = run_bpf(default_filter.program, seccomp_data(number, AUDIT_X86_64))
        name = syscall_name(number)
        if number > highest:
            assert got == ENOSYS, (number, name)
            continue
        if name is None or name not in rules:
            assert got == EPERM, (number, name)
            continue
        seen += 1
        actions = rules[name]
        if any("args" in r for r in actions):
            continue
        expected = ALLOW if actions[0]["action"] == "SCMP_ACT_ALLOW" else ret_errno(actions[0]["errnoRet"])
        assert got == expected, (number, name)
    assert seen > 250
    # The x32 ABI: bit 30 set; a number past its table also gets ENOSYS.
    assert run_bpf(default_filter.program, seccomp_data(X32 | 1000, AUDIT_X86_64)) == ENOSYS
    assert run_bpf(default_filter.program, seccomp_data(X32 | 0, AUDIT_X86_64)) == ALLOW
    # An architecture that is not in the filter is killed (libseccomp's bad-arch action), never allowed.
    assert run_bpf(default_filter.program, seccomp_data(63, AUDIT_AARCH64)) == KILL


@needs_libseccomp
def test_cap_sys_admin_filter_allows_namespaces():
    compiled = seccomp.compile_profile(DEFAULT, list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"], arch="x86_64",
                                       kernel="6.1")
    for name, args in (("mount", ()), ("unshare", (CLONE_NEWUSER,)), ("clone", (CLONE_NEWUSER | 0x11,)),
                       ("setns", ()), ("bpf", ())):
        assert run_bpf(compiled.program, seccomp_data(nr(name), AUDIT_X86_64, args)) == ALLOW, name
    assert run_bpf(compiled.program, seccomp_data(nr("clone3"), AUDIT_X86_64)) == ALLOW
    assert run_bpf(compiled.program, seccomp_data(nr("keyctl"), AUDIT_X86_64)) == EPERM


@needs_libseccomp
@pytest.mark.parametrize("arch", ["aarch64", "armv7l"])
def test_arm_filters(arch):
    compiled = seccomp.compile_profile(DEFAULT, DEFAULT_CAPABILITIES, arch=arch, kernel="6.1")
    if arch == "aarch64":
        assert compiled.architectures == ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM")
        checks = [("aarch64", AUDIT_AARCH64), ("arm", AUDIT_ARM)]
    else:
        assert compiled.architectures == ("SCMP_ARCH_ARM",)
        checks = [("arm", AUDIT_ARM)]
    for lib_arch, audit in checks:
        def decide(name, *args, lib_arch=lib_arch, audit=audit):
            return run_bpf(compiled.program, seccomp_data(nr(name, lib_arch), audit, args))

        assert decide("read") == ALLOW
        assert decide("keyctl") == EPERM
        assert decide("mount") == EPERM
        assert decide("clone", CLONE_NEWUSER) == EPERM
        assert decide("clone", 0x11) == ALLOW
        assert decide("clone3") == ENOSYS
        assert decide("socket", 40) == EPERM
        assert decide("socket", 10) == ALLOW
    if arch == "aarch64":
        assert run_bpf(compiled.program, seccomp_data(nr("set_tls", "arm"), AUDIT_ARM)) == ALLOW
        assert run_bpf(compiled.program, seccomp_data(1000, AUDIT_AARCH64)) == ENOSYS
    assert run_bpf(compiled.program, seccomp_data(0, AUDIT_X86_64)) == KILL


@needs_libseccomp
def test_custom_profile_errno_and_no_stub_under_allow(tmp_path):
    path = tmp_path / "nomkdir.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDQUOT},
                     {"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"}],
    }))
    compiled = seccomp.compile_profile(seccomp.load_profile(str(path)), [], arch="x86_64", name=str(path))
    assert compiled.architectures == ("SCMP_ARCH_X86_64",)
    assert compiled.enosys_above == {}
    assert compiled.skipped == ("no_such_syscall",)
    assert compiled.denied == ("mkdir", "mkdirat")
    assert run_bpf(compiled.program, seccomp_data(nr("mkdir"), AUDIT_X86_64)) == ret_errno(errno.EDQUOT)
    assert run_bpf(compiled.program, seccomp_data(nr("mkdirat"), AUDIT_X86_64)) == ret_errno(errno.EDQUOT)
    assert run_bpf(compiled.program, seccomp_data(nr("keyctl"), AUDIT_X86_64)) == ALLOW
    assert run_bpf(compiled.program, seccomp_data(460, AUDIT_X86_64)) == ALLOW   # newer than the profile: allowed


@needs_libseccomp
def test_argument_conditions_and_or_like_runc():
    # Conditions on different arguments: one rule, all must hold. Two on the same argument: one rule each.
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 1, "value": 0xF0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": 10, "op": "SCMP_CMP_LT"}]},
    ]}
    program = seccomp.compile_profile(profile, [], arch="x86_64").program

    def decide(name, *args):
        return run_bpf(program, seccomp_data(nr(name), AUDIT_X86_64, args))

    assert decide("socket", 2, 1) == ALLOW
    assert decide("socket", 2, 2) == EPERM
    assert decide("socket", 10, 1) == EPERM
    assert decide("personality", 8) == ALLOW and decide("personality", 0) == ALLOW
    assert decide("personality", 1) == EPERM
    assert decide("kill", 1, 0x1F) == ALLOW and decide("kill", 1, 0x2F) == EPERM
    assert decide("write", 1, 0, 9) == ALLOW and decide("write", 1, 0, 10) == EPERM


@pytest.mark.parametrize("limits", [
    {"SCMP_ARCH_X86_64": 449},
    {"SCMP_ARCH_X86_64": 449, "SCMP_ARCH_X32": X32 | 547, "SCMP_ARCH_X86": 450},
    {"SCMP_ARCH_X32": X32 | 547},
    {"SCMP_ARCH_AARCH64": 449, "SCMP_ARCH_ARM": 0xF0005},
])
def test_enosys_stub_alone(limits):
    """The stub in front of a 'filter' that allows everything, with a long tail so every ja is a long jump."""
    tail = struct.pack("=HBBI", 0x05, 0, 0, 300) + struct.pack("=HBBI", 0x06, 0, 0, EPERM) * 300 + \
        struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    program = seccomp.enosys_stub(limits) + tail
    for scmp_arch, limit in limits.items():
        audit = seccomp.AUDIT_ARCH[scmp_arch]
        assert run_bpf(program, seccomp_data(limit, audit)) == ALLOW
        assert run_bpf(program, seccomp_data(limit + 1, audit)) == ENOSYS
        assert run_bpf(program, seccomp_data(0 if scmp_arch != "SCMP_ARCH_X32" else X32, audit)) == ALLOW
        assert run_bpf(program, seccomp_data(-1, audit)) == ENOSYS or scmp_arch == "SCMP_ARCH_X86_64" and \
            "SCMP_ARCH_X32" not in limits
    x86 = limits.get("SCMP_ARCH_X86_64")
    if x86 is not None and "SCMP_ARCH_X32" not in limits:
        # No x32 in the filter: x32 numbers are left to the filter (libseccomp kills them as a bad arch).
        assert run_bpf(program, seccomp_data(X32 | 5000, AUDIT_X86_64)) == ALLOW
    assert run_bpf(program, seccomp_data(100000, 0x12345678)) == ALLOW     # unknown arch: to the filter
    assert seccomp.enosys_stub({}) == b""


@needs_libseccomp
def test_filter_too_large_is_refused():
    many = [{"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 2, "value": i, "op": "SCMP_CMP_EQ"}]}
            for i in range(4200)]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": many}
    with pytest.raises(RuntimeSetupError, match="more than the kernel's 4096"):
        seccomp.compile_profile(profile, [], arch="x86_64", name="big")


@needs_libseccomp
def test_unknown_scmp_architecture_is_refused():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"], "syscalls": []}
    with pytest.raises(RuntimeSetupError, match="SCMP_ARCH_VAX is unknown to libseccomp"):
        seccomp.compile_profile(profile, [], arch="x86_64", name="vax")


@needs_libseccomp
def test_describe(default_filter):
    info = seccomp.describe(default_filter)
    assert info["profile"] == "default" and info["enabled"] is True
    assert info["default_action"] == "SCMP_ACT_ERRNO" and info["default_errno"] == errno.EPERM
    assert info["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert info["syscalls_conditional"] == ["clone", "personality", "socket"]
    assert info["syscalls_denied"] == ["clone3"]
    assert info["syscalls_allowed"] > 300
    assert info["instructions"] == len(default_filter.program) // 8 and info["sha256"] == default_filter.sha256
    assert info["libseccomp"] == seccomp.libseccomp_version()
    json.dumps(info)
    assert seccomp.describe(None) == {"profile": "unconfined", "enabled": False}


# -- prepare: the runtime's entry point, caches ------------------------------------------------------------------

@needs_libseccomp
def test_prepare_unconfined_and_privileged_load_nothing(tmp_path):
    assert seccomp.prepare("unconfined", DEFAULT_CAPABILITIES, cache_dir=None) is None
    assert seccomp.prepare(None, DEFAULT_CAPABILITIES, cache_dir=None) is None
    # Docker loads no profile into a privileged container, even a custom one.
    assert seccomp.prepare(str(tmp_path / "missing.json"), DEFAULT_CAPABILITIES, privileged=True) is None


def filters(cache):
    """The compiled filters in a cache directory (not the quick index entries)."""
    return [f for f in cache.iterdir() if not f.name.startswith("quick-")]


@needs_libseccomp
def test_prepare_caches_in_process_and_on_disk(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    first = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    assert seccomp.prepare("default", list(reversed(DEFAULT_CAPABILITIES)), cache_dir=str(cache)) is first
    files = filters(cache)
    assert len(files) == 1 and oct(cache.stat().st_mode & 0o777) == "0o700"
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    (quick,) = [f for f in cache.iterdir() if f.name.startswith("quick-")]  # the built-in profile's index entry
    assert oct(quick.stat().st_mode & 0o777) == "0o600"
    # A new process (empty memory caches) reads the same filter back from disk.
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    again = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    assert again == first and again is not first
    # Another capability set is another filter.
    admin = seccomp.prepare("default", list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"], cache_dir=str(cache))
    assert admin.program != first.program and len(filters(cache)) == 2


@needs_libseccomp
@pytest.mark.parametrize("damage", ["program", "mode", "dir_mode", "garbage"])
def test_prepare_ignores_a_damaged_cache(tmp_path, monkeypatch, damage):
    cache = tmp_path / "cache"
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    good = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    (entry,) = filters(cache)
    doc = json.loads(entry.read_text())
    if damage == "program":
        # A weakened program: "allow everything". The checksum no longer matches, so it is not used.
        doc["program"] = struct.pack("=HBBI", 0x06, 0, 0, ALLOW).hex()
        entry.write_text(json.dumps(doc))
    elif damage == "mode":
        doc["program"] = struct.pack("=HBBI", 0x06, 0, 0, ALLOW).hex()
        doc["sha256"] = __import__("hashlib").sha256(bytes.fromhex(doc["program"])).hexdigest()
        entry.write_text(json.dumps(doc))
        entry.chmod(0o666)      # writable by others: not trusted, whatever it holds
    elif damage == "dir_mode":
        doc["program"] = struct.pack("=HBBI", 0x06, 0, 0, ALLOW).hex()
        doc["sha256"] = __import__("hashlib").sha256(bytes.fromhex(doc["program"])).hexdigest()
        entry.write_text(json.dumps(doc))
        cache.chmod(0o777)
    else:
        entry.write_bytes(b"\0garbage")
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    again = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    assert again.program == good.program


@needs_libseccomp
def test_prepare_reloads_a_changed_profile_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}]}))
    first = seccomp.prepare(str(path), [], cache_dir=None)
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6}]}))
    os.utime(path, ns=(1, 1))
    second = seccomp.prepare(str(path), [], cache_dir=None)
    assert run_bpf(first.program, seccomp_data(nr("mkdir"), AUDIT_X86_64)) == ret_errno(5)
    assert run_bpf(second.program, seccomp_data(nr("mkdir"), AUDIT_X86_64)) == ret_errno(6)
    assert second.profile == str(path)


def test_missing_libseccomp_is_a_clear_error(monkeypatch):
    # This host has libseccomp; point the loader at a library name that doesn't exist to see the error.
    monkeypatch.setattr(seccomp, "_LIB", None)
    monkeypatch.setattr(seccomp, "LIBSECCOMP", "libseccomp-missing.so.0")
    monkeypatch.setattr(seccomp, "_FAST", {})
    with pytest.raises(RuntimeSetupError) as info:
        seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=None)
    message = str(info.value)
    assert "libseccomp-missing.so.0 is not installed" in message and "seccomp: unconfined" in message
    assert "libseccomp2" in message
    # Unconfined needs no library at all.
    assert seccomp.prepare("unconfined", DEFAULT_CAPABILITIES) is None
    assert seccomp.libseccomp_version() is None


def test_check_spec(tmp_path):
    assert seccomp.check_spec(None) == seccomp.check_spec("unconfined") == "unconfined"
    assert seccomp.check_spec("default") == "default"
    path = tmp_path / "p.json"
    path.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert seccomp.check_spec(str(path)) == str(path)
    path.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]}')
    with pytest.raises(RuntimeSetupError, match="syscalls\\[0\\]: action None"):
        seccomp.check_spec(str(path))


@needs_libseccomp
def test_report():
    info = seccomp.report("default", DEFAULT_CAPABILITIES)
    assert info["enabled"] is True and info["profile"] == "default" and info["syscalls_denied"] == ["clone3"]
    assert seccomp.report("unconfined", DEFAULT_CAPABILITIES) == {"profile": "unconfined", "enabled": False}
    privileged = seccomp.report("default", DEFAULT_CAPABILITIES, privileged=True)
    assert privileged["enabled"] is False and "privileged" in privileged["reason"]
    gone = seccomp.report("/nonexistent/profile.json", DEFAULT_CAPABILITIES)
    assert gone["enabled"] is None and "can't read it" in gone["error"]


if __name__ == "__main__" and "--regenerate" in sys.argv:
    with open(JSON_PATH, encoding="utf-8") as src:
        text = render_default_module(json.load(src))
    with open(PY_PATH, "w", encoding="utf-8") as dst:
        dst.write(text)
    print(f"wrote {PY_PATH}")


def test_the_built_in_profile_is_valid():
    # seccomp.prepare and check_spec use seccomp_default.PROFILE as it is, without validating it on each start
    #: this is where it is validated, and it must come out of resolving unchanged.
    before = json.dumps(seccomp_default.PROFILE, sort_keys=True)
    seccomp.validate_profile(seccomp_default.PROFILE, seccomp.DEFAULT)
    seccomp.resolve_profile(seccomp_default.PROFILE, ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"], "amd64")
    seccomp.prepare(seccomp.DEFAULT, ["CAP_CHOWN"], cache_dir=None)
    assert json.dumps(seccomp_default.PROFILE, sort_keys=True) == before
    assert seccomp.check_spec(seccomp.DEFAULT) == seccomp.DEFAULT


@needs_libseccomp
def test_the_quick_index_finds_the_default_filter_without_libseccomp(tmp_path, monkeypatch):
    # A new process finds the built-in profile's filter without loading libseccomp or resolving.
    cache = tmp_path / "cache"
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    first = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})

    def no_library(profile):
        raise AssertionError("libseccomp loaded")

    monkeypatch.setattr(seccomp, "_libseccomp", no_library)
    monkeypatch.setattr(seccomp, "_resolve", lambda *a: (item for item in ()).throw(AssertionError("resolved")))
    again = seccomp.prepare("default", list(reversed(DEFAULT_CAPABILITIES)), cache_dir=str(cache))
    assert again == first and again is not first
    # Another capability set is not in the index: that one needs the library.
    with pytest.raises(AssertionError, match="libseccomp loaded"):
        seccomp.prepare("default", list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"], cache_dir=str(cache))


@needs_libseccomp
@pytest.mark.parametrize("damage", ["library", "key", "mode", "garbage"])
def test_the_quick_index_is_ignored_when_it_no_longer_holds(tmp_path, monkeypatch, damage):
    cache = tmp_path / "cache"
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    good = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    (quick,) = [f for f in cache.iterdir() if f.name.startswith("quick-")]
    doc = json.loads(quick.read_text())
    assert os.path.basename(doc["libseccomp"][0]).startswith("libseccomp.so")
    if damage == "library":
        doc["libseccomp"][2] += 1          # another inode: libseccomp was upgraded since
        quick.write_text(json.dumps(doc))
    elif damage == "key":
        doc["key"] = "../" + doc["key"][3:]
        quick.write_text(json.dumps(doc))
    elif damage == "mode":
        quick.chmod(0o666)
    else:
        quick.write_bytes(b"\0garbage")
    monkeypatch.setattr(seccomp, "_CACHE", {})
    monkeypatch.setattr(seccomp, "_FAST", {})
    loads = []
    real = seccomp._libseccomp
    monkeypatch.setattr(seccomp, "_libseccomp", lambda profile: loads.append(profile) or real(profile))
    again = seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=str(cache))
    assert again.program == good.program and loads  # the full path ran
    assert oct(quick.stat().st_mode & 0o777) == "0o600" and json.loads(quick.read_text())["key"] != "../"
