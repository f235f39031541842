# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_network through Ansible on the real kernel: check mode, diff, idempotence, the firewall table put back
after an admin deleted it, removal refused while a container is attached. Each test runs ansible-playbook from a
forked child in a network namespace of its own, so the nftables table it writes is that namespace's."""

from __future__ import annotations

import os
import subprocess

import pytest
from netns import in_netns

from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall, networks

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and nftables"),
    pytest.mark.skipif(firewall.nft_path() is None, reason="needs nft (nftables)"),
]


LO_UP = (["ip", "link", "set", "lo", "up"],)


def nft(*args):
    return subprocess.run([firewall.nft_path(), *args], capture_output=True, text=True, check=False)


def test_create_check_diff_idempotence_restore_and_remove(tmp_path, run_module):
    store = str(tmp_path / "store")

    def work():
        args = {"name": "app", "subnet": "172.28.0.0/16", "store": store}
        out = {"check": run_module("container_network", args, check=True, diff=True)}
        out["recorded_after_check"] = networks.get_network(store, "app")
        out["table_after_check"] = firewall.current()
        out["create"] = run_module("container_network", args, diff=True)
        out["table"] = firewall.current()
        out["again"] = run_module("container_network", args)
        out["again_check"] = run_module("container_network", args, check=True)
        nft("delete", "table", "inet", "dockerless")
        out["restore_check"] = run_module("container_network", args, check=True)
        out["restore"] = run_module("container_network", args)
        out["restored_table"] = firewall.current()
        out["other_subnet"] = run_module("container_network", dict(args, subnet="172.27.0.0/16", internal=True), diff=True)
        out["internal_table"] = firewall.current()
        out["bad"] = run_module("container_network", {"name": "host", "store": store})
        out["remove_check"] = run_module("container_network", {"name": "app", "state": "absent", "store": store}, check=True)
        out["remove"] = run_module("container_network", {"name": "app", "state": "absent", "store": store}, diff=True)
        out["remove_again"] = run_module("container_network", {"name": "app", "state": "absent", "store": store})
        out["table_after_remove"] = firewall.current()
        return out

    out = in_netns(work, setup=LO_UP)
    check = out["check"]
    assert not check["failed"], check["msg"]
    assert check["changed"] is True and check["actions"] == ["create", "write firewall rules"]
    assert check["diff"]["before"] is None and check["diff"]["after"]["subnet"] == "172.28.0.0/16"
    assert out["recorded_after_check"] is None and out["table_after_check"] is None
    create = out["create"]
    assert create["changed"] is True and create["network"]["gateway"] == "172.28.0.1"
    assert create["diff"]["after"]["bridge"] == create["network"]["bridge"]
    bridge = create["network"]["bridge"]
    assert f'ip saddr 172.28.0.0/16 oifname != "{bridge}" masquerade' in out["table"]
    assert out["again"]["changed"] is False and out["again"]["actions"] == []
    assert out["again_check"]["changed"] is False
    assert out["restore_check"]["changed"] is True and out["restore_check"]["actions"] == ["write firewall rules"]
    assert out["restore"]["changed"] is True and out["restore"]["actions"] == ["write firewall rules"]
    assert out["restored_table"] == out["table"]
    changed = out["other_subnet"]
    assert changed["changed"] is True and changed["actions"] == ["update", "write firewall rules"]
    assert changed["diff"]["before"]["subnet"] == "172.28.0.0/16" and changed["diff"]["after"]["internal"] is True
    assert "ip saddr 172.27.0.0/16" not in out["internal_table"]     # no masquerade out of an internal network
    assert f'iifname "{bridge}" oifname != "{bridge}" drop' in out["internal_table"]
    assert out["bad"]["failed"] and "reserved" in out["bad"]["msg"]
    assert out["remove_check"]["changed"] is True
    assert out["remove"]["changed"] is True and out["remove"]["diff"]["after"] is None
    assert out["remove_again"]["changed"] is False
    assert "172.28.0.0/16" not in (out["table_after_remove"] or "")   # the default network, once recorded, keeps its rules


def test_remove_with_a_container_attached_is_refused_naming_it(tmp_path, run_module):
    store = str(tmp_path / "store")

    def work():
        args = {"name": "back", "store": store}
        created = run_module("container_network", args)
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            networks.lease(store, "back", ".0123456789ab", cid="0123456789ab" * 5 + "0123", pid=sleeper.pid)
            refused = run_module("container_network", dict(args, state="absent"))
            refused_check = run_module("container_network", dict(args, state="absent"), check=True)
            changed = run_module("container_network", dict(args, subnet="172.26.0.0/16"))
        finally:
            sleeper.kill()
            sleeper.wait()
        # The holder is gone: its lease is stale, the network goes.
        removed = run_module("container_network", dict(args, state="absent"))
        return created, refused, refused_check, changed, removed, networks.get_network(store, "back")

    created, refused, refused_check, changed, removed, left = in_netns(work, setup=LO_UP)
    assert not created["failed"], created["msg"]
    assert refused["failed"] and "containers are attached: 0123456789ab" in refused["msg"]
    assert refused_check["failed"] and "0123456789ab" in refused_check["msg"]
    assert changed["failed"] and "containers are attached: 0123456789ab" in changed["msg"]
    assert removed["changed"] is True and left is None
