# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dockerless run`` as the container start path: what a fresh ``bin/dockerless run`` imports (nothing of the
registry, the pull engine, argparse or site when the image is in the store), and ``cli.parse_run_fast``, the
reader of ``run``'s command line that stands in for argparse, checked against the argparse parser.

The imports are seen the way Python reports them, ``PYTHONPROFILEIMPORTTIME=1`` (``-X importtime``) on the
real command: the CLI ends with ``os._exit``, so nothing can be asked of it at exit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.cli import main as cli
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli_run import BUSYBOX, IMAGE, make_image  # noqa: E402

CHECKOUT = Path(__file__).resolve().parents[5]
DOCKERLESS = str(CHECKOUT / "bin" / "dockerless")
MU = "ansible_collections.dockerless.containers.plugins.module_utils."
# What a container start of an image in the store must not import: the registry client and what it brings
# (HTTP, TLS, certifi), the pull engine, the store's full reader, the progress board, argparse (and gettext),
# site, typing, and what bin/dockerless needs only in a checkout without .build/collections (shutil, tempfile);
# nor the OCI document parser (image.oci: the platform check of a stored image is image.reference's).
NEVER_ON_START = (MU + "registry.client", MU + "image.pull", MU + "cli.progress", MU + "image.store", "argparse",
                  "gettext", "site", "typing", "http.client", "ssl", "certifi", "requests", "urllib.request",
                  "json", "shutil", "tempfile", "dataclasses", "concurrent.futures", MU + "image.oci")


def root_only(test):
    """Starts containers on the real kernel: root and Debian's busybox-static."""
    test = pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)")(test)
    test = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")(test)
    return pytest.mark.root(test)


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def imports_of(*args: str, store: str, **env_vars: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``bin/dockerless ARGS`` with ``--store`` as a user would (the test's python as DOCKERLESS_PYTHON, no
    proxy unless ``env_vars`` sets one); returns the process and the names of the modules it imported."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", DOCKERLESS_PYTHON=sys.executable, DOCKERLESS_STORE=store)
    for name in ("PYTHONDONTWRITEBYTECODE", *PROXY_VARIABLES):
        env.pop(name, None)
    env.update(env_vars)
    proc = subprocess.run([DOCKERLESS, *args], capture_output=True, text=True, env=env, timeout=60, check=False)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and line.count("|") == 2}
    modules.discard("package")  # the header line
    return proc, modules


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("fast-store"))
    make_image(root)
    return root


@root_only
def test_run_of_a_stored_image_imports_no_registry_and_no_argparse(store):
    proc, modules = imports_of("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo started; exit 3",
                               store=store)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout == "started\n"
    assert MU + "runtime.containers" in modules and MU + "runtime.image" in modules, sorted(modules)
    assert sorted(m for m in NEVER_ON_START if m in modules) == []
    assert sorted(m for m in modules if m.startswith(MU + "registry.")) == []  # no unit of the registry room
    assert sorted(m for m in modules if m.split(".")[0] in ("email", "http", "urllib", "urllib3", "idna")) == []


@root_only
def test_run_dns_and_add_host_reach_the_containers_etc_files(store):
    proc, modules = imports_of("run", "--rm", "--dns", "192.0.2.1", "--dns-search", "svc.example", "--add-host",
                               "db:10.0.0.5", IMAGE, "sh", "-c", "cat /etc/resolv.conf /etc/hosts; hostname",
                               store=store)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["nameserver 192.0.2.1", "search svc.example"]
    assert "10.0.0.5\tdb" in lines and len(lines[-1]) == 12
    assert any(line.startswith("172.17.0.") and line.endswith(f"\t{lines[-1]}") for line in lines), lines
    assert "argparse" not in modules          # the fast reader took the new options itself


@root_only
def test_run_on_a_bridge_keeps_the_start_path_light(store):
    """The default network as root (bridge): the network room's units come, nothing heavy (the records are JSON:
    json is the one addition to a start without network), and no ``re``, even naming networks."""
    proc, modules = imports_of("run", "--rm", "--network", "bridge", IMAGE, "sh", "-c", "ip -4 -o addr show eth0",
                               store=store)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert " eth0 " in proc.stdout and "inet 172.17.0." in proc.stdout
    assert {MU + "network.attach", MU + "network.networks", MU + "network.rtnetlink"} <= modules
    assert sorted(m for m in NEVER_ON_START if m in modules and m != "json") == []
    assert "re" not in modules and "argparse" not in modules and "ipaddress" not in modules


def loaders_of(stderr: str) -> dict[str, str]:
    """``{module: its loader's class}`` from ``python -v``'s "import 'NAME' # <LOADER ...>" lines."""
    found = {}
    for line in stderr.splitlines():
        if line.startswith("import '") and "' # <" in line:
            name, _sep, loader = line[len("import '"):].partition("' # <")
            found[name] = loader.split()[0].rsplit(".", 1)[-1]
    return found


@root_only
def test_a_second_run_takes_the_engine_from_the_start_bundle(store):
    """The first run of a checkout (or after an edit) writes module_utils/__pycache__'s start bundle when it
    loaded modules the bundle lacks; the next run loads the whole start path from it (runtime/boot.py)."""
    argv = ("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "exit 5")
    for _round in range(2):
        proc, _modules = imports_of(*argv, store=store, PYTHONVERBOSE="1")
        assert proc.returncode == 5, proc.stderr[-2000:]
    loaders = loaders_of(proc.stderr)
    engine = {name: loader for name, loader in loaders.items() if name.startswith(MU)}
    assert engine[MU + "runtime.containers"] == "StartBundle", engine
    assert engine[MU + "cli.main"] == "StartBundle"
    # Only what bin/dockerless imports to install the bundle comes the usual way (and the namespace packages).
    assert sorted(n for n, loader in engine.items() if loader != "StartBundle" and "NamespaceLoader" not in loader) \
        == [MU + "runtime", MU + "runtime.boot"]


@root_only
def test_exec_and_run_share_the_bundle(store):
    """exec's modules join the bundle a run wrote: one file for both, each module unmarshalled only when imported."""
    name = "bundle-" + os.urandom(4).hex()
    subprocess.run([DOCKERLESS, "run", "-d", "--name", name, "--store", store, IMAGE, "sleep", "60"],
                   capture_output=True, check=True, timeout=60, env=dict(os.environ, DOCKERLESS_PYTHON=sys.executable))
    try:
        for _round in range(2):
            proc, _modules = imports_of("exec", name, "true", store=store, PYTHONVERBOSE="1")
            assert proc.returncode == 0, proc.stderr[-2000:]
        assert loaders_of(proc.stderr)[MU + "runtime.exec"] == "StartBundle"
        proc, _modules = imports_of("run", "--rm", "--network", "none", IMAGE, "true", store=store, PYTHONVERBOSE="1")
        loaders = loaders_of(proc.stderr)
        assert loaders[MU + "runtime.containers"] == "StartBundle" and MU + "runtime.exec" not in loaders
    finally:
        subprocess.run([DOCKERLESS, "rm", "-f", "--store", store, name], capture_output=True, check=False,
                       timeout=60, env=dict(os.environ, DOCKERLESS_PYTHON=sys.executable))


@root_only
def test_missing_layer_folders_are_made_from_blobs_without_the_pull_engine(tmp_path):
    """A built image has its layer blob only; its folder is made at the first start, with no registry code."""
    root = str(tmp_path / "s")
    make_image(root)
    store = Store(root)
    layer = store.layer_dir(store.image(IMAGE).layers[0]["diff_id"])
    shutil.rmtree(layer)
    proc, modules = imports_of("run", "--rm", "--pull", "never", IMAGE, "cat", "/etc/group", store=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("root:x:0:")
    assert os.path.isdir(layer)
    assert MU + "image.layers.store_layers" in modules
    assert [m for m in (MU + "registry.client", MU + "image.pull", "http.client", "ssl", "site") if m in modules] == []
    # and with the default --pull missing: the blobs are all there, so no pull either
    shutil.rmtree(layer)
    proc, modules = imports_of("run", "--rm", IMAGE, "true", store=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.isdir(layer)
    assert [m for m in (MU + "registry.client", MU + "image.pull", "site") if m in modules] == []


def test_an_image_to_pull_gets_the_pull_engine_and_site_packages_only_behind_a_proxy(tmp_path):
    """``run`` and ``pull`` start without site (-S). A pull needs the pull engine; site-packages come back (before
    requests is imported) only behind an HTTP proxy, where requests carries the traffic. No registry listens on
    127.0.0.1:9 and no proxy on 127.0.0.1:9 either (loopback registries are reached directly even then, so the
    proxied pull asks for registry.example.invalid): every pull fails, naming the registry."""
    for argv in (["run", "--rm", "--timeout", "5", "127.0.0.1:9/nothing/here:1", "true"],
                 ["pull", "--timeout", "5", "127.0.0.1:9/nothing/here:1"]):
        proc, modules = imports_of(*argv, store=str(tmp_path / "empty"))
        assert proc.returncode == (125 if argv[0] == "run" else 1), proc.stderr[-2000:]
        assert "127.0.0.1:9" in proc.stderr
        assert MU + "image.pull" in modules and MU + "registry.client" in modules
        assert "site" not in modules and "requests" not in modules
        # a pull that asks the registry (the no-change pull is one HEAD): no dataclasses (inspect, ast, dis),
        # typing, thread pool, progress board (not a terminal) or argparse (cli.parse_run_fast) either
        assert [m for m in ("dataclasses", "inspect", "typing", "concurrent.futures", "shutil", "subprocess", "argparse",
                            MU + "cli.progress")
                if m in modules] == []
    # behind a proxy (the same code for run's pull): urllib3/requests from site-packages, site first
    proc, modules = imports_of("pull", "--timeout", "2", "registry.example.invalid/nothing/here:1",
                               store=str(tmp_path / "empty"), HTTPS_PROXY="http://127.0.0.1:9",
                               HTTP_PROXY="http://127.0.0.1:9", NO_PROXY="")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "registry.example.invalid" in proc.stderr
    assert "site" in modules and "urllib3" in modules, proc.stderr[-2000:]


def test_build_and_push_start_without_site(tmp_path):
    """``build`` (stdlib-only) and ``push`` start with ``python -S`` as ``pull`` does: the build makes its image,
    and a push to a registry that is not there fails naming it, neither having loaded site or requests."""
    root = str(tmp_path / "store")
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    proc, modules = imports_of("build", "--file", f"{src}:/hello.txt", "--source-date-epoch", "0", "test/hello:1",
                               store=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test/hello:1" in proc.stdout
    assert Store(root).image("docker.io/test/hello:1").layers
    assert "site" not in modules and "requests" not in modules
    # parse_run_fast reads build's command line: no argparse, and none of re, enum and locale it brings
    assert [m for m in ("argparse", "gettext", "re", "enum", "locale") if m in modules] == []
    proc, modules = imports_of("push", "--timeout", "5", "--repository", "127.0.0.1:9/nothing/here:1", "test/hello:1",
                               store=root)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "127.0.0.1:9" in proc.stderr
    assert MU + "image.push" in modules
    assert "site" not in modules and "requests" not in modules


# What ``dockerless exec`` of a running container must not import, beyond NEVER_ON_START: ``re`` (and the enum,
# functools and collections it brings) through json, the init's rootfs work and the layer code behind it, the
# one-shot and named-container engine (containers.py, the spec, the container's /etc files), types, and without
# -t the terminal's modules.
NEVER_ON_EXEC = NEVER_ON_START + ("re", "enum", "functools", "collections", "types", MU + "image.store",
                                  MU + "runtime.init_sequence", MU + "runtime.rootfs", MU + "image.layers.whiteouts",
                                  MU + "runtime.containers", MU + "runtime.spec", MU + "network.etc_files",
                                  "termios", "tty")


@root_only
def test_exec_imports_only_what_entering_a_container_needs(store):
    name = f"fast-exec-{os.getpid()}"
    env = dict(os.environ, DOCKERLESS_PYTHON=sys.executable)
    subprocess.run([DOCKERLESS, "run", "-d", "--name", name, "--store", store, IMAGE, "sleep", "300"], env=env,
                   capture_output=True, check=True, timeout=60)
    try:
        proc, modules = imports_of("exec", name, "sh", "-c", "echo in $(hostname); exit 4", store=store)
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert proc.stdout.startswith("in ")
        assert MU + "runtime.exec" in modules, sorted(modules)
        assert sorted(m for m in NEVER_ON_EXEC if m in modules) == []
        assert sorted(m for m in modules if m.startswith(MU + "registry.")) == []
    finally:
        subprocess.run([DOCKERLESS, "rm", "-f", "--store", store, name], env=env, capture_output=True, check=False,
                       timeout=60)


def test_run_with_help_still_goes_to_argparse():
    proc, modules = imports_of("run", "--help", store="/nonexistent")
    assert proc.returncode == 0
    assert "usage: dockerless run" in proc.stdout and "--pids-limit" in proc.stdout
    assert "argparse" in modules


# --- parse_run_fast against argparse ------------------------------------------------------------------------


def _subparser(name: str):
    parser = cli.build_parser("dockerless")
    sub = next(a for a in parser._actions if a.dest == "subcommand")
    return parser, sub.choices[name]


@pytest.mark.parametrize("subcommand", sorted(cli._FAST_SUBCOMMANDS))
def test_the_table_is_the_subcommands_parser(subcommand):
    """Every option of the argparse parser of ``run`` and of ``pull``, with its dest, kind, type, choices and
    default, is in cli._RUN_OPTIONS / cli._PULL_OPTIONS, and nothing else: an option added to one and not the
    other, or a default changed in one only, fails here."""
    _parser, sub = _subparser(subcommand)
    options, defaults, positionals = cli._FAST_SUBCOMMANDS[subcommand]
    declared = {}
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        name = type(action).__name__
        if name == "_StoreTrueAction":
            kind = "flag"
        elif name == "_AppendAction":
            kind = "append"
        elif action.choices:
            kind = tuple(action.choices)
        else:
            kind = action.type or str
        if kind is cli.parse_restart:  # argparse's wrapper of restart_value (its own message for a mistake)
            kind = cli.restart_value
        declared[tuple(sorted(action.option_strings))] = (action.dest, kind, action.default)
    table = {}
    for strings, dest, kind in options:
        default = False if kind == "flag" else defaults.get(dest)
        if dest == "store":
            default = os.environ.get(cli.ENV_STORE)
        if dest == "ca_path":
            default = os.environ.get(cli.ENV_CA_PATH)
        table[tuple(sorted(strings))] = (dest, kind, default)
    assert table == declared
    found = [(a.dest, a.nargs) for a in sub._actions if not a.option_strings]
    expected = {"image+command": [("image", None), ("command", "...")],
                "container+command": [("container", None), ("command", "...")]}.get(positionals, [("name", None)])
    assert found == expected


FAST = [
    ["run", "busybox"],
    ["run", "--rm", "127.0.0.1:5000/library/busybox:latest", "/bin/true"],
    ["run", "-it", "busybox", "sh"],
    ["run", "-i", "-q", "--pull", "never", "busybox", "cat", "-n", "--rm", "-e", "X"],
    ["run", "-e", "A=1", "-eB", "--env=C=3", "-e", "D", "-v", "/srv:/data:ro", "--volume=/a:/b", "busybox"],
    ["run", "--store", "/tmp/s", "--store=/tmp/t", "--network", "host", "--isolation=chroot", "busybox", "id"],
    ["run", "-d", "--name", "web", "--restart", "on-failure", "--memory", "64m", "-m", "32m", "--cpus", "0.5",
     "--cpu-weight", "100", "--pids-limit=50", "--memory-swap", "128m", "busybox"],
    ["run", "--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--privileged", "--read-only", "--ulimit",
     "nofile=1024:2048", "--tmpfs", "/run:size=1m", "-w", "/tmp", "-u", "nobody", "--hostname", "h", "busybox"],
    ["run", "--entrypoint", "[\"sh\", \"-c\"]", "--platform", "linux/amd64", "--timeout", "5", "--insecure",
     "--ca-path", "/ca.pem", "--username", "me", "--auth-file", "/a.json", "--password-stdin", "busybox", "x"],
    ["run", "-dq", "-wfolder", "busybox", "-d", "-e", "X=1"],
    ["run", "--name", "", "busybox"],
    ["run", "--security-opt", "seccomp=unconfined", "--security-opt=seccomp=/p.json", "busybox"],
    ["run", "-", "x"],
    ["run", "-d", "--restart", "on-failure:3", "--stop-signal", "SIGUSR1", "--stop-timeout=2", "busybox"],
    ["run", "-d", "--restart=unless-stopped", "busybox"],
    ["run", "--dns", "192.0.2.1", "--dns=192.0.2.2", "--dns-search", "example.org", "--add-host", "db:10.0.0.5",
     "--add-host=v6=2001:db8::1", "busybox"],
    ["run", "-p", "8080:80", "--publish=127.0.0.1::53/udp", "-p80", "-dp", "9000-9001:90-91", "busybox"],
    ["pull", "busybox"],
    ["pull", "--dest", "/tmp/r", "--dest-mode", "0755", "busybox"],
    ["pull", "-q", "--pull", "missing", "--platform", "linux/arm64", "--dest", "/tmp/r", "alpine:3.20"],
    ["pull", "alpine:3.20", "--json", "--store=/s", "--timeout", "5", "--insecure", "--ca-path", "/c.pem"],
    ["pull", "--username", "me", "--password-stdin", "--auth-file", "/a.json", "x", "-q"],
    ["build", "--executable", "/bin/bash", "--executable", "/bin/ls", "--source-date-epoch", "946684800", "b:1"],
    ["build", "--store=/s", "-q", "--json", "--file", "./a:/a:0755", "--file=/b:/b", "--rootfs", "/r", "--base", "x",
     "-e", "A=1", "-eB", "--entrypoint", "[\"/bin/sh\", \"-c\"]", "--cmd", "/app", "-w", "/srv", "-u", "1:1",
     "--label", "a=b", "--expose", "80/tcp", "--volume", "/data", "--compression", "zstd", "--compression-level",
     "3", "app:1"],
    ["build", "app:1", "--compression=gzip", "-wsrv"],
    ["exec", "web", "/bin/true"],
    ["exec", "-it", "-e", "A=1", "-eB", "--env=C=3", "-u", "app", "-w/srv", "--store", "/s", "web", "sh", "-c", "x -i"],
    ["exec", "-d", "--user=0:0", "--workdir", "/tmp", "web", "sleep", "9", "-t"],
]
SLOW = [  # parse_run_fast leaves these to argparse (help, abbreviations, "--", "=" in short options, bad values)
    ["run", "--help"], ["run", "-h", "busybox"], ["run", "--priv", "busybox"], ["run", "--", "busybox"],
    ["run", "busybox", "--", "ls"], ["run", "-e=A=1", "busybox"], ["run", "-eB=2", "busybox"], ["run", "--memory-swap", "-1", "busybox"],
    ["run", "--cpus", "half", "busybox"], ["run"], ["run", "-q"],
    ["run", "--rm=yes", "busybox"], ["run", "-d", "--restart", "sometimes", "busybox"],
    ["run", "-d", "--restart", "always:2", "busybox"], ["run", "-x", "busybox"], ["--version"], [],
    ["run", "-e"], ["run", "--name", "-d", "busybox"], ["push", "busybox"],
    ["pull"], ["pull", "a", "b"], ["pull", "--pull", "never", "a"], ["pull", "-h"], ["pull", "--dest"],
    ["pull", "-qj", "a"], ["pull", "--", "a"],
    ["exec", "-h"], ["exec"], ["exec", "-i"], ["exec", "--", "web", "true"], ["exec", "-x", "web", "true"],
    ["exec", "-e"], ["exec", "-q", "web", "true"],
    ["build"], ["build", "-h"], ["build", "a", "b"], ["build", "--compression", "xz", "a"], ["build", "--exec", "x", "a"],
    ["build", "--source-date-epoch", "soon", "a"], ["build", "--cmd", "-x", "a"], ["build", "--", "a"],
]


@pytest.mark.parametrize("argv", FAST, ids=[" ".join(a)[:60] for a in FAST])
def test_fast_reading_equals_argparse(argv, monkeypatch):
    monkeypatch.setenv(cli.ENV_STORE, "/env/store")
    parser, _sub = _subparser(argv[0])
    fast = cli.parse_run_fast(argv)
    assert fast is not None
    assert vars(fast) == vars(parser.parse_args(argv))


@pytest.mark.parametrize("argv", SLOW, ids=[" ".join(a)[:60] or "(none)" for a in SLOW])
def test_the_rest_goes_to_argparse(argv):
    assert cli.parse_run_fast(argv) is None


@root_only
def test_security_opt_seccomp_sets_the_filter(store):
    """``--security-opt seccomp=…`` (what the seccomp cost rows of ``make bench`` compare): the kernel's view."""
    seen = {}
    for mode in ("default", "unconfined"):
        proc, _modules = imports_of("run", "--rm", "--security-opt", f"seccomp={mode}", IMAGE,
                                    "grep", "^Seccomp:", "/proc/self/status", store=store)
        assert proc.returncode == 0, proc.stderr[-2000:]
        seen[mode] = proc.stdout.split()
    assert seen == {"default": ["Seccomp:", "2"], "unconfined": ["Seccomp:", "0"]}
    proc, _modules = imports_of("run", "--rm", "--security-opt", "apparmor=x", IMAGE, "true", store=store)
    assert proc.returncode == 2 and "only seccomp=default, seccomp=unconfined" in proc.stderr


SUBCOMMAND_LINES = [
    ["pull", "-q", "--pull", "missing", "--platform", "linux/arm64", "--dest", "/tmp/r", "alpine:3.20"],
    ["push", "--repository", "127.0.0.1:5000/x:1", "--tag", "latest", "app:1"],
    ["build", "--executable", "/bin/true", "--cmd", "/bin/true", "x:1"],
    ["run", "-d", "--name", "web", "busybox"], ["ps", "-a"], ["stop", "-t", "0", "web"], ["rm", "-f", "web"],
    ["images", "--json"], ["export-wsl", "--fix", "all", "debian:12", "/tmp/d.wsl"],
]


@pytest.mark.parametrize("argv", SUBCOMMAND_LINES, ids=[a[0] for a in SUBCOMMAND_LINES])
def test_a_parser_of_one_subcommand_reads_it_as_the_whole_parser(argv, capsys):
    whole = cli.build_parser("dockerless")
    one = cli._parser_for("dockerless", argv)
    sub = next(a for a in one._actions if a.dest == "subcommand")
    assert list(sub.choices) == [argv[0]]  # the others were not built
    assert vars(one.parse_args(argv)) == vars(whole.parse_args(argv))
    for parser in (one, whole):
        with pytest.raises(SystemExit):
            parser.parse_args([argv[0], "--help"])
    first, second = capsys.readouterr().out.split("usage:")[1:]
    assert first == second


def test_anything_else_gets_every_subcommand():
    for argv in ([], ["--version"], ["-h"], ["image-download", "x"], ["nosuch"]):
        sub = next(a for a in cli._parser_for("dockerless", argv)._actions if a.dest == "subcommand")
        assert "pull" in sub.choices and "export-wsl" in sub.choices


@pytest.mark.parametrize("columns", [None, "100", "0", "x"])
def test_help_width_is_shutils(columns, monkeypatch):
    """The parsers' formatter takes its width as argparse would from shutil, without importing shutil."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns
