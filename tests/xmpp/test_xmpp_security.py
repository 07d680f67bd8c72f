"""What holds on XMPP that holds on HTTP: a VEN is its certificate and nothing it says, and the
VTN's caps and budgets apply before a payload is decoded. On a real Prosody per test."""

from __future__ import annotations

import asyncio
import logging
import ssl
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from devpki import Role
from schemas import (
    Codec,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    DistributeEvent,
    EiResponse,
    OptType,
    Poll,
    QueryRegistration,
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
    fingerprint_of_jid,
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
from vtn import xmpp as vtn_xmpp
from vtn.app import XMPP
from vtn.services import Handlers, events
from vtn.transport import Peer

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


def test_a_full_jid_of_the_servers_domain_names_its_localparts_fingerprint():
    fingerprint = "0A:1B:2C:3D:4E:5F:60:71:82:93"
    for jid in ("0a1b2c3d4e5f60718293@localhost/ven", "0A1B2C3D4E5F60718293@LocalHost/v/@x"):
        assert fingerprint_of_jid(jid, "localhost") == fingerprint
    for other in ("0a1b2c3d4e5f60718293@localhost", "0a1b2c3d4e5f60718293@localhost/",
                  "0a1b2c3d4e5f60718293@example.org/ven", "localhost/0a1b2c3d4e5f60718293@x",
                  "0a1b2c3d4e5f60718293@sub.localhost/ven", "vtn@localhost/ven", "",
                  "@localhost/ven", "x@0a1b2c3d4e5f60718293@localhost/ven"):
        assert fingerprint_of_jid(other, "localhost") is None


def test_a_senders_peer_is_its_jids_certificate_remembered_for_so_many_senders():
    peer_of, remembered = vtn_xmpp._peer_of, vtn_xmpp._PEERS_REMEMBERED
    jid = "0a1b2c3d4e5f60718293@localhost/ven"
    peer = peer_of(jid, "localhost")
    assert peer == Peer("0A:1B:2C:3D:4E:5F:60:71:82:93", address=jid)
    assert peer_of(jid, "example.org") is None
    assert peer_of("vtn@localhost/ven", "localhost") is None
    for n in range(remembered + 1):
        peer_of(f"0a1b2c3d4e5f60718293@localhost/{n}", "localhost")
    assert peer_of.cache_info().currsize == remembered
    assert peer_of(jid, "localhost") == peer  # read again, the same answer


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
        answers = await _refusal_then_registration(
            link, b'<hello xmlns="urn:example:not-openadr"/>')
    assert answers == ("feature-not-implemented", 200)


async def _refusal_then_registration(link: XmppLink, body: bytes) -> tuple[str, int]:
    """The XMPP error condition ``body`` is refused with, then the code answering a
    registration sent on the same link afterwards; the link is closed."""
    try:
        with pytest.raises(XmppRefused) as refusal:
            await link.post_bytes(Service.EVENT, body)
        registered = await link.post(Service.REGISTER_PARTY, link.codec.encode(
            CreatePartyRegistration(request_id="r1", ven_name="after",
                                    transport_name=TransportName.XMPP)))
    finally:
        await link.close()
    assert isinstance(registered, CreatedPartyRegistration)
    return refusal.value.condition, registered.response.code


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


@pytest.mark.parametrize("forged_by", ["another client", "the VEN, as a request"])
async def test_the_vtn_takes_the_answer_to_its_push_from_that_ven_only(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, forged_by: str):
    """A result carrying the id of an IQ the VTN pushed, sent by another client, is not the
    answer, nor is an IQ set carrying that id from the VEN itself (only results and errors reach
    the answer handler): the VTN waits for the VEN's result."""
    target, forger_cert = mint_vens(pki, tmp_path / "vens", 2)
    codec = Codec()
    pushed = asyncio.Event()
    release = asyncio.Event()

    async def answer(_body: bytes) -> bytes:
        pushed.set()
        await release.wait()
        return codec.encode(Response(response=EiResponse(request_id="genuine")))

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        transport = vtn.app[XMPP]
        ven = link_for(vtn, xmpp_server, target.context, target.cert.fingerprint)
        ven.answer_with(answer)
        forger = link_for(vtn, xmpp_server, forger_cert.context, forger_cert.cert.fingerprint)
        try:
            async with asyncio.timeout(WAIT_S):
                await ven.connect()
                await forger.connect()
                push = asyncio.create_task(transport.send(ven.address, DistributeEvent(
                    response=EiResponse(), request_id="p", vtn_id="vtn",
                    events=(sample_event("e1", Target(ven_ids=(target.cert.fingerprint,))),))))
                await pushed.wait()  # the VEN holds the IQ; its answer waits for ``release``
                # the pushed IQ's id, as a snooping client might learn
                (key,) = transport._sessions[0].sent
                if forged_by == "another client":
                    sender, kind = forger, "result"
                    body = codec.encode(Response(response=EiResponse(request_id="forged")))
                else:  # no oadrPayload: slixmpp's parser, not the framer, reads it
                    sender, kind = ven, "set"
                    body = b'<hello xmlns="urn:example:not-openadr"/>'
                sender._stream.send_raw(iq_bytes(kind=kind, iq_id=key, to=transport.jid,
                                                 body=body))
                # the VTN reads one sender's stanzas in order: once it answered the sender's
                # ping, it has had the forged IQ
                await sender._stream.plugin["xep_0199"].ping(jid=transport.jid, timeout=WAIT_S)
                assert not push.done()
                release.set()
                answer_to_push = await push
            assert (isinstance(answer_to_push, Response)
                    and answer_to_push.response.request_id == "genuine")
        finally:
            release.set()
            await ven.close()
            await forger.close()


async def test_an_xmpp_registration_is_sent_to_the_stamped_jid_not_the_one_it_names(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    ven, victim = mint_vens(pki, tmp_path / "vens", 2)
    victim_jid = f"{localpart_of(victim.cert.fingerprint)}@{xmpp_server.domain}/ven"
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint)
        try:
            reply = await link.post(Service.REGISTER_PARTY, link.codec.encode(
                CreatePartyRegistration(request_id="r1", ven_name="redirector",
                                        transport_name=TransportName.XMPP,
                                        transport_address=victim_jid)))
            own_jid = link.address
        finally:
            await link.close()
        assert isinstance(reply, CreatedPartyRegistration) and reply.response.code == 200
        stored = await vtn.ctx.storage.vens.by_fingerprint(ven.cert.fingerprint)
        assert stored is not None and stored.transport_address == own_jid != victim_jid
        assert await vtn.ctx.storage.vens.by_fingerprint(victim.cert.fingerprint) is None


async def test_the_byte_budget_is_one_bucket_per_certificate_over_http_and_xmpp(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """A VEN that spent its bytes over HTTP is told to wait over XMPP, on its first payload
    there; another certificate's first payload is answered."""
    spender, other = mint_vens(pki, tmp_path / "vens", 2)
    query = Codec().encode(QueryRegistration(request_id="q"))
    # one byte of burst, refilled at a byte per 1,000 s: the first request puts a VEN in debt
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), byte_budget_burst=1,
                        byte_budget_per_s=0.001) as vtn, \
            raw_ven(vtn.url, spender.context) as over_http:
        spent_over_http = await over_http.post("EiRegisterParty", QueryRegistration(request_id="h"))
        assert isinstance(spent_over_http, CreatedPartyRegistration)
        spent = link_for(vtn, xmpp_server, spender.context, spender.cert.fingerprint)
        fresh = link_for(vtn, xmpp_server, other.context, other.cert.fingerprint)
        try:
            with pytest.raises(VtnUnavailable, match="resource-constraint"):
                await spent.post(Service.REGISTER_PARTY, query)
            answered = await fresh.post(Service.REGISTER_PARTY, query)
        finally:
            await spent.close()
            await fresh.close()
        assert isinstance(answered, CreatedPartyRegistration) and answered.response.code == 200


async def test_a_vtn_at_its_in_flight_cap_tells_an_xmpp_ven_to_wait(pki: Pki, tmp_path: Path,
                                                                    xmpp_server: XmppServer):
    """The in-flight cap answers over XMPP as the rate and budgets do: `resource-constraint`,
    type `wait`. With a cap of 1, one VEN's registration held in the VTN's hook fills it."""
    holder, waiter = mint_vens(pki, tmp_path / "vens", 2)
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(_registration: object) -> bool:
        entered.set()
        await release.wait()
        return True

    query = Codec().encode(QueryRegistration(request_id="q"))
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), max_in_flight=1,
                        handlers=Handlers(on_register=held)) as vtn:
        first = link_for(vtn, xmpp_server, holder.context, holder.cert.fingerprint)
        second = link_for(vtn, xmpp_server, waiter.context, waiter.cert.fingerprint)
        try:
            registering = asyncio.create_task(first.post(
                Service.REGISTER_PARTY, first.codec.encode(CreatePartyRegistration(
                    request_id="r1", ven_name="held", transport_name=TransportName.XMPP))))
            async with asyncio.timeout(WAIT_S):
                await entered.wait()
            with pytest.raises(VtnUnavailable, match="resource-constraint: the VTN is at its "
                                                     "in-flight cap"):
                await second.post(Service.REGISTER_PARTY, query)
            release.set()
            registered = await registering
            answered = await second.post(Service.REGISTER_PARTY, query)  # room again
        finally:
            release.set()
            await first.close()
            await second.close()
    assert isinstance(registered, CreatedPartyRegistration) and registered.response.code == 200
    assert isinstance(answered, CreatedPartyRegistration) and answered.response.code == 200


def _nested(depth: int, namespace: str) -> bytes:
    """A payload element of ``namespace`` with ``depth`` elements nested inside it."""
    return (f'<nested xmlns="{namespace}">' + "<a>" * depth + "</a>" * depth
            + "</nested>").encode()


@pytest.mark.parametrize("namespace", ["urn:example:not-openadr", PAYLOAD_NAMESPACE])
async def test_a_stanza_nested_thousands_deep_is_refused_and_the_vtn_stays_online(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, namespace: str,
        caplog: pytest.LogCaptureFixture):
    """Red team: 2,000 levels in one IQ (14 KB) made the XMPP library's answer to it -- its
    reply copies the request recursively -- raise RecursionError out of the stream's reader,
    which ended the VTN's session; the request itself was never answered. Any client of the
    server could keep the VTN off XMPP by sending one every ``reconnect_s``."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint,
                        request_timeout_s=WAIT_S)
        with caplog.at_level(logging.INFO):
            answers = await _refusal_then_registration(link, _nested(2000, namespace))
    assert answers == ("not-acceptable", 200)
    assert [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_stanza_nested_thousands_deep_leaves_a_ven_online(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, caplog: pytest.LogCaptureFixture):
    """The same stanza sent to a VEN by another client: refused, the VEN's session kept."""
    target, sender = mint_vens(pki, tmp_path / "vens", 2)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            xmpp_ven(vtn, xmpp_server, target) as client:
        await client.register()
        forger = link_for(vtn, xmpp_server, sender.context, sender.cert.fingerprint,
                          request_timeout_s=WAIT_S)
        forger.vtn_jid = client._link.address or ""
        try:
            with caplog.at_level(logging.INFO):
                with pytest.raises(XmppRefused) as refusal:
                    await forger.post_bytes(Service.EVENT, _nested(2000, PAYLOAD_NAMESPACE))
                await client.register()  # its session still carries requests
        finally:
            await forger.close()
    assert refusal.value.condition == "not-acceptable"
    assert [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()] == []


async def test_a_ven_over_its_rate_is_refused_before_its_payload_is_serialised(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, monkeypatch: pytest.MonkeyPatch):
    """Red team: the payload of a request was serialised for the codec (pure Python, ~85 ms for
    256 KiB of small elements, load 4) and the refusal built by copying the request (~65 ms)
    before the VEN's rate and budgets were asked, so a VEN far over its limits still cost the
    VTN that CPU per stanza. Now the limits come first and the error is written out. (A payload
    within ``max_body_bytes`` is taken off the stream as bytes and never serialised; one larger
    than the framer holds goes through slixmpp's tree, the path this test takes.)"""
    serialised: list[int] = []

    def counting(stanza: Any) -> bytes | None:
        body = payload_of(stanza)
        serialised.append(len(body or b""))
        return body

    monkeypatch.setattr(vtn_xmpp, "payload_of", counting)
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), rate_limit_burst=1,
                        rate_limit_per_s=0.001, max_body_bytes=64 * 1024) as vtn:
        link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint,
                        request_timeout_s=WAIT_S)
        big = (f'<oadrPayload xmlns="{PAYLOAD_NAMESPACE}">'.encode() + b"<a/>" * 50_000
               + b"</oadrPayload>")
        try:
            # within the burst: serialised, then refused by its size
            with pytest.raises(XmppRefused) as too_big:
                await link.post_bytes(Service.EVENT, big)
            with pytest.raises(VtnUnavailable, match="resource-constraint"):
                await link.post_bytes(Service.EVENT, big)
        finally:
            await link.close()
    assert too_big.value.condition == "not-acceptable"
    assert len(serialised) == 1 and serialised[0] > 200_000


@pytest.mark.parametrize("to_ven", [False, True], ids=["to-the-vtn", "to-a-ven"])
async def test_an_iq_get_carrying_a_payload_is_answered_with_an_error(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, to_ven: bool):
    """Red team: the VTN (and a VEN) took an IQ ``get`` carrying an oadrPayload and never
    answered it, so its sender waited out its timeout (RFC 6120 8.2.3: every request gets an
    answer)."""
    sender, target = mint_vens(pki, tmp_path / "vens", 2)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, sender.context, sender.cert.fingerprint)
        other = link_for(vtn, xmpp_server, target.context, target.cert.fingerprint)
        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def take(iq: Any) -> None:
            if iq["id"] == "get-1" and not answered.done():
                answered.set_result(iq)

        try:
            await link.connect()
            await other.connect()
            to = other.address if to_ven else link.vtn_jid
            link._stream.register_handler(Callback("get-answer", MatchXPath("{jabber:client}iq"),
                                                   take))
            link._stream.send_raw(
                f"<iq type='get' id='get-1' to='{to}'>".encode()
                + link.codec.encode(Poll(ven_id=sender.cert.fingerprint)).split(b"?>", 1)[1]
                + b"</iq>")
            async with asyncio.timeout(WAIT_S):
                answer = await answered
        finally:
            await link.close()
            await other.close()
    assert answer["type"] == "error" and answer["error"]["condition"] == "bad-request"


async def test_a_stanza_nested_thousands_deep_leaves_a_send_only_session_online(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, caplog: pytest.LogCaptureFixture):
    """With ``[xmpp] sessions``, the sessions that only send have JIDs of their own, which any
    client can address: the same stanza sent to one of them is refused and that session kept."""
    (sender,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), sessions=2) as vtn:
        send_only = vtn.app[XMPP]._sessions[1]
        forger = link_for(vtn, xmpp_server, sender.context, sender.cert.fingerprint,
                          request_timeout_s=WAIT_S)
        forger.vtn_jid = send_only.client.boundjid.full
        try:
            with caplog.at_level(logging.INFO):
                with pytest.raises(XmppRefused) as refusal:
                    await forger.post_bytes(Service.EVENT, _nested(2000, PAYLOAD_NAMESPACE))
                # the session read on past it: it answers a ping from the same sender
                await forger._stream.plugin["xep_0199"].ping(jid=forger.vtn_jid, timeout=WAIT_S)
        finally:
            await forger.close()
        assert send_only.online.is_set()
    assert refusal.value.condition == "not-acceptable"
    assert [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()] == []


async def test_a_payload_reaches_the_codec_as_the_bytes_the_server_wrote(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, monkeypatch: pytest.MonkeyPatch):
    # slixmpp's tree of a payload is serialised again only for an IQ of another shape
    serialised: list[bytes | None] = []

    def counted(stanza: ET.Element) -> bytes | None:
        serialised.append(payload_of(stanza))
        return serialised[-1]

    monkeypatch.setattr(vtn_xmpp, "payload_of", counted)
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


async def test_a_payload_nested_thousands_deep_taken_as_bytes_is_refused_by_the_codec(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, caplog: pytest.LogCaptureFixture):
    """An oadrPayload 2,000 deep reaches the VTN's framer, not slixmpp's tree: read without
    recursion and refused by the codec's parser (454); the session stays up."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    deep = (f'<oadrPayload xmlns="{PAYLOAD_NAMESPACE}">'.encode() + b"<a>" * 2000
            + b"</a>" * 2000 + b"</oadrPayload>")
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint,
                        request_timeout_s=WAIT_S)
        try:
            with caplog.at_level(logging.INFO):
                answer = await link.post_bytes(Service.EVENT, deep)
                registered = await link.post(Service.REGISTER_PARTY, link.codec.encode(
                    QueryRegistration(request_id="q")))
        finally:
            await link.close()
    assert answer is not None and code_of(decode(answer)) == 454
    assert isinstance(registered, CreatedPartyRegistration)
    assert [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()] == []


async def test_the_vtns_payload_reaches_a_ven_as_the_bytes_the_server_wrote(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, monkeypatch: pytest.MonkeyPatch):
    """The VEN's framer takes the VTN's IQ set off the stream: slixmpp builds no stanza of it
    (its handler, which serialises the payload again, sees only the answers to the VEN's own
    requests), and the event is answered."""
    trees: list[str] = []
    on_request = XmppLink._on_request

    async def counted(link: XmppLink, iq: Any) -> None:
        trees.append(iq["type"])
        await on_request(link, iq)

    monkeypatch.setattr(XmppLink, "_on_request", counted)
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    acked = asyncio.Event()
    seen: list[str] = []

    def on_event(event: Any) -> OptType:
        seen.append(event.event_id)
        return OptType.OPT_IN

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), handlers=Handlers(
            on_event_response=lambda _v, _r: acked.set())) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven, on_event=on_event) as client:
        await client.register()
        await events.publish_event(vtn.ctx, sample_event("framed", Target(
            ven_ids=(ven.cert.fingerprint,))))
        async with asyncio.timeout(WAIT_S):
            await acked.wait()
    assert seen == ["framed"]
    assert "result" in trees and "set" not in trees


async def test_a_payload_nested_thousands_deep_taken_as_bytes_leaves_a_ven_online(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, caplog: pytest.LogCaptureFixture):
    """An oadrPayload 2,000 deep sent to a VEN (from another session of the VTN's certificate,
    whose payloads it takes) reaches its framer, not slixmpp's tree: read without recursion,
    answered with the codec's refusal; the VEN's session stays up."""
    deep = (f'<oadrPayload xmlns="{PAYLOAD_NAMESPACE}">'.encode() + b"<a>" * 2000
            + b"</a>" * 2000 + b"</oadrPayload>")
    (target,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            xmpp_ven(vtn, xmpp_server, target) as client:
        await client.register()
        sender = link_for(vtn, xmpp_server, pki.client_context(ven=pki.vtn),
                          pki.vtn.fingerprint, resource="sender", request_timeout_s=WAIT_S)
        sender.vtn_jid = client._link.address or ""
        try:
            with caplog.at_level(logging.INFO):
                answer = await sender.post_bytes(Service.EVENT, deep)
                await client.register()  # its session still carries requests
        finally:
            await sender.close()
    assert answer is not None and code_of(decode(answer)) == 454
    assert [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()] == []
