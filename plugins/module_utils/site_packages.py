# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Site-packages added when they are first needed, for commands started without them.

``bin/dockerless`` starts ``run`` and ``pull`` with ``python -S``: a container start and a pull are stdlib-only,
and site's start-up work (site-packages, ``.pth`` files) is a good part of such a short command's time. It sets
``DEFERRED``; ``registry`` calls :func:`load` before it imports ``requests``, which only a pull through an HTTP
proxy needs. An interpreter started with ``-S`` by anyone else keeps what it asked for (no site-packages).
"""

from __future__ import annotations

import sys

DEFERRED = False  # set by bin/dockerless when it started this interpreter with -S on purpose


def load() -> None:
    """Run site.main() (site-packages, .pth files, as at a normal start) once, if bin/dockerless deferred it."""
    global DEFERRED  # noqa: PLW0603 - one flag for the whole process
    if DEFERRED and sys.flags.no_site and "site" not in sys.modules:
        import site

        site.main()
    DEFERRED = False
