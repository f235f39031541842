# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the module fronts (argument specs of shared options). No AnsibleModule import here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry client is imported by the modules that talk to registries, not by every module
    from ansible_collections.dockerless.containers.plugins.module_utils.registry.options import RegistryOptions

REGISTRY_ARGS = dict(
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    auth_file=dict(type="path"),
    insecure=dict(type="bool", default=False),
    ca_path=dict(type="path"),
    timeout=dict(type="int", default=60),
)

STORE_ARGS = dict(store=dict(type="path"))


def registry_options(params: dict) -> RegistryOptions:
    from ansible_collections.dockerless.containers.plugins.module_utils.registry.options import (  # pylint: disable=import-outside-toplevel
        RegistryOptions,
    )

    return RegistryOptions(
        username=params.get("username"),
        password=params.get("password"),
        auth_file=params.get("auth_file"),
        insecure=bool(params.get("insecure")),
        ca_path=params.get("ca_path"),
        timeout=params.get("timeout") or 60,
    )
