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
* it runs the **command line**, ``dockerless start --by-policy NAME``, from the copy of the collection's engine
  that ``install`` keeps in ``/usr/local/lib/dockerless`` (below);
* ``Type=forking`` with ``PIDFile``: ExecStart launches the supervisor as ``dockerless start`` always does and
  returns once the container runs (or with the setup error, which fails the start), and the supervisor becomes
  the unit's main process;
* ``Restart=on-abnormal``: systemd restarts the supervisor when a signal killed it (``kill -9``, the OOM
  killer), not when it ended by itself. A supervisor ends by itself only when the container's own policy said
  "no more" (``on-failure`` with exit 0, retries used up) or the user stopped the container, and both must
  stand. The container-level policy stays the supervisor's job (backoff, ``restart_count``). ``RestartSec`` is
  Docker's first restart delay, 100 ms;
* ``ExecCondition`` (``dockerless start --by-policy --check NAME``): at boot and after a killed supervisor, the
  start goes on only when Docker's restore rule says so (``Runtime.restore_refusal``: ``unless-stopped`` stopped
  by the user stays down), else systemd skips it without a failure; container_run's own start writes
  ``start.json`` first, which always passes;
* no ``ExecStop``: a unit stopped by systemd (shutdown, ``systemctl stop``) gets SIGTERM to the supervisor,
  which stops the container (stop signal, SIGKILL after the stop timeout) as Docker's daemon does when it
  stops: no user stop (there is no ``stop.json`` request), so ``unless-stopped`` comes back at boot. Without
  an ExecStop, a restart after a killed supervisor costs two python starts (condition, start) before the
  supervisor's own, not three;
* enabled for ``multi-user.target`` by the symlink ``systemctl enable`` would make.

What the unit runs must exist on the host outside an Ansible run: Ansible ships module_utils to a host only
inside each module run. So ``Units`` installs the engine there, in the collection's own layout
(``/usr/local/lib/dockerless/ansible_collections/dockerless/containers/plugins/module_utils/...``): the command
line's module (cli/main.py) and every module it imports, found from the sources (``engine_sources``, no list kept
by hand), compiled ahead to ``__pycache__`` so that a restart reads bytecode instead of compiling the engine under
load; ``bin/dockerless`` beside them, linked from ``/usr/local/bin/dockerless`` when that name is free, is the
same command line for the host's admin. Files are rewritten only when they differ from the collection that runs,
files of an older engine removed. The python is the one that runs container_run, started ``-I -S``: no
environment, no user or system site-packages, so no other ``ansible_collections`` on the host can shadow the copy.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.dockerless.containers.plugins.module_utils import engine_files as engine_files_lib
from ansible_collections.dockerless.containers.plugins.module_utils.engine_files import (
    PKG,
    compile_source,
    engine_paths,
)
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import state as runtime_state

UNIT_DIR = "/etc/systemd/system"
BOOT_DIR = "/usr/local/lib/dockerless"
BIN_LINK = "/usr/local/bin/dockerless"
SYSTEMD_BOOTED = "/run/systemd/system"  # sd_booted(3)
WANTED_BY = "multi-user.target"
MARK = "# Managed by dockerless.containers (container_run): rewritten or removed with the container."
ENTRY_MARK = "# Managed by dockerless.containers (container_run): the engine copy's command line, rewritten with it."
PID_FILE = "supervisor.pid"
RESTART_SEC = "100ms"
# The command line and all it imports, copied from the engine that runs container_run: the digest directory the
# module loaded it from (engine_loader), or the checkout.
ENGINE_ROOTS = ("cli.main",)
# What an earlier version installed in BOOT_DIR (a loader and the sources in one JSON file): removed.
OLD_BOOT_FILES = ("dockerless_boot.py", "engine.json")
# The containers role's own units before container_run made them (dockerless-container-<name>.service, a oneshot
# that ran the old loader): removed with its wants link when container_run manages the container.
OLD_ROLE_UNIT = "dockerless-container-{}.service"
OLD_ROLE_MARK = "# Managed by the dockerless.containers.containers role"


def systemd_booted(path: str = SYSTEMD_BOOTED) -> bool:
    """True when systemd is the host's init (sd_booted: the directory exists only then)."""
    return os.path.isdir(path)


def unit_name(name: str) -> str:
    return f"dockerless-{name}.service"


def wants_unit(restart_policy: str | None) -> bool:
    """Containers with a restart policy other than ``no`` get a unit."""
    return (restart_policy or "no") != "no"


def engine_sources(roots: tuple[str, ...] = ENGINE_ROOTS) -> dict[str, str]:
    """The sources of the units' engine copy (engine_files.engine_sources of the command line)."""
    return engine_files_lib.engine_sources(roots)


class UnitPlan(Record):
    name: str                       # the container
    unit: str                       # dockerless-<name>.service
    actions: list[str]
    before: str | None              # the unit file's text now (None: none)
    after: str | None               # its text afterwards (None: removed / none)
    files: dict[str, str]           # engine files to (re)write: path -> text
    removes: list[str]              # files of an older engine to remove
    link: bool = False              # (re)make the /usr/local/bin/dockerless link
    old_unit: bool = False          # remove the containers role's older unit of this container

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class Units:
    """Unit files of containers in ``unit_dir``, run by ``python`` with the engine copy in ``boot_dir`` (and its
    command line linked from ``bin_link``, None: no link); ``systemctl`` is called for daemon-reload and start
    only while ``running`` (systemd is the init)."""

    def __init__(self, store_root: str, unit_dir: str = UNIT_DIR, boot_dir: str = BOOT_DIR,
                 python: str | None = None, systemctl: str = "systemctl", running: bool | None = None,
                 bin_link: str | None = BIN_LINK):
        self.store_root = os.path.abspath(store_root)
        self.unit_dir = unit_dir
        self.boot_dir = boot_dir
        self.python = python or sys.executable
        self.systemctl = systemctl
        self.running = systemd_booted() if running is None else running
        self.bin_link = bin_link

    @property
    def entry(self) -> str:
        """The engine copy's command line, what the units run."""
        return os.path.join(self.boot_dir, "bin", "dockerless")

    @property
    def module_utils(self) -> str:
        return os.path.join(self.boot_dir, *PKG.split("."))

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
        start = f"{self.python} -I -S {self.entry} start --store {self.store_root} --by-policy"
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
            f"ExecCondition={start} --check {name}",
            f"ExecStart={start} --pid-file {cdir}/{PID_FILE} {name}",
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

    def entry_text(self) -> str:
        """The copy's ``bin/dockerless``: the collection's own bin/dockerless finds the collection from its path,
        this one knows it."""
        return "\n".join([
            f"#!{self.python} -I",
            ENTRY_MARK,
            "import os",
            "import sys",
            "",
            f"sys.path.insert(0, {self.boot_dir!r})",
            f"from {PKG}.cli.main import console  # noqa: E402",
            "",
            "os._exit(console())",
            "",
        ])

    def engine_files(self) -> dict[str, str]:
        """Path -> text of every file of the engine copy, its command line included."""
        files = engine_paths(engine_sources(), self.boot_dir)
        files[self.entry] = self.entry_text()
        return files

    def stale_files(self, keep) -> list[str]:
        """Files of an older engine: sources of the copy that the engine no longer has, and the old loader's."""
        stale = [os.path.join(self.boot_dir, name) for name in OLD_BOOT_FILES
                 if os.path.lexists(os.path.join(self.boot_dir, name))]
        root = os.path.join(self.boot_dir, "ansible_collections")
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            stale.extend(os.path.join(folder, n) for n in names
                         if n.endswith(".py") and os.path.join(folder, n) not in keep)
        return sorted(stale)

    def _link_wanted(self) -> bool:
        """The admin's /usr/local/bin/dockerless: made when the name is free, kept pointing at the copy when it is
        our link; any other file there is the admin's and left alone."""
        if self.bin_link is None:
            return False
        if os.path.islink(self.bin_link):
            target = os.readlink(self.bin_link)
            return target != self.entry and target.startswith(self.boot_dir + os.sep)
        return not os.path.lexists(self.bin_link)

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
        old_text = self._read(self._old_unit(name))
        old_unit = old_text is not None and old_text.startswith(OLD_ROLE_MARK)
        if old_unit:
            actions.append(f"remove unit {OLD_ROLE_UNIT.format(name)}")
        if not wants_unit(restart_policy):
            if before is not None or os.path.lexists(self.wants_link(name)):
                actions += [f"disable unit {unit}", f"remove unit {unit}"]
            return UnitPlan(name, unit, actions, before, None, files, [], old_unit=old_unit)
        after = self.render(name, stop_timeout)
        wanted = self.engine_files()
        for file_path, text in wanted.items():
            if self._read(file_path) != text:
                files[file_path] = text
        removes = self.stale_files(wanted)
        link = self._link_wanted()
        if files or removes or link:
            actions.append(f"install the engine in {self.boot_dir}")
        if before != after:
            actions.append(f"write unit {unit}")
        wants = self.wants_link(name)
        if not (os.path.islink(wants) and os.readlink(wants) == path):
            actions.append(f"enable unit {unit}")
        return UnitPlan(name, unit, actions, before, after, files, removes, link, old_unit)

    def _old_unit(self, name: str) -> str:
        return os.path.join(self.unit_dir, OLD_ROLE_UNIT.format(name))

    def apply(self, plan: UnitPlan) -> None:
        """Carry out ``plan``: files first, then one daemon-reload when a unit file changed."""
        if not plan.changed:
            return
        path = self.unit_path(plan.name)
        link = self.wants_link(plan.name)
        if plan.old_unit:
            # Not stopped: its ExecStop would stop the container. Once removed and reloaded, systemd forgets it.
            old = self._old_unit(plan.name)
            _remove(os.path.join(self.unit_dir, f"{WANTED_BY}.wants", os.path.basename(old)))
            _remove(old)
        if plan.after is None:
            for victim in (link, path):
                _remove(victim)
        else:
            self._install(plan)
            if plan.before != plan.after:
                _write(path, plan.after, 0o644, 0o755)
            if not (os.path.islink(link) and os.readlink(link) == path):
                os.makedirs(os.path.dirname(link), 0o755, exist_ok=True)
                _remove(link)
                os.symlink(path, link)
        if self.running and (plan.before != plan.after or plan.old_unit):
            self._systemctl("daemon-reload")

    def _install(self, plan: UnitPlan) -> None:
        """The engine's files, each compiled to its ``__pycache__`` (timestamp-checked bytecode, as Python's own
        import would write it, so a later import by a newer source is never misled)."""
        for victim in plan.removes:
            _remove(victim)
        for file_path, text in plan.files.items():
            executable = file_path == self.entry
            _write(file_path, text, 0o755 if executable else 0o644, 0o755)
            if not executable:
                compile_source(file_path, self.boot_dir)
        if plan.link:
            os.makedirs(os.path.dirname(self.bin_link), 0o755, exist_ok=True)
            _remove(self.bin_link)
            os.symlink(self.entry, self.bin_link)

    def start(self, runtime, name: str):
        """Start container ``name`` through its unit, so that its supervisor is the unit's main process; returns
        the container as ``Runtime.start`` does, raises RuntimeSetupError with the container's setup error."""
        cdir = runtime.container_dir(name)
        request = os.path.join(cdir, runtime_state.START_FILE)
        _write(request, "{}\n", 0o600, 0o700)
        try:
            proc = self._systemctl("start", unit_name(name), check=False)
        finally:
            _remove(request)
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


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
        _remove(tmp)
        raise
