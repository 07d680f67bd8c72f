"""A row lock held by another session (a stuck transaction, an operator's console) on real
PostgreSQL, with ``database_lock_timeout_s`` injected small: the write that needs that row fails
with StorageBusy once the timeout runs out, instead of stalling, and its VEN's request is
answered 503 with Retry-After; another VEN's write sent in the same group statement is stored
all the same; once the lock is released the refused request goes through (nothing of it was
committed, nothing is lost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import NoReturn

import asyncpg
import pytest
from asyncpg.transaction import Transaction
from sqlalchemy import text
from sqlalchemy.engine import make_url

from schemas import (
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    EventResponse,
    OptType,
    Target,
)
from tests.kit.pki import Pki
from tests.kit.vtn import running_vtn
from vtn.migrations import _ADVISORY_LOCK_KEY
from vtn.services import events
from vtn.storage import EventAck, StorageBusy, open_storage
from vtn.storage import OptType as StoredOpt

from .harness import CODEC, RawVen, code_of, raw_ven, sample_event

pytestmark = pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)

WAIT_S = 30.0  # bounds waits that end within the injected lock timeout (no timing is asserted)


def _ack(ven: RawVen, event_id: str) -> CreatedEvent:
    return CreatedEvent(response=EiResponse(request_id="d"), ven_id=ven.ven_id,
                        event_responses=(EventResponse(request_id="d", event_id=event_id,
                                                       modification_number=0,
                                                       opt_type=OptType.OPT_IN),))


def _refuse(current: dict[str, int]) -> NoReturn:
    raise AssertionError(f"an ack was refused against {current}")


@asynccontextmanager
async def _other_session(storage_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to the VTN's database: another session."""
    own = await asyncpg.connect(make_url(storage_url).set(drivername="postgresql")
                                .render_as_string(hide_password=False))
    try:
        yield own
    finally:
        await own.close()


async def _lock_delivery(own: asyncpg.Connection, event_id: str,
                         ven_id: str) -> Transaction:
    """Lock the row the VEN's acknowledgement of ``event_id`` must write, in a transaction left
    open (returned, to be rolled back)."""
    stuck = own.transaction()
    await stuck.start()
    locked = await own.fetch("SELECT 1 FROM event_deliveries WHERE event_id = $1"
                             " AND ven_id = $2 FOR UPDATE", event_id, ven_id)
    assert len(locked) == 1
    return stuck


async def _ack_answered_503(ven: RawVen, event_id: str, cause: str) -> None:
    async with ven.session.post(f"{ven.url}/EiEvent", data=CODEC.encode(_ack(ven, event_id)),
                                headers={"Content-Type": "application/xml"}) as reply:
        said = await reply.text()
        assert reply.status == 503 and "Retry-After" in reply.headers, said
        assert cause in said, said


async def test_a_row_locked_by_another_session_is_a_503_for_its_request_only(
        pki, storage_url):
    async with running_vtn(pki, storage_url, database_lock_timeout_s=0.2) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as b:
        for ven in (a, b):
            await ven.register()
            await ven.drain()
        await events.publish_events(vtn.ctx, (sample_event("ev-a", Target(ven_ids=(a.ven_id,))),
                                              sample_event("ev-b", Target(ven_ids=(b.ven_id,)))))
        for ven in (a, b):
            (got,) = await ven.drain()
            assert isinstance(got, DistributeEvent)
        storage = vtn.ctx.storage
        async with _other_session(storage_url) as own, asyncio.timeout(WAIT_S):
            stuck = await _lock_delivery(own, "ev-a", a.ven_id)

            # both answers wait together: one group statement, which A's row holds up
            now = datetime.now(UTC)
            outcomes = await asyncio.gather(*(storage.events.record_answer(
                ven.ven_id, (EventAck(event_id=event_id, ven_id=ven.ven_id,
                                      modification_number=0, opt_type=StoredOpt.OPT_IN,
                                      at=now),),
                fingerprint=cert.fingerprint, refuse=_refuse)
                for ven, event_id, cert in ((a, "ev-a", pki.vens[0]),
                                            (b, "ev-b", pki.vens[1]))),
                return_exceptions=True)
            assert isinstance(outcomes[0], StorageBusy), outcomes[0]
            assert isinstance(outcomes[1], tuple) and [
                d.ack_opt_type for d in outcomes[1]] == [StoredOpt.OPT_IN]

            await _ack_answered_503(a, "ev-a", "lock timeout")
            (stored_a,) = await storage.events.deliveries("ev-a")
            assert stored_a.ack_opt_type is None  # nothing of A's answers was committed

            await stuck.rollback()
            assert code_of(await a.post("EiEvent", _ack(a, "ev-a"))) == 200
        (stored_a,) = await storage.events.deliveries("ev-a")
        assert stored_a.ack_opt_type is StoredOpt.OPT_IN


async def test_a_statement_running_past_the_statement_timeout_is_a_503_not_a_hang(
        pki: Pki, storage_url: str) -> None:
    """With the lock timeout out of reach (an hour), an acknowledgement held up by another
    session's row lock is still cancelled, by statement_timeout: its request is answered 503 with
    Retry-After, nothing of it is committed, and it goes through once the lock is released. The
    SQLAlchemy engine's sessions carry the same statement_timeout."""
    async with running_vtn(pki, storage_url, database_lock_timeout_s=3600.0,
                           database_statement_timeout_s=0.2) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as a:
        await a.register()
        await a.drain()
        await events.publish_event(vtn.ctx, sample_event("ev-a", Target(ven_ids=(a.ven_id,))))
        (got,) = await a.drain()
        assert isinstance(got, DistributeEvent)
        storage = vtn.ctx.storage
        async with storage.engine.connect() as conn:
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar() == "200ms"
        async with _other_session(storage_url) as own, asyncio.timeout(WAIT_S):
            stuck = await _lock_delivery(own, "ev-a", a.ven_id)
            await _ack_answered_503(a, "ev-a", "statement timeout")
            (stored_a,) = await storage.events.deliveries("ev-a")
            assert stored_a.ack_opt_type is None
            await stuck.rollback()
            assert code_of(await a.post("EiEvent", _ack(a, "ev-a"))) == 200


async def test_a_starting_worker_waits_out_another_workers_migration_past_the_lock_timeout(
        storage_url):
    """The migration's wait for another worker's (its advisory lock) is not bound by the lock
    or statement timeout the sessions start with: a worker that gave up there would fail to
    start."""
    async with _other_session(storage_url) as own, asyncio.timeout(WAIT_S):
        migrating = own.transaction()  # another worker, migrating
        await migrating.start()
        await own.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
        starting = asyncio.create_task(open_storage(storage_url, lock_timeout_s=0.05,
                                                        statement_timeout_s=0.05))
        # the starting worker's wait has outlasted its lock and statement timeouts many times over
        while not await own.fetchval(
                "SELECT bool_or(clock_timestamp() - waitstart > interval '1 second')"
                " FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
            assert not starting.done(), starting.exception()
            await asyncio.sleep(0.05)
        assert not starting.done()
        await migrating.rollback()
        storage = await starting
        await storage.close()

