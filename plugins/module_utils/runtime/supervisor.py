# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The supervisor of a detached container: one small process per container that outlives the caller.

``launch(container_dir)`` double-forks (setsid in between, so the supervisor has no controlling terminal and
is not the caller's child) and execs a **fresh** interpreter, ``python3 -I -S -c BOOT``: the caller may be an
Ansible module holding registry passwords in memory and running from a zip that Ansible deletes when it ends,
so the supervisor neither inherits the caller's memory nor reads code from its files. The sources of the few
modules it needs (``SUPERVISOR_MODULES``) are sent on its stdin and executed there; no file is written.
``dockerless start`` (what the systemd units run) holds no secret and runs from files that stay: its
supervisor is the forked child itself (``launch(fresh=False)``), one interpreter start less.

The supervisor (``supervise``) holds ``supervisor.lock``, starts the container (spawn.spawn, the same
path as a foreground run), records pid/state/exit code/times in ``state.json``, copies stdout/stderr into
size-capped logs, and applies the restart policy (``should_restart``, ``next_delay``: moby's restartmanager).
SIGTERM asks it to stop the container: the stop signal (the image's StopSignal, SIGTERM by default, or the
one in ``stop.json``) to the container's PID 1, SIGKILL after the stop timeout; then it records the exit as
stopped by the user and ends. SIGUSR2 asks it to send ``kill.json``'s signal to PID 1; SIGKILL or the stop
signal also mean "no restart after this exit". The first start's outcome (running, or the setup error) is
written to a pipe the caller waits on.

It lowers its own OOM score first (``lower_oom_score``, conmon's -1000), so that under memory pressure the
kernel kills a container's processes before the supervisor that would restart them; the container's init
sets its own score back (init_sequence) before anything of the image runs.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError, RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.network import attach
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import boot, process, spawn
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import health as runtime_health
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import state as runtime_state

_PKG = "ansible_collections.dockerless.containers.plugins.module_utils."
# Every module the supervisor imports, each after the modules it imports (its module-level imports first, in
# the order Python would finish loading them): the boot loader executes them in this order, with no import
# system behind it. test_supervisor_boot.py computes this list from the sources and compares.
SUPERVISOR_MODULES = ("linux", "errors", "network.etc_files", "records", "network.rtnetlink", "network.networks",
                      "network.conntrack", "network.firewall", "network.attach", "runtime.boot", "runtime.process",
                      "runtime.capabilities", "runtime.seccomp.default", "runtime.seccomp.filter",
                      "image.layers.whiteouts", "runtime.rootfs", "runtime.users", "runtime.init_sequence",
                      "runtime.spawn", "store_root", "cgroups.limits", "cgroups.devices", "cgroups.knob", "cgroups.cpu",
                      "cgroups.cpuset", "cgroups.io", "cgroups.memory", "cgroups.pids", "cgroups.hierarchy",
                      "cgroups.cgroup", "runtime.state", "runtime.exec", "runtime.health", "runtime.supervisor")

# What `ps` shows: the loader itself (runtime/boot.py, compiled by the caller) comes with the payload.
BOOT = "import sys,marshal;p=marshal.loads(sys.stdin.buffer.read());g={};exec(p['boot'],g);g['run'](p)"

# moby restartmanager: the first delay is 100 ms, each next one doubles, up to a minute; a run of 10 s or more
# starts the series again.
RESTART_DELAY_MIN, RESTART_DELAY_MAX, RESTART_RESET_AFTER = 0.1, 60.0, 10.0
SUPERVISOR_OOM_SCORE_ADJ = -1000


def should_restart(policy: str, exit_code: int | None, restart_count: int, retries: int = 0,
                   stopped_by_user: bool = False) -> bool:
    """Docker's rule (moby restartmanager.ShouldRestart): ``always`` restarts, ``unless-stopped`` unless the user
    stopped it, ``on-failure`` on a non-zero exit while ``restart_count`` is below ``retries`` (0: no limit)."""
    if policy == "always":
        return True
    if policy == "unless-stopped":
        return not stopped_by_user
    if policy == "on-failure":
        return exit_code != 0 and (not retries or restart_count < retries)
    return False


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart: 100 ms, doubled each time up to a minute; 100 ms again after a run of
    10 s or more (moby restartmanager). ``previous`` is 0 before the first restart."""
    if ran_for >= RESTART_RESET_AFTER:
        previous = 0
    if previous <= 0:
        return RESTART_DELAY_MIN
    return min(previous * 2, RESTART_DELAY_MAX)


def lower_oom_score(target: int = SUPERVISOR_OOM_SCORE_ADJ) -> tuple[int | None, str | None]:
    """Lower our oom_score_adj to ``target`` (conmon: -1000), or as far as the kernel lets a process without
    CAP_SYS_RESOURCE go (the floor it inherited, 0 for most): returns (the value now, why not ``target``)."""
    try:
        current = process.oom_score_adj()
    except OSError as exc:
        return None, f"reading oom_score_adj: {exc}"
    problem = None
    for value in (target, 0):
        if value >= current:
            break
        try:
            process.set_oom_score_adj(value)
            current = value
            break
        except OSError as exc:
            if problem is None:
                problem = f"setting oom_score_adj {value}: {exc.strerror or exc}"
    return current, problem if current != target else None


START_TIMEOUT = 300.0  # seconds the caller waits for the first start (a copy-fallback rootfs takes a while)


def _code(name: str):
    """The code object of module ``name``: from its loader (a cached .pyc when there is one; compiled from the
    zip's source under Ansible), else compiled from its file."""
    module = sys.modules[name]
    loader = getattr(module, "__loader__", None)
    if loader is not None and hasattr(loader, "get_code"):
        try:
            code = loader.get_code(name)
        except (ImportError, OSError):
            code = None
        if code is not None:
            return code
    path = getattr(module, "__file__", None)
    if not path or not os.path.exists(path):
        raise RuntimeSetupError(f"starting the supervisor: the code of {name} is not available. "
                                "Reinstall the collection.")
    with open(path, encoding="utf-8") as handle:
        return compile(handle.read(), path, "exec")


def _payload(container_dir: str, notify_fd: int, restart_count: int = 0) -> bytes:
    import importlib
    import marshal

    modules = []
    for short in SUPERVISOR_MODULES:
        name = _PKG + short
        importlib.import_module(name)
        modules.append((name, _code(name)))
    # boot is imported at the top, by name: Ansible packs only the module_utils a module imports.
    return marshal.dumps({"boot": _code(boot.__name__), "modules": modules,
                          "main": _PKG + "runtime.supervisor",
                          "args": {"container_dir": container_dir, "notify_fd": notify_fd,
                                   "restart_count": restart_count}})


def launch(container_dir: str, python: str | None = None, timeout: float = START_TIMEOUT,
           restart_count: int = 0, fresh: bool = True) -> dict:
    """Start the supervisor of the container in ``container_dir`` and wait for the first start's outcome:
    ``{"state": "running", "pid": ...}`` or ``{"error": ...}``. The supervisor is not our child.
    ``restart_count``: where its count of restarts begins (a restart after the previous supervisor vanished
    continues the count, as Docker's does; a start by the user begins at 0).
    ``fresh=False``: the forked child becomes the supervisor without exec'ing a new interpreter. Only for a
    caller that holds no secret and runs from files that stay (``dockerless start``, what the systemd units
    run): a restart after a killed supervisor then costs one python start less, the one that mattered most on a
    slow host (runtime/systemd.py)."""
    if not fresh:
        return _launch_forked(container_dir, timeout, restart_count)
    python = python or sys.executable
    payload = _payload(container_dir, 3, restart_count)
    code_r, code_w = os.pipe()
    notify_r, notify_w = os.pipe()
    log = os.open(os.path.join(container_dir, "supervisor.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.dup2(code_r, 0)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(log, 2)
            os.dup2(notify_w, 3)
            # Nothing else of the caller's (Ansible's result pipe above all) may stay open in the supervisor.
            process.keep_only_fds({0, 1, 2, 3})
            process.reset_signals()
            os.chdir("/")
            os.execv(python, [python, "-I", "-S", "-c", BOOT, "dockerless-supervisor", container_dir])
        finally:
            os._exit(127)
    os.close(code_r)
    os.close(notify_w)
    os.close(log)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(code_w, view[:65536])
            view = view[written:]
    except BrokenPipeError:
        pass
    finally:
        os.close(code_w)
    os.waitpid(pid, 0)
    return _outcome(container_dir, notify_r, timeout)


def _launch_forked(container_dir: str, timeout: float, restart_count: int) -> dict:
    """``launch`` without a new interpreter: the grandchild runs ``supervise`` with the modules already loaded."""
    notify_r, notify_w = os.pipe()
    log = os.open(os.path.join(container_dir, "supervisor.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log, 2)
            os.dup2(notify_w, 3)
            process.keep_only_fds({0, 1, 2, 3})
            process.reset_signals()
            # What a fresh interpreter starts with: a write to a closed pipe raises, it does not kill.
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            os.chdir("/")
            supervise(container_dir, 3, restart_count)   # never returns: os._exit
        finally:
            os._exit(127)
    os.close(notify_w)
    os.close(log)
    os.waitpid(pid, 0)
    return _outcome(container_dir, notify_r, timeout)


def _outcome(container_dir: str, notify_r: int, timeout: float) -> dict:
    """The first start's outcome the supervisor writes to ``notify_r`` (closed here)."""
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready = select.select([notify_r], [], [], max(0.0, deadline - time.monotonic()))[0]
            if not ready:
                return {"error": f"the supervisor did not report within {timeout:.0f}s; see "
                                 f"{os.path.join(container_dir, 'supervisor.log')}"}
            chunk = os.read(notify_r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(notify_r)
    if not data:
        tail = b""
        try:
            with open(os.path.join(container_dir, "supervisor.log"), "rb") as handle:
                tail = handle.read()[-2000:]
        except OSError:
            pass
        return {"error": "the supervisor ended without reporting: " + tail.decode("utf-8", "replace").strip()}
    return json.loads(data.decode().strip().splitlines()[-1])


class _Supervisor:
    def __init__(self, container_dir: str, notify_fd: int | None, restart_count: int = 0):
        self.dir = container_dir
        self.store = os.path.dirname(os.path.dirname(os.path.abspath(container_dir)))
        self.first_restart_count = max(0, int(restart_count))
        self.notify_fd = notify_fd
        self.record = runtime_state.read_json(os.path.join(container_dir, runtime_state.SPEC_FILE)) or {}
        self.name = self.record.get("name") or os.path.basename(container_dir)
        spec = self.record.get("spec") or {}
        self.config = self.record["config"]
        self.limits = spec.get("limits") or {}
        self.policy = spec.get("restart_policy") or "no"
        self.retries = int(spec.get("restart_retries") or 0)
        self.stop_timeout = float(spec.get("stop_timeout", 10))
        self.stop_signal = runtime_state.signal_number(spec.get("stop_signal") or "SIGTERM")
        self.log_max = int(self.record.get("log_max_size") or runtime_state.DEFAULT_LOG_MAX)
        self.state_path = os.path.join(container_dir, runtime_state.STATE_FILE)
        self.state = runtime_state.read_json(self.state_path) or {}
        self.stop_requested = False     # stop: the stop signal now, SIGKILL after the timeout, no restart
        self.no_restart = False         # the user ended it (stop, kill with SIGKILL or the stop signal)
        # False when the stop came from the host, not through Runtime.stop (which writes stop.json first):
        # systemd stopping the unit, init at shutdown, an admin's kill. The container ends, but unless-stopped
        # still starts it at the next boot (Docker: a daemon shutdown is no user stop).
        self.by_user = True
        self.pending: list[int] = []    # signals `kill` asked for, not yet sent to PID 1
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Healthcheck (runtime/health.py): run through the exec path while the container runs; on unhealthy,
        # health_on_failure kills it, or kills and starts it again whatever the restart policy says.
        self.check = spec.get("healthcheck")
        self.on_failure = spec.get("health_on_failure") or "none"
        self.health_restart = False

    # -- state ---------------------------------------------------------------------------------------------
    def save(self, **changes) -> None:
        self.state.update(changes)
        runtime_state.write_json(self.state_path, self.state)

    def notify(self, **msg) -> None:
        if self.notify_fd is not None:
            try:
                os.write(self.notify_fd, json.dumps(msg).encode() + b"\n")
            except OSError:
                pass
            os.close(self.notify_fd)
            self.notify_fd = None

    # -- signals -------------------------------------------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        if not self.stop_requested:
            self.stop_requested = self.no_restart = True
            # The caller may ask for another grace period than the spec's (container_run's stop_timeout, stop
            # -t), or another signal (rm -f: SIGKILL at once).
            request = self._request(runtime_state.STOP_FILE)
            if isinstance(request.get("timeout"), (int, float)):
                self.stop_timeout = max(0.0, float(request["timeout"]))
            if not request:
                self.by_user = False
            if request.get("signal"):
                try:
                    self.stop_signal = runtime_state.signal_number(str(request["signal"]))
                except ValueError:
                    pass

    def _on_kill(self, _signum, _frame) -> None:
        request = self._request(runtime_state.KILL_FILE)
        try:
            sig = runtime_state.signal_number(str(request.get("signal") or "SIGKILL"))
        except ValueError:
            return
        if sig in (signal.SIGKILL, self.stop_signal):
            self.no_restart = True
        self.pending.append(sig)

    def _request(self, name: str) -> dict:
        try:
            return runtime_state.read_json(os.path.join(self.dir, name)) or {}
        except DockerlessError:
            return {}

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    # -- one run of the container ----------------------------------------------------------------------------
    def network_plan(self) -> list[dict] | None:
        """Leases and bridges of the container's networks (network/attach.py), at each run: the same lease every
        time, bridges made again after a reboot or an ``ip link del``."""
        spec = self.record.get("spec") or {}
        if not spec.get("networks"):
            return None
        cid = self.record.get("id") or ""
        etc_dir = os.path.join(self.dir, "etc")
        return attach.prepare(self.store, self.name, cid, spec["networks"], name=self.name,
                              names=[self.config.get("hostname") or "", self.name, cid[:12]],
                              aliases=spec.get("network_aliases") or (),
                              etc_dir=etc_dir if os.path.isdir(etc_dir) else None,
                              etc_hosts=spec.get("etc_hosts") or {}, requested=spec.get("ipv4_address"))

    def run_once(self) -> tuple[int | None, str | None]:
        self.pending.clear()  # a signal meant for the previous run (the container was restarting) is dropped
        plan = self.network_plan()
        cgroup = runtime_state.ContainerCgroup(self.name, self.limits, devices=not self.config.get("privileged"))
        cgroup.create()
        self.config["join_tasks"] = cgroup.join_tasks
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            proc = spawn.spawn(self.config, null, out_w, err_w, before_unshare=cgroup.join,
                               after_unshare=(lambda pid: attach.setup(plan, pid)) if plan else None)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            cgroup.remove()
            raise
        finally:
            for fd in (out_w, err_w, null):
                os.close(fd)
        logs = {out_r: runtime_state.CappedLog(os.path.join(self.dir, "stdout.log"), self.log_max),
                err_r: runtime_state.CappedLog(os.path.join(self.dir, "stderr.log"), self.log_max)}
        pidfd = os.pidfd_open(proc.monitor_pid)
        started = False
        stop_deadline = None
        killed = False
        exited_at = None

        def record_start() -> None:
            # A new run starts a new health history (Docker: starting again after each start).
            health[0] = runtime_health.Health(self.check) if self.check else None
            self.save(state="running", pid=proc.pid, monitor_pid=proc.monitor_pid, started_at=self.now(),
                      finished_at=None, exit_code=None, rootfs_mode=proc.rootfs_mode, cgroup=cgroup.path,
                      oom_killed=False, error=None, health=health[0].as_dict() if health[0] else None,
                      networks=attach.shown(plan) if plan else None)
            if plan:  # its peers resolve it from now on (it is recorded as running)
                attach.refresh(self.store, self.name)
            self.notify(state="running", pid=proc.pid)

        health: list = [None]     # this run's Health, once the command runs
        probe = None              # the check running now (runtime_health.Probe)
        try:
            while logs or proc.status_fd is not None:
                if proc.status_fd is None and not started:
                    started = True
                    if proc.error:
                        break
                    record_start()
                if self.stop_requested and stop_deadline is None:
                    proc.send(self.stop_signal)
                    killed = self.stop_signal == signal.SIGKILL
                    stop_deadline = time.monotonic() + self.stop_timeout
                # Only to the image's command: before its exec the init has the default dispositions (SIGHUP
                # would end the setup).
                while self.pending and started and exited_at is None:
                    proc.send(self.pending.pop(0))
                now = time.monotonic()
                if (probe is None and health[0] is not None and exited_at is None and not self.stop_requested
                        and health[0].due(now)):
                    probe = self._start_probe(proc, health[0])
                fds = list(logs) + [self.wake_r] + ([proc.status_fd] if proc.status_fd is not None else [])
                if exited_at is None:
                    fds.append(pidfd)
                timeout = None
                if stop_deadline is not None and not killed:
                    timeout = max(0.0, stop_deadline - now)
                if health[0] is not None and exited_at is None:
                    wake = probe.wake_at if probe is not None else health[0].next_at
                    timeout = max(0.0, wake - now) if timeout is None else min(timeout, max(0.0, wake - now))
                if probe is not None:
                    fds += probe.fds()
                if exited_at is not None:
                    grace = exited_at + 1.0 - now
                    if grace <= 0:
                        break
                    timeout = grace if timeout is None else min(timeout, grace)
                ready = select.select(fds, [], [], timeout)[0]
                if stop_deadline is not None and not killed and time.monotonic() >= stop_deadline:
                    proc.kill()
                    killed = True
                for fd in ready:
                    if probe is not None and fd in probe.fds():
                        probe.on_ready(fd)
                    elif fd == self.wake_r:
                        self._drain_wake()
                    elif fd == pidfd:
                        exited_at = time.monotonic()
                    elif fd == proc.status_fd:
                        proc.read_status(0)
                    else:
                        data = os.read(fd, 1 << 16)
                        if data:
                            logs[fd].write(data)
                        else:
                            logs.pop(fd).close()
                            os.close(fd)
                if probe is not None:
                    probe.check_timeout(time.monotonic())
                    if probe.done:
                        if self._probe_done(probe, health[0]) and not killed:
                            proc.kill()
                            killed = True
                        probe = None
            if not started and proc.status_fd is None and not proc.error:
                # The end of the setup report and of both logs came in one select: a command that exits at
                # once still ran, and start_all and restart policies need its start recorded.
                started = True
                record_start()
        finally:
            if probe is not None:
                probe.abandon()
            os.close(pidfd)
            for fd, log in logs.items():
                log.close()
                os.close(fd)
            proc.kill()
            rc = proc.wait()
            proc.close()
            oom = cgroup.oom_kills() > 0
            cgroup.remove()
            if plan:
                attach.cleanup_links(plan)
        if proc.error:
            return None, proc.error
        ended = {"health": health[0].stopped()} if health[0] is not None else {}
        self.save(state="exited", exit_code=rc, finished_at=self.now(), oom_killed=oom, monitor_pid=None, **ended)
        if plan:  # recorded as exited: its peers stop resolving it
            attach.refresh(self.store, self.name)
        return rc, None

    def _start_probe(self, proc, health):
        """Start the check in the running container; a check that can't start counts as a failed one."""
        target = runtime_exec.Target(name=self.name, pid=proc.pid, monitor_pid=proc.monitor_pid, config=self.config)
        try:
            config = runtime_exec.exec_config(self.config, runtime_health.argv_of(self.check))
            return runtime_health.Probe(runtime_exec, target, config, self.check["timeout"])
        except (DockerlessError, OSError) as exc:
            start = runtime_health.now_iso()
            self._record_health(health, start, -1, str(exc).encode())
            return None

    def _probe_done(self, probe, health) -> bool:
        """Record a finished check; True when the container must be killed (unhealthy with kill or restart)."""
        rc, output = probe.finish()
        return self._record_health(health, probe.start, rc, output)

    def _record_health(self, health, start: str, rc: int, output: bytes) -> bool:
        changed = health.record(start, runtime_health.now_iso(), rc, output)
        self.save(health=health.as_dict())
        if changed == runtime_health.UNHEALTHY and self.on_failure in ("kill", "restart"):
            sys.stderr.write(f"container {self.name}: unhealthy after {health.failing_streak} failed checks; "
                             f"health_on_failure {self.on_failure}\n")
            sys.stderr.flush()
            self.health_restart = self.on_failure == "restart"
            return True
        return False

    @staticmethod
    def now() -> str:
        return runtime_state.now_iso()

    def sleep(self, seconds: float) -> None:
        """Back-off between restarts, cut short by a stop request."""
        deadline = time.monotonic() + seconds
        while not self.no_restart:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready = select.select([self.wake_r], [], [], left)[0]
            if ready:
                self._drain_wake()

    def main(self) -> int:
        lock = runtime_state.take_lock(self.dir)
        if lock is None:
            self.notify(error=f"container {self.name}: another supervisor is running it")
            return 1
        try:
            os.unlink(os.path.join(self.dir, runtime_state.STOP_FILE))  # a stale request of an earlier stop
        except FileNotFoundError:
            pass
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGUSR2, self._on_kill)
        score, problem = lower_oom_score()
        if problem:  # no CAP_SYS_RESOURCE (a rootless or confined caller): the container still runs
            sys.stderr.write(f"container {self.name}: {problem}; the supervisor keeps oom_score_adj {score}\n")
            sys.stderr.flush()
        try:  # `ps -o comm` shows which container a supervisor watches
            linux.write_proc("/proc/self/comm", ("dl-sv-" + self.name)[:15])
        except OSError:
            pass
        # A start is the user's (or boot's) wish to run it: an earlier stop no longer holds (docker start).
        restarts = self.first_restart_count
        self.save(supervisor_pid=os.getpid(), state="starting", error=None, restart_count=restarts,
                  stopped_by_user=False)
        delay = 0.0
        try:
            while True:
                began = time.monotonic()
                try:
                    rc, error = self.run_once()
                except DockerlessError as exc:
                    rc, error = None, str(exc)
                if error is not None:
                    self.save(state="exited", error=error, exit_code=None, finished_at=self.now(), pid=None)
                    self.notify(error=error)
                    return 1
                self.notify(state="exited", exit_code=rc)
                if self.no_restart:
                    self.save(stopped_by_user=self.by_user)
                    return 0
                forced, self.health_restart = self.health_restart, False
                if not forced and not should_restart(self.policy, rc, restarts, self.retries):
                    return 0
                delay = next_delay(delay, time.monotonic() - began)
                restarts += 1
                self.save(state="restarting", restart_count=restarts, pid=None)
                sys.stderr.write(f"container {self.name}: exited with {rc}; restart {restarts} in {delay:g}s\n")
                sys.stderr.flush()
                self.sleep(delay)
                if self.no_restart:
                    self.save(state="exited", stopped_by_user=self.by_user)
                    return 0
        finally:
            self.save(supervisor_pid=None)
            os.close(lock)


def supervise(container_dir: str, notify_fd: int | None = None, restart_count: int = 0) -> None:
    """Entry point in the fresh interpreter (see BOOT)."""
    code = 1
    try:
        code = _Supervisor(container_dir, notify_fd, restart_count).main()
    except BaseException as exc:  # the supervisor must leave a trace; nobody else will see it
        import traceback

        traceback.print_exc()
        if notify_fd is not None:
            try:
                os.write(notify_fd, json.dumps({"error": f"supervisor failed: {exc}"}).encode() + b"\n")
            except OSError:
                pass
    os._exit(code)
