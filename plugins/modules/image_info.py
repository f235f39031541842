#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: List or inspect images in the local dockerless store
version_added: 0.1.0
description:
  - Read-only. Without O(name), lists every image in the store; with O(name), inspects those images.
  - Never contacts a registry.
extends_documentation_fragment:
  - dockerless.containers.info_module
  - dockerless.containers.store
options:
  name:
    description:
      - Image references to inspect, normalised like Docker does. Images not in the store are listed in
        RV(missing) instead of failing.
    type: list
    elements: str
seealso:
  - module: dockerless.containers.image_pull
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: List the store
  dockerless.containers.image_info:
  register: store

- name: Inspect one image
  dockerless.containers.image_info:
    name: [alpine:3.20]
  register: alpine

- name: Show its layers
  ansible.builtin.debug:
    var: alpine.images[0].layers
"""

RETURN = r"""
images:
  description: The images found, each with the same fields as image_pull's RV(dockerless.containers.image_pull#module:image).
  returned: always
  type: list
  elements: dict
  sample:
    - name: docker.io/library/alpine:3.20
      digest: sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1
      platform: linux/amd64
      size: 3409611
      tags: [docker.io/library/alpine:3.20, docker.io/library/alpine:latest]
      unpacked: true
missing:
  description: Requested names that are not in the store.
  returned: always
  type: list
  elements: str
  sample: []
store:
  description: The store that was read.
  returned: always
  type: str
  sample: /var/lib/dockerless
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="list", elements="str"), **STORE_ARGS),
        supports_check_mode=True,
    )
    store_lib = engine_loader.load_for(module, "image.store")
    store = store_lib.Store(module.params["store"])
    try:
        images, missing = store_lib.describe_images(store, module.params["name"])
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, images=images, missing=missing, store=store.root)


if __name__ == "__main__":
    main()
