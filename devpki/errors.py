"""The development PKI's errors, under :class:`schemas.CrowdflexError` (tree drawn in
:mod:`devpki`). Each also derives from the built-in error it replaces, so an ``except
FileExistsError`` or ``except ValueError`` written before still catches it."""

from __future__ import annotations

from schemas import CrowdflexError

__all__ = ["DevpkiError", "PkiFileExists", "UnsupportedCaKey"]


class DevpkiError(CrowdflexError):
    """Root of the development PKI's errors."""


class PkiFileExists(DevpkiError, FileExistsError):
    """A certificate or key file is already there and overwriting was not asked for."""


class UnsupportedCaKey(DevpkiError, ValueError):
    """A CA's key is neither EC nor RSA, so it cannot sign what this PKI issues."""
