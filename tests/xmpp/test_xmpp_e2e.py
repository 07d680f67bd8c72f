"""OpenADR 2.0b over XMPP end to end: a crowdflex VTN and crowdflex VENs as clients of a real
Prosody, every link mutual TLS, every client named by its certificate (SASL EXTERNAL).

Registration, an event fanned out to 100 VENs with every acknowledgement stored, reports and
opts, and one VTN serving an HTTP VEN and an XMPP VEN at once from the same services and the
same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest
import uvloop

from devpki import Role
from schemas import (
    CreatedEvent,
    DistributeEvent,
    Event,
    EventResponse,
    Message,
    OptReason,
    OptType,
    Report,
    ReportInterval,
    ReportPayload,
    Target,
    TransportName,
)
from schemas.xmpp import FEATURE, SERVICES_NODE, XMPP_SERVICES, localpart_of, service_node
from tests.kit.net import free_port
from tests.kit.pki import Pki
from tests.kit.vtn import running_vtn
from tests.ven.test_openleadr_interop import telemetry_descriptions
from tests.vtn.harness import sample_event
from ven import Connection, Hooks, VenClient, VenSettings
from ven.xmpp import XmppLink
from vtn.app import XMPP
from vtn.services import Handlers, events
from vtn.settings import XmppSettings
from vtn.storage import OptType as StoredOpt

from .conftest import mint_vens, xmpp_ven, xmpp_vtn
from .server import XmppServer, require_prosody

WAIT_S = 60.0  # bounds a wait that should end at once (no timing is asserted)


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}"


async def test_a_ven_registers_over_xmpp_as_its_certificate(pki: Pki, tmp_path: Path,
                                                            xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        registration = await client.register()
        assert registration.ven_id == ven.cert.fingerprint
        stored = await vtn.ctx.storage.vens.by_fingerprint(ven.cert.fingerprint)
        assert stored is not None and stored.transport_name == TransportName.XMPP
        # the VTN sends to the JID the server stamped, which names the certificate
        assert stored.transport_address == (
            f"{localpart_of(ven.cert.fingerprint)}@{xmpp_server.domain}/ven")
        assert TransportName.XMPP in vtn.ctx.transports


async def test_each_session_is_one_connection_to_the_server(pki: Pki, tmp_path: Path,
                                                           xmpp_server: XmppServer):
    """STARTTLS at once: no first attempt at direct TLS that the server drops (for thousands of
    devices that doubled the connections the server had to take)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        await client.register()
        log = (xmpp_server.directory / "prosody.log").read_text()
    assert log.count("Stream encrypted") == 2  # the VTN's session and the VEN's
    # every other connection: at most XmppServer.start's probe (logged when Prosody gets to it)
    assert log.count("Client connected") - 2 <= 1


async def test_an_event_reaches_100_xmpp_vens_and_every_ack_is_stored(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    vens = mint_vens(pki, tmp_path / "vens", 100)
    ven_ids = {v.cert.fingerprint for v in vens}
    acked: set[str] = set()
    all_acked = asyncio.Event()

    def on_ack(ven_id: str, _response: object) -> None:
        acked.add(ven_id)
        if acked == ven_ids:
            all_acked.set()

    seen: dict[str, list[str]] = {}

    def answering(fingerprint: str):  # type: ignore[no-untyped-def]
        def on_event(event: Event) -> OptType:
            seen.setdefault(fingerprint, []).append(event.event_id)
            return OptType.OPT_IN
        return on_event

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path),
                        handlers=Handlers(on_event_response=on_ack)) as vtn, \
            contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(xmpp_ven(
            vtn, xmpp_server, ven, on_event=answering(ven.cert.fingerprint))) for ven in vens]
        async with asyncio.TaskGroup() as group:
            for client in clients:
                group.create_task(client.register())
        await events.publish_event(vtn.ctx, sample_event("fan-out", Target(
            ven_ids=tuple(sorted(ven_ids)))))
        async with asyncio.timeout(WAIT_S):
            await all_acked.wait()
        assert seen == {ven_id: ["fan-out"] for ven_id in ven_ids}
        deliveries = await vtn.ctx.storage.events.deliveries("fan-out")
        assert {d.ven_id for d in deliveries} == ven_ids
        assert {d.ack_opt_type for d in deliveries} == {StoredOpt.OPT_IN}


async def test_a_send_beyond_the_window_waits_its_turn_and_its_timeout_starts_with_it(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """``max_sends_in_flight = 1``: while the first VEN holds its answer, the second VEN's
    payload is not sent (its handler is not called); the first send times out, then the second
    goes and is answered, although it waited the first one's whole ``request_timeout_s``."""
    holder, waiter = mint_vens(pki, tmp_path / "vens", 2)
    held, release = asyncio.Event(), asyncio.Event()
    sends: list[asyncio.Task[Message | None]] = []
    first_done_when_second_called: list[bool] = []

    async def holding(_event: Event) -> OptType:
        held.set()
        await release.wait()
        return OptType.OPT_IN

    def answering(_event: Event) -> OptType:
        first_done_when_second_called.append(sends[0].done())
        return OptType.OPT_IN

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), request_timeout_s=3.0,
                        max_sends_in_flight=1) as vtn, \
            xmpp_ven(vtn, xmpp_server, holder, on_event=holding) as holding_client, \
            xmpp_ven(vtn, xmpp_server, waiter, on_event=answering) as waiting_client:
        addresses = []
        for ven, client in ((holder, holding_client), (waiter, waiting_client)):
            await client.register()
            stored = await vtn.ctx.storage.vens.by_fingerprint(ven.cert.fingerprint)
            assert stored is not None and stored.transport_address is not None
            addresses.append(stored.transport_address)
        transport = vtn.app[XMPP]
        # created in order, so the first takes the only slot before the second asks for it
        sends.extend(asyncio.create_task(transport.send(address, DistributeEvent(
            request_id=f"r{index}", vtn_id=vtn.ctx.vtn_id,
            events=(sample_event(f"e{index}", Target(ven_ids=("x",))),))))
            for index, address in enumerate(addresses))
        try:
            async with asyncio.timeout(WAIT_S):
                await held.wait()
                assert not first_done_when_second_called
                with pytest.raises(ConnectionError, match="did not answer within"):
                    await sends[0]
                reply = await sends[1]
        finally:
            release.set()
    assert first_done_when_second_called == [True]
    assert isinstance(reply, CreatedEvent) and reply.ven_id == waiter.cert.fingerprint
    assert [r.event_id for r in reply.event_responses] == ["e1"]


async def test_an_answer_to_a_since_modified_event_is_refused_and_pushes_go_on(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """A VEN answers a pushed event only after the VTN modified it: the stale answer is refused
    (450) without ending the VEN's push lane, and the modification reaches the VEN and is acked
    (before, the refusal ended every lane: at 2,000 devices the aggregator stopped pushing)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    held, release = asyncio.Event(), asyncio.Event()
    acked: asyncio.Queue[int] = asyncio.Queue()

    async def holding_the_first(event: Event) -> OptType:
        if event.descriptor.modification_number == 0:
            held.set()
            await release.wait()
        return OptType.OPT_IN

    def on_ack(_ven_id: str, response: EventResponse) -> None:
        acked.put_nowait(response.modification_number)

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path),
                        handlers=Handlers(on_event_response=on_ack)) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven, on_event=holding_the_first) as client:
        await client.register()
        event = sample_event("modified", Target(ven_ids=(ven.cert.fingerprint,)))
        async with asyncio.timeout(WAIT_S):
            await events.publish_event(vtn.ctx, event)
            await held.wait()
            await events.modify_event(vtn.ctx, event)
            release.set()
            assert await acked.get() == 1
        deliveries = await vtn.ctx.storage.events.deliveries("modified")
        assert [(d.ack_modification_number, d.ack_opt_type) for d in deliveries] == [
            (1, StoredOpt.OPT_IN)]


async def test_reports_and_opts_travel_over_xmpp(pki: Pki, tmp_path: Path,
                                                 xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    reports: asyncio.Queue[Report] = asyncio.Queue()
    opts: asyncio.Queue[object] = asyncio.Queue()
    handlers = Handlers(on_report_data=lambda _ven, report: reports.put_nowait(report),
                        on_opt=lambda _ven, message: opts.put_nowait(message))
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), handlers=handlers) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        await client.register()
        (request,) = await client.register_reports(telemetry_descriptions())
        await client.send_report(request.report_request_id, (ReportInterval(
            payloads=(ReportPayload(r_id="meter-1", value=2.5),)),))
        await client.flush_reports()
        async with asyncio.timeout(WAIT_S):
            report = await reports.get()
        assert report.report_request_id == request.report_request_id
        assert [p.value for i in report.intervals for p in i.payloads] == [2.5]

        created = await client.create_opt(opt_type=OptType.OPT_OUT,
                                          opt_reason=OptReason.MUST_RUN)
        assert created.response.ok
        async with asyncio.timeout(WAIT_S):
            opt = await opts.get()
        assert getattr(opt, "opt_id", None) == created.opt_id
        assert await vtn.ctx.storage.opts.get(ven.cert.fingerprint, created.opt_id) is not None


async def test_one_vtn_serves_an_http_ven_and_an_xmpp_ven_alike(pki: Pki, tmp_path: Path,
                                                                xmpp_server: XmppServer):
    (over_xmpp,) = mint_vens(pki, tmp_path / "vens", 1)
    both = {over_xmpp.cert.fingerprint, pki.vens[1].fingerprint}
    acked: dict[str, OptType] = {}
    all_acked = asyncio.Event()

    def on_ack(ven_id: str, response: EventResponse) -> None:
        acked[ven_id] = response.opt_type
        if set(acked) == both:
            all_acked.set()

    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path),
                        handlers=Handlers(on_event_response=on_ack)) as vtn, \
            xmpp_ven(vtn, xmpp_server, over_xmpp,
                     on_event=lambda _event: OptType.OPT_IN) as xmpp_client, \
            VenClient(VenSettings(
                ven_name="http-ven",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context(
                    ven=pki.vens[1]), poll_interval=0.2),
                hooks=Hooks(on_event=lambda _event: OptType.OPT_IN))) as http_client:
        await xmpp_client.register()
        await http_client.register()
        http_client.start_polling()
        await events.publish_event(vtn.ctx, sample_event("both", Target(
            ven_ids=tuple(sorted(both)))))
        async with asyncio.timeout(WAIT_S):
            await all_acked.wait()
        assert acked == {ven_id: OptType.OPT_IN for ven_id in both}
        deliveries = await vtn.ctx.storage.events.deliveries("both")
        assert {d.ven_id: d.ack_opt_type for d in deliveries} == {
            ven_id: StoredOpt.OPT_IN for ven_id in both}
        # each holds the same event, whichever transport brought it, addressed to it alone
        by_xmpp, by_http = xmpp_client.events["both"], http_client.events["both"]
        assert by_xmpp.target.ven_ids == (over_xmpp.cert.fingerprint,)
        assert by_http.target.ven_ids == (pki.vens[1].fingerprint,)
        assert dataclasses.replace(by_xmpp, target=by_http.target) == by_http
        registrations = {r.ven_id: r.transport_name for r in await vtn.ctx.storage.vens.active()}
        assert registrations == {over_xmpp.cert.fingerprint: TransportName.XMPP,
                                 pki.vens[1].fingerprint: TransportName.SIMPLE_HTTP}


async def test_the_vtn_answers_service_discovery_with_its_services(pki: Pki, tmp_path: Path,
                                                                   xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path)) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven) as client:
        await client.register()  # connected now
        stream = client._link._stream  # type: ignore[attr-defined]  # the VEN's XMPP session
        stream.register_plugin("xep_0030")
        disco = stream.plugin["xep_0030"]
        vtn_jid = vtn.app[XMPP].jid
        info = await disco.get_info(jid=vtn_jid, timeout=WAIT_S)
        assert FEATURE in info["disco_info"]["features"]
        items = await disco.get_items(jid=vtn_jid, node=SERVICES_NODE, timeout=WAIT_S)
        assert {(jid, node) for jid, node, _name in items["disco_items"]["items"]} == {
            (vtn_jid, service_node(service)) for service in XMPP_SERVICES}


async def test_both_sides_take_up_their_sessions_again_after_the_server_restarts(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    seen: asyncio.Queue[str] = asyncio.Queue()
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), reconnect_s=0.2,
                        push_retry_s=0.2) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven, reconnect_s=0.2,
                     on_event=lambda event: seen.put_nowait(event.event_id) or "optIn") as client:
        await client.register()
        await xmpp_server.stop()
        await xmpp_server.start()  # the same port, a fresh server
        # the event waits in the VEN's queue until both are back; then it is sent at once
        await events.publish_event(vtn.ctx, sample_event("after-restart", Target(
            ven_ids=(ven.cert.fingerprint,))))
        async with asyncio.timeout(WAIT_S):
            assert await seen.get() == "after-restart"


async def test_a_reconnect_the_library_started_itself_is_not_doubled(
        pki: Pki, tmp_path: Path, xmpp_server: XmppServer):
    """slixmpp reconnects on its own when its keepalive ping times out (a loaded VTN); the
    reconnect timer of ours that the drop also started must then open no second connection on
    the same stream (two connections into one parser lost stanzas and threw sessions out)."""
    (ven,) = mint_vens(pki, tmp_path / "vens", 1)
    seen: asyncio.Queue[str] = asyncio.Queue()
    never = 3600.0  # our timers do not fire in this test: it calls what they would call
    async with xmpp_vtn(pki, xmpp_server, _sqlite(tmp_path), reconnect_s=never,
                        push_retry_s=0.2) as vtn, \
            xmpp_ven(vtn, xmpp_server, ven, reconnect_s=never,
                     on_event=lambda event: seen.put_nowait(event.event_id) or "optIn") as client:
        await client.register()
        transport, link = vtn.app[XMPP], client._link
        assert isinstance(link, XmppLink)
        session = transport._sessions[0]
        sides = ((session.client, session.online, session.connect),
                 (link._stream, link._online, link._reconnect))
        for stream, online, _timer in sides:
            dropped = asyncio.Event()
            stream.add_event_handler("disconnected", lambda _why, seen=dropped: seen.set(),
                                     disposable=True)
            stream.reconnect(0.0, "Ping timeout")  # what slixmpp's xep_0199 does
            async with asyncio.timeout(WAIT_S):
                await dropped.wait()
                await online.wait()
        for stream, _online, timer in sides:
            timer()
            assert not stream.is_connecting()
        await events.publish_event(vtn.ctx, sample_event("after-reconnect", Target(
            ven_ids=(ven.cert.fingerprint,))))
        async with asyncio.timeout(WAIT_S):
            assert await seen.get() == "after-reconnect"


async def test_a_vtn_whose_xmpp_server_is_away_does_not_start(pki: Pki, tmp_path: Path):
    settings = XmppSettings(host="127.0.0.1", port=free_port(), connect_timeout_s=1.0)
    with pytest.raises(ConnectionError, match="did not take"):
        async with running_vtn(pki, _sqlite(tmp_path), xmpp=settings):
            pass


def test_the_server_starts_on_uvloop_the_benchmarks_loop(pki: Pki, tmp_path: Path):
    """``bench cbp --xmpp`` runs on uvloop, whose subprocesses take no user=/group= (as root,
    Prosody drops to its own user in the child instead)."""
    require_prosody()
    cert, key = pki.authority.issue("xmpp-uvloop", Role.VTN, hosts=("localhost",)).write(tmp_path)
    server = XmppServer(cert=cert, key=key, ca=pki.ca_cert)

    async def start_and_stop() -> None:
        await server.start()
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.close()
        finally:
            await server.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(start_and_stop())
