# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's real cgroup and container tests, run inside the scenario's VM: a pure cgroup v2 hierarchy with
every controller, which this CI host (v1 hybrid) can't offer.

Issues 5 and 6 ask for the same real tests on v2 as on the host: a memory limit OOM-kills a hog, a pids limit
stops a fork bomb, a CPU quota holds a busy loop, apply/read/remove round trips, refused values undone, and the
whole container runtime (namespaces, capabilities, masked paths, limits, supervisor). They run as root in the VM
with Debian's pytest on a copy of the checkout (scripts/vm/pytest-in-vm.sh); skipped tests fail
(DOCKERLESS_STRICT_SKIPS=1), so the two v1/hybrid-only tests are deselected by name instead of skipping.
"""

from __future__ import annotations

import os
import re
import subprocess

import yaml

SCENARIO = os.path.join(os.path.dirname(__file__), "..")
CHECKOUT = os.path.abspath(os.path.join(SCENARIO, "..", ".."))
TESTS = [
    "tests/unit/plugins/module_utils/cgroups/test_cgroups_real.py",
    "tests/unit/plugins/module_utils/runtime/test_runtime.py",
    "tests/unit/plugins/module_utils/runtime/test_runtime_supervisor.py",
]
# v1-only (memory.limit_in_bytes below usage is refused; v2 reclaims or OOM-kills) and hybrid-only.
DESELECT = "not test_memory_below_usage_is_refused_on_v1 and not test_unified_mount_of_a_hybrid_host"


def _instance() -> str:
    with open(os.path.join(SCENARIO, "molecule.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)["platforms"][0]["name"]


def test_engine_root_tests_pass_on_cgroup_v2(host):
    assert host.run("stat -fc %T /sys/fs/cgroup").stdout.strip() == "cgroup2fs"
    env = dict(os.environ, DOCKERLESS_STRICT_SKIPS="1")
    proc = subprocess.run(
        [os.path.join(CHECKOUT, "scripts", "vm", "pytest-in-vm.sh"), _instance(), *TESTS, "-q", "-rs", "-k", DESELECT],
        cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    tail = "\n".join(proc.stdout.splitlines()[-40:]) + proc.stderr[-2000:]
    assert proc.returncode == 0, f"pytest in the VM failed (exit {proc.returncode}):\n{tail}"
    summary = proc.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 40, f"too few tests ran in the VM: {summary}"
    assert not re.search(r"\d+ (failed|error|skipped)", summary), summary
