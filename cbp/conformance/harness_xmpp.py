"""The harness VEN's XMPP face (OpenADR 2.0b profile 9.3): crowdflex's own
:class:`ven.xmpp.XmppLink` carrying the bytes a case chose, and the VTN's payloads handed back as
bytes for the passive rules to judge.

Over XMPP the harness is a push VEN by nature: it registers with ``oadrTransportName`` xmpp from
its own session, so the VTN sends its payloads as IQ ``set`` s to the harness's full JID, and
every request of a case is an IQ ``set`` to the VTN's JID. An IQ ``result`` stands in an
:class:`~cbp.conformance.Exchange` as HTTP 200 does over Simple HTTP (its ``oadrPayload`` is the
reply); an XMPP error stanza is the exchange's ``refusal`` (by its condition); no answer in
``request_timeout_s``, or no session, leaves ``status`` None with the reason.

Invariants: the harness's JID is the one the server gives its certificate (``--cert``), so the
VTN under test learns the harness's identity from the server, never from a payload; the link
takes payloads from the VTN's JID only (``XmppLink``'s own check).
"""

from __future__ import annotations

import ssl
from dataclasses import replace

from schemas import Message, TransportName
from ven import VtnRefused, VtnUnavailable, XmppRefused
from ven.xmpp import Answerer, XmppLink

from ._model import Exchange
from .vtn_address import XmppAddress

__all__ = ["XmppChannel"]


class XmppChannel:
    """One XMPP session of the harness VEN, the one whose certificate has ``fingerprint`` (the
    one ``context`` presents, if it presents one); :meth:`open` connects and hands the VTN's
    payloads to an :data:`Answerer`."""

    def __init__(self, target: XmppAddress, *, fingerprint: str, context: ssl.SSLContext,
                 request_timeout_s: float) -> None:
        self.link = XmppLink(
            host=target.host, port=target.port, domain=target.domain, vtn_jid=target.jid,
            fingerprint=fingerprint, resource="conformance", ssl_context=context,
            request_timeout_s=request_timeout_s, connect_timeout_s=request_timeout_s)
        assert self.link.address is not None  # an XmppLink always has its JID
        self.address: str = self.link.address  # the harness's full JID: where the VTN sends

    async def open(self, answerer: Answerer) -> None:
        """Connected, the VTN's payloads answered by ``answerer``; :class:`VtnUnavailable`
        when the server gives no session."""
        self.link.answer_with(answerer)
        await self.link.connect()

    async def close(self) -> None:
        await self.link.close()

    async def post(self, service: str, body: bytes, sent: Message | None) -> Exchange:
        """``body`` as an IQ ``set`` to the VTN and what came back, as an exchange to inspect."""
        asked = Exchange(transport=TransportName.XMPP, service=service, request=body, sent=sent,
                         status=None)
        try:
            reply = await self.link.post_bytes(service, body)
        except XmppRefused as refusal:
            return replace(asked, error=str(refusal), refusal=f"XMPP error {refusal.condition}")
        except (VtnRefused, VtnUnavailable) as failure:
            return replace(asked, error=f"{type(failure).__name__}: {failure}")
        if reply is None:
            return replace(asked, status=200, error="the IQ result carries no oadrPayload")
        return replace(asked, status=200, reply=reply)
