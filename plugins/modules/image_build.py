#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_build
short_description: Build a reproducible image from host executables and files, without Docker
version_added: 0.1.0
description:
  - Makes an image in the local store from what is on the target host. Each executable is copied with its whole
    shared-library closure (ELF interpreter, C(DT_NEEDED) libraries found through C(DT_RPATH)/C(DT_RUNPATH)
    with C($ORIGIN), C(ld.so.conf) and the default directories) at the same absolute paths as on the host,
    symlinks on the way kept as symlinks. The binaries are parsed, never executed.
  - The new layer is a sorted tar with fixed mtimes (O(source_date_epoch)), numeric owners and no host metadata;
    config and manifest are canonical JSON. The same inputs over the same files give the same digest, so the
    task reports a change only when O(name) does not already point at the result.
  - The result is an OCI image (C(application/vnd.oci.image.manifest.v1+json)) that C(skopeo) and C(umoci) read
    from the store. Its layer is stored as a blob only; M(dockerless.containers.container_run) and
    M(dockerless.containers.wsl_export) unpack it from the blob when they first use the image.
extends_documentation_fragment:
  - dockerless.containers.store
attributes:
  check_mode:
    support: full
    description: Reads the inputs and computes the digest the build would have; writes nothing.
  diff_mode:
    support: full
    description: Shows the manifest digest and the list of paths in the new layer, before and after.
  idempotent:
    support: full
    description: A second run over unchanged files gives the same digest and reports no change.
options:
  name:
    description:
      - The reference to tag the result with, for example C(127.0.0.1:5000/me/tools:1). Normalised like Docker
        does (C(tools) is C(docker.io/library/tools:latest)).
    type: str
    required: true
  executables:
    description:
      - Host paths, or names looked up on O(search_path), of the executables to copy with their libraries.
      - A script brings the interpreter of its C(#!) line (and, for C(#!/usr/bin/env NAME), C(NAME)); the RV(notes) return value says so.
      - Libraries loaded at run time with C(dlopen) (NSS modules, plugins) are not found; add them with O(files).
    type: list
    elements: str
    default: []
  files:
    description:
      - Host files, directories and symlinks to copy. Symlinks are copied as symlinks and never followed, also
        inside directories; devices, FIFOs and sockets are refused.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Absolute host path.
        type: path
        required: true
      dest:
        description:
          - Absolute path in the image. With a trailing C(/), the basename of O(files[].src) is appended.
          - C(..) is refused, and so is a dest that would pass through a symlink already in the image.
        type: str
        required: true
      mode:
        description:
          - Octal permission bits (quote them, V('0755')) for a file or a directory's top level; files inside a
            directory keep their host mode. Default is the host mode.
        type: raw
      owner:
        description: Numeric uid for everything this item adds. Default V(0).
        type: raw
      group:
        description: Numeric gid for everything this item adds. Default V(0).
        type: raw
      follow:
        description: Resolve O(files[].src) when it is a symlink and copy what it points to (top level only).
        type: bool
        default: false
  base:
    description:
      - An image in the store to build on (pull it first with M(dockerless.containers.image_pull)). Its layers
        are reused unchanged, the new layer goes on top, and its config is the starting point.
    type: str
  env:
    description: Environment variables, added to (or replacing those of) the base. C(PATH) defaults to the usual list.
    type: dict
    default: {}
  entrypoint:
    description: The entrypoint. Setting it without O(cmd) drops the base's C(Cmd), as a Dockerfile does.
    type: list
    elements: str
  cmd:
    description: The default command (or the arguments to O(entrypoint)).
    type: list
    elements: str
  workdir:
    description: The working directory.
    type: str
  user:
    description: The user (C(uid), C(uid:gid) or a name from the image's own C(/etc/passwd)).
    type: str
  labels:
    description: Labels, merged with those of the base.
    type: dict
    default: {}
  exposed_ports:
    description: Ports like V(8080) or V(53/udp).
    type: list
    elements: str
    default: []
  volumes:
    description: Absolute paths of volumes.
    type: list
    elements: str
    default: []
  compression:
    description:
      - Layer compression. V(gzip) works everywhere; V(zstd) needs the C(zstd) command (or the Python
        C(zstandard) module) and a consumer that supports it.
    type: str
    choices: [gzip, zstd]
    default: gzip
  compression_level:
    description: Compression level; defaults favour speed (gzip V(1), zstd V(3)).
    type: int
  source_date_epoch:
    description:
      - Seconds since 1970 used as every file's mtime and as the config's C(created) time.
      - Defaults to the E(SOURCE_DATE_EPOCH) environment variable, else V(0).
    type: int
  search_path:
    description: Directories searched for O(executables) given by name, in order.
    type: list
    elements: path
    default: [/usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin]
notes:
  - The digest is reproducible for the same files, options and compression library; a different zlib or zstd
    version may compress the same tar into other bytes (the C(diff_id) stays the same).
  - The architecture and OS come from the executables' ELF headers; executables of different classes or machines
    are refused. Without executables they come from the base, else from the target host.
seealso:
  - module: dockerless.containers.image_pull
  - module: dockerless.containers.image_push
  - module: dockerless.containers.wsl_export
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: An image holding only bash and ls (and their libraries)
  dockerless.containers.image_build:
    name: 127.0.0.1:5000/me/tools:1
    executables: [bash, ls]
    cmd: [bash]

- name: A service on top of busybox, with its configuration
  dockerless.containers.image_build:
    name: 127.0.0.1:5000/me/app:2
    base: docker.io/library/busybox:latest
    executables: [/usr/local/bin/app]
    files:
      - src: /etc/app/app.conf
        dest: /etc/app/app.conf
        mode: "0640"
        owner: 1000
        group: 1000
      - src: /srv/app/static
        dest: /srv/static
    env:
      APP_MODE: production
    entrypoint: [/usr/local/bin/app]
    exposed_ports: ["8080"]
    user: "1000:1000"
    labels:
      org.opencontainers.image.source: https://example.com/app

- name: Same inputs, pinned time, zstd layers
  dockerless.containers.image_build:
    name: 127.0.0.1:5000/me/tools:1-zstd
    executables: [bash]
    compression: zstd
    source_date_epoch: 1700000000
"""

RETURN = r"""
image:
  description: The built image (or the one check mode would build), in the same form as M(dockerless.containers.image_pull).
  returned: success
  type: dict
  sample:
    name: 127.0.0.1:5000/me/tools:1
    digest: sha256:3f4ca00154a8252822208e06966003d95b764438061c1d11c2a2304c9e4fba51
    remote_digest: null
    media_type: application/vnd.oci.image.manifest.v1+json
    config_digest: sha256:6b1c8f0f6a2e4b8fd5f7a1e59fdc18e0c8d5d5b0aa0c8d6e8a3a8b0b7d2f4f11
    platform: linux/amd64
    layers:
      - digest: sha256:cffd38630efb04d113ac2726c90c9eb6bc539857bd1347d4608d7f2af8d67e6a
        diff_id: sha256:0f3c1e5b8fa1f1e8b3c9b3d1c86a0e4c5f8de1b7f9a1f7c3f2d1b0a9e8c7d6b5
        size: 1714218
        media_type: application/vnd.oci.image.layer.v1.tar+gzip
    size: 1715092
    created: "1970-01-01T00:00:00Z"
    config:
      env: [PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]
      entrypoint: null
      cmd: [bash]
      workdir: ""
      user: ""
      labels: {}
      exposed_ports: []
      volumes: []
files:
  description: Every path in the new layer (executables, libraries, symlinks, directories and O(files)), sorted.
  returned: success
  type: list
  elements: str
  sample: [/lib, /lib64, /usr, /usr/bin, /usr/bin/bash, /usr/lib/x86_64-linux-gnu/libc.so.6]
notes:
  description: What the build decided on its own, such as interpreters added for scripts.
  returned: success
  type: list
  elements: str
  sample: ["/usr/local/bin/run.sh is a script; added its interpreter /bin/sh"]
actions:
  description: What was done, or would be done in check mode.
  returned: success
  type: list
  elements: str
  sample: ["built 127.0.0.1:5000/me/tools:1 sha256:3f4ca001..."]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import DEFAULT_SEARCH_PATH
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        executables=dict(type="list", elements="str", default=[]),
        files=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                src=dict(type="path", required=True),
                dest=dict(type="str", required=True),
                mode=dict(type="raw"),
                owner=dict(type="raw"),
                group=dict(type="raw"),
                follow=dict(type="bool", default=False),
            ),
        ),
        base=dict(type="str"),
        env=dict(type="dict", default={}),
        entrypoint=dict(type="list", elements="str"),
        cmd=dict(type="list", elements="str"),
        workdir=dict(type="str"),
        user=dict(type="str"),
        labels=dict(type="dict", default={}),
        exposed_ports=dict(type="list", elements="str", default=[]),
        volumes=dict(type="list", elements="str", default=[]),
        compression=dict(type="str", choices=["gzip", "zstd"], default="gzip"),
        compression_level=dict(type="int"),
        source_date_epoch=dict(type="int"),
        search_path=dict(type="list", elements="path", default=list(DEFAULT_SEARCH_PATH)),
        store=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    build, store = engine_loader.load_for(module, "image.build", "image.store")
    p = module.params
    try:
        files = [
            build.FileSpec(
                src=f["src"],
                dest=f["dest"],
                mode=build.parse_mode(f["mode"], f"files[{i}]"),
                owner=build.parse_id(f["owner"], f"files[{i}].owner"),
                group=build.parse_id(f["group"], f"files[{i}].group"),
                follow=f["follow"],
            )
            for i, f in enumerate(p["files"])
        ]
        spec = build.BuildSpec(
            name=p["name"],
            executables=p["executables"],
            files=files,
            base=p["base"],
            env={str(k): ("" if v is None else str(v)) for k, v in p["env"].items()},
            entrypoint=p["entrypoint"],
            cmd=p["cmd"],
            workdir=p["workdir"],
            user=p["user"],
            labels={str(k): str(v) for k, v in p["labels"].items()},
            exposed_ports=p["exposed_ports"],
            volumes=p["volumes"],
            compression=p["compression"],
            compression_level=p["compression_level"],
            source_date_epoch=p["source_date_epoch"],
            search_path=p["search_path"],
        )
        result = build.build_image(store.Store(p["store"]), spec, check_mode=module.check_mode, want_diff=module._diff)
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    output = dict(
        changed=result.changed,
        image=result.image,
        files=result.files,
        notes=result.notes,
        actions=result.actions,
    )
    if result.diff is not None:
        output["diff"] = result.diff
    module.exit_json(**output)


if __name__ == "__main__":
    main()
