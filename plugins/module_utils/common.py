# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the options that several modules share. In every module's payload (with engine_loader and
errors): no import of the engine here, not even for typing, since Ansible ships whatever a module imports."""

from __future__ import annotations

REGISTRY_ARGS = dict(
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    auth_file=dict(type="path"),
    insecure=dict(type="bool", default=False),
    ca_path=dict(type="path"),
    timeout=dict(type="int", default=60),
)

STORE_ARGS = dict(store=dict(type="path"))

# Where image_build looks for executables named without a path (its search_path option; image/elf.py).
DEFAULT_SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# The namespaces a container can have (container_run's namespaces option; runtime/spec.py builds them).
ALL_NAMESPACES = ("pid", "mount", "uts", "ipc", "net", "cgroup")
