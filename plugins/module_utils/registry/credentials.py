# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials: module parameters, DOCKER_USERNAME/DOCKER_PASSWORD, then docker's ``config.json``.

The order is the one the seed's scripts and Docker users expect: explicit parameters win, then the
environment, then the docker configuration file (``credHelpers``, ``credsStore``, then ``auths``). The result
says where the credentials came from (``source``) so errors can name it; the secret itself never appears in a
repr, a message or a note.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Record, json_loads

# The keys Docker itself writes for Docker Hub (`docker login` stores "https://index.docker.io/v1/").
DOCKER_HUB_KEYS = ("index.docker.io", "docker.io", "registry-1.docker.io")
DOCKER_HUB_SERVER_URL = "https://index.docker.io/v1/"
_MAX_CONFIG_SIZE = 4 * 2**20
_HELPER_TIMEOUT = 30

HOW_TO_PROVIDE = (
    "Give username and password, set DOCKER_USERNAME and DOCKER_PASSWORD, or log in with "
    "`docker login` so that config.json (auth_file) holds them."
)


class Credentials(Record):
    """Credentials for one registry; ``source`` names where they came from, never the secret.

    ``source`` is ``parameters``, ``environment``, ``config.json:<path>``,
    ``credential-helper:docker-credential-<name>`` or ``anonymous``. ``notes`` says what was looked at and
    skipped (a missing helper, an unusable entry), for error messages.
    """

    FROZEN = True
    _NO_REPR = ("password",)
    username: str | None = None
    password: str | None = None
    source: str = "anonymous"
    notes: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return not (self.username and self.password is not None)

    def describe(self) -> str:
        """A one-line description for error messages: which source, which user, never the secret."""
        if self.anonymous:
            text = "no credentials (anonymous)"
        else:
            text = f"credentials for user {self.username!r} from {self.source}"
        if self.notes:
            text += " [" + "; ".join(self.notes) + "]"
        return text


def registry_key(text: str) -> str:
    """Normalise a config.json key or registry name to ``host[:port]``, Docker Hub to ``docker.io``.

    ``https://index.docker.io/v1/`` → ``docker.io``; ``http://Registry:5000/v2`` → ``registry:5000``.
    """
    key = text.strip()
    if "://" in key:
        key = key.split("://", 1)[1]
    key = key.split("/", 1)[0].lower()
    if key in DOCKER_HUB_KEYS:
        return "docker.io"
    return key


def _helper_server_url(registry: str) -> str:
    return DOCKER_HUB_SERVER_URL if registry_key(registry) == "docker.io" else registry


def _run_helper(helper: str, registry: str, notes: list[str]) -> Credentials | None:
    """Run ``docker-credential-<helper> get``; None (with a note) when it is absent or has nothing."""
    import shutil  # only for a credential helper: a pull without one imports neither
    import subprocess

    program = f"docker-credential-{helper}"
    if not helper or "/" in helper or helper.startswith("."):
        notes.append(f"credential helper name {helper!r} is invalid; ignored")
        return None
    path = shutil.which(program)
    if path is None:
        notes.append(f"{program} is not on PATH; ignored")
        return None
    try:
        proc = subprocess.run(
            [path, "get"],
            input=_helper_server_url(registry).encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        notes.append(f"{program} get failed ({type(exc).__name__}); ignored")
        return None
    if proc.returncode != 0:
        # The helper prints "credentials not found in native keychain" when it has nothing for this registry;
        # its output may echo input, so it is not copied into the note.
        notes.append(f"{program} has no credentials for {registry} (exit {proc.returncode})")
        return None
    try:
        data = json_loads(proc.stdout[:_MAX_CONFIG_SIZE])
    except ValueError:
        notes.append(f"{program} printed something that is not JSON; ignored")
        return None
    if not isinstance(data, dict):
        notes.append(f"{program} printed an unexpected JSON document; ignored")
        return None
    username, secret = data.get("Username"), data.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not username or not secret:
        notes.append(f"{program} returned no username or secret; ignored")
        return None
    if username == "<token>":
        notes.append(f"{program} returned an identity token, which is not supported; ignored")
        return None
    return Credentials(username, secret, f"credential-helper:{program}", tuple(notes))


def _entry_credentials(entry: object, path: str, key: str, notes: list[str]) -> Credentials | None:
    if not isinstance(entry, dict):
        notes.append(f"{path}: auths entry {key!r} is not an object; ignored")
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            notes.append(f"{path}: auths entry {key!r} has an 'auth' value that is not base64 of user:password; ignored")
            return None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            notes.append(f"{path}: auths entry {key!r} has an 'auth' value without 'user:password'; ignored")
            return None
        return Credentials(username, password, f"config.json:{path}", tuple(notes))
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username and isinstance(password, str):
        return Credentials(username, password, f"config.json:{path}", tuple(notes))
    if entry.get("identitytoken"):
        notes.append(f"{path}: auths entry {key!r} holds an identity token, which is not supported; ignored")
        return None
    notes.append(f"{path}: auths entry {key!r} holds no credentials")
    return None


def _default_config_path(env: Mapping[str, str]) -> str:
    if env.get("DOCKER_CONFIG"):
        return os.path.join(env["DOCKER_CONFIG"], "config.json")
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".docker", "config.json")


def _read_config(path: str, explicit: bool) -> dict | None:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_CONFIG_SIZE + 1)
    except FileNotFoundError:
        if explicit:
            raise DockerlessError(
                f"reading credentials from {path}: the file does not exist. Fix auth_file, or log in with "
                "`docker login` to create it."
            ) from None
        return None
    except OSError as exc:
        raise DockerlessError(
            f"reading credentials from {path}: {exc.strerror}. Check the file's permissions or set auth_file."
        ) from None
    if len(raw) > _MAX_CONFIG_SIZE:
        raise DockerlessError(f"reading credentials from {path}: larger than 4 MiB; is it really a docker config.json?")
    try:
        data = json_loads(raw)
    except ValueError as exc:
        # The position only, never the content: the file holds secrets.
        raise DockerlessError(
            f"reading credentials from {path}: not valid JSON (line {getattr(exc, 'lineno', '?')}). "
            "Fix the file or point auth_file at another one."
        ) from None
    if not isinstance(data, dict):
        raise DockerlessError(f"reading credentials from {path}: expected a JSON object. Fix the file.")
    return data


def _from_config(registry: str, path: str, explicit: bool, notes: list[str]) -> Credentials | None:
    data = _read_config(path, explicit)
    if data is None:
        notes.append(f"{path} does not exist")
        return None
    want = registry_key(registry)

    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if isinstance(key, str) and registry_key(key) == want and isinstance(helper, str):
                found = _run_helper(helper, registry, notes)
                if found is not None:
                    return found
                break
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        found = _run_helper(store, registry, notes)
        if found is not None:
            return found

    auths = data.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if isinstance(key, str) and registry_key(key) == want:
                found = _entry_credentials(entry, path, key, notes)
                if found is not None:
                    return found
    notes.append(f"{path} has no usable entry for {want}")
    return None


def resolve_credentials(
    registry: str,
    username: str | None = None,
    password: str | None = None,
    auth_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Credentials:
    """Find the credentials for ``registry`` (``host[:port]``, e.g. ``registry-1.docker.io``).

    Order: ``username``/``password`` → ``DOCKER_USERNAME``/``DOCKER_PASSWORD`` from ``env`` (default
    ``os.environ``) → docker ``config.json`` (``auth_file``, else ``$DOCKER_CONFIG/config.json``, else
    ``~/.docker/config.json``): ``credHelpers`` entry for the registry, ``credsStore``, then ``auths`` (base64
    ``auth`` or ``username``/``password``). Docker Hub's keys all match Docker Hub. A helper that is not on PATH
    is skipped with a note. Returns anonymous Credentials when nothing matches.
    """
    if env is None:
        env = os.environ
    if username is not None or password is not None:
        if not username or password is None:
            missing = "password" if username else "username"
            raise DockerlessError(
                f"credentials for {registry}: {missing} is missing; give both username and password, or neither "
                "to use DOCKER_USERNAME/DOCKER_PASSWORD or config.json."
            )
        return Credentials(username, password, "parameters")

    notes: list[str] = []
    env_user, env_password = env.get("DOCKER_USERNAME"), env.get("DOCKER_PASSWORD")
    if env_user and env_password is not None and env_password != "":
        return Credentials(env_user, env_password, "environment")
    if env_user or env_password:
        notes.append("only one of DOCKER_USERNAME/DOCKER_PASSWORD is set; ignored")

    path = auth_file or _default_config_path(env)
    found = _from_config(registry, os.path.expanduser(path), bool(auth_file), notes)
    if found is not None:
        return found
    return Credentials(source="anonymous", notes=tuple(notes))
