# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scenario guide "Docker without Docker" (docs/docsite/rst/guide_docker_without_docker.rst) runs as written.

Its play and task blocks are put together into one playbook (tests/unit/docs_examples.py) and run for real
against the session's registry, seeded with busybox as ``make demo`` seeds it: first without the clean-up
section (every task must succeed), then again (only the tasks the guide names may change), then the clean-up
section alone. The guide's variables point at a store, a working directory, a container name and a cgroup of
this test.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import harness
import pytest
import yaml

_spec = importlib.util.spec_from_file_location(
    "dockerless_docs_examples", Path(__file__).resolve().parents[1] / "unit" / "docs_examples.py")
docs_examples = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = docs_examples
_spec.loader.exec_module(docs_examples)

# What a second run of the guide (without its clean-up section) still changes: a one-shot run always runs, and
# the batch cgroup is created and removed again. The guide says so.
CHANGED_ON_RERUN = {
    "Run ls once in the tools image",
    "A cgroup of its own for batch work, half a CPU and 256 MiB",
    "Remove that cgroup again",
}
CLEAN_UP = "Clean up"


def _failures(run: harness.PlaybookResult) -> str:
    failed = [(t.task, t.result.get("msg")) for t in run if t.failed]
    return f"rc {run.rc}, failed tasks {failed}\n{run.stderr[-3000:]}"


def _remove_cgroups(top: str, root: str = "/sys/fs/cgroup") -> None:
    """Remove what a failed run left of ``top`` (empty cgroup directories, deepest first) in every hierarchy."""
    for hierarchy in [os.path.join(root, d) for d in os.listdir(root)] + [root]:
        base = os.path.join(hierarchy, top)
        if not os.path.isdir(base):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda walk: -walk[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


@pytest.mark.root
def test_the_guide_runs_twice_and_cleans_up(registry: Any, tmp_path: Path,
                                            run_playbook: Any) -> None:
    assert os.geteuid() == 0, "the guide runs containers and sets cgroup limits: run the tests as root"
    harness.run_seed(registry, tmp_path / "seed-layout", "busybox")
    suffix = os.urandom(3).hex()
    extra_vars = {
        "registry": registry.host,
        "store": str(tmp_path / "store"),
        "work_dir": str(tmp_path / "work"),
        "container": f"guide-{suffix}",
        "batch_cgroup": f"dockerless-guide-{suffix}-batch",
    }
    playbook = tmp_path / "guide.yml"
    playbook.write_text(yaml.safe_dump(docs_examples.guide_playbook(skip=frozenset({CLEAN_UP})), sort_keys=False))
    cleanup = tmp_path / "cleanup.yml"
    cleanup.write_text(yaml.safe_dump(docs_examples.guide_playbook(only={CLEAN_UP}), sort_keys=False))
    try:
        first = run_playbook(playbook, extra_vars)
        assert not first.failed, f"the guide's first run failed: {_failures(first)}"
        by_name = {t.task: t for t in first}
        assert by_name["Pull busybox into the store"].status == "changed"
        assert by_name["Build an image holding only bash and ls, with their shared libraries"].status == "changed"
        assert by_name["Check that it runs"].status == "ok"
        limits = by_name["Give the running service more memory and fewer processes, without restarting it"]
        assert limits.result["limits"]["memory"] == 128 * 1024 * 1024, limits.result["limits"]
        assert limits.result["limits"]["pids"] == 16, limits.result["limits"]
        export = by_name["Export the tools image as a WSL distribution with a default user"]
        assert export.status == "changed" and os.path.getsize(export.result["dest"]) == export.result["size"]
        assert (tmp_path / "work" / "busybox-rootfs" / "bin" / "busybox").is_file()
        left = [d for d in os.listdir("/sys/fs/cgroup") if os.path.isdir(f"/sys/fs/cgroup/{d}/{extra_vars['batch_cgroup']}")]
        assert not left, f"the guide removes its batch cgroup, but it is still in {left}"

        second = run_playbook(playbook, extra_vars)
        assert not second.failed, f"the guide's second run failed: {_failures(second)}"
        changed = {t.task for t in second if t.status == "changed"}
        assert changed == CHANGED_ON_RERUN, (
            f"the second run changed {sorted(changed - CHANGED_ON_RERUN)} although the guide says only "
            f"{sorted(CHANGED_ON_RERUN)} change again; unchanged of those: {sorted(CHANGED_ON_RERUN - changed)}")

        third = run_playbook(cleanup, extra_vars)
        assert not third.failed, f"the guide's clean-up failed: {_failures(third)}"
        removed = {t.task: t for t in third}[
            "Remove the images and collect the blobs and layer folders nothing uses any more"].result
        assert len(removed["removed"]) == 3 and removed["gc"]["blobs"], removed
        assert not (tmp_path / "store" / "containers" / extra_vars["container"]).exists()
    finally:
        # A failed run may leave the detached container running: stop and remove it with the engine.
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

        Runtime(extra_vars["store"]).remove(extra_vars["container"])
        _remove_cgroups(f"dockerless-guide-{suffix}-batch")
