"""Retention's purges delete in batches of keys, each its own transaction (on a real SQLite file
and a real PostgreSQL database): every old row goes and is counted, no statement deletes more
than a batch, a write sent while a purge runs commits before the purge ends, and on PostgreSQL a
purge far larger than what one statement may do within the statement timeout completes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from vtn.storage import Storage, open_storage

from .test_report_store import T0, batch, update, ven
from .test_storage import an_event, register

INSTANTS = 150  # per VEN: 4 s apart, two points (rIDs) each
OLD = 100  # instants before the cutoff


@contextlib.contextmanager
def deletes_from(storage: Storage, table: str) -> Iterator[list[int]]:
    """The row count of every DELETE from ``table`` the Core engines run, in order (the purges
    run on them on both backends)."""
    counts: list[int] = []

    def after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(f"DELETE FROM {table.upper()} "):
            counts.append(cursor.rowcount)

    engine = storage.sqlite_engine or storage.engine.sync_engine
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield counts
    finally:
        event.remove(engine, "after_cursor_execute", after)


async def _fill(storage: Storage, vens: int) -> list[str]:
    ids = []
    for n in range(vens):
        ven_id = (await storage.vens.register(ven(n))).ven_id
        added = await storage.reports.store_update(
            ven_id, update(batch(ven_id, 0, 2 * INSTANTS)), (), fingerprint=f"fp:{n:02d}")
        assert added == (2 * INSTANTS, ())
        ids.append(ven_id)
    return ids


CUTOFF = T0 + timedelta(seconds=4 * OLD)
WINDOW = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))


async def test_a_purge_of_many_batches_deletes_and_counts_every_old_point(
        storage: Storage) -> None:
    vens = await _fill(storage, 3)
    with deletes_from(storage, "report_points") as counts:
        assert await storage.reports.purge_points(CUTOFF, batch=50) == 3 * 2 * OLD
    # VEN by VEN, 50 old points a statement, then one finding none left
    assert counts == [50, 50, 50, 50, 0] * 3
    for ven_id in vens:
        left = await storage.reports.points(ven_id, *WINDOW)
        assert len(left) == 2 * (INSTANTS - OLD) and min(p.dtstart for p in left) == CUTOFF
    assert await storage.reports.purge_points(CUTOFF, batch=50) == 0


async def test_a_purge_deletes_at_most_5000_rows_a_statement_by_default(
        storage: Storage) -> None:
    """The batch README.md and docs/architecture.md name."""
    ven_id = (await storage.vens.register(ven(1))).ven_id
    points = batch(ven_id, 0, 6000)
    await storage.reports.add_points(points)
    with deletes_from(storage, "report_points") as counts:
        assert await storage.reports.purge_points(T0 + timedelta(days=1)) == 6000
    assert counts == [5000, 1000]


async def test_ended_events_and_delivered_items_are_purged_one_batch_at_a_time(
        storage: Storage) -> None:
    vens = await register(storage, 2)
    for n in range(5):
        await storage.events.put(replace(an_event(0), event_id=f"ev-{n}"))
    await storage.outbox.enqueue(vens, b"<a/>", "k", at=T0)
    for ven_id in vens:
        item = await storage.outbox.next_for(ven_id, now=T0)
        assert item is not None and await storage.outbox.mark_delivered(item.seq, at=T0)
    ended = an_event(0).ends_at
    assert ended is not None
    with deletes_from(storage, "events") as events, deletes_from(storage, "outbox") as items:
        assert await storage.events.purge_ended(ended + timedelta(seconds=1), batch=2) == 5
        assert await storage.outbox.purge_delivered(T0 + timedelta(seconds=1), batch=1) == 2
    assert events == [2, 2, 1] and items == [1, 1, 0]
    assert await storage.events.query() == ()


async def test_a_report_written_while_a_purge_runs_commits_before_the_purge_ends(
        storage: Storage) -> None:
    """The order of events: the purge's first batch, then the report write (sent after that
    batch and committed), then more of the purge's batches."""
    vens = await _fill(storage, 3)
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    order: list[str] = []
    with deletes_from(storage, "report_points") as counts:
        def first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not statement.startswith("DELETE FROM report_points "):
                return
            order.append("delete")
            if len(order) == 1:
                loop.call_soon_threadsafe(started.set)

        engine = storage.sqlite_engine or storage.engine.sync_engine
        event.listen(engine, "after_cursor_execute", first)
        try:
            purge = asyncio.ensure_future(storage.reports.purge_points(CUTOFF, batch=20))
            await started.wait()
            late = batch(vens[0], INSTANTS, 2)
            assert await storage.reports.store_update(
                vens[0], update(late), (), fingerprint="fp:00") == (2, ())
            order.append("write")
            assert await purge == 3 * 2 * OLD
        finally:
            event.remove(engine, "after_cursor_execute", first)
    written = order.index("write")
    assert 0 < written < len(order) - 1, order  # batches ran before and after the write
    assert counts == ([20] * 10 + [0]) * 3


# Every deleted point costs the server 8 ms (a trigger sleeping): a VEN's 200 old points take 1.6 s
# in one statement, past a 1 s statement_timeout, while a batch of 10 takes 80 ms.
_SLOW_DELETES = (
    "CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN PERFORM pg_sleep(0.008); RETURN OLD; END $$",
    "CREATE TRIGGER slow_delete BEFORE DELETE ON report_points"
    " FOR EACH ROW EXECUTE FUNCTION slow_delete()",
)


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_on_postgresql_a_purge_completes_under_a_statement_timeout_one_delete_outruns(
        storage: Storage, storage_url: str) -> None:
    """The purge as a whole is not one statement: a purge that one DELETE would take past the
    statement timeout (cancelled, nothing deleted) completes in batches, each within it."""
    vens = await _fill(storage, 2)
    async with storage.engine.begin() as conn:
        for statement in _SLOW_DELETES:
            await conn.exec_driver_sql(statement)
    timed = await open_storage(storage_url, statement_timeout_s=1.0)
    try:
        with pytest.raises(DBAPIError, match="statement timeout"):
            await timed.reports.purge_points(CUTOFF, batch=2 * 2 * INSTANTS)  # one statement
        assert len(await timed.reports.points(vens[0], *WINDOW)) == 2 * INSTANTS
        with deletes_from(timed, "report_points") as counts:
            assert await timed.reports.purge_points(CUTOFF, batch=10) == 2 * 2 * OLD
        assert counts == ([10] * 20 + [0]) * 2
    finally:
        await timed.close()
