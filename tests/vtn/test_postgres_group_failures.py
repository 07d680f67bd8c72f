"""Grouped poll deliveries on a real PostgreSQL database when things go wrong while a group is in
flight (vtn.storage._postgres_groups, _postgres_deliveries): a caller cancelled, a connection
lost, another worker delivering (or pushing) to the same VEN. Locks taken by the test hold the
group's statement in flight or stand for the other worker; no item is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.kit.databases import fresh_postgres_database
from tests.vtn.test_backend_contract import event, newer, queue
from vtn.storage import EventStatus, Storage, StorageUnavailable, VenRegistration, open_storage
from vtn.storage.backend import EVENT_KIND, Distribution
from vtn.storage.notify import OUTBOX_CHANNEL

T0 = datetime(2030, 1, 1, tzinfo=UTC)
WAIT_S = 10.0
_BLOCKED = ("SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'outbox'::regclass"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


@pytest.fixture
async def database() -> AsyncIterator[tuple[Storage, asyncpg.Connection]]:
    """An open storage on a fresh PostgreSQL database, and a connection of the test's own."""
    async for url in fresh_postgres_database():
        storage = await open_storage(url)
        own = await asyncpg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            yield storage, own
        finally:
            await own.close()
            await storage.close()


def poll(ven_id: str) -> Distribution:
    return Distribution(ven_id=ven_id, statuses=(EventStatus.FAR,), now=T0,
                        cancelled_since=T0 - timedelta(hours=1), limit=None)


async def queued(storage: Storage, *names: str) -> None:
    """A VEN per name with one item ``<name/>`` waiting."""
    for name in names:
        await storage.vens.register(VenRegistration(
            ven_id=name, registration_id=f"reg-{name}", fingerprint=f"FP:{name}",
            ven_name=name, created_at=T0))
        await storage.backend.enqueue((name,), f"<{name}/>".encode(), "oadrCreateReport",
                                      None, T0)


async def blocked(own: asyncpg.Connection) -> list[int]:
    """The backends waiting on the test's lock on outbox, once there is one."""
    while not (pids := [row[0] for row in await own.fetch(_BLOCKED)]):
        await asyncio.sleep(0.01)
    return pids


async def test_a_poll_cancelled_while_its_group_is_in_flight_leaves_its_item_waiting(
        database: tuple[Storage, asyncpg.Connection]) -> None:
    storage, own = database
    await queued(storage, "a")
    heard: asyncio.Queue[str] = asyncio.Queue()
    await own.add_listener(OUTBOX_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    async with asyncio.timeout(WAIT_S):
        lock = own.transaction()
        await lock.start()
        await own.execute("LOCK TABLE outbox IN SHARE MODE")
        gone = asyncio.ensure_future(storage.backend.deliver_next(poll("a")))
        await blocked(own)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        await lock.commit()  # the statement goes on and commits for a caller that is gone
        # the next poll of "a" waits for that group, then takes the item no one received
        delivered, waiting = await storage.backend.deliver_next(poll("a"))
        # every worker's poll index heard it was given back, as of an enqueue
        assert await heard.get() == "a"
    assert delivered is not None and (delivered.item.payload, waiting) == (b"<a/>", False)


async def test_a_group_whose_connection_is_lost_fails_its_callers_and_is_not_sent_again(
        database: tuple[Storage, asyncpg.Connection]) -> None:
    """Whether a statement whose connection went had committed is unknown: sent again, a poll
    would take the VEN's next item and lose the first. The callers get StorageUnavailable (the
    VEN's poll answers 503) while the lock still holds, so nothing ran again."""
    storage, own = database
    await queued(storage, "a", "b")
    async with asyncio.timeout(WAIT_S):
        lock = own.transaction()
        await lock.start()
        await own.execute("LOCK TABLE outbox IN SHARE MODE")
        try:
            polls = asyncio.gather(*(storage.backend.deliver_next(poll(v)) for v in ("a", "b")),
                                   return_exceptions=True)
            (pid,) = await blocked(own)  # one statement for both polls
            await own.execute("SELECT pg_terminate_backend($1)", pid)
            outcomes = await polls
        finally:
            await lock.rollback()
        assert [type(outcome) for outcome in outcomes] == [StorageUnavailable] * 2
        again = await asyncio.gather(*(storage.backend.deliver_next(poll(v)) for v in "ab"))
    assert [(d.item.payload if d else None, waiting) for d, waiting in again] == [
        (b"<a/>", False), (b"<b/>", False)]


async def test_a_delivery_never_waits_for_an_event_list_item_another_worker_holds(
        database: tuple[Storage, asyncpg.Connection]) -> None:
    """Two workers delivering to one VEN at once each hold the event-list item they took; had
    each waited for the other's to mark it answered, they would wait in a cycle (PostgreSQL
    would abort one poll). The one it cannot lock is left to the worker that holds it."""
    storage, own = database
    await queued(storage, "a")
    await storage.backend.put_events(
        [(event(e), queue(("a",), f"{e}:0")) for e in ("e1", "e2")], newer)
    async with asyncio.timeout(WAIT_S):
        other = own.transaction()
        await other.start()
        try:
            await own.execute("SELECT 1 FROM outbox WHERE dedup_key = 'e2:0' FOR UPDATE")
            first, _ = await storage.backend.deliver_next(poll("a"))
            lists, _ = await storage.backend.deliver_next(poll("a"))
        finally:
            await other.rollback()
    assert first is not None and first.item.payload == b"<a/>"
    assert lists is not None and lists.item.kind == EVENT_KIND
    assert (lists.item.dedup_key, [e.event_id for e in lists.events]) == ("e1:0", ["e1", "e2"])


async def test_a_delivery_this_version_cannot_read_fails_its_poll_alone_and_keeps_its_item(
        database: tuple[Storage, asyncpg.Connection]) -> None:
    """A row the group's statement wrote but this VTN cannot read back (a target kind it does
    not know, as a newer version may write) is found after the commit: that poll fails and its
    item waits, as if it had rolled back; the other polls of the group get what they took."""
    storage, own = database
    await queued(storage, "a", "b")
    assert (await storage.backend.deliver_next(poll("a")))[0] is not None  # its <a/>
    await storage.backend.put_events([(event("e1"), queue(("a",), "e1:0"))], newer)
    await storage.backend.enqueue(("a",), b"<a2/>", "oadrCreateReport", None, T0)
    await own.execute("INSERT INTO ven_memberships (ven_id, kind, value)"
                      " VALUES ('a', 'zone', 'z')")
    await own.execute("INSERT INTO event_targets (event_id, kind, value)"
                      " VALUES ('e1', 'zone', 'z')")
    async with asyncio.timeout(WAIT_S):
        unread, taken = await asyncio.gather(
            *(storage.backend.deliver_next(poll(v)) for v in "ab"), return_exceptions=True)
        assert isinstance(unread, ValueError)
        assert not isinstance(taken, BaseException) and taken[0] is not None
        assert taken[0].item.payload == b"<b/>"
        await own.execute("DELETE FROM event_targets WHERE kind = 'zone'")
        lists, _ = await storage.backend.deliver_next(poll("a"))
        report, _ = await storage.backend.deliver_next(poll("a"))
    assert lists is not None and (lists.item.dedup_key, [e.event_id for e in lists.events]) == (
        "e1:0", ["e1"])
    assert report is not None and report.item.payload == b"<a2/>"


async def test_a_claim_never_waits_for_an_event_list_item_another_worker_holds(
        database: tuple[Storage, asyncpg.Connection]) -> None:
    """The push path's claim supersedes as a poll's delivery does: two workers pushing to one
    VEN at once waited for each other's item (PostgreSQL aborted one: DeadlockDetectedError
    ended that worker's push lanes, seen in tests/vtn/test_workers_race.py)."""
    storage, own = database
    await queued(storage, "a")
    await storage.backend.put_events(
        [(event(e), queue(("a",), f"{e}:0")) for e in ("e0", "e1", "e2")], newer)
    await storage.backend.claim("a", T0, T0 + timedelta(seconds=30), None)  # its <a/>
    async with asyncio.timeout(WAIT_S):
        other = own.transaction()
        await other.start()
        try:
            await own.execute("SELECT 1 FROM outbox WHERE dedup_key = 'e2:0' FOR UPDATE")
            claimed = await storage.backend.claim("a", T0, T0 + timedelta(seconds=30),
                                                  EVENT_KIND)
        finally:
            await other.rollback()
    assert claimed is not None and claimed.dedup_key == "e0:0"
    # e1 was superseded; e2, held by the other worker, was left to it (claimed ones stay
    # pending until marked delivered: <a/> and e0)
    assert [i.dedup_key for i in await storage.outbox.pending("a")] == [None, "e0:0", "e2:0"]
