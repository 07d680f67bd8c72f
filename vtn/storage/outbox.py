"""Per-VEN outbound queues in the database (docs/architecture.md#storage-and-scale: a change one
worker makes reaches VENs polling another).

Delivery is at least once, in order of ``seq`` per VEN:

1. :meth:`OutboxRepository.enqueue` adds one row per VEN in a single multi-row INSERT inside one
   transaction; a ``dedup_key`` already queued for that VEN is skipped, so a retried fan-out never
   queues a message twice.
2. :meth:`next_for` *claims* the oldest unclaimed, undelivered item for a lease: the claim is one
   UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED) statement, so two workers polling for
   the same VEN never get the same item (on SQLite the write transaction is IMMEDIATE, which
   serialises claimers).
3. After the reply carrying the item was handed to the transport, :meth:`mark_delivered`. If the
   worker dies first, the lease runs out and the item is handed out again; a VEN therefore may see
   an item twice (OpenADR handles that: modificationNumber, requestID), but never loses one.
   A send that failed gives the item back (:meth:`release`) while its own lease holds it; once the
   lease ran out and another claim took the item, the release leaves that claim alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Connection, Table, delete, func, or_, select, update

from ._batches import PURGE_BATCH, delete_in_batches
from ._engine import Database, from_sqlite_time, insert_many, sqlite_time
from ._models import OutboxRow
from .backend import Backend
from .pollindex import PollIndex
from .records import OutboxItem

__all__ = [
    "DEFAULT_LEASE", "OutboxRepository", "claim_sqlite", "enqueue_in", "waiting_sqlite",
]

DEFAULT_LEASE: Final = timedelta(seconds=30)


_OUTBOX = cast(Table, OutboxRow.__table__)

# The SQLite hot paths as plain sqlite3 SQL (see _engine.Database.run_sqlite). The writer thread's
# BEGIN IMMEDIATE serialises claimers, so the claim needs no row locks or re-check.
_CLAIMABLE_SQLITE: Final = (
    "ven_id = ? AND delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?)"
)
_OLDEST_SQLITE: Final = (
    f" WHERE seq = (SELECT seq FROM outbox WHERE {_CLAIMABLE_SQLITE} ORDER BY seq LIMIT 1)"
    " RETURNING seq, ven_id, kind, payload, dedup_key, enqueued_at"
)
_CLAIM_SQLITE: Final = "UPDATE outbox SET claimed_until = ?" + _OLDEST_SQLITE
_TAKE_SQLITE: Final = "UPDATE outbox SET delivered_at = ?, claimed_until = NULL" + _OLDEST_SQLITE
_SUPERSEDE_SQLITE: Final = (
    "UPDATE outbox SET delivered_at = ?, claimed_until = NULL"
    " WHERE ven_id = ? AND kind = ? AND seq != ? AND delivered_at IS NULL"
)
_BEHIND_SQLITE: Final = (
    f"SELECT EXISTS (SELECT 1 FROM outbox WHERE {_CLAIMABLE_SQLITE} AND seq > ?)"
)
_DELIVERED_SQLITE: Final = (
    "UPDATE outbox SET delivered_at = ?, claimed_until = NULL"
    " WHERE seq = ? AND delivered_at IS NULL RETURNING ven_id"
)
_WAITING_SQLITE: Final = (
    "SELECT EXISTS (SELECT 1 FROM outbox WHERE ven_id = ? AND delivered_at IS NULL)"
)


def claim_sqlite(
    conn: sqlite3.Connection, ven_id: str, now: datetime, until: datetime | None,
    supersede: str | None,
) -> OutboxItem | None:
    """:meth:`OutboxRepository.next_for` on SQLite, inside the caller's transaction; with
    ``until`` None the item is marked delivered instead of leased (the caller's transaction
    hands it out) and ``more_waiting`` is not looked up."""
    at = sqlite_time(now)
    if until is None:
        row = conn.execute(_TAKE_SQLITE, (at, ven_id, at)).fetchone()
    else:
        row = conn.execute(_CLAIM_SQLITE, (sqlite_time(until), ven_id, at)).fetchone()
    if row is None:
        return None
    seq, _, kind, payload, dedup_key, enqueued_at = row
    if supersede is not None and kind == supersede:
        conn.execute(_SUPERSEDE_SQLITE, (at, ven_id, supersede, seq))
    more = until is not None and conn.execute(_BEHIND_SQLITE, (ven_id, at, seq)).fetchone()[0]
    enqueued = from_sqlite_time(enqueued_at)
    assert enqueued is not None
    return OutboxItem(seq=seq, ven_id=row[1], kind=kind, payload=payload, dedup_key=dedup_key,
                      enqueued_at=enqueued, more_waiting=bool(more), claimed_until=until)


def waiting_sqlite(conn: sqlite3.Connection, ven_id: str) -> bool:
    """Whether anything is undelivered for the VEN (claimed or not), in the caller's
    transaction."""
    return bool(conn.execute(_WAITING_SQLITE, (ven_id,)).fetchone()[0])


def _item(row: Any, *, more_waiting: bool = False) -> OutboxItem:
    return OutboxItem(
        seq=row.seq,
        ven_id=row.ven_id,
        kind=row.kind,
        payload=row.payload,
        dedup_key=row.dedup_key,
        enqueued_at=row.enqueued_at,
        more_waiting=more_waiting,
    )


def _claimable(ven_id: str, now: datetime) -> list[ColumnElement[bool]]:
    c = _OUTBOX.c
    return [
        c.ven_id == ven_id,
        c.delivered_at.is_(None),
        or_(c.claimed_until.is_(None), c.claimed_until <= now),
    ]


def enqueue_in(
    db: Database,
    conn: Connection,
    ven_ids: Iterable[str],
    *,
    payload: bytes,
    kind: str,
    dedup_key: str | None,
    at: datetime,
) -> int:
    """Queue ``payload`` for each VEN inside the caller's transaction; returns rows added."""
    # dict.fromkeys: drop repeated VENs but keep the caller's order, which becomes seq order.
    targets = list(dict.fromkeys(ven_ids))
    rows = [
        {"ven_id": v, "kind": kind, "payload": payload, "dedup_key": dedup_key, "enqueued_at": at}
        for v in targets
    ]
    stmt = db.insert(OutboxRow)
    if dedup_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["ven_id", "dedup_key"])
    return insert_many(conn, stmt.returning(_OUTBOX.c.seq), rows)


class OutboxRepository:
    def __init__(self, db: Database, backend: Backend, index: PollIndex) -> None:
        self._db = db
        self._backend = backend
        self._index = index

    async def enqueue(
        self,
        ven_ids: Iterable[str],
        payload: bytes,
        kind: str,
        dedup_key: str | None = None,
        *,
        at: datetime,
    ) -> int:
        """Queue one encoded payload for many VENs in one transaction (one INSERT for up to
        thousands of VENs). Returns how many rows were added (duplicates by dedup_key are not)."""
        ven_ids = tuple(ven_ids)
        try:
            return await self._backend.enqueue(ven_ids, payload, kind, dedup_key, at)
        finally:  # also after a failure: the write may have committed before it surfaced
            self._index.enqueued(ven_ids)

    async def next_for(
        self,
        ven_id: str,
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        supersede: str | None = None,
    ) -> OutboxItem | None:
        """Claim the VEN's oldest waiting item for ``lease``; None when nothing waits.

        ``more_waiting`` on the result says whether further items are claimable right now, so a
        poll reply can tell the VEN to poll again at once. When the claimed item's kind is
        ``supersede``, every other undelivered item of that kind for the VEN is marked delivered
        in the same transaction (the reply to the claimed one stands for them all).
        """
        return await self._backend.claim(ven_id, now, now + lease, supersede)

    async def mark_delivered(self, seq: int, *, at: datetime) -> bool:
        """The item went out; False if it was already marked (or never existed)."""
        ven_id = await self._backend.mark_delivered(seq, at)
        if ven_id is not None:
            self._index.delivered(ven_id)
        return ven_id is not None

    async def release(self, item: OutboxItem) -> bool:
        """Give an item claimed by :meth:`next_for` back at once (the reply could not be sent);
        False when the claim was no longer ``item``'s: its lease ran out and another claim (or a
        delivery) took the item meanwhile, which a release must not undo."""
        if item.claimed_until is None:
            raise ValueError("only an item claimed for a lease can be released")
        stmt = (
            update(_OUTBOX)
            .where(_OUTBOX.c.seq == item.seq, _OUTBOX.c.delivered_at.is_(None),
                   _OUTBOX.c.claimed_until == item.claimed_until)
            .values(claimed_until=None)
        )
        return await self._db.run_write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def pending(self, ven_id: str) -> tuple[OutboxItem, ...]:
        """Every undelivered item of the VEN, claimed or not, in delivery order."""
        stmt = (
            select(_OUTBOX)
            .where(_OUTBOX.c.ven_id == ven_id, _OUTBOX.c.delivered_at.is_(None))
            .order_by(_OUTBOX.c.seq)
        )
        return await self._db.run_read(
            lambda conn: tuple(_item(row) for row in conn.execute(stmt)))

    async def pending_count(self, ven_id: str) -> int:
        stmt = select(func.count()).where(
            _OUTBOX.c.ven_id == ven_id, _OUTBOX.c.delivered_at.is_(None)
        )
        return await self._db.run_read(lambda conn: int(conn.scalar(stmt) or 0))

    async def drop_pending(self, ven_id: str) -> int:
        """Delete every undelivered item of the VEN (it was evicted); returns how many."""
        stmt = delete(_OUTBOX).where(_OUTBOX.c.ven_id == ven_id, _OUTBOX.c.delivered_at.is_(None))
        try:
            return await self._db.run_write(lambda conn: int(conn.execute(stmt).rowcount))
        finally:  # also after a failure: the delete may have committed before it surfaced
            self._index.delivered(ven_id)

    async def purge_delivered(self, older_than: datetime, *, batch: int = PURGE_BATCH) -> int:
        """Delete items delivered before ``older_than``; returns how many. At most ``batch``
        items per transaction (:func:`~._batches.delete_in_batches`)."""
        return await delete_in_batches(self._db, _OUTBOX, _OUTBOX.c.delivered_at < older_than,
                                       batch=batch)
