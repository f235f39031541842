# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A network namespace per test, for the tests of the network room and the CLI's network commands: links,
addresses and the firewall table a test makes are that namespace's and go with it."""

from __future__ import annotations

import json
import os
import traceback

from ansible_collections.dockerless.containers.plugins.module_utils import linux


def in_own_netns(work):
    """Run ``work()`` in a forked child in a new network namespace; returns its JSON-able result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            linux.unshare(linux.CLONE_NEWNET)
            out = {"ok": work()}
        except BaseException:  # noqa: BLE001 - reported to the parent
            out = {"error": traceback.format_exc()}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    out = json.loads(data)
    assert "error" not in out, out.get("error")
    return out["ok"]
