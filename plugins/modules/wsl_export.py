#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: wsl_export
short_description: Export an image as a WSL distribution (rootfs tar, tar.gz or .wsl)
version_added: 0.1.0
description:
  - Turns an image of the local store into what C(wsl.exe --import) and C(wsl.exe --install --from-file) take,
    a tar whose root is the filesystem root, with whiteouts applied (the flattened image), numeric owners, and
    modes, setuid bits, symlinks and hardlinks kept.
  - The archive is streamed from the image's layer folders; no root filesystem is written to disk.
  - Deterministic (sorted entries, one fixed mtime, gzip without name or time), so the same image and options give
    the same sha256, so O(dest) is only rewritten when its content would change. It is written to a temp file
    beside O(dest) and renamed.
  - Checks the image against Microsoft's recommendations for custom distributions and reports what breaks them
    as task warnings (the C(warnings) key of the result), or fixes it for the rules listed in O(fix).
extends_documentation_fragment:
  - dockerless.containers.store
attributes:
  check_mode:
    support: full
    description:
      - Computes the archive and its sha256 without writing O(dest) and without running C(wsl.exe).
      - Layer folders missing from the store cache are unpacked from the store's blobs.
  diff_mode:
    support: full
    description: Shows the sha256 of O(dest) before and after.
  idempotent:
    support: full
    description: The same image and options give the same bytes; an unchanged O(dest) is not rewritten.
options:
  image:
    description: The image in the store (pull or build it first), e.g. C(docker.io/library/debian:12).
    type: str
    required: true
  dest:
    description: The file to write, C(*.tar), C(*.tar.gz) or C(*.wsl). Its directory must exist.
    type: path
    required: true
  format:
    description:
      - V(tar) (uncompressed), V(tar.gz) or V(wsl) (a gzip-compressed tar, the format WSL 2.4.4+ installs by
        double-click). Defaults to what the extension of O(dest) says.
    type: str
    choices: [tar, tar.gz, wsl]
  default_user:
    description:
      - The user WSL starts as. Created in C(/etc/passwd), C(/etc/group) (and C(/etc/shadow) with a locked
        password, C(/etc/gshadow)) with a home directory under C(/home) when missing; written as C([user] default)
        in C(/etc/wsl.conf).
    type: str
  default_uid:
    description: The uid (and gid) of O(default_user) when it is created.
    type: int
    default: 1000
  wsl_conf:
    description:
      - Sections of C(/etc/wsl.conf), each a dict of keys to values, merged over the image's own file, for
        example section C(boot) with C(systemd) set to V(true), or C(network) with C(hostname). A V(null) value
        removes a key.
    type: dict
    default: {}
  distribution_conf:
    description:
      - Sections of C(/etc/wsl-distribution.conf) (WSL 2.4.4+), e.g. C(oobe) (C(command), C(defaultUid),
        C(defaultName)), C(shortcut) (C(enabled), C(icon)), C(windowsterminal) (C(enabled), C(ProfileTemplate)).
        Unknown sections or keys give a warning.
    type: dict
    default: {}
  fix:
    description:
      - Rules of Microsoft's recommendations to fix instead of only warning about. V(resolv_conf) leaves
        C(/etc/resolv.conf) out; V(root_user) adds root (uid 0) to C(/etc/passwd); V(shadow_hashes) locks
        accounts whose C(/etc/shadow) entry holds a password hash; V(config_permissions) makes C(/etc/wsl.conf)
        and C(/etc/wsl-distribution.conf) root:root 0644; V(kernel) leaves kernels and initramfs images out;
        V(systemd_units) masks the units Microsoft lists when systemd is enabled. V(all) means every rule.
    type: list
    elements: str
    choices: [all, resolv_conf, root_user, shadow_hashes, config_permissions, kernel, systemd_units]
    default: []
  import_to:
    description:
      - Import the result into WSL with C(wsl.exe --import NAME LOCATION DEST) when this host is Linux inside WSL
        with Windows interop. Skipped when a distribution of that name is registered. Anywhere else the task
        fails before writing anything, saying where to run the command.
    type: dict
    suboptions:
      name:
        description: The distribution name.
        type: str
        required: true
      install_location:
        description: The Windows folder for the distribution's virtual disk, e.g. C(C:\\WSL\\dev).
        type: str
        required: true
  compression_level:
    description: gzip level for V(tar.gz) and V(wsl).
    type: int
    default: 6
  source_date_epoch:
    description:
      - The mtime of every entry. Defaults to E(SOURCE_DATE_EPOCH), else the image's C(created) time.
    type: int
  mode:
    description: Permissions of O(dest) (it holds C(/etc/shadow)); quote it, V('0600').
    type: raw
    default: '0600'
notes:
  - Run as root; layer folders unpacked without root don't carry the image's owners.
seealso:
  - module: dockerless.containers.image_pull
  - module: dockerless.containers.image_build
  - name: Build a custom Linux distribution for WSL
    description: Microsoft's rules checked here.
    link: https://learn.microsoft.com/windows/wsl/build-custom-distro
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Pack alpine for wsl --import (the seed's "pack" step, done right)
  dockerless.containers.wsl_export:
    image: alpine:3.20
    dest: /srv/export/alpine.tar.gz

- name: A .wsl distribution with systemd, a default user and Microsoft's rules enforced
  dockerless.containers.wsl_export:
    image: docker.io/library/debian:12
    dest: /srv/export/debian.wsl
    default_user: dev
    wsl_conf:
      boot:
        systemd: true
      network:
        hostname: dev
    distribution_conf:
      oobe:
        defaultName: debian-dev
        defaultUid: 1000
      shortcut:
        enabled: true
    fix: [all]

- name: Export and import, from a Linux shell inside WSL
  dockerless.containers.wsl_export:
    image: docker.io/library/debian:12
    dest: /mnt/c/Users/me/debian.tar
    import_to:
      name: debian-dev
      install_location: C:\WSL\debian-dev
"""

RETURN = r"""
dest:
  description: The absolute path of the archive.
  returned: success
  type: str
  sample: /srv/export/debian.wsl
sha256:
  description: sha256 of the archive (what WSL's distribution manifest calls C(Sha256)).
  returned: success
  type: str
  sample: 4cda47297258aa7660fd5c8cc330551b09f36c5f3a21cd38b3776cc3b8f42ff8
size:
  description: Size of the archive in bytes.
  returned: success
  type: int
  sample: 2049339
format:
  description: The format written.
  returned: success
  type: str
  sample: wsl
fixed:
  description: What O(fix) changed in the archive.
  returned: success
  type: list
  elements: str
  sample: ["removed /etc/resolv.conf (WSL generates it)"]
image:
  description: The exported image.
  returned: success
  type: dict
  sample: {name: "docker.io/library/debian:12", digest: "sha256:3f4ca00154a8252822208e06966003d95b764438061c1d11c2a2304c9e4fba51"}
imported:
  description: Whether C(wsl.exe --import) ran (or would run, in check mode).
  returned: success
  type: bool
  sample: false
actions:
  description: What was done, or would be done in check mode.
  returned: success
  type: list
  elements: str
  sample: ["wrote /srv/export/debian.wsl (wsl, sha256 4cda4729...)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    argument_spec = dict(
        image=dict(type="str", required=True),
        dest=dict(type="path", required=True),
        format=dict(type="str", choices=["tar", "tar.gz", "wsl"]),
        default_user=dict(type="str"),
        default_uid=dict(type="int", default=1000),
        wsl_conf=dict(type="dict", default={}),
        distribution_conf=dict(type="dict", default={}),
        fix=dict(
            type="list",
            elements="str",
            default=[],
            choices=["all", "resolv_conf", "root_user", "shadow_hashes", "config_permissions", "kernel", "systemd_units"],
        ),
        import_to=dict(
            type="dict",
            options=dict(name=dict(type="str", required=True), install_location=dict(type="str", required=True)),
        ),
        compression_level=dict(type="int", default=6),
        source_date_epoch=dict(type="int"),
        mode=dict(type="raw", default="0600"),
        store=dict(type="path"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    build, store, export = engine_loader.load_for(module, "image.build", "image.store", "wsl.export")
    p = module.params
    try:
        opts = export.ExportOptions(
            image=p["image"],
            dest=p["dest"],
            format=p["format"],
            default_user=p["default_user"],
            default_uid=p["default_uid"],
            wsl_conf=p["wsl_conf"],
            distribution_conf=p["distribution_conf"],
            fix=p["fix"],
            import_to=p["import_to"],
            compression_level=p["compression_level"],
            source_date_epoch=p["source_date_epoch"],
            mode=0o600 if build.parse_mode(p["mode"], "mode") is None else build.parse_mode(p["mode"], "mode"),
        )
        result = export.export_image(store.Store(p["store"]), opts, check_mode=module.check_mode)
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    # Findings are Ansible warnings (the standard "warnings" result key); passing warnings= is deprecated.
    for warning in result.warnings:
        module.warn(warning)
    module.exit_json(
        changed=result.changed,
        dest=result.dest,
        sha256=result.sha256,
        size=result.size,
        format=result.format,
        fixed=result.fixed,
        image=result.image,
        imported=result.imported,
        actions=result.actions,
        diff=dict(before={"sha256": result.before}, after={"sha256": result.sha256}),
    )


if __name__ == "__main__":
    main()
