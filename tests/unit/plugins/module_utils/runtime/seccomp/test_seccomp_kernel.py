# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""seccomp on the real kernel: a forked child loads the compiled filter (no_new_privs, then ``seccomp.apply``,
as the container init does) and runs probes through raw syscalls; the same probes run without a filter show
that the answers come from the filter, not from missing privileges (the child is root with every capability).

State-changing probes (unshare, mount, personality, clone) run in a grandchild so they can't disturb the rest;
mounts happen in a private mount namespace made before the filter is loaded.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the probes compare against an all-capable child"),
    pytest.mark.skipif(seccomp.libseccomp_version() is None, reason="libseccomp.so.2 is not installed"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="probe syscall numbers are x86_64's"),
]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SIGCHLD = 17
CLONE_NEWUSER = 0x10000000
AF_VSOCK = 40
ADDR_NO_RANDOMIZE = 0x0040000
AT_FDCWD = -100


def sysno(name: str) -> int:
    number = seccomp._libseccomp("test").seccomp_syscall_resolve_name(name.encode())
    assert number >= 0, name
    return number


NR = {name: sysno(name) for name in ("keyctl", "add_key", "bpf", "unshare", "mount", "setns", "clone", "clone3",
                                     "personality", "socket", "open_by_handle_at", "perf_event_open",
                                     "kexec_load", "mkdir")}
NR_FCHMODAT2 = 452          # Linux 6.6; above the default profile's highest syscall (futex_waitv, 449)


def raw(name_or_nr, *args) -> int:
    """A raw syscall; returns the result or -errno."""
    number = NR[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    conv = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    result = _libc.syscall(ctypes.c_long(number), *conv)
    return result if result >= 0 else -ctypes.get_errno()


def in_fork(fn) -> int:
    """Run ``fn`` in a grandchild (it may change process state); its int result comes back through the exit
    status: 0-127 a value, 128+errno a failure."""
    pid = os.fork()
    if pid == 0:
        try:
            value = fn()
            os._exit(128 + min(-value, 127) if value < 0 else min(value, 127))
        except BaseException:
            os._exit(255)
    status = os.waitpid(pid, 0)[1]
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 254
    return -(code - 128) if 128 <= code < 254 else code


def _clone_newuser() -> int:
    result = raw("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if result == 0:
        os._exit(0)                       # the clone child: leave at once
    if result > 0:
        os.waitpid(result, 0)
        return 0
    return result


def _threads() -> str:
    out = []
    worker = threading.Thread(target=lambda: out.append("thread ran"))
    worker.start()
    worker.join()
    return out[0]


def _loopback() -> str:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    conn = server.accept()[0]
    client.sendall(b"ping")
    data = conn.recv(4)
    for s in (client, conn, server):
        s.close()
    return data.decode()


def _socketpair() -> str:
    for end in socket.socketpair():
        end.close()
    return "ok"


def _fork_exec() -> str:
    return subprocess.run(["/bin/sh", "-c", "echo $((6*7))"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _exec_status() -> str:
    return subprocess.run(["/bin/grep", "^Seccomp:", "/proc/self/status"], capture_output=True, text=True,
                          check=True).stdout.split()[-1]


def _status() -> dict:
    with open("/proc/self/status") as handle:
        pairs = (line.split(":", 1) for line in handle)
        return {pair[0]: pair[1].strip() for pair in pairs if pair[0].startswith("Seccomp")}


def _close(result: int) -> int:
    if result >= 0:
        os.close(result)
        return 0
    return result


def probes(workdir: str) -> dict:
    """name → callable returning something JSON-able (an int is a syscall result or -errno)."""
    uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
    target = os.path.join(workdir, "mnt")
    chmod_target = os.path.join(workdir, "file")
    return {
        # What Docker's default profile denies (EPERM), whatever the capabilities.
        "keyctl": lambda: raw("keyctl", 0, -3, 1),                      # KEYCTL_GET_KEYRING_ID, session, create
        "add_key": lambda: raw("add_key", b"user", b"dl-probe", b"x", 1, -2),
        "bpf": lambda: raw("bpf", 0, 0, 0),
        "kexec_load": lambda: raw("kexec_load", 0, 0, 0, 0),
        "open_by_handle_at": lambda: raw("open_by_handle_at", AT_FDCWD, 0, 0),
        "perf_event_open": lambda: raw("perf_event_open", 0, 0, -1, -1, 0),
        "unshare_user": lambda: in_fork(lambda: raw("unshare", CLONE_NEWUSER)),
        "mount": lambda: in_fork(lambda: raw("mount", b"none", target.encode(), b"tmpfs", 0, 0)),
        "setns": lambda: in_fork(lambda: raw("setns", uts, 0)),
        "clone_newuser": lambda: in_fork(_clone_newuser),
        "socket_vsock": lambda: _close(raw("socket", AF_VSOCK, socket.SOCK_STREAM, 0)),
        "personality_norandom": lambda: in_fork(lambda: raw("personality", ADDR_NO_RANDOMIZE)),
        # Allowed, or answered differently on purpose.
        "personality_query": lambda: raw("personality", 0xFFFFFFFF),
        "clone3": lambda: raw("clone3", 0, 0),
        "fchmodat2": lambda: raw(NR_FCHMODAT2, AT_FDCWD, chmod_target.encode(), 0o644, 0),
        "socket_inet": lambda: _close(raw("socket", socket.AF_INET, socket.SOCK_STREAM, 0)),
        "loopback": _loopback,
        "socketpair": _socketpair,
        "threads": _threads,
        "fork_exec": _fork_exec,
        "exec_status": _exec_status,
        "files": lambda: _files(workdir),
        "status": _status,
    }


def _files(workdir: str) -> str:
    path = os.path.join(workdir, "d", "f")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("content")
    with open(path) as handle:
        return handle.read()


def run_probes(compiled, workdir: str, names=None, no_new_privs: bool = True) -> dict:
    """Fork a child (root, all capabilities, private mount namespace), load ``compiled`` (None: no filter),
    run the probes, return their answers."""
    os.makedirs(os.path.join(workdir, "mnt"), exist_ok=True)
    with open(os.path.join(workdir, "file"), "w"):
        pass
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
            table = probes(workdir)
            if no_new_privs:
                linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.apply(compiled)
            result = {name: fn() for name, fn in table.items() if names is None or name in names}
        except BaseException as exc:  # reported to the parent, which fails the test
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))


DENIED = ["keyctl", "add_key", "bpf", "kexec_load", "open_by_handle_at", "perf_event_open", "unshare_user", "mount",
          "setns", "clone_newuser", "socket_vsock", "personality_norandom"]


@pytest.fixture(scope="module")
def default_filter():
    return seccomp.prepare("default", DEFAULT_CAPABILITIES, cache_dir=None)


@pytest.fixture(scope="module")
def answers(default_filter, tmp_path_factory):
    confined = run_probes(default_filter, str(tmp_path_factory.mktemp("confined")))
    free = run_probes(None, str(tmp_path_factory.mktemp("free")))
    assert "error" not in confined, confined
    assert "error" not in free, free
    return confined, free


@pytest.mark.parametrize("probe", DENIED)
def test_default_profile_denies_with_eperm(answers, probe):
    confined, free = answers
    assert confined[probe] == -errno.EPERM, (probe, confined[probe])
    # Without the filter the same root child gets another answer: EPERM is the filter's doing.
    assert free[probe] != -errno.EPERM, (probe, free[probe])


def test_default_profile_answers(answers):
    confined, free = answers
    assert confined["status"] == {"Seccomp": "2", "Seccomp_filters": "1"}
    assert free["status"] == {"Seccomp": "0", "Seccomp_filters": "0"}
    assert confined["exec_status"] == "2"           # inherited across fork and execve
    # clone3 → ENOSYS so libc falls back to clone (threads and subprocesses below still work).
    assert confined["clone3"] == -errno.ENOSYS and free["clone3"] != -errno.ENOSYS
    # A syscall newer than the profile: ENOSYS (the stub), not EPERM; the kernel itself implements it.
    assert confined["fchmodat2"] == -errno.ENOSYS and free["fchmodat2"] == 0
    # personality(0xffffffff) only queries: Docker's profile allows it.
    assert confined["personality_query"] == free["personality_query"] >= 0
    for probe, expected in (("socket_inet", 0), ("loopback", "ping"), ("socketpair", "ok"),
                            ("threads", "thread ran"), ("fork_exec", "42"), ("files", "content")):
        assert confined[probe] == free[probe] == expected, probe


def test_apply_is_cheap(default_filter):
    """One prctl with the precompiled program (the kernel checks and JITs ~1000 instructions): the median CPU
    time (user + system; wall time on this shared 2-core machine mostly measures the neighbours) over a few
    children stays well under the 5 ms start-up budget."""
    times = []
    while len(times) < 9:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
            start = time.process_time()
            seccomp.apply(default_filter)
            os.write(write_fd, repr(time.process_time() - start).encode())
            os._exit(0)
        os.close(write_fd)
        times.append(float(os.read(read_fd, 100)))
        os.close(read_fd)
        os.waitpid(pid, 0)
    times.sort()
    assert times[len(times) // 2] < 0.005, times


def test_unconfined_loads_nothing(tmp_path):
    assert seccomp.prepare("unconfined", DEFAULT_CAPABILITIES) is None
    result = run_probes(None, str(tmp_path), names={"status", "keyctl"})
    assert result["status"]["Seccomp"] == "0" and result["keyctl"] != -errno.EPERM


def test_cap_sys_admin_profile_allows_namespaces(tmp_path):
    compiled = seccomp.prepare("default", list(DEFAULT_CAPABILITIES) + ["CAP_SYS_ADMIN"], cache_dir=None)
    result = run_probes(compiled, str(tmp_path), names={"unshare_user", "mount", "clone_newuser", "clone3",
                                                        "keyctl", "status"})
    assert result["unshare_user"] == 0 and result["mount"] == 0 and result["clone_newuser"] == 0
    assert result["clone3"] not in (-errno.ENOSYS, -errno.EPERM)
    assert result["keyctl"] == -errno.EPERM and result["status"]["Seccomp"] == "2"


def test_custom_profile_denying_mkdir(tmp_path):
    profile = tmp_path / "nomkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDQUOT}]}))
    compiled = seccomp.prepare(str(profile), DEFAULT_CAPABILITIES, cache_dir=None)
    work = tmp_path / "work"
    result = run_probes(compiled, str(work), names={"status", "keyctl"})
    assert result["status"]["Seccomp"] == "2" and result["keyctl"] != -errno.EPERM   # default action: allow
    result = run_probes(compiled, str(work), names={"files"})
    assert result["error"].startswith("OSError: [Errno 122]"), result   # os.makedirs → mkdir → EDQUOT
    assert not (work / "d").exists()


def test_profile_flags_go_through_seccomp_syscall(tmp_path):
    profile = tmp_path / "log.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}))
    compiled = seccomp.prepare(str(profile), [], cache_dir=None)
    assert compiled.flags == 3 and compiled.seccomp_nr == sysno("seccomp")
    result = run_probes(compiled, str(tmp_path / "w"), names={"status", "keyctl"})
    assert result["status"]["Seccomp"] == "2" and result["keyctl"] == -errno.EACCES


def test_loading_without_no_new_privs_needs_cap_sys_admin(tmp_path, default_filter):
    # With CAP_SYS_ADMIN (root) the filter loads without no_new_privs (runc's order when NNP is off) ...
    result = run_probes(default_filter, str(tmp_path / "a"), names={"status"}, no_new_privs=False)
    assert result["status"]["Seccomp"] == "2"
    # ... without it the kernel refuses, and the error says what to do.
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            eff, prm, inh = linux.capget()
            admin = 1 << linux.CAPABILITIES["CAP_SYS_ADMIN"]
            linux.capset(eff & ~admin, prm & ~admin, inh)
            seccomp.apply(default_filter)
            message = "loaded"
        except RuntimeSetupError as exc:
            message = str(exc)
        except BaseException as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
        os.write(write_fd, message.encode())
        os._exit(0)
    os.close(write_fd)
    message = os.read(read_fd, 4096).decode()
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert "loading seccomp profile 'default'" in message and "no_new_privileges" in message, message
