# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the fleet scenario (testinfra, read-only): each node's fleet-web, published on port 8090 of the node,
answers the other node across the fleet's shared segment (192.168.77.0/24, molecule.yml)."""

from __future__ import annotations

testinfra_hosts = ["nodes"]

FLEET_ADDRESSES = {"dockerless-node1": "192.168.77.11", "dockerless-node2": "192.168.77.12"}
PORT = 8090


def test_the_other_nodes_published_port_answers_across_the_fleet(host):
    me = host.backend.get_hostname()
    other = next(name for name in FLEET_ADDRESSES if name != me)
    cmd = host.run("curl -sS --max-time 10 http://%s:%s/", FLEET_ADDRESSES[other], str(PORT))
    assert cmd.rc == 0, f"{me}: curl http://{FLEET_ADDRESSES[other]}:{PORT}/ failed: {cmd.stderr}"
    assert cmd.stdout.strip() == f"fleet-web on {other}"


def test_own_published_port_answers_on_loopback(host):
    me = host.backend.get_hostname()
    cmd = host.run("curl -sS --max-time 10 http://127.0.0.1:%s/", str(PORT))
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip() == f"fleet-web on {me}"
