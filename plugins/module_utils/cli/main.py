# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command-line front: ``dockerless <subcommand>`` and the seed's four scripts, over the same engine the
modules use (pull, push, build, runtime, wsl). Argument parsing and the subcommands live here so they can be
imported and tested; ``bin/dockerless`` only finds the collection and calls ``main()``.

``main()`` dispatches on the name it was called by, like a multi-call binary: ``image-download``,
``image-upload``, ``run`` and ``run-chroot`` (the seed's names, ``bin/`` wrappers) get their own small parsers;
anything else is ``dockerless`` with subcommands. Exit codes (docs/cli.md):

* 0 success; 1 an operation failed (registry, store, build, export: the message says what and what next);
  2 bad usage; 130 interrupted (Ctrl-C);
* ``run``: the container's exit code (128 + signal number when it was killed), or 125 when the container could
  not be set up or its command not executed.
"""

from __future__ import annotations

import os
import sys

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    DockerlessError,
    RuntimeSetupError,
)

# The names below only annotate (annotations are not evaluated here). ``typing``, ``json``, ``shlex`` and the
# registry client are imported where they are used: ``dockerless run`` of an image in the store starts a
# container in less time than importing them takes (tests/unit/.../test_cli_imports.py holds the line).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any


class _Argparse:
    """``argparse``, imported on first use. Importing it and building the parsers costs about as much CPU as a
    container start (gettext, locale, a HelpFormatter per option); ``dockerless run`` of the usual form is read
    by :func:`parse_run_fast` instead (see there)."""

    def __getattr__(self, name: str):
        import argparse as module

        return getattr(module, name)


argparse = _Argparse()

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_SETUP = 125
EXIT_INTERRUPTED = 130

SEED_DIR = os.path.join("~", ".docker-internals")
SEED_COMMANDS = ("image-download", "image-upload", "run", "run-chroot")
ENV_STORE = "DOCKERLESS_STORE"
ENV_CA_PATH = "DOCKERLESS_CA_PATH"
WSL_FIXES = ("all", "resolv_conf", "root_user", "shadow_hashes", "config_permissions", "kernel", "systemd_units")
# A folder's content as the image root: build.py puts SRC *inside* a dest that ends with "/", and "/." is the
# root itself (image_path drops "."), so the folder's children land at /.
ROOT_DEST = "/."
_COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class UsageError(Exception):
    """Options that parse but can't be used together (exit code 2)."""


# ---------------------------------------------------------------------------------------------------------------
# Small helpers (pure, unit-tested)


def collection_version(root: str = _COLLECTION_ROOT) -> str:
    """The collection's version: MANIFEST.json of an installed collection, else galaxy.yml of a checkout."""
    import json
    import re

    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            match = re.search(r"^version:\s*['\"]?([^\s'\"]+)", handle.read(), re.M)
            return match.group(1) if match else "unknown"
    except OSError:
        return "unknown"


def seed_dest(name: str, home: str | None = None) -> str:
    """The seed's folder for an image: ``~/.docker-internals/<repository>/<tag>`` (the registry host is not part
    of it, so ``127.0.0.1:5000/library/alpine:latest`` and ``library/alpine:latest`` share a folder)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference

    ref = parse_reference(name)
    leaf = ref.tag or (ref.digest or "latest").replace(":", "-")
    base = os.path.join(home, ".docker-internals") if home else os.path.expanduser(SEED_DIR)
    return os.path.join(base, *ref.repository.split("/"), leaf)


def parse_env(items: list[str] | None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``-e KEY=VALUE`` sets; ``-e KEY`` copies the caller's value and is skipped when unset (Docker's rule)."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"-e {item!r}: the variable name is empty; write -e NAME=value.")
        if sep:
            out[key] = value
        elif key in environ:
            out[key] = environ[key]
    return out


def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``KEY=VALUE`` options (labels): both parts required."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise UsageError(f"{what} {item!r}: expected KEY=VALUE.")
        out[key] = value
    return out


def parse_command(text: str | None, what: str) -> list[str] | None:
    """A JSON list (``'["sh", "-c", "x"]'``) or a shell-like string (``'sh -c x'``)."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped.startswith("["):
        import json

        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise UsageError(f"{what} {text!r}: not valid JSON ({exc}). Write it like '[\"sh\", \"-c\", \"x\"]'.")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"{what} {text!r}: expected a JSON list of strings.")
        return value
    import shlex

    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{what} {text!r}: {exc}.")


def parse_file_item(text: str):
    """``SRC:DEST[:MODE]`` → build.FileSpec (owner/group stay 0, as image_build's default)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.build import FileSpec, parse_mode

    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(f"--file {text!r}: expected SRC:DEST or SRC:DEST:MODE, e.g. ./app:/usr/local/bin/app:0755.")
    mode = parse_mode(parts[2], f"--file {text!r}") if len(parts) == 3 else None
    return FileSpec(src=os.path.abspath(parts[0]), dest=parts[1], mode=mode)


def parse_wsl_conf(items: list[str] | None) -> dict[str, dict[str, str]]:
    """``SECTION.KEY=VALUE`` → ``{section: {key: value}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        left, sep, value = item.partition("=")
        section, dot, key = left.partition(".")
        if not sep or not dot or not section or not key:
            raise UsageError(f"{item!r}: expected SECTION.KEY=VALUE, e.g. boot.systemd=true.")
        out.setdefault(section, {})[key] = value
    return out


def restart_value(text: str) -> tuple[str, int]:
    """Docker's --restart: ``no``, ``always``, ``unless-stopped``, ``on-failure[:N]`` → (policy, retries);
    ValueError naming the mistake (parse_run_fast reads it without argparse)."""
    policy, sep, count = text.partition(":")
    if policy not in ("no", "always", "unless-stopped", "on-failure") or (sep and policy != "on-failure"):
        raise ValueError(f"{text!r}: use no, always, unless-stopped or on-failure[:N]")
    if sep and not (count.isdigit() and int(count) > 0):
        raise ValueError(f"{text!r}: N in on-failure:N is a number of restarts, 1 or more")
    return policy, int(count) if sep else 0


def parse_restart(text: str) -> tuple[str, int]:
    """restart_value for argparse, whose own message for a ValueError would not say what is wrong."""
    try:
        return restart_value(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def default_container_name(image: str) -> str:
    """``<image base name>-<6 hex>`` for ``run -d`` without ``--name``."""
    import re

    base = re.sub(r"[^A-Za-z0-9_.-]", "-", image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]) or "container"
    return f"{base[:100]}-{os.urandom(3).hex()}"


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [headers] + rows]
    return "\n".join(lines) + "\n"


class Output:
    """Where a subcommand writes: human lines (not with --quiet/--json), one JSON document (--json), or the
    single value scripts want (--quiet)."""

    def __init__(self, args: argparse.Namespace, stdout: IO[str], stderr: IO[str]):
        self.quiet = bool(getattr(args, "quiet", False))
        self.json = bool(getattr(args, "json", False))
        self.stdout = stdout
        self.stderr = stderr

    def info(self, text: str) -> None:
        if not self.quiet and not self.json:
            self.stdout.write(text if text.endswith("\n") else text + "\n")

    def value(self, text: str) -> None:
        """What --quiet prints (a digest, a name)."""
        if self.quiet and not self.json:
            self.stdout.write(text + "\n")

    def document(self, data: Any) -> None:
        if self.json:
            import json

            self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def progress_stream(self) -> IO[str] | None:
        return self.stdout if not self.quiet and not self.json and _on_terminal(self.stdout) else None


def _on_terminal(stream: IO[str] | None) -> bool:
    """cli_progress.wanted's rule (progress only on a terminal), without importing the progress board when
    the output is not a terminal."""
    try:
        if stream is None or not os.isatty(stream.fileno()):
            return False
    except (AttributeError, OSError, ValueError):
        return False
    from ansible_collections.dockerless.containers.plugins.module_utils.cli.progress import wanted

    return wanted(stream)


# ---------------------------------------------------------------------------------------------------------------
# Argument parsing

def _FORMATTER(prog: str, **kwargs):  # noqa: N802 - argparse's formatter_class: called with prog, as a class is
    # The width argparse would take from shutil.get_terminal_size(), without importing shutil (bz2, lzma,
    # fnmatch) for it: argparse makes a formatter for every option it adds.
    kwargs.setdefault("width", _terminal_columns() - 2)
    return argparse.RawDescriptionHelpFormatter(prog, **kwargs)


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal of sys.__stdout__, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _store_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, formatter_class=_FORMATTER)
    g = p.add_argument_group("store")
    g.add_argument("--store", default=os.environ.get(ENV_STORE),
                   help=f"store root (default: ${ENV_STORE}, else /var/lib/dockerless as root, "
                        "~/.local/share/dockerless otherwise)")
    return p


def _output_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, formatter_class=_FORMATTER)
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress; print only the digest or name")
    g.add_argument("--json", action="store_true", help="print one JSON document with the result")
    return p


def _registry_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, formatter_class=_FORMATTER)
    g = p.add_argument_group("registry",
                             "credentials: --username/--password-stdin, else DOCKER_USERNAME/DOCKER_PASSWORD, "
                             "else ~/.docker/config.json (or --auth-file)")
    g.add_argument("--username", help="registry user name")
    g.add_argument("--password-stdin", action="store_true",
                   help="read the password (or token) from the first line of stdin; never pass it as an argument")
    g.add_argument("--auth-file", help="a docker config.json to take credentials from")
    g.add_argument("--insecure", action="store_true",
                   help="allow plain http or an unverified certificate (loopback registries may use http anyway)")
    g.add_argument("--ca-path", default=os.environ.get(ENV_CA_PATH),
                   help=f"CA bundle that signs the registry's certificate (default: ${ENV_CA_PATH})")
    g.add_argument("--timeout", type=float, default=60, help="seconds per request (default: 60)")
    return p


def _platform_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False, formatter_class=_FORMATTER)
    p.add_argument("--platform", help="os/arch[/variant] to pick from a multi-platform image (default: this host)")
    return p


def _add_run_options(p: argparse.ArgumentParser, seed: bool = False) -> None:
    g = p.add_argument_group("container")
    g.add_argument("--name", help="name of a detached container (-d); default: IMAGE-<random>")
    g.add_argument("-d", "--detach", action="store_true",
                   help="run in the background under a supervisor; manage it with ps/stop/rm")
    if seed:
        g.add_argument("-i", "--interactive", action="store_true", default=True,
                       help="keep stdin attached (always on for this script)")
        g.add_argument("-t", "--tty", action="store_true", default=None,
                       help="allocate a pseudo-terminal (default: when stdin and stdout are terminals)")
    else:
        g.add_argument("-i", "--interactive", action="store_true", help="keep stdin attached")
        g.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal (needs a terminal)")
    g.add_argument("-e", "--env", action="append", metavar="KEY[=VALUE]",
                   help="set a variable; KEY alone copies it from this environment")
    g.add_argument("-v", "--volume", action="append", metavar="HOST:CONTAINER[:ro]", help="bind-mount a host path")
    g.add_argument("--tmpfs", action="append", metavar="PATH[:OPTIONS]", help="mount a tmpfs")
    g.add_argument("-w", "--workdir", help="working directory inside the container")
    g.add_argument("-u", "--user", help="user[:group] (names or ids of the image)")
    g.add_argument("--hostname", help="host name inside the container")
    g.add_argument("--entrypoint", help="replace the image's entrypoint (a JSON list or a string)")
    g.add_argument("--network", action="append", metavar="NETWORK",
                   help="none (own network namespace, loopback only), host (the host's network), bridge (the default "
                   "network; the default as root) or a network's name (repeat, or a comma list)")
    g.add_argument("--network-alias", action="append", metavar="ALIAS",
                   help="another name the container is resolved by on its user networks (repeat)")
    g.add_argument("--ip", metavar="ADDRESS", help="the container's IPv4 address on its first (user) network")
    g.add_argument("--dns", action="append", metavar="ADDRESS", help="nameserver of /etc/resolv.conf (repeat)")
    g.add_argument("--dns-search", action="append", metavar="DOMAIN",
                   help="search domain of /etc/resolv.conf (repeat; '.' for none)")
    g.add_argument("--add-host", action="append", metavar="NAME:ADDRESS", help="extra /etc/hosts entry (repeat)")
    g.add_argument("-p", "--publish", action="append", metavar="[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]",
                   help="publish a container port on the host (repeat; ranges, /udp; no HOST_PORT: a free one)")
    g.add_argument("--isolation", choices=["container", "chroot"], default="chroot" if seed == "chroot" else "container",
                   help="container: namespaces + pivot_root (default); chroot: only a private mount namespace "
                   "and chroot, NOT a security boundary (the host's processes, network and hostname; "
                   "CAP_SYS_CHROOT is dropped)")
    g.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    g.add_argument("--cap-add", action="append", metavar="CAP", help="add a capability (e.g. NET_ADMIN)")
    g.add_argument("--cap-drop", action="append", metavar="CAP", help="drop a capability (ALL drops every one)")
    g.add_argument("--privileged", action="store_true",
                   help="every capability, no masked paths, every device (no device controller, no nodev)")
    g.add_argument("--security-opt", action="append", metavar="seccomp=PROFILE",
                   help="seccomp=default (Docker's profile, the default), seccomp=unconfined (no filter) or "
                        "seccomp=/path/profile.json")
    g.add_argument("--ulimit", action="append", metavar="NAME=SOFT[:HARD]", help="resource limit, e.g. nofile=1024")
    g.add_argument("--restart", type=parse_restart, default=("no", 0), metavar="POLICY",
                   help="restart policy of a detached container: no, always, unless-stopped, on-failure[:N] "
                        "(N: restarts before giving up)")
    g.add_argument("--stop-signal", metavar="SIGNAL",
                   help="signal that stops the container (default: the image's StopSignal, else SIGTERM)")
    g.add_argument("--stop-timeout", type=int, default=10, metavar="SECONDS",
                   help="seconds between the stop signal and SIGKILL (default: 10)")
    g.add_argument("--pull", choices=["missing", "always", "never"], default="missing",
                   help="when to pull the image (default: missing)")
    g.add_argument("-q", "--quiet", action="store_true", help="no pull progress")
    g.add_argument("--rm", action="store_true",
                   help="remove the container when it exits (always so in the foreground; not with -d)")
    lim = p.add_argument_group("limits (cgroups v1 or v2)")
    lim.add_argument("--memory", "-m", help="memory limit, e.g. 256m")
    lim.add_argument("--memory-swap", help="memory + swap limit, e.g. 512m (-1: unlimited)")
    lim.add_argument("--cpus", type=float, help="CPU quota in cores, e.g. 0.5")
    lim.add_argument("--cpu-weight", type=int, help="relative CPU weight (1-10000)")
    lim.add_argument("--pids-limit", type=int, help="maximum number of processes")
    p.add_argument("image", help="image reference, e.g. 127.0.0.1:5000/library/busybox:latest")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments (default: the image's)")


class _Unbuilt:
    """Stands for the parser of a subcommand build_parser was told to leave out: every call is accepted and
    does nothing (add_argument, add_argument_group …)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self


def build_parser(prog: str = "dockerless", only: str | None = None) -> argparse.ArgumentParser:
    """The ``dockerless`` parser with its subcommands; with ``only``, that subcommand's parser alone (main() parses
    ``dockerless pull …`` with the pull parser only: argparse spends more time building the others' options,
    a HelpFormatter and gettext look-ups per option, than a no-change pull spends asking the registry)."""
    store, output, registry, platform = _store_parent(), _output_parent(), _registry_parent(), _platform_parent()
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=_FORMATTER,
        description="Pull, build, push and run container images with the Linux kernel and the registry API only "
                    "(the dockerless.containers engine).",
        epilog=_examples(
            f"{prog} pull 127.0.0.1:5000/library/busybox:latest",
            f"{prog} run -it 127.0.0.1:5000/library/busybox:latest sh",
            f"echo hi | {prog} run -i busybox cat",
            f"{prog} run -d --name web --memory 256m --cpus 0.5 127.0.0.1:5000/team/web:1",
            f"{prog} ps; {prog} stop web; {prog} rm web",
            "",
            "exit codes: 0 ok, 1 the operation failed, 2 bad usage, 130 interrupted;",
            "run: the container's exit code, or 125 when it could not be started.",
        ))
    parser.add_argument("--version", action="store_true", help="print the version and where the code is loaded from")
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    if only is not None:
        add_parser = sub.add_parser
        sub.add_parser = lambda name, **kwargs: add_parser(name, **kwargs) if name == only else _Unbuilt()

    p = sub.add_parser("pull", parents=[store, output, registry, platform], formatter_class=_FORMATTER,
                       help="pull an image into the store", description="Pull an image into the store, verifying "
                       "every digest, and unpack its layers. Shows per-layer progress on a terminal.",
                       epilog=_examples(f"{prog} pull alpine:3.20",
                                        f"{prog} pull --dest ./rootfs 127.0.0.1:5000/library/busybox:latest",
                                        f"{prog} pull -q --platform linux/arm64 127.0.0.1:5000/test/multi:1"))
    p.add_argument("--pull", choices=["always", "missing"], default="always",
                   help="always: ask the registry (default); missing: no network when the image is in the store")
    p.add_argument("--dest", help="also write the flattened root filesystem to this folder (made 0700)")
    _add_dest_mode(p)
    p.add_argument("name", help="image reference")

    p = sub.add_parser("push", parents=[store, output, registry], formatter_class=_FORMATTER,
                       help="push an image of the store to a registry",
                       description="Push an image of the store. Blobs the registry has are skipped, blobs of "
                       "another repository of the same registry are mounted, the rest is uploaded.",
                       epilog=_examples(f"{prog} push 127.0.0.1:5000/team/app:1",
                                        f"DOCKER_USERNAME=me DOCKER_PASSWORD=… {prog} push app:1 "
                                        "--repository docker.io/me/app:1.0 --tag latest"))
    p.add_argument("--repository", help="where to push, registry/path/name[:tag] (default: NAME itself)")
    p.add_argument("--tag", action="append", dest="tags", metavar="TAG", help="another tag for the same manifest")
    p.add_argument("name", help="image in the store")

    p = sub.add_parser("build", parents=[store, output], formatter_class=_FORMATTER,
                       help="build an image from host files and executables",
                       description="Build an image from host executables (with their shared libraries, found "
                       "without running them) and files. The same inputs give the same digest.",
                       epilog=_examples(f"{prog} build --executable /bin/bash --executable /bin/ls "
                                        "--cmd '[\"/bin/bash\"]' 127.0.0.1:5000/team/bash:1",
                                        f"{prog} build --base busybox --file ./app.sh:/app.sh:0755 --cmd /app.sh app:1",
                                        f"{prog} build --rootfs ~/.docker-internals/me/alpine/latest me/alpine:latest"))
    p.add_argument("--executable", action="append", dest="executables", metavar="PATH",
                   help="a host executable; its shared-library closure comes with it")
    p.add_argument("--file", action="append", dest="files", metavar="SRC:DEST[:MODE]", help="a host file or folder")
    p.add_argument("--rootfs", metavar="DIR", help="a whole folder as the image's root (files are stored as root:root)")
    p.add_argument("--base", help="base image in the store")
    p.add_argument("-e", "--env", action="append", metavar="KEY=VALUE", help="environment variable")
    p.add_argument("--entrypoint", help="entrypoint (a JSON list or a string)")
    p.add_argument("--cmd", help="command (a JSON list or a string)")
    p.add_argument("-w", "--workdir", help="working directory")
    p.add_argument("-u", "--user", help="user[:group]")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="label")
    p.add_argument("--expose", action="append", dest="exposed_ports", metavar="PORT[/PROTO]", help="exposed port")
    p.add_argument("--volume", action="append", dest="volumes", metavar="PATH", help="volume path of the config")
    p.add_argument("--compression", choices=["gzip", "zstd"], default="gzip", help="layer compression")
    p.add_argument("--compression-level", type=int, help="compression level")
    p.add_argument("--source-date-epoch", type=int, help="timestamp of every file (default: $SOURCE_DATE_EPOCH or 0)")
    p.add_argument("name", help="image name to build into, name:tag")

    p = sub.add_parser("run", parents=[store, registry, platform], formatter_class=_FORMATTER,
                       help="run a command in a new container",
                       description="Run a command in a new container. In the foreground the container uses this "
                       "terminal or these pipes and is removed when it exits; with -d it is named and supervised.",
                       epilog=_examples(f"{prog} run -it 127.0.0.1:5000/library/busybox:latest sh",
                                        f"echo hi | {prog} run -i busybox cat",
                                        f"{prog} run --memory 64m --pids-limit 50 -e MODE=test -v /srv/data:/data busybox env",
                                        f"{prog} run -d --name web --restart on-failure 127.0.0.1:5000/team/web:1",
                                        f"{prog} run --isolation chroot debian:12 dpkg -l"))
    _add_run_options(p)

    p = sub.add_parser("exec", parents=[store], formatter_class=_FORMATTER,
                       help="run a command in a running named container",
                       description="Run a command inside a running named container: its namespaces, cgroup, "
                       "capabilities, no_new_privs and seccomp filter. Exits with the command's exit code.",
                       epilog=_examples(f"{prog} exec -it web sh", f"{prog} exec -u app -w /srv web ls -l",
                                        f"echo 'SELECT 1;' | {prog} exec -i db psql -U postgres"))
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (default: /dev/null)")
    p.add_argument("-t", "--tty", action="store_true", help="a pseudo-terminal for the command")
    p.add_argument("-d", "--detach", action="store_true", help="start it and return at once")
    p.add_argument("-e", "--env", action="append", metavar="K=V", help="environment variable (repeatable)")
    p.add_argument("-u", "--user", help="user[:group] in the container (default: the container's)")
    p.add_argument("-w", "--workdir", help="working directory in the container (default: the container's)")
    p.add_argument("container", help="container name")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")

    p = sub.add_parser("ps", parents=[store, output], formatter_class=_FORMATTER, help="list named containers",
                       description="List named (detached) containers: running ones, or all with -a.",
                       epilog=_examples(f"{prog} ps", f"{prog} ps -a --json"))
    p.add_argument("-a", "--all", action="store_true", help="also stopped and exited containers")

    p = sub.add_parser("start", parents=[store, output], formatter_class=_FORMATTER, help="start named containers",
                       description="Start stopped containers. With --all (at boot, on hosts without systemd): "
                       "every container whose restart policy says so, by Docker's daemon rules: always; "
                       "unless-stopped unless the user stopped it; on-failure if its last run failed.",
                       epilog=_examples(f"{prog} start web", f"{prog} start --all",
                                        f"@reboot root {prog} start --all   (a crontab line)"))
    p.add_argument("-a", "--all", action="store_true", help="every container its restart policy says should run")
    p.add_argument("--by-policy", action="store_true",
                   help="the named containers only if their restart policy says so, as --all decides (what a "
                        "container's systemd unit runs at boot and after its supervisor was killed)")
    p.add_argument("--check", action="store_true",
                   help="with --by-policy or --all: start nothing; exit 0 when every one would start, 1 with the "
                        "reason when one stays down (the unit's ExecCondition)")
    p.add_argument("--pid-file", metavar="FILE", help="write the supervisor's PID there (one NAME; systemd's PIDFile)")
    p.add_argument("names", nargs="*", metavar="NAME")

    p = sub.add_parser("stop", parents=[store, output], formatter_class=_FORMATTER, help="stop named containers",
                       description="The stop signal (the image's StopSignal, else SIGTERM) to the container's PID "
                       "1, SIGKILL after the timeout. A stopped container is not restarted by its policy.",
                       epilog=_examples(f"{prog} stop web", f"{prog} stop -t 0 web worker"))
    p.add_argument("-t", "--time", type=float, help="seconds before SIGKILL (default: the container's stop_timeout)")
    p.add_argument("names", nargs="+", metavar="NAME")

    p = sub.add_parser("kill", parents=[store, output], formatter_class=_FORMATTER,
                       help="send a signal to named containers",
                       description="Send a signal (default SIGKILL) to the container's PID 1. After SIGKILL or "
                       "the container's stop signal it is not restarted by its policy.",
                       epilog=_examples(f"{prog} kill web", f"{prog} kill -s HUP web"))
    p.add_argument("-s", "--signal", default="SIGKILL", help="signal name or number (default: SIGKILL)")
    p.add_argument("names", nargs="+", metavar="NAME")

    p = sub.add_parser("rm", parents=[store, output], formatter_class=_FORMATTER, help="remove named containers",
                       description="Remove containers with their writable layer, logs and cgroup.",
                       epilog=_examples(f"{prog} rm web", f"{prog} rm -f web"))
    p.add_argument("-f", "--force", action="store_true", help="kill a running container (SIGKILL) first")
    p.add_argument("names", nargs="+", metavar="NAME")

    p = sub.add_parser("port", parents=[store, output], formatter_class=_FORMATTER,
                       help="list a container's published ports",
                       description="The published ports of a named container, as docker port prints them.",
                       epilog=_examples(f"{prog} port web", f"{prog} port web 80/tcp"))
    p.add_argument("container", help="container name")
    p.add_argument("port", nargs="?", metavar="PORT[/PROTO]", help="only this container port")

    # The options belong to the commands (network ls --json): a subparser's defaults would overwrite the parent's.
    p = sub.add_parser("network", formatter_class=_FORMATTER,
                       help="create, list and remove bridge networks",
                       description="Bridge networks for containers (as container_network makes them): their record "
                       "in the store, their firewall rules in the nftables table inet dockerless.",
                       epilog=_examples(f"{prog} network create app", f"{prog} network create --subnet "
                                        "172.30.0.0/16 --internal backend", f"{prog} network ls",
                                        f"{prog} network rm app"))
    net = p.add_subparsers(dest="network_command", metavar="COMMAND")
    net.required = True
    q = net.add_parser("create", parents=[store, output], formatter_class=_FORMATTER, help="create a network")
    q.add_argument("--subnet", help="IPv4 subnet, CIDR (default: the next free /16 of 172.17-31.0.0)")
    q.add_argument("--gateway", help="the bridge's address (default: the subnet's first)")
    q.add_argument("--internal", action="store_true", help="no route out of the network")
    q.add_argument("name", help="network name")
    q = net.add_parser("ls", parents=[store, output], formatter_class=_FORMATTER, help="list networks")
    q = net.add_parser("rm", parents=[store, output], formatter_class=_FORMATTER,
                       help="remove networks (refused while containers are attached)")
    q.add_argument("names", nargs="+", metavar="NAME")

    p = sub.add_parser("images", parents=[store, output], formatter_class=_FORMATTER, help="list images in the store",
                       description="List the images of the store (never contacts a registry).",
                       epilog=_examples(f"{prog} images", f"{prog} images --json alpine:3.20"))
    p.add_argument("names", nargs="*", metavar="NAME", help="only these images")

    p = sub.add_parser("export-wsl", parents=[store, output], formatter_class=_FORMATTER,
                       help="export an image as a WSL distribution",
                       description="Write an image as a rootfs .tar, .tar.gz or .wsl for wsl --import / --install, "
                       "checked against Microsoft's rules for custom distributions.",
                       epilog=_examples(f"{prog} export-wsl alpine:3.20 /srv/alpine.tar.gz",
                                        f"{prog} export-wsl --default-user dev --wsl-conf boot.systemd=true "
                                        "--fix all debian:12 /mnt/c/wsl/debian.wsl"))
    p.add_argument("--format", choices=["tar", "tar.gz", "wsl"], help="default: from DEST's extension")
    p.add_argument("--default-user", help="user WSL starts as (created when missing)")
    p.add_argument("--default-uid", type=int, default=1000, help="uid of a created default user (default: 1000)")
    p.add_argument("--wsl-conf", action="append", metavar="SECTION.KEY=VALUE", help="a setting of /etc/wsl.conf")
    p.add_argument("--distribution-conf", action="append", metavar="SECTION.KEY=VALUE",
                   help="a setting of /etc/wsl-distribution.conf")
    p.add_argument("--fix", action="append", choices=WSL_FIXES, help="fix this rule instead of warning")
    p.add_argument("--compression-level", type=int, default=6, help="gzip level (default: 6)")
    p.add_argument("--source-date-epoch", type=int, help="mtime of every entry")
    p.add_argument("--mode", default="0600", help="permissions of DEST (default: 0600)")
    p.add_argument("image", help="image in the store")
    p.add_argument("dest", help="file to write: *.tar, *.tar.gz or *.wsl")
    return parser


def _add_dest_mode(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dest-mode", default="0700", metavar="MODE",
                   help="mode of the root filesystem folder's top (default: 0700, only its owner gets in). The tree "
                   "keeps the image's setuid binaries and device nodes: a mode like 0755 lets every local user "
                   "run a setuid-root shell of the image and open its device nodes")


def build_seed_parser(command: str) -> argparse.ArgumentParser:
    """Parsers of the seed's scripts."""
    store, output, registry, platform = _store_parent(), _output_parent(), _registry_parent(), _platform_parent()
    if command == "image-download":
        p = argparse.ArgumentParser(
            prog=command, parents=[store, output, registry, platform], formatter_class=_FORMATTER,
            description="Pull an image into the store and write its flattened root filesystem to "
                        "~/.docker-internals/<repository>/<tag>/ (rewritten only when the image changed).",
            epilog=_examples(f"{command} library/alpine:latest",
                             f"{command} 127.0.0.1:5000/library/busybox:latest   # -> ~/.docker-internals/library/busybox/latest"))
        p.add_argument("--dest", help="another folder for the root filesystem")
        _add_dest_mode(p)
        p.add_argument("name", help="image reference, e.g. library/alpine:latest")
        return p
    if command == "image-upload":
        p = argparse.ArgumentParser(
            prog=command, parents=[store, output, registry], formatter_class=_FORMATTER,
            description="Upload an image with DOCKER_USERNAME/DOCKER_PASSWORD: the store's image NAME; when the "
                        "store has none, the folder ~/.docker-internals/<repository>/<tag>/ built as a one-layer "
                        "image (files stored as root:root, the config of the image it was downloaded from).",
            epilog=_examples(f"DOCKER_USERNAME=me DOCKER_PASSWORD=… {command} me/alpine:latest",
                             f"{command} --from library/alpine:latest me/alpine:latest",
                             f"{command} --rootfs ./rootfs 127.0.0.1:5000/me/app:1"))
        p.add_argument("--from", dest="source", metavar="IMAGE", help="push this image of the store as NAME")
        p.add_argument("--rootfs", metavar="DIR", help="build NAME from this folder, then push it")
        p.add_argument("name", help="<user>/<repository>:<tag> (or registry/path:tag)")
        return p
    p = argparse.ArgumentParser(
        prog=command, parents=[store, registry, platform], formatter_class=_FORMATTER,
        description=("Run a command in the image's filesystem with a private mount namespace only (chroot isolation)."
                     " Chroot isolation is not a security boundary: the command shares the host's processes,"
                     " network and hostname; run only commands you trust (CAP_SYS_CHROOT is dropped)."
                     if command == "run-chroot" else
                     "Run a command in a new container (namespaces, pivot_root, Docker's default capabilities). ")
        + " stdin stays attached; a terminal gets a pseudo-terminal. The image is pulled when missing.",
        epilog=_examples(f"{command} library/alpine:latest sh", f"echo hi | {command} 127.0.0.1:5000/library/busybox:latest cat"))
    _add_run_options(p, seed="chroot" if command == "run-chroot" else True)
    return p


# ``dockerless run``'s options as build_parser declares them (the store, registry and platform groups and
# _add_run_options), for parse_run_fast: option strings, dest, and how a value is read: "flag" (store_true),
# "append" (a list), or a type (str, int, float), or the tuple of allowed choices.
# tests/unit/plugins/module_utils/test_cli_fast.py checks it against the argparse parser, option by option, and
# the two parsers' results on many command lines.
_RUN_OPTIONS = (
    (("--store",), "store", str),
    (("--username",), "username", str),
    (("--password-stdin",), "password_stdin", "flag"),
    (("--auth-file",), "auth_file", str),
    (("--insecure",), "insecure", "flag"),
    (("--ca-path",), "ca_path", str),
    (("--timeout",), "timeout", float),
    (("--platform",), "platform", str),
    (("--name",), "name", str),
    (("-d", "--detach"), "detach", "flag"),
    (("-i", "--interactive"), "interactive", "flag"),
    (("-t", "--tty"), "tty", "flag"),
    (("-e", "--env"), "env", "append"),
    (("-v", "--volume"), "volume", "append"),
    (("--tmpfs",), "tmpfs", "append"),
    (("-w", "--workdir"), "workdir", str),
    (("-u", "--user"), "user", str),
    (("--hostname",), "hostname", str),
    (("--entrypoint",), "entrypoint", str),
    (("--network",), "network", "append"),
    (("--network-alias",), "network_alias", "append"),
    (("--ip",), "ip", str),
    (("--dns",), "dns", "append"),
    (("--dns-search",), "dns_search", "append"),
    (("--add-host",), "add_host", "append"),
    (("-p", "--publish"), "publish", "append"),
    (("--isolation",), "isolation", ("container", "chroot")),
    (("--read-only",), "read_only", "flag"),
    (("--cap-add",), "cap_add", "append"),
    (("--cap-drop",), "cap_drop", "append"),
    (("--privileged",), "privileged", "flag"),
    (("--security-opt",), "security_opt", "append"),
    (("--ulimit",), "ulimit", "append"),
    (("--restart",), "restart", restart_value),
    (("--stop-signal",), "stop_signal", str),
    (("--stop-timeout",), "stop_timeout", int),
    (("--pull",), "pull", ("missing", "always", "never")),
    (("-q", "--quiet"), "quiet", "flag"),
    (("--rm",), "rm", "flag"),
    (("--memory", "-m"), "memory", str),
    (("--memory-swap",), "memory_swap", str),
    (("--cpus",), "cpus", float),
    (("--cpu-weight",), "cpu_weight", int),
    (("--pids-limit",), "pids_limit", int),
)
_RUN_DEFAULTS = {"timeout": 60, "isolation": "container", "restart": ("no", 0), "stop_timeout": 10,
                 "pull": "missing"}


# ``dockerless pull``'s options (the store, output, registry and platform groups and its own), as _RUN_OPTIONS.
_PULL_OPTIONS = (
    (("--store",), "store", str),
    (("-q", "--quiet"), "quiet", "flag"),
    (("--json",), "json", "flag"),
    (("--username",), "username", str),
    (("--password-stdin",), "password_stdin", "flag"),
    (("--auth-file",), "auth_file", str),
    (("--insecure",), "insecure", "flag"),
    (("--ca-path",), "ca_path", str),
    (("--timeout",), "timeout", float),
    (("--platform",), "platform", str),
    (("--pull",), "pull", ("always", "missing")),
    (("--dest",), "dest", str),
    (("--dest-mode",), "dest_mode", str),
)
_PULL_DEFAULTS = {"timeout": 60, "pull": "always", "dest_mode": "0700"}
# subcommand → (options, defaults, positionals): "image+command" is run's IMAGE [COMMAND…] (everything after the
# image is the command), "name" one positional among the options anywhere (argparse's intermixed reading).
_EXEC_OPTIONS = (
    (("--store",), "store", str),
    (("-i", "--interactive"), "interactive", "flag"),
    (("-t", "--tty"), "tty", "flag"),
    (("-d", "--detach"), "detach", "flag"),
    (("-e", "--env"), "env", "append"),
    (("-u", "--user"), "user", str),
    (("-w", "--workdir"), "workdir", str),
)
# ``dockerless build``'s options (the store and output groups and its own), as _RUN_OPTIONS: argparse and its
# parsers were a fifth of a small build's time.
_BUILD_OPTIONS = (
    (("--store",), "store", str),
    (("-q", "--quiet"), "quiet", "flag"),
    (("--json",), "json", "flag"),
    (("--executable",), "executables", "append"),
    (("--file",), "files", "append"),
    (("--rootfs",), "rootfs", str),
    (("--base",), "base", str),
    (("-e", "--env"), "env", "append"),
    (("--entrypoint",), "entrypoint", str),
    (("--cmd",), "cmd", str),
    (("-w", "--workdir"), "workdir", str),
    (("-u", "--user"), "user", str),
    (("--label",), "label", "append"),
    (("--expose",), "exposed_ports", "append"),
    (("--volume",), "volumes", "append"),
    (("--compression",), "compression", ("gzip", "zstd")),
    (("--compression-level",), "compression_level", int),
    (("--source-date-epoch",), "source_date_epoch", int),
)
_FAST_SUBCOMMANDS = {"run": (_RUN_OPTIONS, _RUN_DEFAULTS, "image+command"),
                     "pull": (_PULL_OPTIONS, _PULL_DEFAULTS, "name"),
                     "build": (_BUILD_OPTIONS, {"compression": "gzip"}, "name"),
                     "exec": (_EXEC_OPTIONS, {}, "container+command")}


def parse_run_fast(argv: list[str]):
    """``dockerless run [OPTIONS] IMAGE [COMMAND…]``, ``dockerless pull [OPTIONS] NAME``, ``dockerless build
    [OPTIONS] NAME`` and ``dockerless exec [OPTIONS] CONTAINER COMMAND…`` read without argparse,
    as build_parser's parser reads them: the same namespace (a FastArgs with the same attributes),
    or None for anything this reader does not take on itself (another subcommand, -h, an unknown or abbreviated
    option, ``--``, a value that starts with ``-``, a bad type or choice, a missing or extra positional): main()
    then asks argparse, which accepts it or explains the mistake. Only the usual command lines go this way:
    importing argparse and building the parsers cost about as much CPU as the container's whole start."""
    if not argv or argv[0] not in _FAST_SUBCOMMANDS or "--" in argv:
        return None
    options, defaults, positionals = _FAST_SUBCOMMANDS[argv[0]]
    table = {}
    values: dict = {"version": False, "subcommand": argv[0]}
    for strings, dest, kind in options:
        for option in strings:
            table[option] = (dest, kind)
        values[dest] = False if kind == "flag" else defaults.get(dest)
    values["store"] = os.environ.get(ENV_STORE)
    if argv[0] in ("run", "pull"):  # the registry options' group
        values["ca_path"] = os.environ.get(ENV_CA_PATH)
    found_positionals: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            found_positionals.append(arg)
            if positionals.endswith("+command"):
                found_positionals.extend(argv[i:])
                break
            continue
        if arg.startswith("--"):
            option, eq, value = arg.partition("=")
            found = table.get(option)
            if found is None or (eq and found[1] == "flag"):
                return None
            pending = [(found, value if eq else None)]
        else:  # -it, -e KEY=VALUE, -eKEY (argparse splits "-e=X" and "-eK=V" its own way: it reads those)
            if "=" in arg:
                return None
            pending = []
            for j in range(1, len(arg)):
                found = table.get("-" + arg[j])
                if found is None:
                    return None
                if found[1] == "flag":
                    pending.append((found, None))
                    continue
                pending.append((found, arg[j + 1:] or None))
                break
        for (dest, kind), value in pending:
            if kind == "flag":
                values[dest] = True
                continue
            if value is None:
                if i >= len(argv) or argv[i].startswith("-"):
                    return None
                value = argv[i]
                i += 1
            if kind == "append":
                values[dest] = (values[dest] or []) + [value]
            elif isinstance(kind, tuple):
                if value not in kind:
                    return None
                values[dest] = value
            else:
                try:
                    values[dest] = kind(value)
                except ValueError:
                    return None
    if positionals.endswith("+command"):
        if not found_positionals:
            return None
        values[positionals.split("+")[0]], values["command"] = found_positionals[0], found_positionals[1:]
    else:
        if len(found_positionals) != 1:
            return None
        values["name"] = found_positionals[0]
    return FastArgs(**values)


class FastArgs:
    """What parse_run_fast returns: attributes as argparse's Namespace has them (``vars()`` gives the same dict).
    A class of its own, not types.SimpleNamespace: ``import types`` is a measurable part of a ``dockerless
    exec``."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return "FastArgs(" + ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()) + ")"


# ---------------------------------------------------------------------------------------------------------------
# Subcommands


def _registry_options(args: argparse.Namespace, stdin: IO[str]):
    from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import RegistryOptions

    password = None
    if getattr(args, "password_stdin", False):
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: stdin gave an empty line; pipe the password or token into it.")
    return RegistryOptions(username=args.username, password=password, auth_file=args.auth_file,
                           insecure=bool(args.insecure), ca_path=args.ca_path, timeout=args.timeout)


def _store(args: argparse.Namespace):
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

    return Store(args.store)


def _board(stream: IO[str] | None, verb: str, done: str):
    if stream is None:
        return None
    from ansible_collections.dockerless.containers.plugins.module_utils.cli.progress import Board

    return Board(stream, verb, done)


def do_pull(args: argparse.Namespace, out: Output, registry, dest: str | None, progress_to: IO[str] | None = None):
    """Pull with progress on ``progress_to`` (a terminal) or none."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import parse_dest_mode, pull_image

    dest_mode = parse_dest_mode(getattr(args, "dest_mode", "0700"))
    board = _board(progress_to, "Downloading", "Pull complete")
    try:
        return pull_image(_store(args), args.name, registry=registry, platform=getattr(args, "platform", None),
                          policy=getattr(args, "pull", "always"), dest=dest, dest_mode=dest_mode, progress=board)
    finally:
        if board is not None:
            board.close()


def _report_pull(out: Output, result) -> None:
    for action in result.actions:
        out.info(action)
    if result.rootfs:
        out.info(f"root filesystem {'written to' if result.rootfs_changed else 'up to date in'} {result.rootfs}")
    if result.image is not None:
        out.value(result.image.digest)
    out.document({"changed": result.changed, "image": result.image.as_dict() if result.image else None,
                  "actions": result.actions, "downloaded_bytes": result.downloaded_bytes,
                  "rootfs": result.rootfs})


def cmd_pull(args, out: Output, stdin: IO[str]) -> int:
    result = do_pull(args, out, _registry_options(args, stdin), args.dest, out.progress_stream())
    _report_pull(out, result)
    return EXIT_OK


def cmd_image_download(args, out: Output, stdin: IO[str]) -> int:
    dest = os.path.abspath(os.path.expanduser(args.dest)) if args.dest else seed_dest(args.name)
    args.pull = "always"
    result = do_pull(args, out, _registry_options(args, stdin), dest, out.progress_stream())
    _report_pull(out, result)
    return EXIT_OK


class _CountingFile:
    """Wraps a blob file opened for upload; reports every chunk read."""

    def __init__(self, handle, report):
        self._handle = handle
        self._report = report

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if data:
            self._report(len(data))
        return data

    def close(self) -> None:
        self._handle.close()


class ProgressClient:
    """A RegistryClient as push_image sees it, reporting blob outcomes and upload bytes to ``progress``."""

    def __init__(self, client, progress):
        self._client = client
        self._progress = progress

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def blob_exists(self, repository: str, digest: str):
        size = self._client.blob_exists(repository, digest)
        if size is not None:
            self._progress({"event": "present", "digest": digest, "size": size})
        return size

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        mounted = self._client.mount_blob(repository, digest, from_repository)
        if mounted:
            self._progress({"event": "mounted", "digest": digest})
        return mounted

    def upload_blob(self, repository: str, digest: str, size: int, opener, **kwargs) -> None:
        def counted():
            # Every attempt starts from byte 0 (the client restarts failed uploads from a fresh session).
            self._progress({"event": "bytes", "digest": digest, "size": size, "bytes": 0, "restart": True})
            return _CountingFile(opener(), lambda n: self._progress(
                {"event": "bytes", "digest": digest, "size": size, "bytes": n}))

        self._client.upload_blob(repository, digest, size, counted, **kwargs)


def do_push(args, out: Output, registry, name: str, repository: str | None, tags: list[str] | None) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.push import push_image
    from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference

    store = _store(args)
    target = parse_reference(repository or name)
    client = registry.client(target.registry)
    board = _board(out.progress_stream(), "Uploading", "Pushed")
    if board is not None:
        image = store.image(parse_reference(name).name)
        descs = [image.manifest["config"], *image.manifest["layers"]]
        board({"event": "start", "name": target.repo_name,
               "layers": [{"digest": d["digest"], "size": d["size"]} for d in descs]})
        client = ProgressClient(client, board)
    try:
        result = push_image(store, name, repository=repository, tags=tags, registry=registry, client=client,
                            progress=board)
        if board is not None and not result.changed:
            for digest in list(board.order):  # the tags already point to it: every blob is there
                board({"event": "present", "digest": digest})
    finally:
        if board is not None:
            board.close()
    for action in result.actions:
        out.info(action)
    out.value(result.digest)
    out.document({"changed": result.changed, "image": result.image_dict(), "blobs": result.blobs.as_dict(),
                  "actions": result.actions})
    return EXIT_OK


def cmd_push(args, out: Output, stdin: IO[str]) -> int:
    return do_push(args, out, _registry_options(args, stdin), args.name, args.repository, args.tags)


def _source_config(store, folder: str) -> dict:
    """The config of the image ``folder`` was written from (image_pull's dest records its digest beside it),
    when that image is still in the store; else {}."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import rootfs_digest

    digest = rootfs_digest(folder)
    if not digest or not store.exists():
        return {}
    for name, desc in store.images():
        if desc.get("digest") == digest:
            try:
                return dict(store.load_image(name, desc).config.get("config") or {})
            except DockerlessError:
                continue
    return {}


def build_from_rootfs(store, name: str, folder: str, config: dict | None = None):
    """``folder`` as the only layer of image ``name`` (build.py; owners are stored as 0, modes kept)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.build import (
        BuildSpec,
        FileSpec,
        build_image,
    )

    cfg = config or {}
    env = {}
    for item in cfg.get("Env") or []:
        key, value = (item.split("=", 1) + [""])[:2]
        env[key] = value
    spec = BuildSpec(name=name, files=[FileSpec(src=os.path.abspath(folder), dest=ROOT_DEST)], env=env,
                     entrypoint=cfg.get("Entrypoint"), cmd=cfg.get("Cmd"), workdir=cfg.get("WorkingDir") or None,
                     user=cfg.get("User") or None)
    return build_image(store, spec)


def cmd_image_upload(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference

    if args.source and args.rootfs:
        raise UsageError("--from and --rootfs: give one source.")
    registry = _registry_options(args, stdin)
    store = _store(args)
    name = parse_reference(args.name).name
    if args.source:
        return do_push(args, out, registry, parse_reference(args.source).name, name, None)
    folder = args.rootfs
    in_store = store.exists() and store.resolve(name) is not None
    if folder is None and not in_store:
        folder = seed_dest(name)
        if not os.path.isdir(folder):
            raise DockerlessError(
                f"uploading {name}: it is not in the store {store.root} and {folder} does not exist. Download or "
                f"build it first (image-download, dockerless build), or name a source with --from IMAGE.")
    if folder is not None:
        folder = os.path.abspath(os.path.expanduser(folder))
        if not os.path.isdir(folder):
            raise DockerlessError(f"uploading {name}: {folder} is not a folder. Give the root filesystem to upload.")
        built = build_from_rootfs(store, name, folder, _source_config(store, folder))
        for action in built.actions:
            out.info(action)
    return do_push(args, out, registry, name, None, None)


def cmd_build(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.build import (
        BuildSpec,
        FileSpec,
        build_image,
    )

    files = [parse_file_item(item) for item in args.files or []]
    if args.rootfs:
        files.insert(0, FileSpec(src=os.path.abspath(os.path.expanduser(args.rootfs)), dest=ROOT_DEST))
    spec = BuildSpec(
        name=args.name, executables=[os.path.abspath(e) for e in args.executables or []], files=files,
        base=args.base, env=parse_pairs(args.env, "-e"), entrypoint=parse_command(args.entrypoint, "--entrypoint"),
        cmd=parse_command(args.cmd, "--cmd"), workdir=args.workdir, user=args.user,
        labels=parse_pairs(args.label, "--label"), exposed_ports=args.exposed_ports or [], volumes=args.volumes or [],
        compression=args.compression, compression_level=args.compression_level,
        source_date_epoch=args.source_date_epoch)
    result = build_image(_store(args), spec)
    for action in result.actions:
        out.info(action)
    for note in result.notes:
        out.info(f"note: {note}")
    out.value(result.after)
    out.document({"changed": result.changed, "image": result.image, "files": result.files, "notes": result.notes,
                  "actions": result.actions})
    return EXIT_OK


def _run_spec(args, store_root: str | None, image, name: str | None):
    """The container's spec from the options and ``image`` (a runtime.image.StartImage), through
    runtime.spec.spec_for_image like container_run."""
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import spec_for_image

    limits = {k: getattr(args, k) for k in ("memory", "memory_swap", "cpus", "cpu_weight", "pids_limit")
              if getattr(args, k) is not None}
    extra = {}
    for item in getattr(args, "security_opt", None) or []:
        key, sep, value = item.partition("=")
        if key != "seccomp" or not sep or not value:
            raise UsageError(f"--security-opt {item!r}: only seccomp=default, seccomp=unconfined or "
                             "seccomp=/path/profile.json are known.")
        extra["seccomp"] = value if value in ("default", "unconfined") else os.path.abspath(value)
    return spec_for_image(
        image, command=list(args.command) if args.command else None,
        entrypoint=parse_command(args.entrypoint, "--entrypoint"), env=parse_env(args.env),
        workdir=args.workdir, user=args.user, hostname=args.hostname, name=name,
        network=[n for item in args.network for n in item.split(",")] if args.network else None,
        network_aliases=getattr(args, "network_alias", None), ipv4_address=getattr(args, "ip", None),
        volumes=[_absolute_volume(v) for v in args.volume or []], tmpfs=args.tmpfs, read_only=args.read_only,
        limits=limits, cap_add=args.cap_add, cap_drop=args.cap_drop, privileged=args.privileged,
        isolation=args.isolation, ulimits=args.ulimit, restart_policy=args.restart[0],
        restart_retries=args.restart[1], stop_signal=args.stop_signal, stop_timeout=args.stop_timeout,
        dns_servers=getattr(args, "dns", None), dns_search_domains=getattr(args, "dns_search", None),
        etc_hosts=getattr(args, "add_host", None), published_ports=getattr(args, "publish", None), **extra)


def _stored_image(store_root: str, name: str, pull: str, platform: str | None):
    """``name`` as a container start reads it (runtime_image.image_for_start: index.json, one manifest, one
    config) when ``pull`` lets the store's copy be used and it is usable as it is, its missing layer folders
    made from the store's blobs; None when the pull engine must be asked (``pull: always``, not in the store,
    another platform than the one wanted, blobs missing). No registry code is imported on the way: with
    ``--pull missing`` (the default) and the image in the store, ``dockerless run`` is the container start."""
    from ansible_collections.dockerless.containers.plugins.module_utils.errors import StoreError
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.image import image_for_start

    if pull == "always":
        return None
    try:
        image = image_for_start(store_root, name)
    except StoreError:
        if pull == "never":
            raise
        return None  # not there or damaged: the pull engine fetches it again
    if pull == "missing" and image.platform:
        # pull.pull_image's rule: a stored image of another platform than the one asked for is pulled again.
        from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
            parse_platform,
            platform_matches,
        )

        if not platform_matches(parse_platform(platform), image.platform):
            return None
    if not image.unpacked():
        # A built image (image_build stores the layer blob only) or collected folders: made from the blobs.
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import (
            ensure_unpacked,
        )
        from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

        store = Store(store_root)
        record = store.image(name)
        if pull != "never" and not all(store.has_blob(layer["digest"], layer["size"]) for layer in record.layers):
            return None
        ensure_unpacked(store, record)
    return image


def _absolute_volume(text: str) -> str:
    """``./data:/data`` → ``/abs/data:/data`` (a relative host path is relative to the current directory)."""
    host, sep, rest = text.partition(":")
    if sep and host.startswith("."):
        return os.path.abspath(host) + sep + rest
    return text


def cmd_run(args, out: Output, stdin: IO[str], stdio: tuple[int, int, int] = (0, 1, 2)) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import parse_reference
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.image import image_for_start

    if _is_seed(args) and args.detach:
        args.interactive = False  # the seed's scripts attach stdin by default; a detached container can't
    if args.tty is None:  # the seed's run: a terminal when there is one
        args.tty = not args.detach and os.isatty(stdio[0]) and os.isatty(stdio[1])
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if args.detach and (args.tty or args.interactive):
        raise UsageError("-d runs in the background: -i and -t need the foreground. Drop -d, or -i/-t.")
    if args.tty and not os.isatty(stdio[0]) and args.interactive:
        raise UsageError("-t: the input is not a terminal. Drop -t (use -i for pipes), or run from a terminal.")
    if args.name and not args.detach:
        raise UsageError("--name names a detached container (-d); a foreground run is removed when it exits.")
    if getattr(args, "rm", False) and args.detach:
        raise UsageError("--rm: a detached container is kept until `dockerless rm`; drop --rm (a foreground "
                         "container is always removed when it exits).")
    if args.restart[0] != "no" and not args.detach:
        raise UsageError("--restart applies to detached containers (-d).")
    if getattr(args, "password_stdin", False) and args.interactive and not args.detach:
        raise UsageError("--password-stdin and -i both want stdin; use DOCKER_PASSWORD or a config.json instead.")
    runtime = Runtime(args.store)
    ref = parse_reference(args.image)
    image_name = ref.name
    image = _stored_image(runtime.store_root, image_name, args.pull, args.platform)
    if image is None:
        # Pull first (with progress on stderr: stdout belongs to the container), then use the store only.
        registry = _registry_options(args, stdin)
        progress = sys.stderr if not args.quiet and _on_terminal(sys.stderr) else None
        import types

        pull_args = types.SimpleNamespace(store=args.store, name=ref, platform=args.platform, pull=args.pull)
        do_pull(pull_args, out, registry, None, progress)
        image = image_for_start(runtime.store_root, image_name)
    if args.detach:
        name = args.name or default_container_name(args.image)
        spec = _run_spec(args, args.store, image, name)
        if spec.published_ports:
            from ansible_collections.dockerless.containers.plugins.module_utils.network import ports

            with ports.reserved(runtime.store_root):   # the choice and the record under one lock
                taken, owners = ports.published_in_store(runtime.store_root, exclude=name)
                spec.published_ports = ports.allocate(spec.published_ports, taken, owners)
                runtime.create(name, spec)
        else:
            runtime.create(name, spec)
        try:
            info = runtime.start(name)
        except DockerlessError:
            runtime.remove(name)
            raise
        out.stdout.write(name + "\n")
        out.document(info.as_dict())
        return EXIT_OK
    from ansible_collections.dockerless.containers.plugins.module_utils.cli.run import run_foreground

    spec = _run_spec(args, args.store, image, None)
    if spec.published_ports:
        from ansible_collections.dockerless.containers.plugins.module_utils.network import ports

        with ports.reserved(runtime.store_root):
            taken, owners = ports.published_in_store(runtime.store_root)
            spec.published_ports = ports.allocate(spec.published_ports, taken, owners)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return run_foreground(runtime, spec, interactive=args.interactive, terminal=bool(args.tty),
                          stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])


def cmd_exec(args, out: Output, stdin: IO[str], stdio: tuple[int, int, int] = (0, 1, 2)) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import containers_dir

    if not args.command:
        raise UsageError("no command given: dockerless exec NAME CMD [ARG...]")
    target = runtime_exec.find_target(containers_dir(args.store), args.container)
    config = runtime_exec.exec_config(target.config, args.command, env=parse_env(args.env), user=args.user,
                                      workdir=args.workdir, terminal=bool(args.tty))
    if args.detach:
        config["terminal"] = False
        out.value(str(runtime_exec.start_detached(target, config)))
        return EXIT_OK
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    from ansible_collections.dockerless.containers.plugins.module_utils.cli.run import exec_foreground

    return exec_foreground(target, config, interactive=args.interactive, terminal=bool(args.tty), stdin=stdio[0],
                           stdout=stdio[1], stderr=stdio[2])


def _is_seed(args) -> bool:
    return bool(getattr(args, "seed", False))


def cmd_ps(args, out: Output, stdin: IO[str]) -> int:
    import shlex

    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    infos = [i for i in Runtime(args.store).list() if args.all or i.running]
    # Docker's way: the health in parentheses after the state, for containers with a healthcheck.
    rows = [[i.name, i.state + (f" ({i.health['status']})" if i.health and i.running else ""), str(i.pid or ""), str(i.spec.get("image") or ""),
             shlex.join(i.spec.get("argv") or []), i.started_at or "",
             ",".join(v["address"] for v in (i.networks or {}).values()) if i.running else ""] for i in infos]
    if not out.quiet:
        out.info(table(rows, ["NAME", "STATE", "PID", "IMAGE", "COMMAND", "STARTED", "ADDRESSES"]).rstrip("\n"))
    for info in infos:
        out.value(info.name)
    out.document([i.as_dict() for i in infos])
    return EXIT_OK


def cmd_stop(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    done = []
    for name in args.names:
        stopped = runtime.stop(name, args.time)
        done.append({"name": name, "stopped": stopped})
        out.info(f"{name}: {'stopped' if stopped else 'was not running'}")
        out.value(name)
    out.document(done)
    return EXIT_OK


def cmd_start(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    if args.all == bool(args.names):
        raise UsageError("name the containers to start, or use --all (not both).")
    if args.check and not (args.all or args.by_policy):
        raise UsageError("--check goes with --by-policy or --all: a start by name always starts.")
    if args.pid_file and len(args.names) != 1:
        raise UsageError("--pid-file needs exactly one NAME.")
    runtime = Runtime(args.store)
    done, failed = [], False
    if args.all or args.by_policy:
        # `start` reads no credentials and runs from files that stay: its supervisors are forks of this process,
        # without a new interpreter (what a systemd unit's restart waits for; runtime/supervisor.py launch).
        outcomes = runtime.start_all(args.names or None, dry_run=args.check, fresh=False)
        if args.check:
            for name, outcome in outcomes:
                out.info(f"{name}: {outcome}")
            out.document([{"name": name, "outcome": outcome} for name, outcome in outcomes])
            return EXIT_OK if all(outcome == "would start" for _name, outcome in outcomes) else EXIT_ERROR
    else:
        # Docker's start: the user's explicit wish, whatever the policy says.
        outcomes = []
        for name in args.names:
            before = runtime._require(name)
            try:
                runtime.start(name, fresh=False)
                outcomes.append((name, "running" if before.supervised else "started"))
            except DockerlessError as exc:
                outcomes.append((name, f"failed: {exc}"))
    for name, outcome in outcomes:
        failed = failed or outcome.startswith("failed")
        done.append({"name": name, "outcome": outcome})
        out.info(f"{name}: {outcome}")
        if outcome in ("started", "running"):
            out.value(name)
    out.document(done)
    if failed:
        raise DockerlessError("some containers did not start (see above). Check them with dockerless ps -a and "
                              "their logs in the store.")
    if args.pid_file:
        info = runtime.inspect(args.names[0])
        if info is None or not info.supervised or not info.supervisor_pid:
            raise DockerlessError(f"{args.names[0]}: not started ({outcomes[0][1]}), so no PID for {args.pid_file}.")
        _write_pid_file(args.pid_file, info.supervisor_pid)
    return EXIT_OK


def _write_pid_file(path: str, pid: int) -> None:
    """``pid`` to ``path`` through a rename: systemd reads the PIDFile once ExecStart has ended."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"{int(pid)}\n")
    os.replace(tmp, path)


def cmd_kill(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    done = []
    for name in args.names:
        runtime.kill(name, args.signal)
        done.append({"name": name, "signal": args.signal})
        out.info(f"{name}: sent {args.signal}")
        out.value(name)
    out.document(done)
    return EXIT_OK


def cmd_rm(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    done = []
    for name in args.names:
        info = runtime.inspect(name)
        if info is not None and info.running and not args.force:
            raise RuntimeSetupError(f"removing container {name}: it is running. Stop it first "
                                    f"(dockerless stop {name}) or use rm -f.")
        removed = runtime.remove(name, force_kill=args.force)
        if not removed:
            raise RuntimeSetupError(f"removing container {name}: no such container in {runtime.containers_dir}. "
                                    "See dockerless ps -a.")
        done.append({"name": name, "removed": True})
        out.info(f"{name}: removed")
        out.value(name)
    out.document(done)
    return EXIT_OK


def cmd_port(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.network import ports
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    info = runtime.inspect(args.container)
    if info is None:
        raise RuntimeSetupError(f"container {args.container}: no such container in {runtime.containers_dir}. "
                                "See dockerless ps -a.")
    mappings = list(info.spec.get("published_ports") or [])
    if args.port:
        number, _sep, proto = args.port.partition("/")
        if not number.isdigit():
            raise UsageError(f"port {args.port!r}: give a container port, as 80 or 80/udp.")
        mappings = [m for m in mappings if m["container_port"] == int(number) and m["proto"] == (proto or "tcp")]
        if not mappings:
            raise RuntimeSetupError(f"container {args.container}: port {args.port} is not published.")
    for mapping in mappings:
        text = ports.format_mapping(mapping)
        line = text if not args.port else text.split("->", maxsplit=1)[0]   # docker port NAME 80: the host side alone
        out.info(line)
        out.value(line)
    out.document(mappings)
    return EXIT_OK


def cmd_network(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.network import manage, networks
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    root = Runtime(args.store).store_root
    if args.network_command == "ls":
        records = [manage.shown(r) for r in networks.list_networks(root)]
        if not out.quiet:
            rows = [[r["name"], r["bridge"], r["subnet"], r["gateway"], "yes" if r["internal"] else "no"] for r in records]
            out.info(table(rows, ["NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL"]).rstrip("\n"))
        for record in records:
            out.value(record["name"])
        out.document(records)
        return EXIT_OK
    if args.network_command == "create":
        if networks.get_network(root, args.name) is not None:
            raise RuntimeSetupError(f"network {args.name}: exists already. See dockerless network ls; remove it "
                                    "first to make it anew.")
        result = manage.manage_network(root, args.name, "present", args.subnet, args.gateway, args.internal)
        out.info(f"{args.name}: created ({result['network']['subnet']}, bridge {result['network']['bridge']})")
        out.value(args.name)
        out.document(result["network"])
        return EXIT_OK
    done = []
    for name in args.names:
        result = manage.manage_network(root, name, "absent")
        if result["network"] is None:
            raise RuntimeSetupError(f"removing network {name}: no such network. See dockerless network ls.")
        done.append({"name": name, "removed": True})
        out.info(f"{name}: removed")
        out.value(name)
    out.document(done)
    return EXIT_OK


def cmd_images(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.cli.progress import human_size
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import describe_images

    store = _store(args)
    found, missing = describe_images(store, args.names or None)
    if missing:
        raise DockerlessError(f"images: {', '.join(sorted(set(missing)))} not in the store {store.root}. Pull or "
                              "build them.")
    images = list({info["name"]: info for info in found}.values())  # a name asked twice is listed once
    rows = [[i["name"], i["digest"][:19], i["platform"], human_size(i["size"]), i.get("created") or ""] for i in images]
    if not out.quiet:
        out.info(table(rows, ["IMAGE", "DIGEST", "PLATFORM", "SIZE", "CREATED"]).rstrip("\n"))
    for info in images:
        out.value(info["name"])
    out.document(images)
    return EXIT_OK


def cmd_export_wsl(args, out: Output, stdin: IO[str]) -> int:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.build import parse_mode
    from ansible_collections.dockerless.containers.plugins.module_utils.wsl.export import ExportOptions, export_image

    mode = parse_mode(args.mode, "--mode")
    opts = ExportOptions(image=args.image, dest=args.dest, format=args.format, default_user=args.default_user,
                         default_uid=args.default_uid, wsl_conf=parse_wsl_conf(args.wsl_conf),
                         distribution_conf=parse_wsl_conf(args.distribution_conf), fix=args.fix or [],
                         compression_level=args.compression_level, source_date_epoch=args.source_date_epoch,
                         mode=0o600 if mode is None else mode)
    result = export_image(_store(args), opts)
    for action in result.actions:
        out.info(action)
    for warning in result.warnings:
        out.stderr.write(f"warning: {warning}\n")
    out.value(result.sha256)
    out.document({"changed": result.changed, "dest": result.dest, "sha256": result.sha256, "size": result.size,
                  "format": result.format, "fixed": result.fixed, "warnings": result.warnings,
                  "image": result.image, "actions": result.actions})
    return EXIT_OK


HANDLERS = {
    "pull": cmd_pull, "push": cmd_push, "build": cmd_build, "run": cmd_run, "exec": cmd_exec, "ps": cmd_ps, "stop": cmd_stop,
    "start": cmd_start, "kill": cmd_kill, "rm": cmd_rm, "images": cmd_images, "export-wsl": cmd_export_wsl,
    "image-download": cmd_image_download, "image-upload": cmd_image_upload, "port": cmd_port, "network": cmd_network,
}


# ---------------------------------------------------------------------------------------------------------------
# Entry point


def _parser_for(prog: str, argv: list[str]):
    """build_parser(prog) for ``argv``: only its subcommand's parser when argv starts with a known subcommand
    (the other subcommands' parsers would never be used), else all of them (usage errors, --help, --version)."""
    if argv and argv[0] in HANDLERS:
        parser = build_parser(prog, only=argv[0])
        sub = next(a for a in parser._actions if a.dest == "subcommand")  # pylint: disable=protected-access
        if argv[0] in sub.choices:
            return parser
    return build_parser(prog)


def console(prog: str | None = None) -> int:
    """The command line's entry, for an interpreter whose sys.path already reaches the collection (bin/dockerless,
    the engine copy's bin/dockerless that container_run installs, runtime/systemd.py): runs ``main`` and flushes."""
    if sys.flags.no_site:  # started with -S on purpose: site-packages come when a proxy needs them
        from ansible_collections.dockerless.containers.plugins.module_utils import site_packages

        site_packages.DEFERRED = True
    code = main(prog=prog)
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def main(argv: list[str] | None = None, prog: str | None = None, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None, stdin: IO[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) as ``prog`` (default: the name this was called by) and run the
    subcommand; returns the exit code."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    stdin = stdin or sys.stdin
    prog = prog or os.path.basename(sys.argv[0] or "dockerless")
    argv = list(sys.argv[1:] if argv is None else argv)
    seed = prog in SEED_COMMANDS
    args = None if seed else parse_run_fast(argv)
    if args is None:
        parser = build_seed_parser(prog) if seed else _parser_for(prog, argv)
        import contextlib

        try:
            # argparse prints --help and usage errors to sys.stdout/sys.stderr: send them where main() writes.
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                args = parser.parse_args(argv)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if seed:
        command = "run" if prog in ("run", "run-chroot") else prog
        args.seed = True
    else:
        if args.version:
            stdout.write(f"dockerless (dockerless.containers {collection_version()}) from {_COLLECTION_ROOT}\n")
            return EXIT_OK
        command = args.subcommand
        if command is None:
            parser.print_help(stderr)
            return EXIT_USAGE
    out = Output(args, stdout, stderr)
    what = prog if seed else f"{prog} {command}"
    try:
        return HANDLERS[command](args, out, stdin)
    except UsageError as exc:
        stderr.write(f"{what}: {exc}\n")
        return EXIT_USAGE
    except DockerlessError as exc:
        stderr.write(f"{what}: {exc}\n")
        # run: every error is raised before the container's command ran (its own failures are exit codes).
        return EXIT_SETUP if command in ("run", "exec") else EXIT_ERROR
    except KeyboardInterrupt:
        stderr.write(f"\n{what}: interrupted\n")
        return EXIT_INTERRUPTED
    except OSError as exc:
        stderr.write(f"{what}: {exc.strerror or exc}"
                     + (f": {exc.filename}" if getattr(exc, "filename", None) else "") + "\n")
        return EXIT_ERROR
