# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_build run through ansible-playbook, its images run by the peer tools: ``umoci unpack`` + ``runc run``
(and skopeo reading the store). The seeded registry's busybox is pulled with image_pull as a base."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import harness
import pytest

MODULE = "dockerless.containers.image_build"


def play(run_playbook, tmp_path: Path, tasks: list[dict], **kw) -> dict[str, dict]:
    """Run ``tasks`` (plain dicts) as ONE playbook on localhost — one ansible-playbook start for a whole sequence —
    and return each task's result by name (with ``failed`` and ``changed`` always present)."""
    path = tmp_path / f"play-{secrets.token_hex(3)}.yml"
    path.write_text(harness.to_yaml([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]) + "\n")
    run = run_playbook(path, **kw)
    results = {}
    for task in run.tasks:
        res = dict(task.result, failed=task.failed)
        res.setdefault("changed", False)
        results[task.task] = res
    assert len(results) == len(tasks), run.stderr[-3000:] + run.stdout[-2000:]
    return results


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing; scripts/install-deps.sh installs it")


class Bundle:
    """An image unpacked once with ``umoci unpack``; ``run(args)`` starts it with ``runc run`` (no terminal)."""

    def __init__(self, store: str, ref: str, tmp_path: Path):
        _need("umoci", "runc")
        self.path = tmp_path / f"bundle-{secrets.token_hex(4)}"
        subprocess.run(["umoci", "unpack", "--image", f"{store}:{ref}", str(self.path)], check=True,
                       capture_output=True)
        self.config = json.loads((self.path / "config.json").read_text())
        self.config["process"]["terminal"] = False

    def run(self, args: list[str]) -> subprocess.CompletedProcess:
        self.config["process"]["args"] = args
        (self.path / "config.json").write_text(json.dumps(self.config))
        cid = f"dl-build-{secrets.token_hex(4)}"
        try:
            return subprocess.run(["runc", "run", "--bundle", str(self.path), cid], capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL, check=False)
        finally:
            subprocess.run(["runc", "delete", "--force", cid], capture_output=True, check=False)


@pytest.mark.root
def test_bash_ls_image_check_build_idempotent_and_runs(run_playbook, tmp_path):
    """The seed's example: an image holding only bash and ls, built the Ansible way (check → real → idempotent
    check → idempotent real) and run by runc."""
    store = str(tmp_path / "store")
    name = f"127.0.0.1:5000/me/tools-{secrets.token_hex(3)}:1"
    args = {"name": name, "executables": ["bash", "ls"], "cmd": ["bash"], "store": store}
    r = play(run_playbook, tmp_path, [
        {"name": "check", MODULE: args, "check_mode": True, "diff": True},
        {"name": "real", MODULE: args, "diff": True},
        {"name": "check again", MODULE: args, "check_mode": True},
        {"name": "real again", MODULE: args},
        # Our own runtime (container_run) runs it too: it unpacks the layer from its blob on first use.
        {"name": "run ls", "dockerless.containers.container_run": {"image": name, "command": ["ls", "/"],
                                                                   "store": store}},
        {"name": "run bash", "dockerless.containers.container_run": {"image": name,
                                                                     "command": ["bash", "-c", "echo ok"],
                                                                     "store": store}},
    ])
    check, real = r["check"], r["real"]
    assert not check["failed"], check["msg"]
    assert check["changed"] and check["actions"][0].startswith(f"would build {name} sha256:")
    assert check["diff"]["before"]["digest"] is None and "/usr/bin/bash" in check["diff"]["after"]["files"]
    assert not real["failed"], real["msg"]
    assert real["changed"] and real["image"]["digest"] == check["image"]["digest"]
    assert real["image"]["name"] == name and real["image"]["platform"] == "linux/amd64"
    assert real["image"]["config"]["cmd"] == ["bash"]
    assert {"/usr/bin/bash", "/usr/bin/ls", "/lib64", "/usr/lib/x86_64-linux-gnu/libc.so.6"} <= set(real["files"])
    assert not r["check again"]["failed"] and not r["check again"]["changed"]
    again = r["real again"]
    assert not again["failed"] and not again["changed"]
    assert again["image"]["digest"] == real["image"]["digest"]

    run_ls, run_bash = r["run ls"], r["run bash"]
    assert not run_ls["failed"] and run_ls["rc"] == 0, run_ls["msg"] + str(run_ls.get("stderr"))
    assert {"lib", "lib64", "usr"} <= set(run_ls["stdout"].split())
    assert not run_bash["failed"] and (run_bash["rc"], run_bash["stdout"]) == (0, "ok\n"), run_bash.get("stderr")

    # skopeo reads the store as the OCI layout it is.
    inspect = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{store}:{name}"], capture_output=True,
                                        text=True, check=True).stdout)
    assert inspect["Digest"] == real["image"]["digest"] and inspect["Created"] == "1970-01-01T00:00:00Z"

    bundle = Bundle(store, name, tmp_path)
    ls = bundle.run(["ls", "/"])
    assert ls.returncode == 0, ls.stderr
    assert {"lib", "lib64", "usr"} <= set(ls.stdout.split())
    ok = bundle.run(["bash", "-c", "echo ok"])
    assert (ok.returncode, ok.stdout) == (0, "ok\n"), ok.stderr


@pytest.mark.root
def test_closure_of_host_binaries_runs_inside(run_module, tmp_path):
    """bash, ls, python3, openssl and ssh: the image's own loader finds every library, ldd's list is inside,
    and each binary's --version runs."""
    _need("openssl", "ssh", "ldd")
    store = str(tmp_path / "store")
    name = "127.0.0.1:5000/me/closure:1"
    # ssh looks up the current user (getpwuid) before anything else: it needs an /etc/passwd, as in any image.
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    binaries = {"bash": "/usr/bin/bash", "ls": "/usr/bin/ls", "/usr/bin/python3": "/usr/bin/python3",
                "openssl": "/usr/bin/openssl", "ssh": "/usr/bin/ssh"}
    res = run_module(MODULE, {"name": name, "executables": list(binaries), "store": store,
                              "files": [{"src": str(passwd), "dest": "/etc/passwd", "mode": "0644"}]})
    assert not res["failed"], res["msg"]

    bundle = Bundle(store, name, tmp_path)
    for path in binaries.values():
        listed = bundle.run(["/lib64/ld-linux-x86-64.so.2", "--list", path])
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "not found" not in listed.stdout
        host_libs = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
        wanted = [line.split("=>")[1].split("(")[0].strip() for line in host_libs.splitlines() if "=> /" in line]
        present = bundle.run(["bash", "-c", 'for f in "$@"; do test -e "$f" || echo "MISSING $f"; done', "check",
                              *wanted])
        assert present.returncode == 0 and present.stdout == "", present.stdout + present.stderr

    for args, expect in [
        (["bash", "--version"], "GNU bash"),
        (["ls", "--version"], "GNU coreutils"),
        (["python3", "--version"], "Python 3"),
        (["openssl", "version"], "OpenSSL"),
        (["ssh", "-V"], "OpenSSH"),
    ]:
        run = bundle.run(args)
        assert run.returncode == 0, f"{args}: {run.stdout} {run.stderr}"
        assert expect in run.stdout + run.stderr


@pytest.mark.root
def test_reproducible_digests_through_the_module(run_playbook, tmp_path):
    """Two stores → one digest; touching an input's mtime → same digest; one byte changed → a new digest."""
    src = tmp_path / "site"
    (src / "sub").mkdir(parents=True)
    (src / "index.html").write_text("hello\n")
    (src / "sub" / "data.bin").write_bytes(bytes(range(256)) * 10)
    args = {"name": "me/site:1", "executables": ["ls"], "files": [{"src": str(src), "dest": "/srv/site"}]}
    index = str(src / "index.html")
    r = play(run_playbook, tmp_path, [
        {"name": "a", MODULE: dict(args, store=str(tmp_path / "a"))},
        {"name": "b", MODULE: dict(args, store=str(tmp_path / "b"))},
        {"name": "touch", "ansible.builtin.file": {"path": index, "state": "touch",
                                                   "modification_time": "200001020304.05"}},
        {"name": "after touch", MODULE: dict(args, store=str(tmp_path / "a"))},
        {"name": "edit", "ansible.builtin.copy": {"dest": index, "content": "hellO\n"}},
        {"name": "after edit", MODULE: dict(args, store=str(tmp_path / "a")), "diff": True},
    ])
    a, b = r["a"], r["b"]
    assert not a["failed"] and not b["failed"], a["msg"] + b["msg"]
    assert a["image"]["digest"] == b["image"]["digest"]
    assert r["touch"]["changed"]
    c = r["after touch"]
    assert not c["changed"] and c["image"]["digest"] == a["image"]["digest"]
    d = r["after edit"]
    assert d["changed"] and d["image"]["digest"] != a["image"]["digest"]
    assert d["diff"]["before"]["digest"] == a["image"]["digest"]
    assert d["diff"]["before"]["files"] == d["diff"]["after"]["files"]


@pytest.mark.root
def test_base_busybox_from_the_registry(run_module, seeded_registry, tmp_path):
    store = str(tmp_path / "store")
    base = seeded_registry.ref("busybox")
    pulled = run_module("dockerless.containers.image_pull", {"name": base, "store": store})
    assert not pulled["failed"], pulled["msg"]
    name = "127.0.0.1:5000/me/on-busybox:1"
    built = run_module(MODULE, {"name": name, "base": base, "executables": ["bash"], "env": {"FROM_BUILD": "1"},
                                "store": store})
    assert not built["failed"], built["msg"]
    base_layers = [la["digest"] for la in pulled["image"]["layers"]]
    layers = [la["digest"] for la in built["image"]["layers"]]
    assert layers[:-1] == base_layers and len(layers) == len(base_layers) + 1
    assert built["image"]["config"]["cmd"] == ["sh"]  # inherited
    assert "FROM_BUILD=1" in built["image"]["config"]["env"]
    assert "/usr/bin/bash" in built["files"] and "/bin/busybox" not in built["files"]

    bundle = Bundle(store, name, tmp_path)
    both = bundle.run(["sh", "-c", "test -x /bin/busybox && test -x /usr/bin/bash && bash -c 'echo ok'"])
    assert (both.returncode, both.stdout) == (0, "ok\n"), both.stderr
    env = bundle.run(["sh", "-c", "echo $FROM_BUILD"])
    assert env.stdout == "1\n"


HOSTILE = [
    ("dotdot", {"files": [{"src": "/etc/hostname", "dest": "/etc/../../escape"}]}, "contains '..'"),
    ("device", {"files": [{"src": "/dev/null", "dest": "/dev/null"}]}, "is a character device"),
    ("fifo", {"files": [{"src": "FIFO", "dest": "/fifo"}]}, "is a FIFO"),
    ("owner", {"files": [{"src": "/etc/hostname", "dest": "/etc/h", "owner": "root"}]}, "not a numeric id"),
    ("mode", {"files": [{"src": "/etc/hostname", "dest": "/etc/h", "mode": "u+x"}]}, "not an octal mode"),
    ("missing", {"executables": ["/usr/bin/definitely-not-here"]}, "/usr/bin/definitely-not-here: no such file"),
    ("not-elf", {"executables": ["/etc/hostname"]}, "neither an ELF file nor a script"),
]


@pytest.mark.root
def test_hostile_inputs_fail_clearly_and_tag_nothing(run_playbook, tmp_path):
    """Each case is a task of one playbook (one ansible-playbook start): all fail with a message naming the input,
    and the store never gets the tag."""
    store = str(tmp_path / "store")
    os.mkfifo(tmp_path / "fifo")
    tasks = []
    for case, extra, _message in HOSTILE:
        args = json.loads(json.dumps({"name": "me/hostile:1", "store": store, **extra}))
        for f in args.get("files", []):
            if f["src"] == "FIFO":
                f["src"] = str(tmp_path / "fifo")
        tasks.append({"name": case, MODULE: args, "ignore_errors": True})
    r = play(run_playbook, tmp_path, tasks)
    for case, _extra, message in HOSTILE:
        assert r[case]["failed"] and message in r[case]["msg"], (case, r[case].get("msg"))
    index = os.path.join(store, "index.json")
    assert not os.path.exists(index) or "me/hostile" not in open(index).read()


@pytest.mark.root
def test_symlink_to_host_secret_is_copied_as_a_link(run_module, tmp_path):
    """A symlink pointing outside what was named travels as a link; the host file it names is not read."""
    src = tmp_path / "conf"
    src.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("host-only-secret\n")
    os.symlink(str(secret), src / "abs-link")
    (src / "plain").write_text("x\n")
    store = str(tmp_path / "store")
    res = run_module(MODULE, {"name": "me/links:1", "files": [{"src": str(src), "dest": "/conf"}], "store": store})
    assert not res["failed"], res["msg"]
    assert "/conf/abs-link" in res["files"]
    blob = os.path.join(store, "blobs", "sha256", res["image"]["layers"][0]["digest"].split(":")[1])
    listing = subprocess.run(["tar", "-tvzf", blob], capture_output=True, text=True, check=True).stdout
    assert f"conf/abs-link -> {secret}" in listing
    content = subprocess.run(["tar", "-xzOf", blob], capture_output=True, check=True).stdout
    assert b"host-only-secret" not in content


def test_script_brings_its_interpreter_with_a_note(run_module, tmp_path):
    store = str(tmp_path / "store")
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    res = run_module(MODULE, {"name": "me/x:1", "executables": [str(script)], "store": store}, check=True)
    assert not res["failed"], res["msg"]
    assert any("is a script; added its interpreter /bin/sh" in n for n in res["notes"])
    assert "/usr/bin/dash" in res["files"] and "/bin" in res["files"]
