# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a module finds the engine on the host: the one module_utils file (stdlib only) that a module's payload
carries besides ``errors`` and ``common``.

Ansible packs into a module's payload every module_utils file the module imports, anywhere in its closure, parses
all of them on the controller at every run and the host compiles them again from the zip: for container_run that
was 83 files, 1.15 MB, most of a second per task. So the modules import the engine (``runtime.task``,
``image.pull`` ...) by a computed name that Ansible's finder cannot see, from a copy installed on the host once per
engine version:

* ``<root>/<digest>/ansible_collections/dockerless/containers/plugins/module_utils/...``, compiled ahead to
  ``__pycache__``; ``<digest>`` is the sha256 of the controller's module_utils sources (the action plugins compute
  it and hand it over in the environment variable ``DOCKERLESS_ENGINE_DIGEST``);
* ``<root>`` is ``/usr/local/lib/dockerless/engines`` for root, ``${XDG_CACHE_HOME:-~/.cache}/dockerless/engines``
  for any other user, or ``DOCKERLESS_ENGINE_ROOT`` when set (tests, parallel checkouts);
* a digest directory is used only when it is a real directory owned by the caller's uid, not writable by group or
  others, with the marker file (written last by the installer, ``engine_install``) owned and protected alike:
  anything else (half-made, another user's, loosened) counts as missing and is installed anew.

Without a digest (unit tests, a checkout on ``sys.path``) the engine is imported as it is.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys

PKG = "ansible_collections.dockerless.containers.plugins.module_utils"
DIGEST_ENV = "DOCKERLESS_ENGINE_DIGEST"
ROOT_ENV = "DOCKERLESS_ENGINE_ROOT"
# Set by the action plugin before an async run: the module only says whether the engine is there.
PROBE_ENV = "DOCKERLESS_ENGINE_PROBE"
SYSTEM_ROOT = "/usr/local/lib/dockerless/engines"
MARKER = "ENGINE"
# The result key of a module run that found no usable engine: the action plugin installs it and runs again.
MISSING_KEY = "dockerless_engine_missing"
PROBE_KEY = "dockerless_engine"
# Every engine module the modules load by name, and the command line the systemd units run: what engine_install
# imports (so that its payload carries them all) and installs.
ENGINE_ROOTS = (
    "cgroups.cgroup", "cgroups.limits", "cgroups.manage",
    "cli.main",
    "image.build", "image.elf", "image.pull", "image.push", "image.store",
    "network.manage",
    "registry.options",
    "runtime.containers", "runtime.exec", "runtime.task",
    "wsl.export",
)


class EngineMissing(Exception):
    """No usable engine of ``digest`` in ``root``; ``reason`` says why."""

    def __init__(self, digest: str, root: str, reason: str):
        super().__init__(f"the dockerless engine {digest[:12]} is not installed in {root} ({reason})")
        self.digest = digest
        self.root = root
        self.reason = reason


def engine_root(environ=None, uid: int | None = None) -> str:
    """Where the engines of the calling user live."""
    environ = os.environ if environ is None else environ
    if environ.get(ROOT_ENV):
        return environ[ROOT_ENV]
    uid = os.geteuid() if uid is None else uid
    if uid == 0:
        return SYSTEM_ROOT
    cache = environ.get("XDG_CACHE_HOME")
    if not cache:
        # The user's home from the password database, not HOME: become (sudo, su) may keep the caller's HOME.
        import pwd

        try:
            home = pwd.getpwuid(uid).pw_dir
        except KeyError:
            home = os.path.expanduser("~")
        cache = os.path.join(home, ".cache")
    return os.path.join(cache, "dockerless", "engines")


def module_utils_dir(engine_dir: str) -> str:
    return os.path.join(engine_dir, *PKG.split("."))


def refusal(engine_dir: str, uid: int | None = None) -> str | None:
    """Why ``engine_dir`` must not be used (None: it may): every check on an lstat, so a symlink is refused."""
    uid = os.geteuid() if uid is None else uid
    for path, want_dir in ((engine_dir, True), (os.path.join(engine_dir, MARKER), False)):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "no marker: unfinished or not an engine" if not want_dir else "not installed"
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        if want_dir and not stat.S_ISDIR(st.st_mode) or not want_dir and not stat.S_ISREG(st.st_mode):
            return f"{path} is not a {'directory' if want_dir else 'regular file'}"
        if st.st_uid != uid:
            return f"{path} is owned by uid {st.st_uid}, not {uid}"
        if st.st_mode & 0o022:
            return f"{path} is writable by group or others"
    return None


def _attach(digest: str, root: str) -> None:
    """Put the digest directory's module_utils first in the package's path: the modules already imported from the
    payload (``errors``, ``common``, this one) stay, every other one comes from the compiled engine."""
    if len(digest) != 64 or digest.strip("0123456789abcdef"):
        # Joined into a path below: anything but a sha256 (a "../", a "/") could point out of the root.
        raise EngineMissing(digest, root, "not a sha256 digest (64 hex digits)")
    engine_dir = os.path.join(root, digest)
    reason = refusal(engine_dir)
    if reason is not None:
        raise EngineMissing(digest, root, reason)
    package = sys.modules[PKG] if PKG in sys.modules else importlib.import_module(PKG)
    folder = module_utils_dir(engine_dir)
    paths = list(package.__path__)
    if folder not in paths:
        package.__path__ = [folder] + paths


def load(*names: str, environ=None):
    """The engine modules ``names`` (dotted below module_utils), from the installed engine of the digest in the
    environment, else (no digest: a checkout on ``sys.path``) as they are. Raises EngineMissing."""
    environ = os.environ if environ is None else environ
    digest = environ.get(DIGEST_ENV)
    if digest:
        _attach(digest, engine_root(environ))
    loaded = tuple(importlib.import_module(f"{PKG}.{name}") for name in names)
    return loaded[0] if len(names) == 1 else loaded


def load_for(module, *names: str):
    """``load`` for an AnsibleModule: a missing engine ends the run with MISSING_KEY (for the action plugin), a
    probe (PROBE_ENV) ends it once the engine is found."""
    try:
        loaded = load(*names)
    except EngineMissing as exc:
        module.fail_json(msg=f"{exc}. Run the module through Ansible (its action plugin installs the engine), "
                             "or run dockerless.containers.engine_install.", **{MISSING_KEY: exc.digest})
    if os.environ.get(PROBE_ENV):
        module.exit_json(**{PROBE_KEY: "present"})
    return loaded
