# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action of container_exec: plugins/plugin_utils/engine_action.py."""

from __future__ import annotations

from ansible_collections.dockerless.containers.plugins.plugin_utils.engine_action import EngineAction


class ActionModule(EngineAction):
    pass
