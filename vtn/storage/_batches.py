"""Retention's deletes, in batches of keys, so a purge never holds the writer for long.

One ``DELETE ... WHERE dtstart < :cutoff`` over a day of a fleet's telemetry (hundreds of millions
of rows) held SQLite's single writer for its whole run, so every write of the fleet waited behind
it; on PostgreSQL it would outrun the statement timeout, be cancelled every time, and purge
nothing. :func:`delete_in_batches` walks the table in primary-key order instead: each batch is
one short transaction that finds, in key order, the ``batch``-th next row the condition matches
and deletes the matching rows up to its key, so no statement deletes more than ``batch`` rows
(the last batch takes the rest, fewer than ``batch`` when it counted them). Writes queued
meanwhile (on SQLite, for the one writer thread) run between two batches. A condition that
bounds a leading part of the key (report points: one VEN's, older than the cutoff) makes each
batch a range of the primary-key index that starts where the last one ended, so no row is read
twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Row, Table, delete, select, tuple_

from ._engine import Database

__all__ = ["PURGE_BATCH", "delete_in_batches"]

# Rows one purge statement may delete: a batch holds the writer for tens of milliseconds
# (bench/README.md, "Retention purges in batches").
PURGE_BATCH: Final = 5_000


async def delete_in_batches(db: Database, table: Table, condition: ColumnElement[bool], *,
                            batch: int = PURGE_BATCH,
                            key: Sequence[ColumnElement[Any]] | None = None) -> int:
    """Delete the rows of ``table`` matching ``condition``, ``batch`` rows per transaction;
    returns how many went. ``key`` (the primary key by default) are the columns the batches
    follow, unique among the matching rows: the primary key without the leading columns the
    condition pins to one value lets both engines start each batch where the last one ended
    in the index, not at the start of the range (past rows the condition keeps). A matching
    row written behind the walk (a key already passed) is left for the next purge."""
    if batch < 1:
        raise ValueError("a purge batch holds at least one row")
    columns = list(table.primary_key.columns if key is None else key)
    order = tuple_(*columns)
    after: Row[Any] | None = None  # the last key of the previous batch
    deleted = 0
    while True:
        # This batch's last key: the ``batch``-th matching row after ``after`` (None: fewer left).
        bound = select(*columns).where(condition).order_by(*columns).offset(batch - 1).limit(1)
        stmt = delete(table).where(condition)
        if after is not None:
            bound = bound.where(order > tuple(after))
            stmt = stmt.where(order > tuple(after))

        def work(conn: Connection, bound: Any = bound, stmt: Any = stmt
                 ) -> tuple[int, Row[Any] | None]:
            last = conn.execute(bound).first()
            if last is not None:
                stmt = stmt.where(order <= tuple(last))
            return int(conn.execute(stmt).rowcount), last

        count, after = await db.run_write(work)
        deleted += count
        if after is None:
            return deleted
