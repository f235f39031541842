# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP through ``requests``, for a registry reached through a proxy set in the environment.

``requests`` and ``urllib3`` take about as long to import as all of Ansible's ``basic`` module, and they are
needed only behind a proxy: every other request goes through ``transport_direct``. They are imported on the
first request sent here (after site-packages, when bin/dockerless deferred them), never at import time.
Redirects, retries and auth are the stack's, not requests': the session follows nothing, reads no ``.netrc``
and takes no CA bundle from the environment; only proxies (``NO_PROXY`` included) are requests' decision."""

from __future__ import annotations

import importlib
import sys
import threading

from ansible_collections.dockerless.containers.plugins.module_utils import site_packages
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError
from ansible_collections.dockerless.containers.plugins.module_utils.registry.transport_direct import SEND_BLOCK_SIZE

TYPE_CHECKING = False  # typing only annotates here; importing it costs a short command's time
if TYPE_CHECKING:
    from typing import Any


class _LazyModule:
    """A module imported on first attribute access."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(_import(self._name), attr)


def _import(name: str):
    """``importlib.import_module``, with site-packages added first when bin/dockerless deferred them (it starts
    ``run`` and ``pull`` with ``python -S``; requests, needed only behind a proxy, lives in site-packages)."""
    site_packages.load()
    return importlib.import_module(name)


requests: Any = _LazyModule("requests")
urllib3: Any = _LazyModule("urllib3")


def _requests_missing() -> str | None:
    """Why requests can't be used (for the proxy path), or None when it can."""
    try:
        _import("requests")
        _import("urllib3")
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


_BLOCK_ADAPTER: list[Any] = []


def _block_adapter(**kwargs: Any) -> Any:
    """An HTTPAdapter whose connections send request bodies in ``SEND_BLOCK_SIZE`` blocks (class made on first use,
    when requests is imported)."""
    if not _BLOCK_ADAPTER:
        from requests.adapters import HTTPAdapter  # pylint: disable=import-outside-toplevel

        try:
            urllib3_major = int(urllib3.__version__.split(".", 1)[0])
        except (AttributeError, ValueError):  # pragma: no cover - a vendored or odd urllib3
            urllib3_major = 1

        class BlockAdapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kw: Any) -> None:
                # urllib3 2 takes ``blocksize`` for its connections (and in its pool key); 1.26 (Debian 12's) would
                # refuse the key, so it keeps http.client's default block there.
                if urllib3_major >= 2:
                    kw.setdefault("blocksize", SEND_BLOCK_SIZE)
                super().init_poolmanager(*args, **kw)

        _BLOCK_ADAPTER.append(BlockAdapter)
    return _BLOCK_ADAPTER[0](**kwargs)


class ProxyTransport:
    """One requests session per registry client, made (and requests imported) on the first request."""

    def __init__(self, registry: str, *, insecure: bool, timeout: float, user_agent: str, lock: threading.RLock):
        self.registry = registry
        self.insecure = insecure
        self.timeout = timeout
        self.user_agent = user_agent
        self.session: Any = None
        self._lock = lock

    def _session(self) -> Any:
        with self._lock:
            if self.session is None:
                missing = _requests_missing()
                if missing:
                    raise DockerlessError(
                        f"talking to registry {self.registry} through the proxy set in the environment needs the "
                        f"Python library 'requests' ({missing}). Install python3-requests (or pip install requests) "
                        "on the target, or unset the proxy variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) for it."
                    )
                if self.insecure:
                    # The user asked for unverified TLS for this registry; urllib3's per-request warning would only
                    # add noise to module output.
                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                session = requests.Session()
                # No .netrc, no environment CA override: credentials and verification are decided by the stack,
                # per request. Proxies are still taken from the environment, per URL.
                session.trust_env = False
                adapter = _block_adapter(pool_connections=4, pool_maxsize=16, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers.update({"User-Agent": self.user_agent, "Accept-Encoding": "identity"})
                self.session = session
            return self.session

    def request(self, method: str, url: str, headers: dict[str, str], body: Any, verify: bool | str) -> Any:
        return self._session().request(
            method, url, headers=headers, data=body, stream=True, allow_redirects=False,
            verify=verify, timeout=(self.timeout, self.timeout), proxies=requests.utils.get_environ_proxies(url),
        )

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def failure_kind(exc: BaseException) -> str | None:
    """``"tls"`` or ``"connection"`` for requests' own failures, None for anything else; requests is looked up
    only when it was imported (no request went through a proxy otherwise)."""
    loaded = sys.modules.get("requests")
    if loaded is None:
        return None
    if isinstance(exc, loaded.exceptions.SSLError):
        return "tls"
    if isinstance(exc, (loaded.exceptions.ConnectionError, loaded.exceptions.Timeout,
                        loaded.exceptions.ChunkedEncodingError)):
        return "connection"
    return None
