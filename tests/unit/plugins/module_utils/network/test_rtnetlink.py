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


def test_bridge_veth_address_route_and_move_to_another_namespace():
    def work():
        sleeper = subprocess.Popen(["unshare", "--net", "sleep", "30"])
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
                # The namespace of `unshare --net` is ready once its child runs sleep.
                for _attempt in range(200):
                    if os.readlink(f"/proc/{sleeper.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                        break
                    os.sched_yield()
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
        sleeper = subprocess.Popen(["unshare", "--net", "sleep", "30"])
        try:
            for _attempt in range(2000):
                if os.readlink(f"/proc/{sleeper.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                    break
                os.sched_yield()
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
