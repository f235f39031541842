# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge networks and their address leases (IPAM), recorded in the store.

``<store>/networks/``::

    networks.json   {"networks": {name: record}, "leases": {network: {holder: lease}}}
    .lock           flock(2): every read-modify-write of networks.json holds it (``locked``)

A network record: ``name``, ``id`` (64 hex), ``bridge`` (the Linux bridge: ``dockerless0`` for the default
network, ``dl-<id[:12]>`` for the others, 15 bytes at most), ``subnet`` ("172.18.0.0/16"), ``gateway`` (the
bridge's own address, the containers' default route), ``internal`` (no route out: no masquerade), ``created``.

The default network ``bridge`` (Docker's 172.17.0.0/16, gateway .1) is recorded the first time it is used. A
user network's subnet must overlap no route of the host (main table, routes of our own bridges excepted) and no
other network; without one it gets the first free /16 of Docker's pool 172.17.0.0/16-172.31.0.0/16.

A lease: one address of a network per holder, a named container (holder = its name) or a one-shot (holder =
``.`` + the first 12 hex of its id: no container name starts with a dot). ``{"address", "mac", "id" (the
container id), "aliases", "names" (what peers resolve it by), "etc_dir" (where its /etc files live),
"etc_hosts" (its own extra entries), "pid", "pid_start" (one-shots: the caller's process, whose end frees the
lease)}``. A named container keeps its leases while it exists, so a restart (by its supervisor, its unit, or
a start after a stop) gets the same address; removing it frees them. A lease whose holder is gone (the
container's record was removed, a one-shot's process ended, even by SIGKILL) is taken back by the next
allocation on that network. Two starts at once never get one address: the allocation reads and writes the file
under the lock.

Stdlib only: the supervisor of a detached container imports it (runtime/supervisor.py SUPERVISOR_MODULES).
"""

from __future__ import annotations

import fcntl
import os

try:  # the C module alone: socket.py brings selectors, math, array and collections.abc onto the start path
    import _socket as socket
except ImportError:  # pragma: no cover - every CPython has it
    import socket
import struct
import time

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError

# Not the json package: it brings re onto the start path of every container on a bridge (records.py).
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_dumps, json_loads

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "dockerless0"
DEFAULT_SUBNET = "172.17.0.0/16"
RESERVED_NAMES = ("none", "host", "default")
# Docker's default address pool: 172.17.0.0/16 .. 172.31.0.0/16, one /16 per network.
POOL = [f"172.{second}.0.0/16" for second in range(17, 32)]
NETWORKS_DIR = "networks"
STATE_FILE = "networks.json"
LOCK_FILE = ".lock"
MAIN_TABLE = 254


def store_root(store) -> str:
    """The store's root folder from a path, an image Store (``root``) or a Runtime (``store_root``)."""
    if isinstance(store, str):
        return store
    for attr in ("store_root", "root"):
        value = getattr(store, attr, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"not a store: {store!r}")


class locked:  # noqa: N801 - used as ``with locked(store) as data``
    """``with locked(store) as data:`` the networks file read under its exclusive lock; ``save()`` writes it back
    (atomically: temp file, rename) before the lock is released."""

    def __init__(self, store, write: bool = True):
        self.dir = os.path.join(store_root(store), NETWORKS_DIR)
        self.path = os.path.join(self.dir, STATE_FILE)
        self.write = write
        self.fd = -1
        self.data: dict = {}
        self.dirty = False
        self.durable = False
        # Set when this block changed what the firewall table is made of beyond the caller's own lease: a network
        # record made, another holder's lease dropped (attach.prepare: a start that changes nothing skips the
        # table's reconcile but for a generation check).
        self.reshaped = False

    def __enter__(self) -> locked:
        if self.write:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        try:
            self.fd = os.open(os.path.join(self.dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:  # reading a store that has no network yet
            self.data = {"networks": {}, "leases": {}}
            return self
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.data = _read(self.path)
        return self

    def save(self, durable: bool = True) -> None:
        """Mark the data to be written at the end of the block; ``durable``: a new file fsync'ed and renamed over
        the old one (a network's record, a named container's lease). A one-shot's lease only is written in place
        without fsync (a lease lost in a crash belongs to a process that is gone anyway)."""
        self.dirty = True
        self.durable = self.durable or durable

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self.dirty and exc_type is None and self.fd >= 0 and not self.durable:
                # A one-shot's lease: written in place (we hold the lock, every reader takes it too). A rename
                # frees the old file's block, and on a file system mounted with discard that waits for the device
                # (3.5 ms a rename on the test machine, twice per one-shot run).
                from ansible_collections.dockerless.containers.plugins.module_utils.network.etc_files import write_over

                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                try:
                    write_over(fd, json_dumps(self.data, sort_keys=True, indent=1).encode())
                finally:
                    os.close(fd)
            elif self.dirty and exc_type is None and self.fd >= 0:
                tmp = f"{self.path}.tmp.{os.getpid()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                try:
                    os.write(fd, json_dumps(self.data, sort_keys=True, indent=1).encode())
                    if self.durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp, self.path)
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        return False


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = json_loads(handle.read(16 << 20))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:
        raise RuntimeSetupError(f"networks file {path}: {exc}. Fix or remove it (the networks are then made "
                                "again; leases are handed out again at the next starts).") from None
    if not isinstance(data, dict):
        data = {}
    data.setdefault("networks", {})
    data.setdefault("leases", {})
    return data


# -- addresses ---------------------------------------------------------------------------------------------
def _ip(text: str) -> int:
    return struct.unpack("!I", socket.inet_aton(text))[0]


def _text(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value))


def parse_subnet(text: str, what: str = "subnet") -> tuple[int, int]:
    """("a.b.c.d/n") → (network address as int, prefix length); the host bits must be zero."""
    addr, _slash, prefix = str(text).strip().partition("/")
    try:
        if addr.count(".") != 3:
            raise OSError
        base = _ip(addr)
        length = int(prefix)
    except (OSError, ValueError):
        raise RuntimeSetupError(f"{what} {text!r}: expected an IPv4 network such as 172.20.0.0/16") from None
    if not 8 <= length <= 30:
        raise RuntimeSetupError(f"{what} {text!r}: the prefix length must be 8 to 30")
    mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
    if base & ~mask & 0xFFFFFFFF:
        raise RuntimeSetupError(f"{what} {text!r}: host bits set; did you mean {_text(base & mask)}/{length}?")
    return base, length


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    shortest = min(a[1], b[1])
    mask = (0xFFFFFFFF << (32 - shortest)) & 0xFFFFFFFF if shortest else 0
    return (a[0] & mask) == (b[0] & mask)


def prefix_of(record: dict) -> int:
    return int(record["subnet"].partition("/")[2])


def mac_for(address: str) -> str:
    """Docker's MAC of a container address: 02:42 and the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in socket.inet_aton(address))


def host_routes(own_bridges=()) -> list[tuple[str, int]]:
    """The host's IPv4 routes of the main table (default route and our own bridges' routes left out)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import rtnetlink

    skip = set()
    for name in own_bridges:
        try:
            skip.add(socket.if_nametoindex(name))
        except OSError:
            pass
    with rtnetlink.Netlink() as nl:
        return [(dst, length) for dst, length, oif, table in nl.routes()
                if table == MAIN_TABLE and length > 0 and oif not in skip]


def _check_free(name: str, subnet: tuple[int, int], networks: dict, routes) -> None:
    for other in networks.values():
        if other["name"] != name and _overlaps(subnet, parse_subnet(other["subnet"])):
            raise RuntimeSetupError(f"network {name}: subnet {_text(subnet[0])}/{subnet[1]} overlaps network "
                                    f"{other['name']} ({other['subnet']}). Choose another subnet.")
    for dst, length in routes:
        if _overlaps(subnet, (_ip(dst), length)):
            raise RuntimeSetupError(f"network {name}: subnet {_text(subnet[0])}/{subnet[1]} overlaps the host's "
                                    f"route to {dst}/{length}. Choose another subnet.")


def _free_subnet(name: str, networks: dict, routes) -> str:
    for candidate in POOL:
        try:
            _check_free(name, parse_subnet(candidate), networks, routes)
        except RuntimeSetupError:
            continue
        return candidate
    raise RuntimeSetupError(f"network {name}: no free /16 left in 172.17.0.0/16-172.31.0.0/16 (networks or host "
                            "routes hold them all). Give a subnet.")


def _new_record(name: str, subnet: str, gateway: str | None, internal: bool) -> dict:
    base, length = parse_subnet(subnet)
    if gateway is None:
        gateway = _text(base + 1)
    gw = _ip(_gateway_text(gateway, name))
    if not _overlaps((gw, 32), (base, length)) or gw in (base, base | ((1 << (32 - length)) - 1)):
        raise RuntimeSetupError(f"network {name}: gateway {gateway} is not a host address of {subnet}")
    nid = os.urandom(32).hex()
    return {"name": name, "id": nid, "bridge": DEFAULT_BRIDGE if name == DEFAULT_NETWORK else "dl-" + nid[:12],
            "subnet": f"{_text(base)}/{length}", "gateway": _text(gw), "internal": bool(internal),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _gateway_text(gateway, name: str) -> str:
    text = str(gateway).strip()
    try:
        if text.count(".") != 3:
            raise OSError
        return _text(_ip(text))
    except OSError:
        raise RuntimeSetupError(f"network {name}: gateway {gateway!r} is not an IPv4 address") from None


def validate_network_name(name) -> str:
    text = str(name or "")
    ok = 0 < len(text) <= 64 and (text[0].isalnum() and text.isascii()) and all(
        c.isalnum() or c in "_.-" for c in text)
    if not ok:
        raise RuntimeSetupError(f"network name {name!r}: use letters, digits, '_', '.' and '-' (not first), at most "
                                "64 characters.")
    if text in RESERVED_NAMES:
        raise RuntimeSetupError(f"network name {text!r}: reserved (none and host are network modes, not networks).")
    return text


# -- networks ----------------------------------------------------------------------------------------------
def list_networks(store) -> list[dict]:
    """Every recorded network, by name (the default ``bridge`` once it has been used or made)."""
    with locked(store, write=False) as state:
        return [dict(state.data["networks"][n]) for n in sorted(state.data["networks"])]


def get_network(store, name: str) -> dict | None:
    with locked(store, write=False) as state:
        record = state.data["networks"].get(name)
        return dict(record) if record else None


def attached(store, name: str, data: dict | None = None) -> list[str]:
    """The containers (names; one-shots by short id) holding a lease on network ``name``, by name."""
    if data is None:
        with locked(store, write=False) as state:
            data = state.data
    root = store_root(store)
    return sorted(_shown_holder(h) for h, lease in (data["leases"].get(name) or {}).items()
                  if not _holder_gone(root, h, lease))


def _shown_holder(holder: str) -> str:
    return holder[1:] if holder.startswith(".") else holder


def _default_record(data: dict) -> dict:
    """The default network's record, made on first use: Docker's 172.17.0.0/16 unless a host route (a Docker
    daemon's docker0) or another network holds it, then the pool's next free /16."""
    record = data["networks"].get(DEFAULT_NETWORK)
    if record is None:
        routes = host_routes([n["bridge"] for n in data["networks"].values()] + [DEFAULT_BRIDGE])
        others = {k: v for k, v in data["networks"].items() if k != DEFAULT_NETWORK}
        try:
            _check_free(DEFAULT_NETWORK, parse_subnet(DEFAULT_SUBNET), others, routes)
            subnet = DEFAULT_SUBNET
        except RuntimeSetupError:
            subnet = _free_subnet(DEFAULT_NETWORK, others, routes)
        record = _new_record(DEFAULT_NETWORK, subnet, None, False)
        data["networks"][DEFAULT_NETWORK] = record
    return record


def ensure_network(store, name: str, subnet: str | None = None, gateway: str | None = None, internal: bool = False,
                   check_mode: bool = False) -> tuple[dict, bool, dict]:
    """Network ``name`` as asked: (record, changed, diff {"before", "after"}). An existing network whose subnet,
    gateway or internal flag differ from what is asked is changed when no container is attached to it (its
    bridge is deleted, to be made again with the new address at the next container start), and refused, naming
    the containers, when some are. ``subnet``/``gateway`` not given: an existing network keeps its own."""
    name = str(name)
    if name != DEFAULT_NETWORK:
        validate_network_name(name)
    wanted_subnet = None
    if subnet:
        base, length = parse_subnet(subnet)
        wanted_subnet = f"{_text(base)}/{length}"
    wanted_gateway = _gateway_text(gateway, name) if gateway else None
    with locked(store, write=not check_mode) as state:
        data = state.data
        before = data["networks"].get(name)
        if name == DEFAULT_NETWORK and before is None and not (subnet or gateway or internal):
            record = _default_record(data)
            if not check_mode:
                state.save()
            return dict(record), True, {"before": None, "after": dict(record)}
        if before is not None:
            differs = {k: v for k, v in (("subnet", wanted_subnet), ("gateway", wanted_gateway),
                                         ("internal", bool(internal))) if v is not None and before.get(k) != v}
            if not differs:
                return dict(before), False, {"before": dict(before), "after": dict(before)}
            holders = attached(store, name, data)
            if holders:
                raise RuntimeSetupError(f"network {name}: {', '.join(sorted(differs))} differ from the network's "
                                        f"({', '.join(f'{k} {before.get(k)}' for k in sorted(differs))}) and "
                                        f"containers are attached: {', '.join(holders)}. Remove them first.")
        if name != DEFAULT_NETWORK and DEFAULT_NETWORK not in data["networks"] and not check_mode:
            _default_record(data)   # Docker's 172.17.0.0/16 stays the default network's
        routes = host_routes([n["bridge"] for n in data["networks"].values()])
        others = {k: v for k, v in data["networks"].items() if k != name}
        if name != DEFAULT_NETWORK and DEFAULT_NETWORK not in others:
            others[DEFAULT_NETWORK] = {"name": DEFAULT_NETWORK, "subnet": DEFAULT_SUBNET}
        if wanted_subnet is None:
            wanted_subnet = before["subnet"] if before else _free_subnet(name, others, routes)
            if before and wanted_gateway is None:
                wanted_gateway = before["gateway"]
        _check_free(name, parse_subnet(wanted_subnet), others, routes)
        record = _new_record(name, wanted_subnet, wanted_gateway, internal)
        if before is not None:
            record.update(id=before["id"], bridge=before["bridge"], created=before["created"])
        if not check_mode:
            if before is not None:
                _delete_bridge(before["bridge"])
                data["leases"].pop(name, None)
            data["networks"][name] = record
            state.save()
        return dict(record), True, {"before": dict(before) if before else None, "after": dict(record)}


def plan_network(store, name: str, subnet: str | None = None, gateway: str | None = None,
                 internal: bool = False) -> tuple[dict, bool, dict]:
    """``ensure_network`` in check mode: what it would do, nothing written."""
    return ensure_network(store, name, subnet, gateway, internal, check_mode=True)


def _delete_bridge(bridge: str) -> None:
    from ansible_collections.dockerless.containers.plugins.module_utils.network import rtnetlink

    with rtnetlink.Netlink() as nl:
        nl.delete_link(bridge)


def remove_network(store, name: str, check_mode: bool = False) -> bool:
    """Remove network ``name`` and its bridge; False when there is none. Refused while containers (named ones
    that exist, one-shots that run) hold leases on it, naming them; the default ``bridge`` is never removed."""
    if name == DEFAULT_NETWORK:
        raise RuntimeSetupError("network bridge: the default network can't be removed (as in Docker).")
    with locked(store, write=not check_mode) as state:
        record = state.data["networks"].get(name)
        if record is None:
            return False
        holders = attached(store, name, state.data)
        if holders:
            raise RuntimeSetupError(f"network {name}: containers are attached: {', '.join(holders)}. Remove them "
                                    "(or run them on another network) first.")
        if not check_mode:
            _delete_bridge(record["bridge"])
            del state.data["networks"][name]
            state.data["leases"].pop(name, None)
            state.save()
        return True


# -- leases ------------------------------------------------------------------------------------------------
def _pid_start(pid: int) -> str | None:
    """The start time of process ``pid`` (field 22 of /proc/PID/stat): a pid and its start time name one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()[19].decode()


def one_shot_holder(cid: str) -> str:
    return "." + cid[:12]


def _holder_gone(root: str, holder: str, lease: dict) -> bool:
    if holder.startswith("."):
        pid = lease.get("pid")
        return not pid or _pid_start(int(pid)) != lease.get("pid_start")
    spec = os.path.join(root, "containers", holder, "spec.json")
    if not os.path.exists(spec):
        return True
    cid = lease.get("id")
    if cid:  # a container removed and made again under the same name is another holder
        try:
            with open(spec, "rb") as handle:
                return json_loads(handle.read(16 << 20)).get("id") != cid
        except (OSError, ValueError):
            return False
    return False


def _network_or_default(data: dict, name: str) -> dict:
    if name == DEFAULT_NETWORK:
        return _default_record(data)
    record = data["networks"].get(name)
    if record is None:
        raise RuntimeSetupError(f"network {name}: not found. Create it first (container_network, or dockerless "
                                "network create).")
    return record


def lease(store, network: str, holder: str, *, cid: str, names=(), aliases=(), etc_dir: str | None = None,
          etc_hosts: dict | None = None, requested: str | None = None, pid: int | None = None,
          resolve=(), published_ports=None) -> tuple[dict, dict]:
    """The lease of ``holder`` on ``network`` (made when missing): (network record, lease). ``requested``: the
    address it must have (a lease on another address is moved; an address another holder has is refused, naming
    it). Stale leases of the network (holders gone) are dropped first."""
    with locked(store) as state:
        return _lease(store, state, network, holder, cid=cid, names=names, aliases=aliases, etc_dir=etc_dir,
                      etc_hosts=etc_hosts, requested=requested, pid=pid, resolve=resolve, index=0,
                      published_ports=published_ports)


def leases_for(store, networks, holder: str, *, cid: str, names=(), aliases=(), etc_dir: str | None = None,
               etc_hosts: dict | None = None, requested: str | None = None,
               pid: int | None = None, resolve=(), published_ports=None, after=None) -> list[tuple[dict, dict]]:
    """``lease`` for each of ``networks`` in one locked read-modify-write; ``requested`` applies to the first
    network. Leases on networks the container is no longer on are dropped. ``after(state)`` runs last, under the
    lock."""
    out = []
    with locked(store) as state:
        for index, network in enumerate(networks):
            out.append(_lease(store, state, network, holder, cid=cid, names=names, aliases=aliases,
                              etc_dir=etc_dir, etc_hosts=etc_hosts, requested=requested if index == 0 else None,
                              pid=pid, resolve=resolve, index=index, published_ports=published_ports))
        for network, leases in state.data["leases"].items():
            if network not in networks and holder in leases:
                del leases[holder]
                state.save()
                state.reshaped = True
        if after is not None:
            after(state)   # still under the lock (attach.prepare writes the container's /etc/hosts)
    return out


def _lease(store, state: locked, network: str, holder: str, *, cid, names, aliases, etc_dir, etc_hosts,
           requested, pid, resolve, index, published_ports=None) -> tuple[dict, dict]:
    data = state.data
    if network == DEFAULT_NETWORK and DEFAULT_NETWORK not in data["networks"]:
        state.save()
        state.reshaped = True
    record = _network_or_default(data, network)
    root = store_root(store)
    leases = data["leases"].setdefault(network, {})
    for other in [h for h, entry in leases.items() if h != holder and _holder_gone(root, h, entry)]:
        del leases[other]
        state.save(durable=False)
        state.reshaped = True
    base, length = parse_subnet(record["subnet"])
    last = base | ((1 << (32 - length)) - 1)
    gateway = _ip(record["gateway"])
    current = leases.get(holder)
    if current is not None and current.get("id") != cid and not holder.startswith("."):
        current = None  # the name was removed and made again: a new container
    address = current["address"] if current else None
    if requested:
        want = _ip(_gateway_text(requested, network))
        if not base < want < last or want == gateway:
            raise RuntimeSetupError(f"ipv4_address {requested}: not a free host address of network {network} "
                                    f"({record['subnet']}, gateway {record['gateway']}).")
        for other, entry in leases.items():
            if other != holder and entry["address"] == _text(want):
                raise RuntimeSetupError(f"ipv4_address {requested}: network {network} gave it to container "
                                        f"{_shown_holder(other)} already. Choose another address or remove "
                                        f"{_shown_holder(other)}.")
        address = _text(want)
    if address is None:
        taken = {_ip(e["address"]) for h, e in leases.items() if h != holder}
        for candidate in range(base + 1, last):
            if candidate != gateway and candidate not in taken:
                address = _text(candidate)
                break
        else:
            raise RuntimeSetupError(f"network {network}: no free address left in {record['subnet']}. Remove "
                                    "containers from it or use a larger subnet.")
    entry = {"address": address, "mac": mac_for(address), "id": cid, "aliases": list(aliases),
             "names": [n for n in dict.fromkeys(names) if n], "etc_dir": etc_dir, "etc_hosts": dict(etc_hosts or {}),
             "resolve": list(resolve), "index": index}
    if pid is not None:
        entry["pid"], entry["pid_start"] = pid, _pid_start(pid)
    if published_ports:   # a one-shot's (a named container's are in its spec.json)
        entry["published_ports"] = list(published_ports)
    if entry != current:
        leases[holder] = entry
        state.save(durable=not holder.startswith("."))
    return dict(record), dict(entry)


def release(store, holder: str, networks=None) -> list[str]:
    """Drop ``holder``'s leases (of ``networks``, else all); returns the networks it was on."""
    out = []
    if not os.path.exists(os.path.join(store_root(store), NETWORKS_DIR, STATE_FILE)):
        return out
    with locked(store) as state:
        for network, leases in state.data["leases"].items():
            if holder in leases and (networks is None or network in networks):
                del leases[holder]
                out.append(network)
        if out:
            state.save(durable=not holder.startswith("."))
    return out


def container_running(root: str, holder: str, lease: dict) -> bool:
    """Whether a lease's holder runs now: a one-shot's process lives; a named container's supervisor holds its
    lock and its state says running."""
    if holder.startswith("."):
        return not _holder_gone(root, holder, lease)
    cdir = os.path.join(root, "containers", holder)
    try:
        with open(os.path.join(cdir, "state.json"), "rb") as handle:
            state = json_loads(handle.read(1 << 20))
    except (OSError, ValueError):
        return False
    if state.get("state") != "running":
        return False
    try:
        fd = os.open(os.path.join(cdir, "supervisor.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _published_ports(root: str, holder: str, lease: dict) -> list:
    if holder.startswith("."):
        return list(lease.get("published_ports") or [])
    try:
        with open(os.path.join(root, "containers", holder, "spec.json"), "rb") as handle:
            record = json_loads(handle.read(16 << 20))
    except (OSError, ValueError):
        return []
    return list((record.get("spec") or {}).get("published_ports") or [])


def attachments(store, data: dict | None = None) -> list[dict]:
    """Each running container's attachment to each network: {container, network, address, aliases,
    published_ports, bridge, subnet, gateway, internal, mac}, by network then container."""
    root = store_root(store)
    if data is None:
        with locked(store, write=False) as state:
            data = state.data
    out = []
    for network in sorted(data["leases"]):
        record = data["networks"].get(network)
        if record is None:
            continue
        for holder in sorted(data["leases"][network]):
            entry = data["leases"][network][holder]
            if not container_running(root, holder, entry):
                continue
            out.append({"container": _shown_holder(holder), "network": network, "address": entry["address"],
                        "aliases": list(entry.get("aliases") or ()), "mac": entry.get("mac"),
                        "published_ports": _published_ports(root, holder, entry), "bridge": record["bridge"],
                        "subnet": record["subnet"], "gateway": record["gateway"],
                        "internal": bool(record.get("internal"))})
    return out
