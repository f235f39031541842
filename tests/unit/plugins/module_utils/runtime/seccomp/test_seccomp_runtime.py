# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""seccomp in real containers (Runtime.run) and runc with Docker's profile as the oracle.

The image is Debian's static busybox with the host's /usr bound read-only on /usr, so the probes can be Python
(ctypes, raw syscalls) running *inside* the container: pid/mount/net/... namespaces, pivot_root, Docker's 14
capabilities, no_new_privs, then the filter. runc runs the same rootfs and probes with the OCI
``linux.seccomp`` section that ``seccomp.resolve_profile`` gives for Docker's profile, and must answer alike.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import MASKED_PATHS, READONLY_PATHS
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

PYTHON = "/usr/bin/python3"
RUNC = shutil.which("runc")
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
    pytest.mark.skipif(not os.path.exists(PYTHON), reason="needs the host's /usr/bin/python3 for the probes"),
    pytest.mark.skipif(seccomp.libseccomp_version() is None, reason="libseccomp.so.2 is not installed"),
    pytest.mark.skipif(os.uname().machine != "x86_64", reason="probe syscall numbers are x86_64's"),
]

# Runs inside the container. x86_64 syscall numbers; every answer is the result or -errno.
PROBE_PY = r"""
import ctypes, json, os, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = dict(keyctl=250, add_key=248, bpf=321, unshare=272, mount=165, setns=308, clone=56, clone3=435,
          personality=135, socket=41, kexec_load=246, open_by_handle_at=304, perf_event_open=298, fchmodat2=452)

def raw(name, *args):
    conv = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) for a in args]
    r = libc.syscall(ctypes.c_long(NR[name]), *conv)
    return r if r >= 0 else -ctypes.get_errno()

def in_fork(fn):
    pid = os.fork()
    if pid == 0:
        v = fn()
        os._exit(128 + min(-v, 127) if v < 0 else min(v, 127))
    _, st = os.waitpid(pid, 0)
    c = os.WEXITSTATUS(st)
    return -(c - 128) if c >= 128 else c

def clone_newuser():
    r = raw("clone", 0x10000000 | 17, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    if r > 0:
        os.waitpid(r, 0)
        return 0
    return r

def closed(r):
    if r >= 0:
        os.close(r)
        return 0
    return r

def thread():
    out = []
    t = threading.Thread(target=lambda: out.append("ran"))
    t.start(); t.join()
    return out[0]

def loopback():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
    c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b"ping")
    return a.recv(4).decode()

os.makedirs("/tmp/mnt", exist_ok=True)
open("/tmp/file", "w").close()
uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
status = {k: v.strip() for k, _, v in (l.partition(":") for l in open("/proc/self/status"))
          if k in ("Seccomp", "NoNewPrivs", "CapEff")}
print(json.dumps({
    "keyctl": raw("keyctl", 0, -3, 1),
    "add_key": raw("add_key", b"user", b"probe", b"x", 1, -2),
    "bpf": raw("bpf", 0, 0, 0),
    "kexec_load": raw("kexec_load", 0, 0, 0, 0),
    "open_by_handle_at": raw("open_by_handle_at", -100, 0, 0),
    "perf_event_open": raw("perf_event_open", 0, 0, -1, -1, 0),
    "unshare_user": in_fork(lambda: raw("unshare", 0x10000000)),
    "mount": in_fork(lambda: raw("mount", b"none", b"/tmp/mnt", b"tmpfs", 0, 0)),
    "setns": in_fork(lambda: raw("setns", uts, 0)),
    "clone_newuser": in_fork(clone_newuser),
    "socket_vsock": closed(raw("socket", 40, 1, 0)),
    "personality_norandom": in_fork(lambda: raw("personality", 0x0040000)),
    "personality_query": raw("personality", 0xFFFFFFFF),
    "clone3": raw("clone3", 0, 0),
    "fchmodat2": raw("fchmodat2", -100, b"/tmp/file", 0o644, 0),
    "socket_inet": closed(raw("socket", 2, 1, 0)),
    "loopback": loopback(),
    "thread": thread(),
    "fork_exec": subprocess.run(["/bin/sh", "-c", "echo $((6*7))"], capture_output=True, text=True).stdout.strip(),
    "status": status,
}, sort_keys=True))
"""

DENIED = ["keyctl", "add_key", "bpf", "kexec_load", "open_by_handle_at", "perf_event_open", "unshare_user", "mount",
          "setns", "clone_newuser", "socket_vsock", "personality_norandom"]
SAME_EITHER_WAY = ["loopback", "thread", "fork_exec", "socket_inet", "personality_query"]


def add_usr_links(root: str) -> str:
    for name in ("lib", "lib64"):
        if not os.path.lexists(os.path.join(root, name)):
            os.symlink(f"usr/{name}", os.path.join(root, name))
    os.makedirs(os.path.join(root, "usr"), exist_ok=True)
    return root


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    return add_usr_links(make_busybox_rootfs(str(tmp_path_factory.mktemp("seccomp-image") / "rootfs")))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Runtime:
    return Runtime(str(tmp_path_factory.mktemp("seccomp-store")))


def run(runtime, image, command, seccomp_spec, timeout=60, **kwargs):
    kwargs.setdefault("image_config", {"Env": ["PATH=/bin:/usr/bin"]})
    spec = build_spec(lower_dirs=[image], command=command, **kwargs)
    spec.seccomp = seccomp_spec
    return runtime.run(spec, timeout=timeout)


def probe(runtime, image, seccomp_spec, **kwargs) -> dict:
    result = run(runtime, image, [PYTHON, "-I", "-c", PROBE_PY], seccomp_spec, volumes=["/usr:/usr:ro"], **kwargs)
    assert result.rc == 0, result.stderr.decode()
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def ours(runtime, image) -> tuple[dict, dict]:
    return probe(runtime, image, "default"), probe(runtime, image, "unconfined")


@pytest.mark.parametrize("name", DENIED)
def test_default_profile_denies_in_a_container(ours, name):
    confined, free = ours
    assert confined[name] == -1, (name, confined[name])          # -EPERM
    # mount and setns need CAP_SYS_ADMIN anyway; for the others EPERM is the filter's doing.
    if name not in ("mount", "setns"):
        assert free[name] != -1, (name, free[name])


def test_default_profile_in_a_container(ours):
    confined, free = ours
    assert confined["status"]["Seccomp"] == "2" and free["status"]["Seccomp"] == "0"
    assert confined["status"]["NoNewPrivs"] == "1"
    assert confined["clone3"] == -38 and confined["fchmodat2"] == -38          # ENOSYS: libc falls back
    for name in SAME_EITHER_WAY:
        assert confined[name] == free[name], name
    assert confined["loopback"] == "ping" and confined["thread"] == "ran" and confined["fork_exec"] == "42"


def test_busybox_work_under_the_default_profile(runtime, image):
    script = ("grep ^Seccomp: /proc/self/status; ls /bin/sh >/dev/null && echo ls-ok; cat /etc/passwd | wc -l; "
              "echo hi > /tmp/f && cat /tmp/f; mkdir -p /tmp/d/e && echo mkdir-ok; (sleep 0; echo sub) & wait; "
              "unshare -U true 2>&1 | grep -o 'Operation not permitted'")
    result = run(runtime, image, ["/bin/sh", "-c", script], "default")
    assert result.rc == 0, result.stderr
    assert result.stdout.decode().split("\n") == ["Seccomp:\t2", "ls-ok", "3", "hi", "mkdir-ok", "sub",
                                                  "Operation not permitted", ""]


def test_custom_profile_mkdir_errno(runtime, image, tmp_path):
    profile = tmp_path / "nomkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}))
    result = run(runtime, image, ["/bin/sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /tmp/x; echo rc=$?"],
                 str(profile))
    out = result.stdout.decode() + result.stderr.decode()
    assert "Seccomp:\t2" in out and "rc=1" in out
    assert "Disk quota exceeded" in out           # EDQUOT (122), the profile's errno, as busybox reports it


def test_cap_sys_admin_container_gets_the_namespace_syscalls(runtime, image):
    script = "unshare -U true && echo userns-ok; grep ^Seccomp: /proc/self/status"
    result = run(runtime, image, ["/bin/sh", "-c", script], "default", cap_add=["SYS_ADMIN"])
    assert result.stdout.decode().split("\n")[:2] == ["userns-ok", "Seccomp:\t2"], result.stderr


def test_non_root_user_and_no_new_privileges_off(runtime, image):
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; id -u; unshare -U true 2>&1 | grep -o 'not permitted'"
    as_app = run(runtime, image, ["/bin/sh", "-c", script], "default", user="app")
    assert as_app.stdout.decode().split("\n")[:4] == ["NoNewPrivs:\t1", "Seccomp:\t2", "1000", "not permitted"], \
        as_app.stderr
    # no_new_privileges off: the filter is loaded before capabilities are dropped, and still holds.
    loose = run(runtime, image, ["/bin/sh", "-c", script], "default", user="app", no_new_privileges=False)
    assert loose.stdout.decode().split("\n")[:4] == ["NoNewPrivs:\t0", "Seccomp:\t2", "1000", "not permitted"], \
        loose.stderr


def test_privileged_and_unconfined_have_no_filter(runtime, image):
    for kwargs, spec in (({"privileged": True}, "default"), ({}, "unconfined"), ({}, None)):
        result = run(runtime, image, ["/bin/grep", "^Seccomp:", "/proc/self/status"], spec, **kwargs)
        assert result.stdout.decode() == "Seccomp:\t0\n", (kwargs, spec)


def test_bad_profile_fails_before_the_container_starts(runtime, image, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_SOMETIMES"}')
    with pytest.raises(RuntimeSetupError, match="defaultAction 'SCMP_ACT_SOMETIMES'"):
        run(runtime, image, ["/bin/true"], str(bad))
    with pytest.raises(RuntimeSetupError, match="can't read it"):
        run(runtime, image, ["/bin/true"], str(tmp_path / "missing.json"))
    # Nothing left behind but the store's idle one-shot slots (runtime.OneShotDir): no record, no written layer.
    for entry in os.listdir(runtime.containers_dir):
        slot = os.path.join(runtime.containers_dir, entry)
        if entry.endswith(".etc"):      # a slot's /etc files (network.etc_files), rewritten by its next run
            assert sorted(os.listdir(slot)) == ["hostname", "hosts", "resolv.conf"], entry
            continue
        assert entry.startswith(".one-shot-") and set(os.listdir(slot)) <= {"upper", "work"}, entry
        assert not os.path.isdir(os.path.join(slot, "upper")) or os.listdir(os.path.join(slot, "upper")) == []


# -- runc as the oracle -------------------------------------------------------------------------------------------

def runc_bundle(base, image: str, args: list[str], seccomp_section: dict | None) -> str:
    bundle = os.path.join(base, "bundle")
    os.makedirs(bundle)
    shutil.copytree(image, os.path.join(bundle, "rootfs"), symlinks=True)
    subprocess.run([RUNC, "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as handle:
        config = json.load(handle)
    process = config["process"]
    process.update(terminal=False, args=args, env=["PATH=/bin:/usr/bin", "HOSTNAME=box"], cwd="/",
                   noNewPrivileges=True)
    process["user"] = {"uid": 0, "gid": 0, "additionalGids": [0]}
    caps = sorted(DEFAULT_CAPABILITIES)
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [],
                               "ambient": []}
    process.pop("rlimits", None)
    config["root"] = {"path": "rootfs", "readonly": False}
    config["hostname"] = "box"
    config["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                             "options": ["rbind", "ro", "nosuid", "nodev"]})
    linux = config["linux"]
    linux["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    if seccomp_section is not None:
        linux["seccomp"] = seccomp_section
    with open(os.path.join(bundle, "config.json"), "w") as handle:
        json.dump(config, handle)
    return bundle


@pytest.mark.skipif(RUNC is None, reason="needs runc (Debian package runc) as the oracle")
def test_same_answers_as_runc_with_dockers_profile(ours, image, tmp_path):
    # Docker's daemon gives runc exactly this: the profile resolved for the container's bounding set and arch.
    section = seccomp.resolve_profile(seccomp.load_profile("default"), DEFAULT_CAPABILITIES)
    bundle = runc_bundle(str(tmp_path), image, [PYTHON, "-I", "-c", PROBE_PY], section)
    name = f"dl-seccomp-{os.getpid()}"
    try:
        theirs = subprocess.run([RUNC, "run", "--bundle", bundle, name], capture_output=True, timeout=60,
                                stdin=subprocess.DEVNULL, check=False)
    finally:
        subprocess.run([RUNC, "delete", "--force", name], capture_output=True, check=False)
    assert theirs.returncode == 0, theirs.stderr.decode()
    runc_answers = json.loads(theirs.stdout)
    confined = ours[0]
    # CapEff is the same set (Docker's 14); compare everything.
    assert confined == runc_answers
