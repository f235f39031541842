# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by every module that talks to a registry."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User name for the registry.
      - When not set, E(DOCKER_USERNAME) and E(DOCKER_PASSWORD) are used, then the C(auths) entry of the
        docker configuration file (O(auth_file)).
    type: str
  password:
    description:
      - Password or token for the registry. Never logged or returned.
    type: str
  auth_file:
    description:
      - A docker C(config.json) to read credentials from.
      - Defaults to C($DOCKER_CONFIG/config.json), then C(~/.docker/config.json).
    type: path
  insecure:
    description:
      - Allow plain HTTP and unverified TLS for this registry.
      - Registries on loopback (C(localhost), C(127.0.0.0/8), C(::1)) may use plain HTTP without it, as Docker allows.
    type: bool
    default: false
  ca_path:
    description:
      - A PEM file of CA certificates to verify the registry's TLS certificate with.
      - Without it the registry's certificate is checked against the host's trust store (as Docker does), or the
        bundle named by E(REQUESTS_CA_BUNDLE) when that is set.
    type: path
  timeout:
    description:
      - Seconds to wait for the registry on each request.
    type: int
    default: 60
"""
