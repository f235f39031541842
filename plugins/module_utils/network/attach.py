# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's attachment to its bridge networks, at every start of it, and what is left after its end.

* ``prepare`` (before the container's processes exist): a lease per network (network/networks.py, under the
  networks lock), the container's own /etc/hosts rewritten with its address, and each network's bridge made
  when it is missing (first use, after a reboot, after ``ip link del``): created, the gateway address on it,
  up. ``net.ipv4.ip_forward`` is set to 1 (through ``linux.write_proc``) only when a network that is not
  ``internal`` is attached and it is 0: containers of such a network reach beyond the host.
* ``setup(plan, monitor_pid)`` (spawn's ``after_unshare``: the container's network namespace exists, no process
  of the image runs yet): per network a veth pair, the host end ``dl<id[:10]><n>`` on the bridge and up, the
  peer made right in the container's namespace as ``eth<n>`` with the lease's MAC (``02:42`` + the address,
  as Docker), its address, up, and the default route through the first network's gateway.
* ``refresh`` (after a start, after an end) and ``finish`` (after an end): the /etc/hosts of every running container of the user networks the container is on is
  rewritten (in place: the bind mount in each container sees the new content) so that they resolve each other by
  name, aliases and short id, a container started later included, a removed or stopped one no more; and the
  firewall is reconciled. ``finish`` deletes a host end that outlived its namespace (a process
  of the host that holds it) and, for a one-shot, frees its leases.

When the container's network namespace ends (its last process exits, or its supervisor was SIGKILLed and the
monitor and init went with it), the kernel deletes the veth pair with it: nothing is left on the host but the
lease, which the container keeps while it exists.

Stdlib only: the supervisor of a detached container imports it.
"""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.network import etc_files, networks, rtnetlink


def host_ifname(cid: str, index: int) -> str:
    """The host end of a container's ``index``-th veth pair: 15 bytes at most (the kernel's IFNAMSIZ - 1)."""
    return f"dl{cid[:10]}{index}"


def resolve_etc_hosts(entries: dict, gateway: str | None) -> dict:
    """``host-gateway`` entries → the first network's gateway (the host's address on the bridge), others kept."""
    return {name: (gateway if value == "host-gateway" else value) for name, value in (entries or {}).items()
            if value != "host-gateway" or gateway}


class Plan(list):
    """``prepare``'s plan (a list: one dict per network), with what the firewall's reconcile after the start needs:
    ``data``, the networks file as ``prepare`` left it under its lock, and ``reshaped``, whether the start changed
    what the table is made of beyond a lease without published ports (a network record made, another holder's
    stale lease dropped, a bridge made again)."""

    data: dict | None = None
    reshaped: bool = True


def prepare(store, holder: str, cid: str, spec_networks, *, name: str | None = None, names=(), aliases=(),
            etc_dir: str | None = None, etc_hosts: dict | None = None, requested: str | None = None,
            pid: int | None = None, published_ports=None) -> Plan:
    """Leases, bridges and ip_forward for a start of ``holder`` (see the module's docstring); returns the plan
    ``setup`` takes: one dict per network, in the container's order. ``name``: the container's name, which
    peers resolve with its ``aliases`` and short id; ``names``: its own names in its own /etc/hosts."""
    root = networks.store_root(store)
    plan = Plan()

    def after(state) -> None:
        if etc_dir:
            _write_one(root, state.data, holder)
        plan.data, plan.reshaped = state.data, state.reshaped

    pairs = networks.leases_for(store, list(spec_networks), holder, cid=cid, names=names, aliases=aliases,
                                etc_dir=etc_dir, etc_hosts=etc_hosts, requested=requested, pid=pid,
                                resolve=[n for n in (name, *aliases, cid[:12]) if n], published_ports=published_ports,
                                after=after)
    for index, (record, lease) in enumerate(pairs):
        plan.append({"network": record["name"], "bridge": record["bridge"], "subnet": record["subnet"],
                     "prefix": networks.prefix_of(record), "gateway": record["gateway"],
                     "internal": bool(record.get("internal")), "address": lease["address"], "mac": lease["mac"],
                     "aliases": list(aliases), "ifname": f"eth{index}", "host_if": host_ifname(cid, index)})
    if ensure_bridges(plan):
        plan.reshaped = True   # a new bridge: its route_localnet is the reconcile's to set
    if any(not a["internal"] for a in plan):
        ensure_ip_forward()
    return plan


def ensure_bridges(plan) -> bool:
    """Each network's bridge, made when missing; True when one was made."""
    made = False
    done = set()
    with rtnetlink.Netlink() as nl:
        for attachment in plan:
            bridge = attachment["bridge"]
            if bridge in done:
                continue
            done.add(bridge)
            if rtnetlink.link_exists(bridge):
                continue
            try:
                nl.add_bridge(bridge)
            except rtnetlink.NetlinkError as exc:
                if exc.errno != 17:  # EEXIST: another start made it meanwhile
                    raise
            nl.add_address(bridge, attachment["gateway"], attachment["prefix"])
            nl.set_link(bridge, up=True)
            made = True
    return made


def ensure_ip_forward(proc: str = "/proc") -> bool:
    """``net.ipv4.ip_forward`` = 1 when it is 0; True when it was changed."""
    path = os.path.join(proc, "sys/net/ipv4/ip_forward")
    with open(path, "rb") as handle:
        if handle.read(4).strip() == b"1":
            return False
    linux.write_proc(path, "1", proc)
    return True


# How long a host end may take to go with its namespace before it is taken as held (measured: about 4 ms when
# it has not gone yet at the container's end, one run in four on the test machine; deleting it ourselves costs
# about 28 ms, the kernel's unregistering waits for RCU grace periods with the rtnl lock held).
LINK_GONE_WAIT = 0.05


def setup(plan, monitor_pid: int) -> None:
    """The veth pairs, addresses and default route of a container whose monitor is ``monitor_pid``."""
    # Left by the container's previous run: its namespace going (a restart right after the end: the kernel
    # deletes the pair in a few ms), or held by a host process (deleted after LINK_GONE_WAIT).
    present = [a["host_if"] for a in plan if rtnetlink.link_exists(a["host_if"])]
    leftovers = set(rtnetlink.wait_links_gone(present, LINK_GONE_WAIT)) if present else set()
    with rtnetlink.Netlink() as nl:
        for attachment in plan:
            host_if = attachment["host_if"]
            if host_if in leftovers:
                nl.delete_link(host_if)
            # One request: the pair, its peer in the container's namespace, the host end on the bridge and up.
            nl.add_veth(host_if, attachment["ifname"], peer_netns_pid=monitor_pid,
                        peer_mac=bytes.fromhex(attachment["mac"].replace(":", "")), master=attachment["bridge"],
                        up=True)
    if not plan:
        return
    fd = os.open(f"/proc/{monitor_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with rtnetlink.Netlink(netns_fd=fd) as inner:
            # A fresh namespace: its links have no address yet. Each link's address and up (which adds the
            # subnet's route), then the default route through the first one's gateway, in one send.
            indexes = [inner.index(attachment["ifname"]) for attachment in plan]
            requests = []
            for index, attachment in zip(indexes, plan):
                requests.append(rtnetlink.address_request(index, attachment["ifname"], attachment["address"],
                                                          attachment["prefix"]))
                requests.append(rtnetlink.up_request(index, attachment["ifname"]))
            requests.append(rtnetlink.default_route_request(indexes[0], plan[0]["ifname"], plan[0]["gateway"]))
            inner.batch(requests)
    finally:
        os.close(fd)


def cleanup_links(plan) -> None:
    """Host ends that outlived the container's namespace (a host process holds it), deleted. The kernel deletes
    a veth pair with its namespace from a work queue, shortly after the namespace's last process: a host end
    still there is first given LINK_GONE_WAIT to go."""
    names = [a["host_if"] for a in plan if rtnetlink.link_exists(a["host_if"])]
    leftovers = rtnetlink.wait_links_gone(names, LINK_GONE_WAIT) if names else []
    if leftovers:
        with rtnetlink.Netlink() as nl:
            for name in leftovers:
                nl.delete_link(name)


def _hosts_text(lease: dict, own: list[tuple[str, dict]], peers: list[tuple[str, dict]]) -> str:
    """A container's /etc/hosts: etc_files' head, its extra entries, its own names on its first address, then
    one line per peer (address, name, aliases, short id)."""
    first = own[0][1] if own else lease
    gateway = own[0][0] if own else None
    text = etc_files.hosts(own_names=lease.get("names") or (), address=first.get("address"),
                           extra=resolve_etc_hosts(lease.get("etc_hosts") or {}, gateway))
    lines = []
    for _holder, peer in peers:
        names = list(dict.fromkeys(peer.get("resolve") or ()))
        if names:
            lines.append(f"{peer['address']}\t{' '.join(names)}\n")
    return text + "".join(sorted(set(lines)))


def _holder_leases(data: dict, holder: str) -> list[tuple[str, str, dict]]:
    """(network, gateway, lease) of ``holder``, in the container's order of networks."""
    out = []
    for network, leases in data["leases"].items():
        if holder in leases and network in data["networks"]:
            out.append((network, data["networks"][network]["gateway"], leases[holder]))
    return sorted(out, key=lambda item: item[2].get("index", 0))


def _write_one(root: str, data: dict, holder: str) -> None:
    mine = _holder_leases(data, holder)
    if not mine or not mine[0][2].get("etc_dir"):
        return
    lease = mine[0][2]
    peers = []
    for network, _gateway, _lease in mine:
        if network == networks.DEFAULT_NETWORK:
            continue   # the default bridge resolves no container names, as Docker's
        for other, entry in data["leases"][network].items():
            if other != holder and networks.container_running(root, other, entry):
                peers.append((other, entry))
    text = _hosts_text(lease, [(g, entry) for _n, g, entry in mine], peers)
    etc_dir = lease["etc_dir"]
    try:
        with open(os.path.join(etc_dir, "hosts"), "rb") as handle:
            if handle.read(1 << 20) == text.encode():
                return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        dir_fd = os.open(etc_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return   # the holder's folder is gone (removed meanwhile)
    try:
        etc_files._write(dir_fd, "hosts", text)
    finally:
        os.close(dir_fd)


def refresh(store, holder: str, release: bool = False, firewall: bool = True) -> None:
    """After ``holder`` joined or left: the hosts files of it and of every running container that shares a user
    network with it, then the firewall (from the networks file read here). ``release``: its leases are dropped
    first (in the same locked read-modify-write); the firewall is then reconciled only when a released lease had
    published ports (a one-shot's leaving changes nothing else of the table). ``firewall`` False: not at all."""
    root = networks.store_root(store)
    published = False
    with networks.locked(store, write=release) as state:
        data = state.data
        targets = set() if release else {holder}
        for network, leases in data["leases"].items():
            if holder not in leases:
                continue
            if release:
                published = published or bool(leases[holder].get("published_ports"))
                del leases[holder]
                state.save(durable=not holder.startswith("."))
            if network == networks.DEFAULT_NETWORK:
                continue
            targets.update(h for h, entry in leases.items() if networks.container_running(root, h, entry))
        for target in sorted(targets):
            _write_one(root, data, target)
    if firewall and (published or not release):
        reconcile_firewall(store, data)


def reconcile_firewall(store, data: dict | None = None) -> bool:
    """The firewall table (network/firewall.py) reconciled with the store (``data``: its networks file, when the
    caller read it already). Imported here, not at the top: a start on network none never needs it."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall

    return firewall.reconcile(firewall.store_source(store, data))


def started(store, holder: str, plan: Plan, published: bool = False) -> bool:
    """After a one-shot's ``prepare``: the hosts files of the peers on its user networks, then the firewall. A start
    that changed nothing the table is made of (no published ports, not ``plan.reshaped``) only checks that no
    table changed since the table was last found right (firewall.untouched: the ruleset's generation id); when
    one did, or the start changed the table's inputs, the table is reconciled from ``plan.data``. Returns
    whether the firewall was reconciled."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall

    root = networks.store_root(store)
    if any(a["network"] != networks.DEFAULT_NETWORK for a in plan):
        refresh(store, holder, firewall=False)   # peers of its user networks resolve it
    if not published and not plan.reshaped and firewall.untouched(root):
        return False
    reconcile_firewall(store, plan.data)
    return True


def finish(store, holder: str, plan, one_shot: bool = False) -> None:
    """After the container's end: leftover host ends deleted, a one-shot's leases freed, peers' hosts files
    rewritten without it."""
    cleanup_links(plan)
    refresh(store, holder, release=one_shot)


def shown(plan) -> dict:
    """What results and container_info show of each network: {name: {address, prefix, gateway, mac, aliases}}."""
    return {a["network"]: {"address": a["address"], "prefix": a["prefix"], "gateway": a["gateway"],
                           "mac": a["mac"], "aliases": list(a.get("aliases") or ()), "interface": a["ifname"]}
            for a in plan}
