"""What the harness VEN is told: where the VTN under test is (its Simple HTTP root, or its JID
on an XMPP server), who the harness is (its certificate), and its timing.

Invariants: XMPP implies push (the protocol has no polling) and leaves ``url`` unused; without
XMPP there is a ``url``. Both are checked when the settings are built (else
:class:`~cbp.conformance.ConformanceError`).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from schemas import Codec, Signer, TransportName, Verifier, utc_now
from schemas.certpath import Purpose
from schemas.identity import TlsProfile, fingerprint_from_pem
from schemas.tls import client_context

from ._model import ConformanceError
from .harness_xmpp import XmppChannel
from .vtn_address import XmppAddress

__all__ = ["HarnessSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HarnessSettings:
    """Where the VTN under test is and who the harness is.

    ``url`` is the VTN's Simple HTTP root (``https://host:port/OpenADR2/Simple/2.0b``), or
    ``xmpp`` where it serves XMPP (which needs ``push``: XMPP has no polling); ``cert`` and
    ``key`` the harness VEN's client certificate, ``ca`` what the VTN's certificate (and the XMPP
    server's) must chain to. ``poll_interval_s`` spaces empty polls while a case waits for the
    VTN to act.
    """

    url: str = ""
    cert: Path
    key: Path
    ca: Path
    tls_profile: TlsProfile = TlsProfile.OPENADR_TLS12_OR_TLS13
    ven_name: str = "crowdflex-conformance"
    request_timeout_s: float = 10.0
    wait_timeout_s: float = 30.0
    poll_interval_s: float = 1.0
    push: bool = False
    push_host: str = "127.0.0.1"
    signed: bool = False
    xmpp: XmppAddress | None = None
    clock: Callable[[], datetime] = field(default=utc_now, compare=False)

    def __post_init__(self) -> None:
        if self.xmpp is not None and not self.push:
            raise ConformanceError("the harness VEN takes XMPP payloads by push: set push")
        if self.xmpp is None and not self.url:
            raise ConformanceError("name the VTN: its Simple HTTP url, or where it serves XMPP")

    @property
    def transport(self) -> TransportName:
        return TransportName.SIMPLE_HTTP if self.xmpp is None else TransportName.XMPP

    @property
    def target(self) -> str:
        """The VTN under test as the report names it: its URL or its JID."""
        return self.url if self.xmpp is None else f"xmpp:{self.xmpp.jid}"

    def xmpp_channel(self, *, anonymous: bool = False) -> XmppChannel:
        """A session of the harness VEN to :attr:`xmpp` (``anonymous``: without presenting
        its certificate, though claiming its JID)."""
        assert self.xmpp is not None, "no XMPP target"
        context = self.anonymous_context() if anonymous else self.client_context()
        return XmppChannel(self.xmpp, fingerprint=fingerprint_from_pem(self.cert.read_bytes()),
                           context=context, request_timeout_s=self.request_timeout_s)

    def codec(self) -> Codec:
        """The harness VEN's codec: in signed mode it signs every payload with ``cert``/``key``
        and verifies signed replies against ``ca``."""
        if not self.signed:
            return Codec(clock=self.clock)
        return Codec(signer=Signer(self.key.read_bytes(), self.cert.read_bytes()),
                     verifier=self.verifier(), clock=self.clock)

    def verifier(self) -> Verifier:
        return Verifier(self.ca.read_bytes(), purpose=Purpose.SERVER)

    def client_context(self) -> ssl.SSLContext:
        return client_context(cert=self.cert, key=self.key, ca=self.ca, profile=self.tls_profile)

    def anonymous_context(self) -> ssl.SSLContext:
        """Trusts the VTN like :meth:`client_context` but presents no client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
