# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the store is when no ``store`` is given: one root for the images (``image/store.py``) and the named
containers (``runtime/state.py``, ``<root>/containers``), so both must agree on it. Stdlib only, nothing but
``os``: the supervisor and the container start path import it."""

from __future__ import annotations

import os


def default_store_root() -> str:
    """``/var/lib/dockerless`` as root, ``$XDG_DATA_HOME/dockerless`` (``~/.local/share/dockerless``) otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/dockerless"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dockerless")
