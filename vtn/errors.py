"""The root of the VTN's own errors (the tree is drawn in the :mod:`vtn` package docstring).

Protocol refusals a VEN receives are the message layer's ``RemoteProtocolError`` s, with their
OpenADR response code; a :class:`VtnError` is about the VTN's own input, trust and storage.
"""

from __future__ import annotations

from schemas import CrowdflexError

__all__ = ["VtnError"]


class VtnError(CrowdflexError):
    """Root of the errors the VTN raises about its own input, trust anchors and storage."""
