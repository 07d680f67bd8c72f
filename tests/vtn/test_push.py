"""HTTP push: a VEN registered with a transport address and httpPullModel=false gets queued
payloads POSTed to it over mutual TLS; its reply (oadrCreatedEvent) is processed like a post.

The VTN accepts a push receiver only when it presents the VEN's own certificate (the fingerprint
it registered with), and pushes to each VEN on its own: one VEN that never answers delays nobody
else's payloads."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path

import asyncpg
from aiohttp import web

from schemas import (
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    EventResponse,
    Message,
    OptType,
    RegisteredReport,
    RegisterReport,
    Target,
    TransportName,
)
from schemas.logtext import MAX_LOGGED_CHARS
from tests.kit.vtn import running_vtn
from vtn.app import PUSH
from vtn.push import PushDelivery
from vtn.pushtargets import PushTargets
from vtn.services import Handlers, events
from vtn.storage import OptType as StoredOpt
from vtn.storage import PollDelivery, VenRegistration
from vtn.storage.backend import Distribution

from .harness import (
    CODEC,
    LOOPBACK_PUSH,
    logged,
    push_receiver,
    push_ven_tls,
    raw_ven,
    sample_event,
)


def _answering(ven_id: str, received: asyncio.Queue[tuple[str, Message]]
               ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def endpoint(request: web.Request) -> web.Response:
        message = CODEC.decode(await request.read())
        await received.put((request.match_info["service"], message))
        if isinstance(message, DistributeEvent):
            reply: Message = CreatedEvent(
                response=EiResponse(request_id=message.request_id), ven_id=ven_id,
                event_responses=tuple(EventResponse(
                    request_id=message.request_id, event_id=e.event_id,
                    modification_number=e.modification_number, opt_type=OptType.OPT_IN)
                    for e in message.events))
        else:
            reply = RegisteredReport(response=EiResponse(), ven_id=ven_id)
        return web.Response(body=CODEC.encode(reply), content_type="application/xml")

    return endpoint


async def test_events_are_pushed_and_the_reply_ack_is_stored(pki, storage_url, tmp_path: Path):
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    acked = asyncio.Event()
    tls = push_ven_tls(pki, tmp_path)
    ven_id = tls.fingerprint
    handlers = Handlers(on_event_response=lambda v, r: acked.set())
    async with push_receiver(tls.server, _answering(ven_id, received)) as address, \
            running_vtn(pki, storage_url, handlers=handlers,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls.client) as ven:
        await ven.register("push-ven", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):
            service, first = await received.get()
        assert (service, type(first)) == ("EiReport", RegisterReport)

        await events.publish_event(vtn.ctx, sample_event("push-1", Target(ven_ids=(ven_id,))))
        async with asyncio.timeout(10):
            service, pushed = await received.get()
            await acked.wait()
        assert service == "EiEvent" and isinstance(pushed, DistributeEvent)
        assert [e.event_id for e in pushed.events] == ["push-1"]
        (delivery,) = await vtn.ctx.storage.events.deliveries("push-1")
        assert delivery.ack_opt_type is StoredOpt.OPT_IN
        assert await vtn.ctx.storage.outbox.pending_count(ven_id) == 0


async def test_a_lane_claims_once_per_item_and_reads_no_registration_again(
        pki, storage_url, tmp_path: Path):
    """Each payload costs its lane one claim (one write transaction, the event list chosen in
    it): the lane does not claim again to learn that nothing waits, which its claim already
    said. Three payloads, METADATA and two events, one at a time: three claims (were four or
    five, an empty claim ending each drain). And the push task hands each lane it wakes the
    registration it read to choose it: the events cost no second read of the VEN's."""
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    acked: asyncio.Queue[str] = asyncio.Queue()
    tls = push_ven_tls(pki, tmp_path)
    handlers = Handlers(on_event_response=lambda v, r: acked.put_nowait(r.event_id))
    async with push_receiver(tls.server, _answering(tls.fingerprint, received)) as address, \
            running_vtn(pki, storage_url, handlers=handlers,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls.client) as ven:
        backend = vtn.ctx.storage.backend
        claim_next = backend.claim_next
        claims: list[str] = []

        async def counted(event_list: Distribution, until: datetime) -> PollDelivery | None:
            claims.append(event_list.ven_id)
            return await claim_next(event_list, until)

        backend.claim_next = counted  # type: ignore[method-assign]
        await ven.register("push-ven", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):  # claimed before the first event is queued
            assert type((await received.get())[1]) is RegisterReport
        vens = vtn.ctx.storage.vens
        get = vens.get
        read: list[str] = []

        async def read_counted(ven_id: str) -> VenRegistration | None:
            read.append(ven_id)
            return await get(ven_id)

        vens.get = read_counted  # type: ignore[method-assign]
        for event_id in ("one", "two"):
            await events.publish_event(vtn.ctx, sample_event(
                event_id, Target(ven_ids=(ven.ven_id,))))
            async with asyncio.timeout(10):  # the second list carries both events
                while await acked.get() != event_id:
                    pass
        kinds = [type(received.get_nowait()[1]) for _ in range(received.qsize())]
        assert kinds == [DistributeEvent, DistributeEvent]
        assert claims == [ven.ven_id] * 3
        assert read == []


async def test_polling_vens_registering_cost_the_push_task_no_read(
        pki, storage_url, tmp_path: Path):
    """A VEN that polls is never pushed to, so its registration does not wake the push task
    (whose scan read every woken VEN's row again only to leave it out): two polling VENs
    register, then a push VEN, whose METADATA is pushed; the scans read the push VEN alone."""
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    tls = push_ven_tls(pki, tmp_path)
    async with push_receiver(tls.server, _answering(tls.fingerprint, received)) as address, \
            running_vtn(pki, storage_url, push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as first, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as second, \
            raw_ven(vtn.url, tls.client) as pushed:
        vens = vtn.ctx.storage.vens
        get_many, active = vens.get_many, vens.active
        read: list[str] = []

        async def read_counted(ven_ids: Iterable[str]) -> tuple[VenRegistration, ...]:
            wanted = tuple(ven_ids)
            read.extend(wanted)
            return await get_many(wanted)

        async def active_counted() -> tuple[VenRegistration, ...]:
            found = await active()
            read.extend(v.ven_id for v in found)
            return found

        vens.get_many = read_counted  # type: ignore[method-assign]
        vens.active = active_counted  # type: ignore[method-assign]
        for ven in (first, second):
            await ven.register()
        await pushed.register("push-ven", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):
            assert type((await received.get())[1]) is RegisterReport
        assert first.ven_id and second.ven_id
        assert set(read) == {pushed.ven_id}


async def test_a_polling_ven_turning_to_push_gets_what_was_queued_while_it_polled(
        pki, storage_url, tmp_path: Path):
    """A registered VEN that polled registers again with a transport address and
    httpPullModel=false, on a VTN that queues no METADATA request (``offer_metadata`` off) and
    with no live event newly affected: what was queued for it while it polled is pushed (was:
    only a registration that queued something woke push delivery, so it waited for the next)."""
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    tls = push_ven_tls(pki, tmp_path)
    async with push_receiver(tls.server, _answering(tls.fingerprint, received)) as address, \
            running_vtn(pki, storage_url, offer_metadata=False,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls.client) as ven:
        await ven.register("turns-to-push")
        await events.publish_event(vtn.ctx, sample_event("queued-1", Target(ven_ids=(ven.ven_id,))))
        assert await vtn.ctx.storage.outbox.pending_count(ven.ven_id) == 1
        await ven.register("turns-to-push", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):
            service, pushed = await received.get()
        assert service == "EiEvent" and isinstance(pushed, DistributeEvent)
        assert [e.event_id for e in pushed.events] == ["queued-1"]


async def test_a_registration_wakes_delivery_for_a_ven_that_takes_pushes_alone(
        pki, tmp_path: Path):
    """What a registration wakes, judged from the registration as stored: an HTTP push VEN, and
    an XMPP VEN where the VTN serves XMPP; not a polling VEN, nor an XMPP VEN where it does not
    (the XMPP end-to-end tests publish after registering, which would hide a VEN left out)."""

    async def xmpp_send(_jid: str, _message: Message) -> None:
        return None

    def registration(name: str, **fields: object) -> VenRegistration:
        return VenRegistration(ven_id=name, registration_id=f"reg-{name}", fingerprint=name,
                               ven_name=name, created_at=datetime(2030, 1, 1), **fields)

    vens = (registration("polls"),
            registration("https-push", http_pull_model=False,
                         transport_address="https://127.0.0.1:1/ven"),
            registration("xmpp", transport_name=TransportName.XMPP.value,
                         transport_address="ven@xmpp.invalid/ven"))
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}") as vtn:
        for xmpp, woken in ((xmpp_send, ["https-push", "xmpp"]), (None, ["https-push"])):
            push = PushDelivery(vtn.ctx, vtn.app[PUSH]._route, ssl_context=None, timeout_s=5.0,
                                retry_s=1.0, xmpp=xmpp)
            seen: list[str] = []
            push.wake = seen.extend  # type: ignore[method-assign]
            for ven in vens:
                push.enrolled(ven)
            assert seen == woken


async def test_a_push_receiver_without_the_vens_own_certificate_gets_nothing(
        pki, storage_url, tmp_path: Path):
    """Tried: a VEN registers with its certificate and names a receiver that presents another
    certificate from the same CA, valid for 127.0.0.1 (the VTN's own). The VTN refuses it after
    the handshake, before any request: the receiver sees nothing and the payload stays queued
    (was: pushed to whoever answered with any CA-issued certificate)."""
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    with logged("vtn.push", "ServerFingerprintMismatch") as refused:
        async with push_receiver(pki.server_context(), _answering("x", received)) as address, \
                running_vtn(pki, storage_url, push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
                raw_ven(vtn.url, pki.client_context()) as ven:
            await ven.register("pinned", http_pull_model=False, transport_address=address)
            async with asyncio.timeout(10):
                await refused.wait()
            assert received.empty()
            assert await vtn.ctx.storage.outbox.pending_count(pki.ven.fingerprint) == 1


async def test_a_ven_that_never_answers_delays_no_other_vens_push(
        pki, storage_url, tmp_path: Path):
    """Tried: a tarpit VEN whose address accepts TCP and then says nothing, pushed to with a
    60 s timeout; then an honest push VEN registers and is sent an event. The honest VEN gets
    its METADATA and its event while the tarpit's push is still hanging (was: the one push task
    waited out the tarpit, 10 s per retry every 5 s)."""
    held: list[asyncio.StreamWriter] = []
    tarpit_hit = asyncio.Event()

    async def tarpit(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        tarpit_hit.set()

    server = await asyncio.start_server(tarpit, "127.0.0.1", 0)
    tarpit_address = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/push"
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    tls = push_ven_tls(pki, tmp_path, "honest-push-ven")
    try:
        async with server, push_receiver(tls.server, _answering(tls.fingerprint, received)) \
                as address, \
                running_vtn(pki, storage_url, push_timeout_s=60.0,
                            push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
                raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as slow, \
                raw_ven(vtn.url, tls.client) as honest:
            await slow.register("tarpit", http_pull_model=False, transport_address=tarpit_address)
            async with asyncio.timeout(10):
                await tarpit_hit.wait()
            await honest.register("honest", http_pull_model=False, transport_address=address)
            await events.publish_event(vtn.ctx, sample_event(
                "both", Target(ven_ids=(slow.ven_id, honest.ven_id))))
            async with asyncio.timeout(10):
                kinds = [type((await received.get())[1]) for _ in range(2)]
            assert kinds == [RegisterReport, DistributeEvent]
            assert len(held) == 1 and not held[0].is_closing()  # the tarpit push still hangs
            assert await vtn.ctx.storage.outbox.pending_count(slow.ven_id) == 2
    finally:
        for writer in held:
            writer.close()


async def test_a_failed_push_quoting_the_ven_is_logged_capped(pki, tmp_path: Path, caplog):
    """A push VEN answering with a 3,000-character element name: the refusal quotes it, and the
    "push ... failed" line keeps MAX_LOGGED_CHARS characters of it and says how long it was."""
    caplog.set_level(logging.WARNING, "vtn.push")
    tls = push_ven_tls(pki, tmp_path)

    async def verbose(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"<" + b"a" * 3000 + b"/>", content_type="application/xml")

    async with push_receiver(tls.server, verbose) as address, \
            running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}", push_retry_s=3600.0,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls.client) as ven:
        with logged("vtn.push", "failed: SchemaViolation") as failed:
            await ven.register("verbose", http_pull_model=False, transport_address=address)
            async with asyncio.timeout(10):
                await failed.wait()
    (line,) = [r.getMessage() for r in caplog.records if "failed: SchemaViolation" in
               r.getMessage()]
    assert "a" * 100 in line and line.endswith(" characters)"), line[-100:]
    assert len(line) < MAX_LOGGED_CHARS + 100, len(line)


async def test_a_failing_ven_is_retried_with_its_own_doubling_back_off(pki, storage_url):
    """A push VEN whose address refuses connections: its lane waits retry_s, then twice that,
    and so on up to max_retry_s (here 1, 2, 4, 4, 4 s; the waits are recorded, not slept)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    waits: list[float] = []
    enough = asyncio.Event()

    async def record(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:
            enough.set()
        await asyncio.sleep(0)

    async with running_vtn(pki, storage_url, push_retry_s=3600.0,
                           push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        with logged("vtn.push", "failed: ClientConnectorError") as first_failure:
            await ven.register("unreachable", http_pull_model=False,
                               transport_address=f"https://127.0.0.1:{closed_port}/push")
            async with asyncio.timeout(10):  # the app's own lane failed and waits an hour now
                await first_failure.wait()
        lane = PushDelivery(vtn.ctx, vtn.app[PUSH]._route, ssl_context=None, timeout_s=5.0,
                            retry_s=1.0, max_retry_s=4.0, sleep=record,
                            targets=PushTargets.allowing(LOOPBACK_PUSH))
        async with lane.running():
            async with asyncio.timeout(10):
                await enough.wait()
        assert waits[:5] == [1.0, 2.0, 4.0, 4.0, 4.0]
        assert await vtn.ctx.storage.outbox.pending_count(ven.ven_id) == 1


async def test_a_deadlock_in_a_lane_pauses_it_and_the_payload_is_pushed_after(
        pki, storage_url, tmp_path: Path, caplog):
    """PostgreSQL aborting a lane's claim as a deadlock (raised once at the storage boundary, as
    asyncpg raises it) is a pause named for what it was: the lane backs off, claims again and
    the event is pushed (was: the exception ended the delivery task, and no VEN was pushed to
    again until a restart)."""
    caplog.set_level(logging.WARNING, "vtn.push")
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    tls = push_ven_tls(pki, tmp_path)
    async with push_receiver(tls.server, _answering(tls.fingerprint, received)) as address, \
            running_vtn(pki, storage_url, push_retry_s=0.01,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls.client) as ven:
        await ven.register("push-ven", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):
            assert type((await received.get())[1]) is RegisterReport
        backend = vtn.ctx.storage.backend
        claim_next = backend.claim_next

        async def deadlocked(event_list: Distribution, until: datetime) -> PollDelivery | None:
            backend.claim_next = claim_next  # type: ignore[method-assign]
            raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

        backend.claim_next = deadlocked  # type: ignore[method-assign]
        await events.publish_event(vtn.ctx, sample_event("after", Target(ven_ids=(ven.ven_id,))))
        async with asyncio.timeout(10):
            _, pushed = await received.get()
        assert isinstance(pushed, DistributeEvent) and pushed.events[0].event_id == "after"
    (line,) = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert f"push to {ven.ven_id} paused (the database aborted the transaction " \
           "(deadlock detected)" in line, line


async def test_a_bug_in_one_lane_is_logged_once_and_stops_no_push(
        pki, storage_url, tmp_path: Path, caplog):
    """An exception nobody expected, raised at the storage boundary: first by the scan that
    chooses the lanes, then by one VEN's claim twice in a row, after a deadlock. Each run of
    failures is logged with its traceback once (the deadlock, a pause, has none); the scan is
    tried again, the other VEN's lane pushes on, and the failing lane backs off and pushes its
    event after all, and the next one too (was: the exception ended the delivery task for every
    VEN)."""
    caplog.set_level(logging.WARNING, "vtn.push")
    received: dict[str, asyncio.Queue[tuple[str, Message]]] = {}
    tls = {name: push_ven_tls(pki, tmp_path, name) for name in ("bad", "good")}
    async with push_receiver(tls["bad"].server, _answering(
                tls["bad"].fingerprint, received.setdefault("bad", asyncio.Queue()))) as bad_at, \
            push_receiver(tls["good"].server, _answering(
                tls["good"].fingerprint, received.setdefault("good", asyncio.Queue()))) \
            as good_at, \
            running_vtn(pki, storage_url, push_retry_s=0.01,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls["bad"].client) as bad, \
            raw_ven(vtn.url, tls["good"].client) as good:
        for name, ven, address in (("bad", bad, bad_at), ("good", good, good_at)):
            await ven.register(name, http_pull_model=False, transport_address=address)
        for name in received:
            async with asyncio.timeout(10):
                assert type((await received[name].get())[1]) is RegisterReport
        vens, backend = vtn.ctx.storage.vens, vtn.ctx.storage.backend
        get_many, claim_next = vens.get_many, backend.claim_next
        claims_failing: list[Exception] = [
            asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
            RuntimeError("a bug on the bad VEN's row"), RuntimeError("the same bug again")]

        async def scan_once(ven_ids: Iterable[str]) -> tuple[VenRegistration, ...]:
            vens.get_many = get_many  # type: ignore[method-assign]
            raise RuntimeError("a bug in the scan")

        async def claim(event_list: Distribution, until: datetime) -> PollDelivery | None:
            if event_list.ven_id == bad.ven_id and claims_failing:
                raise claims_failing.pop(0)
            return await claim_next(event_list, until)

        vens.get_many = scan_once  # type: ignore[method-assign]
        backend.claim_next = claim  # type: ignore[method-assign]
        for event_id in ("first", "second"):
            await events.publish_event(vtn.ctx, sample_event(
                event_id, Target(ven_ids=(bad.ven_id, good.ven_id))))
            for name in received:
                async with asyncio.timeout(10):
                    _, pushed = await received[name].get()
                assert isinstance(pushed, DistributeEvent), (name, pushed)
                assert event_id in [e.event_id for e in pushed.events], (name, pushed)
        assert claims_failing == []
    failures = [r for r in caplog.records if r.name == "vtn.push" and r.levelno == logging.ERROR]
    assert [(r.getMessage().split(" by ")[0], r.exc_info is not None) for r in failures] == [
        ("push delivery paused", True), (f"push to {bad.ven_id} paused", True),
        (f"push to {bad.ven_id} paused", False)]
    assert all("unexpected failure" in r.getMessage() for r in failures)


async def test_an_item_whose_marking_failed_is_released_and_pushed_again(
        pki, storage_url, tmp_path: Path):
    """The VEN answered, but marking its item (METADATA's oadrRegisterReport) delivered failed
    (raised once at the storage boundary): the lane releases the item before backing off, so
    the next try pushes it again at once rather than after the claim's lease (30 s) and the next
    payload queued; the event queued after it is pushed and nothing stays pending."""
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    acked = asyncio.Event()
    tls = push_ven_tls(pki, tmp_path)
    handlers = Handlers(on_event_response=lambda v, r: acked.set())
    async with push_receiver(tls.server, _answering(tls.fingerprint, received)) as address, \
            running_vtn(pki, storage_url, handlers=handlers, push_retry_s=0.01,
                        push_allow_private_targets=LOOPBACK_PUSH) as vtn, \
            raw_ven(vtn.url, tls.client) as ven:
        outbox = vtn.ctx.storage.outbox
        mark_delivered = outbox.mark_delivered

        async def fails_once(seq: int, *, at: datetime) -> bool:
            outbox.mark_delivered = mark_delivered  # type: ignore[method-assign]
            raise RuntimeError("a bug after the VEN answered")

        outbox.mark_delivered = fails_once  # type: ignore[method-assign]
        await ven.register("push-ven", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):
            kinds = [type((await received.get())[1]) for _ in range(2)]
        assert kinds == [RegisterReport, RegisterReport]
        await events.publish_event(vtn.ctx, sample_event("next", Target(ven_ids=(ven.ven_id,))))
        async with asyncio.timeout(10):
            await acked.wait()
        assert type(received.get_nowait()[1]) is DistributeEvent
        assert await outbox.pending_count(ven.ven_id) == 0
