# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ELF reader and loader-search model: crafted ELF files in tmp_path roots, host binaries against pyelftools
and ``ldd``, and damaged files that must fail with BuildError only."""

from __future__ import annotations

import fnmatch
import glob
import os
import random
import shutil
import struct
import subprocess

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.errors import BuildError
from ansible_collections.dockerless.containers.plugins.module_utils.image import elf

BASE_VADDR = 0x400000


def make_elf(
    path,
    *,
    bits: int = 64,
    little: bool = True,
    machine: int = 62,
    etype: int = elf.ET_DYN,
    interp: str | None = None,
    needed: tuple[str, ...] = (),
    soname: str | None = None,
    rpath: str | None = None,
    runpath: str | None = None,
    flags_1: int = 0,
    osabi: int = 0,
    dynamic: bool = True,
) -> str:
    """Write a minimal but well-formed ELF file: ELF header, PT_LOAD over the whole file, PT_INTERP, PT_DYNAMIC."""
    end = "<" if little else ">"
    is64 = bits == 64
    ehsize = 64 if is64 else 52
    phentsize = 56 if is64 else 32
    dynstr = b"\0"
    offsets = {}

    def add_str(s: str) -> int:
        nonlocal dynstr
        off = len(dynstr)
        dynstr += s.encode() + b"\0"
        return off

    dyn: list[tuple[int, int]] = []
    for n in needed:
        dyn.append((elf.DT_NEEDED, add_str(n)))
    if soname:
        dyn.append((elf.DT_SONAME, add_str(soname)))
    if rpath is not None:
        dyn.append((elf.DT_RPATH, add_str(rpath)))
    if runpath is not None:
        dyn.append((elf.DT_RUNPATH, add_str(runpath)))
    if flags_1:
        dyn.append((elf.DT_FLAGS_1, flags_1))
    phnum = 1 + (interp is not None) + dynamic
    cursor = ehsize + phnum * phentsize
    interp_bytes = interp.encode() + b"\0" if interp is not None else b""
    offsets["interp"] = cursor
    cursor += len(interp_bytes)
    offsets["dynstr"] = cursor
    cursor += len(dynstr)
    cursor = (cursor + 7) & ~7
    offsets["dynamic"] = cursor
    dyn_fmt = end + ("qQ" if is64 else "iI")
    entries = dyn + [(elf.DT_STRTAB, BASE_VADDR + offsets["dynstr"]), (elf.DT_STRSZ, len(dynstr)), (elf.DT_NULL, 0)]
    dyn_bytes = b"".join(struct.pack(dyn_fmt, t, v) for t, v in entries) if dynamic else b""
    total = offsets["dynamic"] + len(dyn_bytes)

    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1, osabi]) + b"\0" * 8
    hdr_fmt = end + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    header = ident + struct.pack(hdr_fmt, etype, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, phnum, 0, 0, 0)
    ph_fmt = end + ("IIQQQQQQ" if is64 else "IIIIIIII")

    def ph(p_type, offset, size):
        if is64:
            return struct.pack(ph_fmt, p_type, 4, offset, BASE_VADDR + offset, BASE_VADDR + offset, size, size, 8)
        return struct.pack(ph_fmt, p_type, offset, BASE_VADDR + offset, BASE_VADDR + offset, size, size, 4, 4)

    phdrs = ph(elf.PT_LOAD, 0, total)
    if interp is not None:
        phdrs += ph(elf.PT_INTERP, offsets["interp"], len(interp_bytes))
    if dynamic:
        phdrs += ph(elf.PT_DYNAMIC, offsets["dynamic"], len(dyn_bytes))
    body = header + phdrs + interp_bytes + dynstr
    body = body.ljust(offsets["dynamic"], b"\0") + dyn_bytes
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(body)
    os.chmod(path, 0o755)
    return path


def make_root(tmp_path, conf: str = "/usr/lib/x86_64-linux-gnu\n") -> str:
    """A fake merged-/usr host: /lib -> usr/lib, /lib64 -> usr/lib64, a loader, libc, ld.so.conf."""
    root = tmp_path / "root"
    for d in ("usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/bin", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/lib64", root / "lib64")
    os.symlink("usr/bin", root / "bin")
    make_elf(root / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", soname="ld-linux-x86-64.so.2")
    os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", root / "usr/lib64/ld-linux-x86-64.so.2")
    make_elf(root / "usr/lib/x86_64-linux-gnu/libc.so.6", soname="libc.so.6", needed=("ld-linux-x86-64.so.2",))
    (root / "etc/ld.so.conf").write_text(conf)
    return str(root)


INTERP = "/lib64/ld-linux-x86-64.so.2"


# -- the reader --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bits,little,machine,arch",
    [
        (64, True, 62, "amd64"),
        (32, True, 3, "386"),
        (64, True, 183, "arm64"),
        (32, True, 40, "arm"),
        (64, True, 21, "ppc64le"),
        (64, False, 21, "ppc64"),
        (64, False, 22, "s390x"),
        (64, True, 243, "riscv64"),
        (64, True, 8, "mips64le"),
        (32, False, 8, "mips"),
        (64, True, 258, "loong64"),
    ],
)
def test_architecture_from_header(tmp_path, bits, little, machine, arch):
    path = make_elf(tmp_path / "x", bits=bits, little=little, machine=machine, interp="/lib/ld.so", needed=("libc.so",))
    info = elf.read_elf(path)
    assert info.bits == bits
    assert info.architecture == arch
    assert info.os == "linux"
    assert info.interpreter == "/lib/ld.so"
    assert info.needed == ("libc.so",)


def test_unknown_machine_has_no_architecture(tmp_path):
    info = elf.read_elf(make_elf(tmp_path / "x", machine=9999))
    with pytest.raises(BuildError, match="no OCI architecture"):
        assert info.architecture is None  # never reached: the property raises


def test_dynamic_fields(tmp_path):
    path = make_elf(
        tmp_path / "x", interp=INTERP, needed=("liba.so.1", "libb.so.2"), soname="libx.so.1",
        runpath="$ORIGIN/../lib:/opt/lib", rpath="/ignored", flags_1=elf.DF_1_PIE,
    )
    info = elf.read_elf(path)
    assert info.needed == ("liba.so.1", "libb.so.2")
    assert info.soname == "libx.so.1"
    assert info.runpath == ("$ORIGIN/../lib", "/opt/lib")
    assert info.rpath == ()  # DT_RPATH is ignored when DT_RUNPATH exists, as in glibc
    assert info.flags_1 == elf.DF_1_PIE
    only_rpath = elf.read_elf(make_elf(tmp_path / "y", rpath="/a:/b"))
    assert only_rpath.rpath == ("/a", "/b") and only_rpath.runpath is None


def test_static_binary_has_no_interpreter(tmp_path):
    info = elf.read_elf(make_elf(tmp_path / "s", etype=elf.ET_EXEC, dynamic=False))
    assert info.interpreter is None and info.needed == () and not info.dynamic


HOST_BINARIES = ["/bin/bash", "/bin/ls", "/usr/bin/python3", "/usr/bin/openssl", "/usr/bin/ssh", "/usr/bin/busybox"]


@pytest.mark.parametrize("binary", HOST_BINARIES)
def test_host_binaries_match_pyelftools(binary):
    """pyelftools (a dev dependency) is the oracle for interpreter, DT_NEEDED, SONAME and RUNPATH."""
    from elftools.elf.elffile import ELFFile  # requirements-dev.txt

    if not os.path.exists(binary):
        pytest.fail(f"{binary} is not installed here (scripts/install-deps.sh installs it)")
    ours = elf.read_elf(binary)
    with open(binary, "rb") as fh:
        ef = ELFFile(fh)
        interp = next((s.get_interp_name() for s in ef.iter_segments() if s["p_type"] == "PT_INTERP"), None)
        dyn = next((s for s in ef.iter_segments() if s["p_type"] == "PT_DYNAMIC"), None)
        needed = tuple(t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED") if dyn else ()
        runpath = [t.runpath for t in dyn.iter_tags() if t.entry.d_tag == "DT_RUNPATH"] if dyn else []
        assert {62: "EM_X86_64", 183: "EM_AARCH64"}.get(ours.machine) == ef["e_machine"]
        assert ours.interpreter == interp
        assert ours.needed == needed
        assert (ours.runpath is None) == (not runpath)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:20],  # truncated header
        lambda b: b"\x7fELG" + b[4:],  # bad magic
        lambda b: b[:4] + b"\x07" + b[5:],  # bad class
        lambda b: b[:5] + b"\x09" + b[6:],  # bad byte order
        lambda b: b[:32] + struct.pack("<Q", 1 << 40) + b[40:],  # e_phoff far beyond the file
        lambda b: b[:56] + struct.pack("<H", 0x7000) + b[58:],  # absurd e_phnum
        lambda b: b[:54] + struct.pack("<H", 4) + b[56:],  # phentsize too small
        lambda b: b[: len(b) - 40],  # dynamic section cut off
    ],
)
def test_damaged_files_fail_cleanly(tmp_path, damage):
    good = open(make_elf(tmp_path / "g", interp=INTERP, needed=("libc.so.6",)), "rb").read()
    bad = tmp_path / "bad"
    bad.write_bytes(damage(good))
    with pytest.raises(BuildError, match="bad"):
        elf.read_elf(str(bad))


def test_strtab_outside_load_segments_and_unterminated_strings(tmp_path):
    path = make_elf(tmp_path / "x", needed=("libc.so.6",))
    data = bytearray(open(path, "rb").read())
    # Point DT_STRTAB at an address no PT_LOAD maps.
    idx = data.find(struct.pack("<qQ", elf.DT_STRTAB, BASE_VADDR + 64 + 2 * 56))
    assert idx > 0
    data[idx + 8 : idx + 16] = struct.pack("<Q", 0x10)
    (tmp_path / "y").write_bytes(bytes(data))
    with pytest.raises(BuildError, match="DT_STRTAB"):
        elf.read_elf(str(tmp_path / "y"))
    # A DT_NEEDED offset beyond the string table.
    data = bytearray(open(path, "rb").read())
    idx = data.find(struct.pack("<qQ", elf.DT_NEEDED, 1))
    data[idx + 8 : idx + 16] = struct.pack("<Q", 10_000)
    (tmp_path / "z").write_bytes(bytes(data))
    with pytest.raises(BuildError, match="string index"):
        elf.read_elf(str(tmp_path / "z"))


def test_random_corruption_never_escapes_builderror(tmp_path):
    """Flip bytes of a real host binary's headers: every outcome is a parse or a BuildError, nothing else."""
    src = "/bin/ls"
    head = bytearray(open(src, "rb").read())
    rng = random.Random(1234)
    target = tmp_path / "fuzz"
    outcomes = {"ok": 0, "error": 0}
    for _round in range(300):
        data = bytearray(head)
        for _flip in range(rng.randint(1, 8)):
            pos = rng.randrange(0, 1024)
            data[pos] = rng.randrange(256)
        target.write_bytes(bytes(data))
        try:
            elf.read_elf(str(target))
            outcomes["ok"] += 1
        except BuildError:
            outcomes["error"] += 1
    assert outcomes["ok"] + outcomes["error"] == 300
    assert outcomes["error"] > 0


def test_not_a_regular_file(tmp_path):
    with pytest.raises(BuildError, match="not a regular file"):
        elf.read_elf(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert not elf.is_elf(str(fifo))
    with pytest.raises(BuildError, match="not a regular file"):
        elf.read_elf(str(fifo))  # O_NONBLOCK: no hang on a FIFO


# -- paths inside a root -------------------------------------------------------------------------------------------


def test_rootfs_walk_records_symlink_chain(tmp_path):
    root = make_root(tmp_path)
    fs = elf.RootFS(root)
    real, steps = fs.walk(INTERP)
    assert real == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert [(s.path, s.target) for s in steps] == [
        ("/lib64", "usr/lib64"),
        ("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        ("/lib", "usr/lib"),
    ]


def test_rootfs_absolute_and_dotdot_links_stay_inside(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "secret").write_text("host")
    (root / "etc" / "secret").write_text("inside")
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../victim", root / "up")
    fs = elf.RootFS(str(root))
    assert fs.realpath("/abs/secret") == "/etc/secret"
    with pytest.raises(FileNotFoundError):
        fs.walk("/up/secret")  # '..' is clamped at the root: /victim does not exist inside it
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    with pytest.raises(BuildError, match="too many levels"):
        fs.walk("/loop1")


def test_rootfs_looks_each_path_up_once_and_the_closure_shares_it(tmp_path, monkeypatch):
    """A RootFS remembers what lstat and readlink said (a plan walks the same directories and links again and
    again); resolve_closure given the planner's RootFS answers as with its own, through the same memory."""
    root = make_root(tmp_path)
    make_elf(os.path.join(root, "usr/bin/app"), interp=INTERP, needed=("libc.so.6",))
    alone = elf.resolve_closure(["/bin/app"], root=root)
    calls = []
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        calls.append(path)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    fs = elf.RootFS(root)
    shared = elf.resolve_closure(["/bin/app"], root=root, fs=fs)
    assert (shared.files, shared.resolved) == (alone.files, alone.resolved)
    assert len(calls) == len(set(calls))  # no path asked twice
    before = len(calls)
    assert fs.walk(INTERP)[0] == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    assert fs.is_regular("/bin/app") and not fs.is_regular("/usr/bin") and not fs.is_regular("/")
    assert len(calls) == before + 1  # only "/": everything else was looked up by the closure


def test_ld_so_conf_includes(tmp_path):
    root = tmp_path / "root"
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf").write_text("# comment\n/opt/a\ninclude /etc/ld.so.conf.d/*.conf\n/opt/z  # tail\n")
    (root / "etc/ld.so.conf.d/b.conf").write_text("/opt/b\n")
    (root / "etc/ld.so.conf.d/a.conf").write_text("/opt/a2:/ignored\n/opt/a3,/opt/a4\n")
    (root / "etc/ld.so.conf.d/x.txt").write_text("/never\n")
    dirs = elf.read_ld_so_conf(elf.RootFS(str(root)))
    # Order: the file's own lines, included files sorted by name, duplicates dropped; *.txt not matched.
    assert dirs == ["/opt/a", "/opt/a2", "/ignored", "/opt/a3", "/opt/a4", "/opt/b", "/opt/z"]


# -- the closure ----------------------------------------------------------------------------------------------------


def test_wildcard_match_is_fnmatchcase():
    rng = random.Random(3)
    names = ["", "a", "ab", "a.conf", ".conf", "x86_64-linux-gnu.conf", "aaa", "a*b", "a?b", "zz.conf.bak"]
    patterns = ["*", "?", "*.conf", "?*", "*?", "a*", "*a", "a*b*", "**", "a?b", "*.conf*", "x*-*.conf", "", "a"]
    for _round in range(3000):
        names.append("".join(rng.choice("ab.*?x") for _char in range(rng.randrange(7))))
        patterns.append("".join(rng.choice("ab.*?") for _char in range(rng.randrange(6))))
    wrong = [(n, p) for n in names[:40] + names[-300:] for p in patterns
             if elf._wildcard_match(n, p) != fnmatch.fnmatchcase(n, p)]
    assert wrong == []


def test_glob_paths_is_glob(tmp_path):
    """What ld.so.conf's includes and the hwcaps look-up list: the same paths glob.glob gives, with or without
    its own code (a '[' or wildcards in a directory go to glob itself)."""
    d = tmp_path / "conf.d"
    (d / "sub").mkdir(parents=True)
    for name in ("a.conf", "b.conf", ".hidden.conf", "c.conf.bak", "x86_64-linux-gnu.conf", "sub/in.conf"):
        (d / name).write_text("")
    os.symlink("gone", d / "dangling.conf")
    for pattern in ("*.conf", "*", ".*", "?.conf", "*.conf*", "[ab].conf", "*/in.conf", "s*/*", "a.conf", "none*",
                    "*.nothing"):
        full = os.path.join(str(d), pattern)
        assert sorted(elf.glob_paths(full)) == sorted(glob.glob(full)), pattern
    assert elf.glob_paths(str(tmp_path / "missing" / "*.conf")) == glob.glob(str(tmp_path / "missing" / "*.conf"))


def test_closure_follows_interpreter_needed_and_conf(tmp_path):
    root = make_root(tmp_path)
    make_elf(os.path.join(root, "usr/lib/x86_64-linux-gnu/libz.so.1.2"), soname="libz.so.1", needed=("libc.so.6",))
    os.symlink("libz.so.1.2", os.path.join(root, "usr/lib/x86_64-linux-gnu/libz.so.1"))
    make_elf(os.path.join(root, "usr/bin/app"), interp=INTERP, needed=("libz.so.1", "libc.so.6"))
    c = elf.resolve_closure(["app"], root=root)
    assert c.files == [
        "/usr/bin/app",
        INTERP,
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    assert c.architecture == "amd64" and c.os == "linux"
    # libc's own DT_NEEDED on the loader is satisfied by the loader already mapped (by SONAME).
    assert c.resolved["/usr/lib/x86_64-linux-gnu/libc.so.6"] == {"ld-linux-x86-64.so.2": INTERP}


def test_runpath_origin_and_rpath_inheritance(tmp_path):
    root = make_root(tmp_path)
    # app (RPATH=$ORIGIN/../private) -> libmid (no RUNPATH) -> libdeep, found through the app's RPATH.
    make_elf(os.path.join(root, "opt/app/bin/app"), interp=INTERP, needed=("libmid.so",), rpath="$ORIGIN/../private")
    make_elf(os.path.join(root, "opt/app/private/libmid.so"), needed=("libdeep.so",))
    make_elf(os.path.join(root, "opt/app/private/libdeep.so"))
    c = elf.resolve_closure(["/opt/app/bin/app"], root=root)
    assert "/opt/app/private/libmid.so" in c.files and "/opt/app/private/libdeep.so" in c.files
    # With DT_RUNPATH on the app, it only applies to the app's own DT_NEEDED: libdeep is no longer found.
    make_elf(os.path.join(root, "opt/app/bin/app2"), interp=INTERP, needed=("libmid.so",), runpath="${ORIGIN}/../private")
    with pytest.raises(BuildError, match="libdeep.so needed by /opt/app/private/libmid.so"):
        elf.resolve_closure(["/opt/app/bin/app2"], root=root)


def test_incompatible_candidates_are_skipped(tmp_path):
    root = make_root(tmp_path, conf="/opt/first\n/usr/lib/x86_64-linux-gnu\n")
    make_elf(os.path.join(root, "opt/first/libq.so.1"), bits=32, machine=3)  # wrong class: ld.so skips it
    make_elf(os.path.join(root, "usr/lib/x86_64-linux-gnu/libq.so.1"))
    make_elf(os.path.join(root, "usr/bin/app"), interp=INTERP, needed=("libq.so.1",))
    c = elf.resolve_closure(["/usr/bin/app"], root=root)
    assert "/usr/lib/x86_64-linux-gnu/libq.so.1" in c.files and "/opt/first/libq.so.1" not in c.files


def test_hwcaps_variants_are_included(tmp_path):
    root = make_root(tmp_path)
    make_elf(os.path.join(root, "usr/lib/x86_64-linux-gnu/libh.so.1"))
    make_elf(os.path.join(root, "usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libh.so.1"))
    make_elf(os.path.join(root, "usr/bin/app"), interp=INTERP, needed=("libh.so.1",))
    c = elf.resolve_closure(["/usr/bin/app"], root=root)
    assert "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libh.so.1" in c.files


@pytest.mark.parametrize(
    "setup,names,message",
    [
        (lambda r: None, ["/usr/bin/missing"], "no such file"),
        (lambda r: None, ["nothere"], "not found in"),
        (lambda r: make_elf(os.path.join(r, "usr/bin/app"), interp=INTERP, needed=("libnope.so",)), ["app"],
         "library libnope.so needed by /usr/bin/app"),
        (lambda r: make_elf(os.path.join(r, "usr/bin/app"), interp="/lib/ld-missing.so"), ["app"],
         "interpreter of /usr/bin/app: /lib/ld-missing.so does not exist"),
        (lambda r: open(os.path.join(r, "usr/bin/data"), "w").write("plain text") and
         os.chmod(os.path.join(r, "usr/bin/data"), 0o755), ["/usr/bin/data"], "neither an ELF file nor a script"),
        (lambda r: (make_elf(os.path.join(r, "usr/bin/a64")),
                    make_elf(os.path.join(r, "usr/bin/a32"), bits=32, machine=3)),
         ["/usr/bin/a64", "/usr/bin/a32"], "32-bit 386 ELF file but /usr/bin/a64 is 64-bit amd64"),
        (lambda r: make_elf(os.path.join(r, "usr/bin/arm"), machine=183), ["/usr/bin/arm", "/usr/bin/arm"], None),
        (lambda r: make_elf(os.path.join(r, "usr/bin/obj"), etype=1), ["/usr/bin/obj"], "is not executable"),
    ],
)
def test_closure_errors_name_the_file(tmp_path, setup, names, message):
    root = make_root(tmp_path)
    setup(root)
    if message is None:
        assert elf.resolve_closure(names, root=root).architecture == "arm64"
        return
    with pytest.raises(BuildError, match=message):
        elf.resolve_closure(names, root=root)


def test_scripts_bring_their_interpreter(tmp_path):
    root = make_root(tmp_path)
    make_elf(os.path.join(root, "usr/bin/sh"), interp=INTERP, needed=("libc.so.6",))
    make_elf(os.path.join(root, "usr/bin/env"), interp=INTERP, needed=("libc.so.6",))
    make_elf(os.path.join(root, "usr/bin/python9"), interp=INTERP, needed=("libc.so.6",))
    script = os.path.join(root, "usr/bin/run.sh")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh -e\necho hi\n")
    os.chmod(script, 0o755)
    envscript = os.path.join(root, "usr/bin/tool")
    with open(envscript, "w") as fh:
        fh.write("#!/usr/bin/env python9\nprint(1)\n")
    os.chmod(envscript, 0o755)
    c = elf.resolve_closure(["run.sh", "tool"], root=root)
    assert c.files[:3] == ["/usr/bin/run.sh", "/bin/sh", INTERP]
    assert "/usr/bin/env" in c.files and "/usr/bin/python9" in c.files
    assert any("run.sh is a script; added its interpreter /bin/sh -e" in n for n in c.notes)


def _ldd(binary: str) -> set[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = set()
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].split("(", 1)[0].strip()
            if target.startswith("/"):
                paths.add(target)
        elif line.startswith("/"):
            paths.add(line.split()[0])
    return paths


@pytest.mark.parametrize("binary", ["bash", "ls", "/usr/bin/python3", "openssl", "ssh"])
def test_host_closure_covers_ldd(binary):
    """Our closure ⊇ what ldd (the real loader, in trace mode) maps for the same binary."""
    if shutil.which("ldd") is None:
        pytest.fail("ldd (libc-bin) is missing on this Debian host")
    closure = elf.resolve_closure([binary])
    path = closure.files[0]
    expected = _ldd(path)
    assert expected, f"ldd listed nothing for {path}"
    assert expected <= set(closure.files), f"missing: {expected - set(closure.files)}"
