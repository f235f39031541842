#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_remove
short_description: Remove images from the local dockerless store and collect what nothing uses any more
version_added: 0.1.0
description:
  - Removes the tags O(name) from the store's C(index.json), like C(docker rmi).
  - Then, with O(gc=true), deletes the blobs (manifests, configs, compressed layers) and the unpacked layer
    folders that no tagged image and no container uses any more. Blobs and layers shared with another image
    stay, and so do the layer folders of containers (running or not) made from a removed image, so they keep
    working and can be restarted.
  - Never contacts a registry.
extends_documentation_fragment:
  - dockerless.containers.store
attributes:
  check_mode:
    support: full
    description: Reports the tags that would be removed and the blobs and layer folders garbage collection would
      delete after that; changes nothing.
  diff_mode:
    support: full
    description: Shows the removed tags with their digests, and the blobs and layer folders that go.
  idempotent:
    support: full
    description: A second run finds nothing to remove and reports no change.
options:
  name:
    description:
      - The images to remove, as they were pulled or built, normalised like Docker does
        (C(busybox) is C(docker.io/library/busybox:latest)).
      - Names that are not in the store are listed in RV(missing); that is not an error.
    type: list
    elements: str
    required: true
  gc:
    description:
      - Collect garbage after removing the tags; V(false) only removes the tags.
      - Garbage collection runs even when no tag was removed, so leftovers of earlier runs with V(false) go too.
    type: bool
    default: true
notes:
  - Garbage collection waits for pulls and builds running on the same store; they are never collected halfway.
seealso:
  - module: dockerless.containers.image_pull
  - module: dockerless.containers.image_info
  - module: dockerless.containers.container_run
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Remove an image and free its space
  dockerless.containers.image_remove:
    name: 127.0.0.1:5000/team/app:1

- name: See what removing two images would free
  dockerless.containers.image_remove:
    name:
      - alpine:3.20
      - debian:12
  check_mode: true
  diff: true
  register: plan

- name: Show it
  ansible.builtin.debug:
    msg: "{{ plan.gc.blobs | length }} blobs, {{ plan.gc.layers | length }} layer folders, {{ plan.gc.bytes }} bytes"

- name: Untag only, collect later
  dockerless.containers.image_remove:
    name: 127.0.0.1:5000/team/app:0.9
    gc: false
"""

RETURN = r"""
removed:
  description: The tags removed (in check mode, that would be removed), with the manifest digest each pointed to.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The normalised image name.
      type: str
    digest:
      description: The manifest digest the tag pointed to.
      type: str
  sample: [{name: "127.0.0.1:5000/team/app:1", digest: "sha256:3f4ca00154a8252822208e06966003d95b764438061c1d11c2a2304c9e4fba51"}]
missing:
  description: Requested names that were not in the store.
  returned: always
  type: list
  elements: str
  sample: ["docker.io/library/alpine:3.20"]
gc:
  description: What garbage collection deleted (in check mode, would delete). Empty lists with O(gc=false).
  returned: always
  type: dict
  contains:
    blobs:
      description: Digests of the blobs deleted from C(blobs/sha256/).
      type: list
      elements: str
    layers:
      description: diff_ids of the layer folders deleted from C(layers/sha256/).
      type: list
      elements: str
    bytes:
      description: Size of the deleted blobs (the layer folders are not counted).
      type: int
  sample:
    blobs: ["sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8"]
    layers: ["sha256:94e5f06ff8e3d4441dc3cd8b090ff38dc911bfa8ebdb0dc28395bc98f82f983f"]
    bytes: 3409611
kept_for_containers:
  description:
    - Layers of the removed images that stay because containers use them, by container name (one-shot
      containers running right now are named C(one-shot <id>)).
  returned: always
  type: dict
  sample: {web: ["sha256:94e5f06ff8e3d4441dc3cd8b090ff38dc911bfa8ebdb0dc28395bc98f82f983f"]}
store:
  description: The store that was changed.
  returned: always
  type: str
  sample: /var/lib/dockerless
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
  sample: ["untag 127.0.0.1:5000/team/app:1 (sha256:3f4c...)", "delete 3 blobs (3409611 bytes) and 1 layer folder"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="list", elements="str", required=True),
            gc=dict(type="bool", default=True),
            **STORE_ARGS,
        ),
        supports_check_mode=True,
    )
    store_lib = engine_loader.load_for(module, "image.store")
    store = store_lib.Store(module.params["store"])
    result = store_lib.RemoveResult()
    try:
        store_lib.remove_images(store, module.params["name"], gc=module.params["gc"], check_mode=module.check_mode,
                                result=result)
    except DockerlessError as exc:
        module.fail_json(msg=f"removing {', '.join(module.params['name'])} from the store {store.root}: {exc}",
                         removed=result.removed, missing=result.missing, actions=result.actions)
    module.exit_json(changed=result.changed, removed=result.removed, missing=result.missing, gc=result.gc,
                     kept_for_containers=result.kept_for_containers, store=store.root, actions=result.actions,
                     diff=result.diff)


if __name__ == "__main__":
    main()
