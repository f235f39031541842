# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dockerless run`` and the seed's ``run``/``run-chroot`` on the real kernel (root), driven the way people use
them: through pipes, and through a real pseudo-terminal (python's ``pty``: the test holds the master side, as a
terminal emulator would).

The image is Debian's busybox-static written into a fresh store with the store's own API (one uncompressed
layer, unpacked by ``store_layers.ensure_unpacked``), so no registry is involved here; tests/integration/test_cli.py
covers the registry side.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import termios
import time
from pathlib import Path

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image import oci
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import ensure_unpacked
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

CHECKOUT = Path(__file__).resolve().parents[5]
BIN = CHECKOUT / "bin"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
IMAGE = "127.0.0.1:5999/test/cli-busybox:1"
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]
# The scripts re-execute themselves with python3 from PATH (test_cli.py covers that); here the test's own
# interpreter is used, which skips a pyenv shim's start-up on machines that have one.
os.environ.setdefault("DOCKERLESS_PYTHON", sys.executable)


def make_image(store_root: str) -> None:
    """busybox with one symlink per applet, /etc/passwd and /etc/group, as IMAGE in the store."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind=tarfile.DIRTYPE, data=b"", mode=0o755, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for d in ("bin", "etc", "root", "tmp"):
            add(d, mode=0o1777 if d == "tmp" else 0o755)
        with open(BUSYBOX, "rb") as handle:
            add("bin/busybox", tarfile.REGTYPE, handle.read())
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", tarfile.SYMTYPE, mode=0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", 0o644)
        add("etc/group", tarfile.REGTYPE, b"root:x:0:\nnogroup:x:65534:\n", 0o644)
    store = Store(store_root)
    store.ensure()
    diff_id, size = store.put_blob(buf.getvalue())
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}}
    cfg_digest, cfg_size = store.put_blob(json.dumps(config).encode())
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                           "config": {"mediaType": oci.OCI_CONFIG, "digest": cfg_digest, "size": cfg_size},
                           "layers": [{"mediaType": oci.OCI_LAYER_TAR, "digest": diff_id, "size": size}]}).encode()
    digest, msize = store.put_blob(manifest)
    store.tag(IMAGE, {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": msize})
    ensure_unpacked(store, store.image(IMAGE))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("cli-store"))
    make_image(root)
    yield root
    subprocess.run([str(BIN / "dockerless"), "rm", "-f", "--store", root,
                    *[p.name for p in Path(root, "containers").iterdir() if p.is_dir()]],
                   capture_output=True, check=False)


def dockerless(*args: str, store: str, tool: str = "dockerless", input: str | bytes | None = None,
               env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    argv = [str(BIN / tool)] + ([args[0], "--store", store, *args[1:]] if tool == "dockerless" else
                                ["--store", store, *args])
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env, check=False,
                          text=not isinstance(input, bytes))


class PtySession:
    """A command on a fresh pseudo-terminal, like a terminal emulator runs it: it is the session leader and the
    pty is its controlling terminal. ``expect`` reads until a regex matches the output not consumed yet."""

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80, env: dict | None = None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.execvpe(argv[0], argv, env or os.environ)
            finally:
                os._exit(127)
        self.resize(rows, cols)
        self.buffer = b""
        self.pos = 0
        self.status: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout: float) -> bool:
        ready = select.select([self.fd], [], [], timeout)[0]
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return False
        self.buffer += data
        return bool(data)

    def expect(self, pattern: str, timeout: float = 15) -> re.Match:
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer, self.pos)
            if match:
                self.pos = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)) and not regex.search(self.buffer, self.pos):
                raise AssertionError(f"{pattern!r} not seen within {timeout}s; output so far: "
                                     f"{self.buffer[self.pos:][-2000:]!r}")

    def send(self, data: str | bytes) -> None:
        os.write(self.fd, data.encode() if isinstance(data, str) else data)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout}s; output: {self.buffer[-2000:]!r}")
            self._read(0.1)
        while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
            pass
        return os.waitstatus_to_exitcode(self.status)

    def close(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            self.status = os.waitpid(self.pid, 0)[1]
        os.close(self.fd)


@pytest.fixture
def session():
    sessions: list[PtySession] = []

    def start(argv: list[str], **kwargs) -> PtySession:
        sessions.append(PtySession(argv, **kwargs))
        return sessions[-1]

    yield start
    for s in sessions:
        s.close()


PROMPT = r"/ # "


# -- pipes -----------------------------------------------------------------------------------------------------

def test_output_streams_and_exit_code(store):
    proc = dockerless("run", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 7", store=store)
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "out\n", "err\n")


def test_pipeline_through_stdin(store):
    proc = dockerless("run", "-i", IMAGE, "cat", store=store, input="hi\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hi\n", "")
    big = os.urandom(1 << 20)
    proc = dockerless("run", "-i", IMAGE, "sha256sum", store=store, input=big)
    import hashlib

    assert proc.returncode == 0 and proc.stdout.split()[0].decode() == hashlib.sha256(big).hexdigest()


def test_shell_pipeline_as_people_write_it(store):
    cmd = f"echo hi | {BIN / 'dockerless'} run -i --store {store} {IMAGE} cat | tr a-z A-Z"
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (0, "HI\n"), proc.stderr


def test_stdin_is_not_attached_without_i(store):
    proc = dockerless("run", IMAGE, "cat", store=store, input="not for the container\n")
    assert (proc.returncode, proc.stdout) == (0, "")


def test_sigint_to_the_cli_reaches_the_container_once(store):
    script = 'n=0; trap \'n=$((n+1)); echo "got INT $n"; exit 42\' INT; echo ready; while true; do sleep 0.05; done'
    proc = subprocess.Popen([str(BIN / "dockerless"), "run", "--store", store, IMAGE, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (42, "got INT 1\n"), err


def test_a_sigint_to_the_whole_process_group_is_forwarded_once(store):
    # Ctrl-C at a terminal signals the whole foreground process group: the container's monitor has its own group,
    # so only the CLI gets it and forwards it once.
    script = 'trap \'echo "got INT"; exit 43\' INT; echo ready; while true; do sleep 0.05; done'
    proc = subprocess.Popen([str(BIN / "dockerless"), "run", "--store", store, IMAGE, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (43, "got INT\n"), err


def test_setup_failures_exit_125_and_say_why(store):
    proc = dockerless("run", IMAGE, "/no/such/binary", store=store)
    assert proc.returncode == 125
    assert "/no/such/binary" in proc.stderr and proc.stdout == ""
    proc = dockerless("run", "--pull", "never", "127.0.0.1:5999/test/absent:1", store=store)
    assert proc.returncode == 125
    assert "127.0.0.1:5999/test/absent:1" in proc.stderr and "pull" in proc.stderr
    proc = dockerless("run", "-v", "/no/such/dir:/data", IMAGE, "true", store=store)
    assert proc.returncode == 125 and "/no/such/dir does not exist" in proc.stderr


def test_options_reach_the_container(store, tmp_path):
    (tmp_path / "f").write_text("data\n")
    os.chmod(tmp_path, 0o755)           # the container's user is nobody
    os.chmod(tmp_path / "f", 0o644)
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; echo $A $FROM_HOST; "
              "pwd; id -u; cat /data/f; touch /data/x 2>/dev/null || echo read-only; hostname")
    env = dict(os.environ, FROM_HOST="hv")
    proc = dockerless("run", "--memory", "32m", "--pids-limit", "17", "-e", "A=1", "-e", "FROM_HOST",
                      "-v", f"{tmp_path}:/data:ro", "-w", "/data", "-u", "nobody", "--hostname", "box", IMAGE,
                      "sh", "-c", script, store=store, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["33554432", "17", "1 hv", "/data", "65534", "data", "read-only", "box"]
    assert not (tmp_path / "x").exists()


def test_entrypoint_and_read_only(store):
    proc = dockerless("run", "--entrypoint", '["echo", "from-entrypoint"]', IMAGE, "arg", store=store)
    assert (proc.returncode, proc.stdout) == (0, "from-entrypoint arg\n"), proc.stderr
    proc = dockerless("run", "--read-only", IMAGE, "sh", "-c", "touch /x 2>/dev/null || echo ro", store=store)
    assert (proc.returncode, proc.stdout) == (0, "ro\n"), proc.stderr


def test_seed_run_and_run_chroot(store):
    proc = dockerless(IMAGE, "sh", "-c", "echo $$; cat /proc/1/comm 2>/dev/null | head -1", store=store, tool="run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "1"        # its own PID namespace
    proc = dockerless(IMAGE, "sh", "-c", "echo $$; hostname; ls /bin/busybox", store=store, tool="run-chroot")
    assert proc.returncode == 0, proc.stderr
    pid, hostname, busybox = proc.stdout.splitlines()
    assert int(pid) > 1 and hostname == socket.gethostname()   # chroot isolation: the host's PIDs and UTS
    assert busybox == "/bin/busybox"
    # No CAP_SYS_CHROOT in chroot isolation: a nested chroot (the first step out of a chroot) is refused.
    proc = dockerless(IMAGE, "sh", "-c", "mkdir -p /x; chroot /x /bin/true 2>&1; grep CapBnd /proc/self/status",
                      store=store, tool="run-chroot")
    refused, capbnd = proc.stdout.splitlines()
    assert "Operation not permitted" in refused
    assert not int(capbnd.split()[1], 16) & 1 << 18       # CAP_SYS_CHROOT
    proc = dockerless(IMAGE, "cat", store=store, tool="run", input="piped\n")   # the seed's run keeps stdin
    assert (proc.returncode, proc.stdout) == (0, "piped\n")


def test_detached_ps_stop_rm(store):
    name = f"cli-{os.urandom(3).hex()}"
    loop = "trap 'exit 0' TERM; while true; do sleep 0.1; done"
    proc = dockerless("run", "-d", "--name", name, "--memory", "64m", IMAGE, "sh", "-c", loop, store=store)
    assert (proc.returncode, proc.stdout) == (0, f"{name}\n"), proc.stderr
    try:
        proc = dockerless("ps", store=store)
        assert proc.returncode == 0
        header, *rows = proc.stdout.splitlines()
        assert header.split() == ["NAME", "STATE", "PID", "IMAGE", "COMMAND", "STARTED", "ADDRESSES"]
        row = next(r for r in rows if r.startswith(name + " "))
        assert row.split()[1] == "running" and IMAGE in row
        assert row.split()[-1].startswith("172.17.0.")      # on the default bridge (root's default)
        listed = json.loads(dockerless("ps", "--json", store=store).stdout)
        mine = next(c for c in listed if c["name"] == name)
        assert mine["running"] is True and mine["pid"] > 1 and mine["image"] == IMAGE
        proc = dockerless("rm", name, store=store)
        assert proc.returncode == 1 and "is running" in proc.stderr and "rm -f" in proc.stderr
        proc = dockerless("stop", name, store=store)
        assert (proc.returncode, proc.stdout) == (0, f"{name}: stopped\n"), proc.stderr
        assert name not in dockerless("ps", store=store).stdout
        assert f"{name}  exited" in dockerless("ps", "-a", store=store).stdout
        proc = dockerless("rm", name, store=store)
        assert (proc.returncode, proc.stdout) == (0, f"{name}: removed\n"), proc.stderr
        assert name not in dockerless("ps", "-a", store=store).stdout
    finally:
        dockerless("rm", "-f", name, store=store)
    # Without --name, a name is made up and printed; rm -f stops and removes in one go.
    proc = dockerless("run", "-d", IMAGE, "sh", "-c", loop, store=store)
    made = proc.stdout.strip()
    assert proc.returncode == 0 and re.fullmatch(r"cli-busybox-[0-9a-f]{6}", made), proc.stderr
    proc = dockerless("rm", "-f", "-q", made, store=store)
    assert (proc.returncode, proc.stdout) == (0, f"{made}\n")


def test_rm_force_kills_at_once(store):
    # sleep as PID 1 ignores SIGTERM: a stop would wait the whole 10 s stop timeout (10.3 s measured before).
    name = f"cli-{os.urandom(3).hex()}"
    proc = dockerless("run", "-d", "--name", name, IMAGE, "sleep", "600", store=store)
    assert proc.returncode == 0, proc.stderr
    began = time.monotonic()
    proc = dockerless("rm", "-f", name, store=store)
    took = time.monotonic() - began
    assert (proc.returncode, proc.stdout) == (0, f"{name}: removed\n"), proc.stderr
    assert took < 1.0, took


def test_start_all_kill_and_unless_stopped_through_the_cli(store):
    name = f"cli-{os.urandom(3).hex()}"
    loop = "trap 'echo hup' HUP; while true; do sleep 0.1; done"
    proc = dockerless("run", "-d", "--name", name, "--restart", "unless-stopped", "--stop-timeout", "1", IMAGE,
                      "sh", "-c", loop, store=store)
    assert proc.returncode == 0, proc.stderr
    try:
        time.sleep(0.3)
        proc = dockerless("kill", "-s", "HUP", name, store=store)
        assert (proc.returncode, proc.stdout) == (0, f"{name}: sent HUP\n"), proc.stderr
        proc = dockerless("kill", name, store=store)      # SIGKILL: the user ended it, no restart
        assert proc.returncode == 0, proc.stderr
        mine = next(c for c in json.loads(dockerless("ps", "-a", "--json", store=store).stdout) if c["name"] == name)
        assert (mine["state"], mine["exit_code"], mine["stopped_by_user"]) == ("exited", 137, True)
        assert mine["restart_policy"] == "unless-stopped"
        proc = dockerless("start", "--all", store=store)
        assert proc.returncode == 0 and f"{name}: skipped: stopped by the user" in proc.stdout, proc.stdout
        proc = dockerless("start", name, store=store)       # the user's start: whatever the policy says
        assert (proc.returncode, proc.stdout) == (0, f"{name}: started\n"), proc.stderr
        began = time.monotonic()
        proc = dockerless("stop", "-t", "1", name, store=store)
        assert proc.returncode == 0 and time.monotonic() - began < 3, proc.stderr
    finally:
        dockerless("rm", "-f", name, store=store)


# -- a real terminal -------------------------------------------------------------------------------------------

def test_interactive_shell_on_a_pty(store, session):
    s = session([str(BIN / "dockerless"), "run", "-it", "--store", store, IMAGE, "sh"], rows=24, cols=80)
    s.expect(PROMPT)
    s.send("echo $((6*7))\r")
    s.expect(r"\r\n42\r\n")
    s.send("stty size; test -t 0 && test -t 1 && echo both-ttys\r")
    s.expect(r"\r\n24 80\r\nboth-ttys\r\n")
    s.resize(40, 132)
    time.sleep(0.3)                     # SIGWINCH → the CLI copies the new size onto the container's pty
    s.send("stty size\r")
    s.expect(r"\r\n40 132\r\n")
    s.send("exit 3\r")
    assert s.wait() == 3


def test_terminal_is_raw_while_attached_and_restored_after(store, session):
    # The outer shell prints its terminal settings after the CLI returned.
    cmd = f"{BIN / 'dockerless'} run -it --store {store} {IMAGE} sh; echo rc=$?; stty -a"
    s = session(["sh", "-c", cmd])
    s.expect(PROMPT)
    attrs = termios.tcgetattr(s.fd)       # master and slave share the termios settings
    assert not attrs[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
    s.send("exit 5\r")
    s.expect(r"rc=5")
    assert s.wait() == 0
    settings = set(s.buffer[s.pos:].decode().replace(";", " ").split())
    assert {"icanon", "echo", "isig", "opost"} <= settings, settings


def test_tty_without_input_and_input_not_a_tty(store, session):
    s = session([str(BIN / "dockerless"), "run", "-t", "--store", store, IMAGE, "sh", "-c",
                 "test -t 1 && echo out-is-a-tty; exit 4"])
    s.expect(r"out-is-a-tty\r\n")
    assert s.wait() == 4
    proc = dockerless("run", "-it", IMAGE, "sh", store=store, input="echo x\n")
    assert proc.returncode == 2 and "the input is not a terminal" in proc.stderr


def test_seed_run_gets_a_terminal_when_there_is_one(store, session):
    s = session([str(BIN / "run"), "--store", store, IMAGE, "sh"])
    s.expect(PROMPT)
    s.send("test -t 0 && echo interactive-tty\r")
    s.expect(r"\r\ninteractive-tty\r\n")
    s.send("exit\r")
    assert s.wait() == 0


# Ctrl-C and Ctrl-Z become signals only because the pty is the controlling terminal of the container's session
# (the init's TIOCSCTTY for config["terminal"]). The job prints a marker first: the key is sent once it runs in
# the foreground (the typed line is echoed, so the marker is computed, not typed).
FOREGROUND_SLEEP = "sh -c 'echo started-$((1+2)); exec sleep 100'"


def test_ctrl_c_interrupts_a_command_inside(store, session):
    s = session([str(BIN / "dockerless"), "run", "-it", "--store", store, IMAGE, "sh"])
    s.expect(PROMPT)
    s.send(FOREGROUND_SLEEP + "; echo after-$((40+2))\r")
    s.expect(r"started-3\r\n")
    s.send("\x03")
    s.expect(PROMPT, timeout=5)
    s.send("echo alive-$((1+1))\r")
    s.expect(r"\r\nalive-2\r\n", timeout=5)
    assert b"after-42" not in s.buffer
    s.send("exit 0\r")
    assert s.wait() == 0


def test_ctrl_z_stops_a_job_inside(store, session):
    s = session([str(BIN / "dockerless"), "run", "-it", "--store", store, IMAGE, "sh"])
    s.expect(PROMPT)
    s.send(FOREGROUND_SLEEP + "\r")
    s.expect(r"started-3\r\n")
    s.send("\x1a")
    s.expect(r"Stopped", timeout=5)
    s.send("kill -9 %1; wait; echo killed\r")
    s.expect(r"\r\nkilled\r\n", timeout=5)
    s.send("jobs; echo listed-$((2+2))\r")       # busybox drops the killed job from its table here
    s.expect(r"listed-4\r\n", timeout=5)
    s.send("exit 0\r")
    try:
        rc = s.wait(timeout=5)
    except AssertionError:
        # busybox can notice the killed job only after `jobs` and then refuses the first exit with "You have
        # stopped jobs."; a second exit leaves anyway, as in every POSIX shell.
        s.send("exit 0\r")
        rc = s.wait()
    assert rc == 0


def test_the_device_controller_holds_a_cli_container_and_its_terminal_still_works(store, session, tmp_path):
    # `dockerless run -it`: the container's /dev/tty (5:0) and its pts (136:N) pass the device controller, and a
    # process in the container's device cgroup cannot open a block device node on a mount that allows devices.
    from test_cgroup_devices import check_probe, container_cgroup_of, probe_in

    from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.devices import locate

    node = str(tmp_path / "loop0")
    os.mknod(node, 0o666 | 0o060000, os.makedev(7, 0))    # S_IFBLK
    marker = f"devtest-{os.urandom(4).hex()}"
    s = session([str(BIN / "dockerless"), "run", "-it", "--store", store, IMAGE, "sh", "-c",
                 f"echo hi > /dev/tty && test -t 0 && echo tty-ok; read x # {marker}"])
    s.expect(r"hi\r\ntty-ok\r\n")
    directory = container_cgroup_of(locate()[1], marker)
    check_probe(probe_in(os.path.join(directory, "cgroup.procs"), node), node)
    s.send("\r")
    assert s.wait() == 0


def test_the_work_dir_an_earlier_run_left_goes_before_the_container_is_done(store):
    """A foreground run removes the overlay work dir the slot's last run left (``work/stale-*``) while its own
    container sets up and runs, never after its command ended (a short command would wait for it)."""
    assert dockerless("run", "--rm", "--network", "none", IMAGE, "true", store=store).returncode == 0
    slots = [os.path.join(store, "containers", n) for n in os.listdir(os.path.join(store, "containers"))
             if n.startswith(".one-shot-") and n[len(".one-shot-"):].isdigit()]
    before = {slot: set(os.listdir(os.path.join(slot, "work"))) for slot in slots}
    left = {name for names in before.values() for name in names}
    assert left and all(name.startswith("stale-") for name in left), before
    argv = [str(BIN / "dockerless"), "run", "--store", store, "--rm", "-i", "--network", "none", IMAGE, "sh", "-c",
            "read line; echo got $line"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(
                left & set(os.listdir(os.path.join(slot, "work"))) for slot in slots):
            time.sleep(0.02)
        assert proc.poll() is None  # still waiting for its line
        assert not any(left & set(os.listdir(os.path.join(slot, "work"))) for slot in slots)
        out, _err = proc.communicate("x\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, "got x\n")
