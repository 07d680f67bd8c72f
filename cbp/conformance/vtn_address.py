"""Where a VEN finds a VTN: the harness VTN for a VEN under test (what :attr:`HarnessVtn.address
<cbp.conformance.harness_vtn.HarnessVtn.address>` gives and a
:class:`~cbp.conformance.ven_starters.VenUnderTest` starts the VEN with), or a VTN under test for
the harness VEN (``HarnessSettings.xmpp``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HttpAddress", "VtnAddress", "XmppAddress"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAddress:
    """Where a VEN finds a VTN over Simple HTTP: its root URL."""

    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class XmppAddress:
    """Where a VEN finds a VTN over XMPP: the server (``host``, ``port``, XMPP ``domain``) and
    the VTN's JID there, which the VEN sends its IQs to."""

    host: str
    port: int
    domain: str
    jid: str


VtnAddress = HttpAddress | XmppAddress
