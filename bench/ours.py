# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our engine as a small command: ``python [-I -S] bench/ours.py OP …`` (bench/ours_cmd.py says what the ops are).

Only these lines are compiled on every run, as an installed command's entry script is; the body is the module
bench/ours_cmd.py, whose bytecode Python caches (compiling it here each time cost about 6 ms of a 100 ms bash+ls
build).
"""

import os
import sys
import time

_START = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder off sys.path

from ours_cmd import BUILD_USAGE, build, main, parse_build, run_command  # noqa: E402,F401 pylint: disable=unused-import

if __name__ == "__main__":
    run_command(sys.argv[1:], _START)
