"""PostgreSQL LISTEN/NOTIFY keeps each worker's poll index true (vtn/storage/notify.py).

Two VTN workers on one fresh PostgreSQL database, served as ``crowdflex vtn`` serves them. A VEN
polling worker B that has nothing waiting is answered without a database transaction (B's own
metrics count none); an event published through worker A reaches it on its next poll once B
heard A's notification; when B's listening connection is killed, B reads the database again
(the event published meanwhile, whose notification B never got, still reaches the VEN), and
once B listens again its quiet polls stop reading. A worker restarted (B closed, events published
through A meanwhile, B served again on the same database) knew nothing when it came back: the
VEN's first poll reads and gets what was published while B was down. A registration through A
makes B forget that VEN's registration only: another VEN's quiet polls on B still read nothing;
an erasure through A makes B forget the erased VEN.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from schemas import DistributeEvent, Response
from tests.kit.vtn import vtn_config
from vtn.app import METRICS, STORAGE
from vtn.serve import Served, serve_vtn
from vtn.storage.notify import Listener
from vtn.transport import SERVICE_PREFIX

from .harness import RawVen, raw_ven

pytestmark = pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)

TOKEN = "notify-test-admin-token-0123"


@asynccontextmanager
async def two_workers(pki: Any, storage_url: str) -> AsyncIterator[tuple[Served, Served]]:
    config = vtn_config(pki, storage_url, host="127.0.0.1", admin_port=0, admin_token=TOKEN)
    async with serve_vtn(config) as a, serve_vtn(config) as b:
        yield a, b


def _listener(worker: Served) -> Listener:
    listener = worker.app[STORAGE].listener
    assert listener is not None
    return listener


def _transactions(worker: Served) -> float:
    """Database transactions the worker ran so far (its own metrics)."""
    text = worker.app[METRICS].exposition().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("crowdflex_vtn_db_transaction_duration_seconds_count"))


async def _publish(worker: Served, ven_id: str, event_id: str) -> None:
    start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body = {"event_id": event_id, "market_context": "http://cbp.example/mc", "start": start,
            "targets": {"ven_ids": [ven_id]},
            "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                         "intervals": [{"duration_s": 900, "value": 1.5}]}]}
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{worker.admin_port}/events", json=body,
            headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
        assert reply.status == 201, await reply.text()


async def _quiet_polls_read_nothing(worker: Served, ven: RawVen) -> None:
    assert isinstance(await ven.poll(), Response)  # may read: teaches the index "quiet"
    before = _transactions(worker)
    for _ in range(5):
        assert isinstance(await ven.poll(), Response)
    assert _transactions(worker) == before


async def _known_quiet(worker: Served, ven: RawVen) -> Listener:
    """Once ``worker`` listens: ``ven`` registered and drained, and its quiet polls answered
    from ``worker``'s memory; ``worker``'s listener."""
    listener = _listener(worker)
    await listener.until(lambda: listener.connections >= 1)
    await ven.register()
    await ven.drain()
    await _quiet_polls_read_nothing(worker, ven)
    return listener


async def test_a_quiet_ven_polls_without_a_read_and_hears_the_other_worker(pki, storage_url):
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(f"https://127.0.0.1:{b.port}{SERVICE_PREFIX}", pki.client_context()) as ven:
        listener = await _known_quiet(b, ven)

        heard = listener.heard
        await _publish(a, ven.ven_id, "heard-1")
        await listener.until(lambda: listener.heard > heard)
        reply = await ven.poll()  # the VEN's next poll
        assert isinstance(reply, DistributeEvent)
        assert [e.event_id for e in reply.events] == ["heard-1"]


async def test_a_lost_listening_connection_falls_back_to_reading(pki, storage_url):
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(f"https://127.0.0.1:{b.port}{SERVICE_PREFIX}", pki.client_context()) as ven:
        listener = await _known_quiet(b, ven)

        killed = listener.backend_pid
        admin = await asyncpg.connect(
            make_url(storage_url).set(drivername="postgresql")
            .render_as_string(hide_password=False))
        try:  # wait (up to 5 s) until the backend is gone
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", killed)
        finally:
            await admin.close()
        await listener.until(lambda: listener.losses >= 1)
        await _publish(a, ven.ven_id, "unheard-1")  # B listens to nothing now, or anew
        reply = await ven.poll()
        assert isinstance(reply, DistributeEvent)
        assert [e.event_id for e in reply.events] == ["unheard-1"]

        await listener.until(lambda: listener.connections >= 2)
        assert listener.backend_pid not in (None, killed)
        await ven.drain()
        await _quiet_polls_read_nothing(b, ven)  # listening again: quiet polls read nothing


async def test_a_restarted_worker_reads_what_was_published_while_it_was_down(pki, storage_url):
    config = vtn_config(pki, storage_url, host="127.0.0.1", admin_port=0, admin_token=TOKEN)
    async with serve_vtn(config) as a:
        async with serve_vtn(config) as b, raw_ven(
                f"https://127.0.0.1:{b.port}{SERVICE_PREFIX}", pki.client_context()) as ven:
            await _known_quiet(b, ven)  # B's index knows the VEN is quiet
            ven_id = ven.ven_id
        await _publish(a, ven_id, "while-down-1")  # B is gone: nobody tells it
        async with serve_vtn(config) as b_again, raw_ven(
                f"https://127.0.0.1:{b_again.port}{SERVICE_PREFIX}",
                pki.client_context()) as ven:
            ven.ven_id = ven_id
            reply = await ven.poll()
            assert isinstance(reply, DistributeEvent)
            assert [e.event_id for e in reply.events] == ["while-down-1"]


async def test_a_registration_through_one_worker_makes_the_other_forget_only_that_ven(
        pki, storage_url):
    """Two VENs poll worker B quietly; the second registers again through worker A. Once B
    heard it, B has forgotten the second VEN's registration (it reads the row) and still
    answers the first from memory (its quiet polls read nothing, and its registration is
    the one B learned, not the row changed behind B's back)."""
    b_url = f"https://127.0.0.1:{{}}{SERVICE_PREFIX}"
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(b_url.format(b.port), pki.client_context()) as quiet, \
            raw_ven(b_url.format(b.port), pki.client_context(ven=pki.vens[1])) as moving, \
            raw_ven(b_url.format(a.port), pki.client_context(ven=pki.vens[1])) as moved:
        listener = _listener(b)
        await listener.until(lambda: listener.connections >= 1)
        for ven in (quiet, moving):
            await ven.register()
            await ven.drain()
            await _quiet_polls_read_nothing(b, ven)  # B knows both registrations
        await moved.register()  # the second VEN's certificate registers again, through A
        # B hears notifications in commit order: once it heard a probe sent after the
        # registration committed, it has applied the registration's
        async with asyncio.timeout(30):
            assert await listener.lag(a.app[STORAGE].engine) is not None
        async with a.app[STORAGE].engine.begin() as conn:  # behind both workers' backs
            await conn.execute(text("UPDATE vens SET ven_name = 'changed'"))
        vens = b.app[STORAGE].vens
        forgotten = await vens.by_fingerprint(pki.vens[1].fingerprint)
        assert forgotten is not None and forgotten.ven_name == "changed"
        kept = await vens.by_fingerprint(pki.vens[0].fingerprint)
        assert kept is not None and kept.ven_name != "changed"
        before = _transactions(b)
        for _ in range(5):
            assert isinstance(await quiet.poll(), Response)
        assert _transactions(b) == before


async def test_an_erasure_through_one_worker_makes_the_other_forget_that_ven(pki, storage_url):
    """A VEN erased (GDPR) through worker A is no longer known to worker B, which had it in
    memory: B's next lookup of its certificate reads, and finds nothing."""
    async with two_workers(pki, storage_url) as (a, b), \
            raw_ven(f"https://127.0.0.1:{b.port}{SERVICE_PREFIX}", pki.client_context()) as ven:
        listener = await _known_quiet(b, ven)  # B knows the registration
        assert await a.app[STORAGE].vens.erase(ven.ven_id) > 0
        async with asyncio.timeout(30):  # B has applied what A committed before this probe
            assert await listener.lag(a.app[STORAGE].engine) is not None
        assert await b.app[STORAGE].vens.by_fingerprint(pki.vens[0].fingerprint) is None
