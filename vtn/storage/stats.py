"""What a scrape of the VTN's metrics reads from the database: a few counts, one transaction.

Invariants: read-only, one snapshot; the counts come from the partial index of undelivered
outbox items (``ix_outbox_pending``) and the registrations table, so a scrape stays cheap while
delivered items pile up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, func, select

from ._engine import Database
from ._models import OutboxRow, VenRow

__all__ = ["StorageStats", "read_stats"]

_VENS = cast(Table, VenRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageStats:
    """``vens_registered``: active registrations; ``queued``: outbox items not yet delivered
    (claimed or not); ``oldest_queued_at``: when the oldest of them was queued (None: none)."""

    vens_registered: int
    queued: int
    oldest_queued_at: datetime | None


_REGISTERED = select(func.count()).select_from(_VENS).where(_VENS.c.cancelled_at.is_(None))
_QUEUED = select(func.count(), func.min(_OUTBOX.c.enqueued_at)).where(
    _OUTBOX.c.delivered_at.is_(None))


def _read(conn: Connection) -> StorageStats:
    registered = conn.execute(_REGISTERED).scalar_one()
    queued, oldest = conn.execute(_QUEUED).one()
    return StorageStats(vens_registered=int(registered), queued=int(queued),
                        oldest_queued_at=oldest)


async def read_stats(db: Database) -> StorageStats:
    return await db.run_read(_read)
