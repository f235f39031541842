# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One container_run task, from options to outcome: ``ContainerTask(store, options).run(check_mode)``.

The module is its argument spec, this call and the mapping of the result (``TaskResult.as_dict()``, or
``TaskFailed`` with the fields to report). Here live the rules that span options (a one-shot run has no
restart policy, a detached container needs a name, ...), the image look-up (image.pull.ensure_image through
``runtime.containers.image_for_run``, the reference parsed once), the store's GC guard held until a named
container's spec records its layers, the check-mode plan (what would run, or what would change), the diff
the foreground wait with its timeout and OOM report, and the container's systemd unit where systemd is PID 1
(runtime/systemd.py: created, changed and removed with the container, in the plan and the diff). ``options`` use container_run's option names.
"""

from __future__ import annotations

import contextlib

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import (
    ImageForRun,
    Plan,
    Runtime,
    image_for_run,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import (
    ContainerSpec,
    env_digests,
    spec_for_image,
    validate_name,
)

LIMIT_OPTIONS = ("memory", "memory_swap", "cpus", "cpu_weight", "pids_limit")
# container_run options that go to build_spec under the same name
SPEC_OPTIONS = ("command", "entrypoint", "env", "workdir", "user", "hostname", "name", "namespaces", "network",
                "userns", "volumes", "tmpfs", "read_only", "cap_add", "cap_drop", "no_new_privileges", "privileged",
                "isolation", "ulimits", "restart_policy", "restart_retries", "stop_signal", "oom_score_adj",
                "stop_timeout", "rootfs_mode", "seccomp", "dns_servers", "dns_search_domains", "etc_hosts",
                "network_aliases", "ipv4_address", "published_ports")
# A spec needs layer folders; an image without any layer gets one that can't exist (the run then says so).
NO_LAYERS = "/nonexistent-until-pulled"
STATE_AFTER = {"started": "running", "stopped": "exited"}


class TaskFailed(DockerlessError):
    """The task failed; ``fields`` are the results to report beside the message (maybe none)."""

    def __init__(self, msg: str, fields: dict | None = None):
        super().__init__(msg)
        self.fields = fields or {}


class TaskResult(Record):
    """What the task did (or, in check mode, would do). Fields left None are not part of the result."""

    changed: bool
    actions: list
    container: dict
    diff: dict | None = None
    rc: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    timed_out: bool | None = None
    oom_killed: bool | None = None
    warnings: list | None = None
    systemd_unit: str | None = None

    def output(self, rc: int, stdout: bytes, stderr: bytes) -> None:
        self.rc = rc
        self.stdout = stdout.decode("utf-8", "replace")
        self.stderr = stderr.decode("utf-8", "replace")

    def as_dict(self) -> dict:
        """The module's result: ``changed``, ``actions``, ``container`` and whatever else is known."""
        result = {"changed": self.changed, "actions": list(self.actions)}
        if self.diff is not None:
            result["diff"] = self.diff
        result["container"] = self.container
        if self.rc is not None:
            result.update(rc=self.rc, stdout=self.stdout, stderr=self.stderr,
                          stdout_lines=self.stdout.splitlines(), stderr_lines=self.stderr.splitlines())
        if self.timed_out is not None:
            result["timed_out"] = self.timed_out
        if self.oom_killed is not None:
            result["oom_killed"] = self.oom_killed
        if self.warnings:
            result["warnings"] = list(self.warnings)
        if self.systemd_unit is not None:
            result["systemd_unit"] = self.systemd_unit
        return result


def _plan_diff(plan: Plan, state: str) -> dict:
    """The task's diff: the container's state before and after, and each recorded setting that changes."""
    diff = {"before": {"state": plan.before.state if plan.before else "absent"},
            "after": {"state": STATE_AFTER.get(state, "absent")}}
    for key, change in plan.diff.items():
        if plan.before is not None:
            diff["before"][key] = change["before"]
        diff["after"][key] = change["after"]
    if plan.before is not None and not plan.changed:
        diff["after"]["state"] = diff["before"]["state"]
    return diff


def _pending_plan(runtime: Runtime, name: str, state: str) -> Plan:
    """Check mode with the image still to pull: its digest and config are unknown, so a change is certain (the
    spec can't be built before the pull, so plan() is not asked to compare, nor to refuse a missing spec)."""
    before = runtime.inspect(name)
    running = before is not None and before.running
    actions = (["stop"] if running else []) + (["remove"] if before else []) + ["create"] + (
        ["start"] if state == "started" else [])
    diff = {"image_digest": {"before": before.spec.get("image_digest") if before else None,
                             "after": "(to be pulled)"}}
    return Plan(name, state, actions, diff, before, None)


class ContainerTask:
    """container_run's work: a one-shot foreground run (no ``name``) or a named container brought to
    ``state``. ``options`` are container_run's parameters (image, pull, name, state, detach, the spec options,
    log_max_size, run_timeout, recreate, force_kill and the registry options)."""

    def __init__(self, store_root: str | None, options: dict, registry=None):
        self.options = dict(options)
        self.runtime = Runtime(store_root)
        self._registry = registry
        self._units = None  # the container's systemd units (runtime/systemd.py) when it has a unit

    def check(self) -> None:
        """The rules between options; raises TaskFailed with the message container_run has always given."""
        opts = self.options
        name = opts.get("name")
        if opts["state"] == "healthy":
            # state: healthy is state: started, then a wait for the healthcheck (restart_and_wait_healthy).
            if name is None:
                raise TaskFailed("state healthy needs a container 'name'.")
            opts["state"], opts["wait_healthy"] = "started", True
        if name is None:
            if opts["state"] != "started":
                raise TaskFailed(f"state {opts['state']} needs a container 'name'.")
            if opts.get("detach"):
                raise TaskFailed("a detached container needs a 'name' to be managed by.")
            if opts["restart_policy"] != "no":
                raise TaskFailed("restart_policy applies to named, detached containers; set 'name'.")
        else:
            validate_name(name)
            if opts.get("detach") is None:
                opts["detach"] = True
            if not opts["detach"] and opts["restart_policy"] != "no":
                raise TaskFailed("detach: false waits for the container to exit; use restart_policy: 'no'.")
        if not opts.get("image") and (name is None or opts["state"] == "started"):
            if name is None or self.runtime.inspect(name) is None or opts.get("recreate"):
                raise TaskFailed("'image' is required to create a container.")

    def spec(self, image) -> ContainerSpec:
        """The container's spec from the options and the resolved ``image`` (runtime.spec.spec_for_image)."""
        opts = self.options
        if not image.lower_dirs:
            image = ImageForRun(image.name, image.record, [NO_LAYERS], image.would_pull)
        check = opts.get("healthcheck")
        if check is not None:  # the image's Healthcheck fills what the option leaves unset (runtime/health.py)
            check = {k: v for k, v in check.items() if v is not None}
        return spec_for_image(image, limits={k: opts[k] for k in LIMIT_OPTIONS if opts.get(k) is not None},
                              healthcheck=check, health_on_failure=opts.get("health_on_failure") or "none",
                              **{k: opts[k] for k in SPEC_OPTIONS if k in opts})

    def run(self, check_mode: bool = False) -> TaskResult:
        """Check the options, resolve the image (pulling it per ``pull`` unless ``check_mode``) and run or
        manage the container. Raises TaskFailed (or another DockerlessError) with the message to report."""
        self.check()
        opts = self.options
        name = opts.get("name")
        image = None
        # A named container's layers must not be garbage-collected between resolving the image and recording
        # them in its spec.json: hold the store's GC guard (shared; image_remove's GC waits) until then.
        guard = contextlib.nullcontext()
        if name is not None and not check_mode and opts["state"] != "absent":
            from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

            guard = Store(self.runtime.store_root).gc_guard()
        with guard:
            if opts.get("image") and opts["state"] != "absent":
                # self.registry, not its result: the registry options (credentials…) are read only when the
                # registry is asked, not for an image in the store.
                image = image_for_run(self.runtime.store_root, opts["image"], opts.get("pull") or "missing",
                                      self.registry, check_mode=check_mode)
            if name is None:
                return self.run_one_shot(image, check_mode)
            # Here, not above: only a named container has logs to rotate (cgroups.limits, imported for the parser).
            from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.limits import parse_size

            return self.manage_named(image, parse_size(opts.get("log_max_size") or "10m"), check_mode)

    def registry(self):
        if self._registry is None:
            from ansible_collections.dockerless.containers.plugins.module_utils.registry.options import RegistryOptions

            self._registry = RegistryOptions.from_params(self.options)
        return self._registry

    def _fail_on_rc(self, result: TaskResult, what: str) -> None:
        if result.timed_out:
            raise TaskFailed(f"{what}: timed out after {self.options.get('run_timeout')}s; the container was "
                             "killed. Raise run_timeout or check the command.", result.as_dict())
        if result.rc != 0:
            msg = "non-zero return code"
            if result.oom_killed:
                msg += (f" (the kernel's OOM killer ended it: memory limit {self.options.get('memory')}). "
                        "Raise 'memory'.")
            raise TaskFailed(msg, result.as_dict())

    def run_one_shot(self, image: ImageForRun, check_mode: bool) -> TaskResult:
        if image.record is None:  # check mode, the image would be pulled first: nothing more is known
            return TaskResult(changed=True, actions=[f"pull {image.name}", f"run in {image.name}"],
                              container={"id": None, "image": image.name})
        spec = self.spec(image)
        result = TaskResult(changed=True, actions=[f"run {spec.argv!r} in {image.name}"], container={
            "id": None, "image": image.name, "image_digest": spec.image_digest, "command": spec.argv,
            "env": env_digests(spec.env), "capabilities": spec.effective_capabilities(),
            "seccomp": seccomp.report(spec.seccomp, spec.capabilities, spec.privileged)})
        if image.would_pull:
            result.actions.insert(0, f"pull {image.name}")
        if check_mode:
            return result
        if spec.published_ports:
            from ansible_collections.dockerless.containers.plugins.module_utils.network import ports

            # A one-shot's ports are recorded with its network lease when it starts; the lock covers the choice.
            with ports.reserved(self.runtime.store_root):
                taken, owners = ports.published_in_store(self.runtime.store_root)
                spec.published_ports = ports.allocate(spec.published_ports, taken, owners)
            result.container["published_ports"] = spec.published_ports
        run = self.runtime.run(spec, timeout=self.options.get("run_timeout"))
        result.container.update(id=run.id, pid=run.pid, rootfs_mode=run.rootfs_mode, cgroup=run.cgroup,
                                state="exited", exit_code=run.rc, oom_killed=run.oom_killed)
        result.output(run.rc, run.stdout, run.stderr)
        result.timed_out, result.oom_killed = run.timed_out, run.oom_killed
        if run.truncated:
            result.warnings = [f"{k} truncated: {n} bytes dropped" for k, n in run.truncated.items()]
        self._fail_on_rc(result, "container run")
        return result

    def plan(self, image: ImageForRun | None) -> Plan:
        """What bringing the named container to its state takes (the recreate decision is Runtime.plan's)."""
        opts = self.options
        pending = image is not None and image.record is None
        if pending and opts["state"] != "absent":
            return _pending_plan(self.runtime, opts["name"], opts["state"])
        spec = self.spec(image) if image is not None and not pending else None
        if spec is not None and spec.published_ports:
            self._keep_chosen_ports(spec)
        return self.runtime.plan(opts["name"], opts["state"], spec, recreate=bool(opts.get("recreate")) or pending)

    def _keep_chosen_ports(self, spec: ContainerSpec) -> None:
        """A requested free port (host_port 0) equals the port chosen for it when the container was made: the
        recorded mappings stand in for the request when they satisfy it, so a re-run compares equal."""
        from ansible_collections.dockerless.containers.plugins.module_utils.network import ports

        before = self.runtime.inspect(self.options["name"])
        recorded = list((before.spec.get("published_ports") or []) if before is not None else [])
        if recorded and ports.matches(spec.published_ports, recorded):
            spec.published_ports = recorded

    def _reconcile_firewall(self, plan: Plan, result: TaskResult, check_mode: bool) -> None:
        """A container on bridge networks: the nftables table checked against the store at every run, so rules
        an admin flushed (or a reboot lost) are put back by a re-run, which then reports a change. A run that
        starts, stops or removes the container has reconciled it already (network/attach.py)."""
        # The spec the container runs with: the new one when it is (re)created, else its record (a container
        # recorded before networks existed keeps none, whatever the default now is).
        if "create" in plan.actions and plan.spec is not None:
            spec = plan.spec.as_dict()
        else:
            spec = plan.before.spec if plan.before is not None else {}
        if not (spec or {}).get("networks") or (check_mode and result.changed):
            return
        from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall

        if firewall.reconcile(self.runtime.store_root, check_mode=check_mode):
            result.changed = True
            result.actions.append("write firewall rules")

    def _apply_with_ports(self, plan: Plan, **kwargs):
        """runtime.apply; a container to be created with published ports gets its host ports chosen and checked
        under the store's port lock, held until its record is written: of two runs asking one port, one wins."""
        if "create" not in plan.actions or not plan.spec.published_ports:
            return self.runtime.apply(plan, **kwargs)
        from ansible_collections.dockerless.containers.plugins.module_utils.network import ports

        with ports.reserved(self.runtime.store_root):
            taken, owners = ports.published_in_store(self.runtime.store_root, exclude=plan.name)
            plan.spec.published_ports = ports.allocate(plan.spec.published_ports, taken, owners)
            return self.runtime.apply(plan, **kwargs)

    def unit_plan(self, plan: Plan):
        """Where systemd is PID 1: the container's unit (runtime/systemd.py) and what it takes to bring it in line
        with the container afterwards. (None, None) elsewhere: there the supervisor alone keeps it up."""
        # Here, not at the top: a one-shot run has no unit (systemd.py and unit_boot.py stay unloaded).
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import systemd as runtime_systemd

        if not runtime_systemd.systemd_booted():
            return None, None
        opts = self.options
        policy, stop_timeout = None, opts.get("stop_timeout")
        if opts["state"] != "absent":
            if plan.spec is not None:
                policy, stop_timeout = plan.spec.restart_policy, plan.spec.stop_timeout
            elif "create" in plan.actions:  # check mode, the image still to pull: the spec will have the options
                policy = opts.get("restart_policy")
            elif plan.before is not None:   # no image given: the container keeps what it has
                policy = plan.before.spec.get("restart_policy")
                stop_timeout = plan.before.spec.get("stop_timeout", stop_timeout)
        if stop_timeout is None:
            stop_timeout = 10
        units = runtime_systemd.Units(self.runtime.store_root)
        return units, units.plan(opts["name"], policy, stop_timeout)

    def manage_named(self, image: ImageForRun | None, log_max: int, check_mode: bool) -> TaskResult:
        opts = self.options
        name = opts["name"]
        runtime = self.runtime
        plan = self.plan(image)
        actions = list(plan.actions)
        if image is not None and image.would_pull and "create" in actions:
            actions.insert(0, f"pull {image.name}")
        units, unit_plan = self.unit_plan(plan)
        if unit_plan is not None:
            actions.extend(unit_plan.actions)
        before = plan.before.as_dict() if plan.before else None
        diff = _plan_diff(plan, opts["state"])
        if unit_plan is not None and unit_plan.before != unit_plan.after:
            diff["before"]["systemd_unit"] = unit_plan.before
            diff["after"]["systemd_unit"] = unit_plan.after
        result = TaskResult(changed=plan.changed or (unit_plan is not None and unit_plan.changed), actions=actions,
                            diff=diff, container=before or {"name": name})
        if unit_plan is not None and unit_plan.after is not None:
            result.systemd_unit = units.unit_path(name)
        self._units = units if unit_plan is not None and unit_plan.after is not None else None
        if check_mode:
            self._reconcile_firewall(plan, result, check_mode)
            self.restart_and_wait_healthy(plan, result, check_mode)
            return result
        try:
            after = self._apply_with_ports(plan, log_max_size=log_max, stop_timeout=opts.get("stop_timeout"),
                                           force_kill=bool(opts.get("force_kill")), units=units, unit_plan=unit_plan)
        except DockerlessError as exc:
            raise TaskFailed(str(exc), {"actions": actions}) from exc
        if after is not None:
            result.container = after.as_dict()
        self._reconcile_firewall(plan, result, check_mode)
        self.restart_and_wait_healthy(plan, result, check_mode)
        if opts["detach"] is False and "start" in plan.actions:
            timed_out = False
            try:
                after = runtime.wait(name, opts.get("run_timeout"))
            except TimeoutError:
                runtime.stop(name, 0)
                after = runtime.inspect(name)
                timed_out = True
            stdout, stderr = runtime.logs(name)
            result.output(after.exit_code if after.exit_code is not None else -1, stdout, stderr)
            result.container, result.oom_killed, result.timed_out = after.as_dict(), after.oom_killed, timed_out
            self._fail_on_rc(result, f"container {name}")
        return result

    def restart_and_wait_healthy(self, plan: Plan, result: TaskResult, check_mode: bool) -> None:
        """``restart: true`` restarts a running container the plan left alone; ``state: healthy`` then waits for
        its healthcheck (``healthy_wait_timeout``) and fails with the last checks' outputs."""
        opts = self.options
        name = opts["name"]
        if opts.get("restart") and plan.before is not None and plan.before.running and "start" not in plan.actions:
            result.actions.append("restart")
            result.changed = True
            if not check_mode:
                try:
                    self.runtime.stop(name, opts.get("stop_timeout"))
                    # A container with a unit starts through it, so its supervisor stays the unit's main process.
                    units = self._units
                    started = units.start(self.runtime, name) if units is not None else self.runtime.start(name)
                    result.container = started.as_dict()
                except DockerlessError as exc:
                    raise TaskFailed(str(exc), {"actions": result.actions}) from exc
        if not opts.get("wait_healthy") or check_mode:
            return
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import health as runtime_health

        try:
            info = runtime_health.wait_healthy(self.runtime.inspect, name, opts.get("healthy_wait_timeout") or 300)
        except (TimeoutError, RuntimeError) as exc:
            info = self.runtime.inspect(name)
            raise TaskFailed(str(exc), {"actions": result.actions,
                                        "container": info.as_dict() if info else result.container}) from exc
        result.container = info.as_dict()
