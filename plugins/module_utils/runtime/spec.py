# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container spec: module parameters + the image config → one validated, comparable description.

``build_spec`` merges the image's config (Entrypoint, Cmd, Env, WorkingDir, User) with the caller's options
the way Docker does, validates everything before anything is created, and returns a ``ContainerSpec``.
``ContainerSpec.init_config`` turns it into the plain dict the container init (init_sequence) consumes.
Named containers record ``ContainerSpec.as_dict()`` in ``spec.json``; ``spec_diff`` compares a recorded spec
with a requested one on the keys in ``COMPARED_KEYS`` (a difference recreates the container).
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.common import ALL_NAMESPACES
from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import (
    MASKED_PATHS,
    PROC_BIND_ALLOWED,
    READONLY_PATHS,
    VOLUME_PIN_KEYS,
    boot_id,
)
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp_lib
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.users import MAX_ID

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the container start path
if TYPE_CHECKING:
    from typing import Any

RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
ISOLATIONS = ("container", "chroot")
CHROOT_CAPABILITY = "CAP_SYS_CHROOT"  # never granted with isolation chroot (init_sequence enforces it too)
ROOTFS_MODES = ("auto", "overlay", "copy")
LIMIT_KEYS = ("memory", "memory_swap", "cpus", "cpu_weight", "pids_limit")
# What a difference of recreates a named container (stop_timeout, log size and rootfs mode don't).
COMPARED_KEYS = ("image", "image_digest", "argv", "env", "workdir", "user", "hostname", "namespaces", "userns",
                 "volumes", "tmpfs", "read_only", "limits", "capabilities", "no_new_privileges", "privileged",
                 "isolation", "rlimits", "restart_policy", "restart_retries", "stop_signal", "oom_score_adj",
                 "seccomp", "dns_servers", "dns_search_domains", "etc_hosts", "healthcheck", "health_on_failure",
                 "networks", "network_aliases", "ipv4_address", "published_ports")
# Compared keys a container recorded by an older version lacks, with the value it ran with: no recreate for them.
_RECORDED_DEFAULTS = {"restart_retries": 0, "stop_signal": "SIGTERM", "oom_score_adj": 0, "dns_servers": [],
                      "dns_search_domains": [], "etc_hosts": {}, "healthcheck": None, "health_on_failure": "none",
                      "networks": [], "network_aliases": [], "ipv4_address": None, "published_ports": []}
# Patterns, compiled by re's cache on first use (``_match``).
# Matched whole (fullmatch): "$" also matches before a trailing newline, so "web\n" would pass a "^...$" check.
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_HOSTNAME_RE = r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62})"
_ENV_KEY_RE = r"[^=\0]+"


def _match(pattern: str, text: str):
    """``re.fullmatch``, ``re`` imported on first use (runtime/__init__.py): a start with the image's own command
    and no name or hostname checks none."""
    import re

    return re.fullmatch(pattern, text)


_RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack")


class ContainerSpec(Record):
    """Everything that defines a container. ``lower_dirs`` are the image's layer folders, top → bottom."""

    argv: list[str]
    lower_dirs: list[str]
    image: str | None = None
    image_digest: str | None = None
    diff_ids: list[str] = Factory(list)
    env: dict[str, str] = Factory(dict)
    workdir: str = "/"
    user: str = ""
    hostname: str = ""
    namespaces: list[str] = Factory(lambda: list(ALL_NAMESPACES))
    userns: bool = False
    volumes: list[dict] = Factory(list)
    tmpfs: list[dict] = Factory(list)
    read_only: bool = False
    limits: dict[str, Any] = Factory(dict)
    capabilities: list[str] = Factory(lambda: sorted(DEFAULT_CAPABILITIES))
    no_new_privileges: bool = True
    privileged: bool = False
    isolation: str = "container"
    rlimits: list[dict] = Factory(list)
    restart_policy: str = "no"
    restart_retries: int = 0                # on-failure: restarts before giving up (0: no limit), Docker's :N
    stop_signal: str = "SIGTERM"            # canonical name (runtime_state.parse_signal)
    oom_score_adj: int = 0
    stop_timeout: int = 10
    rootfs_mode: str = "auto"
    seccomp: str | None = seccomp_lib.DEFAULT  # "default", "unconfined" or a profile path (seccomp.py)
    # The container's /etc/resolv.conf and /etc/hosts (network.etc_files): nameservers and search domains in
    # place of the host's, extra host name → address entries.
    dns_servers: list[str] = Factory(list)
    dns_search_domains: list[str] = Factory(list)
    etc_hosts: dict[str, str] = Factory(dict)
    healthcheck: dict | None = None         # runtime/health.py resolve(): the option merged with the image's
    health_on_failure: str = "none"         # none, kill, restart (on unhealthy)
    # Bridge networks (network/networks.py) in order: eth0 on the first, the default route through its gateway.
    # Empty: `none` (loopback only, "net" in namespaces) or `host` (no "net").
    networks: list[str] = Factory(list)
    network_aliases: list[str] = Factory(list)
    ipv4_address: str | None = None
    # Not compared, not an option: True when `network` was not given and the default applied. A container
    # recorded before networks existed (no "networks" key: it runs with `none`, the old default) is then not
    # recreated by an upgrade alone (spec_diff).
    network_defaulted: bool = False
    # network.ports mappings {host_ip, host_port, container_port, proto}, normalised; host_port 0 until a free
    # one is chosen when the container is created (task.py), then the chosen one is recorded.
    published_ports: list[dict] = Factory(list)

    @classmethod
    def from_dict(cls, data: dict) -> ContainerSpec:
        known = set(cls.field_names())
        return cls(**{k: v for k, v in data.items() if k in known})

    def compared(self) -> dict[str, Any]:
        return _comparable(self.as_dict())

    def effective_capabilities(self) -> list[str]:
        """The capability set of the container (bounding set; CapEff of a root user; a non-root user starts
        with none, Docker's rule). Privileged: every capability the caller itself has."""
        if self.privileged:
            permitted = linux.capget()[1]
            return [n for n, bit in sorted(linux.CAPABILITIES.items(), key=lambda i: i[1]) if permitted >> bit & 1]
        return list(self.capabilities)

    def init_config(self, cid: str, container_dir: str, name: str | None = None) -> dict[str, Any]:
        """The dict spawn.spawn() takes; upper/work/copy live in ``container_dir``."""
        return {
            "id": cid,
            "name": name,
            "image": self.image,
            "argv": list(self.argv),
            "env": [f"{k}={v}" for k, v in self.env.items()],
            "workdir": self.workdir,
            "user": self.user,
            "hostname": self.hostname,
            "namespaces": list(self.namespaces),
            "isolation": self.isolation,
            "rootfs": {
                "lower": list(self.lower_dirs),
                "upper": os.path.join(container_dir, "upper"),
                "work": os.path.join(container_dir, "work"),
                "copy": os.path.join(container_dir, "rootfs-copy"),
                "mountpoint": os.path.join(container_dir, "rootfs"),
                "mode": self.rootfs_mode,
                "read_only": self.read_only,
            },
            "volumes": [dict(v) for v in self.volumes],
            "tmpfs": [dict(t) for t in self.tmpfs],
            "capabilities": list(self.capabilities),
            "privileged": self.privileged,
            "no_new_privileges": self.no_new_privileges,
            "masked_paths": list(MASKED_PATHS),
            "readonly_paths": list(READONLY_PATHS),
            "rlimits": [dict(r) for r in self.rlimits],
            "seccomp": self.seccomp,
            "oom_score_adj": self.oom_score_adj,
        }


def _comparable(data: dict) -> dict[str, Any]:
    """The compared keys of a spec dict; volumes without their pins (device and inode of the source, recorded
    for the start-time check): records made before pinning compare equal, nothing is recreated for it."""
    out = {key: data.get(key) for key in COMPARED_KEYS}
    if out.get("volumes"):
        out["volumes"] = [{k: v for k, v in vol.items() if k not in VOLUME_PIN_KEYS} for vol in out["volumes"]]
    return out


def env_digests(env: dict | list | None) -> list[str] | None:
    """``["KEY=sha256:<first 12 hex of sha256(value)>", ...]`` (by key): how results and diffs show an environment. The keys
    and whether a value changed stay visible; the values (passwords, tokens) do not. spec.json keeps the real
    values, which the container needs. A short or guessable value can still be found from its digest by trying
    candidates: tasks handling such values set ``no_log``."""
    if env is None:
        return None
    import hashlib  # only when an environment is shown

    items = env.items() if isinstance(env, dict) else (str(item).partition("=")[::2] for item in env)
    # Sorted by key: the record's order (JSON, sorted) and the request's (image first) then compare as lists.
    return [f"{key}=sha256:{hashlib.sha256(str(value).encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"
            for key, value in sorted(items)]


def _shown(key: str, value: Any) -> Any:
    return env_digests(value) if key == "env" else value


def spec_diff(before: dict | None, after: ContainerSpec) -> dict[str, dict]:
    """``{key: {"before": ..., "after": ...}}`` for the compared keys that differ (all when ``before`` is None).

    Values are compared as they are; ``env`` is shown as env_digests (the diff reaches the task's output)."""
    wanted = after.compared()
    if before is None:
        return {k: {"before": None, "after": _shown(k, v)} for k, v in wanted.items()}
    recorded = _comparable({**_RECORDED_DEFAULTS, **before})
    if after.network_defaulted and "networks" not in before:
        # Recorded before bridge networks existed, and the caller doesn't say: it keeps the network it runs with.
        wanted = {k: v for k, v in wanted.items() if k not in ("networks", "network_aliases", "ipv4_address")}
    return {k: {"before": _shown(k, recorded.get(k)), "after": _shown(k, v)}
            for k, v in wanted.items() if recorded.get(k) != v}


def _as_argv(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            import shlex  # only for a command given as a string

            return shlex.split(value)
        except ValueError as exc:
            raise RuntimeSetupError(f"{what} {value!r}: {exc}. Quote it properly or pass a list.") from None
    if isinstance(value, bool):  # YAML turns an unquoted `true` into a boolean; the command `true` was meant
        return ["true" if value else "false"]
    if isinstance(value, (int, float)):
        return [str(value)]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise RuntimeSetupError(f"{what}: expected a string or a list, got {type(value).__name__}")


def resolve_argv(config: dict, command: Any = None, entrypoint: Any = None) -> list[str]:
    """Docker's rule: an ``entrypoint`` option replaces the image's Entrypoint and drops its Cmd; ``command``
    replaces Cmd. The result is Entrypoint + Cmd and must not be empty."""
    cmd = _as_argv(command, "command")
    ep = _as_argv(entrypoint, "entrypoint")
    if ep is None:
        ep = list(config.get("Entrypoint") or [])
        if cmd is None:
            cmd = list(config.get("Cmd") or [])
    argv = list(ep) + list(cmd or [])
    if not argv or not argv[0]:
        raise RuntimeSetupError("no command to run: the image has neither Entrypoint nor Cmd. Set 'command'.")
    return argv


def merge_env(image_env: list[str] | None, env: dict | None) -> dict[str, str]:
    """The image's ``Env`` (``K=V`` list) with ``env`` merged over it, image order first."""
    out: dict[str, str] = {}
    for item in image_env or []:
        key, value = (item.split("=", 1) + [""])[:2]
        if key:
            out[key] = value
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not _match(_ENV_KEY_RE, key):
            raise RuntimeSetupError(f"env: invalid variable name {key!r}. Names can't be empty or contain '='.")
        if value is None:
            raise RuntimeSetupError(f"env {key}: no value. Use an empty string for an empty variable.")
        if isinstance(value, bool):
            value = "true" if value else "false"
        value = str(value)
        if "\0" in value:
            raise RuntimeSetupError(f"env {key}: the value contains a NUL byte.")
        out[key] = value
    return out


def _container_path(path: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise RuntimeSetupError(f"{what} {path!r}: must be an absolute path inside the container.")
    if "\0" in path or any(part == ".." for part in path.split("/")):
        raise RuntimeSetupError(f"{what} {path!r}: '..' and NUL are not allowed.")
    return os.path.normpath(path)


def parse_volume(text: str) -> dict:
    """``host_path:container_path[:ro|rw]`` → ``{"source", "target", "read_only", "dev", "ino", "boot",
    "host_path"}``: the source resolved once, here, and pinned by device and inode (and the boot it was pinned
    in: device numbers may change with a reboot); the init opens it without following symlinks and refuses to
    start when it is no longer that file (rootfs.open_volume_source)."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) not in (2, 3):
        raise RuntimeSetupError(f"volume {text!r}: expected host_path:container_path[:ro]")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise RuntimeSetupError(f"volume {text!r}: mode {mode!r} is not 'ro' or 'rw'")
    if not source.startswith("/"):
        raise RuntimeSetupError(f"volume {text!r}: the host path must be absolute")
    if not os.path.exists(source):
        raise RuntimeSetupError(f"volume {text!r}: {source} does not exist on the host. Create it first.")
    target = _container_path(target, f"volume {text!r}: container path")
    if target == "/":
        raise RuntimeSetupError(f"volume {text!r}: can't mount over the container's /")
    _refuse_proc_target(target, f"volume {text!r}")
    real = os.path.realpath(source)
    st = os.stat(real)
    return {"source": real, "target": target, "read_only": mode == "ro", "dev": st.st_dev, "ino": st.st_ino,
            "boot": boot_id(), "host_path": os.path.normpath(source)}


def check_relinked_volumes(name: str, before: dict | None, after: ContainerSpec) -> None:
    """Refuse to recreate container ``name`` when a volume's host path, given the same way as when it was created,
    now resolves somewhere else: a symlink in it changed since (``mv config x; ln -s / config`` by a container
    writing the shared parent), and following it would mount what the container chose. ``recreate`` skips this
    check: the caller has looked at the host path and wants what it points to now."""
    recorded = {v.get("host_path"): v.get("source") for v in (before or {}).get("volumes") or () if v.get("host_path")}
    for vol in after.volumes:
        then = recorded.get(vol.get("host_path"))
        if then is not None and then != vol["source"]:
            raise RuntimeSetupError(
                f"container {name}: volume {vol['host_path']}:{vol['target']}: the host path resolved to {then} when "
                f"the container was created and resolves to {vol['source']} now: a symlink in it changed. Refusing "
                "to follow it (a container writing a shared volume can plant such a link). Check the host path, "
                "then set recreate: true to mount what it points to now.")


def _refuse_proc_target(target: str, what: str) -> None:
    # runc's checkProcMount: /proc and what is under it stay the kernel's (CVE-2019-19921, CVE-2023-27561).
    if (target == "/proc" or target.startswith("/proc/")) and target not in PROC_BIND_ALLOWED:
        raise RuntimeSetupError(f"{what}: a mount on {target} is refused: /proc is the kernel's, a mount over it "
                                "would hide what the container's masks protect. Choose another container path.")


def parse_tmpfs(text: str) -> dict:
    """``path[:options]`` (Docker's --tmpfs) → ``{"target", "options"}``."""
    target, options = (text.split(":", 1) + [""])[:2]
    target = _container_path(target, f"tmpfs {text!r}:")
    if target == "/":
        raise RuntimeSetupError(f"tmpfs {text!r}: can't mount over the container's /")
    _refuse_proc_target(target, f"tmpfs {text!r}")
    return {"target": target, "options": options}


def parse_ulimit(text: str) -> dict:
    """``name=soft[:hard]`` (Docker's --ulimit), ``-1``/``unlimited`` for no limit."""
    name, sep, values = text.partition("=") if isinstance(text, str) else ("", "", "")
    name = name.strip().lower()
    if not sep or name not in _RLIMITS:
        raise RuntimeSetupError(f"ulimit {text!r}: expected name=soft[:hard] with name one of {', '.join(_RLIMITS)}")
    soft_text, hard_text = (values.split(":", 1) + [""])[:2]

    def number(v: str) -> int:
        v = v.strip()
        if v in ("-1", "unlimited"):
            return -1
        if not v.isdigit():
            raise RuntimeSetupError(f"ulimit {text!r}: {v!r} is not a number")
        return int(v)

    soft = number(soft_text)
    hard = number(hard_text) if hard_text else soft
    if hard != -1 and (soft == -1 or soft > hard):
        raise RuntimeSetupError(f"ulimit {text!r}: the soft limit is above the hard limit")
    return {"name": name, "soft": soft, "hard": hard}


def resolve_capabilities(cap_add: list | None, cap_drop: list | None) -> list[str]:
    """Docker's default set, minus ``cap_drop``, plus ``cap_add``; ``ALL`` works in both (drop first)."""
    def norm(names):
        out = []
        for name in names or []:
            key = str(name).upper()
            if key == "ALL":
                out.append("ALL")
                continue
            if not key.startswith("CAP_"):
                key = "CAP_" + key
            if key not in linux.CAPABILITIES:
                raise RuntimeSetupError(f"capability {name!r} is unknown. Use names like NET_ADMIN or CAP_NET_ADMIN.")
            out.append(key)
        return out

    add, drop = norm(cap_add), norm(cap_drop)
    caps = set(DEFAULT_CAPABILITIES)
    if "ALL" in drop:
        caps = set()
    caps -= set(drop)
    if "ALL" in add:
        caps = set(linux.CAPABILITIES)
    caps |= {c for c in add if c != "ALL"}
    return sorted(caps, key=linux.CAPABILITIES.get)


def validate_user(user: str) -> str:
    """Syntax and range of ``user[:group]``; names are resolved later, inside the image."""
    if user is None:
        return ""
    user = str(user)
    for part in user.split(":", 1):
        if part.isdigit() and int(part) > MAX_ID:
            raise RuntimeSetupError(f"user {user!r}: id {part} is out of range (0-{MAX_ID}). Use a valid uid/gid.")
        if part.startswith("-") or "/" in part or any(c < " " or c == "\x7f" for c in part):
            raise RuntimeSetupError(f"user {user!r}: invalid user or group. Use name, uid, name:group or uid:gid.")
    return user


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _match(NAME_RE, name):
        raise RuntimeSetupError(f"container name {name!r}: use letters, digits, '_', '.' and '-' (not first), "
                                "at most 128 characters.")
    return name


def build_spec(
    *,
    image_config: dict | None,
    healthcheck: dict | None = None,
    health_on_failure: str | None = None,
    lower_dirs: list[str],
    image: str | None = None,
    image_digest: str | None = None,
    diff_ids: list[str] | None = None,
    command: Any = None,
    entrypoint: Any = None,
    env: dict | None = None,
    workdir: str | None = None,
    user: str | None = None,
    hostname: str | None = None,
    name: str | None = None,
    namespaces: list[str] | None = None,
    network: str | list | None = None,
    network_aliases: list[str] | None = None,
    ipv4_address: str | None = None,
    userns: bool | None = False,
    volumes: list[str] | None = None,
    tmpfs: list[str] | None = None,
    read_only: bool = False,
    limits: dict | None = None,
    cap_add: list[str] | None = None,
    cap_drop: list[str] | None = None,
    no_new_privileges: bool = True,
    privileged: bool = False,
    isolation: str = "container",
    ulimits: list[str] | None = None,
    restart_policy: str = "no",
    restart_retries: int | None = None,
    stop_signal: str | int | None = None,
    oom_score_adj: int | None = None,
    stop_timeout: int = 10,
    rootfs_mode: str = "auto",
    seccomp: str | None = seccomp_lib.DEFAULT,
    dns_servers: list[str] | None = None,
    dns_search_domains: list[str] | None = None,
    etc_hosts: dict | None = None,
    published_ports: list | None = None,
) -> ContainerSpec:
    """Validate options and merge them with the image config (the ``config`` object of an OCI image config)."""
    cfg = dict(image_config or {})
    if isolation not in ISOLATIONS:
        raise RuntimeSetupError(f"isolation {isolation!r}: use one of {', '.join(ISOLATIONS)}")
    if restart_policy not in RESTART_POLICIES:
        raise RuntimeSetupError(f"restart_policy {restart_policy!r}: use one of {', '.join(RESTART_POLICIES)}")
    retries = int(restart_retries or 0)
    if retries < 0:
        raise RuntimeSetupError(f"restart_retries {restart_retries}: must be 0 (no limit) or more.")
    if retries and restart_policy != "on-failure":
        # Docker refuses a maximum retry count with any other policy too.
        raise RuntimeSetupError(f"restart_retries {retries}: only limits restart_policy 'on-failure', not "
                                f"{restart_policy!r}. Drop it or use on-failure.")
    oom = 0 if oom_score_adj is None else oom_score_adj
    if isinstance(oom, bool) or not isinstance(oom, int) or not -1000 <= oom <= 1000:
        raise RuntimeSetupError(f"oom_score_adj {oom_score_adj!r}: use an integer from -1000 to 1000.")
    # The option wins over the image's StopSignal (Docker's --stop-signal); SIGTERM when neither says.
    signal_text = stop_signal if stop_signal not in (None, "") else cfg.get("StopSignal")
    signal_name = "SIGTERM"
    if signal_text not in (None, ""):
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.state import parse_signal

        try:
            signal_name = parse_signal(signal_text)
        except ValueError as exc:
            source = "stop_signal" if stop_signal not in (None, "") else f"image {image or '?'}: StopSignal"
            raise RuntimeSetupError(f"{source}: {exc}") from None
    if rootfs_mode not in ROOTFS_MODES:
        raise RuntimeSetupError(f"rootfs mode {rootfs_mode!r}: use one of {', '.join(ROOTFS_MODES)}")
    mode, bridge_networks = resolve_network(network)
    published = []
    if published_ports:
        from ansible_collections.dockerless.containers.plugins.module_utils.network import ports as ports_lib

        if not bridge_networks:
            raise RuntimeSetupError(f"published_ports: a container on network {mode!r} has no address to publish to; "
                                    "use network: bridge (or a network of container_network), or drop published_ports")
        published = ports_lib.normalise(published_ports)
    if not lower_dirs:
        raise RuntimeSetupError(f"image {image or '?'}: no layer folders to build a rootfs from. Pull it again.")

    if userns is None:
        userns = os.geteuid() != 0          # rootless needs it; as root it adds nothing by default
    capabilities = resolve_capabilities(cap_add, cap_drop)
    if isolation == "chroot":
        # Filesystem only: a private mount namespace keeps the rootfs mount off the host, nothing else.
        ns = ["mount"]
        if not privileged:
            # chroot(2) is not pivot_root: with CAP_SYS_CHROOT a process chroots into a subdirectory, climbs out
            # with ".." (its cwd stays outside the new root) and chroots into the host's /. Without the
            # capability Docker's seccomp profile refuses the syscall too (it is allowed only with the cap).
            if any(str(c).upper() in ("SYS_CHROOT", CHROOT_CAPABILITY) for c in cap_add or ()):
                raise RuntimeSetupError("cap_add SYS_CHROOT: refused with isolation 'chroot', where it lets the "
                                        "command leave the image's filesystem. Use isolation 'container'.")
            capabilities = [c for c in capabilities if c != CHROOT_CAPABILITY]
    else:
        ns = list(ALL_NAMESPACES if namespaces is None else namespaces)
        unknown = [n for n in ns if n not in ALL_NAMESPACES]
        if unknown:
            raise RuntimeSetupError(f"namespaces {unknown}: unknown; use some of {', '.join(ALL_NAMESPACES)}")
        if "mount" not in ns:
            raise RuntimeSetupError("namespaces: 'mount' is required for isolation 'container' (pivot_root needs it)")
        if mode == "host":
            ns = [n for n in ns if n != "net"]
        elif "net" not in ns:
            raise RuntimeSetupError("namespaces: without 'net' the host network is used; say network: host")
        ns = [n for n in ALL_NAMESPACES if n in ns]
    if userns:
        ns = ["user"] + ns

    workdir = workdir or cfg.get("WorkingDir") or "/"
    workdir = _container_path(workdir, "workdir")
    if workdir == "/proc" or workdir.startswith("/proc/"):
        # /proc/self/fd/N as a working directory is how CVE-2024-21626 reached the host.
        raise RuntimeSetupError(f"workdir {workdir!r}: a working directory under /proc is refused.")

    if hostname is None:
        hostname = name or ""
    hostname = str(hostname)
    if hostname and not _match(_HOSTNAME_RE, hostname):
        raise RuntimeSetupError(f"hostname {hostname!r}: use letters, digits, '.' and '-', at most 64 characters.")

    lim = {}
    for key, value in (limits or {}).items():
        if key not in LIMIT_KEYS:
            raise RuntimeSetupError(f"limit {key!r}: unknown; use {', '.join(LIMIT_KEYS)}")
        if value is not None:
            lim[key] = value

    volumes_parsed = [parse_volume(v) for v in volumes or []]
    tmpfs_parsed = [parse_tmpfs(t) for t in tmpfs or []]
    targets = [v["target"] for v in volumes_parsed] + [t["target"] for t in tmpfs_parsed]
    dup = {t for t in targets if targets.count(t) > 1}
    if dup:
        raise RuntimeSetupError(f"volumes/tmpfs: {sorted(dup)} mounted twice. Keep one mount per container path.")

    try:
        stop_timeout = int(stop_timeout)
    except (TypeError, ValueError):
        raise RuntimeSetupError(f"stop_timeout {stop_timeout!r}: expected seconds") from None

    check = None
    if healthcheck or cfg.get("Healthcheck"):
        # Only then: a start without healthcheck imports nothing more.
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime import health as runtime_health

        try:
            check = runtime_health.resolve(healthcheck, cfg.get("Healthcheck"))
        except ValueError as exc:
            raise RuntimeSetupError(f"image {image or '?'}: {exc}") from None
    if (health_on_failure or "none") not in ("none", "kill", "restart"):
        raise RuntimeSetupError(f"health_on_failure {health_on_failure!r}: use none, kill or restart")

    return ContainerSpec(
        healthcheck=check,
        health_on_failure=health_on_failure or "none",
        argv=resolve_argv(cfg, command, entrypoint),
        lower_dirs=list(lower_dirs),
        image=image,
        image_digest=image_digest,
        diff_ids=list(diff_ids or []),
        env=merge_env(cfg.get("Env"), env),
        workdir=workdir,
        user=validate_user(cfg.get("User") if user is None else user),
        hostname=hostname,
        namespaces=ns,
        userns=bool(userns),
        volumes=volumes_parsed,
        tmpfs=tmpfs_parsed,
        read_only=bool(read_only),
        limits=lim,
        capabilities=capabilities,
        no_new_privileges=bool(no_new_privileges),
        privileged=bool(privileged),
        isolation=isolation,
        rlimits=[parse_ulimit(u) for u in ulimits or []],
        restart_policy=restart_policy,
        restart_retries=retries,
        stop_signal=signal_name,
        oom_score_adj=oom,
        stop_timeout=max(0, stop_timeout),
        rootfs_mode=rootfs_mode,
        seccomp=seccomp_lib.check_spec(seccomp),
        dns_servers=[_ip_address(s, "dns_servers") for s in dns_servers or ()],
        dns_search_domains=[_search_domain(d) for d in dns_search_domains or ()],
        etc_hosts=parse_etc_hosts(etc_hosts, bridge=bool(bridge_networks)),
        networks=bridge_networks,
        network_aliases=_aliases(network_aliases, bridge_networks),
        ipv4_address=_ipv4_on_user_network(ipv4_address, bridge_networks),
        network_defaulted=network is None,
        published_ports=published,
    )


def resolve_network(network) -> tuple[str, list[str]]:
    """The ``network`` option → (mode, bridge networks): ``none`` and ``host`` alone, else ``bridge`` (the default
    network) or user networks' names, one or a list (a comma list too). Not given: ``bridge`` for root, ``none``
    for a rootless caller. A rootless caller asking for a bridge gets an error: rootless networking (slirp or
    pasta) is not there yet."""
    if network is None or network == "" or network == []:
        return ("bridge", ["bridge"]) if os.geteuid() == 0 else ("none", [])
    items = network if isinstance(network, (list, tuple)) else str(network).split(",")
    names = [str(n).strip() for n in items if str(n).strip()]
    if not names:
        return ("bridge", ["bridge"]) if os.geteuid() == 0 else ("none", [])
    for mode in ("none", "host"):
        if mode in names:
            if len(names) > 1:
                raise RuntimeSetupError(f"network {names}: {mode!r} can't be combined with other networks")
            return mode, []
    for name in names:
        # Without re (runtime/__init__.py: `dockerless run --network bridge` checks names on the start path).
        if not (name.isascii() and name[0].isalnum() and len(name) <= 64
                and all(c.isalnum() or c in "_.-" for c in name)):
            raise RuntimeSetupError(f"network {name!r}: use none, host, bridge or the name of a network (letters, "
                                    "digits, '_', '.', '-').")
    if len(set(names)) != len(names):
        raise RuntimeSetupError(f"network {names}: a network is named twice")
    if os.geteuid() != 0:
        raise RuntimeSetupError(f"network {', '.join(names)}: bridge networks need root; rootless networking is not "
                                "there yet. Use network: none (loopback only) or network: host.")
    return "bridge", names


def _aliases(aliases, networks: list[str]) -> list[str]:
    out = [str(a).strip() for a in aliases or ()]
    if out and not [n for n in networks if n != "bridge"]:
        raise RuntimeSetupError("network_aliases: only on a user network (container_network); the default bridge "
                                "resolves no names, as in Docker.")
    for alias in out:
        if not _match(_HOSTNAME_RE, alias):
            raise RuntimeSetupError(f"network_aliases {alias!r}: use a host name (letters, digits, '.' and '-').")
    return sorted(set(out))


def _ipv4_on_user_network(address, networks: list[str]) -> str | None:
    if address in (None, ""):
        return None
    if not networks or networks[0] == "bridge":
        raise RuntimeSetupError(f"ipv4_address {address}: only on a user network (the first one the container is "
                                "on), not on bridge, none or host (as in Docker).")
    text = _ip_address(address, "ipv4_address")
    if ":" in text:
        raise RuntimeSetupError(f"ipv4_address {address}: an IPv4 address is expected")
    return text


def _ip_address(text, what: str) -> str:
    """``text`` as an IPv4 or IPv6 address in its canonical spelling (ipaddress is imported only when asked)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        raise RuntimeSetupError(f"{what} {text!r}: not an IPv4 or IPv6 address.") from None


def _search_domain(text) -> str:
    text = str(text).strip()
    if text != "." and not _match(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})", text):
        raise RuntimeSetupError(f"dns_search_domains {text!r}: use a domain name (letters, digits, '.', '-'), or "
                                "'.' alone for no search domain.")
    return text


def parse_etc_hosts(entries, bridge: bool = False) -> dict[str, str]:
    """``etc_hosts`` as ``{name: address}``: a dict, or Docker's ``--add-host`` forms ``name:address`` and
    ``name=address`` (split at the first separator, so an IPv6 address keeps its colons). ``host-gateway`` (on a
    bridge network only: ``bridge``) is kept as is and becomes the first network's gateway at start."""
    if not entries:
        return {}
    if isinstance(entries, dict):
        pairs = list(entries.items())
    else:
        pairs = []
        for item in entries:
            text = str(item)
            cut = min((i for i in (text.find("="), text.find(":")) if i > 0), default=-1)
            if cut < 0:
                raise RuntimeSetupError(f"etc_hosts {text!r}: expected NAME:ADDRESS or NAME=ADDRESS.")
            pairs.append((text[:cut], text[cut + 1:]))
    out = {}
    for name, address in pairs:
        name = str(name).strip()
        if not _match(_HOSTNAME_RE, name):
            raise RuntimeSetupError(f"etc_hosts {name!r}: use a host name (letters, digits, '.' and '-').")
        if str(address).strip() == "host-gateway" and bridge:
            out[name] = "host-gateway"
            continue
        if str(address).strip() == "host-gateway":
            raise RuntimeSetupError(f"etc_hosts {name}: 'host-gateway' needs a bridge network, which this "
                                    "container doesn't have; give the address.")
        out[name] = _ip_address(str(address).strip().strip("[]"), f"etc_hosts {name}:")
    return out


def spec_for_image(image, **options) -> ContainerSpec:
    """The one way from a resolved image to a container spec, for container_run and the CLI alike. ``image`` is
    what the store gave for a parsed reference (runtime.image.StartImage, runtime.containers.ImageForRun):
    ``name`` (normalised), ``digest``, ``config`` (the OCI config's ``config`` object), ``diff_ids`` (bottom →
    top) and ``lower_dirs`` (top → bottom). ``options`` are build_spec's container options."""
    return build_spec(image_config=image.config, lower_dirs=image.lower_dirs, image=image.name,
                      image_digest=image.digest, diff_ids=image.diff_ids, **options)
