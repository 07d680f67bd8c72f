"""What holds on XMPP that holds on HTTP: a VEN is its certificate and nothing it says, and the
VTN's caps and budgets apply before a payload is decoded. On a real Prosody per test."""

from __future__ import annotations

import asyncio
import ssl
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

import vtn.xmpp
from devpki import Role
from schemas import (
    Codec,
    CreatePartyRegistration,
    DistributeEvent,
    EiResponse,
    Poll,
    RequestEvent,
    Response,
    Service,
    Target,
    TransportName,
    decode,
)
from schemas.xmpp import (
    IQ_WITH_PAYLOAD,
    PAYLOAD_NAMESPACE,
    fingerprint_of_localpart,
    iq_bytes,
    localpart_of,
    payload_of,
)
from tests.kit.pki import Pki
from tests.vtn.harness import code_of, raw_ven, sample_event
from ven import Connection, VenClient, VenSettings, VtnRefused, VtnUnavailable, XmppRefused
from ven.tls import client_context
from ven.xmpp import XmppLink

from .conftest import link_for, mint_vens, xmpp_ven, xmpp_vtn
from .server import XmppServer

WAIT_S = 60.0  # bounds a wait that should end at once (no timing is asserted)


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}"


def test_a_jid_localpart_names_exactly_one_fingerprint():
    fingerprint = "0A:1B:2C:3D:4E:5F:60:71:82:93"
    assert localpart_of(fingerprint) == "0a1b2c3d4e5f60718293"
    assert fingerprint_of_localpart("0a1b2c3d4e5f60718293") == fingerprint
    for other in ("0A1B2C3D4E5F60718293", "0a1b2c3d4e5f6071829", "0a1b2c3d4e5f607182931",
                  "vtn", "0a:1b:2c:3d:4e:5f:60:71:82:93", "0a1b2c3d4e5f6071829g"):
        assert fingerprint_of_localpart(other) is None
    with pytest.raises(ValueError):
        localpart_of("ven-1")


async def test_a_ven_claiming_another_certificates_name_is_not_that_ven(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    victim, intruder = mint_vens(pki, tmp_path / "vens", 2)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        # the intruder's own certificate, the victim's name asked for
        link = link_for(vtn, xmpp_server, intruder.context, victim.cert.fingerprint,
                        connect_timeout_s=10.0)
        async with VenClient(VenSettings(ven_name="intruder", connection=Connection(
                vtn_url=link.vtn_jid, ssl_context=None, link=link))) as client:
            try:
                registration = await client.register()
            except VtnUnavailable:  # the server refused the name (authzid not the certificate's)
                registration = None
        if registration is not None:  # or the server bound the certificate's own name
            assert registration.ven_id == intruder.cert.fingerprint
        assert await vtn.ctx.storage.vens.by_fingerprint(victim.cert.fingerprint) is None


async def test_a_certificate_of_another_ca_gets_no_session(pki: Pki, tmp_path: Path,
                                                           xmpp_server: XmppServer):
    stranger = client_context(cert=pki.untrusted_ven.cert, key=pki.untrusted_ven.key,
                              ca=pki.ca_cert)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, stranger, pki.untrusted_ven.fingerprint,
                        connect_timeout_s=10.0)
        async with VenClient(VenSettings(ven_name="stranger", connection=Connection(
                vtn_url=link.vtn_jid, ssl_context=None, link=link))) as client:
            with pytest.raises(VtnUnavailable):
                await client.register()
        assert await vtn.ctx.storage.vens.active() == ()


async def test_a_session_without_a_certificate_is_refused_at_once(pki: Pki, tmp_path: Path,
                                                                   xmpp_server: XmppServer):
    """No certificate, no session: the request fails when the server refuses the login (the
    deadline far beyond any test's wait, so reaching it fails the test)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    anonymous = ssl.create_default_context(cafile=str(pki.ca_cert))
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, anonymous, ven.cert.fingerprint,
                        connect_timeout_s=3600.0)
        try:
            async with asyncio.timeout(120):
                with pytest.raises(VtnUnavailable, match="SASL EXTERNAL refused"):
                    await link.post_bytes(Service.EVENT, b"<unused/>")
        finally:
            await link.close()


async def test_naming_another_vens_venid_over_xmpp_is_463(pki: Pki, tmp_path: Path,
                                                          xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as other, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        await other.register()
        await client.register()
        link = client._link  # the client's own transport, to send a hand-made payload
        reply = await link.send(Service.EVENT, RequestEvent(request_id="r",
                                                            ven_id=pki.vens[2].fingerprint))
        assert reply is not None and code_of(reply) == 463
        # and oadrPoll, which XMPP has no use for, is not recognised there
        reply = await link.send(Service.POLL, Poll(ven_id=ven.cert.fingerprint))
        assert reply is not None and code_of(reply) == 453


async def test_registering_for_xmpp_over_http_is_refused(pki: Pki, tmp_path: Path,
                                                         xmpp_server: XmppServer):
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as http_ven:
        reply = await http_ven.post("EiRegisterParty", CreatePartyRegistration(
            request_id="r", ven_name="claims-a-jid", transport_name=TransportName.XMPP,
            transport_address="someone@localhost/ven"))
        assert code_of(reply) == 454
        assert await vtn.ctx.storage.vens.active() == ()


async def test_a_payload_over_the_size_cap_is_refused_before_decoding(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), max_body_bytes=2048) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        await client.register()
        too_big = RequestEvent(request_id="x" * 3000, ven_id=ven.cert.fingerprint)
        with pytest.raises(VtnRefused, match="not-acceptable"):
            await client._link.send(Service.EVENT, too_big)


async def test_a_ven_over_its_byte_budget_is_told_to_wait(pki: Pki, tmp_path: Path,
                                                          xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    # one byte of burst, refilled at a byte per 1,000 s: the first request puts the VEN in debt
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), byte_budget_burst=1,
                        byte_budget_per_s=0.001) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        with pytest.raises(VtnUnavailable, match="resource-constraint"):
            await client.register()  # the query passes; the registration waits
        assert await vtn.ctx.storage.vens.active() == ()


async def test_a_ven_takes_payloads_from_its_vtn_only(pki: Pki, tmp_path: Path,
                                                      xmpp_server: XmppServer):
    target, sender = mint_vens(pki, tmp_path / "vens", 2)
    seen: list[object] = []
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            xmpp_ven(vtn, xmpp_server, target, on_event=seen.append) as client:
        await client.register()
        forger = link_for(vtn, xmpp_server, sender.context, sender.cert.fingerprint)
        forger.vtn_jid = client._link.address or ""
        try:
            forged = DistributeEvent(response=EiResponse(), request_id="f", vtn_id="FORGED",
                                     events=(sample_event("forged", Target(
                                         ven_ids=(target.cert.fingerprint,))),))
            with pytest.raises(VtnRefused, match="forbidden"):
                await forger.send(Service.EVENT, forged)
        finally:
            await forger.close()
        assert seen == []


async def test_an_expired_certificate_gets_no_session(pki: Pki, tmp_path: Path,
                                                      xmpp_server: XmppServer):
    issued = pki.authority.issue("xven-expired", Role.VEN, lifetime=timedelta(seconds=-1))
    cert, key = issued.write(tmp_path)
    expired = client_context(cert=cert, key=key, ca=pki.ca_cert)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, expired, issued.fingerprint, connect_timeout_s=10.0)
        async with VenClient(VenSettings(ven_name="expired", connection=Connection(
                vtn_url=link.vtn_jid, ssl_context=None, link=link))) as client:
            with pytest.raises(VtnUnavailable):
                await client.register()
        assert await vtn.ctx.storage.vens.active() == ()


async def test_a_ven_over_its_request_rate_is_told_to_wait(pki: Pki, tmp_path: Path,
                                                           xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    # one request of burst, refilled at one per 1,000 s
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), rate_limit_burst=1,
                        rate_limit_per_s=0.001) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        with pytest.raises(VtnUnavailable, match="resource-constraint"):
            await client.register()  # the query passes; the registration waits
        assert await vtn.ctx.storage.vens.active() == ()


async def test_a_ven_gets_no_session_from_a_server_it_does_not_trust(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    distrusting = client_context(cert=ven.cert.cert, key=ven.cert.key, ca=pki.untrusted_ca_cert)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, distrusting, ven.cert.fingerprint,
                        connect_timeout_s=10.0)
        async with VenClient(VenSettings(ven_name="careful", connection=Connection(
                vtn_url=link.vtn_jid, ssl_context=None, link=link))) as client:
            with pytest.raises(VtnUnavailable):
                await client.register()
        assert await vtn.ctx.storage.vens.active() == ()


async def test_an_iq_set_without_an_openadr_payload_is_answered_with_an_error(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """RFC 6120 8.2.3: every IQ set is answered; one carrying no oadrPayload with an error, at
    once (not left to the sender's timeout)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint,
                        request_timeout_s=20.0)
        try:
            with pytest.raises(XmppRefused) as refusal:
                await link.post_bytes(Service.EVENT, b'<hello xmlns="urn:example:not-openadr"/>')
            registered = await link.post(Service.REGISTER_PARTY, link.codec.encode(
                CreatePartyRegistration(request_id="r1", ven_name="after",
                                        transport_name=TransportName.XMPP)))
        finally:
            await link.close()
    assert refusal.value.condition == "feature-not-implemented"
    assert registered is not None and registered.response.code == 200  # type: ignore[union-attr]


async def test_a_ven_takes_the_answer_to_its_request_from_its_vtn_only(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """A result carrying the id of a VEN's request, sent by another client, is not the answer:
    the VEN waits for the one from the JID it asked."""
    asker, vtn_cert, forger_cert = mint_vens(pki, tmp_path / "vens", 3)
    vtn_jid = f"{localpart_of(vtn_cert.cert.fingerprint)}@{xmpp_server.domain}/openadr"
    vtn = slixmpp.ClientXMPP(vtn_jid, "", sasl_mech="EXTERNAL", ssl_context=vtn_cert.context)
    vtn.enable_direct_tls = False
    online = asyncio.Event()
    vtn.add_event_handler("session_start", lambda _event: online.set())
    asked: asyncio.Queue[str] = asyncio.Queue()
    vtn.register_handler(Callback("asked", MatchXPath(IQ_WITH_PAYLOAD),
                                  lambda iq: asked.put_nowait(iq["id"])))
    vtn.connect(host="127.0.0.1", port=xmpp_server.port)
    link = XmppLink(host="127.0.0.1", port=xmpp_server.port, domain=xmpp_server.domain,
                    vtn_jid=vtn_jid, fingerprint=asker.cert.fingerprint,
                    ssl_context=asker.context, request_timeout_s=WAIT_S)
    forger = XmppLink(host="127.0.0.1", port=xmpp_server.port, domain=xmpp_server.domain,
                      vtn_jid=vtn_jid, fingerprint=forger_cert.cert.fingerprint,
                      ssl_context=forger_cert.context)
    codec = Codec()
    try:
        async with asyncio.timeout(WAIT_S):
            await online.wait()
            await forger._online_now()
            request = asyncio.create_task(link.send(Service.EVENT, RequestEvent(
                request_id="r", ven_id=asker.cert.fingerprint)))
            key = await asked.get()
            forger._stream.send_raw(iq_bytes(kind="result", iq_id=key, to=link.address,
                                             body=codec.encode(Response(response=EiResponse(
                                                 request_id="forged")))))
            vtn.send_raw(iq_bytes(kind="result", iq_id=key, to=link.address,
                                  body=codec.encode(Response(response=EiResponse(
                                      request_id="genuine")))))
            answer = await request
        assert isinstance(answer, Response) and answer.response.request_id == "genuine"
    finally:
        await link.close()
        await forger.close()
        await vtn.disconnect(wait=1.0)


async def test_a_payload_reaches_the_codec_as_the_bytes_the_server_wrote(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, monkeypatch: pytest.MonkeyPatch):
    # slixmpp's tree of a payload is serialised again only for an IQ of another shape
    serialised: list[bytes | None] = []

    def counted(stanza: ET.Element) -> bytes | None:
        serialised.append(payload_of(stanza))
        return serialised[-1]

    monkeypatch.setattr(vtn.xmpp, "payload_of", counted)
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn_node, \
            xmpp_ven(vtn_node, xmpp_server, ven) as client:
        await client.register()
        assert serialised == []
        # an empty payload (the server writes it self-closing): the framer leaves the IQ to
        # slixmpp, and the codec refuses what slixmpp's tree gives, as it did before the framer
        answer = await client._link.post_bytes(
            Service.REGISTER_PARTY, f"<oadrPayload xmlns='{PAYLOAD_NAMESPACE}'/>".encode())
        assert answer is not None
        assert code_of(decode(answer)) == 454
        assert len(serialised) == 1 and serialised[0] is not None
        assert serialised[0].endswith(b"/>")
