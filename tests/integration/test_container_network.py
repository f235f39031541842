# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_run's name-service options on the real kernel: every container's /etc/hostname, /etc/hosts and
/etc/resolv.conf, dns_servers (alias dns), dns_search_domains (alias dns_search), etc_hosts; check mode, diff
and idempotence."""

from __future__ import annotations

import os
import secrets

import pytest
from test_container_run import IMAGE

from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts")]


SHOW = "cat /etc/hostname /etc/hosts /etc/resolv.conf"


def test_one_shot_hostname_is_its_short_id(store, run_module):
    result = run_module("container_run", {"image": IMAGE, "store": store, "pull": "never",
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
            "command": ["sh", "-c", SHOW + "; sleep 600"], "dns": ["192.0.2.1", "192.0.2.2"],
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
                                              **options})
        assert result["failed"] and text in result["msg"], result["msg"]
