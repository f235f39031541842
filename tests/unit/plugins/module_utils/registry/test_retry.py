# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retries (``registry/retry.py``): 429 with Retry-After (seconds or a date, capped), 502/503/504 and connection
resets, bounded; 401/403/404 never."""

from __future__ import annotations

import email.utils
import time

import pytest
from fault_server import Reply, error_reply
from registry_fixtures import (
    BLOB,
    BLOB_PATH,
    MANIFEST_DIGEST,
    blob_reply,
    make_client,
    manifest_reply,
    read_all,
)

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    AuthError,
    RegistryError,
)


def test_429_retry_after_seconds_is_honoured(server):
    server.on("GET", "/v2/app/manifests/1", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": "1"}), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server)
    client.scheme  # noqa: B018 - probe outside the timed part
    start = time.monotonic()
    assert client.get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert 0.9 <= time.monotonic() - start < 5
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 2


def test_429_retry_after_http_date_is_honoured(server):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    server.on("GET", "/v2/app/manifests/1", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": when}), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server)
    client.scheme  # noqa: B018
    start = time.monotonic()
    client.get_manifest("app", "1")
    assert 0.9 <= time.monotonic() - start < 5  # the date has one-second resolution


def test_retry_after_is_capped(server):
    server.on("GET", "/v2/app/manifests/1", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": "3600"}), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    client = make_client(server, retry_after_cap=0.3)
    client.scheme  # noqa: B018
    start = time.monotonic()
    client.get_manifest("app", "1")
    assert time.monotonic() - start < 2


def test_503_then_success(server):
    server.on("GET", BLOB_PATH, error_reply(503, "UNAVAILABLE"), times=2)
    server.on("GET", BLOB_PATH, blob_reply())
    assert read_all(make_client(server)) == BLOB
    assert len(server.requests_to("GET", BLOB_PATH)) == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_5xx_retries_are_bounded(server, status):
    server.on("GET", "/v2/app/manifests/1", Reply(status, {}, b"gateway trouble"))
    with pytest.raises(RegistryError, match=f"failed \\({status}\\) after 4 attempts") as info:
        make_client(server, max_retries=3).get_manifest("app", "1")
    assert info.value.status == status
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 4


def test_connection_reset_mid_manifest_is_retried(server):
    server.on("GET", "/v2/app/manifests/1", Reply(200, {}, b"x" * 100, content_length=5000, cut_after=10), times=1)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    assert make_client(server).get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 2


def test_connection_resets_mid_manifest_are_bounded(server):
    server.on("GET", "/v2/app/manifests/1", Reply(200, {}, b"x" * 100, content_length=5000, cut_after=10))
    with pytest.raises(RegistryError, match="connection broke while reading the manifest"):
        make_client(server, max_retries=2).get_manifest("app", "1")
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 3


def test_connection_reset_before_answer_is_retried(server):
    server.on("GET", "/v2/app/manifests/1", Reply(status=0), times=2)
    server.on("GET", "/v2/app/manifests/1", manifest_reply())
    assert make_client(server).get_manifest("app", "1")[2] == MANIFEST_DIGEST
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 3


@pytest.mark.parametrize("status,code,exc,text", [
    (401, "UNAUTHORIZED", AuthError, "authentication failed at the registry \\(401 UNAUTHORIZED\\)"),
    (403, "DENIED", AuthError, "access denied by the registry \\(403 DENIED\\)"),
    (404, "MANIFEST_UNKNOWN", RegistryError, "manifest not found \\(404 MANIFEST_UNKNOWN\\).* push it first"),
    (404, "NAME_UNKNOWN", RegistryError, "Check the name/tag, or push it first"),
])
def test_401_403_404_are_not_retried(server, status, code, exc, text):
    server.on("GET", "/v2/app/manifests/1", error_reply(status, code))
    with pytest.raises(exc, match=text) as info:
        make_client(server).get_manifest("app", "1")
    assert info.value.status == status and info.value.codes == (code,)
    assert len(server.requests_to("GET", "/v2/app/manifests/1")) == 1
