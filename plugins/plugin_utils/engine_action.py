# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of every module of the collection: run the thin module with the engine's digest in its
environment; when the host has no copy of that engine, run engine_install once, then the module again.

The digest goes in the module's environment (``DOCKERLESS_ENGINE_DIGEST``), not in an option: an option would show
in every result's ``invocation.module_args`` and in every module's documentation, and a user could set it; an
environment variable added to the task's own ``environment`` reaches the module through every connection, with
become, delegate_to and async alike, and the module's arguments and results stay what they were."""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader

MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
INSTALLER = "dockerless.containers.engine_install"

_digests: dict[tuple, str] = {}


def engine_digest(module_utils: str = MODULE_UTILS) -> str:
    """sha256 over the module_utils sources (relative path and content of each ``.py``, sorted), cached per process
    by the files' (path, size, mtime): the engine version a host must have."""
    files = []
    for folder, dirs, names in os.walk(module_utils):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                st = os.stat(path)
                files.append((os.path.relpath(path, module_utils), st.st_size, st.st_mtime_ns))
    key = tuple(files)
    if key not in _digests:
        digest = hashlib.sha256()
        for rel, _size, _mtime in files:
            with open(os.path.join(module_utils, rel), "rb") as handle:
                digest.update(rel.encode() + b"\0" + handle.read() + b"\0")
        _digests[key] = digest.hexdigest()
    return _digests[key]


class EngineAction(ActionBase):
    """Runs the module of the task's action as ansible.builtin.normal does, the engine installed on demand."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        wrap_async = self._task.async_val and not self._connection.has_native_async
        digest = engine_digest()
        environment = self._task.environment
        try:
            self._task.environment = self._with_env(environment, {engine_loader.DIGEST_ENV: digest})
            if wrap_async:
                # An async run reports back only when polled: first ask, synchronously, whether the engine is there.
                probe_env = {engine_loader.DIGEST_ENV: digest, engine_loader.PROBE_ENV: "1"}
                self._task.environment = self._with_env(environment, probe_env)
                probe = self._execute_module(task_vars=task_vars)
                self._task.environment = self._with_env(environment, {engine_loader.DIGEST_ENV: digest})
                if probe.get(engine_loader.MISSING_KEY):
                    self._install(digest, task_vars)
                elif probe.get(engine_loader.PROBE_KEY) != "present":
                    return merge_hash(result, probe)  # the arguments were refused, or the module failed
                module_result = self._execute_module(task_vars=task_vars, wrap_async=True)
            else:
                module_result = self._execute_module(task_vars=task_vars)
                if module_result.get(engine_loader.MISSING_KEY):
                    self._install(digest, task_vars)
                    module_result = self._execute_module(task_vars=task_vars)
        finally:
            self._task.environment = environment
        result = merge_hash(result, module_result)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    @staticmethod
    def _with_env(environment, extra: dict) -> list:
        """The task's environment (a dict, a list of them, or None) with ``extra`` last, so it wins."""
        if environment is None:
            environment = []
        elif not isinstance(environment, list):
            environment = [environment]
        return [*environment, extra]

    def _install(self, digest: str, task_vars) -> None:
        """engine_install on the host; its ``changed`` is not the task's (the engine is a cache, not state)."""
        installed = self._execute_module(module_name=INSTALLER, module_args={"digest": digest}, task_vars=task_vars)
        if installed.get("failed"):
            raise AnsibleActionFail(f"installing the dockerless engine {digest[:12]} on the host: "
                                    f"{installed.get('msg', 'no message')}", result=installed)


class InstallerAction(ActionBase):
    """engine_install: the digest of the controller's engine filled in when the task gives none."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if not args.get("digest"):
            args["digest"] = engine_digest()
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(module_args=args, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
