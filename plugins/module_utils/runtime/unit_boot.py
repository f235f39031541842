# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, stop or show a named dockerless container without Ansible: what its systemd unit runs.

    python3 -I dockerless_boot.py [--store DIR] [--engine FILE] condition|start|stop|status [options] NAME

container_run (runtime/systemd.py) installs this file as ``dockerless_boot.py`` beside ``engine.json``, a copy of
the engine's sources (the runtime's modules from the collection's ``plugins/module_utils``, by dotted name, with the packages
they sit in), and rewrites both
whenever they differ from the collection that runs. Ansible ships those sources to a host only inside each
module run, so a unit that starts a container at boot needs a copy of its own. The sources are imported from
memory under their usual names (``ansible_collections.dockerless.containers.plugins.module_utils.*``); nothing
else of Ansible is needed. The file imports only the standard library at the top: it is a module of the
collection too (runtime/unit_boot.py; runtime/boot.py is the supervisor's loader, another thing), so that the
module can read its source and the tests can import it.

``condition`` (the unit's ExecCondition) exits 0 when the container should run now: container_run asked for the
start (``start.json``), or its restart policy says so after a boot or after its supervisor vanished (Docker's
restore rule, ``Runtime.restore_refusal``); else 1 with the reason, and systemd skips the start without a
failure. ``start`` starts the container's supervisor (a restart after a vanished supervisor continues its
restart count) and returns once the container runs, writing the supervisor's PID to ``--pid-file`` for the
unit's PIDFile. ``stop`` stops the container as ``dockerless stop`` does (a user stop). The unit has no
ExecStop: systemd's SIGTERM to the supervisor (shutdown, ``systemctl stop``) stops the container without a
user stop, so ``unless-stopped`` starts it at the next boot. ``status`` prints the container as container_info
reports it. Exit status 0 on success, 1 with the
reason on stderr otherwise (``condition``: 1 means "skip").
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import sys

PACKAGE = "ansible_collections.dockerless.containers.plugins.module_utils"
DEFAULT_STORE = "/var/lib/dockerless"


class EngineImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``PACKAGE`` and its parents as empty packages and the engine from ``sources`` (dotted names below
    ``PACKAGE``: ``runtime.supervisor``); the names in ``packages`` (``runtime``, ``runtime.seccomp``) are
    packages whose source is their ``__init__``.

    ``get_code`` and ``get_source`` are part of the interface because the runtime hands the code objects of its
    supervisor modules to a fresh interpreter (runtime/supervisor.py ``_code`` asks the module's loader).
    """

    def __init__(self, sources: dict, origin: str, packages=()):
        self.sources = sources
        self.packages = set(packages)
        self.origin = origin

    def _short(self, fullname: str):
        return fullname[len(PACKAGE) + 1:] if fullname.startswith(PACKAGE + ".") else None

    def find_spec(self, fullname, path=None, target=None):
        if fullname == PACKAGE or PACKAGE.startswith(fullname + "."):
            spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            spec.submodule_search_locations = []
            return spec
        short = self._short(fullname)
        if short is not None and short in self.sources:
            package = short in self.packages
            spec = importlib.machinery.ModuleSpec(fullname, self, origin=self._filename(fullname),
                                                  is_package=package)
            if package:
                spec.submodule_search_locations = []
            return spec
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ == PACKAGE or PACKAGE.startswith(module.__name__ + "."):
            return
        module.__file__ = self._filename(module.__name__)
        exec(self.get_code(module.__name__), module.__dict__)  # pylint: disable=exec-used

    def get_source(self, fullname):
        return self.sources[self._short(fullname)]

    def get_code(self, fullname):
        return compile(self.get_source(fullname), self._filename(fullname), "exec")

    def _filename(self, fullname: str) -> str:
        short = self._short(fullname)
        tail = "/__init__" if short in self.packages else ""
        return f"{self.origin}:{short.replace('.', '/')}{tail}.py"


def install_engine(path: str) -> None:
    """Make the engine in ``path`` (JSON ``{"modules": {short name: source}}``) importable, ahead of any other
    ``ansible_collections`` package on the host."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"dockerless-boot: reading the engine {path}: {exc}. Run "
                         "dockerless.containers.container_run for this container again to reinstall it.") from None
    sys.meta_path.insert(0, EngineImporter(data["modules"], path, data.get("packages") or ()))


START_REQUEST = "start.json"   # in the container's folder: container_run asked systemd to start it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockerless-boot", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=DEFAULT_STORE, help="root of the store (default %(default)s)")
    parser.add_argument("--engine", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine.json"),
                        help="the engine sources container_run installed (default: engine.json beside this file)")
    parser.add_argument("--pid-file", help="start: write the supervisor's PID there")
    parser.add_argument("action", choices=["condition", "start", "stop", "status"])
    parser.add_argument("name")
    args = parser.parse_args(argv)
    install_engine(args.engine)

    from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    try:
        if args.action == "condition":
            return condition(runtime, args.name)
        if args.action == "start":
            info = runtime.inspect(args.name)
            count = runtime.restore_count(info) if info is not None else 0
            _remove(os.path.join(runtime.container_dir(args.name), START_REQUEST))
            info = runtime.start(args.name, restart_count=count)
            if args.pid_file:
                write_pid_file(args.pid_file, info.supervisor_pid)
            _say(f"container {args.name}: {info.state}, pid {info.pid}, restart count {info.restart_count}")
        elif args.action == "stop":
            was_running = runtime.stop(args.name)
            _say(f"container {args.name}: " + ("stopped" if was_running else "was not running"))
        else:
            info = runtime.inspect(args.name)
            if info is None:
                _say(f"container {args.name}: not found in {runtime.containers_dir}", sys.stderr)
                return 1
            _say(json.dumps(info.as_dict(), indent=1, sort_keys=True))
    except DockerlessError as exc:
        _say(f"dockerless-boot {args.action} {args.name}: {exc}", sys.stderr)
        return 1
    return 0


def condition(runtime, name: str) -> int:
    """0: start the container now; 1: leave it down (the reason on stdout, which the journal keeps)."""
    info = runtime.inspect(name)
    if info is None:
        _say(f"container {name}: not found in {runtime.containers_dir}; nothing to start. Remove its unit "
             "with container_run state: absent.")
        return 1
    if info.supervised:
        _say(f"container {name}: already runs outside its unit (supervisor pid {info.supervisor_pid})")
        return 1
    if os.path.exists(os.path.join(info.path, START_REQUEST)):
        return 0
    why = runtime.restore_refusal(info)
    if why is not None:
        _say(f"container {name}: stays down ({why})")
        return 1
    return 0


def write_pid_file(path: str, pid) -> None:
    """Write ``pid`` to ``path`` atomically (systemd reads it once ExecStart ends)."""
    if not pid:
        raise SystemExit(f"dockerless-boot: the supervisor's PID is unknown; see {path}'s container's "
                         "supervisor.log")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write(f"{int(pid)}\n")
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _say(text: str, stream=None) -> None:
    """One line to stdout (or ``stream``): what systemd's journal keeps of a unit's commands."""
    (stream or sys.stdout).write(f"{text}\n")


if __name__ == "__main__":
    raise SystemExit(main())
