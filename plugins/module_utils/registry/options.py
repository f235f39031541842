# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection settings of the registry doc fragment, as pull and push receive them."""

from __future__ import annotations

from ansible_collections.dockerless.containers.plugins.module_utils.records import Record
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import resolve_credentials

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import RegistryClient


class RegistryOptions(Record):
    """Connection settings shared by pull and push (module options of the registry doc fragment)."""

    _NO_REPR = ("password",)
    username: str | None = None
    password: str | None = None
    auth_file: str | None = None
    insecure: bool = False
    ca_path: str | None = None
    timeout: float = 60

    @classmethod
    def from_params(cls, params: dict) -> RegistryOptions:
        """The options of a module's parameters (the registry doc fragment's, common.REGISTRY_ARGS)."""
        return cls(
            username=params.get("username"),
            password=params.get("password"),
            auth_file=params.get("auth_file"),
            insecure=bool(params.get("insecure")),
            ca_path=params.get("ca_path"),
            timeout=params.get("timeout") or 60,
        )

    def client(self, registry: str) -> RegistryClient:
        # Imported when a client is made: the options of a module's parameters and a pull that
        # finds its image in the store need the options only, not the HTTP stack.
        from ansible_collections.dockerless.containers.plugins.module_utils.registry.client import (  # pylint: disable=import-outside-toplevel
            RegistryClient,
        )

        creds = resolve_credentials(registry, self.username, self.password, self.auth_file)
        return RegistryClient(registry, creds, insecure=self.insecure, ca_path=self.ca_path, timeout=self.timeout)
