#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_push
short_description: Push an image from the local store to a Docker/OCI registry, without Docker
version_added: 0.1.0
description:
  - Uploads an image of the local store (see M(dockerless.containers.image_pull) and
    M(dockerless.containers.image_build)) over the Distribution API v2.
  - Idempotent by digest. The tag's manifest is asked for with a C(HEAD) request; when it already is the image's
    digest nothing else happens and the task reports no change.
  - Otherwise each blob is checked with a C(HEAD) request, blobs known to be in another repository of the same
    registry are mounted from there (no upload), the rest is uploaded in parallel, streamed from the store
    (monolithic for small blobs, in chunks for large ones), and the manifest is put for every tag.
  - After a push the target is recorded in the store, so pushing the same layers to another repository of that
    registry later mounts them instead of uploading them again.
extends_documentation_fragment:
  - dockerless.containers.registry
  - dockerless.containers.store
attributes:
  check_mode:
    support: full
    description: Asks the registry which tags and blobs are missing (C(HEAD) requests); uploads nothing.
  diff_mode:
    support: full
    description: Shows the digest the registry had for each tag before, and the image's digest after.
  idempotent:
    support: full
    description: A second run with the same image and tags makes only C(HEAD) requests and reports no change.
options:
  name:
    description:
      - The image in the store, as it was pulled or built (normalised like Docker does, so C(app:1) is
        C(docker.io/library/app:1)).
    type: str
    required: true
  repository:
    description:
      - Where to push, C(registry[:port]/path/name[:tag]).
      - Without a tag, the tag of O(name) is used. Defaults to O(name) itself.
    type: str
  tags:
    description:
      - More tags of O(repository) to point at the same manifest.
    type: list
    elements: str
    default: []
notes:
  - Registries on loopback may use plain HTTP without O(insecure), as Docker allows.
  - Credentials are looked up in this order; O(username) and O(password), E(DOCKER_USERNAME) and
    E(DOCKER_PASSWORD), then the docker C(config.json) (O(auth_file)). Errors name the source that was tried,
    never the secret.
seealso:
  - module: dockerless.containers.image_pull
  - module: dockerless.containers.image_info
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Push an image to the registry its name points at
  dockerless.containers.image_push:
    name: 127.0.0.1:5000/team/app:1

- name: Push a local build to Docker Hub under two tags (credentials from DOCKER_USERNAME/DOCKER_PASSWORD)
  dockerless.containers.image_push:
    name: app:1
    repository: docker.io/myuser/app:1.0
    tags: [latest]

- name: Push to a private registry with its own CA and explicit credentials
  dockerless.containers.image_push:
    name: app:1
    repository: registry.example.com:5000/team/app
    username: deploy
    password: "{{ vault_registry_password }}"
    ca_path: /etc/pki/registry-ca.pem

- name: See what a push would upload
  dockerless.containers.image_push:
    name: app:1
    repository: registry.example.com:5000/team/app:1
  check_mode: true
  register: plan
"""

RETURN = r"""
image:
  description: The pushed image and where it now is.
  returned: success
  type: dict
  contains:
    name:
      description: The image's name in the store.
      type: str
    digest:
      description: The manifest digest, the same locally and in the registry.
      type: str
    media_type:
      description: The manifest's media type.
      type: str
    repository:
      description: The target repository, normalised.
      type: str
    tags:
      description: The references that point at the manifest (or would, in check mode).
      type: list
      elements: str
  sample:
    name: docker.io/library/app:1
    digest: sha256:0f5a2d8e8a1a2b5b0b4b2b8bd1e3d5c5a3f7e0c4d1b2a3c4d5e6f708192a3b4c
    media_type: application/vnd.oci.image.manifest.v1+json
    repository: registry.example.com:5000/team/app
    tags: [registry.example.com:5000/team/app:1, registry.example.com:5000/team/app:latest]
blobs:
  description:
    - What happened to the image's blobs (config and layers), counts and bytes. In check mode, what would happen;
      blobs counted as mounted would be tried as a mount first.
  returned: success
  type: dict
  contains:
    uploaded:
      description: Blobs uploaded.
      type: int
    uploaded_bytes:
      description: Bytes uploaded.
      type: int
    mounted:
      description: Blobs mounted from another repository of the registry.
      type: int
    mounted_bytes:
      description: Bytes of the mounted blobs (not transferred).
      type: int
    present:
      description: Blobs the repository already had.
      type: int
    present_bytes:
      description: Bytes of those blobs.
      type: int
  sample:
    uploaded: 2
    uploaded_bytes: 3409611
    mounted: 1
    mounted_bytes: 1469
    present: 0
    present_bytes: 0
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
  sample:
    - "upload 2 blob(s) (3409611 bytes), mount 1 (1469 bytes) from team/base; 0 already in registry.example.com:5000/team/app"
    - "put manifest sha256:0f5a... as registry.example.com:5000/team/app:1"
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import REGISTRY_ARGS, STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        repository=dict(type="str"),
        tags=dict(type="list", elements="str", default=[]),
        **REGISTRY_ARGS,
        **STORE_ARGS,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    push, store, options = engine_loader.load_for(module, "image.push", "image.store", "registry.options")
    params = module.params
    try:
        result = push.push_image(
            store.Store(params["store"]),
            params["name"],
            repository=params["repository"],
            tags=params["tags"],
            registry=options.RegistryOptions.from_params(params),
            check_mode=module.check_mode,
        )
    except DockerlessError as exc:
        module.fail_json(msg=str(exc), actions=[])
    module.exit_json(
        changed=result.changed,
        image=result.image_dict(),
        blobs=result.blobs.as_dict(),
        actions=result.actions,
        diff=dict(
            before={"tags": dict(result.before)},
            after={"tags": {ref: result.digest for ref in result.tags}},
        ),
    )


if __name__ == "__main__":
    main()
