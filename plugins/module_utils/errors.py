# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One exception hierarchy for the whole engine.

Engine code raises these; modules turn them into ``fail_json(msg=str(exc))``. Every message names the object,
the operation and the next step, and never contains a credential or token.
"""
from __future__ import annotations


class DockerlessError(Exception):
    """Base class of every error the engine raises on purpose."""


class ImageReferenceError(DockerlessError):
    """An image reference or digest that can't be parsed or is unsafe (not ``ReferenceError``: a builtin)."""


class RegistryError(DockerlessError):
    """A registry answered with an error, or broke the protocol.

    ``status`` is the HTTP status (or None), ``codes`` the distribution ``errors[].code`` values.
    """

    def __init__(self, message: str, status: int | None = None, codes: tuple[str, ...] = ()):
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)


class AuthError(RegistryError):
    """401/403 from a registry or its token server."""


class DigestMismatchError(DockerlessError):
    """Content whose digest or size differs from what its descriptor promised."""


class StoreError(DockerlessError):
    """The local store is missing something, is corrupt, or can't be written."""


class UnpackError(DockerlessError):
    """A layer could not be extracted safely."""


class BuildError(DockerlessError):
    """An image could not be built from host files."""


class CgroupError(DockerlessError):
    """A cgroup could not be created, read or limited."""


class RuntimeSetupError(DockerlessError):
    """A container could not be set up or started."""
