#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_network
short_description: Create or remove a bridge network for containers of the local store
version_added: 0.1.0
description:
  - A network is a Linux bridge with an IPv4 subnet; P(dockerless.containers.container_run#module) attaches a
    container to it with O(dockerless.containers.container_run#module:network). Containers on one network reach
    each other (and resolve each other by name and alias); networks are isolated from each other.
  - The network is recorded in the store (C(networks/networks.json)); its bridge is made when the first container
    attached to it starts. Its firewall rules (masquerade out, isolation, published ports) live in the nftables
    table C(inet dockerless), which every run compares with the store and rewrites, in one atomic batch, only when
    it differs (an admin's C(nft flush ruleset), a reboot); that counts as a change.
  - Needs root and C(nft) (nftables). See C(docs/networking.md).
extends_documentation_fragment:
  - dockerless.containers.store
attributes:
  check_mode:
    support: full
    description: Reports what would be created, changed or removed and whether the firewall table would be rewritten; writes nothing.
  diff_mode:
    support: full
    description: The network record before and after.
  idempotent:
    support: full
    description: A network as asked, with its rules in place, is left alone and reports no change.
options:
  name:
    description:
      - Name of the network. V(none), V(host) and V(default) are reserved. V(bridge) is the default network.
    type: str
    required: true
  state:
    description:
      - V(present) makes the network, or changes its subnet, gateway or internal flag when no container is attached.
      - V(absent) removes it with its bridge. It fails, naming them, while containers are attached.
    type: str
    choices: [present, absent]
    default: present
  subnet:
    description:
      - IPv4 subnet in CIDR form, V(172.20.0.0/16). Must overlap no host route and no other network.
      - Without it a new network gets the first free /16 of Docker's pool (172.17.0.0/16 to 172.31.0.0/16); an
        existing network keeps its own.
    type: str
  gateway:
    description:
      - The bridge's address in O(subnet), the containers' default route. Defaults to the subnet's first address.
    type: str
  internal:
    description:
      - No route out of the network (no masquerade, forwarding to other interfaces dropped); its containers still
        reach each other. Published ports of its containers are not published.
    type: bool
    default: false
seealso:
  - module: dockerless.containers.container_run
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: A network for the application's containers
  dockerless.containers.container_network:
    name: app

- name: A network with its own subnet, cut off from the outside
  dockerless.containers.container_network:
    name: backend
    subnet: 172.30.0.0/16
    internal: true

- name: Remove a network (fails while containers are attached)
  dockerless.containers.container_network:
    name: app
    state: absent
"""

RETURN = r"""
network:
  description: The network after the task (for O(state=absent), before it was removed; V(null) when there was none).
  returned: always
  type: dict
  sample:
    name: app
    id: 4b0c7b6f0d6d2a1e6c38a1d4f5e2a0b1c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4
    bridge: dl-4b0c7b6f0d6d
    subnet: 172.18.0.0/16
    gateway: 172.18.0.1
    internal: false
    created: "2026-12-07T18:20:00Z"
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
  sample: ["create", "write firewall rules"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str", required=True),
                           state=dict(type="str", choices=["present", "absent"], default="present"),
                           subnet=dict(type="str"), gateway=dict(type="str"),
                           internal=dict(type="bool", default=False), **STORE_ARGS),
        supports_check_mode=True,
    )
    manage, containers = engine_loader.load_for(module, "network.manage", "runtime.containers")
    params = module.params
    try:
        result = manage.manage_network(params["store"] or containers.default_store_root(), params["name"], params["state"],
                                       params["subnet"], params["gateway"], params["internal"], check_mode=module.check_mode)
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
