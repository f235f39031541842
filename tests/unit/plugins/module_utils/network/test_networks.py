# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network records and address leases in a store, on the real kernel (host routes read over rtnetlink), each test
in a network namespace of its own."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from netns import in_netns

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.network import networks

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces")]


def _container(store, name, cid):
    cdir = os.path.join(store, "containers", name)
    os.makedirs(cdir)
    with open(os.path.join(cdir, "spec.json"), "w") as handle:
        json.dump({"name": name, "id": cid, "spec": {"published_ports": [{"host_port": 8080}]}}, handle)


def test_networks_subnets_and_routes(tmp_path):
    store = str(tmp_path)

    def work():
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "route", "add", "172.18.5.0/24", "dev", "lo"], check=True)
        out = {}
        record, changed, diff = networks.ensure_network(store, "front")
        out["front"] = (record["subnet"], record["gateway"], record["bridge"], changed, diff["before"])
        out["again"] = networks.ensure_network(store, "front")[1]
        # The default network keeps Docker's 172.17/16; 172.18/16 overlaps the host's route to 172.18.5.0/24.
        out["back"] = networks.ensure_network(store, "back", internal=True)[0]["subnet"]
        with pytest.raises(RuntimeSetupError, match="overlaps the host's route to 172.18.5.0/24"):
            networks.ensure_network(store, "clash", subnet="172.18.0.0/16")
        with pytest.raises(RuntimeSetupError, match="overlaps network front"):
            networks.ensure_network(store, "clash", subnet="172.19.3.0/24")
        with pytest.raises(RuntimeSetupError, match="host bits set"):
            networks.ensure_network(store, "clash", subnet="10.1.2.3/16")
        check = networks.ensure_network(store, "planned", subnet="10.9.0.0/24", check_mode=True)
        out["check"] = (check[0]["gateway"], check[1], networks.get_network(store, "planned"))
        out["names"] = [n["name"] for n in networks.list_networks(store)]
        out["removed"] = networks.remove_network(store, "back"), networks.remove_network(store, "back")
        return out

    out = in_netns(work)
    assert out["front"][0:2] == ["172.19.0.0/16", "172.19.0.1"] and out["front"][3] is True
    assert out["front"][2].startswith("dl-") and len(out["front"][2]) == 15 and out["front"][4] is None
    assert out["again"] is False
    assert out["back"] == "172.20.0.0/16"
    assert out["check"] == ["10.9.0.1", True, None]
    assert out["names"] == ["back", "bridge", "front"]
    assert out["removed"] == [True, False]


def test_leases_stale_holders_and_removal(tmp_path):
    store = str(tmp_path)

    def work():
        out = {}
        networks.ensure_network(store, "app", subnet="10.77.0.0/24")
        _container(store, "web", "a" * 64)
        _container(store, "db", "b" * 64)
        out["web"] = networks.lease(store, "app", "web", cid="a" * 64, names=["web"])[1]["address"]
        out["web_again"] = networks.lease(store, "app", "web", cid="a" * 64, names=["web"])[1]["address"]
        with pytest.raises(RuntimeSetupError, match="gave it to container web already"):
            networks.lease(store, "app", "db", cid="b" * 64, requested="10.77.0.2")
        out["db"] = networks.lease(store, "app", "db", cid="b" * 64, requested="10.77.0.9")[1]
        with pytest.raises(RuntimeSetupError, match="not a free host address"):
            networks.lease(store, "app", "db", cid="b" * 64, requested="10.77.0.1")
        with pytest.raises(RuntimeSetupError, match="containers are attached: db, web"):
            networks.remove_network(store, "app")
        with pytest.raises(RuntimeSetupError, match="containers are attached: db, web"):
            networks.ensure_network(store, "app", subnet="10.78.0.0/24")
        # A one-shot whose process ended (even killed) holds nothing: its lease goes at the next allocation.
        child = subprocess.Popen(["sleep", "30"])
        shot = networks.one_shot_holder("c" * 64)
        out["shot"] = networks.lease(store, "app", shot, cid="c" * 64, pid=child.pid)[1]["address"]
        out["attached_running"] = networks.attached(store, "app")
        child.kill()
        child.wait()
        out["attached_dead"] = networks.attached(store, "app")
        # web's record vanished without its lease being released (a crash mid-remove): reclaimed too.
        os.unlink(os.path.join(store, "containers", "web", "spec.json"))
        _container(store, "late", "d" * 64)
        out["late"] = networks.lease(store, "app", "late", cid="d" * 64)[1]["address"]
        out["released"] = networks.release(store, "db"), networks.release(store, "db")
        return out

    out = in_netns(work)
    assert out["web"] == out["web_again"] == "10.77.0.2"
    assert out["db"]["address"] == "10.77.0.9" and out["db"]["mac"] == "02:42:0a:4d:00:09"
    assert out["shot"] == "10.77.0.3"
    assert out["attached_running"] == ["ccccccccccc" + "c", "db", "web"]
    assert out["attached_dead"] == ["db", "web"]
    assert out["late"] == "10.77.0.2"
    assert out["released"] == [["app"], []]


def test_two_allocations_at_once_get_two_addresses(tmp_path):
    store = str(tmp_path)

    def work():
        networks.ensure_network(store, "race", subnet="10.66.0.0/24")
        for i in range(8):
            _container(store, f"c{i}", f"{i:064x}")
        pids = []
        start = time.time() + 0.3
        for i in range(8):
            pid = os.fork()
            if pid == 0:
                while time.time() < start:
                    pass
                networks.lease(store, "race", f"c{i}", cid=f"{i:064x}")
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        with open(os.path.join(store, "networks", "networks.json")) as handle:
            return sorted(e["address"] for e in json.load(handle)["leases"]["race"].values())

    addresses = in_netns(work)
    assert len(addresses) == 8 and len(set(addresses)) == 8
