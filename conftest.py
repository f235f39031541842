"""Make ``ansible_collections.dockerless.containers`` importable from a plain checkout for pytest."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_COLL = os.path.join(_HERE, ".build", "collections")
_LINK = os.path.join(_COLL, "ansible_collections", "dockerless", "containers")
if not os.path.islink(_LINK) and not os.path.exists(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    os.symlink(os.path.join("..", "..", "..", ".."), _LINK)
# When this checkout already sits inside ansible_collections/dockerless/containers (ansible-test), that wins.
if _COLL not in sys.path:
    sys.path.insert(0, _COLL)
