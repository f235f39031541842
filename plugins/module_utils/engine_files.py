# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's own files, for the two copies of it that live on a host outside an Ansible run: the digest
directories that the modules load the engine from (``install_engine``, run by the engine_install module; see
engine_loader.py) and the systemd units' copy (runtime/systemd.py). Both are made from the sources of the running
engine (``engine_sources``: from the loader that imported them, a payload's zip or an installed engine) and compiled
ahead to ``__pycache__`` (``compile_source``)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import tempfile
import time

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError

PKG = engine_loader.PKG
# Digest directories kept in an engine root besides the one being installed: a controller that switches between a
# few checkouts or versions does not reinstall at each switch, and the root does not grow without end.
KEEP_OLDER = 2
# A temp directory of an installer that died is removed once this old (seconds); a younger one may be in use.
STALE_TMP = 3600


@functools.cache
def _spec(short: str):
    """The import spec of module ``short`` (dotted, below module_utils), found without running the module (only
    the packages above it are imported); None when there is no such module."""
    import importlib.util

    try:
        return importlib.util.find_spec(f"{PKG}.{short}")
    except (ImportError, ValueError):
        return None


def _source(short: str) -> str:
    """The source of module ``short`` (dotted, below module_utils; a package gives its ``__init__``) of the
    collection: from its loader (Ansible ships module_utils in a zip), else from its file."""
    name = f"{PKG}.{short}"
    spec = _spec(short)
    loader = getattr(spec, "loader", None)
    if loader is not None and hasattr(loader, "get_source"):
        try:
            text = loader.get_source(name)
        except (ImportError, OSError):
            text = None
        if text is not None:  # "" is a package's empty __init__ (AnsiballZ's zip holds no file to read instead)
            return text
    path = getattr(spec, "origin", None)
    if not path or not os.path.isfile(path):
        raise RuntimeSetupError(f"installing the engine: the source of {name} is not available. "
                                "Reinstall the collection.")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _is_module(short: str) -> bool:
    """True when ``short`` (dotted, below module_utils) names a module or package of the collection, not an
    attribute of one (``from ...runtime.containers import Runtime``)."""
    return _spec(short) is not None


def is_package(short: str) -> bool:
    spec = _spec(short)
    return spec is not None and spec.submodule_search_locations is not None


# Import statements of the collection's module_utils, at the start of a line (module level or inside a function):
# `from PKG.x import a, b as c`, `from PKG.x import (\n a,\n b,\n)`, `import PKG.x`. A regular expression, not
# ast: container_run plans the engine copy at every run, and parsing the whole engine took seconds on a slow VM.
# A match inside a string only adds a module that exists (checked), never loses one.
_FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(" + re.escape(PKG) + r"(?:\.[\w.]+)?)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)",
                          re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+(" + re.escape(PKG) + r"\.[\w.]+)", re.M)


def _imports(source: str) -> set[str]:
    """The collection's module_utils that ``source`` imports, anywhere (lazy imports inside functions too), as
    dotted names below module_utils (``runtime.containers``), with the packages they sit in (``runtime``):
    importing a submodule imports its packages' ``__init__`` first."""
    found = set()
    for match in _FROM_IMPORT.finditer(source):
        module, names = match.group(1), match.group(2)
        base = module[len(PKG) + 1:]
        if base:
            found.add(base)
        if base and not is_package(base):
            continue  # names in a module, not submodules: asking importlib would run the module
        names = "\n".join(line.split("#", 1)[0] for line in names.strip("()").splitlines())
        for alias in names.replace("\n", ",").split(","):
            alias = alias.split(" as ")[0].strip()
            if not alias.isidentifier():
                continue
            short = f"{base}.{alias}" if base else alias  # `from PKG.runtime import supervisor`: a submodule?
            if _is_module(short):
                found.add(short)
    found.update(m[len(PKG) + 1:] for m in _IMPORT.findall(source))
    out = set()
    for short in found:
        parts = short.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def engine_sources(roots: tuple[str, ...] = engine_loader.ENGINE_ROOTS) -> dict[str, str]:
    """The sources of ``roots`` and every module_utils they import, transitively, by dotted name (packages by their
    ``__init__``'s source). Found from the sources themselves, so a new import in the engine needs no list kept
    in step."""
    sources: dict[str, str] = {}
    todo = sorted(_imports("\n".join(f"import {PKG}.{root}" for root in roots)))
    while todo:
        short = todo.pop()
        if short in sources:
            continue
        sources[short] = _source(short)
        todo.extend(sorted(_imports(sources[short]) - set(sources)))
    return sources


def engine_paths(sources: dict[str, str], top: str) -> dict[str, str]:
    """Path -> text of the engine ``sources`` laid out in the collection's own layout below ``top``. The packages
    above module_utils get an empty ``__init__``: a regular package first on sys.path wins over any namespace
    package of the same name."""
    module_utils = os.path.join(top, *PKG.split("."))
    files = {}
    for short, text in sources.items():
        parts = short.split(".")
        if is_package(short):
            files[os.path.join(module_utils, *parts, "__init__.py")] = text
        else:
            files[os.path.join(module_utils, *parts[:-1], parts[-1] + ".py")] = text
    folder = top
    for part in PKG.split("."):
        folder = os.path.join(folder, part)
        files.setdefault(os.path.join(folder, "__init__.py"), "")
    return files


def compile_source(path: str, where: str) -> None:
    """Compile ``path`` to its ``__pycache__`` (timestamp-checked bytecode, as Python's own import would write it,
    so a later import of a newer source is never misled); ``where`` names the copy in the error."""
    import py_compile

    try:
        py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    except (py_compile.PyCompileError, OSError) as exc:
        raise RuntimeSetupError(f"installing the engine in {where}: compiling {path}: {exc}. Check the python "
                                f"({sys.executable}) and the disk.") from None


def _owned_root(root: str, uid: int) -> None:
    """Make ``root`` (0755) or check it: an engine root that others may write to could have its digest
    directories swapped for theirs."""
    os.makedirs(root, 0o755, exist_ok=True)
    st = os.lstat(root)
    if st.st_uid != uid or st.st_mode & 0o022 or not os.path.isdir(root) or os.path.islink(root):
        raise RuntimeSetupError(f"installing the engine in {root}: the directory must be owned by uid {uid} and not "
                                "writable by group or others. Fix its owner and mode, or set "
                                f"{engine_loader.ROOT_ENV} to another directory.")


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def prune(root: str, keep: str, older: int = KEEP_OLDER, now: float | None = None) -> list[str]:
    """Remove from ``root`` all digest directories but ``keep`` and the ``older`` newest others (by their
    marker's time), and installers' temp directories older than STALE_TMP; returns the names removed."""
    now = time.time() if now is None else now
    dated, removed = [], []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name == keep or not os.path.isdir(path) or os.path.islink(path):
            continue
        if name.startswith("."):
            if now - os.lstat(path).st_mtime > STALE_TMP:
                _rmtree(path)
                removed.append(name)
            continue
        try:
            dated.append((os.lstat(os.path.join(path, engine_loader.MARKER)).st_mtime, name))
        except FileNotFoundError:
            dated.append((0.0, name))  # half-made by hand or by an old version: oldest
    for _mtime, name in sorted(dated, reverse=True)[older:]:
        _rmtree(os.path.join(root, name))
        removed.append(name)
    return removed


def install_engine(root: str, digest: str, sources: dict[str, str], uid: int | None = None) -> dict:
    """Install the engine ``sources`` as ``root/digest``, unless a usable one is there: made in a temp directory
    beside it, compiled, the marker written last, then renamed into place, so the loader never sees it half-made.
    Returns ``changed``, ``path``, ``removed`` (digest directories pruned)."""
    uid = os.geteuid() if uid is None else uid
    if not re.fullmatch(r"[0-9a-f]{64}", digest or ""):
        raise RuntimeSetupError(f"installing the engine: {digest!r} is not a sha256 digest (64 hex digits).")
    _owned_root(root, uid)
    final = os.path.join(root, digest)
    if engine_loader.refusal(final, uid) is None:
        return dict(changed=False, path=final, removed=[])
    if os.path.lexists(final):
        st = os.lstat(final)
        if st.st_uid != uid:
            raise RuntimeSetupError(f"installing the engine: {final} exists and is owned by uid {st.st_uid}, not "
                                    f"{uid}. Remove it, then run again.")
        _rmtree(final) if os.path.isdir(final) and not os.path.islink(final) else os.unlink(final)
    tmp = tempfile.mkdtemp(prefix=f".{digest[:12]}.", dir=root)
    try:
        for path, text in engine_paths(sources, tmp).items():
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(path, 0o644)
            compile_source(path, final)
        for folder, dirs, names in os.walk(tmp):
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o755)
            for name in names:
                os.chmod(os.path.join(folder, name), 0o644)
        marker = os.path.join(tmp, engine_loader.MARKER)
        with open(marker, "w", encoding="utf-8") as handle:
            json.dump({"digest": digest, "python": sys.version.split()[0], "modules": sorted(sources)}, handle)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(marker, 0o644)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if engine_loader.refusal(final, uid) is not None:  # not another installer's finished copy
                raise
            _rmtree(tmp)
            return dict(changed=False, path=final, removed=[])
    except BaseException:
        _rmtree(tmp)
        raise
    return dict(changed=True, path=final, removed=prune(root, digest))
