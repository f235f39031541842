# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run test code in a fresh interpreter with the collection importable: how the import tests see what
a short command (a build, a container start, a re-pull) imports, which the test process itself has all loaded."""

from __future__ import annotations

import os
import subprocess
import sys

COLLECTIONS = next(p for p in sys.path if os.path.isdir(os.path.join(p, "ansible_collections", "dockerless")))


def run_fresh(code: str, *args: str, site: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -I -S -c code args…`` (no site-packages, no environment: what bench/ours_run.py starts with; with
    ``site``, ``python -I -c``: site-packages too, as a module runs), the collection first on ``sys.path``; fails
    the test with its stderr unless it exits 0. Returns the process."""
    prelude = f"import sys\nsys.path.insert(0, {COLLECTIONS!r})\n"
    flags = ["-I"] if site else ["-I", "-S"]
    proc = subprocess.run([sys.executable, *flags, "-c", prelude + code, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc
