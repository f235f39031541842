# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a piece of a test in a network namespace of its own, for the unit tests (network room, the CLI's network
commands) and the integration tests (container_network, published ports, bridge networks): links, addresses,
the firewall table and the processes a test starts there are that namespace's and go with it.

Importable from both suites as ``from netns import in_netns`` (``tests/`` is on ``sys.path`` through
``tests/conftest.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import traceback

from ansible_collections.dockerless.containers.plugins.module_utils import linux


def in_netns(work, setup=(), join: int | None = None):
    """``work()`` in a forked child, in a new network namespace (``join=None``) or in the one process ``join`` is
    in (a namespace held across calls by a sleeping process); ``setup``, commands (argv lists) run there first
    (``ip link set lo up``...). Returns what ``work()`` returned, through JSON (``default=str``); an exception in
    the child fails the caller with the child's traceback."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(read)
        try:
            if join is None:
                linux.unshare(linux.CLONE_NEWNET)
            else:
                fd = os.open(f"/proc/{join}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                linux.setns(fd, linux.CLONE_NEWNET)
                os.close(fd)
            for command in setup:
                subprocess.run(command, check=True)
            out = {"ok": work()}
        except BaseException:  # noqa: BLE001 - reported to the parent
            out = {"error": traceback.format_exc()}
        try:
            os.write(write, json.dumps(out, default=str).encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks))
    assert "error" not in out, out.get("error")
    return out["ok"]
