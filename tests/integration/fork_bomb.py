# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bounded fork bomb for the pids-limit tests (tests/integration/test_cgroup_limit.py on this host and
molecule/default/tests/test_cgroup_limit_v2.py in the VM both send this file's text to ``python3 -c``): forks until
EAGAIN (at most 500 children, each held on a pipe, a 60 s alarm on everything), then prints
``{"forked": N, "eagain": true|false}``."""
import json
import os
import signal

signal.alarm(60)  # hard stop whatever happens
r, w = os.pipe()
kids, eagain = [], False
for _ in range(500):  # bounded even without a limit
    try:
        pid = os.fork()
    except BlockingIOError:  # EAGAIN: pids.max reached
        eagain = True
        break
    if pid == 0:
        os.close(w)
        signal.alarm(60)
        os.read(r, 1)  # wait until the parent closes the pipe
        os._exit(0)
    kids.append(pid)
os.close(w)
for pid in kids:
    os.waitpid(pid, 0)
print(json.dumps({"forked": len(kids), "eagain": eagain}), flush=True)
