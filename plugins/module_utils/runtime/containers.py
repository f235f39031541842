# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container runtime: one-shot foreground runs and named, supervised containers.

* ``Runtime.run(spec, timeout=...)`` runs a one-shot container in the foreground and returns its exit code
  and output (``RunResult``). Its state lives in a reusable slot ``<store>/containers/.one-shot-<n>/`` (or, for
  a container without its own PID namespace, in ``<store>/containers/<id>/``) for the duration of the run and
  is cleaned afterwards (``OneShotDir``); its cgroup is ``dockerless/<id>``.
* ``Runtime.plan(name, spec, state)`` / ``Runtime.apply(plan)`` manage named containers declaratively
  (started/stopped/absent, idempotent on the recorded spec); ``Runtime.inspect(name)`` and
  ``Runtime.list()`` read their state. A detached container is watched by a supervisor process
  (runtime_supervisor) that outlives the caller.

The process-level work (namespaces, mounts, capabilities, exec) is in spawn and init_sequence; the spec in runtime_spec;
the on-disk state in runtime_state.
"""

from __future__ import annotations

import fcntl
import os
import select
import stat
import time

from ansible_collections.dockerless.containers.plugins.module_utils.errors import CgroupError, RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.image.layers import whiteouts
from ansible_collections.dockerless.containers.plugins.module_utils.network import etc_files
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record, json_dumps
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import spawn
from ansible_collections.dockerless.containers.plugins.module_utils.runtime import state as runtime_state
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import (
    ContainerSpec,
    check_relinked_volumes,
    env_digests,
    spec_diff,
    validate_name,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import (  # noqa: F401 - default_store_root: the engine's name for it
    ContainerCgroup,
    containers_dir,
    default_store_root,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the container start path
if TYPE_CHECKING:
    from typing import Any

OUTPUT_LIMIT = 64 << 20  # bytes kept per stream of a foreground run; the rest is counted and dropped


def new_id() -> str:
    return os.urandom(32).hex()


SLOT_PREFIX = ".one-shot-"       # never a container name: validate_name refuses a leading '.'
MAX_SLOTS = 4096                  # one-shot containers running at once in one store
# Extended attributes overlayfs itself leaves on an upper dir's root (kernel 6.6+: the layer's uuid).
_OVERLAY_ROOT_XATTRS = frozenset({"trusted.overlay.uuid", "user.overlay.uuid"})
# What overlayfs marks a directory with when a child of it was copied up (ovl_set_impure): meaningless once the
# child is gone.
_OVERLAY_CHILD_XATTRS = frozenset({"trusted.overlay.impure", "user.overlay.impure"})
# A slot's spent overlay work dir (work/work) is renamed to work/stale-<random> after a run and removed while the next
# run's container sets up: neither the kernel's mount nor the caller's result waits for its rmdir.
_STALE_PREFIX = "stale-"


class OneShotDir:
    """Where a one-shot container's writable layer and record live while it runs: ``path`` holds ``upper/``,
    ``work/`` and ``spec.json`` (the record that keeps store GC off its layers), and the rootfs is mounted on
    ``path`` itself in the container's mount namespace (``one_shot_config``).

    A container with its own PID and mount namespaces gets a **slot** of the store's pool,
    ``<store>/containers/.one-shot-<n>/``, kept from run to run, and a ``volatile`` overlay:

    * On ext4 mounted with ``discard`` and without a journal, every rmdir frees the directory's block and waits
      for its discard (0.3-4 ms each here); a fresh folder per run cost four (the folder, upper, work and
      work/work), and a volatile mount adds three (below). A slot whose upper dir is left as it was found (empty,
      mode 0755, owned by us, no attributes but overlayfs' own) keeps it; otherwise the upper dir is removed
      after the run, as before, and the next run's init makes a new one. The overlay's own work dir (work/work,
      which the kernel would otherwise empty and remove at the next mount) is renamed to ``work/stale-<random>``
      after the run and removed by the next run while its container sets up (``rootfs_mounted``).
    * ``volatile``: the writable layer is thrown away anyway, so overlayfs need not sync it; without the option
      the mount's end (with the container's mount namespace) runs syncfs(2) on the store's whole filesystem, a
      writeback of every dirty inode and a disk cache flush (2-7 ms a run here, more while other programs write).
      Podman does the same for ``--rm`` containers, CRI-O for all. The marker the kernel leaves
      (work/work/incompat/volatile, which makes it refuse the work dir) goes with the renamed work/work. After a
      host crash an upper dir that is not pristine is removed, so a half-synced layer is never reused.

    The slot is locked with flock(2) by the caller and by the container's monitor (``hold_fds``), so it is not
    reused before the container's mount namespace is gone, even when the caller was killed; the next user of a
    slot a killed caller left behind cleans it first. Without a PID namespace (chroot isolation) processes may
    outlive the run and keep its overlay mounted: such a run gets a fresh ``<store>/containers/<id>/`` and a
    regular overlay, removed afterwards.
    """

    def __init__(self, containers_dir: str, cid: str, pooled: bool = True):
        self.containers_dir = containers_dir
        self.cid = cid
        self.pooled = pooled
        self.volatile = pooled
        self.path = ""
        self.lock_fd: int | None = None

    @property
    def hold_fds(self) -> tuple:
        """What the container's monitor keeps open until its namespaces are gone (spawn's ``hold_fds``)."""
        return () if self.lock_fd is None else (self.lock_fd,)

    def acquire(self, record: dict) -> str:
        """Take a slot (or make the fresh folder) and write ``record`` as its spec.json; returns ``path``."""
        os.makedirs(self.containers_dir, mode=0o700, exist_ok=True)
        if not self.pooled:
            self.path = os.path.join(self.containers_dir, self.cid)
            os.mkdir(self.path, 0o700)
        else:
            self.path, self.lock_fd = self._take_slot()
        try:
            if self.pooled:
                self._tidy()              # what a killed run left
            with open(os.path.join(self.path, "spec.json"), "w", encoding="utf-8") as handle:
                handle.write(json_dumps(record))
        except BaseException:
            self.release()
            raise
        return self.path

    def rootfs_mounted(self) -> None:
        """The init reported its rootfs mounted: remove the work dirs earlier runs left (``stale-*``) now, while
        the container sets up and runs. A failure is left for a later run."""
        if not self.pooled or not self.path:
            return
        work = os.path.join(self.path, "work")
        try:
            for name in os.listdir(work):
                if name.startswith(_STALE_PREFIX):
                    remove_tree(os.path.join(work, name))
        except OSError:
            pass

    def _take_slot(self) -> tuple[str, int]:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        for number in range(MAX_SLOTS):
            path = os.path.join(self.containers_dir, f"{SLOT_PREFIX}{number}")
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                try:
                    os.mkdir(path, 0o700)
                except FileExistsError:
                    pass
                fd = os.open(path, flags)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_nlink == 0:   # removed between open and flock (the store was deleted)
                    raise BlockingIOError
            except BlockingIOError:
                os.close(fd)
                continue
            return path, fd
        raise RuntimeSetupError(f"one-shot containers in {self.containers_dir}: all {MAX_SLOTS} slots are in use. "
                                "Wait for some runs to end.")

    def _drop_etc_mount_points(self) -> None:
        """An image without /etc/hostname, /etc/hosts or /etc/resolv.conf got them as empty mount points in the
        upper dir (network.etc_files): when ``upper/etc`` holds nothing else (no other file, no whiteout, only
        those empty files), they and it are removed (one rmdir, not the whole upper dir) and the overlay's mark
        of a copied-up child on the upper dir goes too, so the slot stays pristine for the next run's image, whose
        /etc is then its own again. Anything else there leaves the upper dir to the pristine check."""
        try:
            upper = os.open(os.path.join(self.path, "upper"), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            try:
                st = os.stat("etc", dir_fd=upper, follow_symlinks=False)
                names = os.listdir(os.path.join(self.path, "upper", "etc")) if stat.S_ISDIR(st.st_mode) else None
            except OSError:
                return
            if names is None or not set(names) <= set(etc_files.ETC_FILES):
                return
            etc = os.open("etc", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=upper)
            try:
                for name in names:
                    fst = os.stat(name, dir_fd=etc, follow_symlinks=False)
                    if not stat.S_ISREG(fst.st_mode) or fst.st_size or fst.st_nlink != 1:
                        return
                for name in names:
                    os.unlink(name, dir_fd=etc)
            finally:
                os.close(etc)
            os.rmdir("etc", dir_fd=upper)
            for attr in os.listxattr(upper):
                if attr in _OVERLAY_CHILD_XATTRS:
                    os.removexattr(upper, attr)
        except OSError:
            return
        finally:
            os.close(upper)

    def _upper_is_pristine(self) -> bool:
        upper = os.path.join(self.path, "upper")
        try:
            st = os.lstat(upper)
        except FileNotFoundError:
            return True
        if (not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o755 or st.st_uid != os.geteuid()
                or st.st_gid != os.getegid()):
            return False
        with os.scandir(upper) as entries:
            if next(entries, None) is not None:
                return False
        return set(os.listxattr(upper, follow_symlinks=False)) <= _OVERLAY_ROOT_XATTRS

    def _tidy(self) -> None:
        work = os.path.join(self.path, "work", "work")
        if os.path.lexists(work):
            os.rename(work, os.path.join(self.path, "work", _STALE_PREFIX + os.urandom(8).hex()))
        self._drop_etc_mount_points()
        if not self._upper_is_pristine():
            remove_tree(os.path.join(self.path, "upper"))
        # A copy-fallback rootfs is its run's writable root, made from its run's image: never the next run's.
        # The mark first, so a half-removed copy is never taken for a finished one.
        for name in ("rootfs-copy.done", "rootfs-copy"):
            remove_tree(os.path.join(self.path, name))

    def release(self) -> None:
        """After the container (and its monitor) ended: a slot gets its spent work dir renamed away, its upper
        dir checked (removed unless pristine) and its spec.json removed, then it is unlocked; a fresh folder is
        removed whole."""
        if not self.path:
            return
        try:
            if self.lock_fd is None:
                remove_tree(self.path)
                remove_tree(self.path + ETC_SUFFIX)
                return
            try:
                self._tidy()
            finally:
                try:
                    os.unlink(os.path.join(self.path, "spec.json"))
                except FileNotFoundError:
                    pass
        finally:
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None
            self.path = ""


def one_shot_config(spec: ContainerSpec, cid: str, cdir: str, volatile: bool = False) -> dict:
    """``spec.init_config`` for a one-shot container in ``cdir``: its rootfs is mounted on ``cdir`` itself (in
    the container's own mount namespace, over the upper and work folders it holds) instead of on a ``rootfs``
    folder. One directory fewer to make and remove per run: on ext4 mounted with ``discard`` and no journal,
    removing a directory frees its block and waits for the discard (0.3-5 ms here). ``volatile``: the
    overlay is mounted with overlayfs' ``volatile`` option (``OneShotDir``)."""
    config = spec.init_config(cid, cdir)
    config["rootfs"]["mountpoint"] = cdir
    config["rootfs"]["volatile"] = volatile
    if "uts" in spec.namespaces and not spec.hostname:
        config["hostname"] = cid[:12]   # Docker's: the short id
    # Beside the folder, not in it: the rootfs is mounted over cdir before the init opens the sources. A pool
    # slot's files are rewritten in place by its next run; a fresh folder's go with it (OneShotDir.release).
    with_etc_files(config, spec, cdir + ETC_SUFFIX, cid)
    return config


ETC_SUFFIX = ".etc"


def one_shot_network(store_root: str, spec: ContainerSpec, cid: str, cdir: str, config: dict):
    """A one-shot's bridge networks (network/attach.py): ``(holder, plan, after_unshare)`` for spawn, all None
    without networks (nothing of the network room is imported then). Its leases hold the caller's pid: freed by
    ``one_shot_network_done``, or taken back after the caller's end however it ended."""
    if not spec.networks:
        return None, None, None
    from ansible_collections.dockerless.containers.plugins.module_utils.network import attach
    from ansible_collections.dockerless.containers.plugins.module_utils.network.networks import one_shot_holder

    holder = one_shot_holder(cid)
    plan = attach.Plan()   # filled by prepare, while the monitor makes the namespaces (spawn's while_unsharing)

    def prepare() -> None:
        made = attach.prepare(store_root, holder, cid, spec.networks, names=[config.get("hostname") or "", cid[:12]],
                              aliases=spec.network_aliases, etc_dir=cdir + ETC_SUFFIX, etc_hosts=spec.etc_hosts,
                              requested=spec.ipv4_address, pid=os.getpid(),
                              published_ports=getattr(spec, "published_ports", None))
        plan.extend(made)
        plan.data, plan.reshaped = made.data, made.reshaped
        # Peers of its user networks resolve it; the firewall: its published ports, the bridge's masquerade.
        attach.started(store_root, holder, plan, published=bool(getattr(spec, "published_ports", None)))

    def after_unshare(pid: int) -> None:
        attach.setup(plan, pid)

    after_unshare.while_unsharing = prepare
    return holder, plan, after_unshare


def one_shot_network_done(store_root: str, holder: str | None, plan) -> None:
    """After a one-shot's end: its leases freed, leftovers deleted, peers told (network/attach.py finish)."""
    if holder is not None:
        from ansible_collections.dockerless.containers.plugins.module_utils.network import attach

        attach.finish(store_root, holder, plan or [], one_shot=True)


def with_etc_files(config: dict, spec: ContainerSpec, etc_dir: str, cid: str, name: str | None = None) -> dict:
    """Write the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into ``etc_dir`` and add their bind
    mounts to ``config``'s volumes (mounted by the init's volume path, after the user's shallower ones)."""
    own_network = "net" in spec.namespaces
    hostname = config.get("hostname") if "uts" in spec.namespaces else None
    # host-gateway entries wait for the network's gateway (network/attach.py rewrites hosts at each start).
    etc_hosts = {k: v for k, v in spec.etc_hosts.items() if v != "host-gateway"}
    etc_files.write(etc_dir, hostname=hostname or os.uname().nodename,
                    own_names=[hostname or "", name or "", cid[:12]], own_network=own_network,
                    dns_servers=spec.dns_servers, dns_search=spec.dns_search_domains, etc_hosts=etc_hosts)
    taken = [v["target"] for v in spec.volumes] + [t["target"] for t in spec.tmpfs]
    config["volumes"] = list(config.get("volumes") or ()) + etc_files.etc_mounts(etc_dir, taken)
    return config


class RunResult(Record):
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
    truncated: dict[str, int] = Factory(dict)


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
    """Remove a tree of the store (fd-relative, never following a link inside it); gone already is fine."""
    try:
        whiteouts.remove_tree(path)
    except FileNotFoundError:
        pass


class Runtime:
    """Entry point of the engine for containers. ``store_root`` holds ``containers/``."""

    def __init__(self, store_root: str | None = None, cgroup_root: str = "/sys/fs/cgroup"):
        self.store_root = os.path.abspath(store_root or default_store_root())
        self.containers_dir = containers_dir(self.store_root)
        self.cgroup_root = cgroup_root

    # -- one-shot foreground runs ---------------------------------------------------------------------------
    def run(self, spec: ContainerSpec, timeout: float | None = None, output_limit: int = OUTPUT_LIMIT) -> RunResult:
        """Run ``spec`` once in the foreground; returns when every process of the container has exited (or
        ``timeout`` seconds passed: then the whole container is killed and ``timed_out`` is set).
        Raises RuntimeSetupError when the container could not be set up or the command not executed."""
        start = time.monotonic()
        cid = new_id()
        folder = self.one_shot_dir(spec, cid)
        cgroup = ContainerCgroup(cid, spec.limits, self.cgroup_root, devices=not spec.privileged)
        # spec.json: so store GC keeps the layers while we run.
        cdir = folder.acquire({"id": cid, "diff_ids": spec.diff_ids, "one_shot": True})
        proc = None
        holder = plan = None
        try:
            # A one-shot gets a cgroup when it has limits, or when nothing else holds its processes together
            # (chroot isolation has no PID namespace). Otherwise the PID namespace is enough, and the start
            # path stays short (runc's own cost is what we compare against): only the device controller's
            # directory is made, in one hierarchy.
            cgroup.create(full=bool(spec.limits) or "pid" not in spec.namespaces)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                config = one_shot_config(spec, cid, cdir, folder.volatile)
                config["join_tasks"] = cgroup.join_tasks
                holder, plan, after_unshare = one_shot_network(self.store_root, spec, cid, cdir, config)
                proc = spawn.spawn(config, null, out_w, err_w, before_unshare=cgroup.join,
                                   hold_fds=folder.hold_fds, after_unshare=after_unshare)
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                raise
            finally:
                for fd in (out_w, err_w, null):
                    os.close(fd)
            result = self._collect(proc, out_r, err_r, timeout, output_limit, folder.rootfs_mounted)
            result.id = cid
            result.cgroup = cgroup.path
            result.oom_killed = cgroup.oom_kills() > 0
            result.duration = time.monotonic() - start
            if proc.error:
                raise RuntimeSetupError(f"container {cid[:12]}: {proc.error}")
            return result
        finally:
            try:
                if proc is not None:
                    proc.kill()
                    proc.wait()
                    proc.close()
                cgroup.remove()
            finally:
                try:
                    one_shot_network_done(self.store_root, holder, plan)
                finally:
                    folder.release()

    def one_shot_dir(self, spec: ContainerSpec, cid: str) -> OneShotDir:
        """The folder (``OneShotDir``) a one-shot container of ``spec`` runs in: a pool slot when the container
        has its own PID and mount namespaces (nothing of it outlives its PID 1), a fresh folder otherwise."""
        pooled = "pid" in spec.namespaces and "mount" in spec.namespaces
        return OneShotDir(self.containers_dir, cid, pooled=pooled)

    @staticmethod
    def _collect(proc, out_r: int, err_r: int, timeout: float | None, limit: int, rootfs_mounted=None) -> RunResult:
        """Output, status and exit of ``proc``; ``rootfs_mounted()`` is called once the init reported its rootfs
        (OneShotDir's cleanup that can run while the container does)."""
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
                ready = select.select(fds, [], [], wait)[0]
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
                        if rootfs_mounted is not None and proc.rootfs_mode is not None:
                            rootfs_mounted()
                            rootfs_mounted = None
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

    # -- named containers -----------------------------------------------------------------------------------
    def container_dir(self, name: str) -> str:
        return os.path.join(self.containers_dir, validate_name(name))

    def inspect(self, name: str) -> ContainerInfo | None:
        """The recorded state of container ``name`` (None when it doesn't exist)."""
        cdir = self.container_dir(name)
        record = runtime_state.read_json(os.path.join(cdir, runtime_state.SPEC_FILE))
        if record is None or record.get("one_shot"):
            return None
        state = runtime_state.read_json(os.path.join(cdir, runtime_state.STATE_FILE)) or {}
        return ContainerInfo.from_files(name, cdir, record, state, runtime_state.supervisor_alive(cdir))

    def list(self) -> list[ContainerInfo]:
        """Every named container in the store, by name."""
        out = []
        if not os.path.isdir(self.containers_dir):
            return out
        for entry in sorted(os.listdir(self.containers_dir)):
            try:
                info = self.inspect(entry)
            except RuntimeSetupError:
                continue
            if info is not None:
                out.append(info)
        return out

    def create(self, name: str, spec: ContainerSpec, log_max_size: int = runtime_state.DEFAULT_LOG_MAX) -> None:
        """Record container ``name`` (spec.json, state created); refuses when it exists."""
        cdir = self.container_dir(name)
        missing = [n for n in spec.networks if n != "bridge"]
        if missing:   # Docker's create refuses an unknown network too: nothing is made
            from ansible_collections.dockerless.containers.plugins.module_utils.network import networks

            missing = [n for n in missing if networks.get_network(self.store_root, n) is None]
            if missing:
                raise RuntimeSetupError(f"container {name}: network {', '.join(missing)} not found. Create it "
                                        "first (container_network, dockerless network create).")
        os.makedirs(self.containers_dir, mode=0o700, exist_ok=True)
        try:
            os.mkdir(cdir, 0o700)
        except FileExistsError:
            raise RuntimeSetupError(f"container {name}: already exists. Remove it first (state: absent) or use "
                                    "recreate.") from None
        cid = new_id()
        config = with_etc_files(spec.init_config(cid, cdir, name=name), spec, os.path.join(cdir, "etc"), cid, name)
        record = {"name": name, "id": cid, "created_at": runtime_state.now_iso(), "spec": spec.as_dict(),
                  "config": config, "diff_ids": list(spec.diff_ids),
                  "log_max_size": int(log_max_size)}
        runtime_state.write_json(os.path.join(cdir, runtime_state.SPEC_FILE), record)
        runtime_state.write_json(os.path.join(cdir, runtime_state.STATE_FILE), {"state": "created"})

    def start(self, name: str, restart_count: int = 0, fresh: bool = True) -> ContainerInfo:
        """Start the supervisor of ``name`` (no-op when it runs); raises RuntimeSetupError when the container
        could not be started, with the reason the init gave. ``restart_count``: where the count of restarts
        begins (see ``restore_count``). ``fresh=False``: the supervisor is a fork of this process, no new
        interpreter (``supervisor.launch``; only for callers without secrets, from files that stay)."""
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import (
            supervisor as runtime_supervisor,
        )

        info = self._require(name)
        if info.supervised:
            return info
        self._refresh_etc_files(info)
        outcome = runtime_supervisor.launch(info.path, restart_count=restart_count, fresh=fresh)
        if "error" in outcome:
            self._wait_unlocked(info.path, 10)  # it records the failure, then ends
            raise RuntimeSetupError(f"container {name}: {outcome['error']}")
        return self._require(name)

    @staticmethod
    def _refresh_etc_files(info: ContainerInfo) -> None:
        """The /etc files rewritten in place at every start, as Docker does: the host's resolv.conf may have
        changed since the create (DHCP, a VPN). A container recorded before it had the files keeps none."""
        etc_dir = os.path.join(info.path, "etc")
        if not os.path.isdir(etc_dir):
            return
        spec = ContainerSpec.from_dict(info.spec)
        with_etc_files({"hostname": spec.hostname}, spec, etc_dir, info.id, info.name)

    def stop(self, name: str, timeout: float | None = None, signal_name: str | None = None) -> bool:
        """The stop signal (``signal_name``, else the spec's: the image's StopSignal or SIGTERM) to the
        container's PID 1, SIGKILL after ``timeout`` (default: the spec's stop_timeout); the supervisor records
        the container as stopped by the user and does not restart it. Returns True when something was running.
        A container whose supervisor vanished (``dead``) is marked stopped by the user too, so that
        ``start_all`` leaves it alone. (A SIGTERM to the supervisor without this, from systemd or init at
        shutdown, is no user stop: unless-stopped starts the container again at the next boot.)"""
        import signal

        info = self._require(name)
        if not info.supervised:
            if info.state == "dead":
                self._mark_stopped_by_user(info.path)
            return False
        grace = info.spec.get("stop_timeout", 10) if timeout is None else max(0.0, float(timeout))
        pid = info.supervisor_pid
        try:
            pidfd = os.pidfd_open(pid) if pid else None
        except ProcessLookupError:
            pidfd = None
        try:
            # The lock is held, so the recorded supervisor PID is alive and is the supervisor's (it wrote it).
            if pidfd is not None and runtime_state.supervisor_alive(info.path):
                request = {"timeout": grace}
                if signal_name:
                    request["signal"] = signal_name
                runtime_state.write_json(os.path.join(info.path, runtime_state.STOP_FILE), request)
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            if not self._wait_unlocked(info.path, grace + 10):
                if pidfd is not None:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # its monitor and container die with it
                if not self._wait_unlocked(info.path, 10):
                    raise RuntimeSetupError(f"container {name}: the supervisor (pid {pid}) did not stop. "
                                            "Check it with ps; kill it by hand.")
        finally:
            if pidfd is not None:
                os.close(pidfd)
        return True

    def kill(self, name: str, signal_name: str = "SIGKILL") -> None:
        """Send ``signal_name`` to the container's PID 1 (Docker's kill). SIGKILL, or the container's stop signal,
        also means "stopped by the user": no restart after this exit. Any other signal is only delivered."""
        import signal

        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import parse_signal

        info = self._require(name)
        try:
            canonical = parse_signal(signal_name)
        except ValueError as exc:
            raise RuntimeSetupError(f"killing container {name}: {exc}") from None
        pid = info.supervisor_pid
        if not info.supervised or not pid:
            raise RuntimeSetupError(f"killing container {name}: it is not running (state {info.state}). "
                                    f"Start it first (dockerless start {name}).")
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise RuntimeSetupError(f"killing container {name}: its supervisor (pid {pid}) just ended.") from None
        try:
            # The lock is held after the pidfd was opened, so the pidfd is the supervisor's (it wrote the PID).
            if not runtime_state.supervisor_alive(info.path):
                raise RuntimeSetupError(f"killing container {name}: its supervisor just ended.")
            runtime_state.write_json(os.path.join(info.path, runtime_state.KILL_FILE), {"signal": canonical})
            signal.pidfd_send_signal(pidfd, signal.SIGUSR2)
        finally:
            os.close(pidfd)
        if canonical == "SIGKILL":
            # Docker's kill returns once the container is gone; a SIGKILLed PID namespace ends at once.
            self._wait_unlocked(info.path, 10)

    def start_all(self, names: list[str] | None = None, dry_run: bool = False,
                  fresh: bool = True) -> list[tuple[str, str]]:
        """Start the named containers (default: all) whose restart policy says they should run after a host
        boot, by Docker's daemon restore rule (moby ``restore``: not running, started before, and
        ``ShouldRestart`` with the recorded exit code, restart count and stop-by-user): ``always``;
        ``unless-stopped`` unless the user stopped it; ``on-failure`` when its last run failed (a run the host
        ended is a failure) and retries are left. Returns ``[(name, outcome)]`` with outcome ``started``,
        ``running``, ``skipped: why`` or ``failed: error``; one failure does not stop the others.
        ``dry_run``: start nothing, ``would start`` instead of ``started`` (the systemd unit's ExecCondition).
        ``fresh``: as ``start``'s."""
        outcomes = []
        infos = self.list() if names is None else [self._require(n) for n in names]
        for info in infos:
            if info.supervised:
                outcomes.append((info.name, "running"))
                continue
            why = self.restore_refusal(info)
            if why is not None:
                outcomes.append((info.name, f"skipped: {why}"))
                continue
            if dry_run:
                outcomes.append((info.name, "would start"))
                continue
            # container_run's request is consumed: a later restart after a killed supervisor obeys the rule.
            try:
                os.unlink(os.path.join(info.path, runtime_state.START_FILE))
            except FileNotFoundError:
                pass
            try:
                self.start(info.name, restart_count=self.restore_count(info), fresh=fresh)
            except RuntimeSetupError as exc:
                outcomes.append((info.name, f"failed: {exc}"))
                continue
            outcomes.append((info.name, "started"))
        return outcomes

    @staticmethod
    def restore_refusal(info: ContainerInfo) -> str | None:
        """Why a container that does not run must stay down after a boot or after its supervisor vanished
        (None: start it). See ``start_all``; the systemd unit's ExecCondition asks the same (runtime/systemd).
        A start container_run asked of the unit (``start.json``) always goes on: it is the user's start."""
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.supervisor import should_restart

        if os.path.exists(os.path.join(info.path, runtime_state.START_FILE)):
            return None
        policy = info.spec.get("restart_policy") or "no"
        if info.started_at is None:
            return "never started"
        # A container whose supervisor vanished (host reboot, kill -9) did not exit by itself: Docker records
        # such a run with exit code 255.
        code = 255 if info.state == "dead" or info.exit_code is None else info.exit_code
        if should_restart(policy, code, info.restart_count, int(info.spec.get("restart_retries") or 0),
                          info.stopped_by_user):
            return None
        if policy == "on-failure":
            return f"restart policy on-failure, exit code {code}, {info.restart_count} restarts"
        return "stopped by the user" if info.stopped_by_user and policy != "no" else f"restart policy {policy}"

    @staticmethod
    def restore_count(info: ContainerInfo) -> int:
        """The restart count a restored container begins with: one more when its supervisor vanished while it
        ran (it is a restart by its policy, as after Docker's daemon restarted it), else 0."""
        return info.restart_count + 1 if info.state == "dead" else 0

    @staticmethod
    def _mark_stopped_by_user(cdir: str) -> None:
        path = os.path.join(cdir, runtime_state.STATE_FILE)
        state = runtime_state.read_json(path) or {}
        if not state.get("stopped_by_user"):
            state["stopped_by_user"] = True
            runtime_state.write_json(path, state)

    def wait(self, name: str, timeout: float | None = None) -> ContainerInfo:
        """Wait until the supervisor of ``name`` ends (a container that exited without restart)."""
        info = self._require(name)
        if not self._wait_unlocked(info.path, timeout):
            raise TimeoutError(name)
        return self._require(name)

    def remove(self, name: str, force_kill: bool = False, stop_timeout: float | None = None) -> bool:
        """Stop ``name`` and delete its directory (upper dir, logs) and cgroup. False when it didn't exist.
        ``force_kill``: SIGKILL at once (docker rm -f) instead of the stop signal and the stop timeout."""
        cdir = self.container_dir(name)
        if not os.path.isdir(cdir):
            return False
        if self.inspect(name) is not None:
            if force_kill:
                self.stop(name, 0, "SIGKILL")
            else:
                self.stop(name, stop_timeout)
        elif runtime_state.supervisor_alive(cdir):
            raise RuntimeSetupError(f"container {name}: a supervisor still runs but spec.json is unreadable. "
                                    "Stop it by hand first.")
        try:
            from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.cgroup import Cgroup
            from ansible_collections.dockerless.containers.plugins.module_utils.cgroups.hierarchy import (
                container_cgroup_path,
            )

            Cgroup(container_cgroup_path(name), self.cgroup_root).remove(force=True)
        except (CgroupError, OSError):
            pass
        runtime_state.remove_device_cgroup(name, self.cgroup_root)
        remove_tree(cdir)
        if os.path.exists(os.path.join(self.store_root, "networks")):
            from ansible_collections.dockerless.containers.plugins.module_utils.network import networks

            networks.release(self.store_root, name)   # its addresses are free again
        return True

    def logs(self, name: str, max_bytes: int = 1 << 20) -> tuple[bytes, bytes]:
        cdir = self.container_dir(name)
        return runtime_state.read_log(cdir, "stdout", max_bytes), runtime_state.read_log(cdir, "stderr", max_bytes)

    def plan(self, name: str, state: str, spec: ContainerSpec | None = None, recreate: bool = False) -> Plan:
        """What it takes to bring ``name`` to ``state`` (started/stopped/absent) with ``spec``. ``spec`` None
        means "whatever it has" (no comparison); a container that must be created needs one."""
        before = self.inspect(name)
        diff = {} if spec is None else spec_diff(before.spec if before else None, spec)
        actions: list[str] = []
        running = before is not None and before.supervised
        if state == "absent":
            if before is not None or os.path.isdir(self.container_dir(name)):
                actions = (["stop"] if running else []) + ["remove"]
            return Plan(name, state, actions, {}, before, spec)
        if before is None:
            if spec is None:
                raise RuntimeSetupError(f"container {name}: does not exist; 'image' is needed to create it.")
            actions = ["create"] + (["start"] if state == "started" else [])
            return Plan(name, state, actions, diff, before, spec)
        if spec is not None and (diff or recreate):
            if not recreate:
                check_relinked_volumes(name, before.spec, spec)
            actions = (["stop"] if running else []) + ["remove", "create"]
            if state == "started":
                actions.append("start")
            return Plan(name, state, actions, diff, before, spec)
        if state == "started" and not running:
            actions = ["start"]
        elif state == "stopped" and running:
            actions = ["stop"]
        return Plan(name, state, actions, diff, before, spec)

    def apply(self, plan: Plan, log_max_size: int = runtime_state.DEFAULT_LOG_MAX,
              stop_timeout: float | None = None, force_kill: bool = False, units=None,
              unit_plan=None) -> ContainerInfo | None:
        """Carry out ``plan``; returns the container afterwards (None when removed). ``force_kill``: a stop
        before a removal is a SIGKILL at once. ``units`` (runtime/systemd.Units) and ``unit_plan``: the
        container's systemd unit is written before the container starts, and the start goes through it (the
        supervisor becomes the unit's main process); a unit that goes is removed after the container."""
        removing = "remove" in plan.actions
        through_unit = units is not None and unit_plan is not None and unit_plan.after is not None
        for action in plan.actions:
            if action == "stop":
                if force_kill and removing:
                    self.stop(plan.name, 0, "SIGKILL")
                else:
                    self.stop(plan.name, stop_timeout)
            elif action == "remove":
                self.remove(plan.name, force_kill=force_kill, stop_timeout=stop_timeout)
            elif action == "create":
                self.create(plan.name, plan.spec, log_max_size)
            elif action == "start":
                if through_unit:
                    units.apply(unit_plan)
                    unit_plan = None
                    units.start(self, plan.name)
                else:
                    self.start(plan.name)
        if units is not None and unit_plan is not None:
            units.apply(unit_plan)
        return self.inspect(plan.name)

    def _require(self, name: str) -> ContainerInfo:
        info = self.inspect(name)
        if info is None:
            raise RuntimeSetupError(f"container {name}: not found in {self.containers_dir}. Create it with an "
                                    "image first.")
        return info

    @staticmethod
    def _wait_unlocked(cdir: str, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while runtime_state.supervisor_alive(cdir):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return True


def _health_of(state: dict, record: dict, alive: bool) -> dict | None:
    """The health record shown for a container with a healthcheck. With no supervisor alive nothing checks it any
    more: a run that ended normally was recorded ``unhealthy`` (health.Health.stopped), and one whose supervisor
    was killed (kill -9, a reboot) reads the same way rather than keeping the last ``healthy`` of a service that
    is gone."""
    if not (record.get("spec") or {}).get("healthcheck"):
        return None
    health = state.get("health")
    if health and not alive and health.get("status") != "unhealthy":
        return dict(health, status="unhealthy")
    return health


class ContainerInfo(Record):
    """A named container as container_info and container_run report it."""

    name: str
    id: str
    path: str
    state: str                      # created, running, restarting, exited, dead
    supervised: bool                # a supervisor process is alive for it
    pid: int | None
    supervisor_pid: int | None
    exit_code: int | None
    oom_killed: bool
    started_at: str | None
    finished_at: str | None
    created_at: str | None
    restart_count: int
    rootfs_mode: str | None
    cgroup: str | None
    error: str | None
    spec: dict
    stopped_by_user: bool = False   # its last end came from stop/kill (unless-stopped, start --all)
    health: dict | None = None      # runtime/health.py: status, failing_streak, log (with a healthcheck)
    networks: dict | None = None    # network/attach.py shown(): per network address, prefix, gateway, mac, aliases

    @classmethod
    def from_files(cls, name: str, cdir: str, record: dict, state: dict, alive: bool) -> ContainerInfo:
        return cls(name=name, id=record.get("id", ""), path=cdir, state=runtime_state.current_state(state, alive),
                   supervised=alive,
                   pid=state.get("pid") if alive else None,
                   supervisor_pid=state.get("supervisor_pid") if alive else None,
                   exit_code=state.get("exit_code"), oom_killed=bool(state.get("oom_killed")),
                   started_at=state.get("started_at"), finished_at=state.get("finished_at"),
                   created_at=record.get("created_at"), restart_count=int(state.get("restart_count") or 0),
                   rootfs_mode=state.get("rootfs_mode"), cgroup=state.get("cgroup"), error=state.get("error"),
                   spec=record.get("spec") or {}, stopped_by_user=bool(state.get("stopped_by_user")),
                   health=_health_of(state, record, alive),
                   networks=state.get("networks") if (record.get("spec") or {}).get("networks") else None)

    @property
    def running(self) -> bool:
        return self.supervised and self.state in ("running", "restarting")

    def as_dict(self) -> dict[str, Any]:
        """The ``container`` return value of the modules."""
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp

        spec = ContainerSpec.from_dict(self.spec) if self.spec else None
        return {
            "name": self.name, "id": self.id, "state": self.state, "running": self.running, "pid": self.pid,
            "supervisor_pid": self.supervisor_pid, "exit_code": self.exit_code, "oom_killed": self.oom_killed,
            "started_at": self.started_at, "finished_at": self.finished_at, "created_at": self.created_at,
            "restart_count": self.restart_count, "rootfs_mode": self.rootfs_mode, "cgroup": self.cgroup,
            "error": self.error, "image": self.spec.get("image"), "image_digest": self.spec.get("image_digest"),
            "command": self.spec.get("argv"), "env": env_digests(self.spec.get("env")),
            "restart_policy": self.spec.get("restart_policy"),
            "published_ports": list(self.spec.get("published_ports") or []),
            "restart_retries": self.spec.get("restart_retries") or 0,
            "stop_signal": self.spec.get("stop_signal") or "SIGTERM", "stopped_by_user": self.stopped_by_user,
            "capabilities": spec.effective_capabilities() if spec else [],
            "seccomp": seccomp.report(spec.seccomp, spec.capabilities, spec.privileged) if spec else None,
            "log_paths": {s: os.path.join(self.path, f"{s}.log") for s in ("stdout", "stderr")},
            "path": self.path,
            "health": self.health,
            "healthcheck": self.spec.get("healthcheck"),
            "network": self._network_mode(),
            "networks": self.networks or {},
        }

    def _network_mode(self) -> str | list:
        names = self.spec.get("networks")
        if names:
            return list(names)
        return "none" if "net" in (self.spec.get("namespaces") or ()) else "host"


class Plan(Record):
    name: str
    state: str
    actions: list[str]
    diff: dict[str, dict]
    before: ContainerInfo | None
    spec: ContainerSpec | None

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class ImageForRun(Record):
    """An image resolved for a run: its record (None in check mode when it would have to be pulled first) and
    what runtime.spec.spec_for_image reads of it."""

    name: str
    record: Any
    lower_dirs: list[str]
    would_pull: bool = False

    @property
    def digest(self) -> str | None:
        return self.record.digest if self.record else None

    @property
    def config(self) -> dict:
        return (self.record.config.get("config") or {}) if self.record else {}

    @property
    def diff_ids(self) -> list[str]:
        return [layer["diff_id"] for layer in self.record.layers] if self.record else []


def image_for_run(store_root: str | None, ref, pull: str = "missing", registry=None,
                  check_mode: bool = False) -> ImageForRun:
    """The image ``ref`` (an image.reference.Reference; a string is parsed) from the store, fetched per ``pull``
    by image.pull.ensure_image, with its layer folders top → bottom. In check mode nothing is downloaded: an
    image that would be pulled comes back with ``would_pull`` and no record. With ``pull: never`` (not in check
    mode), or ``missing`` and the image in the store, the pull engine (registry client, TLS) is not even
    imported: the layer folders are made from the store's blobs. ``registry``: the RegistryOptions, or a callable
    that makes them (called only when the registry is asked)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.image.reference import (
        Reference,
        parse_reference,
    )
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

    if not isinstance(ref, Reference):
        ref = parse_reference(ref)
    store = Store(store_root)
    # What ensure_image does with ``missing`` and the image in the store, without importing the pull engine.
    stored = pull == "missing" and store.exists() and store.resolve(ref.name) is not None
    if stored or (pull == "never" and not check_mode):
        record = store.image(ref.name)
        if not check_mode:
            from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import (
                ensure_unpacked,
            )

            ensure_unpacked(store, record)
    else:
        from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import ensure_image

        record = ensure_image(store, ref, policy=pull, registry=registry() if callable(registry) else registry,
                              check_mode=check_mode)
    if record is None:
        return ImageForRun(ref.name, None, [], True)
    return ImageForRun(ref.name, record, [store.layer_dir(layer["diff_id"]) for layer in reversed(record.layers)])


def exec_target(runtime, name: str):
    """The running container ``name`` of ``runtime`` as exec.Target (what container_exec enters), or
    RuntimeSetupError naming it and its state (``exec.find_target`` in the runtime's containers folder)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec

    return runtime_exec.find_target(runtime.containers_dir, name)
