# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd unit of a named container with a restart policy, where systemd is PID 1.

dockerless has no daemon: each detached container has a supervisor process (runtime/supervisor.py) that applies
its restart policy. Nothing restarts a killed supervisor, and nothing starts containers at boot. Where systemd
runs the host (``/run/systemd/system`` exists), container_run gives every named container whose restart policy
is not ``no`` a unit file of its own, ``/etc/systemd/system/dockerless-<name>.service``:

* a **unit file**, not a transient unit (``systemd-run``): a transient unit is gone at the next boot, and boot
  is half of the point; a file is also what ``systemctl cat`` and an admin can read, and it is written only when
  its text changes, so a second run of container_run changes nothing;
* ``Type=forking`` with ``PIDFile``: ExecStart (``dockerless_boot.py start``) launches the supervisor as it
  always does and returns once the container runs (or with the setup error, which fails the start), and the
  supervisor becomes the unit's main process;
* ``Restart=on-abnormal``: systemd restarts the supervisor when a signal killed it (``kill -9``, the OOM
  killer), not when it ended by itself. A supervisor ends by itself only when the container's own policy said
  "no more" (``on-failure`` with exit 0, retries used up) or the user stopped the container, and both must
  stand. The container-level policy stays the supervisor's job (backoff, ``restart_count``);
* ``ExecCondition`` (``dockerless_boot.py condition``): at boot and after a killed supervisor, the start goes on
  only when Docker's restore rule says so (``Runtime.restore_refusal``: ``unless-stopped`` stopped by the user
  stays down); container_run's own start writes ``start.json`` first, which always passes;
* no ``ExecStop``: a unit stopped by systemd (shutdown, ``systemctl stop``) gets SIGTERM to the supervisor,
  which stops the container (stop signal, SIGKILL after the stop timeout) as Docker's daemon does when it
  stops: no user stop (there is no ``stop.json`` request), so ``unless-stopped`` comes back at boot. Without
  an ExecStop, a restart after a killed supervisor costs two python starts (condition, start), not three;
* enabled for ``multi-user.target`` by the symlink ``systemctl enable`` would make.

What the unit runs must exist on the host outside an Ansible run, so ``install_engine`` writes the boot script
(runtime/unit_boot.py's source) and ``engine.json`` (the sources of the engine modules it imports) to
``/usr/local/lib/dockerless``, again only when they differ. The python is the one that runs container_run.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import unit_boot

PKG = "ansible_collections.dockerless.containers.plugins.module_utils"
UNIT_DIR = "/etc/systemd/system"
BOOT_DIR = "/usr/local/lib/dockerless"
SYSTEMD_BOOTED = "/run/systemd/system"  # sd_booted(3)
WANTED_BY = "multi-user.target"
MARK = "# Managed by dockerless.containers (container_run): rewritten or removed with the container."
PID_FILE = "supervisor.pid"
RESTART_SEC = "500ms"


def systemd_booted(path: str = SYSTEMD_BOOTED) -> bool:
    """True when systemd is the host's init (sd_booted: the directory exists only then)."""
    return os.path.isdir(path)


def unit_name(name: str) -> str:
    return f"dockerless-{name}.service"


def wants_unit(restart_policy: str | None) -> bool:
    """Containers with a restart policy other than ``no`` get a unit."""
    return (restart_policy or "no") != "no"


def _source(short: str) -> str:
    """The source of module ``short`` (dotted, below module_utils; a package gives its ``__init__``) of the
    collection: from its loader (Ansible ships module_utils in a zip), else from its file."""
    import importlib

    name = f"{PKG}.{short}"
    module = importlib.import_module(name)
    loader = getattr(module, "__loader__", None)
    if loader is not None and hasattr(loader, "get_source"):
        try:
            text = loader.get_source(name)
        except (ImportError, OSError):
            text = None
        if text is not None:  # "" is a package's empty __init__ (AnsiballZ's zip holds no file to read instead)
            return text
    path = getattr(module, "__file__", None)
    if not path or not os.path.isfile(path):
        raise RuntimeSetupError(f"installing the boot engine: the source of {name} is not available. "
                                "Reinstall the collection.")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _is_module(short: str) -> bool:
    """True when ``short`` (dotted, below module_utils) names a module or package of the collection, not an
    attribute of one (``from ...runtime.containers import Runtime``)."""
    import importlib.util

    try:
        return importlib.util.find_spec(f"{PKG}.{short}") is not None
    except (ImportError, ValueError):
        return False


def is_package(short: str) -> bool:
    import importlib

    return hasattr(importlib.import_module(f"{PKG}.{short}"), "__path__")


def _imports(source: str) -> set[str]:
    """The collection's module_utils that ``source`` imports, anywhere (lazy imports inside functions too), as
    dotted names below module_utils (``runtime.containers``), with the packages they sit in (``runtime``):
    importing a submodule imports its packages' ``__init__`` first."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PKG:
                base = ""
            elif node.module.startswith(PKG + "."):
                base = node.module[len(PKG) + 1:]
                found.add(base)
            else:
                continue
            for alias in node.names:  # `from PKG.runtime import supervisor`: a submodule, or a name in one
                short = f"{base}.{alias.name}" if base else alias.name
                if _is_module(short):
                    found.add(short)
        elif isinstance(node, ast.Import):
            found.update(a.name[len(PKG) + 1:] for a in node.names if a.name.startswith(PKG + "."))
    out = set()
    for short in found:
        parts = short.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def engine_sources(roots: tuple[str, ...] = ("runtime.containers", "runtime.supervisor", "errors")) -> dict[str, str]:
    """The sources the boot script imports: ``roots`` and every module_utils they import, transitively, by dotted
    name (packages by their ``__init__``'s source). Found from the sources themselves, so a new import in the
    engine needs no list kept in step."""
    sources: dict[str, str] = {}
    todo = sorted(_imports("\n".join(f"import {PKG}.{root}" for root in roots)))
    while todo:
        short = todo.pop()
        if short in sources:
            continue
        sources[short] = _source(short)
        todo.extend(sorted(_imports(sources[short]) - set(sources)))
    return sources


class UnitPlan(Record):
    name: str                       # the container
    unit: str                       # dockerless-<name>.service
    actions: list[str]
    before: str | None              # the unit file's text now (None: none)
    after: str | None               # its text afterwards (None: removed / none)
    files: dict[str, str]           # boot script and engine to (re)write: path -> text

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class Units:
    """Unit files of containers in ``unit_dir``, run by ``python`` with the boot script in ``boot_dir``;
    ``systemctl`` is called for daemon-reload and start only while ``running`` (systemd is the init)."""

    def __init__(self, store_root: str, unit_dir: str = UNIT_DIR, boot_dir: str = BOOT_DIR,
                 python: str | None = None, systemctl: str = "systemctl", running: bool | None = None):
        self.store_root = os.path.abspath(store_root)
        self.unit_dir = unit_dir
        self.boot_dir = boot_dir
        self.python = python or sys.executable
        self.systemctl = systemctl
        self.running = systemd_booted() if running is None else running

    @property
    def boot_script(self) -> str:
        return os.path.join(self.boot_dir, "dockerless_boot.py")

    def unit_path(self, name: str) -> str:
        return os.path.join(self.unit_dir, unit_name(name))

    def wants_link(self, name: str) -> str:
        return os.path.join(self.unit_dir, f"{WANTED_BY}.wants", unit_name(name))

    def render(self, name: str, stop_timeout: float = 10) -> str:
        """The unit file of container ``name``."""
        for what, path in (("store", self.store_root), ("boot directory", self.boot_dir), ("python", self.python)):
            # systemd splits ExecStart on whitespace and expands % and $; a path with those would run something
            # else than written. Checked only when a unit is wanted: containers without one don't care.
            if not os.path.isabs(path) or any(c in path for c in " \t\n\"'\\%$;"):
                raise RuntimeSetupError(f"systemd unit of container {name}: the {what} path {path!r} must be "
                                        "absolute, without whitespace, quotes, backslashes, % $ or ;. Use another "
                                        "path, or restart_policy no.")
        boot = f"{self.python} -I {self.boot_script} --store {self.store_root}"
        cdir = os.path.join(self.store_root, "containers", name)
        return "\n".join([
            MARK,
            "[Unit]",
            f"Description=dockerless container {name}",
            "Wants=network-online.target",
            "After=network-online.target local-fs.target",
            f"RequiresMountsFor={self.store_root} {self.boot_dir}",
            # A container that keeps failing its setup must not stop being retried after a kill -9 storm.
            "StartLimitIntervalSec=0",
            "",
            "[Service]",
            "Type=forking",
            f"PIDFile={cdir}/{PID_FILE}",
            f"ExecCondition={boot} condition {name}",
            f"ExecStart={boot} --pid-file {cdir}/{PID_FILE} start {name}",
            "Restart=on-abnormal",
            f"RestartSec={RESTART_SEC}",
            # Only the supervisor is in the unit's cgroup (the container has its own, dockerless/<name>, and dies
            # with the supervisor: PDEATHSIG), so the stop's SIGTERM reaches the supervisor alone.
            "KillMode=control-group",
            "TimeoutStartSec=330",
            f"TimeoutStopSec={int(stop_timeout) + 30}",
            "",
            "[Install]",
            f"WantedBy={WANTED_BY}",
            "",
        ])

    def engine_files(self) -> dict[str, str]:
        sources = engine_sources()
        engine = json.dumps({"modules": sources, "packages": sorted(s for s in sources if is_package(s))},
                            sort_keys=True, indent=0) + "\n"
        return {self.boot_script: _source(unit_boot.__name__[len(PKG) + 1:]),
                os.path.join(self.boot_dir, "engine.json"): engine}

    def _read(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise RuntimeSetupError(f"systemd unit: reading {path}: {exc}. Fix or remove the file.") from None

    def plan(self, name: str, restart_policy: str | None, stop_timeout: float = 10) -> UnitPlan:
        """What it takes to give container ``name`` its unit (``restart_policy`` other than no) or take it away
        (``restart_policy`` None or no: the container has no policy or is being removed)."""
        unit = unit_name(name)
        path = self.unit_path(name)
        before = self._read(path)
        if before is not None and not before.startswith(MARK):
            raise RuntimeSetupError(f"systemd unit {path}: exists and was not written by dockerless; it would "
                                    f"be overwritten or removed. Rename or remove it, then run again.")
        actions: list[str] = []
        files: dict[str, str] = {}
        if not wants_unit(restart_policy):
            if before is not None or os.path.lexists(self.wants_link(name)):
                actions = [f"disable unit {unit}", f"remove unit {unit}"]
            return UnitPlan(name, unit, actions, before, None, files)
        after = self.render(name, stop_timeout)
        for file_path, text in self.engine_files().items():
            if self._read(file_path) != text:
                files[file_path] = text
        if files:
            actions.append(f"install the boot engine in {self.boot_dir}")
        if before != after:
            actions.append(f"write unit {unit}")
        link = self.wants_link(name)
        if not (os.path.islink(link) and os.readlink(link) == path):
            actions.append(f"enable unit {unit}")
        return UnitPlan(name, unit, actions, before, after, files)

    def apply(self, plan: UnitPlan) -> None:
        """Carry out ``plan``: files first, then one daemon-reload when a unit file changed."""
        if not plan.changed:
            return
        path = self.unit_path(plan.name)
        link = self.wants_link(plan.name)
        if plan.after is None:
            for victim in (link, path):
                try:
                    os.unlink(victim)
                except FileNotFoundError:
                    pass
        else:
            for file_path, text in plan.files.items():
                _write(file_path, text, 0o644, 0o755)
            if plan.before != plan.after:
                _write(path, plan.after, 0o644, 0o755)
            if not (os.path.islink(link) and os.readlink(link) == path):
                os.makedirs(os.path.dirname(link), 0o755, exist_ok=True)
                try:
                    os.unlink(link)
                except FileNotFoundError:
                    pass
                os.symlink(path, link)
        if self.running and (plan.before != plan.after):
            self._systemctl("daemon-reload")

    def start(self, runtime, name: str):
        """Start container ``name`` through its unit, so that its supervisor is the unit's main process; returns
        the container as ``Runtime.start`` does, raises RuntimeSetupError with the container's setup error."""
        cdir = runtime.container_dir(name)
        request = os.path.join(cdir, unit_boot.START_REQUEST)
        _write(request, "{}\n", 0o600, 0o700)
        try:
            proc = self._systemctl("start", unit_name(name), check=False)
        finally:
            try:
                os.unlink(request)
            except FileNotFoundError:
                pass
        info = runtime.inspect(name)
        if proc.returncode != 0 or info is None or not info.supervised:
            error = (info.error if info is not None else None) or proc.stderr.strip() or "no reason given"
            raise RuntimeSetupError(f"container {name}: starting unit {unit_name(name)} failed: {error}. See "
                                    f"journalctl -u {unit_name(name)}.")
        return info

    def _systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run([self.systemctl, *args], capture_output=True, text=True, check=False,
                                  timeout=400)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeSetupError(f"systemctl {' '.join(args)}: {exc}. Check systemd on this host.") from None
        if check and proc.returncode != 0:
            raise RuntimeSetupError(f"systemctl {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}. "
                                    "Check systemd on this host (journalctl -xe).")
        return proc


def _write(path: str, text: str, mode: int, dir_mode: int) -> None:
    """Write ``path`` through a temp file beside it, fsynced, then renamed: a unit or the engine is never seen
    half-written by systemd or a boot after a crash."""
    os.makedirs(os.path.dirname(path), dir_mode, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
