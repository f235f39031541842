# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stdout callback for the integration-test harness: every task result as one JSON line in a file.

``tests/integration/harness.py`` sets ``ANSIBLE_STDOUT_CALLBACK=dockerless_harness`` and
``DOCKERLESS_HARNESS_RESULTS=<file>``; it then reads the results back exactly as Ansible produced them
(``changed``, ``msg``, ``diff``, return values), with the status taken from the event.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase
from ansible.vars.clean import strip_internal_keys

DOCUMENTATION = """
name: dockerless_harness
type: stdout
short_description: write task results as JSON lines for the dockerless test harness
description:
  - Writes one JSON object per task result to the file named by E(DOCKERLESS_HARNESS_RESULTS).
  - Prints one short line per task on stdout.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "dockerless_harness"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("DOCKERLESS_HARNESS_RESULTS")

    def _write(self, status, result):
        data = dict(result._result)
        strip_internal_keys(data)
        data.pop("failed", None)
        data.pop("skipped", None)
        data.pop("unreachable", None)
        record = {
            "task": result._task.get_name(),
            "action": result._task.action,
            "host": result._host.get_name(),
            "status": status,
            "ignore_errors": bool(result._task.ignore_errors),
            "result": data,
        }
        self._display.display(f"{status}: [{record['host']}] {record['task']}")
        if self._path:
            with open(self._path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=str, sort_keys=True) + "\n")

    def v2_runner_on_ok(self, result):
        self._write("changed" if result._result.get("changed") else "ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result)

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._write("unreachable", result)
