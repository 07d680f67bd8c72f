"""The VEN's own errors, under the message layer's root (the tree is drawn in the :mod:`ven`
package docstring).

A reply that does not decode raises the message layer's ``RemoteProtocolError`` unchanged.
aiohttp's and ssl's exceptions are translated once, in ``ven._http``.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas import CrowdflexError

__all__ = ["ErrorHandler", "VenError", "VtnRefused", "VtnUnavailable", "XmppRefused"]


class VenError(CrowdflexError):
    """Root of the errors the VEN client raises about its VTN."""


class VtnUnavailable(VenError):
    """The VTN could not be reached, did not answer in time, or asked us to come back later.

    ``retry_after``: the seconds the VTN's Retry-After header asked for (HTTP 429 or 503), else
    None.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class VtnRefused(VenError):
    """The VTN answered with a refusal; ``code`` is its OpenADR (or HTTP) status code."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"{code} {reason}" if code is not None else reason)
        self.code = code
        self.reason = reason


class XmppRefused(VtnRefused):
    """The VTN (or the XMPP server on its way) answered an IQ with an XMPP error; ``condition``
    is its defined condition (RFC 6120 8.3.3, e.g. ``not-acceptable``)."""

    def __init__(self, condition: str, reason: str) -> None:
        super().__init__(None, reason)
        self.condition = condition


ErrorHandler = Callable[[VenError], None]
"""Hears an error the client retries or drops (``ven.Hooks.on_error``)."""
