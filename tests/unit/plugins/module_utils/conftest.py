"""Test rooms mirror plugins/module_utils. Helpers are shared between rooms by module name (``from test_runtime
import make_busybox_rootfs``): every room folder, and tests/unit for ``fresh_python``, is on sys.path."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
for _dir, _subdirs, _files in sorted(os.walk(_HERE)):
    if "__pycache__" not in _dir and _dir not in sys.path:
        sys.path.insert(0, _dir)
_UNIT = os.path.dirname(os.path.dirname(_HERE))
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)
