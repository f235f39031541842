# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Published ports: Docker's ``-p`` forms parsed, normalised for comparison, and host ports allocated.

A mapping is a dict ``{host_ip, host_port, container_port, proto}``: ``host_ip`` ``0.0.0.0`` means every IPv4
address of the host (Docker's spelling), ``host_port`` 0 means "a free port, chosen when the container is
made" (the chosen one is then recorded, so a re-run keeps it). Ranges are expanded into one mapping per port.

Only IPv4 is published: an IPv6 host address (``[::1]:8080:80``) is refused with a message saying so.
"""

from __future__ import annotations

import os
import socket

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError

PROTOCOLS = ("tcp", "udp", "sctp")
ALL_ADDRESSES = "0.0.0.0"
MAX_RANGE = 1000  # one nftables rule per port; a wider range is more likely a typo than a wish
_PROC_TABLES = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6"), "sctp": ()}
_TCP_LISTEN = "0A"


class PortError(DockerlessError):
    """A published port that cannot be parsed, or cannot be had on this host."""


def _port(text: str, spec: str, what: str) -> int:
    if not text.isdigit():
        raise PortError(f"published port {spec!r}: {what} {text!r} is not a port number (1-65535)")
    value = int(text)
    if not 1 <= value <= 65535:
        raise PortError(f"published port {spec!r}: {what} {value} is out of range (1-65535)")
    return value


def _port_range(text: str, spec: str, what: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    low = _port(first, spec, what)
    high = _port(last, spec, what) if sep else low
    if high < low:
        raise PortError(f"published port {spec!r}: {what} range {text!r} ends before it starts")
    if high - low + 1 > MAX_RANGE:
        raise PortError(f"published port {spec!r}: {what} range {text!r} holds more than {MAX_RANGE} ports; publish fewer")
    return low, high


def _host_ip(text: str, spec: str) -> str:
    if text.startswith("[") or text.count(":"):
        raise PortError(f"published port {spec!r}: IPv6 host addresses are not supported yet; publish on an IPv4 address "
                        "(or leave the address out for all IPv4 addresses)")
    try:
        packed = socket.inet_aton(text)
    except OSError:
        raise PortError(f"published port {spec!r}: host address {text!r} is not an IPv4 address") from None
    canonical = socket.inet_ntoa(packed)
    if canonical != text:
        # inet_aton accepts "127.1" and "0x7f.1": refuse spellings a reader would not recognise.
        raise PortError(f"published port {spec!r}: write the host address as four decimal numbers ({canonical})")
    return canonical


def parse_publish(spec) -> list[dict]:
    """One ``-p`` value → its mappings (a range gives one per port), host_port 0 where a free one is to be chosen.

    Forms: ``80``, ``8080:80``, ``127.0.0.1:8080:80``, ``127.0.0.1::80``, ``8000-8010:80-90``, ``80-90``, each
    with an optional ``/tcp`` (default), ``/udp`` or ``/sctp``.
    """
    if isinstance(spec, bool):
        raise PortError(f"published port {spec!r}: give a string such as '8080:80'")
    if isinstance(spec, int):
        spec = str(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise PortError(f"published port {spec!r}: give a string such as '8080:80'")
    text = spec.strip()
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
        proto = proto.lower()
        if proto not in PROTOCOLS:
            raise PortError(f"published port {spec!r}: protocol {proto!r} is not one of {', '.join(PROTOCOLS)}")
    host_ip = ALL_ADDRESSES
    if text.startswith("["):
        _host_ip(text, spec)  # raises: IPv6
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip = _host_ip(parts[0], spec) if parts[0] else ALL_ADDRESSES
        host_text, container_text = parts[1], parts[2]
    elif len(parts) == 2:
        host_text, container_text = parts
    else:
        host_text, container_text = "", parts[0]
    c_low, c_high = _port_range(container_text, spec, "container port")
    if host_text:
        h_low, h_high = _port_range(host_text, spec, "host port")
        if h_high - h_low != c_high - c_low:
            if c_low == c_high:
                raise PortError(f"published port {spec!r}: a host port range for one container port is not supported; "
                                "give one host port, or none for a free one")
            raise PortError(f"published port {spec!r}: the host range ({h_high - h_low + 1} ports) and the container "
                            f"range ({c_high - c_low + 1} ports) differ in length")
    else:
        h_low = 0
    return [{"host_ip": host_ip, "host_port": h_low + offset if h_low else 0, "container_port": c_low + offset,
             "proto": proto} for offset in range(c_high - c_low + 1)]


def _key(mapping: dict) -> tuple:
    return (mapping["proto"], mapping["container_port"], mapping["host_ip"], mapping["host_port"])


def _overlaps(one: dict, other: dict) -> bool:
    """Two mappings want the same host socket: same proto and port, and the same address or one of them all."""
    return (one["proto"] == other["proto"] and one["host_port"] == other["host_port"] and one["host_port"] != 0
            and (one["host_ip"] == other["host_ip"] or ALL_ADDRESSES in (one["host_ip"], other["host_ip"])))


def canonical(mapping: dict) -> dict:
    """A mapping as given by a module option or a record, checked and in its one spelling."""
    try:
        proto = str(mapping.get("proto") or "tcp").lower()
        host_ip = mapping.get("host_ip") or ALL_ADDRESSES
        host_port = int(mapping.get("host_port") or 0)
        container_port = int(mapping["container_port"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise PortError(f"published port {mapping!r}: needs container_port (and optionally host_ip, host_port, proto)") from None
    spec = f"{host_ip}:{host_port or ''}:{container_port}/{proto}"
    if proto not in PROTOCOLS:
        raise PortError(f"published port {spec!r}: protocol {proto!r} is not one of {', '.join(PROTOCOLS)}")
    _port(str(container_port), spec, "container port")
    if host_port:
        _port(str(host_port), spec, "host port")
    return {"host_ip": _host_ip(str(host_ip), spec), "host_port": host_port, "container_port": container_port,
            "proto": proto}


def normalise(specs) -> list[dict]:
    """``-p`` strings and/or mapping dicts → a sorted list without repeats; two mappings of one host socket refused."""
    mappings: list[dict] = []
    for spec in specs or ():
        mappings.extend([canonical(spec)] if isinstance(spec, dict) else parse_publish(spec))
    unique = {_key(mapping): mapping for mapping in mappings}
    result = [unique[key] for key in sorted(unique)]
    for index, one in enumerate(result):
        for other in result[index + 1:]:
            if _overlaps(one, other):
                raise PortError(f"published ports: host port {one['host_port']}/{one['proto']} is asked for twice "
                                f"({format_mapping(one)} and {format_mapping(other)}); give each mapping its own host port")
    return result


def format_mapping(mapping: dict) -> str:
    """``0.0.0.0:8080->80/tcp``, as ``docker port`` prints it."""
    return f"{mapping['host_ip']}:{mapping['host_port'] or ''}->{mapping['container_port']}/{mapping['proto']}"


def matches(requested: list[dict], recorded: list[dict]) -> bool:
    """Whether a container recorded with ``recorded`` (chosen ports filled in) satisfies ``requested``.

    A requested host_port 0 matches whatever port was chosen for that container port; both lists normalised.
    """
    if len(requested) != len(recorded):
        return False
    left = list(recorded)
    for want in requested:
        for index, have in enumerate(left):
            if (have["proto"], have["container_port"], have["host_ip"]) == (want["proto"], want["container_port"], want["host_ip"]) \
                    and (want["host_port"] in (0, have["host_port"])):
                del left[index]
                break
        else:
            return False
    return True


def _socket_for(proto: str, host_ip: str):
    if proto == "udp":
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP if proto == "sctp" else 0)
    # A TIME_WAIT left by an earlier connection is no owner; only a listener is.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def port_owner(proto: str, port: int, proc: str = "/proc") -> str:
    """``pid 123 (nginx)`` of the process holding a local ``port``, or "" when /proc does not tell."""
    inodes = set()
    for table in _PROC_TABLES.get(proto, ()):
        try:
            with open(f"{proc}/net/{table}", encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) < 10 or int(fields[1].rsplit(":", 1)[1], 16) != port:
                        continue
                    if proto == "tcp" and fields[3] != _TCP_LISTEN:
                        continue
                    inodes.add(f"socket:[{fields[9]}]")
        except (OSError, ValueError, IndexError):
            continue
    inodes.discard("socket:[0]")
    if not inodes:
        return ""
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"{proc}/{pid}/fd"):
                if os.readlink(f"{proc}/{pid}/fd/{fd}") in inodes:
                    with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                        return f"pid {pid} ({handle.read().strip()})"
        except OSError:
            continue
    return ""


def probe(mapping: dict, proc: str = "/proc") -> int:
    """Bind the mapping's host socket for a moment: the port it got (a free one for host_port 0), or PortError.

    A process listening there would be shadowed by the DNAT rule and never see a packet, so it is an error, as
    Docker's port allocator makes it.
    """
    try:
        sock = _socket_for(mapping["proto"], mapping["host_ip"])
    except OSError as exc:
        if mapping["proto"] == "sctp":
            return mapping["host_port"]  # no SCTP in this kernel: the DNAT rule works without the module
        raise PortError(f"published port {format_mapping(mapping)}: cannot make a socket to check it: {exc}") from None
    with sock:
        try:
            sock.bind((mapping["host_ip"], mapping["host_port"]))
        except OSError as exc:
            owner = port_owner(mapping["proto"], mapping["host_port"], proc)
            by = f" by {owner}" if owner else " by another process"
            if exc.errno == 98:  # EADDRINUSE
                raise PortError(f"publishing {format_mapping(mapping)}: host port {mapping['host_port']}/{mapping['proto']} "
                                f"is already in use{by}; stop it or publish another host port") from None
            raise PortError(f"publishing {format_mapping(mapping)}: cannot bind host port {mapping['host_port']}/"
                            f"{mapping['proto']} on {mapping['host_ip']}: {exc.strerror}") from None
        return sock.getsockname()[1]


def allocate(requested: list[dict], taken: list[dict], owners: dict | None = None, proc: str = "/proc",
             attempts: int = 64) -> list[dict]:
    """Host ports for ``requested``: fixed ones checked, 0 replaced by a free port; called under the store lock.

    ``taken`` holds the mappings of the store's other containers (their DNAT rules own those ports though no
    process listens), ``owners`` optionally maps ``(host_ip, host_port, proto)`` of a taken one to the container
    name for the message. Nothing is held open: the result is recorded with the container, and the lock keeps a
    second caller from choosing the same port before it is.
    """
    owners = owners or {}
    chosen: list[dict] = []

    def clash(mapping):
        for other in list(taken) + chosen:
            if _overlaps(mapping, other):
                return other
        return None

    for want in requested:
        mapping = dict(want)
        if mapping["host_port"]:
            other = clash(mapping)
            if other is not None:
                name = owners.get((other["host_ip"], other["host_port"], other["proto"]))
                by = f"container {name!r}" if name else "another mapping"
                raise PortError(f"publishing {format_mapping(mapping)}: host port {mapping['host_port']}/{mapping['proto']} "
                                f"is already published by {by}; remove that or publish another host port")
            probe(mapping, proc)
        else:
            for _attempt in range(attempts):
                mapping["host_port"] = 0
                mapping["host_port"] = probe(mapping, proc)
                if mapping["host_port"] and clash(mapping) is None:
                    break
            else:
                raise PortError(f"publishing {format_mapping(want)}: found no free host port in {attempts} tries")
        chosen.append(mapping)
    return chosen


LOCK_NAME = "ports.lock"


class reserved:  # noqa: N801 - used as ``with reserved(store_root):``
    """The store's port lock (``<store>/networks/ports.lock``), held from the choice of host ports until the
    container that gets them is recorded: two containers asking for one port at once, one wins, the other sees
    the first's record. Separate from the networks file's lock, which the start path takes inside it."""

    def __init__(self, store_root: str):
        self.dir = os.path.join(store_root, "networks")
        self.fd = -1

    def __enter__(self):
        import fcntl

        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = -1


def published_in_store(store_root: str, exclude: str | None = None) -> tuple[list[dict], dict]:
    """The mappings recorded by the store's named containers (all of them, running or not: a stopped container
    keeps its ports for its next start, as its address) and by running one-shots, with their owners."""
    import json

    taken: list[dict] = []
    owners: dict = {}
    folder = os.path.join(store_root, "containers")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    for name in names:
        if name == exclude or name.startswith("."):
            continue
        try:
            with open(os.path.join(folder, name, "spec.json"), "rb") as handle:
                record = json.loads(handle.read(16 << 20))
        except (OSError, ValueError):
            continue
        if record.get("one_shot"):
            continue
        for mapping in (record.get("spec") or {}).get("published_ports") or ():
            if mapping.get("host_port"):
                taken.append(mapping)
                owners[(mapping["host_ip"], mapping["host_port"], mapping["proto"])] = name
    try:
        from ansible_collections.dockerless.containers.plugins.module_utils.network import networks

        for attachment in networks.attachments(store_root):
            if attachment["container"] == exclude:
                continue
            for mapping in attachment.get("published_ports") or ():
                if mapping.get("host_port") and mapping not in taken:
                    taken.append(mapping)
                    owners[(mapping["host_ip"], mapping["host_port"], mapping["proto"])] = attachment["container"]
    except (ImportError, OSError, ValueError, KeyError):
        pass
    return taken, owners
