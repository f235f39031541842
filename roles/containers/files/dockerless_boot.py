# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, stop or show a named dockerless container without Ansible: what the role's systemd units run at boot.

    python3 -I dockerless_boot.py [--store DIR] [--engine FILE] start|stop|status NAME

The dockerless.containers.containers role installs this script beside ``engine.json``, a copy of the engine's
sources (the runtime's modules from the collection's ``plugins/module_utils``) that it refreshes whenever the
collection changes. Ansible ships those sources to a host only inside each module run, so a unit that starts a
container at boot needs a copy of its own. The sources are imported from memory under their usual names
(``ansible_collections.dockerless.containers.plugins.module_utils.*``); nothing else of Ansible is needed.

``start`` starts the container's supervisor (no-op when it already runs) and returns once the container runs;
``stop`` sends SIGTERM to the container's PID 1 and SIGKILL after its stop timeout; ``status`` prints the
container as container_info reports it. Exit status 0 on success, 1 with the reason on stderr otherwise.
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
    """Serves ``PACKAGE`` and its parents as empty packages and the engine modules from ``sources``.

    ``get_code`` is part of the interface because the runtime hands the code objects of its supervisor
    modules to a fresh interpreter (runtime_supervisor._code asks the module's loader for them).
    """

    def __init__(self, sources: dict, origin: str):
        self.sources = sources
        self.origin = origin

    def find_spec(self, fullname, path=None, target=None):
        if fullname == PACKAGE or PACKAGE.startswith(fullname + "."):
            spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            spec.submodule_search_locations = []
            return spec
        if fullname.startswith(PACKAGE + ".") and fullname[len(PACKAGE) + 1:] in self.sources:
            return importlib.machinery.ModuleSpec(fullname, self, origin=self._filename(fullname))
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ == PACKAGE or PACKAGE.startswith(module.__name__ + "."):
            return
        module.__file__ = self._filename(module.__name__)
        exec(self.get_code(module.__name__), module.__dict__)  # pylint: disable=exec-used

    def get_code(self, fullname):
        return compile(self.sources[fullname[len(PACKAGE) + 1:]], self._filename(fullname), "exec")

    def _filename(self, fullname: str) -> str:
        return f"{self.origin}:{fullname.rsplit('.', 1)[1]}.py"


def install_engine(path: str) -> None:
    """Make the engine in ``path`` (JSON ``{"modules": {short name: source}}``) importable, ahead of any other
    ``ansible_collections`` package on the host."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"dockerless-boot: reading the engine {path}: {exc}. Run the "
                         "dockerless.containers.containers role again to reinstall it.") from None
    sys.meta_path.insert(0, EngineImporter(data["modules"], path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockerless-boot", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=DEFAULT_STORE, help="root of the store (default %(default)s)")
    parser.add_argument("--engine", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine.json"),
                        help="the engine sources the role installed (default: engine.json beside this script)")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("name")
    args = parser.parse_args(argv)
    install_engine(args.engine)

    from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    try:
        if args.action == "start":
            info = runtime.start(args.name)
            print(f"container {args.name}: {info.state}, pid {info.pid}")
        elif args.action == "stop":
            was_running = runtime.stop(args.name)
            print(f"container {args.name}: " + ("stopped" if was_running else "was not running"))
        else:
            info = runtime.inspect(args.name)
            if info is None:
                print(f"container {args.name}: not found in {runtime.containers_dir}", file=sys.stderr)
                return 1
            print(json.dumps(info.as_dict(), indent=1, sort_keys=True))
    except DockerlessError as exc:
        print(f"dockerless-boot {args.action} {args.name}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
