# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supervisor's fresh interpreter: the list of modules it is sent (computed here from the sources' imports,
so it can't go stale) and the boot loader (runtime/boot.py) that executes them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from ansible_collections.dockerless.containers.plugins.module_utils.runtime import supervisor

PKG = "ansible_collections.dockerless.containers.plugins.module_utils"
MODULE_UTILS = os.path.dirname(os.path.dirname(os.path.abspath(supervisor.__file__)))


def _path(short: str, root: str) -> str | None:
    base = os.path.join(root, *short.split("."))
    return base + ".py" if os.path.isfile(base + ".py") else None


def _nodes_in_source_order(node):
    for child in ast.iter_child_nodes(node):
        yield child
        yield from _nodes_in_source_order(child)


def imports_of(short: str, root: str = MODULE_UTILS) -> list[str]:
    """The collection's modules that ``short`` imports (anywhere in it: a lazy import must be there too, the
    supervisor has no import system to find it), in source order."""
    with open(_path(short, root), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = []
    for node in _nodes_in_source_order(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith(PKG + "."):
            package = node.module[len(PKG) + 1:]
            for alias in node.names:
                sub = f"{package}.{alias.name}" if package else alias.name
                if _path(sub, root):
                    found.append(sub)              # from package import module
                elif package and _path(package, root):
                    found.append(package)          # from module import name
        elif isinstance(node, ast.Import):
            found += [a.name[len(PKG) + 1:] for a in node.names if a.name.startswith(PKG + ".")]
    return found


def load_order(main: str, root: str = MODULE_UTILS) -> tuple[str, ...]:
    """Each module after the ones it imports (depth first, in import order), ``main`` last."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in imports_of(name, root):
            visit(dep)
        done.append(name)

    visit(main)
    return tuple(done)


def test_supervisor_modules_are_what_the_supervisor_imports_in_load_order():
    assert supervisor.SUPERVISOR_MODULES == load_order("runtime.supervisor")


def test_the_boot_loader_is_imported_by_name():
    # Ansible packs into a module's zip only the module_utils imported by name: a loader looked up with
    # importlib would be missing from every container task's zip ("No module named ...runtime.boot").
    assert "runtime.boot" in imports_of("runtime.supervisor")


def test_the_boot_loader_runs_the_supervisor_in_a_fresh_interpreter(tmp_path):
    """The real payload through the real BOOT: every module loads in order (else an ImportError before anything
    runs) and supervise() runs; here on a folder without a container record, so it fails there, with a trace."""
    container_dir = str(tmp_path / "no-container")
    os.mkdir(container_dir)
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", supervisor.BOOT, "dockerless-supervisor", container_dir],
        input=supervisor._payload(container_dir, None), capture_output=True, timeout=60, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err[-2000:]
    assert "Error" not in err.split("in supervise")[0], err[-2000:]     # nothing failed before supervise()
    assert ", in supervise\n" in err and "runtime/supervisor.py" in err, err[-2000:]
