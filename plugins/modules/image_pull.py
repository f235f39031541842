#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_pull
short_description: Pull an image from a Docker/OCI registry into the local store, without Docker
version_added: 0.1.0
description:
  - Fetches an image over the Distribution API v2, verifies every manifest and blob against its digest while
    streaming, keeps it in the local store (an OCI image layout that C(skopeo) and C(umoci) can read) and
    unpacks each layer once into its own folder.
  - With O(pull=always) one C(HEAD) request decides. When the tag still points to the digest in the store, nothing
    is downloaded and the task reports no change.
  - Optionally writes the flattened root filesystem to O(dest). The layers are then extracted from their verified
    blobs straight into O(dest), in order, each layer's whiteouts applied to the layers below (every file is
    created once); the store keeps the blobs and makes its layer folders only when a container needs them.
extends_documentation_fragment:
  - dockerless.containers.registry
  - dockerless.containers.store
attributes:
  check_mode:
    support: full
    description: Asks the registry for the tag's digest (a C(HEAD) request); downloads and writes nothing.
  diff_mode:
    support: full
    description: Shows the manifest digest before and after.
  idempotent:
    support: full
    description: A second run with the same tag digest reports no change and downloads nothing.
options:
  name:
    description:
      - The image reference as users write it, normalised like Docker does
        (C(alpine) is C(docker.io/library/alpine:latest)).
      - May pin a digest, C(name@sha256:...).
    type: str
    required: true
  platform:
    description:
      - The platform to pick from a multi-platform image, C(os/arch[/variant]), for example C(linux/arm64).
      - Defaults to the target host's platform.
    type: str
  pull:
    description:
      - V(always) asks the registry for the tag's current digest and downloads only what changed.
      - V(missing) uses the store without any network access when the image is already there.
    type: str
    choices: [always, missing]
    default: always
  dest:
    description:
      - A folder that receives the image's flattened root filesystem (whiteouts applied, owners and modes kept).
      - Rewritten only when the image digest changed; the digest it was written from is recorded in a hidden
        file beside it (C(.<name>.dockerless.json)), never inside it.
      - The top of O(dest) is made private (see O(dest_mode)), whether the task creates it or finds it.
      - The new tree is built beside O(dest) in a private folder and swapped in only when every layer matched
        its diff_id; on any error O(dest) stays as it was.
    type: path
  dest_mode:
    description:
      - Permission bits of the top directory of O(dest). Quote it as an octal string (V("0755")); an unquoted
        YAML number like C(0755) is read as the octal number it is, like the C(mode) of M(ansible.builtin.file).
      - The tree keeps the image's owners and modes, setuid binaries and device nodes included. With the default
        V(0700) only the owner of O(dest) (root, usually) can reach anything inside it, as C(umoci) and
        C(containerd) do with their unpacked trees.
      - A mode that lets other users in, such as V(0755), exposes the image's setuid-root binaries and device
        nodes to every local user. A setuid-root shell of the image is then their root shell, and a C(dev/loop0)
        mode C(0666) their access to the host's disks. Set it only when you trust every local user.
      - An existing O(dest) written from the same image only has its mode changed, which counts as a change.
      - Must keep C(rwx) for the owner; setuid, setgid and sticky bits are refused.
    type: raw
    default: "0700"
notes:
  - Registries on loopback may use plain HTTP without O(insecure), as Docker allows.
  - Run as root to keep owners, device nodes and whiteouts exactly; see the store documentation.
seealso:
  - module: dockerless.containers.image_info
  - module: dockerless.containers.image_push
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Pull alpine from Docker Hub
  dockerless.containers.image_pull:
    name: alpine:3.20

- name: Pull from a private registry with credentials and write the root filesystem
  dockerless.containers.image_pull:
    name: registry.example.com:5000/team/app:1
    username: deploy
    password: "{{ vault_registry_password }}"
    ca_path: /etc/pki/registry-ca.pem
    dest: /srv/rootfs/app

- name: Use the store only, no network when present
  dockerless.containers.image_pull:
    name: 127.0.0.1:5000/library/busybox:latest
    pull: missing

- name: Pull the arm64 image of a multi-platform tag
  dockerless.containers.image_pull:
    name: alpine:latest
    platform: linux/arm64
"""

RETURN = r"""
image:
  description: The image as stored (absent in check mode when it is not in the store yet).
  returned: success
  type: dict
  sample:
    name: docker.io/library/alpine:latest
    digest: sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1
    remote_digest: sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d
    config_digest: sha256:9234e8fb04c47cfe0f49931e4ac7eb76fa904e33b7f8576aec0501c085f02516
    platform: linux/amd64
    layers:
      - digest: sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8
        diff_id: sha256:94e5f06ff8e3d4441dc3cd8b090ff38dc911bfa8ebdb0dc28395bc98f82f983f
        size: 3408729
        media_type: application/vnd.oci.image.layer.v1.tar+gzip
    config:
      env: [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]
      entrypoint: null
      cmd: [/bin/sh]
      workdir: ""
      user: ""
    size: 3409611
rootfs:
  description: The folder holding the flattened root filesystem, when O(dest) is set.
  returned: when O(dest) is set
  type: str
  sample: /root/.docker-internals/library/alpine/latest
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
  sample: ["pulled docker.io/library/alpine:latest sha256:4bcf...: 1 layer(s) downloaded (3408729 bytes)"]
downloaded_bytes:
  description: Compressed bytes downloaded by this run.
  returned: always
  type: int
  sample: 3408729
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import REGISTRY_ARGS, STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        platform=dict(type="str"),
        pull=dict(type="str", choices=["always", "missing"], default="always"),
        dest=dict(type="path"),
        dest_mode=dict(type="raw", default="0700"),
        **REGISTRY_ARGS,
        **STORE_ARGS,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    pull, store, options = engine_loader.load_for(module, "image.pull", "image.store", "registry.options")
    params = module.params
    try:
        dest_mode = pull.parse_dest_mode(params["dest_mode"])
        result = pull.pull_image(
            store.Store(params["store"]),
            params["name"],
            registry=options.RegistryOptions.from_params(params),
            platform=params["platform"],
            policy=params["pull"],
            check_mode=module.check_mode,
            dest=params["dest"],
            dest_mode=dest_mode,
        )
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    output = dict(
        changed=result.changed,
        actions=result.actions,
        downloaded_bytes=result.downloaded_bytes,
        diff=dict(before={"digest": result.before}, after={"digest": result.after}),
    )
    if result.image is not None:
        output["image"] = result.image.as_dict()
    if result.rootfs:
        output["rootfs"] = result.rootfs
    module.exit_json(**output)


if __name__ == "__main__":
    main()
