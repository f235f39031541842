# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded retries, as the outer layer of the transport stack.

429 (Retry-After in seconds or as an HTTP date, capped), 502/503/504 and connection failures are sent again
with exponential backoff, for requests whose body can be sent again (``replayable``); 401/403/404 never. A TLS
failure is never retried and never falls back to anything: it is reported with what to fix.

go-containerregistry's ``transport/retry.go`` has the same role."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RegistryError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import (
    ConnectionFailed,
    describe_exc,
    redact_text,
)

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from typing import Any

RETRY_STATUSES = (429, 502, 503, 504)


class Backoff:
    """How long to wait before attempt ``attempt + 1``; shared by the retry layer, the upload restarts and the
    download resumes (the client's ``max_retries`` bounds them all)."""

    def __init__(self, max_retries: int, backoff_base: float, retry_after_cap: float):
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.retry_after_cap = float(retry_after_cap)

    def sleep(self, attempt: int) -> None:
        import random  # pylint: disable=import-outside-toplevel  # only a retry waits; random and email cost a pull

        delay = min(self.backoff_base * (2**attempt), 30.0)
        time.sleep(delay * (1 + random.random() * 0.1))

    def delay_for(self, resp: Any, attempt: int) -> float:
        """The wait the response asks for (``Retry-After``), else the backoff; never over the cap."""
        value = resp.headers.get("Retry-After")
        delay: float | None = None
        if value:
            value = value.strip()
            if value.isdigit():
                delay = float(value)
            else:
                import email.utils  # pylint: disable=import-outside-toplevel  # an HTTP date: rare, and on a retry

                try:
                    when = email.utils.parsedate_to_datetime(value)
                    delay = when.timestamp() - time.time()
                except (TypeError, ValueError, IndexError, OverflowError):
                    delay = None
        if delay is None:
            delay = self.backoff_base * (2**attempt)
        return max(0.0, min(delay, self.retry_after_cap))


class Retry:
    """``send(request)`` through ``inner`` (the auth layer), again on a retryable failure while attempts remain.

    The response carries ``attempts`` (how many were sent) for the error message of a final 429/5xx."""

    def __init__(self, inner: Any, backoff: Backoff, registry: str):
        self.inner = inner
        self.backoff = backoff
        self.registry = registry

    def send(self, request: Any) -> Any:
        attempt = 0
        while True:
            try:
                resp = self.inner.send(request)
            except ConnectionFailed as failed:
                if failed.tls:
                    raise RegistryError(
                        f"{request.op}: TLS with {urlsplit(request.url).netloc.rpartition('@')[2]} failed "
                        f"({redact_text(str(failed.exc))}). Give ca_path with the CA that signed the registry's "
                        "certificate; set insecure only for a registry on a network you trust."
                    ) from None
                if request.replayable and attempt < self.backoff.max_retries:
                    self.backoff.sleep(attempt)
                    attempt += 1
                    continue
                raise RegistryError(
                    f"{request.op}: {describe_exc(failed.exc)} (after {attempt + 1} attempts). Check that "
                    f"{self.registry} is running and reachable, then try again."
                ) from None
            if resp.status_code in RETRY_STATUSES and request.replayable and attempt < self.backoff.max_retries:
                delay = self.backoff.delay_for(resp, attempt)
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            resp.attempts = attempt + 1
            return resp
