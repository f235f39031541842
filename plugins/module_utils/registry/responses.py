# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the registry answers, turned into what a user reads: capped body reads, the distribution ``errors[]``
document (spec.md "Error Codes") parsed into ``RegistryError(status=, codes=)``, 401/403 into ``AuthError`` naming
the credential source that was tried (never its value), and URLs redacted wherever they reach a message
(userinfo dropped, queries replaced by ``?…``: upload state and storage signatures are secrets).

go-containerregistry's ``transport/error.go`` (``CheckError``) has the same role."""

from __future__ import annotations

import re
import socket
import sys
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.dockerless.containers.plugins.module_utils.errors import AuthError, RegistryError
from ansible_collections.dockerless.containers.plugins.module_utils.records import json_loads
from ansible_collections.dockerless.containers.plugins.module_utils.registry.credentials import HOW_TO_PROVIDE

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MAX_ERROR_BODY = 2**20
READ_SIZE = 2**16

_URL_IN_TEXT_RE = re.compile(r"(https?://)([^\s'\"/@]*@)?([^\s'\"?#/]*)([^\s'\"?#]*)(\?[^\s'\"#]*)?")
_PATH_QUERY_RE = re.compile(r"(/[^\s'\"?#]*)\?(?!…)[^\s'\"#)]*")

# Hints for distribution error codes (spec.md "Error Codes"), by code, never by message text.
_CODE_HINTS = {
    "BLOB_UNKNOWN": "Check the digest, or push the blob first.",
    "BLOB_UPLOAD_INVALID": "The upload was rejected; it will be retried from a fresh session.",
    "BLOB_UPLOAD_UNKNOWN": "The upload session expired or is unknown to the registry; retry the push.",
    "DIGEST_INVALID": "The uploaded content does not match its digest; the local copy may be corrupt.",
    "MANIFEST_BLOB_UNKNOWN": "The registry lacks a blob the manifest references; push the blobs first.",
    "MANIFEST_INVALID": "The registry rejected the manifest as invalid for its media type.",
    "MANIFEST_UNKNOWN": "Check the name/tag, or push it first.",
    "MANIFEST_UNVERIFIED": "The registry could not verify the manifest signature.",
    "NAME_INVALID": "Check the repository name.",
    "NAME_UNKNOWN": "Check the name/tag, or push it first.",
    "SIZE_INVALID": "The uploaded size does not match the declared size; the local copy may be corrupt.",
    "TAG_INVALID": "Check the tag.",
    "UNSUPPORTED": "The registry does not support this operation (a read-only mirror, or a media type it refuses).",
    "TOOMANYREQUESTS": "The registry rate-limits this client; wait and try again later.",
}


class TooLarge(RegistryError):
    """A capped body went over its cap."""


class BrokenRead(RegistryError):
    """The connection broke while a capped body was read (a fresh request may succeed)."""


class ConnectionFailed(Exception):
    """A request got no response (connect, send, reset, timeout); ``exc`` is the transport's exception, ``tls``
    when the TLS layer failed (handshake, certificate). Raised by the transport, retried (never when ``tls``) and
    reported by ``retry.Retry``."""

    def __init__(self, exc: BaseException, tls: bool = False):
        super().__init__(str(exc))
        self.exc = exc
        self.tls = tls


# --- redaction ----------------------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """A URL fit for messages: no userinfo, and the query (upload state, signatures) replaced by ``?…``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    text = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return text + ("?…" if parts.query else "")


def redact_text(text: str) -> str:
    """Redact URLs inside free text: exception strings from requests/urllib3 embed full URLs and bare paths
    (``… with url: /v2/x/blobs/uploads/u?_state=…``): userinfo dropped, every query replaced by ``?…``."""
    text = _URL_IN_TEXT_RE.sub(lambda m: m.group(1) + m.group(3) + m.group(4) + ("?…" if m.group(5) else ""), text)
    return _PATH_QUERY_RE.sub(lambda m: m.group(1) + "?…", text)


def describe_exc(exc: BaseException) -> str:
    """A connection failure in a few words (the cause chain walked), else its redacted text."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by the server"
        loaded = sys.modules.get("requests")  # never imported just to classify an error
        if isinstance(current, socket.timeout) or (loaded and isinstance(current, loaded.exceptions.Timeout)):
            return "timed out"
        client = sys.modules.get("http.client")  # https only: plain http raises ConnectionResetError subclasses
        if client is not None and isinstance(current, client.RemoteDisconnected):
            return "the server closed the connection without answering"
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        if nxt is None and hasattr(current, "reason") and isinstance(current.reason, BaseException):
            nxt = current.reason
        current = nxt
    return redact_text(str(exc)) or type(exc).__name__


# --- bodies -------------------------------------------------------------------------------------------------------


def read_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a broken body read raises: urllib3's base class only when urllib3 is already loaded (the
    requests transport is in use). Naming ``urllib3.exceptions`` in an ``except`` clause would import it when the
    clause is evaluated, and on a host without urllib3 a cut download of the direct transport would then fail
    with ModuleNotFoundError instead of resuming."""
    loaded = sys.modules.get("urllib3.exceptions")
    client = sys.modules.get("http.client")  # the same for http.client: only https connections load it
    base: tuple[type[BaseException], ...] = (OSError, client.HTTPException) if client is not None else (OSError,)
    return (*base, loaded.HTTPError) if loaded is not None else base


def media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def read_capped(resp: Any, cap: int, op: str, what: str) -> bytes:
    """Read a body of at most ``cap`` bytes; a larger one is refused without being buffered whole."""
    declared = resp.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > cap:
        resp.close()
        raise TooLarge(f"{op}: the {what} is {declared} bytes, over the {cap}-byte limit; refusing it.",
                       status=resp.status_code)
    buf = bytearray()
    try:
        while True:
            chunk = resp.raw.read(min(READ_SIZE, cap + 1 - len(buf)), decode_content=True)
            if not chunk:
                break
            buf += chunk
            if len(buf) > cap:
                resp.close()
                raise TooLarge(f"{op}: the {what} is over the {cap}-byte limit; refusing it.",
                               status=resp.status_code)
    except read_errors() as exc:
        raise BrokenRead(f"{op}: the connection broke while reading the {what} "
                         f"({describe_exc(exc)}). Check the network, then try again.") from None
    return bytes(buf)


# --- error documents ----------------------------------------------------------------------------------------------


def error_document(resp: Any) -> tuple[tuple[str, ...], list[str], bool]:
    """(codes, messages, too_large) of a distribution error body; never more than 1 MiB is read."""
    if resp.request is not None and resp.request.method == "HEAD":
        return (), [], False
    try:
        body = read_capped(resp, MAX_ERROR_BODY, "", "error body")
    except TooLarge:
        return (), [], True
    except RegistryError:
        return (), [], False
    try:
        data = json_loads(body)
    except ValueError:
        return (), [], False
    codes, messages = [], []
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):
        for item in errors[:20]:
            if not isinstance(item, dict):
                continue
            code = item.get("code")
            if isinstance(code, str) and re.fullmatch(r"[A-Z0-9_]{1,64}", code):
                codes.append(code)
            message = item.get("message")
            if isinstance(message, str) and message:
                clean = "".join(c if c.isprintable() else " " for c in message)[:200]
                messages.append(f"{code}: {clean}" if isinstance(code, str) else clean)
    elif isinstance(data, dict) and isinstance(data.get("details"), str):
        messages.append("".join(c if c.isprintable() else " " for c in data["details"])[:200])
    return tuple(codes), messages, False


def raise_for(resp: Any, op: str, what: str, tried: Callable[[], str], *, token: bool = False) -> None:
    """Turn an unexpected response into the right exception; classified by status and error code only.

    ``tried`` says which credentials were tried (asked only for a 401/403)."""
    status = resp.status_code
    codes, messages, too_large = error_document(resp)
    resp.close()
    detail = f"{status}" + (f" {', '.join(codes)}" if codes else "")
    said = f" The registry says: {'; '.join(messages)}." if messages else ""
    if too_large:
        said = " (its error body was over 1 MiB and was not read.)"
    attempts = getattr(resp, "attempts", 1)
    if status in (401, 403):
        where = "token server" if token else "registry"
        if status == 401:
            raise AuthError(
                f"{op}: authentication failed at the {where} ({detail}).{said} Tried {tried()}. {HOW_TO_PROVIDE}",
                status=status, codes=codes)
        raise AuthError(
            f"{op}: access denied by the {where} ({detail}).{said} Tried {tried()}. Check that this account may "
            f"access the repository, or use other credentials. {HOW_TO_PROVIDE}",
            status=status, codes=codes)
    if status == 404:
        raise RegistryError(
            f"{op}: {what} not found ({detail}).{said} Check the name/tag, or push it first.",
            status=status, codes=codes)
    if status == 429:
        raise RegistryError(
            f"{op}: too many requests ({detail}) after {attempts} attempts.{said} The registry rate-limits this "
            "client; wait and try again later, or log in for a higher limit.",
            status=status, codes=codes)
    if status >= 500:
        raise RegistryError(
            f"{op}: the registry failed ({detail}) after {attempts} attempts.{said} Try again later; if it "
            "persists, check the registry's logs.",
            status=status, codes=codes)
    hints = " ".join(dict.fromkeys(_CODE_HINTS[c] for c in codes if c in _CODE_HINTS))
    if status == 415 and not hints:
        hints = "The registry refuses this media type."
    import http.client  # pylint: disable=import-outside-toplevel  # the reason phrase, on this error path only

    raise RegistryError(
        f"{op}: the registry answered {detail} {http.client.responses.get(status, '')}.{said} "
        f"{hints or 'See the registry documentation for this status.'}".rstrip(),
        status=status, codes=codes)
