# -*- coding: utf-8 -*-
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container runtime: one-shot foreground runs and named, supervised containers.

* ``Runtime.run(spec, timeout=...)`` runs a one-shot container in the foreground and returns its exit code
  and output (``RunResult``). Its state lives in ``<store>/containers/<id>/`` for the duration of the run and
  is removed afterwards; its cgroup is ``dockerless/<id>``.
* ``Runtime.plan(name, spec, state)`` / ``Runtime.apply(plan)`` manage named containers declaratively
  (started/stopped/absent, idempotent on the recorded spec); ``Runtime.inspect(name)`` and
  ``Runtime.list()`` read their state. A detached container is watched by a supervisor process
  (runtime_supervisor) that outlives the caller.

The process-level work (namespaces, mounts, capabilities, exec) is in runtime_init; the spec in runtime_spec;
the on-disk state in runtime_state.
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass, field

from ansible_collections.dockerless.containers.plugins.module_utils import runtime_init
from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError, RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.runtime_spec import ContainerSpec

OUTPUT_LIMIT = 64 << 20  # bytes kept per stream of a foreground run; the rest is counted and dropped


def default_store_root() -> str:
    if os.geteuid() == 0:
        return "/var/lib/dockerless"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dockerless")


def new_id() -> str:
    return os.urandom(32).hex()


def limits_of(spec: ContainerSpec):
    """The cgroups.Limits for a spec's ``limits`` dict (option names of container_run)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import Limits, parse_size

    lim = spec.limits or {}

    def size(key):
        value = lim.get(key)
        return None if value is None else parse_size(value)

    return Limits(memory=size("memory"), memory_swap=size("memory_swap"), cpus=lim.get("cpus"),
                  cpu_weight=lim.get("cpu_weight"), pids=lim.get("pids_limit"))


class ContainerCgroup:
    """The container's cgroup through the cgroups library; optional when no limit was asked and we can't
    create cgroups (a user without delegation)."""

    def __init__(self, name: str, spec: ContainerSpec, cgroup_root: str = "/sys/fs/cgroup"):
        self.name = name
        self.spec = spec
        self.cgroup_root = cgroup_root
        self.cgroup = None
        self.path: str | None = None

    def create(self) -> None:
        from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import (
            Cgroup,
            container_cgroup_path,
        )

        path = container_cgroup_path(self.name)
        try:
            cgroup = Cgroup(path, self.cgroup_root)
            cgroup.apply(limits_of(self.spec))
        except (CgroupError, OSError) as exc:
            if self.spec.limits:
                raise RuntimeSetupError(f"container {self.name}: applying the limits: {exc}") from None
            return
        self.cgroup, self.path = cgroup, path

    def join(self, pid: int) -> None:
        if self.cgroup is not None:
            self.cgroup.add_pids([pid])

    def oom_kills(self) -> int:
        if self.cgroup is None:
            return 0
        try:
            return self.cgroup.stats().get("oom_kills") or 0
        except (CgroupError, OSError):
            return 0

    def remove(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.remove(force=True)
            except (CgroupError, OSError):
                pass


@dataclass
class RunResult:
    id: str
    rc: int
    stdout: bytes
    stderr: bytes
    pid: int | None = None
    rootfs_mode: str | None = None
    timed_out: bool = False
    oom_killed: bool = False
    cgroup: str | None = None
    duration: float = 0.0
    truncated: dict[str, int] = field(default_factory=dict)


class _Drain:
    """Collects a pipe's bytes up to a limit."""

    def __init__(self, fd: int, limit: int):
        self.fd, self.limit, self.chunks, self.size, self.dropped = fd, limit, [], 0, 0

    def read(self) -> bool:
        data = os.read(self.fd, 1 << 16)
        if not data:
            os.close(self.fd)
            return False
        keep = max(0, min(len(data), self.limit - self.size))
        if keep:
            self.chunks.append(data[:keep])
            self.size += keep
        self.dropped += len(data) - keep
        return True

    def value(self) -> bytes:
        return b"".join(self.chunks)


def remove_tree(path: str) -> None:
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime_init import _remove

    try:
        _remove(path)
    except FileNotFoundError:
        pass


class Runtime:
    """Entry point of the engine for containers. ``store_root`` holds ``containers/``."""

    def __init__(self, store_root: str | None = None, cgroup_root: str = "/sys/fs/cgroup"):
        self.store_root = os.path.abspath(store_root or default_store_root())
        self.containers_dir = os.path.join(self.store_root, "containers")
        self.cgroup_root = cgroup_root

    # -- one-shot foreground runs ---------------------------------------------------------------------------
    def run(self, spec: ContainerSpec, timeout: float | None = None, output_limit: int = OUTPUT_LIMIT) -> RunResult:
        """Run ``spec`` once in the foreground; returns when every process of the container has exited (or
        ``timeout`` seconds passed: then the whole container is killed and ``timed_out`` is set).
        Raises RuntimeSetupError when the container could not be set up or the command not executed."""
        import json

        start = time.monotonic()
        cid = new_id()
        cdir = os.path.join(self.containers_dir, cid)
        os.makedirs(self.containers_dir, mode=0o700, exist_ok=True)
        os.mkdir(cdir, 0o700)
        cgroup = ContainerCgroup(cid, spec, self.cgroup_root)
        proc = None
        try:
            # Written so store GC keeps the layers while we run.
            with open(os.path.join(cdir, "spec.json"), "w", encoding="utf-8") as handle:
                json.dump({"id": cid, "diff_ids": spec.diff_ids, "one_shot": True}, handle)
            cgroup.create()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                proc = runtime_init.spawn(spec.init_config(cid, cdir), null, out_w, err_w,
                                          before_unshare=cgroup.join)
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                for fd in (out_w, err_w, null):
                    os.close(fd)
            result = self._collect(proc, out_r, err_r, timeout, output_limit)
            result.id = cid
            result.cgroup = cgroup.path
            result.oom_killed = cgroup.oom_kills() > 0
            result.duration = time.monotonic() - start
            if proc.error:
                raise RuntimeSetupError(f"container {cid[:12]}: {proc.error}")
            return result
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
                proc.close()
            cgroup.remove()
            remove_tree(cdir)

    @staticmethod
    def _collect(proc, out_r: int, err_r: int, timeout: float | None, limit: int) -> RunResult:
        out, err = _Drain(out_r, limit), _Drain(err_r, limit)
        streams = {out_r: out, err_r: err}
        deadline = None if timeout is None else time.monotonic() + timeout
        timed_out = False
        pidfd = os.pidfd_open(proc.monitor_pid)
        exited_at = None
        try:
            while streams or proc.status_fd is not None:
                fds = list(streams) + ([proc.status_fd] if proc.status_fd is not None else [])
                if exited_at is None:
                    fds.append(pidfd)
                wait = None
                now = time.monotonic()
                if deadline is not None and not timed_out:
                    wait = max(0.0, deadline - now)
                if exited_at is not None:
                    # The container's PID 1 is gone; stragglers (chroot isolation has no PID namespace) that
                    # hold the pipes get a moment, then their output is not waited for.
                    grace = exited_at + 1.0 - now
                    if grace <= 0:
                        break
                    wait = grace if wait is None else min(wait, grace)
                ready, _, _ = select.select(fds, [], [], wait)
                if not ready:
                    if deadline is not None and not timed_out and time.monotonic() >= deadline:
                        timed_out = True
                        proc.kill()
                    continue
                for fd in ready:
                    if fd == pidfd:
                        exited_at = time.monotonic()
                    elif fd == proc.status_fd:
                        proc.read_status(0)
                    elif not streams[fd].read():
                        del streams[fd]
        finally:
            os.close(pidfd)
            for fd in list(streams):
                os.close(fd)
        rc = proc.wait()
        truncated = {k: d.dropped for k, d in (("stdout", out), ("stderr", err)) if d.dropped}
        return RunResult(id="", rc=rc, stdout=out.value(), stderr=err.value(), pid=proc.pid,
                         rootfs_mode=proc.rootfs_mode, timed_out=timed_out, truncated=truncated)
