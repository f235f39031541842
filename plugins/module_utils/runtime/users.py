# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who the container's command runs as: ``user[:group]`` resolved against the image's /etc/passwd and
/etc/group (runc's ``user.GetExecUser``), read after ``pivot_root`` without trusting what the image put there.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.dockerless.containers.plugins.module_utils.errors import RuntimeSetupError

MAX_ID = (1 << 31) - 1          # runc user.maxId: ids above are refused (and -1 would mean "unchanged")
_PASSWD_LIMIT = 4 << 20          # /etc/passwd and /etc/group are read up to this size


def _parse_colon_file(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        row = line.split(":")
        if len(row) < fields:
            row += [""] * (fields - len(row))
        rows.append(row)
    return rows


def _parse_id(text: str, what: str, spec: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise RuntimeSetupError(f"user {spec!r}: {what} {text!r} is not a number. Fix USER or the 'user' option.")
    if value < 0 or value > MAX_ID:
        raise RuntimeSetupError(
            f"user {spec!r}: {what} {value} is out of range (0-{MAX_ID}); refusing to start rather than run "
            "with an unintended identity. Fix USER or the 'user' option.")
    return value


def resolve_user(spec: str, passwd_text: str, group_text: str) -> dict:
    """Resolve ``user[:group]`` (names or numbers) against the image's passwd and group files, the way runc's
    ``user.GetExecUser`` does: a name must exist; a number may be absent (gid 0, home ``/``); supplementary
    groups are the primary gid plus the groups listing the user by name, unless a group was given.
    Returns ``{"uid", "gid", "groups", "home", "name"}``. Out-of-range ids are refused, never mapped to root."""
    spec = spec or ""
    user_part, sep, group_part = spec.partition(":")
    if sep and not group_part:
        raise RuntimeSetupError(f"user {spec!r}: empty group. Use 'user' or 'user:group'.")
    passwd = _parse_colon_file(passwd_text, 7)
    groups = _parse_colon_file(group_text, 4)

    entry = None
    if user_part == "":
        user_part = "0"
    if user_part.isdigit():
        uid = _parse_id(user_part, "uid", spec)
        entry = next((row for row in passwd if row[2].isdigit() and int(row[2]) == uid), None)
    else:
        entry = next((row for row in passwd if row[0] == user_part), None)
        if entry is None:
            raise RuntimeSetupError(f"user {spec!r}: no user named {user_part!r} in the image's /etc/passwd. "
                                    "Use a numeric uid or add the user to the image.")
        uid = _parse_id(entry[2], "uid", spec)
    gid = _parse_id(entry[3], "gid", spec) if entry is not None and entry[3] else 0
    name = entry[0] if entry is not None else ""
    home = (entry[5] if entry is not None else "") or "/"

    if group_part:
        if group_part.isdigit():
            gid = _parse_id(group_part, "gid", spec)
        else:
            row = next((r for r in groups if r[0] == group_part), None)
            if row is None:
                raise RuntimeSetupError(f"user {spec!r}: no group named {group_part!r} in the image's /etc/group. "
                                        "Use a numeric gid or add the group to the image.")
            gid = _parse_id(row[2], "gid", spec)
        supplementary = [gid]
    else:
        supplementary = [gid]
        if name:
            for row in groups:
                if name in row[3].split(",") and row[2]:
                    extra = _parse_id(row[2], "gid", spec)
                    if extra not in supplementary:
                        supplementary.append(extra)
    return {"uid": uid, "gid": gid, "groups": supplementary, "home": home, "name": name}


def read_account_file(path: str) -> str:
    """Read an image file (passwd, group) after pivot_root: regular files only, size-capped, never blocking on
    a FIFO or device the image may have planted there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeSetupError(f"{path} in the image is not a regular file; can't resolve the user. "
                                    "Fix the image or use numeric ids.")
        data = os.read(fd, _PASSWD_LIMIT + 1)
        if len(data) > _PASSWD_LIMIT:
            raise RuntimeSetupError(f"{path} in the image is larger than {_PASSWD_LIMIT} bytes. Fix the image.")
        return data.decode("utf-8", "replace")
    finally:
        os.close(fd)
