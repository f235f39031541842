# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the default scenario (testinfra, read-only): the busybox httpd of molecule-web, on the default
bridge, answers on its published port on 127.0.0.1 and on the VM's own address, through the nftables table
``inet dockerless``."""

from __future__ import annotations

import json
import os

import yaml

with open(os.path.join(os.path.dirname(__file__), "..", "vars.yml"), encoding="utf-8") as _f:
    SETTINGS = yaml.safe_load(_f)

PORT = SETTINGS["molecule_web_port"]
BODY = SETTINGS["molecule_web_body"]


def fetch(host, address: str) -> str:
    cmd = host.run("curl -sS --max-time 5 http://%s:%s/", address, str(PORT))
    assert cmd.rc == 0, f"curl http://{address}:{PORT}/ failed: {cmd.stderr}"
    return cmd.stdout.strip()


def test_published_port_answers_on_loopback(host):
    assert fetch(host, "127.0.0.1") == BODY


def test_published_port_answers_on_the_vms_own_address(host):
    addresses = json.loads(host.check_output("ip -j -4 addr show scope global"))
    own = [a["local"] for link in addresses if not link["ifname"].startswith(("dl", "dockerless"))
           for a in link["addr_info"]]
    assert own, addresses
    assert fetch(host, own[0]) == BODY


def test_the_rules_live_in_the_collections_table(host):
    table = host.check_output("nft list table inet dockerless")
    assert f"tcp dport {PORT} dnat ip to " in table
    assert host.file("/proc/sys/net/ipv4/conf/dockerless0/route_localnet").content_string.strip() == "1"
