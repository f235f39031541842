# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify of the fleet scenario on the registry host (testinfra, read-only)."""

from __future__ import annotations

import json

testinfra_hosts = ["registry"]

FLEET_ADDRESS = "192.168.77.10"


def test_registry_service_runs(host):
    service = host.service("dockerless-registry")
    assert service.is_enabled
    assert service.is_running
    assert host.socket("tcp://0.0.0.0:5000").is_listening


def test_fleet_address_configured(host):
    addresses = host.run("ip -o -4 address show").stdout
    assert f"inet {FLEET_ADDRESS}/24" in addresses


def test_image_pushed_to_the_registry(host):
    out = host.run("curl -sS http://127.0.0.1:5000/v2/_catalog")
    assert out.rc == 0, out.stderr
    assert "fleet/tools" in json.loads(out.stdout)["repositories"]
    tags = json.loads(host.run("curl -sS http://127.0.0.1:5000/v2/fleet/tools/tags/list").stdout)
    assert "1" in tags["tags"]
