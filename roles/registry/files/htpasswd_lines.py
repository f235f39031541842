# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the htpasswd file the registry role wants, keeping the hashes of passwords that did not change.

Run on the target as ``python3 -c "$(cat htpasswd_lines.py)"`` by tasks/htpasswd.yml, with JSON on stdin:
``{"path": "/etc/dockerless/registry/htpasswd", "cost": 10, "users": [{"name": ..., "password": ...}]}``.
bcrypt hashes are salted, so hashing every password on every run would rewrite the file each time; instead each
password is checked against the current file with ``htpasswd -v`` and only new or changed ones are hashed
(``htpasswd -nB``). Passwords go to htpasswd through stdin, never argv. Users not in the list are dropped.
Exit status 1 with a message on stderr when htpasswd fails.
"""

from __future__ import annotations

import json
import subprocess
import sys


def htpasswd(args: list[str], password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["htpasswd", *args], input=password + "\n", text=True, capture_output=True, check=False)


def main() -> int:
    request = json.load(sys.stdin)
    path = request["path"]
    cost = str(int(request["cost"]))
    current: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, sep, _hash = line.rstrip("\n").partition(":")
                if sep:
                    current[name] = line.rstrip("\n")
    except FileNotFoundError:
        pass
    lines = []
    for user in request["users"]:
        name, password = user["name"], user["password"]
        if name in current:
            verify = htpasswd(["-v", "-i", path, name], password)
            if verify.returncode == 0:
                lines.append(current[name])
                continue
            # 3: wrong password, 6: unknown user; anything else is htpasswd failing.
            if verify.returncode not in (3, 6):
                sys.stderr.write(f"checking user {name} in {path}: htpasswd -v exited {verify.returncode}\n")
                return 1
        made = htpasswd(["-n", "-i", "-B", "-C", cost, name], password)
        if made.returncode != 0 or not made.stdout.startswith(name + ":"):
            sys.stderr.write(
                f"hashing the password of user {name}: htpasswd -nB exited {made.returncode}. "
                "Is apache2-utils installed?\n"
            )
            return 1
        lines.append(made.stdout.strip())
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
