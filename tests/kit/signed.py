"""A VEN that signs what it sends (its own key, an injected clock) and verifies what the VTN
answers against the session CA, for the tests of signatures on a running VTN."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import aiohttp

from schemas import (
    Codec,
    CreatePartyRegistration,
    Message,
    Poll,
    Signer,
    Verifier,
    utc_now,
)
from tests.kit.pki import CertFiles, Pki
from tests.kit.polling import drain_polls

__all__ = ["SignedVen", "signed_ven"]


class SignedVen:
    """Signs what it sends with its own key; verifies what the VTN answers against the CA."""

    def __init__(self, url: str, pki: Pki, tls: CertFiles, *, signer: CertFiles | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        signing = signer or tls
        self.url = url
        self.codec = Codec(signer=Signer.from_files(signing.key, signing.cert), clock=clock)
        # replies are checked on the true clock: a skewed VEN is the one under test, not the VTN
        self.reader = Codec(verifier=Verifier.from_files(pki.ca_cert))
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=pki.client_context(ven=tls)))
        self.ven_id = ""

    async def send(self, service: str, body: bytes) -> Message:
        async with self.session.post(f"{self.url}/{service}", data=body,
                                     headers={"Content-Type": "application/xml"}) as reply:
            assert reply.status == 200, await reply.text()
            return self.reader.decode(await reply.read())

    async def register(self) -> Message:
        reply = await self.send("EiRegisterParty", self.codec.encode(CreatePartyRegistration(
            request_id="r1", ven_name="signed-ven", http_pull_model=True)))
        self.ven_id = getattr(reply, "ven_id", None) or ""
        assert self.ven_id, reply
        return reply

    def poll_body(self) -> bytes:
        return self.codec.encode(Poll(ven_id=self.ven_id))

    async def drain(self) -> list[Message]:
        """Signed polls until the VTN answers oadrResponse: every answer, that one last
        (:func:`tests.kit.polling.drain_polls`: bounded)."""
        got = await drain_polls(lambda: self.send("OadrPoll", self.poll_body()), self.ven_id)
        return [m for m in got if m is not None]


@asynccontextmanager
async def signed_ven(url: str, pki: Pki, tls: CertFiles, **kwargs: object
                     ) -> AsyncIterator[SignedVen]:
    ven = SignedVen(url, pki, tls, **kwargs)  # type: ignore[arg-type]
    try:
        yield ven
    finally:
        await ven.session.close()
