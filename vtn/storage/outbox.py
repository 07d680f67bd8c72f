"""Per-VEN outbound queues in the database (DESIGN.md 7: a change one worker makes reaches VENs
polling another).

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
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ._engine import Database, chunks
from ._models import OutboxRow
from .records import OutboxItem

__all__ = ["DEFAULT_LEASE", "OutboxRepository", "enqueue_in"]

DEFAULT_LEASE: Final = timedelta(seconds=30)
_COLUMNS: Final = 6


def _item(row: OutboxRow, *, more_waiting: bool = False) -> OutboxItem:
    return OutboxItem(
        seq=row.seq,
        ven_id=row.ven_id,
        kind=row.kind,
        payload=row.payload,
        dedup_key=row.dedup_key,
        enqueued_at=row.enqueued_at,
        more_waiting=more_waiting,
    )


def _claimable(ven_id: str, now: datetime) -> list[object]:
    return [
        OutboxRow.ven_id == ven_id,
        OutboxRow.delivered_at.is_(None),
        or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now),
    ]


async def enqueue_in(
    db: Database,
    session: AsyncSession,
    ven_ids: Iterable[str],
    *,
    payload: bytes,
    kind: str,
    dedup_key: str | None,
    at: datetime,
) -> int:
    """Queue ``payload`` for each VEN inside the caller's transaction; returns rows added."""
    # dict.fromkeys: drop repeated VENs but keep the caller's order, which becomes seq order.
    rows = [
        {"ven_id": v, "kind": kind, "payload": payload, "dedup_key": dedup_key, "enqueued_at": at}
        for v in dict.fromkeys(ven_ids)
    ]
    added = 0
    for part in chunks(rows, _COLUMNS):
        stmt = db.insert(OutboxRow).values(list(part))
        if dedup_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["ven_id", "dedup_key"])
        result = await session.execute(stmt)
        added += max(result.rowcount, 0)  # type: ignore[attr-defined]
    return added


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

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
        async with self._db.write() as session:
            return await enqueue_in(
                self._db, session, ven_ids, payload=payload, kind=kind, dedup_key=dedup_key, at=at
            )

    async def next_for(
        self, ven_id: str, *, now: datetime, lease: timedelta = DEFAULT_LEASE
    ) -> OutboxItem | None:
        """Claim the VEN's oldest waiting item for ``lease``; None when nothing waits.

        ``more_waiting`` on the result says whether further items are claimable right now, so a
        poll reply can tell the VEN to poll again at once.
        """
        pick = (
            select(OutboxRow.seq)
            .where(*_claimable(ven_id, now))  # type: ignore[arg-type]
            .order_by(OutboxRow.seq)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim = (
            update(OutboxRow)
            # Re-checked on the row itself: PostgreSQL re-evaluates these on the latest version
            # if another claim committed meanwhile, so a claim is never taken twice.
            .where(OutboxRow.seq == pick, *_claimable(ven_id, now))  # type: ignore[arg-type]
            .values(claimed_until=now + lease)
            .returning(OutboxRow)
        )
        async with self._db.write() as session:
            row = (
                await session.execute(select(OutboxRow).from_statement(claim))
            ).scalar_one_or_none()
            if row is None:
                return None
            behind = exists().where(*_claimable(ven_id, now), OutboxRow.seq > row.seq)  # type: ignore[arg-type]
            more = bool(await session.scalar(select(behind)))
            return _item(row, more_waiting=more)

    async def mark_delivered(self, seq: int, *, at: datetime) -> bool:
        """The item went out; False if it was already marked (or never existed)."""
        stmt = (
            update(OutboxRow)
            .where(OutboxRow.seq == seq, OutboxRow.delivered_at.is_(None))
            .values(delivered_at=at, claimed_until=None)
        )
        async with self._db.write() as session:
            return (await session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def release(self, seq: int) -> None:
        """Give a claimed item back at once (the reply could not be sent)."""
        stmt = (
            update(OutboxRow)
            .where(OutboxRow.seq == seq, OutboxRow.delivered_at.is_(None))
            .values(claimed_until=None)
        )
        async with self._db.write() as session:
            await session.execute(stmt)

    async def pending(self, ven_id: str) -> tuple[OutboxItem, ...]:
        """Every undelivered item of the VEN, claimed or not, in delivery order."""
        stmt = (
            select(OutboxRow)
            .where(OutboxRow.ven_id == ven_id, OutboxRow.delivered_at.is_(None))
            .order_by(OutboxRow.seq)
        )
        async with self._db.read() as session:
            return tuple(_item(row) for row in await session.scalars(stmt))

    async def pending_count(self, ven_id: str) -> int:
        stmt = select(func.count()).where(
            OutboxRow.ven_id == ven_id, OutboxRow.delivered_at.is_(None)
        )
        async with self._db.read() as session:
            return int(await session.scalar(stmt) or 0)

    async def purge_delivered(self, older_than: datetime) -> int:
        """Delete items delivered before ``older_than``; returns how many."""
        stmt = delete(OutboxRow).where(OutboxRow.delivered_at < older_than)
        async with self._db.write() as session:
            return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
