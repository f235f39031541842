# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dockerless network create|ls|rm`` and ``dockerless port`` on the real kernel, each test in a network namespace
of its own (the firewall table they write is that namespace's)."""

from __future__ import annotations

import io
import json
import os

import pytest
from netns import in_netns

from ansible_collections.dockerless.containers.plugins.module_utils.cli import main as cli
from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall, networks
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import ContainerSpec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and nftables"),
    pytest.mark.skipif(firewall.nft_path() is None, reason="needs nft (nftables)"),
]


def run_main(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), prog="dockerless", stdout=out, stderr=err, stdin=io.StringIO(""))
    return code, out.getvalue(), err.getvalue()


def test_network_create_ls_rm(tmp_path):
    store = str(tmp_path / "store")

    def work():
        out = {"create": run_main("network", "create", "--store", store, "--subnet", "172.25.0.0/16", "app")}
        out["create_internal"] = run_main("network", "create", "--store", store, "--internal", "-q", "back")
        out["again"] = run_main("network", "create", "--store", store, "app")
        out["ls"] = run_main("network", "ls", "--store", store)
        out["ls_json"] = run_main("network", "ls", "--store", store, "--json")
        out["table"] = firewall.current()
        out["bad"] = run_main("network", "create", "--store", store, "--subnet", "172.25.0.0/16", "clash")
        out["rm"] = run_main("network", "rm", "--store", store, "app", "back")
        out["rm_missing"] = run_main("network", "rm", "--store", store, "app")
        out["table_after"] = firewall.current()
        out["usage"] = run_main("network", "--store", store)
        return out

    out = in_netns(work)
    code, text, err = out["create"]
    assert code == 0, err
    assert text.startswith("app: created (172.25.0.0/16, bridge dl-")
    assert out["create_internal"][:2] == [0, "back\n"]
    assert out["again"][0] == 1 and "network app: exists already" in out["again"][2]
    ls_lines = out["ls"][1].splitlines()
    assert ls_lines[0].split() == ["NAME", "BRIDGE", "SUBNET", "GATEWAY", "INTERNAL"]
    # The default network is listed too once the store has networks (as docker network ls shows bridge).
    assert [line.split()[0] for line in ls_lines[1:]] == ["app", "back", "bridge"]
    assert ls_lines[1].split()[2:] == ["172.25.0.0/16", "172.25.0.1", "no"] and ls_lines[2].split()[-1] == "yes"
    assert [n["name"] for n in json.loads(out["ls_json"][1])] == ["app", "back", "bridge"]
    assert "ip saddr 172.25.0.0/16" in out["table"]
    assert out["bad"][0] == 1 and "clash" in out["bad"][2] and "172.25.0.0/16" in out["bad"][2]
    assert out["rm"][:2] == [0, "app: removed\nback: removed\n"]
    assert out["rm_missing"][0] == 1 and "removing network app: no such network" in out["rm_missing"][2]
    assert "172.25.0.0/16" not in out["table_after"]      # the default network's rules stay, as it does
    assert out["usage"][0] == 2


def test_port_lists_a_containers_published_ports(tmp_path):
    store = str(tmp_path / "store")
    runtime = Runtime(store)
    published = [{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "proto": "tcp"},
                 {"host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53, "proto": "udp"}]
    runtime.create("web", ContainerSpec(argv=["/bin/true"], lower_dirs=["/nonexistent"], published_ports=published))
    assert run_main("port", "--store", store, "web") == (0, "0.0.0.0:8080->80/tcp\n127.0.0.1:5353->53/udp\n", "")
    assert run_main("port", "--store", store, "web", "53/udp") == (0, "127.0.0.1:5353\n", "")
    code, text, err = run_main("port", "--store", store, "web", "53")
    assert code == 1 and err == "dockerless port: container web: port 53 is not published.\n"
    assert json.loads(run_main("port", "--store", store, "--json", "web")[1]) == published
    assert run_main("port", "--store", store, "nope")[0] == 1
    assert networks.list_networks(store) == []
