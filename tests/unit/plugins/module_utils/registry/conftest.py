# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault servers for the registry tests: plain http, a second origin, and TLS with a private CA."""

from __future__ import annotations

import pytest
from fault_server import FaultServer, make_tls_files


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def other():
    with FaultServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def tls_server(tls_files):
    with FaultServer(tls=(tls_files["server.pem"], tls_files["server.key"])) as srv:
        yield srv
