# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_run's name-service options on the real kernel: every container's /etc/hostname, /etc/hosts and
/etc/resolv.conf, dns_servers (alias dns), dns_search_domains (alias dns_search), etc_hosts; check mode, diff
and idempotence."""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest
from netns import in_netns
from test_container_run import IMAGE

from ansible_collections.dockerless.containers.plugins.module_utils.network import networks
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts")]


SHOW = "cat /etc/hostname /etc/hosts /etc/resolv.conf"


def test_one_shot_hostname_is_its_short_id(store, run_module):
    result = run_module("container_run", {"image": IMAGE, "store": store, "pull": "never", "network": "none",
                                          "command": ["sh", "-c", "hostname; " + SHOW]})
    assert not result["failed"], result["msg"]
    lines = result["stdout_lines"]
    short = result["container"]["id"][:12]
    assert lines[:2] == [short, short]            # hostname(1), then /etc/hostname
    assert "127.0.0.1\tlocalhost" in lines and f"127.0.1.1\t{short}" in lines
    assert any(line.startswith("nameserver ") for line in lines)


def test_named_dns_options_check_diff_and_idempotence(store, run_module, cleanup):
    name = f"t-{secrets.token_hex(4)}"
    cleanup.append(name)
    base = {"name": name, "store": store, "image": IMAGE, "pull": "never",
            "command": ["sh", "-c", SHOW + "; sleep 600"], "dns": ["192.0.2.1", "192.0.2.2"], "network": "none",
            "dns_search": ["svc.example"], "etc_hosts": {"db": "10.0.0.5", "cache": "2001:db8::7"}}
    would = run_module("container_run", base, check=True, diff=True)
    assert would["changed"] is True and would["diff"]["after"]["dns_servers"] == ["192.0.2.1", "192.0.2.2"]
    assert Runtime(store).inspect(name) is None          # check mode made nothing
    started = run_module("container_run", base)
    assert not started["failed"], started["msg"]
    assert started["changed"] is True
    etc = os.path.join(store, "containers", name, "etc")
    with open(os.path.join(etc, "resolv.conf")) as handle:
        assert handle.read() == "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch svc.example\n"
    with open(os.path.join(etc, "hosts")) as handle:
        hosts = handle.read().splitlines()
    short = started["container"]["id"][:12]
    assert hosts[-3:] == ["2001:db8::7\tcache", "10.0.0.5\tdb", f"127.0.1.1\t{name} {short}"]
    # The same options again (the entries in another order, the server spelled differently): no change.
    same = {**base, "etc_hosts": {"cache": "2001:DB8::7", "db": "10.0.0.5"}}
    for check in (True, False):
        again = run_module("container_run", same, check=check, diff=True)
        assert again["changed"] is False, again.get("diff")
    # Another search domain recreates it, and says so.
    changed = run_module("container_run", {**base, "dns_search": ["."]}, diff=True)
    assert changed["changed"] is True
    assert changed["diff"]["before"]["dns_search_domains"] == ["svc.example"]
    assert changed["diff"]["after"]["dns_search_domains"] == ["."]
    with open(os.path.join(etc, "resolv.conf")) as handle:
        assert "search" not in handle.read()


def test_bad_dns_options_fail_naming_the_option(store, run_module):
    for options, text in (({"dns": ["resolver"]}, "dns_servers 'resolver'"),
                          ({"etc_hosts": {"db": "10.0.0.300"}}, "etc_hosts db:"),
                          ({"etc_hosts": {"gw": "host-gateway"}}, "host-gateway")):
        result = run_module("container_run", {"image": IMAGE, "store": store, "pull": "never", "command": ["true"],
                                              "network": "none", **options})
        assert result["failed"] and text in result["msg"], result["msg"]


@pytest.fixture
def netns():
    """A network namespace of the test's own (held by a sleeping process), and ``run(fn)``: ``fn()`` in a forked
    child that joined it, its JSON-able result returned. The module's processes (ansible-playbook, supervisors)
    stay in it."""
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up; exec sleep 600"])
    for _attempt in range(2000):
        if os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
            break
        os.sched_yield()

    yield lambda fn: in_netns(fn, join=holder.pid)
    holder.kill()
    holder.wait()


def test_user_network_results_idempotence_and_removal(store, run_module, netns):
    """container_run on a user network: the address in the results, no change on a re-run, a one-shot reaching the
    named container by name and alias, another network recreating it, nothing left after removal."""
    name = f"t-{secrets.token_hex(4)}"
    base = {"name": name, "store": store, "image": IMAGE, "pull": "never", "network": "tnet",
            "network_aliases": ["www"], "command": ["sh", "-c", "echo up > /tmp/index.html; httpd -f -p 80 -h /tmp"]}

    def work():
        out = {}
        networks.ensure_network(store, "tnet", subnet="10.91.0.0/24")
        out["started"] = run_module("container_run", base)
        out["again"] = run_module("container_run", base, diff=True)
        out["check"] = run_module("container_run", base, check=True)
        out["fetch"] = run_module("container_run", {"store": store, "image": IMAGE, "pull": "never", "network": "tnet",
                                                    "command": ["sh", "-c", f"wget -q -O- http://{name}/index.html; "
                                                                            "wget -q -O- http://www/index.html"]})
        out["info"] = run_module("container_info", {"store": store, "name": name})
        out["moved"] = run_module("container_run", {**base, "network": "bridge", "network_aliases": []}, diff=True)
        out["removed"] = run_module("container_run", {"name": name, "store": store, "state": "absent"})
        out["links"] = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
        with open(os.path.join(store, "networks", "networks.json")) as handle:
            out["leases"] = {k: v for k, v in json.load(handle)["leases"].items() if v}
        networks.remove_network(store, "tnet")
        return out

    out = netns(work)
    started = out["started"]
    assert not started["failed"], started["msg"]
    assert started["changed"] is True and started["container"]["network"] == ["tnet"]
    assert started["container"]["networks"]["tnet"]["address"] == "10.91.0.2"
    assert started["container"]["networks"]["tnet"]["gateway"] == "10.91.0.1"
    assert out["again"]["changed"] is False, out["again"].get("diff")
    assert out["check"]["changed"] is False
    assert out["fetch"]["stdout"] == "up\nup\n", out["fetch"]
    info = out["info"]["containers"][0]
    assert info["networks"]["tnet"]["mac"] == "02:42:0a:5b:00:02"
    moved = out["moved"]
    assert moved["changed"] is True and moved["diff"]["after"]["networks"] == ["bridge"]
    assert moved["container"]["networks"]["bridge"]["address"].startswith("172.17.0.")
    assert out["removed"]["changed"] is True
    assert " dl" not in "\n" + out["links"] or all(not line.startswith("dl") or line.startswith("dl-")
                                                   for line in out["links"].splitlines())
    assert out["leases"] == {}


def test_a_container_recorded_before_networks_is_not_recreated(store, run_module, netns):
    """A record without ``networks`` (made before bridge networks, it ran with the old default ``none``) compares
    equal while the task gives no ``network``: the upgrade alone recreates nothing."""
    name = f"t-{secrets.token_hex(4)}"
    base = {"name": name, "store": store, "image": IMAGE, "pull": "never", "command": ["sleep", "600"]}

    def work():
        made = run_module("container_run", {**base, "network": "none"})
        spec_path = os.path.join(store, "containers", name, "spec.json")
        with open(spec_path) as handle:
            record = json.load(handle)
        for key in ("networks", "network_aliases", "ipv4_address", "network_defaulted"):
            record["spec"].pop(key, None)
        with open(spec_path, "w") as handle:
            json.dump(record, handle)
        upgraded = run_module("container_run", base, diff=True)
        asked = run_module("container_run", {**base, "network": "bridge"}, diff=True)
        run_module("container_run", {"name": name, "store": store, "state": "absent"})
        return made, upgraded, asked

    made, upgraded, asked = netns(work)
    assert not made["failed"], made["msg"]
    assert upgraded["changed"] is False, upgraded.get("diff")
    assert upgraded["container"]["network"] == "none"
    assert asked["changed"] is True and asked["container"]["network"] == ["bridge"]
