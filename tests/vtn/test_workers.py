"""Several VTN workers on one PostgreSQL database behave as one VTN.

Two VTNs served as ``crowdflex vtn`` serves each worker (:func:`vtn.serve.serve_vtn`, real mutual
TLS, their own ports) share a fresh PostgreSQL database of this test's own: a VEN that
registers on one is the same VEN on the other; an event published, modified or cancelled through
either worker's admin API reaches a VEN polling the other on its next poll once that worker
heard of it (PostgreSQL's notification, milliseconds); and two workers racing for the same
queued items hand each out once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from schemas import CreatedPartyRegistration, DistributeEvent, Response
from tests.kit.vtn import vtn_config
from vtn.app import STORAGE
from vtn.serve import Served, serve_vtn
from vtn.storage._postgres_backend import PostgresBackend
from vtn.transport import SERVICE_PREFIX

from .harness import RawVen, code_of, raw_ven

pytestmark = pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)

TOKEN = "workers-test-admin-token-0123"


@asynccontextmanager
async def two_workers(pki: Any, storage_url: str) -> AsyncIterator[tuple[Served, Served]]:
    config = vtn_config(pki, storage_url, host="127.0.0.1", admin_port=0, admin_token=TOKEN)
    async with serve_vtn(config) as a, serve_vtn(config) as b:
        yield a, b


@asynccontextmanager
async def _heard_by(worker: Served) -> AsyncIterator[None]:
    """The block's change has reached ``worker``'s poll index when it ends: a notification
    takes milliseconds, and a poll that lands before it is answered as if it came before the
    commit (docs/deploy.md)."""
    listener = worker.app[STORAGE].listener
    assert listener is not None
    await listener.until(lambda: listener.connections >= 1)
    heard = listener.heard
    yield
    await listener.until(lambda: listener.heard > heard)


def _url(worker: Served) -> str:
    return f"https://127.0.0.1:{worker.port}{SERVICE_PREFIX}"


class Admin:
    def __init__(self, session: aiohttp.ClientSession, worker: Served) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{worker.admin_port}"

    async def call(self, method: str, path: str, body: object | None = None) -> Any:
        async with self.session.request(method, self.base + path, json=body) as reply:
            assert reply.status in (200, 201), await reply.text()
            return await reply.json()


def _event(event_id: str, ven_id: str, value: float) -> dict[str, object]:
    start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    return {"event_id": event_id, "market_context": "http://cbp.example/mc", "start": start,
            "targets": {"ven_ids": [ven_id]},
            "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                         "intervals": [{"duration_s": 900, "value": value}]}]}


async def _next_events(ven: RawVen) -> DistributeEvent:
    reply = await ven.poll()
    assert isinstance(reply, DistributeEvent), reply
    assert isinstance(await ven.poll(), Response)  # nothing else was waiting
    return reply


async def test_a_ven_registered_on_one_worker_is_the_same_ven_on_another(pki, storage_url):
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(_url(a), pki.client_context()) as on_a, \
            raw_ven(_url(b), pki.client_context()) as on_b, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await on_a.register("shared-ven")
        await on_a.drain()
        on_b.ven_id, on_b.registration_id = on_a.ven_id, on_a.registration_id
        assert code_of(await on_b.poll()) == 200  # B knows the VEN: no 452/463
        (listed,) = (await Admin(http, b).call("GET", "/vens"))["vens"]
        assert (listed["ven_id"], listed["registration_id"]) == (on_a.ven_id,
                                                                 on_a.registration_id)
        again = await on_b.register("shared-ven")  # the same certificate, on the other worker
        assert isinstance(again, CreatedPartyRegistration)
        assert again.ven_id == on_a.ven_id


async def test_event_changes_on_one_worker_reach_a_ven_polling_another(pki, storage_url):
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(_url(a), pki.client_context()) as on_a, \
            raw_ven(_url(b), pki.client_context()) as on_b, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await on_b.register()
        await on_b.drain()
        on_a.ven_id = on_b.ven_id
        admin_a, admin_b = Admin(http, a), Admin(http, b)

        async with _heard_by(b):
            await admin_a.call("POST", "/events", _event("cross-1", on_b.ven_id, 4.0))
        published = await _next_events(on_b)  # polling B, published through A
        assert [(e.event_id, e.modification_number) for e in published.events] == [
            ("cross-1", 0)]

        async with _heard_by(a):
            await admin_b.call("PUT", "/events/cross-1", _event("cross-1", on_b.ven_id, 6.0))
        modified = await _next_events(on_a)  # polling A, modified through B
        (event,) = modified.events
        assert event.modification_number == 1
        assert event.signals[0].intervals[0].value == 6.0

        async with _heard_by(b):
            await admin_a.call("POST", "/events/cross-1/cancel")
        cancelled = await _next_events(on_b)
        (event,) = cancelled.events
        assert event.modification_number == 2 and event.descriptor.event_status.value == "cancelled"


async def test_two_workers_polling_for_one_ven_hand_each_item_out_once(pki, storage_url):
    rounds = 12
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(_url(a), pki.client_context()) as on_a, \
            raw_ven(_url(b), pki.client_context()) as on_b, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await on_a.register()
        await on_a.drain()
        on_b.ven_id = on_a.ven_id
        for index in range(rounds):
            await Admin(http, a if index % 2 else b).call(
                "POST", "/events", _event(f"race-{index}", on_a.ven_id, 1.0))
            replies = await asyncio.gather(on_a.poll(), on_b.poll())
            lists = [r for r in replies if isinstance(r, DistributeEvent)]
            assert len(lists) == 1, replies  # one worker handed it out, the other had nothing
            assert f"race-{index}" in {e.event_id for e in lists[0].events}


async def test_claims_racing_across_workers_take_each_item_once(pki, storage_url):
    """Sixty claims at once, half through each worker's storage, for thirty queued items: each
    item is claimed by exactly one (row locks with SKIP LOCKED), the other thirty find none."""
    items = 30
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(_url(a), pki.client_context()) as ven:
        await ven.register()
        await ven.drain()
        queue_a, queue_b = a.app[STORAGE].outbox, b.app[STORAGE].outbox
        now = datetime.now(UTC)
        for index in range(items):
            await queue_a.enqueue([ven.ven_id], b"<x/>", "test", f"item-{index}", at=now)
        claims = await asyncio.gather(*(
            queue.next_for(ven.ven_id, now=now)
            for _ in range(items) for queue in (queue_a, queue_b)))
    taken = [c.seq for c in claims if c is not None]
    assert len(taken) == items
    assert len(set(taken)) == items  # nothing claimed twice


async def test_a_worker_opens_at_most_nine_connections(pki, storage_url):
    """docs/deploy.md budgets PostgreSQL's max_connections on this figure: 4 for the hot paths,
    4 for the rest, 1 that listens, none opened beyond them under load."""
    async with two_workers(pki, storage_url) as (a, _b):
        storage = a.app[STORAGE]
        pool: Any = storage.engine.pool
        assert isinstance(storage.backend, PostgresBackend)
        hot = storage.backend.pool
        assert pool.size() + pool._max_overflow + hot.get_max_size() + 1 == 9
        assert hot.get_min_size() == hot.get_max_size()  # all opened at start, none churned
