# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry authentication: ``WWW-Authenticate`` challenges (RFC 7235), Basic, and Docker's scoped Bearer tokens
(distribution ``docs/spec/auth/token.md``), as a layer of the transport stack.

``Auth`` wraps the redirect-following transport: it adds the Authorization that the registry's challenge asks
for, and on a 401 from the registry adopts the new challenge and sends the request once more with a fresh token
(``insufficient_scope``, an expired token). Rules:

* Basic credentials go to the registry's own origin only (the redirect layer drops Authorization elsewhere);
  refused Basic credentials are not sent again;
* a Bearer token is fetched at the realm for ``repository:<name>:pull[,push]``, cached by scope and reused
  while valid (with a margin before its expiry);
* credentials are withheld from a realm on plain http when the registry is on https, and from a realm URL that
  carries userinfo; the error then says so (never the credentials themselves).

go-containerregistry's ``transport/bearer.go`` and ``basic.go`` have the same role."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ansible_collections.dockerless.containers.plugins.module_utils.errors import AuthError
from ansible_collections.dockerless.containers.plugins.module_utils.records import Factory, Record, json_loads
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import (
    raise_for,
    read_capped,
    redact_url,
)

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import Credentials

MAX_TOKEN_BODY = 2**20
_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


# --- WWW-Authenticate -------------------------------------------------------------------------------------------


class Challenge(Record):
    """One challenge of a ``WWW-Authenticate`` header: ``scheme`` lower-cased, ``params`` keys lower-cased."""

    FROZEN = True
    scheme: str
    params: Mapping[str, str] = Factory(dict)


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235) into challenges.

    Handles several challenges in one header (``Basic realm="x", Bearer realm="y"``), quoted values holding
    commas (``scope="repository:a:pull,push"``) and backslash escapes. Unknown garbage is skipped.
    """
    challenges: list[Challenge] = []
    params: dict[str, str] = {}
    i, n = 0, len(value or "")
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        m = _TOKEN_CHARS.match(value, i)
        if not m:
            i += 1
            continue
        name, i = m.group(0), m.end()
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and challenges:
            i = j + 1
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                i += 1
                chars = []
                while i < n and value[i] != '"':
                    if value[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(value[i])
                    i += 1
                i += 1
                params[name.lower()] = "".join(chars)
            else:
                m = re.compile(r"[^,\s]*").match(value, i)
                params[name.lower()] = m.group(0)
                i = m.end()
        else:
            params = {}
            challenges.append(Challenge(name.lower(), params))
    return challenges


def pick_challenge(challenges: list[Challenge]) -> Challenge | None:
    for wanted in ("bearer", "basic"):
        for ch in challenges:
            if ch.scheme == wanted:
                return ch
    return None


# --- scopes -------------------------------------------------------------------------------------------------------


def scope_atoms(scope: str) -> frozenset[str]:
    """``repository:a/b:pull,push`` (space-separated for several) → {``repository:a/b:pull``, ``…:push``}."""
    atoms = set()
    for item in (scope or "").split():
        kind, sep, rest = item.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not name:
            continue
        for action in actions.split(","):
            if action:
                atoms.add(f"{kind}:{name}:{action}")
    return frozenset(atoms)


def scope_strings(atoms: frozenset[str]) -> list[str]:
    """The inverse of ``scope_atoms``: one ``type:name:a,b`` string per resource, actions sorted."""
    by_resource: dict[str, set[str]] = {}
    for atom in atoms:
        resource, _sep, action = atom.rpartition(":")
        by_resource.setdefault(resource, set()).add(action)
    return [f"{res}:{','.join(sorted(actions))}" for res, actions in sorted(by_resource.items())]


def repository_scope(repository: str, *actions: str) -> frozenset[str]:
    return frozenset(f"repository:{repository}:{a}" for a in actions)


class Token(Record):
    _NO_REPR = ("value",)
    value: str
    atoms: frozenset[str]
    expires_at: float


# --- the layer ----------------------------------------------------------------------------------------------------


class Auth:
    """The authentication layer: ``send(request)`` with the Authorization the registry's challenge asks for.

    ``endpoint`` is the registry's ``ping.Endpoint`` (scheme, origin, the client's lock). ``inner`` follows
    redirects and attaches ``request.auth_header`` on the registry's origin only. ``token_transport`` (set by the
    client once the stack is built) sends the token requests: the retrying stack
    without this layer. ``challenge`` is None until the ping (or a first 401) learns it; ``Challenge("none")``
    when the registry is open."""

    def __init__(self, inner: Any, endpoint: Any, credentials: Credentials):
        self.inner = inner
        self.endpoint = endpoint
        self.credentials = credentials
        self.token_transport: Any = None
        self.challenge: Challenge | None = None
        self._tokens: list[Token] = []
        self._withheld: str | None = None

    def send(self, request: Any) -> Any:
        if not request.auth:
            request.auth_header = None
            return self.inner.send(request)
        request.auth_header = self.authorization(request.atoms)
        resp = self.inner.send(request)
        if resp.status_code == 401 and request.replayable and not request.reauthenticated:
            request.reauthenticated = True
            wanted = self.handle_challenge(resp, request.atoms, request.auth_header)
            if wanted is not None:
                resp.close()
                request.atoms = wanted
                request.auth_header = self.authorization(wanted, force=True)
                resp = self.inner.send(request)
        return resp

    def tried(self) -> str:
        """Which credentials were tried, for an error message (their source, never their value)."""
        tried = self.credentials.describe()
        if self._withheld:
            tried += f"; {self._withheld}"
        return tried

    def basic_header(self) -> str:
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def authorization(self, atoms: frozenset[str], force: bool = False) -> str | None:
        with self.endpoint.lock:
            ch = self.challenge
            if ch is None or ch.scheme == "none":
                return None
            if ch.scheme == "basic":
                return None if self.credentials.anonymous else self.basic_header()
            now = time.monotonic()
            self._tokens = [t for t in self._tokens if t.expires_at > now]
            if not force:
                for token in reversed(self._tokens):
                    if atoms <= token.atoms:
                        return f"Bearer {token.value}"
            token = self._fetch_token(ch, atoms)
            self._tokens.append(token)
            return f"Bearer {token.value}"

    def handle_challenge(self, resp: Any, atoms: frozenset[str], sent: str | None = None) -> frozenset[str] | None:
        """After a 401 from the registry: adopt its challenge and say which scope to ask for, or None to give up.

        ``sent`` is the Authorization that was refused: refused Basic credentials are not sent again."""
        if not self.endpoint.is_registry_origin(resp.url):
            return None
        chosen = pick_challenge(parse_www_authenticate(resp.headers.get("WWW-Authenticate", "")))
        if chosen is None:
            return None
        with self.endpoint.lock:
            self.challenge = chosen
            if chosen.scheme == "basic":
                already_sent = sent is not None and sent.startswith("Basic ")
                return None if self.credentials.anonymous or already_sent else atoms
            # insufficient_scope or an expired token: ask again, with any scope the registry names.
            wanted = atoms | scope_atoms(chosen.params.get("scope", ""))
            self._tokens = [t for t in self._tokens if not atoms <= t.atoms]
            return wanted

    def _fetch_token(self, ch: Challenge, atoms: frozenset[str]) -> Token:
        """Docker's token protocol (distribution docs/spec/auth/token.md): GET realm?service=&scope=…"""
        scopes = scope_strings(atoms)
        what = f"getting a token for {' '.join(scopes) or 'registry access'} on {self.endpoint.registry}"
        realm = ch.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AuthError(
                f"{what}: the registry's Bearer challenge has no usable realm ({redact_url(realm) or 'none'}). "
                "The registry's token auth is misconfigured.",
                status=401,
            )
        send_credentials = not self.credentials.anonymous
        self._withheld = None
        if parts.username is not None or parts.password is not None:
            send_credentials = False
            self._withheld = "the token realm URL carries a user name/password, so the credentials were not sent"
            netloc = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=netloc)
        if parts.scheme == "http" and self.endpoint.scheme == "https":
            send_credentials = False
            self._withheld = (
                "the token realm uses plain http while the registry uses https, so the credentials were not sent"
            )
        if self.credentials.anonymous or send_credentials:
            self._withheld = None
        query = parse_qsl(parts.query, keep_blank_values=True)
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        query.extend(("scope", s) for s in scopes)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        headers = {"Accept": "application/json"}
        if send_credentials:
            headers["Authorization"] = self.basic_header()
        resp = self.token_transport("GET", url, what, headers=headers, auth=False, follow_redirects=True,
                                    token_auth=True)
        with contextlib.closing(resp):
            if resp.status_code != 200:
                raise_for(resp, what, "the token", self.tried, token=True)
            body = read_capped(resp, MAX_TOKEN_BODY, what, "token response")
        try:
            data = json_loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AuthError(f"{what}: the token server answered something that is not a JSON object.", status=200)
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n"):
            raise AuthError(f"{what}: the token server's answer holds no token.", status=200)
        expires_in = data.get("expires_in")
        if not isinstance(expires_in, (int, float)) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = 60  # the token spec's default
        margin = max(5.0, expires_in * 0.1)
        return Token(value, atoms, time.monotonic() + max(expires_in - margin, 1.0))
