# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of engine_install: plugins/plugin_utils/engine_action.py."""

from __future__ import annotations

from ansible_collections.dockerless.containers.plugins.plugin_utils.engine_action import InstallerAction


class ActionModule(InstallerAction):
    pass
