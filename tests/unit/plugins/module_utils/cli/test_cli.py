# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command-line front without containers or registries: parsing, helpers, the progress board, exit codes,
and bin/dockerless finding its collection (checkout, installed layout, temporary link, Python 3.9)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cli import main as cli
from ansible_collections.dockerless.containers.plugins.module_utils.cli import progress as cli_progress
from ansible_collections.dockerless.containers.plugins.module_utils.image.build import FileSpec
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

CHECKOUT = Path(__file__).resolve().parents[5]
BIN = CHECKOUT / "bin"
SUBCOMMANDS = ("pull", "push", "build", "run", "exec", "ps", "start", "stop", "kill", "rm", "images", "export-wsl", "port",
               "network")


def run_main(argv, prog="dockerless", stdin_text=""):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, prog=prog, stdout=out, stderr=err, stdin=io.StringIO(stdin_text))
    return code, out.getvalue(), err.getvalue()


# -- parsing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["pull", "alpine"], {"subcommand": "pull", "name": "alpine", "pull": "always", "dest": None, "quiet": False}),
    (["pull", "--pull", "missing", "-q", "--platform", "linux/arm64", "--dest", "/r", "a:1"],
     {"pull": "missing", "quiet": True, "platform": "linux/arm64", "dest": "/r", "name": "a:1"}),
    (["push", "--repository", "r:5000/x/y:2", "--tag", "a", "--tag", "b", "app:1"],
     {"repository": "r:5000/x/y:2", "tags": ["a", "b"], "name": "app:1"}),
    (["push", "--username", "u", "--password-stdin", "--insecure", "--ca-path", "/ca.pem", "--timeout", "5", "x"],
     {"username": "u", "password_stdin": True, "insecure": True, "ca_path": "/ca.pem", "timeout": 5.0}),
    (["run", "-it", "busybox", "sh"], {"interactive": True, "tty": True, "image": "busybox", "command": ["sh"]}),
    (["run", "busybox", "ls", "-l", "--color"], {"interactive": False, "tty": False, "command": ["ls", "-l", "--color"]}),
    (["run", "-d", "--name", "web", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20", "--network", "host",
      "-e", "A=1", "-e", "B", "-v", "/srv:/data:ro", "img"],
     {"detach": True, "name": "web", "memory": "64m", "cpus": 0.5, "pids_limit": 20, "network": ["host"],
      "env": ["A=1", "B"], "volume": ["/srv:/data:ro"], "command": []}),
    (["run", "--isolation", "chroot", "--pull", "never", "--store", "/s", "img", "true"],
     {"isolation": "chroot", "pull": "never", "store": "/s", "command": ["true"]}),
    (["ps", "-a", "--json"], {"all": True, "json": True}),
    (["exec", "-it", "-e", "A=1", "-u", "app", "-w", "/srv", "web", "sh", "-c", "x"],
     {"interactive": True, "tty": True, "env": ["A=1"], "user": "app", "workdir": "/srv", "container": "web",
      "command": ["sh", "-c", "x"]}),
    (["stop", "-t", "0", "a", "b"], {"time": 0.0, "names": ["a", "b"]}),
    (["rm", "-f", "a"], {"force": True, "names": ["a"]}),
    (["start", "--all"], {"all": True, "names": []}),
    (["start", "a", "b"], {"all": False, "names": ["a", "b"]}),
    (["start", "--by-policy", "--check", "a"], {"by_policy": True, "check": True, "pid_file": None, "names": ["a"]}),
    (["start", "--by-policy", "--pid-file", "/p", "a"], {"by_policy": True, "check": False, "pid_file": "/p"}),
    (["kill", "a"], {"signal": "SIGKILL", "names": ["a"]}),
    (["kill", "-s", "HUP", "a"], {"signal": "HUP", "names": ["a"]}),
    (["run", "-d", "--restart", "on-failure:3", "--stop-signal", "SIGUSR1", "--stop-timeout", "2", "img"],
     {"restart": ("on-failure", 3), "stop_signal": "SIGUSR1", "stop_timeout": 2}),
    (["run", "-d", "--restart", "unless-stopped", "img"], {"restart": ("unless-stopped", 0)}),
    (["run", "img"], {"restart": ("no", 0), "stop_signal": None, "stop_timeout": 10}),
    (["images", "x", "y"], {"names": ["x", "y"]}),
    (["export-wsl", "--fix", "all", "--wsl-conf", "boot.systemd=true", "img", "/o.wsl"],
     {"fix": ["all"], "wsl_conf": ["boot.systemd=true"], "image": "img", "dest": "/o.wsl"}),
    (["build", "--executable", "/bin/ls", "--file", "a:/b", "--cmd", "/bin/ls", "n:1"],
     {"executables": ["/bin/ls"], "files": ["a:/b"], "cmd": "/bin/ls", "name": "n:1"}),
])
def test_parser(argv, expected):
    args = cli.build_parser().parse_args(argv)
    for key, value in expected.items():
        assert getattr(args, key) == value, key


def test_store_and_ca_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(cli.ENV_STORE, "/env/store")
    monkeypatch.setenv(cli.ENV_CA_PATH, "/env/ca.pem")
    args = cli.build_parser().parse_args(["pull", "x"])
    assert (args.store, args.ca_path) == ("/env/store", "/env/ca.pem")
    args = cli.build_parser().parse_args(["pull", "--store", "/cli", "x"])
    assert args.store == "/cli"


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help_with_examples(command):
    code, out, unused = run_main([command, "--help"])
    assert code == 0
    assert "examples:" in out
    assert f"dockerless {command}" in out.split("examples:")[1]


@pytest.mark.parametrize("command", cli.SEED_COMMANDS)
def test_seed_scripts_have_help_with_examples(command):
    code, out, unused = run_main(["--help"], prog=command)
    assert code == 0
    assert out.startswith(f"usage: {command} ")
    assert "examples:" in out and f"{command} " in out.split("examples:")[1]


@pytest.mark.parametrize("argv, prog", [(["--help"], "run-chroot"), (["run", "--help"], "dockerless")])
def test_help_says_chroot_isolation_is_no_security_boundary(argv, prog):
    code, out, unused = run_main(argv, prog=prog)
    assert code == 0
    assert re.search(r"not\s+a\s+security\s+boundary", out, re.I), out


def test_seed_run_attaches_stdin_and_picks_isolation():
    run = cli.build_seed_parser("run").parse_args(["library/alpine:latest", "sh"])
    assert run.interactive is True and run.tty is None and run.isolation == "container"
    chroot = cli.build_seed_parser("run-chroot").parse_args(["library/alpine:latest", "sh"])
    assert chroot.isolation == "chroot" and chroot.command == ["sh"]


def test_usage_errors_exit_2():
    assert run_main([])[0] == cli.EXIT_USAGE
    code, unused, err = run_main(["pull"])
    assert code == cli.EXIT_USAGE and "required" in err
    assert run_main(["frobnicate"])[0] == cli.EXIT_USAGE
    code, unused, err = run_main(["run", "-d", "-t", "busybox"])
    assert code == cli.EXIT_USAGE and "-d runs in the background" in err
    code, unused, err = run_main(["run", "--name", "x", "busybox"])
    assert code == cli.EXIT_USAGE and "--name names a detached container" in err
    code, unused, err = run_main(["run", "--restart", "always", "busybox"])
    assert code == cli.EXIT_USAGE and "--restart" in err


def test_version_names_the_collection_folder():
    code, out, unused = run_main(["--version"])
    assert code == 0
    assert re.fullmatch(r"dockerless \(dockerless\.containers \S+\) from \S+\n", out)
    assert os.path.realpath(out.split(" from ")[1].strip()) == str(CHECKOUT)


# -- helpers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("library/alpine:latest", "library/alpine/latest"),
    ("alpine", "library/alpine/latest"),
    ("docker.io/library/alpine:3.20", "library/alpine/3.20"),
    ("127.0.0.1:5000/library/busybox:latest", "library/busybox/latest"),
    ("me/app:1", "me/app/1"),
    ("registry.example.com/team/sub/app:v2", "team/sub/app/v2"),
    ("alpine@sha256:" + "a" * 64, "library/alpine/sha256-" + "a" * 64),
])
def test_seed_dest(name, expected):
    assert cli.seed_dest(name, home="/home/u") == f"/home/u/.docker-internals/{expected}"


def test_seed_dest_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.seed_dest("alpine") == str(tmp_path / ".docker-internals" / "library" / "alpine" / "latest")


def test_parse_env():
    env = {"FROM_HOST": "h", "EMPTY": ""}
    assert cli.parse_env(["A=1", "B=x=y", "C=", "FROM_HOST", "EMPTY", "UNSET"], env) == {
        "A": "1", "B": "x=y", "C": "", "FROM_HOST": "h", "EMPTY": ""}
    with pytest.raises(cli.UsageError, match="name is empty"):
        cli.parse_env(["=1"], env)


@pytest.mark.parametrize("text, expected", [
    (None, None),
    ("/bin/sh", ["/bin/sh"]),
    ("sh -c 'echo a b'", ["sh", "-c", "echo a b"]),
    ('["sh", "-c", "echo a b"]', ["sh", "-c", "echo a b"]),
    ("[]", []),
])
def test_parse_command(text, expected):
    assert cli.parse_command(text, "--cmd") == expected


@pytest.mark.parametrize("text, message", [
    ('["sh", 1]', "list of strings"), ("[oops", "not valid JSON"), ("sh 'unclosed", "No closing quotation"),
])
def test_parse_command_errors(text, message):
    with pytest.raises(cli.UsageError, match=message):
        cli.parse_command(text, "--cmd")


def test_parse_file_item_and_wsl_conf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.parse_file_item("app.sh:/usr/local/bin/app:0755") == FileSpec(
        src=str(tmp_path / "app.sh"), dest="/usr/local/bin/app", mode=0o755)
    assert cli.parse_file_item("/etc/hosts:/etc/hosts").mode is None
    for bad in ("nodest", ":/x", "a:/b:c:d"):
        with pytest.raises(cli.UsageError):
            cli.parse_file_item(bad)
    assert cli.parse_wsl_conf(["boot.systemd=true", "boot.command=x=y", "user.default=dev"]) == {
        "boot": {"systemd": "true", "command": "x=y"}, "user": {"default": "dev"}}
    with pytest.raises(cli.UsageError, match="SECTION.KEY=VALUE"):
        cli.parse_wsl_conf(["systemd=true"])


def test_default_container_name_and_table():
    name = cli.default_container_name("127.0.0.1:5000/team/web:1")
    assert re.fullmatch(r"web-[0-9a-f]{6}", name)
    assert re.fullmatch(r"alpine-[0-9a-f]{6}", cli.default_container_name("alpine@sha256:" + "b" * 64))
    assert cli.table([["a", "long value"], ["bbb", "c"]], ["X", "Y"]) == "X    Y\na    long value\nbbb  c\n"


def test_collection_version_prefers_manifest(tmp_path):
    (tmp_path / "galaxy.yml").write_text("namespace: dockerless\nversion: 1.2.3\n")
    assert cli.collection_version(str(tmp_path)) == "1.2.3"
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "2.0.0"}}))
    assert cli.collection_version(str(tmp_path)) == "2.0.0"
    assert cli.collection_version(str(tmp_path / "missing")) == "unknown"


# -- the progress board ----------------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_human_units():
    assert [cli_progress.human_size(n) for n in (0, 1023, 1536, 5 * 2**20, 3 * 2**30)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB"]
    assert [cli_progress.human_duration(s) for s in (0, 59.4, 75, 3725)] == ["0s", "59s", "1m15s", "1h02m"]


def test_board_shows_bytes_rate_eta_and_redraws_in_place():
    clock, stream = Clock(), io.StringIO()
    board = cli_progress.Board(stream, clock=clock, min_interval=0.1, width=200)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    board({"event": "start", "name": "r/x:1", "layers": [{"digest": a, "size": 4 * 2**20}, {"digest": b, "size": 100}]})
    assert board.lines() == ["r/x:1:", "aaaaaaaaaaaa  Waiting  4.0 MiB", "bbbbbbbbbbbb  Waiting  100 B"]
    board({"event": "bytes", "digest": a, "bytes": 2**20})
    clock.now += 1.0
    board({"event": "bytes", "digest": a, "bytes": 2**20})
    line = board.lines()[1]
    # 2 MiB in 1 s since the first chunk; 2 MiB left at that rate: 1 s.
    assert line == "aaaaaaaaaaaa  Downloading  2.0 MiB / 4.0 MiB   50%  2.0 MiB/s  ETA 1s"
    board({"event": "layer", "digest": b, "size": 100})       # never moved a byte: it was already there
    board({"event": "bytes", "digest": a, "bytes": 2 * 2**20})
    board({"event": "layer", "digest": a, "size": 4 * 2**20})
    board.close()
    assert board.lines()[1:] == ["aaaaaaaaaaaa  Pull complete  4.0 MiB  4.0 MiB/s", "bbbbbbbbbbbb  Already exists"]
    text = stream.getvalue()
    # Each redraw moves up over the three lines it drew before and clears each line it rewrites.
    assert text.count("\x1b[3A") >= 4
    assert text.startswith("\r\x1b[2Kr/x:1:\n")
    assert text.endswith("\r\x1b[2Kbbbbbbbbbbbb  Already exists\n")


def test_board_throttles_byte_events_but_not_state_changes():
    clock, stream = Clock(), io.StringIO()
    board = cli_progress.Board(stream, clock=clock, min_interval=0.5, width=200)
    d = "sha256:" + "c" * 64
    board({"event": "start", "layers": [{"digest": d, "size": 1000}]})
    draws = stream.getvalue().count("\x1b[2K")
    for chunk in [10] * 50:
        board({"event": "bytes", "digest": d, "bytes": chunk})
    assert stream.getvalue().count("\x1b[2K") == draws + 1      # the first chunk only; the rest within 0.5 s
    board({"event": "layer", "digest": d, "size": 1000})
    assert stream.getvalue().count("\x1b[2K") == draws + 2
    assert board.items[d].done_bytes == 500


def test_board_push_outcomes_restart_and_width():
    clock, stream = Clock(), io.StringIO()
    board = cli_progress.Board(stream, "Uploading", "Pushed", clock=clock, width=30)
    d1, d2, d3 = ("sha256:" + c * 64 for c in "def")
    board({"event": "start", "name": "reg/team/app", "layers": [{"digest": d, "size": 10} for d in (d1, d2, d3)]})
    board({"event": "present", "digest": d1})
    board({"event": "mounted", "digest": d2})
    board({"event": "bytes", "digest": d3, "bytes": 8})
    board({"event": "bytes", "digest": d3, "bytes": 0, "restart": True})
    assert board.items[d3].done_bytes == 0
    assert board.lines()[1:3] == ["dddddddddddd  Already exists", "eeeeeeeeeeee  Mounted from another repository"]
    assert all(len(line) <= 29 for line in stream.getvalue().replace("\x1b[4A", "").replace("\r\x1b[2K", "").split("\n"))


def test_progress_only_on_a_terminal(tmp_path):
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=False) as tty_stream:
            assert cli_progress.wanted(tty_stream) is True
            assert cli_progress.wanted(tty_stream, quiet=True) is False
            assert cli_progress.wanted(tty_stream, as_json=True) is False
    finally:
        os.close(master)
        os.close(slave)
    with open(tmp_path / "f", "w") as plain:
        assert cli_progress.wanted(plain) is False
    assert cli_progress.wanted(io.StringIO()) is False
    assert cli_progress.wanted(None) is False


# -- subcommands that need only a store ------------------------------------------------------------------------

def test_images_on_an_empty_store(tmp_path):
    code, out, err = run_main(["images", "--store", str(tmp_path / "s")])
    assert (code, out, err) == (0, "IMAGE  DIGEST  PLATFORM  SIZE  CREATED\n", "")
    code, out, unused = run_main(["images", "--json", "--store", str(tmp_path / "s")])
    assert code == 0 and json.loads(out) == []
    code, out, err = run_main(["images", "--store", str(tmp_path / "s"), "alpine"])
    assert code == cli.EXIT_ERROR and out == ""
    assert "docker.io/library/alpine:latest not in the store" in err and "Pull or build" in err


def test_build_images_and_quiet_json(tmp_path):
    store = str(tmp_path / "store")
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    argv = ["build", "--store", store, "--file", f"{src}:/hello.txt:0640", "--cmd", '["/hello"]', "-e", "A=1",
            "--label", "team=x", "--source-date-epoch", "0", "127.0.0.1:5999/test/hello:1"]
    code, out, err = run_main(argv + ["-q"])
    assert code == 0, err
    digest = out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    code, out, unused = run_main(argv + ["--json"])
    doc = json.loads(out)
    assert code == 0 and doc["changed"] is False and doc["image"]["digest"] == digest
    assert doc["files"] == ["/hello.txt"] and doc["image"]["config"]["cmd"] == ["/hello"]
    assert "A=1" in doc["image"]["config"]["env"] and doc["image"]["config"]["labels"] == {"team": "x"}
    code, out, unused = run_main(["images", "--store", store])
    assert code == 0 and "127.0.0.1:5999/test/hello:1" in out and digest[:19] in out
    code, out, unused = run_main(["images", "-q", "--store", store])
    assert out == "127.0.0.1:5999/test/hello:1\n"


def test_build_from_rootfs_keeps_the_source_config(tmp_path):
    store = Store(str(tmp_path / "store"))
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hi\n")
    os.symlink("etc/motd", root / "motd-link")
    result = cli.build_from_rootfs(store, "me/app:1", str(root), {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin", "X=y"],
                                                                  "WorkingDir": "/etc"})
    assert result.files == ["/etc", "/etc/motd", "/motd-link"]
    cfg = store.image("docker.io/me/app:1").config["config"]
    assert cfg["Cmd"] == ["/bin/sh"] and cfg["WorkingDir"] == "/etc" and sorted(cfg["Env"]) == ["PATH=/bin", "X=y"]
    assert cli.build_from_rootfs(store, "me/app:1", str(root), {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin", "X=y"],
                                                                "WorkingDir": "/etc"}).changed is False


def test_image_upload_without_a_source_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = run_main(["--store", str(tmp_path / "s"), "me/app:1"], prog="image-upload")
    assert code == cli.EXIT_ERROR and out == ""
    assert "docker.io/me/app:1" in err and str(tmp_path / ".docker-internals" / "me" / "app" / "1") in err
    assert "image-download" in err and "--from" in err
    code, unused, err = run_main(["--from", "a", "--rootfs", "/x", "me/app:1"], prog="image-upload")
    assert code == cli.EXIT_USAGE and "give one source" in err


@pytest.mark.parametrize("value", ["sometimes", "always:2", "on-failure:0", "on-failure:x", "on-failure:"])
def test_restart_values_docker_refuses(value):
    code, unused, err = run_main(["run", "-d", "--restart", value, "img"])
    assert code == cli.EXIT_USAGE and "--restart" in err


def test_start_needs_names_or_all(tmp_path):
    store = str(tmp_path / "s")
    for argv in (["start"], ["start", "--all", "x"]):
        code, unused, err = run_main(argv + ["--store", store])
        assert code == cli.EXIT_USAGE and "or use --all" in err
    code, out, err = run_main(["start", "--all", "--store", store])
    assert (code, out, err) == (0, "", "")
    code, unused, err = run_main(["kill", "--store", store, "nope"])
    assert code == cli.EXIT_ERROR and "container nope: not found" in err
    # What a systemd unit runs: --check only with a rule to check, one NAME for a PID file, a missing container
    # is a refusal (exit 1: ExecCondition skips the start).
    code, unused, err = run_main(["start", "--check", "--store", store, "a"])
    assert code == cli.EXIT_USAGE and "--check goes with --by-policy or --all" in err
    code, unused, err = run_main(["start", "--by-policy", "--pid-file", "/nonexistent/p", "--store", store, "a", "b"])
    assert code == cli.EXIT_USAGE and "--pid-file needs exactly one NAME" in err
    code, unused, err = run_main(["start", "--by-policy", "--check", "--store", store, "nope"])
    assert code == cli.EXIT_ERROR and "container nope: not found" in err


def test_rm_and_stop_of_unknown_containers(tmp_path):
    store = str(tmp_path / "s")
    code, unused, err = run_main(["rm", "--store", store, "nope"])
    assert code == cli.EXIT_ERROR and "nope" in err and "ps -a" in err
    code, unused, err = run_main(["stop", "--store", store, "nope"])
    assert code == cli.EXIT_ERROR and "container nope: not found" in err
    code, out, unused = run_main(["ps", "-a", "--store", store])
    assert (code, out) == (0, "NAME  STATE  PID  IMAGE  COMMAND  STARTED  ADDRESSES\n")


def test_password_stdin_reads_one_line_and_refuses_empty():
    args = cli.build_parser().parse_args(["push", "--username", "u", "--password-stdin", "x"])
    opts = cli._registry_options(args, io.StringIO("s3cret\nrest\n"))
    assert (opts.username, opts.password) == ("u", "s3cret")
    assert "s3cret" not in repr(opts)
    with pytest.raises(cli.UsageError, match="empty line"):
        cli._registry_options(args, io.StringIO("\n"))


# -- bin/dockerless finds its collection -----------------------------------------------------------------------

def _run_bin(path, *args, env=None, python=None):
    cmd = [python, str(path), *args] if python else [str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_bin_runs_from_the_checkout():
    proc = _run_bin(BIN / "dockerless", "--version")
    assert proc.returncode == 0, proc.stderr
    assert os.path.realpath(proc.stdout.split(" from ")[1].strip()) == str(CHECKOUT)


@pytest.mark.parametrize("wrapper", cli.SEED_COMMANDS)
def test_wrappers_dispatch_on_their_name(wrapper):
    proc = _run_bin(BIN / wrapper, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {wrapper} ")


def _copy_collection(dest: Path) -> Path:
    shutil.copytree(CHECKOUT / "plugins", dest / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(BIN, dest / "bin")
    (dest / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "9.9.9"}}))
    return dest


def test_bin_runs_from_an_installed_collection(tmp_path):
    root = _copy_collection(tmp_path / "site" / "ansible_collections" / "dockerless" / "containers")
    proc = _run_bin(root / "bin" / "dockerless", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"dockerless (dockerless.containers 9.9.9) from {root}\n"
    # Through a symlink on PATH, as a user would install it.
    (tmp_path / "path").mkdir()
    os.symlink(root / "bin" / "run", tmp_path / "path" / "run")
    proc = _run_bin(tmp_path / "path" / "run", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: run "), proc.stderr


def test_bin_without_ansible_collections_parent_uses_a_temporary_link(tmp_path):
    root = _copy_collection(tmp_path / "plain-checkout")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = _run_bin(root / "bin" / "dockerless", "--version", env=env)
    assert proc.returncode == 0, proc.stderr
    loaded_from = proc.stdout.split(" from ")[1].strip()
    assert loaded_from.startswith(str(tmp) + "/dockerless-cli-")
    assert list(tmp.iterdir()) == []       # removed at exit
    proc = _run_bin(root / "bin" / "dockerless", "images", "--store", str(tmp_path / "s"), env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("IMAGE"), proc.stderr
    assert list(tmp.iterdir()) == []


def find_python(version: str) -> str | None:
    """A working interpreter of ``version`` (pyenv's shims exist for versions that are not selected)."""
    candidates = [os.path.expanduser(f"~/.pyenv/versions/{v}/bin/python3")
                  for v in sorted(os.listdir(os.path.expanduser("~/.pyenv/versions")))
                  if v.startswith(version + ".")] if os.path.isdir(os.path.expanduser("~/.pyenv/versions")) else []
    candidates += [p for p in (shutil.which(f"python{version}"), f"/usr/bin/python{version}") if p]
    for path in candidates:
        try:
            out = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        except OSError:
            continue
        if out == version:
            return path
    return None


PY39 = find_python("3.9")


@pytest.mark.skipif(PY39 is None, reason="no working Python 3.9 interpreter on this machine")
def test_bin_runs_on_python_3_9(tmp_path):
    env = dict(os.environ, DOCKERLESS_PYTHON=PY39)
    proc = _run_bin(BIN / "dockerless", "images", "--store", str(tmp_path / "s"), env=env)
    assert proc.returncode == 0, proc.stderr
    proc = _run_bin(BIN / "dockerless", "build", "--help", env=env)
    assert proc.returncode == 0 and "examples:" in proc.stdout, proc.stderr


def test_bin_refuses_an_old_python(tmp_path):
    old = find_python("3.8")
    if old is None:
        pytest.skip("no working Python 3.8 interpreter on this machine")
    proc = _run_bin(BIN / "dockerless", "--version", env=dict(os.environ, DOCKERLESS_PYTHON=old))
    assert proc.returncode == 2 and "Python 3.9 or later is needed" in proc.stderr


def test_sys_executable_is_not_needed_on_path():
    # The shell line picks python3 from PATH; the file is also valid Python when run by any interpreter.
    proc = _run_bin(BIN / "dockerless", "--version", python=sys.executable)
    assert proc.returncode == 0, proc.stderr
