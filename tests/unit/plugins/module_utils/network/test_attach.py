# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Containers on bridge networks on the real kernel (busybox httpd and wget), each test in a network namespace
of its own: resolution by name and alias on a user network, a container started later, a removed one, two
starts at once, a taken ipv4_address, the supervisor SIGKILLed, and nothing left after removal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from netns import in_netns
from test_runtime import BUSYBOX, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.network import networks
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec, resolve_network

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, bridges"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> str:
    root = make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))
    os.makedirs(os.path.join(root, "www"))
    with open(os.path.join(root, "www", "index.html"), "w") as handle:
        handle.write("hello from web\n")
    return root


def _spec(rootfs, command, **kwargs):
    return build_spec(lower_dirs=[rootfs], image_config={"Env": ["PATH=/bin"]}, command=command, **kwargs)


def _links() -> list[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted(link["ifname"] for link in json.loads(out))


def _leases(store) -> dict:
    with open(os.path.join(store, "networks", "networks.json")) as handle:
        return {net: sorted(holders) for net, holders in json.load(handle)["leases"].items()}


def _wait_gone(name: str) -> None:
    for _attempt in range(300):
        if name not in _links():
            return
        time.sleep(0.01)


def test_user_network_names_aliases_later_and_removed_containers(rootfs, tmp_path):
    store = str(tmp_path / "store")

    def work():
        out = {}
        runtime = Runtime(store)
        networks.ensure_network(store, "app")
        # web serves HTTP and, every 0.1 s, writes whether it resolves "late" (started after it) into a page.
        web = ["sh", "-c", "httpd -p 80 -h /www; while :; do if ping -c1 -W1 late >/dev/null 2>&1; "
                           "then echo yes; else echo no; fi > /tmp/late; mv /tmp/late /www/late.txt; sleep 0.1; done"]
        # A nameserver that refuses at once (nothing listens on its loopback): a name not in /etc/hosts fails fast.
        runtime.create("web", _spec(rootfs, web, name="web", network="app", network_aliases=["www"],
                                    dns_servers=["127.0.0.1"]))
        info = runtime.start("web")
        out["web"] = info.networks["app"]
        fetch = "wget -q -O- http://web/; wget -q -O- http://www/; sleep 0.5; wget -q -O- http://web/late.txt"
        first = runtime.run(_spec(rootfs, ["sh", "-c", fetch], network="app"), timeout=30)
        out["first"] = (first.rc, first.stdout.decode(), first.stderr.decode())
        runtime.create("late", _spec(rootfs, ["sleep", "600"], name="late", network="app"))
        runtime.start("late")
        # web's answer, polled until it is the one expected (5 s at most: the machine may be loaded).
        check = ("for i in $(seq 50); do v=$(wget -q -O- http://web/late.txt); [ \"$v\" = {} ] && break; sleep 0.1; "
                 "done; echo $v")
        out["after_late"] = runtime.run(_spec(rootfs, ["sh", "-c", check.format("yes")], network="app"),
                                        timeout=30).stdout.decode()
        runtime.remove("late", force_kill=True)
        out["after_removal"] = runtime.run(_spec(rootfs, ["sh", "-c", check.format("no")], network="app"),
                                           timeout=30).stdout.decode()
        # The default bridge resolves no container names (as Docker's).
        on_bridge = runtime.run(_spec(rootfs, ["sh", "-c", "ping -c1 -W1 web"]), timeout=30)
        out["bridge_rc"] = on_bridge.rc
        out["web_hosts"] = open(os.path.join(store, "containers", "web", "etc", "hosts")).read()
        runtime.remove("web", force_kill=True)
        _wait_gone("dl" + info.id[:10] + "0")
        out["links"] = _links()
        out["leases"] = _leases(store)
        return out

    out = in_netns(work)
    assert out["web"]["address"] == "172.18.0.2" and out["web"]["gateway"] == "172.18.0.1"
    assert out["web"]["mac"] == "02:42:ac:12:00:02" and out["web"]["interface"] == "eth0"
    assert out["first"][0] == 0, out["first"]
    assert out["first"][1] == "hello from web\nhello from web\nno\n"
    assert out["after_late"] == "yes\n"          # resolvable by web without a restart of web
    assert out["after_removal"] == "no\n"        # and no more once removed
    assert out["bridge_rc"] != 0
    assert "late" not in out["web_hosts"] and "172.18.0.2\tweb" in out["web_hosts"]
    assert not [n for n in out["links"] if n.startswith("dl") and not n.startswith("dl-")]   # no veth left
    assert out["leases"] == {"app": [], "bridge": []}


def test_concurrent_starts_taken_address_killed_supervisor(rootfs, tmp_path):
    store = str(tmp_path / "store")

    def work():
        out = {}
        runtime = Runtime(store)
        networks.ensure_network(store, "app", subnet="10.55.0.0/24")
        for name in ("a", "b"):
            runtime.create(name, _spec(rootfs, ["sleep", "600"], name=name, network="app"))
        pids = []
        for name in ("a", "b"):
            pid = os.fork()
            if pid == 0:
                try:
                    Runtime(store).start(name)
                finally:
                    os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        infos = {n: runtime.inspect(n) for n in ("a", "b")}
        out["addresses"] = sorted(i.networks["app"]["address"] for i in infos.values())
        out["a"] = infos["a"].networks["app"]["address"]
        out["states"] = sorted(i.state for i in infos.values())
        with pytest.raises(RuntimeSetupError, match="network nowhere not found. Create it first"):
            runtime.create("d", _spec(rootfs, ["sleep", "600"], name="d", network="nowhere"))
        out["d"] = runtime.inspect("d")
        runtime.create("c", _spec(rootfs, ["sleep", "600"], name="c", network="app",
                                  ipv4_address=infos["a"].networks["app"]["address"]))
        with pytest.raises(RuntimeSetupError) as caught:
            runtime.start("c")
        out["taken"] = str(caught.value)
        runtime.remove("c")
        # The supervisor of a is SIGKILLed: the monitor and the container go with it, so does its netns and veth.
        os.kill(infos["a"].supervisor_pid, signal.SIGKILL)
        host_if = "dl" + infos["a"].id[:10] + "0"
        _wait_gone(host_if)
        out["dead"] = runtime.inspect("a").state
        out["veth_after_kill"] = host_if in _links()
        again = runtime.start("a")
        out["again"] = (again.state, again.networks["app"]["address"], host_if in _links())
        for name in ("a", "b"):
            runtime.remove(name, force_kill=True)
        out["leases"] = _leases(store)
        return out

    out = in_netns(work)
    assert out["addresses"] == ["10.55.0.2", "10.55.0.3"] and out["states"] == ["running", "running"]
    assert "network app gave it to container a already" in out["taken"]
    assert out["d"] is None                    # an unknown network: nothing made
    assert out["dead"] == "dead" and out["veth_after_kill"] is False
    assert out["again"] == ["running", out["a"], True]     # the same lease after the SIGKILL
    assert out["leases"] == {"app": []}


def test_host_gateway_and_bridge_reboot(rootfs, tmp_path):
    """etc_hosts host-gateway is the bridge's address; a bridge deleted (``ip link del``, a reboot) is made again
    at the next start."""
    store = str(tmp_path / "store")

    def work():
        runtime = Runtime(store)
        spec = _spec(rootfs, ["sh", "-c", "grep gw /etc/hosts; ping -c1 -W1 gw >/dev/null && echo reached"],
                     etc_hosts={"gw": "host-gateway"})
        first = runtime.run(spec, timeout=30).stdout.decode()
        subprocess.run(["ip", "link", "del", "dockerless0"], check=True)
        second = runtime.run(spec, timeout=30).stdout.decode()
        return first, second, "dockerless0" in _links()

    first, second, bridge = in_netns(work)
    assert first == second == "172.17.0.1\tgw\nreached\n"
    assert bridge is True


def test_rootless_callers_get_none_and_an_error_for_a_bridge():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            default = resolve_network(None)
            try:
                resolve_network("bridge")
                message = "no error"
            except RuntimeSetupError as exc:
                message = str(exc)
            os.write(write, json.dumps([default, message]).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = os.read(read, 65536)
    os.waitpid(pid, 0)
    default, message = json.loads(data)
    assert default == ["none", []]
    assert "rootless networking is not there yet" in message and "network: none" in message


def test_network_option_values():
    assert resolve_network(None) == ("bridge", ["bridge"])
    assert resolve_network("host") == ("host", [])
    assert resolve_network("front,back") == ("bridge", ["front", "back"])
    assert resolve_network(["front"]) == ("bridge", ["front"])
    with pytest.raises(RuntimeSetupError, match="can't be combined"):
        resolve_network(["none", "front"])
    with pytest.raises(RuntimeSetupError, match="only on a user network"):
        build_spec(lower_dirs=["/x"], image_config={}, command=["true"], ipv4_address="172.17.0.9")
    with pytest.raises(RuntimeSetupError, match="only on a user network"):
        build_spec(lower_dirs=["/x"], image_config={}, command=["true"], network_aliases=["x"])


def test_restarts_by_the_supervisor_reattach_with_the_same_lease(rootfs, tmp_path):
    store = str(tmp_path / "store")

    def work():
        runtime = Runtime(store)
        command = ["sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}' >> /seen; sleep 0.2; exit 1"]
        runtime.create("flaky", _spec(rootfs, command, name="flaky", restart_policy="on-failure", restart_retries=3))
        info = runtime.start("flaky")
        for _attempt in range(300):
            info = runtime.inspect("flaky")
            if not info.supervised:
                break
            time.sleep(0.05)
        with open(os.path.join(store, "containers", "flaky", "upper", "seen")) as handle:
            seen = handle.read().split()
        runtime.remove("flaky", force_kill=True)
        return seen, info.restart_count, [n for n in _links() if n.startswith("dl") and not n.startswith("dl-")]

    seen, restarts, veths = in_netns(work)
    assert restarts == 3 and seen == ["172.17.0.2/16"] * 4
    assert veths == []


def test_a_one_shot_without_published_ports_checks_the_firewall_by_its_generation_only(rootfs, tmp_path):
    """A one-shot on the bridge that changes nothing the table is made of runs no nft, at its start or its end,
    while no table changed since the table was last found right; after ``nft flush ruleset`` the next start
    puts the table back. A one-shot with a published port reconciles at its start and at its end."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall

    store = str(tmp_path / "store")

    def work():
        out = {}
        runtime = Runtime(store)
        calls = []
        real_nft, real_reconcile = firewall._nft, firewall.reconcile

        def nft(args, script=None):
            calls.append(args[0])
            return real_nft(args, script)

        def reconcile(source, check_mode=False):
            calls.append("reconcile")
            return real_reconcile(source, check_mode)

        firewall._nft, firewall.reconcile = nft, reconcile
        quiet = _spec(rootfs, ["/bin/true"])
        out["first_rc"] = runtime.run(quiet, timeout=30).rc          # the default network made: the table written
        out["first"] = list(calls)
        del calls[:]
        out["second_rc"] = runtime.run(quiet, timeout=30).rc
        out["second"] = list(calls)
        subprocess.run([firewall.nft_path(), "flush", "ruleset"], check=True)
        del calls[:]
        out["after_flush_rc"] = runtime.run(quiet, timeout=30).rc
        out["after_flush"] = list(calls)
        out["restored"] = firewall.current() == firewall.render(networks.list_networks(store), [])
        del calls[:]
        published = _spec(rootfs, ["/bin/true"], published_ports=["18555:80"])
        out["published_rc"] = runtime.run(published, timeout=30).rc
        out["published"] = list(calls)
        out["dnat_left"] = "dport 18555" in (firewall.current() or "")
        return out

    out = in_netns(work)
    assert out["first_rc"] == out["second_rc"] == out["after_flush_rc"] == out["published_rc"] == 0
    assert out["first"] == ["reconcile", "list", "-f"]
    assert out["second"] == []                                   # no nft, no reconcile, at start or end
    assert out["after_flush"] == ["reconcile", "list", "-f"] and out["restored"] is True
    # Its start writes its DNAT rule (no listing: the generation is the one last found right), its end removes it.
    assert out["published"] == ["reconcile", "-f", "reconcile", "-f"] and out["dnat_left"] is False


def test_a_one_shot_whose_network_is_missing_fails_and_leaves_nothing(rootfs, tmp_path):
    """A one-shot's leases are taken while its monitor makes the namespaces (spawn's while_unsharing): a network
    that is not there fails the start with its message, the monitor is killed and reaped, no lease is left."""
    store = str(tmp_path / "store")

    def work():
        runtime = Runtime(store)
        runtime.run(_spec(rootfs, ["/bin/true"]), timeout=30)     # the default network recorded
        try:
            runtime.run(_spec(rootfs, ["/bin/true"], network="nosuch"), timeout=30)
            message = None
        except RuntimeSetupError as exc:
            message = str(exc)
        children = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as handle:
                children += handle.read().split()
        return {"message": message, "leases": _leases(store), "children": children,
                "ok_after": runtime.run(_spec(rootfs, ["/bin/true"]), timeout=30).rc}

    out = in_netns(work)
    assert out["message"] and "network nosuch: not found" in out["message"]
    assert out["leases"] == {"bridge": []} and out["children"] == [] and out["ok_after"] == 0
