"""The root of the platform's own errors (the tree is drawn in the :mod:`cbp` package docstring).

An offer the TSO refuses on the wire is a protocol error (``schemas.InvalidData`` and below), with
its OpenADR response code; a :class:`CbpError` is about the platform's own input and rules.
"""

from __future__ import annotations

from schemas import CrowdflexError

__all__ = ["CbpError"]


class CbpError(CrowdflexError):
    """Root of the errors the platform roles, market, pool, devices and conformance suite raise."""
