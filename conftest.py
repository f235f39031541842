"""Make ``ansible_collections.dockerless.containers`` importable from a plain checkout for pytest."""
import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_COLL = os.path.join(_HERE, ".build", "collections")
_LINK = os.path.join(_COLL, "ansible_collections", "dockerless", "containers")
if not os.path.islink(_LINK) and not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(os.path.join("..", "..", "..", ".."), _LINK)
# When this checkout already sits inside ansible_collections/dockerless/containers (ansible-test), that wins.
if _COLL not in sys.path:
    sys.path.insert(0, _COLL)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``make test`` (DOCKERLESS_STRICT_SKIPS=1) a skipped test is a failure: CI runs as root with every
    tool installed, so a skip there means a missing install step or a missing feature, never a pass."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("DOCKERLESS_STRICT_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under make test (DOCKERLESS_STRICT_SKIPS=1): {report.longrepr}"
