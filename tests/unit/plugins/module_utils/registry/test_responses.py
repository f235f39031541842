# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the user reads (``registry/responses.py``): error documents turned into messages that say what to do,
bodies capped, URLs and upload state redacted."""

from __future__ import annotations

import io
import time

import pytest
from fault_server import Reply, error_reply
from registry_fixtures import (
    BLOB,
    BLOB_DIGEST,
    BLOB_PATH,
    make_client,
    read_all,
)

from ansible_collections.dockerless.containers.plugins.module_utils.errors import (
    RegistryError,
)
from ansible_collections.dockerless.containers.plugins.module_utils.registry.responses import redact_url


def test_blob_404_says_what_to_do(server):
    server.on("GET", BLOB_PATH, error_reply(404, "BLOB_UNKNOWN", "blob unknown to registry"))
    with pytest.raises(RegistryError, match=r"blob not found \(404 BLOB_UNKNOWN\)\. The registry says: BLOB_UNKNOWN: "
                                            r"blob unknown to registry\. Check the name/tag, or push it first"):
        read_all(make_client(server))


def test_oversized_error_body_is_not_read(server):
    produced = []

    def endless():
        for _i in range(64):
            produced.append(1)
            yield b"E" * 2**18

    server.on("GET", "/v2/app/manifests/1", Reply(400, {"Content-Type": "application/json"}, chunks=endless()))
    with pytest.raises(RegistryError, match="error body was over 1 MiB") as info:
        make_client(server).get_manifest("app", "1")
    assert info.value.status == 400
    time.sleep(0.2)
    assert len(produced) < 40


def test_redact_url():
    assert redact_url("https://user:pw@reg.example:5000/v2/a/blobs/uploads/x?_state=SECRET&digest=d") == \
        "https://reg.example:5000/v2/a/blobs/uploads/x?…"
    assert redact_url("http://h/p") == "http://h/p"


def test_connection_errors_do_not_leak_upload_state(server):
    def drop(req):
        server.close()
        return Reply(202, {"Location": "/v2/app/blobs/uploads/u1?_state=TOPSECRETSTATE"})

    server.on("POST", "/v2/app/blobs/uploads/", drop)
    with pytest.raises(RegistryError) as info:
        make_client(server, max_retries=1).upload_blob("app", BLOB_DIGEST, len(BLOB), lambda: io.BytesIO(BLOB))
    assert "TOPSECRETSTATE" not in str(info.value)
