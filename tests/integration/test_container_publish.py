# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_run's published_ports on the real kernel, through Ansible: a busybox httpd (TCP) and a tiny UDP echo
in a container on the default bridge, reached from the host on 127.0.0.1 and on the host's own address; check
mode, diff, a no-change re-run that rewrites nothing, the table put back after ``nft delete table``, a port
already taken refused naming its holder, nothing left after removal. The test runs ansible-playbook from a forked
child in a network namespace of its own; a veth end there holds "the host's own address"."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request

import pytest
from netns import in_netns
from test_container_run import IMAGE, add_image, make_busybox_rootfs

from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, nftables, containers"),
    pytest.mark.skipif(firewall.nft_path() is None, reason="needs nft (nftables)"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc: the UDP echo server of the image is built here"),
]

HOST_ADDRESS = "10.98.0.1"
UDP_ECHO = r"""
#include <netinet/in.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(53);
    if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
    for (;;) {
        char b[512]; struct sockaddr_in p; socklen_t l = sizeof p;
        ssize_t n = recvfrom(s, b + 4, sizeof b - 4, 0, (struct sockaddr *)&p, &l);
        if (n < 0) continue;
        b[0] = 'u'; b[1] = 'd'; b[2] = 'p'; b[3] = ':';
        sendto(s, b, n + 4, 0, (struct sockaddr *)&p, l);
    }
}
"""
# The page exists before httpd starts (``a && b & c`` would put the page's making in the background with the
# UDP server, racing httpd's chdir).
SERVE = "mkdir -p /tmp/www; echo hello-from-web > /tmp/www/index.html; /udpecho & exec httpd -f -p 80 -h /tmp/www"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("store"))
    rootfs = make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))
    source = tmp_path_factory.mktemp("udpecho") / "udpecho.c"
    source.write_text(UDP_ECHO)
    subprocess.run(["gcc", "-static", "-O2", "-o", os.path.join(rootfs, "udpecho"), str(source)], check=True)
    add_image(root, IMAGE, rootfs, {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})
    return root


# The test's namespace: loopback up and a veth pair whose host end has HOST_ADDRESS (not a loopback address).
HOST_LINK = (["ip", "link", "set", "lo", "up"],
             ["ip", "link", "add", "hx0", "type", "veth", "peer", "name", "hx1"],
             ["ip", "addr", "add", f"{HOST_ADDRESS}/24", "dev", "hx0"],
             ["ip", "link", "set", "hx0", "up"], ["ip", "link", "set", "hx1", "up"])


def http(address, port):
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://{address}:{port}/", timeout=5) as reply:
            return reply.read().decode().strip()
    except OSError as exc:
        return type(exc).__name__


def http_when_up(address, port, seconds=15.0):
    """The first fetch: container_run returns once the container runs, httpd may not listen yet."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        answer = http(address, port)
        if answer == "hello-from-web" or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def udp(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"ping", (address, port))
        try:
            return sock.recvfrom(100)[0].decode()
        except OSError as exc:
            return type(exc).__name__


def table():
    return firewall.current() or ""


def test_published_ports_through_container_run(store, run_module):
    def work():
        base = {"name": "web", "store": store, "image": IMAGE, "pull": "never", "command": ["sh", "-c", SERVE],
                "network": "bridge", "published_ports": ["18080:80", "127.0.0.1:18081:80", "53/udp"]}
        out = {"check": run_module("container_run", base, check=True, diff=True)}
        out["table_after_check"] = table()
        out["run"] = run_module("container_run", base)
        udp_port = [m for m in out["run"]["container"]["published_ports"] if m["proto"] == "udp"][0]["host_port"]
        out["table_after_run"] = table()
        out["http_local"] = http_when_up("127.0.0.1", 18080)
        out["http_host_address"] = http(HOST_ADDRESS, 18080)
        out["http_local_only"] = http("127.0.0.1", 18081)
        out["udp"] = udp("127.0.0.1", udp_port)
        out["udp_host_address"] = udp(HOST_ADDRESS, udp_port)
        handles = subprocess.run([firewall.nft_path(), "-a", "list", "table", "inet", "dockerless"],
                                 capture_output=True, text=True, check=True).stdout
        out["again"] = run_module("container_run", dict(base, publish=base["published_ports"], published_ports=None))
        out["rewritten"] = handles != subprocess.run([firewall.nft_path(), "-a", "list", "table", "inet", "dockerless"],
                                                     capture_output=True, text=True, check=True).stdout
        out["spelled_otherwise"] = run_module("container_run", dict(base, published_ports=[
            "0.0.0.0:18080:80/tcp", "127.0.0.1:18081:80/tcp", f"{udp_port}:53/udp"]), check=True)
        subprocess.run([firewall.nft_path(), "delete", "table", "inet", "dockerless"], check=True)
        out["http_after_delete"] = http("127.0.0.1", 18080)
        out["restore_check"] = run_module("container_run", base, check=True)
        out["restore"] = run_module("container_run", base)
        out["http_restored"] = http_when_up("127.0.0.1", 18080)
        out["clash"] = run_module("container_run", dict(base, name="web2", published_ports=["18080:80"]))
        with socket.socket() as listener:
            listener.bind(("0.0.0.0", 18090))
            listener.listen()
            out["busy"] = run_module("container_run", dict(base, name="web3", published_ports=["18090:80"]))
        out["on_none"] = run_module("container_run", dict(base, name="web4", network="none"))
        out["info"] = run_module("container_info", {"name": "web", "store": store})
        out["removed"] = run_module("container_run", {"name": "web", "store": store, "state": "absent"})
        out["table_after_remove"] = table()
        out["http_after_remove"] = http("127.0.0.1", 18080)
        out["udp_port"] = udp_port
        return out

    out = in_netns(work, setup=HOST_LINK)
    check = out["check"]
    assert not check["failed"], check["msg"]
    assert check["changed"] is True
    assert check["diff"]["after"]["published_ports"] == [
        {"host_ip": "0.0.0.0", "host_port": 18080, "container_port": 80, "proto": "tcp"},
        {"host_ip": "127.0.0.1", "host_port": 18081, "container_port": 80, "proto": "tcp"},
        {"host_ip": "0.0.0.0", "host_port": 0, "container_port": 53, "proto": "udp"}]
    assert "18080" not in out["table_after_check"]
    run = out["run"]
    assert not run["failed"], run["msg"]
    assert 1024 < out["udp_port"] <= 65535
    assert out["http_local"] == "hello-from-web" and out["http_host_address"] == "hello-from-web", out["table_after_run"]
    assert out["http_local_only"] == "hello-from-web"
    assert out["udp"] == "udp:ping" and out["udp_host_address"] == "udp:ping"
    again = out["again"]
    assert not again["failed"], again["msg"]
    assert again["changed"] is False and again["actions"] == []
    assert again["container"]["published_ports"] == run["container"]["published_ports"]
    assert out["rewritten"] is False
    assert out["spelled_otherwise"]["changed"] is False
    assert out["http_after_delete"] != "hello-from-web"
    assert out["restore_check"]["changed"] is True and out["restore_check"]["actions"] == ["write firewall rules"]
    assert out["restore"]["changed"] is True and out["restore"]["actions"] == ["write firewall rules"]
    assert out["http_restored"] == "hello-from-web"
    assert out["clash"]["failed"] and "host port 18080/tcp is already published by container 'web'" in out["clash"]["msg"]
    assert out["busy"]["failed"] and "host port 18090/tcp is already in use by pid" in out["busy"]["msg"]
    assert out["on_none"]["failed"] and "on network 'none' has no address to publish to" in out["on_none"]["msg"]
    assert out["info"]["containers"][0]["published_ports"] == run["container"]["published_ports"]
    assert out["removed"]["changed"] is True
    assert "dport" not in out["table_after_remove"]
    assert out["http_after_remove"] != "hello-from-web"
