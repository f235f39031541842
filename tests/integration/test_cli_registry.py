# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line against Debian's docker-registry on loopback: the seed's four scripts as its README writes
them (pointed at the loopback registry: Docker Hub is unreachable here, so ``library/alpine:latest`` becomes
``127.0.0.1:PORT/library/busybox:latest``), image-download's folder against image_pull's ``dest``, image-upload
with DOCKER_USERNAME/DOCKER_PASSWORD to a TLS + htpasswd registry, and progress output on a real pty versus a pipe.

Progress needs a transfer that takes a moment: ``SlowLink`` relays TCP to the real registry at a fixed rate (a
slow network in front of it, nothing answered in its place).
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tree_manifest import tree_manifest

from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import RegistryOptions, pull_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

CHECKOUT = Path(__file__).resolve().parents[2]
BIN = CHECKOUT / "bin"
# bin/* re-execute themselves with python3 from PATH (tests/unit/.../test_cli.py covers that); here the test's own
# interpreter is used, which skips a pyenv shim's start-up on machines that have one.
os.environ.setdefault("DOCKERLESS_PYTHON", sys.executable)
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: containers and exact owners in the rootfs"),
]


class SlowLink:
    """A TCP relay 127.0.0.1:port → ``target`` that moves at most ``rate`` bytes/s each way per connection."""

    def __init__(self, target: str, rate: int):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        # A small receive window (inherited by accepted sockets), so the sender's progress follows the link.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                dst.sendall(data)
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def on_pty(argv: list[str], env: dict | None = None, cwd: str | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its stdin/stdout/stderr; returns (exit code, everything it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env or os.environ)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def cli(*argv: str, env: dict | None = None, cwd: str | None = None, input: str | None = None):
    return subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd, input=input, timeout=180,
                          check=False)


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


# -- the seed's scripts ----------------------------------------------------------------------------------------

def test_seed_scripts_as_the_readme_writes_them(seeded_registry, registry_tls, run_module, tmp_path, home):
    busybox = seeded_registry.ref("busybox")              # 127.0.0.1:PORT/library/busybox:latest
    assert busybox.endswith("/library/busybox:latest")
    env = dict(os.environ, HOME=str(home), DOCKERLESS_STORE=str(tmp_path / "store"))
    env.pop("DOCKER_USERNAME", None)
    env.pop("DOCKER_PASSWORD", None)

    # ./image-download library/alpine:latest
    proc = cli("./image-download", busybox, env=env, cwd=str(BIN))
    assert proc.returncode == 0, proc.stderr
    rootfs = home / ".docker-internals" / "library" / "busybox" / "latest"
    assert f"root filesystem written to {rootfs}" in proc.stdout
    assert "\x1b[" not in proc.stdout                      # not a terminal: no progress drawing
    # The same tree image_pull's dest writes for the same image (paths, types, modes, owners, links, contents).
    module = run_module("image_pull", {"name": busybox, "store": str(tmp_path / "store2"), "dest": str(tmp_path / "dest")})
    assert not module["failed"], module["msg"]
    ours = tree_manifest(str(rootfs))
    assert ours == tree_manifest(str(tmp_path / "dest"))
    assert ours["bin/busybox"][0] == "f" and ours["bin/sh"][0] == "l"
    again = cli("./image-download", busybox, env=env, cwd=str(BIN))
    assert again.returncode == 0 and f"root filesystem up to date in {rootfs}" in again.stdout

    # ./run library/alpine:latest sh   (here with a command, through pipes; tests/unit covers the terminal)
    proc = cli("./run", busybox, "sh", "-c", "echo in-container $$; cat", env=env, cwd=str(BIN), input="typed\n")
    assert (proc.returncode, proc.stdout) == (0, "in-container 1\ntyped\n"), proc.stderr
    # ./run-chroot library/alpine:latest sh
    proc = cli("./run-chroot", busybox, "sh", "-c", "echo $$; ls /bin/busybox", env=env, cwd=str(BIN))
    pid, path = proc.stdout.split()
    assert proc.returncode == 0 and int(pid) > 1 and path == "/bin/busybox", proc.stderr

    # ./image-upload <user>/<repository>:<tag> with DOCKER_USERNAME / DOCKER_PASSWORD: the user's folder
    # (here a copy of the download, changed) becomes the image; its config comes from the downloaded image.
    user = registry_tls.username
    shutil.copytree(home / ".docker-internals" / "library" / "busybox", home / ".docker-internals" / user / "busybox",
                    symlinks=True)
    mine = home / ".docker-internals" / user / "busybox" / "latest"
    (mine / "etc" / "uploaded").write_text("changed by the user\n")
    target = f"{registry_tls.host}/{user}/busybox:latest"
    upload_env = dict(env, DOCKER_USERNAME=user, DOCKER_PASSWORD=registry_tls.password,
                      DOCKERLESS_CA_PATH=registry_tls.ca_path)
    proc = cli("./image-upload", target, env=upload_env, cwd=str(BIN))
    assert proc.returncode == 0, proc.stderr
    assert "built " in proc.stdout and "put manifest" in proc.stdout
    assert registry_tls.password not in proc.stdout + proc.stderr
    # What the registry now serves runs, with the user's change and the original command.
    check_store = Store(str(tmp_path / "check"))
    pulled = pull_image(check_store, target, registry=RegistryOptions(username=user, password=registry_tls.password,
                                                                      ca_path=registry_tls.ca_path))
    assert pulled.image.config["config"]["Cmd"] == ["sh"]
    proc = cli(str(BIN / "run"), "--store", str(tmp_path / "check"), target, "cat", "/etc/uploaded", env=upload_env)
    assert (proc.returncode, proc.stdout) == (0, "changed by the user\n"), proc.stderr
    # Unchanged folder: same digest, nothing uploaded.
    proc = cli("./image-upload", target, env=upload_env, cwd=str(BIN))
    assert proc.returncode == 0 and "already point(s) to" in proc.stdout, proc.stderr
    # Wrong password: exit 1, a message that says what to do, and no secret in it.
    wrong = dict(upload_env, DOCKER_PASSWORD="not-the-password-0123")
    proc = cli("./image-upload", target, env=wrong, cwd=str(BIN))
    assert proc.returncode == 1
    assert "not-the-password-0123" not in proc.stdout + proc.stderr and registry_tls.host in proc.stderr


def test_image_upload_from_the_store_and_from_another_name(seeded_registry, registry_factory, tmp_path, home):
    busybox = seeded_registry.ref("busybox")
    reg = registry_factory()
    env = dict(os.environ, HOME=str(home), DOCKERLESS_STORE=str(tmp_path / "store"))
    assert cli(str(BIN / "dockerless"), "pull", "-q", busybox, env=env).returncode == 0
    # --from: the store's image under the new name; blobs come from the store, not from a folder.
    proc = cli(str(BIN / "image-upload"), "--from", busybox, f"{reg.host}/me/bb:1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "put manifest" in proc.stdout and not (home / ".docker-internals").exists()
    digest = Store(str(tmp_path / "store")).image(busybox).digest
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{reg.host}/me/bb:1"],
                             capture_output=True, text=True, check=True)
    assert json.loads(inspect.stdout)["Digest"] == digest
    # A name already in the store is pushed as it is.
    proc = cli(str(BIN / "image-upload"), "-q", busybox, env=env)
    assert (proc.returncode, proc.stdout) == (0, digest + "\n"), proc.stderr


# -- progress --------------------------------------------------------------------------------------------------

def test_pull_reports_the_bytes_of_every_layer(seeded_registry, tmp_path):
    events: list[dict] = []
    lock = threading.Lock()

    def record(event: dict) -> None:
        with lock:
            events.append(event)

    result = pull_image(Store(str(tmp_path / "s")), seeded_registry.ref("layers"), progress=record)
    assert result.layers_fetched == 3 and events[0]["event"] == "start"
    sizes = {layer["digest"]: layer["size"] for layer in events[0]["layers"]}
    received = {}
    for event in events:
        if event["event"] == "bytes":
            assert event["size"] == sizes[event["digest"]] and event["bytes"] > 0
            received[event["digest"]] = received.get(event["digest"], 0) + event["bytes"]
    assert received == sizes                              # every byte of every layer, counted once
    done = [e["digest"] for e in events if e["event"] == "layer"]
    assert sorted(done) == sorted(sizes)
    last_bytes = max(i for i, e in enumerate(events) if e["event"] == "bytes" and e["digest"] == done[0])
    assert last_bytes < events.index(next(e for e in events if e["event"] == "layer"))
    # Again: nothing to download, no byte events.
    events.clear()
    pull_image(Store(str(tmp_path / "s")), seeded_registry.ref("layers"), progress=record)
    assert not [e for e in events if e["event"] == "bytes"]


def test_pull_progress_on_a_pty_and_none_when_piped(seeded_registry, tmp_path):
    link = SlowLink(seeded_registry.registry.host, rate=800_000)    # the 1 MiB layer takes more than a second
    try:
        name = seeded_registry.ref("busybox").replace(seeded_registry.registry.host, link.host)
        code, out = on_pty([str(BIN / "dockerless"), "pull", "--store", str(tmp_path / "tty"), name])
        assert code == 0, out
    finally:
        link.close()
    short = Store(str(tmp_path / "tty")).image(name).layers[0]["digest"][7:19]
    assert "\x1b[2K" in out and re.search(r"\x1b\[\dA", out)           # lines redrawn in place
    downloading = re.findall(rf"{short}  Downloading  ([\d.]+ \w+) / ([\d.]+ \w+) +\d+%  [\d.]+ \w+/s  ETA \d+s", out)
    assert len(downloading) >= 3, out                                   # bytes, rate and ETA, several times
    assert len({pair[0] for pair in downloading}) >= 3                  # ... moving
    assert re.search(rf"{short}  Pull complete  1\.0 MiB  [\d.]+ \w+/s", out)

    name = seeded_registry.ref("busybox")
    piped = cli(str(BIN / "dockerless"), "pull", "--store", str(tmp_path / "pipe"), name)
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stdout + piped.stderr and "Downloading" not in piped.stdout
    assert piped.stdout.startswith(f"pulled {name} sha256:")
    quiet = cli(str(BIN / "dockerless"), "pull", "-q", "--store", str(tmp_path / "pipe"), name)
    digest = Store(str(tmp_path / "pipe")).image(name).digest
    assert (quiet.returncode, quiet.stdout) == (0, digest + "\n")
    code, out = on_pty([str(BIN / "dockerless"), "pull", "--json", "--store", str(tmp_path / "pipe"), name])
    doc = json.loads(out)
    assert code == 0 and doc["changed"] is False and doc["image"]["digest"] == digest


def test_push_progress_on_a_pty(registry_factory, tmp_path):
    reg = registry_factory()
    store = str(tmp_path / "store")
    big = tmp_path / "big"
    big.write_bytes(os.urandom(10 << 20))               # incompressible: the layer stays 10 MiB
    # Uploads are counted as they are handed to the socket; the kernel buffers a few MiB of them at once, so the
    # layer must be larger than that for the link's pace to show.
    link = SlowLink(reg.host, rate=5_000_000)
    try:
        target = f"{link.host}/team/big:1"
        proc = cli(str(BIN / "dockerless"), "build", "-q", "--store", store, "--file", f"{big}:/big", target)
        assert proc.returncode == 0, proc.stderr
        code, out = on_pty([str(BIN / "dockerless"), "push", "--store", store, target])
        assert code == 0, out
        assert len(re.findall(r"Uploading  [\d.]+ MiB / 10\.0 MiB +\d+%  [\d.]+ \w+/s  ETA \d+s", out)) >= 3, out
        assert len(re.findall(r"  Pushed  ", out)) >= 2 and "put manifest" in out
        code, out = on_pty([str(BIN / "dockerless"), "push", "--store", store, target])
        assert code == 0 and "Already exists" in out and "nothing to push" in out, out
        piped = cli(str(BIN / "dockerless"), "push", "--json", "--store", store, target)
        doc = json.loads(piped.stdout)
        assert piped.returncode == 0 and doc["changed"] is False and doc["blobs"]["present"] == 2
        assert "\x1b" not in piped.stdout
    finally:
        link.close()


# -- other subcommands over the same store ---------------------------------------------------------------------

def test_images_export_wsl_and_build_on_a_pulled_base(seeded_registry, tmp_path):
    store = str(tmp_path / "store")
    busybox = seeded_registry.ref("busybox")
    d = str(BIN / "dockerless")
    assert cli(d, "pull", "-q", "--store", store, busybox).returncode == 0
    proc = cli(d, "images", "--json", "--store", store)
    [image] = json.loads(proc.stdout)
    assert image["name"] == busybox and image["unpacked"] is True and image["platform"] == "linux/amd64"

    proc = cli(d, "export-wsl", "--json", "--store", store, busybox, str(tmp_path / "bb.tar.gz"))
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["format"] == "tar.gz" and doc["changed"] is True
    import hashlib

    assert hashlib.sha256((tmp_path / "bb.tar.gz").read_bytes()).hexdigest() == doc["sha256"]
    assert oct(os.stat(tmp_path / "bb.tar.gz").st_mode & 0o777) == "0o600"

    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello from $0\n")
    built = f"{seeded_registry.registry.host}/team/hello:1"
    proc = cli(d, "build", "--store", store, "--base", busybox, "--file", f"{script}:/hello.sh:0755",
               "--cmd", "/hello.sh", built)
    assert proc.returncode == 0 and f"built {built}" in proc.stdout, proc.stderr
    proc = cli(d, "run", "--store", store, "--pull", "never", built)
    assert (proc.returncode, proc.stdout) == (0, "hello from /hello.sh\n"), proc.stderr
    proc = cli(d, "push", "-q", "--store", store, built)
    assert proc.returncode == 0 and proc.stdout.startswith("sha256:"), proc.stderr


# -- what a pull imports ---------------------------------------------------------------------------------------

def _pull_imports(*argv: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``bin/dockerless pull ARGV`` with Python's import report (-X importtime): the process and its modules."""
    env = dict(env or os.environ, PYTHONPROFILEIMPORTTIME="1")
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env.pop(name, None)
    proc = cli(str(BIN / "dockerless"), "pull", *argv, env=env)
    return proc, {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                  if line.startswith("import time:") and line.count("|") == 2}


# Neither TLS nor http.client (which brings ssl and the email package) for a registry spoken to in plain http,
# nor hashlib (OpenSSL's libcrypto) for a pull that downloads nothing: what a no-change pull spent most on.
NOT_FOR_PLAIN_HTTP = ("ssl", "_ssl", "http.client", "email", "email.utils", "hashlib", "_hashlib", "certifi",
                      "requests", "random")


def test_a_no_change_pull_over_plain_http_loads_no_tls_http_client_or_libcrypto(seeded_registry, tmp_path):
    store = str(tmp_path / "s")
    ref = seeded_registry.ref("layers")
    first, modules = _pull_imports("--store", store, ref)
    assert first.returncode == 0 and "pulled" in first.stdout, first.stderr[-2000:]
    # a download hashes its layers (hashlib) and names temporary files (random): the rest stays out
    assert [m for m in NOT_FOR_PLAIN_HTTP if m in modules and m not in ("hashlib", "_hashlib", "random")] == []
    again, modules = _pull_imports("--store", store, ref)
    assert again.returncode == 0 and "is up to date" in again.stdout, again.stderr[-2000:]
    assert [m for m in NOT_FOR_PLAIN_HTTP if m in modules] == []
    assert Store(store).image(ref).layers  # the first pull's layers, verified against their digests


def test_a_pull_from_a_tls_registry_still_verifies_its_certificate(seeded_registry, registry_tls, tmp_path):
    """https goes through http.client and ssl as before: the CA given is used, and without it the pull fails
    on the certificate, never falling back to plain http."""
    store = str(tmp_path / "s")
    env = dict(os.environ, DOCKER_USERNAME=registry_tls.username, DOCKER_PASSWORD=registry_tls.password)
    source = seeded_registry.ref("layers")
    first = cli(str(BIN / "dockerless"), "pull", "--store", store, source)
    assert first.returncode == 0, first.stderr[-2000:]
    target = f"{registry_tls.host}/test/layers:tls"
    pushed = cli(str(BIN / "dockerless"), "push", "--store", store, "--ca-path", registry_tls.ca_path,
                 "--repository", target, source, env=env)
    assert pushed.returncode == 0, pushed.stderr[-2000:]
    other = str(tmp_path / "t")
    proc, modules = _pull_imports("--store", other, "--ca-path", registry_tls.ca_path, target, env=env)
    assert proc.returncode == 0 and "pulled" in proc.stdout, proc.stderr[-2000:]
    assert "ssl" in modules and "http.client" in modules
    refused = cli(str(BIN / "dockerless"), "pull", "--store", str(tmp_path / "u"), target, env=env)
    assert refused.returncode != 0 and "certif" in refused.stderr.lower(), refused.stderr[-2000:]
