"""Group commit on the SQLite writer thread (vtn.storage._groupcommit), on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from vtn.storage import StorageConflict
from vtn.storage._engine import Database, create_engine_for

WAIT_S = 10.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Database, list[str], Path]]:
    """A Database on a SQLite file with table t, and the SQL its stdlib connections ran."""
    path = tmp_path / "g.db"
    database = Database(create_engine_for(f"sqlite:///{path}"))
    statements: list[str] = []
    assert database.sync_engine is not None

    @event.listens_for(database.sync_engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    await database.run_sqlite(
        lambda conn: conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"), write=True)
    statements.clear()
    try:
        yield database, statements, path
    finally:
        await database.close()


def insert(*keys: int) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        for k in keys:
            conn.execute("INSERT INTO t VALUES (?, ?)", (k, f"v{k}"))
        return sum(keys)
    return work


def committed_keys(path: Path) -> set[int]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return {k for (k,) in other.execute("SELECT k FROM t")}


async def test_writes_waiting_together_share_one_commit(db: Any) -> None:
    database, statements, _ = db
    results = await asyncio.gather(*(database.run_sqlite(insert(k), write=True)
                                     for k in range(20)))
    assert results == list(range(20))  # each caller its own result, in its own order
    assert statements.count("COMMIT") == 1
    assert statements.count("BEGIN IMMEDIATE") == 1


async def test_each_caller_is_answered_after_its_write_is_committed(db: Any) -> None:
    database, _, path = db

    async def write_then_look(k: int) -> bool:
        await database.run_sqlite(insert(k), write=True)
        return k in committed_keys(path)

    assert all(await asyncio.gather(*(write_then_look(k) for k in range(30))))


async def test_a_failing_job_is_undone_alone(db: Any) -> None:
    database, statements, path = db
    jobs = [insert(k) for k in range(10)]
    jobs[5] = insert(105, 1)  # its first row is fine, its second a duplicate of job 1's
    results = await asyncio.gather(*(database.run_sqlite(j, write=True) for j in jobs),
                                   return_exceptions=True)
    assert isinstance(results[5], StorageConflict)
    assert [r for n, r in enumerate(results) if n != 5] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert committed_keys(path) == set(range(10)) - {5}  # 105 went with its job
    # The group was undone and every job re-run alone: the others' answers do not depend on it.
    assert statements.count("COMMIT") == 9


async def test_a_value_error_is_the_callers_and_later_writes_go_on(db: Any) -> None:
    database, _, path = db

    def refuse(_conn: sqlite3.Connection) -> None:
        raise ValueError("refused value")

    results = await asyncio.gather(database.run_sqlite(insert(1), write=True),
                                   database.run_sqlite(refuse, write=True),
                                   database.run_sqlite(insert(2), write=True),
                                   return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], ValueError)
    assert await database.run_sqlite(insert(3), write=True) == 3
    assert committed_keys(path) == {1, 2, 3}


async def test_a_caller_cancelled_before_its_turn_writes_nothing(db: Any) -> None:
    database, _, path = db
    running, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> int:
        running.set()
        release.wait(WAIT_S)
        return insert(1)(conn)

    first = asyncio.ensure_future(database.run_sqlite(hold, write=True))
    assert await asyncio.to_thread(running.wait, WAIT_S)
    calling = asyncio.Event()

    async def write_two() -> int:
        calling.set()  # the rest of this step, up to run_sqlite's first wait, runs before
        return await database.run_sqlite(insert(2), write=True)  # the test wakes

    second = asyncio.ensure_future(write_two())
    assert database.queued_writes == 0
    await calling.wait()
    # queued behind the held writer, not cancelled before it got there: the writer must skip it
    assert database.queued_writes == 1, "the job must be queued behind the held writer"
    second.cancel()
    release.set()
    async with asyncio.timeout(WAIT_S):
        assert await first == 1
        with pytest.raises(asyncio.CancelledError):
            await second
        assert await database.run_sqlite(insert(3), write=True) == 3
    assert committed_keys(path) == {1, 3}


async def test_transactions_one_after_another_run_on_one_connection(db: Any) -> None:
    """In WAL mode a connection drops its page cache when another one committed since its last
    transaction: taking the connections in turn made every write begin cold."""
    database, _, _ = db
    together = threading.Barrier(3)

    def hold(conn: sqlite3.Connection) -> int:
        together.wait(WAIT_S)  # the writer thread and both reader threads in a transaction
        return id(conn)

    opened = await asyncio.gather(*(database.run_sqlite(hold, write=write)
                                    for write in (True, False, False)))
    assert len(set(opened)) == 3  # three connections now idle
    used = [await database.run_sqlite(id, write=write) for write in (True, True, False, True)]
    assert len(set(used)) == 1


async def test_transactions_take_no_connection_from_the_engines_pool(db: Any) -> None:
    database, _, _ = db
    pool = database.sync_engine.pool
    for write in (True, False):
        assert await database.run_sqlite(lambda _conn: pool.checkedout(), write=write) == 0


async def test_disposing_of_the_engine_closes_its_connections(db: Any) -> None:
    """As with the pool's: the idle ones at once, the one in use when its transaction ended;
    the next transaction opens a new connection, through the engine's connect hooks."""
    database, statements, path = db
    running, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> sqlite3.Connection:
        running.set()
        release.wait(WAIT_S)
        insert(1)(conn)
        return conn

    holding = asyncio.ensure_future(database.run_sqlite(hold, write=True))
    assert await asyncio.to_thread(running.wait, WAIT_S)
    idle = await database.run_sqlite(lambda conn: conn, write=False)
    database.sync_engine.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        idle.execute("SELECT 1")  # closed
    release.set()
    in_use = await holding
    with pytest.raises(sqlite3.ProgrammingError):
        in_use.execute("SELECT 1")  # closed after its transaction committed
    assert committed_keys(path) == {1}
    statements.clear()
    assert await database.run_sqlite(insert(2), write=True) == 2
    assert "BEGIN IMMEDIATE" in statements  # a new connection, traced by the fixture's hook


async def test_a_read_cancelled_before_its_turn_is_skipped_and_errors_reach_the_caller(
        db: Any) -> None:
    database, _, _ = db
    together = threading.Barrier(3)
    ran: list[str] = []

    def hold(_conn: sqlite3.Connection) -> None:
        together.wait(WAIT_S)  # both reader threads taken, and the test goes on

    def note(_conn: sqlite3.Connection) -> None:
        ran.append("skipped read")

    holding = [asyncio.ensure_future(database.run_sqlite(hold, write=False)) for _ in range(2)]
    skipped = asyncio.ensure_future(database.run_sqlite(note, write=False))
    await asyncio.sleep(0)  # every read queued on the reader threads
    skipped.cancel()
    await asyncio.to_thread(together.wait, WAIT_S)
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*holding)
        with pytest.raises(asyncio.CancelledError):
            await skipped
        with pytest.raises(StorageConflict):  # a read's driver errors translated as a write's
            await database.run_sqlite(
                lambda conn: conn.execute("INSERT INTO t VALUES (1, 'x'), (1, 'y')"),
                write=False)
    assert ran == []
