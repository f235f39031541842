# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supervisor's module loader, run in its fresh interpreter (``python3 -I -S -c supervisor.BOOT``).

The caller (``supervisor.launch``) sends on the supervisor's stdin one marshal document: ``{"boot": <this
module's code>, "modules": [(dotted name, code object), ...], "main": dotted name, "args": {...}}``; the code
objects are compiled by the caller's interpreter, the same binary. ``BOOT`` reads it, executes this module's
code and calls ``run``. No file of the collection is read by the supervisor: the caller may be an Ansible
module running from a zip that is deleted when the task ends.

Only ``sys``, ``os`` and ``marshal`` are used: nothing else is loaded yet, and ``-S`` means no
site-packages.

The same idea serves ``bin/dockerless run`` and ``exec``, the other fresh interpreters of the start path
(runtime/__init__.py): :class:`StartBundle` loads the engine's modules from one file of compiled code,
``module_utils/__pycache__/dockerless-start.<cache tag>.bundle``, instead of asking the import system for each
(directory listings, stats, a ``.pyc`` opened and checked per module: about 0.1 ms a module, some 35 modules,
measured at 2-3 ms of a 45 ms start). It is a cache beside the ``.pyc`` files, with their rules: written only where
they would be (not under ``PYTHONDONTWRITEBYTECODE``), each module checked against its source's mtime (ns) and
size before use and taken from its file otherwise, rewritten by a command that loaded modules the file lacks.
"""

import marshal
import os
import sys

# The module type without ``import types``, which is not on ``dockerless exec``'s path otherwise.
ModuleType = type(sys)


def _package(name: str) -> ModuleType:
    """The (empty) package module ``name``, made and hung on its parent the first time."""
    module = sys.modules.get(name)
    if module is None:
        module = ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
        parent, _dot, short = name.rpartition(".")
        if parent:
            setattr(_package(parent), short, module)
    return module


def load(name: str, code) -> ModuleType:
    """Execute ``code`` as module ``name``, registered in sys.modules (and on its package) before it runs, the way
    the import system does: the modules it imports must have been loaded before it (SUPERVISOR_MODULES' order)."""
    parent, _dot, short = name.rpartition(".")
    module = ModuleType(name)
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


ENGINE = "ansible_collections.dockerless.containers.plugins.module_utils."


class StartBundle:
    """A meta path finder and loader over one bundle file: 8 bytes (the index's length, little endian), the index
    (marshal: ``{"magic": the interpreter's .pyc magic, "modules": {dotted name: (offset, length, source path, is a
    package, source mtime_ns, source size)}}``), then each module's marshalled code at its offset (counted from
    the end of the index). Only the index
    is read at start; a module's code is read (one ``pread``) and unmarshalled when that module is imported, so
    a lazy import stays as cheap as it was and nothing is copied twice."""

    def __init__(self, path: str, modules: dict, fd=None):
        self.path = path
        self.modules = modules   # name -> (offset, length, origin, package, mtime_ns, size)
        self.fd = fd             # the file the offsets are in (the file may be replaced meanwhile: this one stays)
        self.changed = False     # an entry was dropped (source changed): the next save() rewrites the file

    @staticmethod
    def file_for(module_utils: str) -> str:
        return os.path.join(module_utils, "__pycache__", f"dockerless-start.{sys.implementation.cache_tag}.bundle")

    @staticmethod
    def magic():
        return getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)

    @classmethod
    def install(cls, module_utils: str) -> "StartBundle":
        """The bundle of the engine at ``module_utils`` (empty when there is none, or it is unreadable or of
        another interpreter), first on ``sys.meta_path``."""
        path = cls.file_for(module_utils)
        modules: dict = {}
        fd = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            head = os.pread(fd, 8, 0)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if 0 < length <= 1 << 20:
                index = marshal.loads(os.pread(fd, length, 8))
                if isinstance(index, dict) and cls.magic() is not None and index.get("magic") == cls.magic():
                    modules = {name: (8 + length + entry[0], *entry[1:]) for name, entry in index["modules"].items()}
            end = os.fstat(fd).st_size
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            modules, end = {}, 0
        # A file cut short (a full disk, a partial copy) keeps what it holds whole; the rest comes from the sources.
        whole = {name: entry for name, entry in modules.items() if entry[0] + entry[1] <= end}
        if not whole and fd is not None:
            os.close(fd)
            fd = None
        bundle = cls(path, whole, fd)
        bundle.changed = len(whole) != len(modules)
        sys.meta_path.insert(0, bundle)
        return bundle

    def find_spec(self, name: str, path=None, target=None):
        """A spec for ``name`` when the bundle has it and its source is unchanged; None lets the import system
        find it as usual."""
        entry = self.modules.get(name)
        if entry is None:
            return None
        origin, package, mtime, size = entry[2:]
        try:
            stat = os.stat(origin)
        except OSError:
            stat = None
        if stat is None or stat.st_mtime_ns != mtime or stat.st_size != size:
            del self.modules[name]
            self.changed = True
            return None
        spec = sys.modules["_frozen_importlib"].ModuleSpec(name, self, origin=origin, is_package=package)
        if package:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.has_location = True   # __file__ is the source, as for a module loaded from its file
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.get_code(module.__name__), module.__dict__)  # noqa: S102 - the engine's own compiled code

    def _marshalled(self, name: str) -> bytes:
        offset, length = self.modules[name][:2]
        data = os.pread(self.fd, length, offset)
        if len(data) != length:   # checked against the file's size at install: only a file changed in place
            raise ImportError(f"{name}: the start bundle {self.path} changed while in use", name=name)
        return data

    def get_code(self, name: str):
        return marshal.loads(self._marshalled(name))

    def get_source(self, name: str) -> str:
        with open(self.modules[name][2], encoding="utf-8") as handle:
            return handle.read()

    def save(self) -> None:
        """Write the bundle anew, when this process took engine modules from their files (new ones, or changed
        sources): what it had that is still valid, and those. Never raises: it is a cache."""
        if sys.dont_write_bytecode or self.magic() is None:
            return
        folder = os.path.dirname(self.path)
        if not os.access(folder if os.path.isdir(folder) else os.path.dirname(folder), os.W_OK):
            return   # an engine installed by another user: not worth compiling a bundle at every start
        added = {}
        for name, module in list(sys.modules.items()):
            if not name.startswith(ENGINE) or name in self.modules:
                continue
            spec = getattr(module, "__spec__", None)
            loader = getattr(spec, "loader", None)
            origin = getattr(spec, "origin", None)
            if loader is self or not hasattr(loader, "get_code") or not isinstance(origin, str) \
                    or not origin.endswith(".py"):
                continue
            try:
                before = os.stat(origin)
                code = loader.get_code(name)
                after = os.stat(origin)
            except (ImportError, OSError, SyntaxError):
                continue
            if code is None or (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, after.st_size):
                continue
            added[name] = (marshal.dumps(code), origin, spec.submodule_search_locations is not None,
                           after.st_mtime_ns, after.st_size)
        if not added and not self.changed:
            return
        try:
            blobs = {name: (self._marshalled(name),) + tuple(entry[2:]) for name, entry in self.modules.items()}
        except (OSError, ImportError, TypeError):
            blobs = {}
        blobs.update(added)
        index, offset, chunks = {}, 0, []
        for name, (data, *rest) in blobs.items():
            index[name] = (offset, len(data), *rest)
            chunks.append(data)
            offset += len(data)
        head = marshal.dumps({"magic": self.magic(), "modules": index})
        temp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(b"".join([len(head).to_bytes(8, "little"), head, *chunks]))
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(temp, self.path)   # atomic: a concurrent start reads the old file or the new one
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass
