#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_install
short_description: Install the dockerless engine on a host, once per engine version
version_added: 0.1.0
description:
  - The other modules of the collection ship only a small loader to the host and run the engine from a copy
    installed there, one directory per engine version (the sha256 of the collection's module_utils sources).
    Their action plugins run this module by themselves when a host lacks the copy, so a playbook never needs it;
    run it to prepare hosts ahead (an image build, a golden host) or to check an install.
  - The copy goes to C(/usr/local/lib/dockerless/engines/<digest>) for root and to
    C(${XDG_CACHE_HOME:-~/.cache}/dockerless/engines/<digest>) for other users (the environment variable
    C(DOCKERLESS_ENGINE_ROOT) overrides both). It is made in a temp directory beside it, compiled, then renamed
    into place, owned by the user, mode 0755/0644, and never modified afterwards. Besides it, the two newest
    other versions are kept and older ones removed.
  - A directory that is not owned by the user, is writable by group or others, or lacks its marker file is not
    used; an unfinished one of the user's own is made anew, another user's is an error.
attributes:
  check_mode:
    support: full
    description:
      - The engine copy is a cache, not state the task manages, so it is installed in check mode too; the
        modules that need it could not even tell what they would do without it.
  diff_mode:
    support: none
    description: The copy's files are not shown.
  idempotent:
    support: full
    description: A copy of this engine version already there is left alone (C(changed=false)).
options:
  digest:
    description:
      - The engine version, the sha256 of the controller's module_utils sources as 64 hex digits.
      - Left out, the action plugin computes it on the controller, as the other modules' action plugins do.
    type: str
  root:
    description:
      - The directory of the engine copies; see the description for the default.
    type: path
notes:
  - The python that runs this module compiles the copy; another python on the same host compiles its own cache
    files on first use (as root, in the copy).
seealso:
  - module: dockerless.containers.container_run
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Install the engine on new hosts before the first container task
  dockerless.containers.engine_install:
"""

RETURN = r"""
path:
  description: The engine copy's directory.
  returned: always
  type: str
  sample: /usr/local/lib/dockerless/engines/9b0e41c5de2f1f1d0f27f7dd6c6bb3bc0d48c5a3fb84b1b92a8c9f7b2d04e611
digest:
  description: The engine version installed.
  returned: always
  type: str
  sample: 9b0e41c5de2f1f1d0f27f7dd6c6bb3bc0d48c5a3fb84b1b92a8c9f7b2d04e611
removed:
  description: Older versions removed from the root.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_files, engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def _payload():  # pragma: no cover - never called
    """Ansible ships to the host only the module_utils a module imports (anywhere in it): these imports put every
    engine module of engine_loader.ENGINE_ROOTS, and all they import, into this module's payload, from which the
    copy is made. Keep in step with ENGINE_ROOTS (a unit test checks)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.cgroups import cgroup, limits, manage
    from ansible_collections.dockerless.containers.plugins.module_utils.cli import main as cli_main
    from ansible_collections.dockerless.containers.plugins.module_utils.image import build, elf, pull, push, store
    from ansible_collections.dockerless.containers.plugins.module_utils.network import manage as network_manage
    from ansible_collections.dockerless.containers.plugins.module_utils.registry import options
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import containers, task
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime import exec as runtime_exec
    from ansible_collections.dockerless.containers.plugins.module_utils.wsl import export

    return (cgroup, limits, manage, cli_main, build, elf, pull, push, store, network_manage, options, containers,
            task, runtime_exec, export)


def main() -> None:
    module = AnsibleModule(argument_spec=dict(digest=dict(type="str"), root=dict(type="path")),
                           supports_check_mode=True)
    digest = module.params["digest"]
    if not digest:
        module.fail_json(msg="engine_install: no digest. Run it through Ansible (its action plugin computes the "
                             "digest on the controller), or give the digest option.")
    root = module.params["root"] or engine_loader.engine_root()
    try:
        result = engine_files.install_engine(root, digest, engine_files.engine_sources())
    except (DockerlessError, OSError) as exc:
        module.fail_json(msg=f"installing the engine in {root}: {exc}")
    module.exit_json(digest=digest, **result)


if __name__ == "__main__":
    main()
