# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""container_network's work, and the CLI's ``network create|ls|rm``: a network record brought to its state, then
the firewall table reconciled with the store (a table someone flushed is put back, and said so)."""

from __future__ import annotations

import os

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError
from ansible_collections.dockerless.containers.plugins.module_utils.network import firewall, networks

SHOWN_KEYS = ("name", "id", "bridge", "subnet", "gateway", "internal", "created")


def shown(record: dict | None) -> dict | None:
    """A network record as results show it."""
    if record is None:
        return None
    return {key: record.get(key) for key in SHOWN_KEYS}


def manage_network(store_root: str, name: str, state: str = "present", subnet: str | None = None,
                   gateway: str | None = None, internal: bool = False, check_mode: bool = False) -> dict:
    """``{changed, network, diff, actions}`` for network ``name`` brought to ``state`` (present or absent)."""
    if os.geteuid() != 0:
        raise RuntimeSetupError(f"network {name}: bridge networks need root (rootless networking is not there yet); "
                                "rootless containers use network none or host.")
    actions: list[str] = []
    if state == "absent":
        before = networks.get_network(store_root, name)
        changed = networks.remove_network(store_root, name, check_mode=check_mode)
        if changed:
            actions.append("remove")
        after = None
    elif state == "present":
        before = networks.get_network(store_root, name)
        record, changed, _diff = networks.ensure_network(store_root, name, subnet, gateway, internal, check_mode=check_mode)
        if changed:
            actions.append("create" if before is None else "update")
        after = record
    else:
        raise RuntimeSetupError(f"network {name}: state {state!r}: use present or absent.")
    if check_mode and changed:
        rules = True  # the table follows the record, which is not written in check mode
    else:
        rules = firewall.reconcile(store_root, check_mode=check_mode)
    if rules:
        actions.append("write firewall rules")
    return {"changed": bool(changed or rules), "network": shown(after if state == "present" else before),
            "diff": {"before": shown(before), "after": shown(after)}, "actions": actions}
