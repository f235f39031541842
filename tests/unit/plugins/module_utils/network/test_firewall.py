# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``inet dockerless`` table on the real kernel, each test in a network namespace of its own (nft tables,
links, sysctls and conntrack are per namespace: nothing here reaches the host's or another test's).

The "container" is a process in another network namespace behind a veth on a bridge, as part A's attach makes
it; the "host's own address" is a dummy interface's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from netns import in_netns

from ansible_collections.dockerless.containers.plugins.module_utils.network import conntrack, firewall

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and nftables"),
    pytest.mark.skipif(firewall.nft_path() is None, reason="needs nft (nftables)"),
]

BRIDGE = "dl-test0"
HOST_ADDRESS = "10.99.0.1"
CONTAINER = "172.30.0.2"
NETWORK = {"name": "front", "subnet": "172.30.0.0/16", "gateway": "172.30.0.1", "internal": False, "bridge": BRIDGE}
SERVER = textwrap.dedent("""
    import socket, sys, threading
    tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); tcp.bind(("0.0.0.0", 80)); tcp.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 53))
    def echo():
        while True:
            data, peer = udp.recvfrom(100)
            udp.sendto(b"udp:" + data, peer)
    threading.Thread(target=echo, daemon=True).start()
    print("ready", flush=True)
    while True:
        conn, peer = tcp.accept()
        conn.sendall(("hello " + peer[0]).encode()); conn.close()
""")


def sh(*args, pid=None):
    prefix = ["nsenter", "-t", str(pid), "-n"] if pid else []
    result = subprocess.run(prefix + list(args), capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout


class Topology:
    """lo up, a dummy "host address", a bridge, and a container namespace behind a veth serving TCP 80 and UDP 53."""

    def __init__(self):
        sh("ip", "link", "set", "lo", "up")
        # No dummy driver in every kernel: one end of a veth pair holds the host's "own" address.
        sh("ip", "link", "add", "hx0", "type", "veth", "peer", "name", "hx1")
        sh("ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", "hx0")
        sh("ip", "link", "set", "hx0", "up")
        sh("ip", "link", "set", "hx1", "up")
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", "172.30.0.1/16", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        self.sleeper = subprocess.Popen(["unshare", "--net", "sleep", "60"])
        own = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.sleeper.pid}/ns/net") == own and time.monotonic() < deadline:
            time.sleep(0.001)
        pid = self.pid = self.sleeper.pid
        sh("ip", "link", "add", "vh0", "type", "veth", "peer", "name", "vc0")
        sh("ip", "link", "set", "vh0", "master", BRIDGE, "up")
        sh("ip", "link", "set", "vc0", "netns", str(pid))
        sh("ip", "link", "set", "lo", "up", pid=pid)
        sh("ip", "addr", "add", f"{CONTAINER}/16", "dev", "vc0", pid=pid)
        sh("ip", "link", "set", "vc0", "up", pid=pid)
        sh("ip", "route", "add", "default", "via", "172.30.0.1", pid=pid)
        self.server = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", SERVER],
                                       stdout=subprocess.PIPE, text=True)
        assert self.server.stdout.readline().strip() == "ready"

    def close(self):
        self.server.kill()
        self.sleeper.kill()
        self.server.wait()
        self.sleeper.wait()


def fetch(address, port, timeout=3.0):
    with socket.create_connection((address, port), timeout=timeout) as conn:
        return conn.recv(100).decode()


def fetch_from_container(topology, address, port):
    code = f"import socket; c = socket.create_connection(({address!r}, {port}), timeout=3); print(c.recv(100).decode())"
    return sh(sys.executable, "-c", code, pid=topology.pid).strip()


def udp_ask(address, port, message=b"ping", source_port=0, timeout=3.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", source_port))
        sock.settimeout(timeout)
        sock.sendto(message, (address, port))
        return sock.recvfrom(100)[0].decode()


def attachment(published):
    return {"container": "web", "network": "front", "address": CONTAINER, "aliases": [], "published_ports": published}


PUBLISHED = [{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "proto": "tcp"},
             {"host_ip": "127.0.0.1", "host_port": 8081, "container_port": 80, "proto": "tcp"},
             {"host_ip": "0.0.0.0", "host_port": 5353, "container_port": 53, "proto": "udp"}]


def test_render_is_what_nft_lists_back():
    """The comparison in reconcile is exact text: what render writes must come back verbatim from nft."""
    internal = {"name": "back", "subnet": "172.31.0.0/16", "gateway": "172.31.0.1", "internal": True, "bridge": "dl-test1"}
    other = {"name": "side", "subnet": "172.29.0.0/16", "gateway": "172.29.0.1", "internal": False, "bridge": "dl-test2"}
    source = ([NETWORK, internal, other], [attachment(PUBLISHED), {"container": "db", "network": "back", "address": "172.31.0.2",
                                                                   "published_ports": [PUBLISHED[0] | {"host_port": 9999}]}])

    def work():
        rendered = firewall.render(*source)
        firewall.apply(rendered)
        return rendered, firewall.current()

    rendered, listed = in_netns(work)
    assert listed.strip() == rendered.strip()
    # Internal networks publish nothing and route nowhere; networks are cut from each other.
    assert "9999" not in rendered
    assert 'iifname "dl-test1" oifname != "dl-test1" drop' in rendered
    assert 'iifname "dl-test0" oifname { "dl-test1", "dl-test2" } drop' in rendered
    assert "ip saddr 172.31.0.0/16" not in rendered.split("chain postrouting")[1].split("chain forward")[0]


def test_published_ports_reconcile_idempotence_restore_and_removal():
    def work():
        topology = Topology()
        try:
            results = {}
            source = ([NETWORK], [attachment(PUBLISHED)])
            assert firewall.reconcile(source, check_mode=True) is True
            assert firewall.current() is None, "check mode wrote the table"
            results["first"] = firewall.reconcile(source)
            results["local"] = fetch("127.0.0.1", 8080)
            results["host_address"] = fetch(HOST_ADDRESS, 8080)
            results["local_only"] = fetch("127.0.0.1", 8081)
            try:
                fetch(HOST_ADDRESS, 8081, timeout=0.5)
                results["local_only_on_host_address"] = "answered"
            except OSError as exc:
                results["local_only_on_host_address"] = type(exc).__name__
            results["udp"] = udp_ask("127.0.0.1", 5353)
            results["udp_host_address"] = udp_ask(HOST_ADDRESS, 5353)
            with open(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet", encoding="ascii") as handle:
                results["route_localnet"] = handle.read().strip()
            with open("/proc/sys/net/ipv4/ip_forward", encoding="ascii") as handle:
                results["ip_forward"] = handle.read().strip()
            # Handles change when a table is written again: the same handles mean nothing was rewritten.
            handles = sh(firewall.nft_path(), "-a", "list", "table", "inet", "dockerless")
            results["second"] = firewall.reconcile(source)
            results["second_check"] = firewall.reconcile(source, check_mode=True)
            results["rewritten"] = handles != sh(firewall.nft_path(), "-a", "list", "table", "inet", "dockerless")
            sh(firewall.nft_path(), "delete", "table", "inet", "dockerless")
            results["after_delete"] = firewall.reconcile(source)
            results["restored"] = fetch("127.0.0.1", 8080)
            sh(firewall.nft_path(), "flush", "ruleset")
            results["after_flush"] = firewall.reconcile(source)
            sh(firewall.nft_path(), "delete", "rule", "inet", "dockerless", "published", "handle",
               sh(firewall.nft_path(), "-a", "list", "chain", "inet", "dockerless", "published").split("# handle ")[-1].split()[0])
            results["after_rule_delete"] = firewall.reconcile(source)
            results["unpublished"] = firewall.reconcile(([NETWORK], [attachment([])]))
            try:
                fetch("127.0.0.1", 8080, timeout=0.5)
                results["after_unpublish"] = "answered"
            except OSError as exc:
                results["after_unpublish"] = type(exc).__name__
            results["removed"] = firewall.reconcile(([], []))
            results["tables_left"] = sh(firewall.nft_path(), "list", "tables")
            results["removed_again"] = firewall.reconcile(([], []))
            return results
        finally:
            topology.close()

    results = in_netns(work)
    assert results["first"] is True
    assert results["local"] == "hello 172.30.0.1"          # 127.0.0.1 masqueraded to the bridge address
    assert results["host_address"] == f"hello {HOST_ADDRESS}"
    assert results["local_only"] == "hello 172.30.0.1"
    assert results["local_only_on_host_address"] in ("ConnectionRefusedError", "TimeoutError", "timeout")
    assert results["udp"] == "udp:ping"
    assert results["udp_host_address"] == "udp:ping"
    assert results["route_localnet"] == "1" and results["ip_forward"] == "1"
    assert results["second"] is False and results["second_check"] is False
    assert results["rewritten"] is False
    assert results["after_delete"] is True and results["restored"] == "hello 172.30.0.1"
    assert results["after_flush"] is True and results["after_rule_delete"] is True
    assert results["unpublished"] is True
    assert results["after_unpublish"] == "ConnectionRefusedError"
    assert results["removed"] is True and results["tables_left"] == "" and results["removed_again"] is False


def test_an_unchanged_generation_skips_the_listing_and_any_change_brings_it_back(tmp_path):
    """The state file says which generation was found right: while the ruleset's generation id stays, reconcile
    runs no nft at all; a change in any table (ours deleted, another added) makes it list and compare again."""
    state = str(tmp_path / "firewall.state")

    def work():
        calls = []
        real = firewall._nft

        def counted(args, script=None):
            calls.append(args[0])
            return real(args, script)

        firewall._nft = counted
        source = ([NETWORK], [attachment(PUBLISHED)], state)
        out = {"first": firewall.reconcile(source), "first_calls": list(calls)}
        del calls[:]
        out["second"] = firewall.reconcile(source)
        out["third"] = firewall.reconcile(source)
        out["quiet_calls"] = list(calls)
        sh(firewall.nft_path(), "add", "table", "ip", "someone_elses")
        del calls[:]
        out["other_table"] = firewall.reconcile(source)
        out["other_calls"] = list(calls)
        del calls[:]
        out["after_other"] = firewall.reconcile(source)
        out["after_other_calls"] = list(calls)
        sh(firewall.nft_path(), "delete", "table", "inet", "dockerless")
        out["deleted"] = firewall.reconcile(source)
        out["listing_restored"] = firewall.current() == firewall.render(*source[:2])
        out["unpublished"] = firewall.reconcile(([NETWORK], [attachment([])], state))
        out["tables"] = sh(firewall.nft_path(), "list", "tables")
        return out

    out = in_netns(work)
    assert out["first"] is True and out["first_calls"] == ["list", "-f"]
    assert out["second"] is False and out["third"] is False and out["quiet_calls"] == []
    assert out["other_table"] is False and out["other_calls"] == ["list"]
    assert out["after_other"] is False and out["after_other_calls"] == []
    assert out["deleted"] is True and out["listing_restored"] is True
    assert out["unpublished"] is True and "table ip someone_elses" in out["tables"]


def test_containers_cannot_reach_the_hosts_loopback_through_route_localnet():
    """route_localnet=1 on the bridge (for 127.0.0.1 published ports) must not open the host's 127.0.0.1 services
    to the bridge's containers (CVE-2020-8558): the guard chain drops 127/8 arriving from a bridge."""
    def work():
        topology = Topology()
        try:
            firewall.reconcile(([NETWORK], [attachment(PUBLISHED)]))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as service:
                # A UDP service of the host's, on loopback only: it trusts whoever reaches it.
                service.bind(("127.0.0.1", 0))
                service.settimeout(1)
                port = service.getsockname()[1]
                pid = topology.pid
                # The container routes 127/8 to the host, as a hostile one can in its own namespace.
                sh("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.vc0.route_localnet=1", pid=pid)
                sh("ip", "route", "del", "table", "local", "local", "127.0.0.0/8", "dev", "lo", pid=pid)
                sh("ip", "route", "del", "table", "local", "local", "127.0.0.1", "dev", "lo", pid=pid)
                sh("ip", "route", "add", "127.0.0.0/8", "via", "172.30.0.1", "dev", "vc0", pid=pid)
                code = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'in', ('127.0.0.1', {port}))"
                sh(sys.executable, "-c", code, pid=pid)
                try:
                    return service.recvfrom(100)[1][0]
                except OSError as exc:
                    return type(exc).__name__
        finally:
            topology.close()

    assert in_netns(work) in ("TimeoutError", "timeout")   # without the guard: received from 172.30.0.2


def test_removed_udp_mapping_flushes_its_conntrack_entries():
    """netavark#1045: a UDP flow keeps its DNAT in conntrack; removing the mapping must drop the entry."""
    def work():
        topology = Topology()
        try:
            firewall.reconcile(([NETWORK], [attachment(PUBLISHED)]))
            answer = udp_ask("127.0.0.1", 5353, source_port=40123)
            udp_ask("127.0.0.1", 5353, source_port=40124)

            def ours():
                with conntrack.Conntrack() as ct:
                    return [e for e in ct.entries() if e["orig"]["dport"] == 5353 and e["orig"]["proto"] == 17]

            before = ours()
            # Another mapping's change keeps this port's entries: only the ports that changed are flushed.
            firewall.reconcile(([NETWORK], [attachment(PUBLISHED + [{"host_ip": "0.0.0.0", "host_port": 6000,
                                                                     "container_port": 53, "proto": "udp"}])]))
            kept = ours()
            with open("/proc/net/nf_conntrack", encoding="ascii") as handle:
                proc_before = [line for line in handle if "dport=5353" in line]
            firewall.reconcile(([NETWORK], [attachment(PUBLISHED[:2])]))
            after = ours()
            with open("/proc/net/nf_conntrack", encoding="ascii") as handle:
                proc_after = [line for line in handle if "dport=5353" in line]
            return answer, before, kept, proc_before, after, proc_after
        finally:
            topology.close()

    answer, before, kept, proc_before, after, proc_after = in_netns(work)
    assert answer == "udp:ping"
    assert sorted(e["orig"]["sport"] for e in before) == [40123, 40124]
    assert all(e["reply"]["src"] == CONTAINER and e["reply"]["sport"] == 53 for e in before)
    assert len(kept) == 2 and len(proc_before) == 2
    assert after == [] and proc_after == []


def test_a_state_file_from_an_ended_namespace_does_not_pass_for_the_next_one(tmp_path):
    """Network namespaces made one after another get the same /proc inode once the first is freed, and their
    nftables generation ids start again from the same numbers: the state file written in the first (its table
    found right at generation N) must not pass for a later one's that reaches N with no table of ours in it."""
    state = str(tmp_path / "firewall.state")
    source = ([NETWORK], [attachment(PUBLISHED)], state)

    def work(other_table: bool):
        if other_table:  # one commit of someone else's: this namespace's generation becomes the first's after ours
            sh(firewall.nft_path(), "add", "table", "ip", "someone_elses")
        return {"inode": os.stat("/proc/self/ns/net").st_ino, "where": firewall._where(),
                "changed": firewall.reconcile(source), "ours": firewall.current() == firewall.render(*source[:2])}

    # A namespace is freed by a kernel worker a moment after its last process exits, and the next one takes the
    # lowest free inode: a pair made a moment apart shares it, unless another test's namespace was freed between.
    pairs = []
    for _attempt in range(20):
        time.sleep(0.1)
        first = in_netns(lambda: work(False))
        time.sleep(0.1)
        pairs.append((first, in_netns(lambda: work(True))))
        if pairs[-1][1]["inode"] == first["inode"]:
            break
    assert pairs[-1][0]["inode"] == pairs[-1][1]["inode"], f"no namespace got the one before's inode: {pairs}"
    for first, second in pairs:
        assert first["changed"] is True and first["ours"] is True
        assert second["where"] != first["where"], (first, second)
        assert second["changed"] is True and second["ours"] is True, (first, second)
    assert "/c" in first["where"]
