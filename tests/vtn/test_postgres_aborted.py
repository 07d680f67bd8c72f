"""PostgreSQL rolling a transaction back so that a concurrent one can go on (deadlock_detected
40P01, serialization_failure 40001), provoked on a real server: :func:`vtn.faults.storage_failure`
names it for what it was, whether asyncpg raised it (the hot paths) or SQLAlchemy wrapped it, so
the VTN takes it as a pause (a request answered 503, a push lane backing off), not as a bug."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from vtn.faults import storage_failure

pytestmark = pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)

WAIT_S = 30.0  # bounds a wait PostgreSQL ends after its deadlock_timeout (1 s); nothing timed


async def _session(storage_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(make_url(storage_url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))


async def test_a_deadlock_raised_by_asyncpg_is_named_as_one(storage_url: str) -> None:
    """Two sessions each hold a row and ask for the other's: PostgreSQL aborts one of them."""
    a, b = await _session(storage_url), await _session(storage_url)
    try:
        await a.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        for conn, row in ((a, 1), (b, 2)):
            await conn.execute("BEGIN")
            await conn.execute("SELECT 1 FROM t WHERE id = $1 FOR UPDATE", row)
        async with asyncio.timeout(WAIT_S):
            outcomes = await asyncio.gather(
                *(conn.execute(f"SELECT 1 FROM t WHERE id = {row} FOR UPDATE")
                  for conn, row in ((a, 2), (b, 1))), return_exceptions=True)
    finally:
        await asyncio.gather(a.close(), b.close())
    (aborted,) = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(aborted, asyncpg.exceptions.DeadlockDetectedError), aborted
    cause = storage_failure(aborted)
    assert cause is not None
    assert cause.kind == "the database aborted the transaction (deadlock detected)"
    assert cause.detail.startswith("DeadlockDetectedError: deadlock detected"), cause.detail


async def test_a_serialization_failure_wrapped_by_sqlalchemy_is_named_as_one(
        storage_url: str) -> None:
    """Two SERIALIZABLE transactions each read what the other writes: the one that commits
    second is rolled back, here through SQLAlchemy (the VTN's repositories)."""
    first = await _session(storage_url)
    engine = create_async_engine(storage_url)
    try:
        await first.execute("CREATE TABLE t (n int)")
        async with engine.connect() as second:
            await first.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            await second.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
            await first.fetchval("SELECT count(*) FROM t")
            await second.execute(text("SELECT count(*) FROM t"))
            await first.execute("INSERT INTO t VALUES (1)")
            await second.execute(text("INSERT INTO t VALUES (2)"))
            await first.execute("COMMIT")
            with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
                await second.commit()
    finally:
        await first.close()
        await engine.dispose()
    cause = storage_failure(caught.value)
    assert cause is not None
    assert cause.kind == "the database aborted the transaction (serialization failure)"
    assert "could not serialize access" in cause.detail, cause.detail
