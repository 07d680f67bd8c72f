"""Two VTN workers racing on one PostgreSQL database do each thing once.

Storage-level races open the same fresh database twice (what two worker processes do) and fire
the same write through both at once, many times over: a ReplayProtect nonce is accepted by
exactly one of them (unique key), a batch of report points sent to both is stored once (unique
key, ON CONFLICT DO NOTHING), and acks of one event racing out of order leave one delivery row
holding the newest (the conditional upsert). Wire-level races run two VTNs served as
``crowdflex vtn`` serves each worker: one VEN certificate registering on both at once is one
VEN, and a push-mode VEN gets every payload (known by its requestID) pushed exactly once while
both workers are told to push it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from schemas import (
    CreatedEvent,
    CreatedPartyRegistration,
    DistributeEvent,
    EiResponse,
    EventResponse,
    Message,
    RegisteredReport,
    Response,
)
from tests.kit.vtn import vtn_config
from vtn.app import PUSH, STORAGE
from vtn.serve import Served, serve_vtn
from vtn.storage import EventAck, OptType, Storage, open_storage
from vtn.transport import SERVICE_PREFIX

from .harness import CODEC, LOOPBACK_PUSH, push_receiver, push_ven_tls, raw_ven
from .test_storage import T0, an_event, points, register

pytestmark = pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)

TOKEN = "race-test-admin-token-0123"
ROUNDS = 25


@asynccontextmanager
async def two_storages(storage_url: str) -> AsyncIterator[tuple[Storage, Storage]]:
    a = await open_storage(storage_url)
    try:
        b = await open_storage(storage_url)
        try:
            yield a, b
        finally:
            await b.close()
    finally:
        await a.close()


async def test_a_nonce_is_accepted_by_one_worker_only(storage_url):
    async with two_storages(storage_url) as (a, b):
        for n in range(ROUNDS):
            replays = await asyncio.gather(*(
                worker.nonces.seen(f"nonce-{n}", T0) for worker in (a, b, a, b)))
            assert sorted(replays) == [False, True, True, True], n


async def test_report_points_sent_to_both_workers_are_stored_once(storage_url):
    async with two_storages(storage_url) as (a, b):
        (ven_id,) = await register(a, 1)
        for n in range(ROUNDS):
            batch = points(ven_id, 40, start=n * 40)
            stored = await asyncio.gather(a.reports.add_points(batch),
                                          b.reports.add_points(batch))
            assert sum(stored) == 40, (n, stored)  # the two writes split the rows, or one won
        kept = await b.reports.points(ven_id, T0, T0 + timedelta(days=1))
        assert len(kept) == len({(p.r_id, p.dtstart) for p in kept}) == ROUNDS * 40


async def test_acks_racing_across_workers_keep_one_row_with_the_newest(storage_url):
    async with two_storages(storage_url) as (a, b):
        (ven_id,) = await register(a, 1)
        await a.events.put(an_event(ROUNDS))
        await a.events.mark_delivered("ev-1", [ven_id], modification_number=ROUNDS, at=T0)

        def ack(mod: int) -> EventAck:
            return EventAck(event_id="ev-1", ven_id=ven_id, modification_number=mod,
                            opt_type=OptType.OPT_IN if mod % 2 else OptType.OPT_OUT, at=T0)

        # every modification number acked through both workers at once, newest first
        await asyncio.gather(*(worker.events.record_ack(ack(mod))
                               for mod in range(ROUNDS, -1, -1) for worker in (a, b)))
        (delivery,) = await b.events.deliveries("ev-1")
        assert delivery.ack_modification_number == ROUNDS
        assert delivery.ack_opt_type is ack(ROUNDS).opt_type


@asynccontextmanager
async def two_workers(pki: Any, storage_url: str, **overrides: Any
                      ) -> AsyncIterator[tuple[Served, Served]]:
    config = vtn_config(pki, storage_url, host="127.0.0.1", admin_port=0, admin_token=TOKEN,
                        **overrides)
    async with serve_vtn(config) as a, serve_vtn(config) as b:
        for worker in (a, b):
            listener = worker.app[STORAGE].listener
            assert listener is not None
            await listener.until(lambda listener=listener: listener.connections >= 1)
        yield a, b


def _url(worker: Served) -> str:
    return f"https://127.0.0.1:{worker.port}{SERVICE_PREFIX}"


async def test_one_certificate_registering_on_both_workers_at_once_is_one_ven(pki,
                                                                             storage_url):
    async with two_workers(pki, storage_url) as (a, b):
        for n in range(5):
            async with raw_ven(_url(a), pki.client_context()) as on_a, \
                    raw_ven(_url(b), pki.client_context()) as on_b:
                replies = await asyncio.gather(on_a.register(f"racer-{n}"),
                                               on_b.register(f"racer-{n}"))
                assert all(isinstance(r, CreatedPartyRegistration) for r in replies), replies
                assert replies[0].ven_id == replies[1].ven_id, n
                assert on_a.ven_id == on_b.ven_id
                await on_a.drain()
                assert isinstance(await on_b.poll(), Response)  # B knows it: no 452/463
        (registration,) = await a.app[STORAGE].vens.active()
        assert registration.ven_id == on_a.ven_id


def _event(event_id: str, ven_id: str) -> dict[str, object]:
    start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    return {"event_id": event_id, "market_context": "http://cbp.example/mc", "start": start,
            "targets": {"ven_ids": [ven_id]},
            "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                         "intervals": [{"duration_s": 900, "value": 1.0}]}]}


async def test_a_push_ven_gets_each_payload_once_across_workers(pki, storage_url,
                                                               tmp_path: Path):
    """Events published alternately through A and B, and after each both workers are told to
    push to the VEN: the outbox claim (row lock, SKIP LOCKED) lets one of them push it."""
    pushed: Counter[str] = Counter()  # requestIDs of the DistributeEvent payloads pushed
    covered: set[str] = set()  # events they listed (each lists all the VEN's live events)
    changed = asyncio.Event()

    tls = push_ven_tls(pki, tmp_path)

    async def receive(request: web.Request) -> web.Response:
        message = CODEC.decode(await request.read())
        reply: Message = RegisteredReport(response=EiResponse(), ven_id=tls.fingerprint)
        if isinstance(message, DistributeEvent):
            pushed[message.request_id] += 1
            covered.update(e.event_id for e in message.events)
            changed.set()
            reply = CreatedEvent(
                response=EiResponse(request_id=message.request_id), ven_id=tls.fingerprint,
                event_responses=tuple(EventResponse(
                    request_id=message.request_id, event_id=e.event_id,
                    modification_number=e.modification_number, opt_type=OptType.OPT_IN)
                    for e in message.events))
        return web.Response(body=CODEC.encode(reply), content_type="application/xml")

    async with push_receiver(tls.server, receive) as address, \
            two_workers(pki, storage_url, push_allow_private_targets=LOOPBACK_PUSH) as (a, b), \
            raw_ven(_url(a), tls.client) as ven, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await ven.register("push-racer", http_pull_model=False, transport_address=address)
        published = [f"pushed-{n}" for n in range(12)]
        for n, event_id in enumerate(published):
            through = a if n % 2 else b
            async with http.post(f"http://127.0.0.1:{through.admin_port}/events",
                                 json=_event(event_id, ven.ven_id)) as reply:
                assert reply.status == 201, await reply.text()
            for worker in (a, b):
                worker.app[PUSH].wake([ven.ven_id])
        async with asyncio.timeout(30):
            while not set(published) <= covered:
                await changed.wait()
                changed.clear()
            outbox = a.app[STORAGE].outbox
            while await outbox.pending_count(ven.ven_id):  # marked delivered once answered
                await asyncio.sleep(0.02)  # re-read interval, bounded by the deadline
    # nothing is left to push (every item marked delivered) and none was pushed twice
    assert pushed and set(pushed.values()) == {1}, pushed
