# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rtnetlink requests on the real kernel, in network namespaces of their own (nothing is made on the host's):
a bridge, a veth pair with one end on it and the other moved into another namespace, addresses and a default
route, checked with iproute2's view of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from netns import in_netns

from ansible_collections.dockerless.containers.plugins.module_utils import linux
from ansible_collections.dockerless.containers.plugins.module_utils.network import rtnetlink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces"),
    pytest.mark.skipif(not shutil.which("ip") or not shutil.which("nsenter"), reason="needs iproute2 and nsenter"),
]


def ip_json(*args, pid=None):
    prefix = ["nsenter", "-t", str(pid), "-n"] if pid else []
    return json.loads(subprocess.run(prefix + ["ip", "-j", *args], capture_output=True, text=True, check=True).stdout)


def netns_sleeper() -> subprocess.Popen:
    """``sleep`` in a network namespace of its own, returned once that namespace exists (``unshare --net`` has it
    when its child runs: until then /proc/PID/ns/net is still ours)."""
    sleeper = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    for _attempt in range(2000):
        if os.readlink(f"/proc/{sleeper.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
            break
        os.sched_yield()
    return sleeper


def test_bridge_veth_address_route_and_move_to_another_namespace():
    def work():
        sleeper = netns_sleeper()
        try:
            with rtnetlink.Netlink() as nl:
                nl.add_bridge("dlbr0")
                nl.add_address("dlbr0", "10.250.0.1", 24)
                nl.add_address("dlbr0", "10.250.0.1", 24)        # present already: kept, no error
                nl.set_link("dlbr0", up=True)
                nl.add_veth("dlv0", "dlv0p")
                with pytest.raises(rtnetlink.NetlinkError, match="creating veth pair dlv0/dlv0p: File exists"):
                    nl.add_veth("dlv0", "dlv0p")
                nl.set_link("dlv0", master="dlbr0", up=True)
                nl.set_link("dlv0p", netns_pid=sleeper.pid)
            links = {link["ifname"]: link for link in ip_json("-d", "link", "show")}
            addrs = ip_json("addr", "show", "dev", "dlbr0")[0]["addr_info"]
            with rtnetlink.Netlink() as nl:
                # In the other namespace: rename, address, up, default route, as a container's eth0 gets them.
                fd = os.open(f"/proc/{sleeper.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    linux.setns(fd, linux.CLONE_NEWNET)
                    with rtnetlink.Netlink() as inner:
                        inner.set_link("dlv0p", new_name="eth0")
                        inner.add_address("eth0", "10.250.0.2", 24)
                        inner.set_link("eth0", up=True)
                        inner.add_default_route("10.250.0.1", "eth0")
                finally:
                    linux.setns(own, linux.CLONE_NEWNET)
                    os.close(fd)
                    os.close(own)
                gone = nl.delete_link("dlv0p")
            inner_links = [link["ifname"] for link in ip_json("link", "show", pid=sleeper.pid)]
            inner_addr = ip_json("addr", "show", "dev", "eth0", pid=sleeper.pid)[0]["addr_info"]
            routes = ip_json("route", "show", "default", pid=sleeper.pid)
            with rtnetlink.Netlink() as nl:
                deleted = nl.delete_link("dlv0"), nl.delete_link("dlv0")
            return {"links": {k: {"kind": v.get("linkinfo", {}).get("info_kind"), "master": v.get("master"),
                                  "up": "UP" in v["flags"]} for k, v in links.items()},
                    "addrs": [(a["local"], a["prefixlen"], a.get("broadcast")) for a in addrs if a["family"] == "inet"],
                    "gone": gone, "inner_links": inner_links,
                    "inner_addr": [(a["local"], a["prefixlen"]) for a in inner_addr if a["family"] == "inet"],
                    "routes": [(r["dst"], r["gateway"], r["dev"]) for r in routes], "deleted": deleted,
                    "exists": rtnetlink.link_exists("dlbr0")}
        finally:
            sleeper.kill()
            sleeper.wait()

    out = in_netns(work)
    assert out["links"]["dlbr0"] == {"kind": "bridge", "master": None, "up": True}
    assert out["links"]["dlv0"] == {"kind": "veth", "master": "dlbr0", "up": True}
    assert "dlv0p" not in out["links"]                        # moved out of this namespace
    assert out["addrs"] == [["10.250.0.1", 24, "10.250.0.255"]]
    assert out["gone"] is False                                # not here any more to delete
    assert sorted(out["inner_links"]) == ["eth0", "lo"]
    assert out["inner_addr"] == [["10.250.0.2", 24]]
    assert out["routes"] == [["default", "10.250.0.1", "eth0"]]
    assert out["deleted"] == [True, False] and out["exists"] is True


def test_bad_interface_names_are_refused_before_any_request():
    for bad in ("", "x" * 16, "a/b", "a b", "a:1", ".."):
        with pytest.raises(ValueError, match="interface name"):
            rtnetlink._name(bad)


def test_a_veth_peer_made_right_in_another_namespace():
    """What a container start on a bridge does (no move afterwards: ~29 ms less here): the peer is born as eth0
    in the container's namespace, and goes with it when that namespace ends."""
    def work():
        sleeper = netns_sleeper()
        try:
            with rtnetlink.Netlink() as nl:
                nl.add_veth("dlv1", "eth0", peer_netns_pid=sleeper.pid)
            inside = sorted(link["ifname"] for link in ip_json("link", "show", pid=sleeper.pid))
            here = rtnetlink.link_exists("dlv1"), rtnetlink.link_exists("eth0")
        finally:
            sleeper.kill()
            sleeper.wait()
        for _attempt in range(2000):             # the kernel removes the pair with the namespace, shortly after
            if not rtnetlink.link_exists("dlv1"):
                break
            subprocess.run(["sleep", "0.01"], check=True)
        return {"inside": inside, "here": here, "after": rtnetlink.link_exists("dlv1")}

    out = in_netns(work)
    assert out == {"inside": ["eth0", "lo"], "here": [True, False], "after": False}


def test_a_veth_made_on_its_bridge_and_up_and_a_batch_of_address_up_and_route():
    """attach.setup's requests: the host end made as a port of the bridge and up in the creating request, the
    peer's address, up and default route in one send; a batch's refused request raises, naming it."""
    def work():
        sleeper = netns_sleeper()
        try:
            with rtnetlink.Netlink() as nl:
                nl.add_bridge("dlbr1")
                nl.add_address("dlbr1", "10.251.0.1", 24)
                nl.set_link("dlbr1", up=True)
                nl.add_veth("dlv2", "eth0", peer_netns_pid=sleeper.pid, master="dlbr1", up=True)
            host = {link["ifname"]: link for link in ip_json("link", "show")}["dlv2"]
            fd = os.open(f"/proc/{sleeper.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                with rtnetlink.Netlink(netns_fd=fd) as inner:
                    index = inner.index("eth0")
                    inner.batch([rtnetlink.address_request(index, "eth0", "10.251.0.2", 24),
                                 rtnetlink.up_request(index, "eth0"),
                                 rtnetlink.default_route_request(index, "eth0", "10.251.0.1")])
                    try:
                        inner.batch([rtnetlink.address_request(index, "eth0", "10.251.0.2", 24),
                                     rtnetlink.up_request(index, "eth0")])
                        refused = None
                    except rtnetlink.NetlinkError as exc:
                        refused = str(exc)
            finally:
                os.close(fd)
            peer = {link["ifname"]: link for link in ip_json("link", "show", pid=sleeper.pid)}["eth0"]
            addresses = [(a["local"], a["prefixlen"]) for a in ip_json("addr", "show", "dev", "eth0", pid=sleeper.pid)[0]
                         ["addr_info"] if a["family"] == "inet"]
            routes = ip_json("route", "show", pid=sleeper.pid)
        finally:
            sleeper.kill()
            sleeper.wait()
        return {"master": host.get("master"), "host_up": "UP" in host["flags"], "peer_up": "UP" in peer["flags"],
                "addresses": addresses, "default": [r.get("gateway") for r in routes if r["dst"] == "default"],
                "subnet": [r["dst"] for r in routes if r["dst"] != "default"], "refused": refused}

    out = in_netns(work)
    assert out["master"] == "dlbr1" and out["host_up"] and out["peer_up"]
    assert out["addresses"] == [["10.251.0.2", 24]] and out["default"] == ["10.251.0.1"]
    assert out["refused"] == "[Errno 17] adding 10.251.0.2/24 to eth0: File exists"
    assert out["subnet"] == ["10.251.0.0/24"]     # the link's route: it is up with its address


def test_waiting_for_a_host_end_to_go_with_its_namespace():
    """cleanup_links' wait: the host end of a veth whose namespace ended is gone by the kernel's hand, woken by its
    notification; one whose namespace a process still holds is still there at the timeout (then deleted)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.network import attach

    def work():
        out = {}
        for name, end in (("dlv3", True), ("dlv4", False)):
            sleeper = netns_sleeper()
            try:
                with rtnetlink.Netlink() as nl:
                    nl.add_veth(name, "eth0", peer_netns_pid=sleeper.pid)
                if end:
                    sleeper.kill()
                    sleeper.wait()
                out[name] = rtnetlink.wait_links_gone([name], 5.0 if end else 0.2)
                attach.cleanup_links([{"host_if": name}])
                out[name + "_after"] = rtnetlink.link_exists(name)
            finally:
                sleeper.kill()
                sleeper.wait()
        out["none"] = rtnetlink.wait_links_gone(["dlnothere"], 0.2)
        return out

    out = in_netns(work)
    assert out == {"dlv3": [], "dlv3_after": False, "dlv4": ["dlv4"], "dlv4_after": False, "none": []}
