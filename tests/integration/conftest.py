# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for integration tests: real registries on 127.0.0.1, seeded images, and running modules for real.

Registries (session-scoped; each is a ``RegistryProcess`` from ``scripts/registry.py`` with ``.url``,
``.host`` ("127.0.0.1:PORT"), ``.ca_path``, ``.username``, ``.password``, ``.request_log(since=...)``,
``.request_count()``, ``.mark()``, ``.data_dir``):

* ``registry``        plain http, no auth.
* ``registry_tls``    https (``ca_path`` = the session's test CA) + htpasswd basic auth.
* ``registry_token``  https + token auth through ``token_server.TokenServer`` (https realm, same CA);
  ``.token_server`` has ``.count``, ``.requests``, ``.mark()``, ``.realm``. The configured user may do
  anything; anonymous clients get pull only.
* ``registry_factory(**start_registry_kwargs)`` starts more (e.g. an empty one for a test); all are stopped at
  session end, or earlier with ``.stop()``.
* ``seeded_registry`` runs ``scripts/seed_images.py`` against ``registry``: ``.registry``, ``.images``
  (the script's JSON summary), ``.ref(name)``, ``.digest(name)``, ``.layout`` (the OCI layout it pushed from).

Ansible: ``collection_env`` (env vars to run Ansible against the checkout), ``run_module(module, args, *,
check=False, diff=False, env=None)`` and ``run_playbook(path, extra_vars, ...)`` from ``harness.py``.

Every process started here stops at session end; registries also get SIGTERM if pytest itself dies
(PR_SET_PDEATHSIG), so nothing leaks.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import harness
import pytest
from token_server import TokenServer

# The test-only tree manifest (``from tree_manifest import tree_manifest``) lives beside the layers' unit tests.
_LAYER_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "unit", "plugins", "module_utils", "image", "layers")
if _LAYER_TESTS not in sys.path:
    sys.path.append(_LAYER_TESTS)

registry_lib = harness.load_script("registry")

REGISTRY_FIXTURES = {"registry", "registry_tls", "registry_token", "registry_factory", "seeded_registry"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a registry fixture get the ``registry`` marker (``-m 'not registry'`` skips them)."""
    for item in items:
        if REGISTRY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.registry)


@pytest.fixture(scope="session")
def harness_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness")


@pytest.fixture(scope="session")
def harness_ca(harness_dir: Path) -> Any:
    """The session's test CA (``.cert_path``, ``.key_path``): it signs every registry and token certificate."""
    return registry_lib.make_ca(str(harness_dir / "ca"))


@pytest.fixture(scope="session")
def registry_factory(harness_dir: Path, harness_ca: Any) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def start(**kwargs: Any) -> Any:
        if kwargs.get("tls") and "ca" not in kwargs:
            kwargs["ca"] = harness_ca
        root = harness_dir / f"registry-{len(started)}-{secrets.token_hex(3)}"
        reg = registry_lib.start_registry(str(root), **kwargs)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()


@pytest.fixture(scope="session")
def registry(registry_factory: Callable[..., Any]) -> Any:
    """Plain-http registry without auth."""
    return registry_factory()


@pytest.fixture(scope="session")
def registry_tls(registry_factory: Callable[..., Any]) -> Any:
    """https registry (``ca_path``) with htpasswd basic auth for ``username``/``password``."""
    return registry_factory(tls=True, htpasswd=(harness.TEST_USER, secrets.token_urlsafe(18)))


@pytest.fixture(scope="session")
def token_server(harness_dir: Path, harness_ca: Any) -> Iterator[TokenServer]:
    """https token server; the signing certificate chains to the session CA (the registry's rootcertbundle)."""
    certs = str(harness_dir / "token-certs")
    signing = registry_lib.issue_cert(harness_ca, certs, "token-signing", common_name="token signer", usage="signing")
    tls = registry_lib.issue_cert(harness_ca, certs, "token-tls")
    server = TokenServer(
        signing_cert=signing.cert_path,
        signing_key=signing.key_path,
        service=harness.TOKEN_SERVICE,
        issuer=harness.TOKEN_ISSUER,
        users={harness.TEST_USER: secrets.token_urlsafe(18)},
        tls_cert=tls.cert_path,
        tls_key=tls.key_path,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_token(registry_factory: Callable[..., Any], token_server: TokenServer, harness_ca: Any) -> Any:
    """https registry that trusts ``token_server``'s tokens; ``username``/``password`` are the token server's user."""
    auth = registry_lib.TokenAuth(
        realm=token_server.realm, service=harness.TOKEN_SERVICE, issuer=harness.TOKEN_ISSUER, rootcertbundle=harness_ca.cert_path
    )
    reg = registry_factory(tls=True, token=auth)
    reg.username = harness.TEST_USER
    reg.password = token_server.users[harness.TEST_USER]
    reg.token_server = token_server
    return reg


@pytest.fixture(scope="session")
def seeded_registry(registry: Any, harness_dir: Path) -> harness.SeededRegistry:
    """``registry`` with library/busybox:latest, test/layers:1, test/multi:1 and test/zstd:1 pushed."""
    layout = harness_dir / "seed-layout"
    return harness.SeededRegistry(registry, harness.run_seed(registry, layout), str(layout))


@pytest.fixture
def collection_env() -> dict[str, str]:
    """Environment for running ansible against the checkout (ANSIBLE_COLLECTIONS_PATH=.build/collections, ...)."""
    return harness.collection_env()


@pytest.fixture
def run_module() -> Callable[..., harness.ModuleResult]:
    """``run_module(module, args, *, check=False, diff=False, env=None) -> dict`` (see harness.run_module)."""
    return harness.run_module


@pytest.fixture
def run_playbook() -> Callable[..., harness.PlaybookResult]:
    """``run_playbook(path, extra_vars=None, *, check=False, diff=False, env=None) -> PlaybookResult``."""
    return harness.run_playbook


# Named containers of a busybox image (test_container_run, test_container_exec, test_container_network).


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store of this module's own holding test_container_run.IMAGE: busybox-static with one symlink per
    applet, /etc/passwd and /etc/group, ``Env: [PATH=/bin, IMAGE_VAR=1]``, ``Cmd: [/bin/sh]``."""
    from test_container_run import IMAGE, add_image, make_busybox_rootfs

    root = str(tmp_path_factory.mktemp("store"))
    rootfs = make_busybox_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"))
    add_image(root, IMAGE, rootfs, {"Env": ["PATH=/bin", "IMAGE_VAR=1"], "Cmd": ["/bin/sh"]})
    return root


@pytest.fixture
def cleanup(store: str) -> Iterator[list[str]]:
    """A list the test appends container names to; each is removed afterwards, killed first if it runs."""
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    names: list[str] = []
    yield names
    runtime = Runtime(store)
    for name in names:
        runtime.remove(name, force_kill=True)
