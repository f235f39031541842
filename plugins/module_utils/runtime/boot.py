# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supervisor's module loader, run in its fresh interpreter (``python3 -I -S -c supervisor.BOOT``).

The caller (``supervisor.launch``) sends on the supervisor's stdin one marshal document: ``{"boot": <this
module's code>, "modules": [(dotted name, code object), ...], "main": dotted name, "args": {...}}``; the code
objects are compiled by the caller's interpreter, the same binary. ``BOOT`` reads it, executes this module's
code and calls ``run``. No file of the collection is read by the supervisor: the caller may be an Ansible
module running from a zip that is deleted when the task ends.

Only ``sys``, ``types`` and ``os`` are used: nothing else is loaded yet, and ``-S`` means no site-packages.
"""

import os
import sys
import types


def _package(name: str) -> types.ModuleType:
    """The (empty) package module ``name``, made and hung on its parent the first time."""
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
        parent, _dot, short = name.rpartition(".")
        if parent:
            setattr(_package(parent), short, module)
    return module


def load(name: str, code) -> types.ModuleType:
    """Execute ``code`` as module ``name``, registered in sys.modules (and on its package) before it runs, the way
    the import system does: the modules it imports must have been loaded before it (SUPERVISOR_MODULES' order)."""
    parent, _dot, short = name.rpartition(".")
    module = types.ModuleType(name)
    module.__file__ = code.co_filename
    sys.modules[name] = module
    setattr(_package(parent), short, module)
    exec(code, module.__dict__)
    return module


def run(payload: dict) -> None:
    """Load the payload's modules in order and call ``supervise(**args)`` of its main module."""
    # The payload has been read: stdin is nothing of the container's (a /dev/null, so a stray read gets EOF).
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for name, code in payload["modules"]:
        load(name, code)
    sys.modules[payload["main"]].supervise(**payload["args"])
