# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local store option shared by every module."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  store:
    description:
      - Root of the local image store, an OCI image layout.
      - Defaults to C(/var/lib/dockerless) when running as root and C($XDG_DATA_HOME/dockerless)
        (C(~/.local/share/dockerless)) otherwise.
    type: path
"""
