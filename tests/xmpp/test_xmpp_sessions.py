"""A VTN with several XMPP sessions (``[xmpp] sessions``): its payloads go out over all of them,
each session with its own window; a VEN's answer counts only from the JID the payload went to;
any session that drops comes back, and what was in flight on it is sent again. On a real
Prosody per test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from schemas import (
    Codec,
    DistributeEvent,
    EiResponse,
    Event,
    OptType,
    QueryRegistration,
    Response,
    Service,
    Target,
)
from schemas.logtext import MAX_LOGGED_CHARS, escaped
from schemas.xmpp import IQ_WITH_PAYLOAD, iq_bytes, localpart_of, payload_of
from tests.kit.pki import Pki
from tests.kit.vtn import RunningVtn
from tests.vtn.harness import sample_event
from ven.xmpp import XmppLink
from vtn.app import XMPP
from vtn.services import Handlers, events
from vtn.storage import OptType as StoredOpt

from .conftest import Ven, link_for, mint_vens, xmpp_ven, xmpp_vtn
from .server import XmppServer

WAIT_S = 60.0  # bounds a wait that should end at once (no timing is asserted)


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}"


def _body(vtn: RunningVtn, event_id: str) -> bytes:
    return Codec().encode(DistributeEvent(request_id=event_id, vtn_id=vtn.ctx.vtn_id, events=(
        sample_event(event_id, Target(ven_ids=("x",))),)))


def _answer(request_id: str) -> bytes:
    return Codec().encode(Response(response=EiResponse(request_id=request_id)))


@contextlib.asynccontextmanager
async def _raw_client(server: XmppServer, ven: Ven) -> AsyncIterator[tuple[slixmpp.ClientXMPP,
                                                                            asyncio.Queue[Any]]]:
    """A bare XMPP client under ``ven``'s certificate: the IQs with a payload it gets, queued
    unanswered (the test answers them)."""
    jid = f"{localpart_of(ven.cert.fingerprint)}@{server.domain}/raw"
    client = slixmpp.ClientXMPP(jid, "", sasl_mech="EXTERNAL", ssl_context=ven.context)
    client.enable_direct_tls = False
    client.register_plugin("xep_0199")  # ping: a stanza known to be read by the one pinged
    online = asyncio.Event()
    client.add_event_handler("session_start", lambda _event: online.set())
    got: asyncio.Queue[Any] = asyncio.Queue()
    client.register_handler(Callback("got", MatchXPath(IQ_WITH_PAYLOAD), got.put_nowait))
    client.connect(host="127.0.0.1", port=server.port)
    try:
        async with asyncio.timeout(WAIT_S):
            await online.wait()
        yield client, got
    finally:
        await client.disconnect(wait=1.0)


async def test_payloads_go_out_over_every_session_each_with_its_own_window(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """Three sessions, a window of one each: three payloads are out at once, each from another
    of the VTN's JIDs (one of them the JID VENs send to); the fourth goes only once one is
    answered, and every answer goes back to the JID that sent."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), sessions=3,
                        max_sends_in_flight=1) as vtn, \
            _raw_client(xmpp_server, ven) as (client, got):
        transport = vtn.app[XMPP]
        sends = [asyncio.create_task(transport.send_body(client.boundjid.full,
                                                         _body(vtn, f"e{n}")))
                 for n in range(4)]
        async with asyncio.timeout(WAIT_S):
            out = [await got.get() for _ in range(3)]
            senders = {iq["from"] for iq in out}
            assert len(senders) == 3
            assert {s.bare for s in senders} == {slixmpp.JID(transport.jid).bare}
            assert slixmpp.JID(transport.jid) in senders
            assert got.empty() and not any(send.done() for send in sends)
            first = out[0]
            _answer_as_asked(client, first)
            out.append(await got.get())
            assert sum(send.done() for send in sends) == 1
            assert out[3]["from"] == first["from"]  # the freed session's slot
            for iq in out[1:]:
                _answer_as_asked(client, iq)
            replies = await asyncio.gather(*sends)
    assert [_request_id(reply) for reply in replies] == ["e0", "e1", "e2", "e3"]


async def test_an_answer_counts_only_from_the_jid_asked_to_the_session_that_asked(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """A result with the id of a payload in flight, from another client or to another of the
    VTN's sessions, is not the answer: the send takes the one from the JID it went to, sent to
    the session that sent it. (Each forged result is followed by a ping of the same session from
    the same client, answered only once the session has read what came before it.)"""
    ven, forger_ven = mint_vens(pki, tmp_path / "vens", 2)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), sessions=2) as vtn, \
            _raw_client(xmpp_server, ven) as (client, got), \
            _raw_client(xmpp_server, forger_ven) as (forger, _):
        transport = vtn.app[XMPP]
        send = asyncio.create_task(transport.send_body(client.boundjid.full, _body(vtn, "e0")))
        async with asyncio.timeout(WAIT_S):
            iq = await got.get()
            sender = iq["from"].full
            other = next(s.jid for s in transport._sessions if s.jid != sender)
            forger.send_raw(iq_bytes(kind="result", iq_id=iq["id"], to=sender,
                                     body=_answer("forged")))
            await forger.plugin["xep_0199"].ping(jid=sender, timeout=WAIT_S)
            client.send_raw(iq_bytes(kind="result", iq_id=iq["id"], to=other,
                                     body=_answer("elsewhere")))
            await client.plugin["xep_0199"].ping(jid=other, timeout=WAIT_S)
            assert not send.done()
            _answer_as_asked(client, iq)
            assert _request_id(await send) == "e0"


@pytest.mark.parametrize("dropped", [0, 1, 2])
async def test_any_session_that_drops_comes_back_and_carries_payloads_again(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer, dropped: int):
    """The connection of one of three sessions is cut: it connects again under the same JID,
    and a payload sent over it is answered (the first session is also the one VENs send to:
    a VEN's request is answered after it too)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), sessions=3, reconnect_s=0.2) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        await client.register()
        stored = await vtn.ctx.storage.vens.by_fingerprint(ven.cert.fingerprint)
        assert stored is not None and stored.transport_address is not None
        session = vtn.app[XMPP]._sessions[dropped]
        dropped_once = asyncio.Event()
        session.client.add_event_handler("disconnected", lambda _why: dropped_once.set(),
                                         disposable=True)
        session.client.transport.abort()  # the connection is gone, as when a network drops
        async with asyncio.timeout(WAIT_S):
            await dropped_once.wait()
            await session.online.wait()
            reply = await session.exchange(stored.transport_address, _body(vtn, "after-drop"))
            await client.register()
        assert payload_of(reply.xml) is not None and reply["from"].full == stored.transport_address


async def test_a_payload_in_flight_on_a_session_that_drops_is_sent_again_and_acknowledged(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """An event is out on one of two sessions when that session's connection is cut: its send
    fails at once (not at its timeout), the push lane sends it again and the VEN's answer is
    stored. Nothing is lost."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    calls: list[str] = []
    held, release = asyncio.Event(), asyncio.Event()
    acked: asyncio.Queue[str] = asyncio.Queue()

    async def holding_the_first(event: Event) -> OptType:
        calls.append(event.event_id)
        if len(calls) == 1:
            held.set()
            await release.wait()
        return OptType.OPT_IN

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), sessions=2, reconnect_s=0.2,
                        push_retry_s=0.2, request_timeout_s=3600.0,
                        handlers=Handlers(on_event_response=lambda v, _r: acked.put_nowait(v))
                        ) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven, on_event=holding_the_first) as client:
        await client.register()
        try:
            async with asyncio.timeout(WAIT_S):
                await events.publish_event(vtn.ctx, sample_event("kept", Target(
                    ven_ids=(ven.cert.fingerprint,))))
                await held.wait()
                (carrying,) = [s for s in vtn.app[XMPP]._sessions if s.sent]
                carrying.client.transport.abort()
                assert await acked.get() == ven.cert.fingerprint
        finally:
            release.set()
        assert calls == ["kept", "kept"]
        deliveries = await vtn.ctx.storage.events.deliveries("kept")
        assert [d.ack_opt_type for d in deliveries] == [StoredOpt.OPT_IN]


async def test_payloads_sent_in_one_turn_of_the_loop_leave_in_one_write(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """Three sends started together are one write to the connection (so TLS puts them in one
    record, and the server reads them in one turn), and each is answered as its own IQ."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            _raw_client(xmpp_server, ven) as (client, got):
        transport = vtn.app[XMPP]
        stream = transport._sessions[0].client
        writes: list[str | bytes] = []
        send_raw = stream.send_raw
        stream.send_raw = lambda data: (writes.append(data), send_raw(data))[1]
        sends = [asyncio.create_task(transport.send_body(client.boundjid.full,
                                                         _body(vtn, f"e{n}")))
                 for n in range(3)]
        async with asyncio.timeout(WAIT_S):
            for _ in range(3):
                _answer_as_asked(client, await got.get())
            replies = await asyncio.gather(*sends)
    assert [_request_id(reply) for reply in replies] == ["e0", "e1", "e2"]
    iqs = [write.count(b"<iq ") for write in writes if isinstance(write, bytes)]
    assert [count for count in iqs if count] == [3]


def _request_id(body: bytes | None) -> str:
    assert body is not None
    message = Codec().decode(body)
    assert isinstance(message, (Response, DistributeEvent))
    return message.response.request_id if isinstance(message, Response) else message.request_id


def _answer_as_asked(client: slixmpp.ClientXMPP, iq: Any, *, to: str | None = None) -> None:
    """A result for ``iq`` echoing its requestID, to the JID it came from (or ``to``)."""
    client.send_raw(iq_bytes(kind="result", iq_id=iq["id"], to=to or iq["from"].full,
                             body=_answer(_request_id(payload_of(iq.xml)))))


class _Stall:
    """A call that never returns by itself: ``entered`` once it is made, ``cancelled`` once it
    was cancelled."""

    def __init__(self) -> None:
        self.entered, self.cancelled = asyncio.Event(), asyncio.Event()

    async def __call__(self, *_args: object) -> Any:
        self.entered.set()
        try:
            return await asyncio.get_running_loop().create_future()
        finally:
            self.cancelled.set()


def _running(prefix: str) -> list[str]:
    """The names of this loop's tasks that start with ``prefix``."""
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith(prefix)]


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_ven_link_closed_while_serving_a_payload_leaves_no_task_running(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """The VEN's link is closed while its client is still answering a payload the VTN sent: the
    answer is cancelled and, once ``close`` returns, no task of the link's is left running (was:
    the task serving it outlived the link, answering on a closed stream)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    answer = _Stall()  # a hook still at work
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
        link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint)
        link.answer_with(answer)
        push: asyncio.Task[Any] | None = None
        try:
            async with asyncio.timeout(WAIT_S):
                await link.connect()
                push = asyncio.create_task(vtn.app[XMPP].send_body(link.address, _body(vtn, "e")))
                await answer.entered.wait()
                await link.close()
            assert answer.cancelled.is_set()
            assert _running("crowdflex-ven-xmpp") == []
        finally:
            await _cancel(push)
            await link.close()


async def test_a_vtn_stopped_while_serving_an_xmpp_request_leaves_no_task_running(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """A VEN's request over XMPP is still in service (its storage call has not returned) when
    the VTN stops: the request is cancelled with the sessions, and no task of the XMPP face is
    left running once the VTN has stopped (was: it outlived the VTN)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    lookup = _Stall()  # a storage call that has not returned
    asking: asyncio.Task[Any] | None = None
    link = None
    try:
        async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn:
            vtn.ctx.storage.vens.by_fingerprint = lookup  # type: ignore[method-assign]
            link = link_for(vtn, xmpp_server, ven.context, ven.cert.fingerprint)
            async with asyncio.timeout(WAIT_S):
                await link.connect()
                asking = asyncio.create_task(link.post(Service.REGISTER_PARTY, link.codec.encode(
                    QueryRegistration(request_id="q"))))
                await lookup.entered.wait()
        assert lookup.cancelled.is_set()
        assert _running("crowdflex-vtn-xmpp") == []
    finally:
        await _cancel(asking)
        if link is not None:
            await link.close()


async def test_a_request_task_is_named_with_its_iq_id_escaped_and_cut(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """The IQ id is the VEN's own text, as long as the server's stanza cap lets it be: the task
    serving its request is named with it as peer text is logged (schemas.logtext.escaped: at
    most MAX_LOGGED_CHARS kept, control characters escaped, though XML's attribute rules leave
    none here), since asyncio writes a task's name into log lines (a task whose exception
    nobody retrieved). Was: the whole id, 20,000 characters."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    lookup = _Stall()  # holds the request in service while its task is looked at
    iq_id = "x" * 20_000
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            _raw_client(xmpp_server, ven) as (client, _):
        vtn.ctx.storage.vens.by_fingerprint = lookup  # type: ignore[method-assign]
        client.send_raw(iq_bytes(kind="set", iq_id=iq_id, to=vtn.app[XMPP].jid,
                                 body=Codec().encode(QueryRegistration(request_id="q"))))
        async with asyncio.timeout(WAIT_S):
            await lookup.entered.wait()
        (name,) = _running("crowdflex-vtn-xmpp:")
    assert name == f"crowdflex-vtn-xmpp:{escaped(iq_id)}"
    assert len(name) < MAX_LOGGED_CHARS + 50


async def test_a_payload_task_of_the_ven_is_named_with_its_iq_id_escaped_and_cut(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """The VEN's link names the task answering a payload as the VTN's face does (the previous
    test): the id is the sender's text. A raw client stands for the VTN (the link takes
    payloads from the JID it is given as the VTN's). Was: the whole id, 20,000 characters."""
    ven, sender = mint_vens(pki, tmp_path / "vens", 2)
    answer = _Stall()  # holds the payload in service while its task is looked at
    iq_id = "x" * 20_000
    async with _raw_client(xmpp_server, sender) as (client, _):
        link = XmppLink(host="127.0.0.1", port=xmpp_server.port, domain=xmpp_server.domain,
                        vtn_jid=client.boundjid.full, fingerprint=ven.cert.fingerprint,
                        ssl_context=ven.context)
        link.answer_with(answer)
        try:
            async with asyncio.timeout(WAIT_S):
                await link.connect()
                client.send_raw(iq_bytes(kind="set", iq_id=iq_id, to=link.address,
                                         body=Codec().encode(QueryRegistration(request_id="q"))))
                await answer.entered.wait()
            (name,) = _running("crowdflex-ven-xmpp:")
        finally:
            await link.close()
    assert name == f"crowdflex-ven-xmpp:{escaped(iq_id)}"
    assert len(name) < MAX_LOGGED_CHARS + 50
