# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's nftables table ``inet dockerless``: NAT, forwarding and published ports of the bridge networks.

The whole table is derived from the store's state (its networks, and the attachments of its running
containers) and written as ONE ``nft -f -`` batch that deletes and re-adds the table: the kernel applies the
batch atomically, so no packet ever sees half a ruleset, and no other table is read or touched.

``reconcile`` compares ``nft list table inet dockerless`` with what it would write, written in nft's own listing
form so the comparison is exact text (one ``nft`` run, a few ms): a table flushed by an admin, deleted, edited,
or gone after a reboot is rewritten and reported as a change; a table that is right is left alone.

Chains (see docs/networking.md "Firewall"):

* ``prerouting``/``output`` (nat, dstnat): traffic to a local address (``fib daddr type local``: the host's
  addresses and 127.0.0.1) jumps to ``published``, one DNAT rule per published port. ``output`` catches the
  host's own connections, ``prerouting`` those of other hosts and of containers (hairpin).
* ``postrouting`` (nat, srcnat): masquerade of each non-internal network's subnet out of other interfaces; the
  127.0.0.0/8 source of a DNATed local connection masqueraded to the bridge address (with
  ``route_localnet=1`` on that bridge, else the kernel drops a 127.x source leaving it as a martian); hairpin:
  a container reaching a published port of its own network gets the bridge address as source, so the reply
  comes back through the host and is un-NATed.
* ``forward`` (filter): internal networks cut from every other interface, networks cut from each other, then
  established/related, DNATed (published ports) and bridge-originated traffic accepted. The chain's policy is
  accept: a host firewall's own drop policy in its own table still applies.
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError

FAMILY = "inet"
TABLE = "dockerless"
NFT = "nft"
SBIN = ("/usr/sbin", "/sbin")  # an Ansible task's PATH may lack sbin, where nftables installs nft


STATE_FILE = "firewall.state"   # in the store's networks/ folder: the last generation found right
NETLINK_NETFILTER = 12
# asm-generic's value, which x86, arm and the other architectures we run on share (the socket module of Python
# 3.11 lacks it); where it means nothing the getsockopt fails and the inode is used.
SO_NETNS_COOKIE = 71
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = 15, 16
NFTA_GEN_ID = 1


class FirewallError(DockerlessError):
    """nft refused the ruleset, or is missing."""


def _published(networks_by_name: dict, attachments: list[dict]) -> list[dict]:
    """DNAT targets: one per host socket, the first attachment naming it wins (the store refuses a second)."""
    seen = set()
    out = []
    for attachment in attachments:
        network = networks_by_name.get(attachment.get("network"))
        if network is None or network.get("internal") or not attachment.get("address"):
            continue
        for mapping in attachment.get("published_ports") or ():
            if not mapping.get("host_port"):
                continue
            key = (mapping.get("host_ip") or "0.0.0.0", int(mapping["host_port"]), mapping.get("proto") or "tcp")
            if key in seen:
                continue
            seen.add(key)
            out.append({"host_ip": key[0], "host_port": key[1], "proto": key[2], "address": attachment["address"],
                        "container_port": int(mapping["container_port"]), "bridge": network["bridge"]})
    return sorted(out, key=lambda p: (p["proto"], p["host_port"], p["host_ip"]))


def _quoted(names) -> str:
    names = sorted(names)
    if len(names) == 1:
        return f'"{names[0]}"'
    return "{ " + ", ".join(f'"{name}"' for name in names) + " }"


def _subnet(network: dict) -> str:
    # networks.py records subnets in their one spelling (base address, prefix length); nft prints them so.
    return network["subnet"]


def render(networks: list[dict], attachments: list[dict]) -> str:
    """The table as ``nft list table inet dockerless`` prints it (nftables 1.0): also what ``nft -f`` reads."""
    networks = sorted(networks, key=lambda n: n["name"])
    by_name = {network["name"]: network for network in networks}
    published = _published(by_name, attachments)
    bridges = [network["bridge"] for network in networks]
    lines = [f"table {FAMILY} {TABLE} {{"]

    def chain(name, head, rules):
        if len(lines) > 1:
            lines.append("")
        lines.append(f"\tchain {name} {{")
        if head:
            lines.append(f"\t\t{head}")
        lines.extend(f"\t\t{rule}" for rule in rules)
        lines.append("\t}")

    published_bridges = sorted({p["bridge"] for p in published})
    if published_bridges:
        # route_localnet=1 on a bridge (for 127.0.0.1 published ports) would also let its containers reach the
        # host's loopback services, or pass as 127.0.0.1 to them (CVE-2020-8558): 127/8 from a bridge is dropped
        # before conntrack sees it. Replies of those connections come to the bridge address (masquerade below).
        chain("guard", "type filter hook prerouting priority raw; policy accept;", [
            f"iifname {_quoted(published_bridges)} ip daddr 127.0.0.0/8 drop",
            f"iifname {_quoted(published_bridges)} ip saddr 127.0.0.0/8 drop"])
    jump = ["fib daddr type local jump published"] if published else []
    chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", jump)
    # nft 1.0 knows "dstnat" only on prerouting; -100 is its value.
    chain("output", "type nat hook output priority -100; policy accept;", jump)
    chain("published", "", [
        f"{'ip daddr ' + p['host_ip'] + ' ' if p['host_ip'] != '0.0.0.0' else ''}{p['proto']} dport {p['host_port']} "
        f"dnat ip to {p['address']}:{p['container_port']}" for p in published])
    post = []
    for network in networks:
        bridge, subnet = network["bridge"], _subnet(network)
        if not network.get("internal"):
            post.append(f'ip saddr {subnet} oifname != "{bridge}" masquerade')
        if bridge in published_bridges:
            post.append(f'oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade')
            post.append(f'oifname "{bridge}" ct status dnat ip saddr {subnet} masquerade')
    chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", post)
    forward = []
    for network in networks:
        if network.get("internal"):
            bridge = network["bridge"]
            forward.append(f'iifname "{bridge}" oifname != "{bridge}" drop')
            forward.append(f'oifname "{bridge}" iifname != "{bridge}" drop')
    for network in networks:
        others = [bridge for bridge in bridges if bridge != network["bridge"]]
        if others and not network.get("internal"):
            forward.append(f'iifname "{network["bridge"]}" oifname {_quoted(others)} drop')
    if networks:
        forward.append("ct state established,related accept")
    if published:
        forward.append("ct status dnat accept")
    outward = [network["bridge"] for network in networks if not network.get("internal")]
    if outward:
        forward.append(f"iifname {_quoted(outward)} accept")
    chain("forward", "type filter hook forward priority filter; policy accept;", forward)
    lines.append("}")
    return "\n".join(lines) + "\n"


def nft_path() -> str | None:
    """Where ``nft`` is, or None."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + list(SBIN):
        path = os.path.join(folder or ".", NFT)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _nft(args: list[str], script: str | None = None) -> _Result:
    """``nft ARGS`` with ``script`` on its stdin: posix_spawn and pipes, not subprocess, which brings signal,
    selectors and threading onto a container's start path (this runs there, at a bridge container's start).
    nft reads its whole input before it writes, so the input is written first, then the outputs read."""
    path = nft_path()
    if path is None:
        raise FirewallError("nft (nftables) is not installed: install the nftables package for bridge networks "
                            "and published ports")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(path, [path, *args], dict(os.environ, LC_ALL="C"), file_actions=[
            (os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)])
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    try:
        try:
            data = memoryview((script or "").encode())
            while data:
                data = data[os.write(in_w, data):]
        finally:
            os.close(in_w)
        stdout = _read_all(out_r)
        stderr = _read_all(err_r)
    finally:
        os.close(out_r)
        os.close(err_r)
        status = os.waitpid(pid, 0)[1]
    return _Result(os.waitstatus_to_exitcode(status), stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def current() -> str | None:
    """The listing of the collection's table, or None when there is none."""
    result = _nft(["list", "table", FAMILY, TABLE])
    if result.returncode:
        if "No such file or directory" in result.stderr:
            return None
        raise FirewallError(f"listing nftables table {FAMILY} {TABLE}: {result.stderr.strip()}")
    return result.stdout


def _normal(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _published_in(listing: str | None) -> dict:
    """``{(proto, host_port): {(address, container_port)}}`` of the DNAT rules in a listing: lines of the form
    ``[ip daddr A ]PROTO dport N dnat ip to ADDRESS:PORT`` (render's; no ``re`` on the start path)."""
    out: dict = {}
    for line in _normal(listing):
        words = line.split()
        if words[:2] == ["ip", "daddr"]:
            words = words[3:]
        if (len(words) != 7 or words[0] not in ("tcp", "udp", "sctp") or words[1] != "dport"
                or words[3:6] != ["dnat", "ip", "to"] or not words[2].isdigit()):
            continue
        address, _colon, port = words[6].rpartition(":")
        if address and port.isdigit():
            out.setdefault((words[0], int(words[2])), set()).add((address, int(port)))
    return out


def apply(rendered: str | None) -> None:
    """Replace the table by ``rendered`` (None: remove it) in one atomic batch."""
    # "add" first so the "delete" never fails on a missing table; both in the batch, so the swap is atomic.
    script = f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n" + (rendered or "")
    result = _nft(["-f", "-"], script)
    if result.returncode:
        raise FirewallError(f"writing nftables table {FAMILY} {TABLE}: {result.stderr.strip()}. "
                            "Nothing was changed (the batch is atomic); check that the kernel has nf_tables and nf_nat")


def _write_sysctl(path: str, value: str) -> bool:
    try:
        with open(path, encoding="ascii") as handle:
            if handle.read().strip() == value:
                return False
        with open(path, "w", encoding="ascii") as handle:
            handle.write(value)
    except FileNotFoundError:
        return False  # the bridge is not there (yet): its attach sets it up and reconciles again
    except OSError as exc:
        raise FirewallError(f"setting {path} to {value}: {exc.strerror}") from None
    return True


def sysctls(networks: list[dict], attachments: list[dict]) -> list[tuple[str, str]]:
    """The kernel settings the rules need: forwarding when a network routes out, route_localnet per publishing bridge."""
    out = []
    if any(not network.get("internal") for network in networks):
        out.append(("/proc/sys/net/ipv4/ip_forward", "1"))
    by_name = {network["name"]: network for network in networks}
    for bridge in sorted({p["bridge"] for p in _published(by_name, attachments)}):
        out.append((f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet", "1"))
    return out


def _source(source) -> tuple[list[dict], list[dict], str | None]:
    if isinstance(source, tuple):
        return list(source[0]), list(source[1]), (source[2] if len(source) > 2 else None)
    return store_source(source)


def store_source(store, data: dict | None = None) -> tuple[list[dict], list[dict], str]:
    """``(networks, attachments, state file)`` of a store, for ``reconcile``: from ``data`` when the caller read
    the networks file already (under its lock, with the leases it changed), else read here."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import networks as network_records

    root = network_records.store_root(store)
    if data is None:
        with network_records.locked(root, write=False) as state:
            data = state.data
    return ([dict(data["networks"][n]) for n in sorted(data["networks"])], network_records.attachments(root, data),
            os.path.join(root, network_records.NETWORKS_DIR, STATE_FILE))


def generation() -> int | None:
    """The nftables ruleset's generation id in this network namespace (NFT_MSG_GETGEN over nfnetlink): the
    kernel adds one at every committed change of any table, so an unchanged id means an unchanged ruleset. None
    when it can't be read."""
    import _socket as socket  # the C module alone: socket.py brings enum and selectors onto the start path
    import struct

    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except OSError:
        return None
    try:
        sock.bind((0, 0))
        body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
        sock.send(struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, 1, 1, 0) + body)
        data = sock.recv(4096)
    except OSError:
        return None
    finally:
        sock.close()
    if len(data) < 20 or struct.unpack_from("=H", data, 4)[0] != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN:
        return None
    offset = 20
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        if kind & 0x3FFF == NFTA_GEN_ID and length >= 8:
            return struct.unpack_from(">I", data, offset + 4)[0]
        offset += (length + 3) & ~3
    return None


def _where() -> str:
    """This boot and network namespace: a generation id is only comparable within them. The namespace is named by
    its cookie (SO_NETNS_COOKIE, Linux 5.14+), which the kernel never gives to another namespace in a boot; the
    inode of /proc/self/ns/net is only the fallback: a namespace made after another one ended gets the same inode,
    and its generation ids start again from the same small numbers, so a state file written in the first could
    pass for the second's and hide an empty table."""
    import _socket as socket  # the C module alone (see generation)
    import sys

    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
    except OSError:
        boot = ""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            return f"{boot}/c{int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), sys.byteorder)}"
        finally:
            sock.close()
    except OSError:
        pass
    try:
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        netns = 0
    return f"{boot}/i{netns}"


def _read_state(path: str | None) -> tuple[str, str, str] | None:
    """(where, generation, table) of the last check that found the table right; a plain text file (no json on a
    container's start path): two lines, then the table's text."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            where, gen, table = handle.read(1 << 20).split("\n", 2)
    except (OSError, ValueError):
        return None
    return where, gen, table


def _write_state(path: str | None, rendered: str | None, gen: int | None) -> None:
    """Remember that the ruleset of generation ``gen`` holds ``rendered``: temp file + rename, best effort (a
    lost or stale state only costs the next run one ``nft list``)."""
    if not path or gen is None:
        return
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(f"{_where()}\n{gen}\n{rendered or ''}")
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _known_right(state: tuple[str, str, str] | None, rendered: str | None, gen: int | None) -> bool:
    return gen is not None and state is not None and state == (_where(), str(gen), rendered or "")


def untouched(store_root: str) -> bool:
    """Whether no table changed since the last reconcile of this store found its table right (the ruleset's
    generation id and the state file's, in this boot and network namespace): one netlink round trip and a small
    read, no render and no store read. A start that changes nothing the table is made of (a one-shot without
    published ports on networks that were there) needs no more; any ``nft`` change, a flush, a reboot, another
    store's reconcile, says False and the caller reconciles."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import networks as network_records

    state = _read_state(os.path.join(store_root, network_records.NETWORKS_DIR, STATE_FILE))
    if state is None:
        return False
    gen = generation()
    return gen is not None and state[:2] == (_where(), str(gen))


def reconcile(source, check_mode: bool = False) -> bool:
    """Make the table (and the sysctls it needs) match ``source``: a store, or ``(networks, attachments)``
    (optionally a third item: the state file's path).

    Returns whether anything was (or, in check mode, would be) changed. A table already right is not rewritten.
    Conntrack entries of UDP ports whose target changed are deleted (see ``conntrack``).

    ``nft list`` costs about as much as a container's start (a process, libnftables, a full ruleset dump); when
    the ruleset's generation id (one netlink round trip) is that of the last check that found the table right,
    nothing in any table changed since: the table is the state file's text, and the listing is skipped (and
    when that is also what would be written, nothing is written).
    """
    networks, attachments, state_path = _source(source)
    rendered = render(networks, attachments) if networks else None
    gen = generation()
    settings = sysctls(networks, attachments)
    state = _read_state(state_path)
    if _known_right(state, rendered, gen):
        before = rendered
    elif gen is not None and state is not None and state[:2] == (_where(), str(gen)):
        before = state[2] or None   # no table changed since it held the state's text: that is the listing
    else:
        before = current()
    changed = _normal(before) != _normal(rendered)
    if check_mode:
        pending = False
        for path, value in settings:
            try:
                with open(path, encoding="ascii") as handle:
                    pending = pending or handle.read().strip() != value
            except OSError:
                continue
        return changed or pending
    for path, value in settings:
        changed = _write_sysctl(path, value) or changed
    if _normal(before) != _normal(rendered):
        apply(rendered)
        after = generation()
        # Our batch is one generation; another writer between the two reads leaves the state unwritten.
        _write_state(state_path, rendered, after if gen is not None and after == gen + 1 else None)
        _flush_udp(_published_in(before), _published_in(rendered))
    elif before is not rendered:
        _write_state(state_path, rendered, gen if generation() == gen else None)
    return changed


def _flush_udp(old: dict, new: dict) -> None:
    changed = [key for key in sorted(set(old) | set(new)) if key[0] == "udp" and old.get(key) != new.get(key)]
    if not changed:
        return
    from ansible_collections.dockerless.containers.plugins.module_utils.network.conntrack import flush_port

    for proto, port in changed:
        flush_port(proto, port, keep=frozenset(new.get((proto, port), ())))


def remove() -> bool:
    """Delete the table (no network left); whether it was there."""
    if current() is None:
        return False
    apply(None)
    return True
