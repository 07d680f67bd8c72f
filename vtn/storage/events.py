"""Events, their targets, and per-VEN delivery and acknowledgement state (spec 8.1, EiEvent).

Invariants:
- An event's modificationNumber never goes back: storing an older one raises
  :class:`StaleModification`; storing the same number with the same payload again is a no-op, so a
  retried write is idempotent.
- :meth:`EventRepository.put` can queue the encoded payload for the VENs to notify in the same
  transaction (dedup key ``event:<id>:<modificationNumber>``): the event and its fan-out commit
  together or not at all.
- An acknowledgement (oadrCreatedEvent) only replaces one for the same or an older
  modificationNumber; a late ack of an old version never hides the ack of the current one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ._engine import Database
from ._models import EventDeliveryRow, EventRow, EventTargetRow
from .outbox import enqueue_in
from .records import (
    Delivery,
    EventAck,
    EventRecord,
    EventStatus,
    OptType,
    StaleModification,
    StorageConflict,
    TargetKind,
    TargetRef,
)

__all__ = ["EVENT_KIND", "EventRepository"]

EVENT_KIND = "oadrDistributeEvent"


def _record(row: EventRow, targets: Iterable[EventTargetRow]) -> EventRecord:
    return EventRecord(
        event_id=row.event_id,
        modification_number=row.modification_number,
        status=EventStatus(row.status),
        market_context=row.market_context,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        response_required=row.response_required,
        targets=tuple(TargetRef(kind=TargetKind(t.kind), value=t.value) for t in targets),
        payload=row.payload,
        updated_at=row.updated_at,
    )


def _delivery(row: EventDeliveryRow) -> Delivery:
    return Delivery(
        event_id=row.event_id,
        ven_id=row.ven_id,
        delivered_modification_number=row.delivered_modification_number,
        delivered_at=row.delivered_at,
        ack_modification_number=row.ack_modification_number,
        ack_opt_type=None if row.ack_opt_type is None else OptType(row.ack_opt_type),
        ack_response_code=row.ack_response_code,
        ack_at=row.ack_at,
    )


def _apply(row: EventRow, event: EventRecord) -> None:
    row.modification_number = event.modification_number
    row.status = event.status.value
    row.market_context = event.market_context
    row.starts_at = event.starts_at
    row.ends_at = event.ends_at
    row.response_required = event.response_required
    row.payload = event.payload
    row.updated_at = event.updated_at


async def _targets(session: AsyncSession, event_ids: list[str]) -> dict[str, list[EventTargetRow]]:
    stmt = (
        select(EventTargetRow)
        .where(EventTargetRow.event_id.in_(event_ids))
        .order_by(EventTargetRow.kind, EventTargetRow.value)
    )
    by_event: dict[str, list[EventTargetRow]] = {}
    for target in await session.scalars(stmt):
        by_event.setdefault(target.event_id, []).append(target)
    return by_event


class EventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, event: EventRecord, *, notify: Iterable[str] = ()) -> bool:
        """Create or update an event and queue its payload for ``notify`` VENs, atomically.

        Returns False when nothing changed (same modificationNumber and payload: a retry).
        Raises :class:`StaleModification` for an older modificationNumber and
        :class:`StorageConflict` for the same number with different content.
        """
        async with self._db.write() as session:
            stmt = select(EventRow).where(EventRow.event_id == event.event_id).with_for_update()
            row = (await session.execute(stmt)).scalar_one_or_none()
            if row is not None:
                if event.modification_number < row.modification_number:
                    raise StaleModification(
                        f"event {event.event_id!r}: modificationNumber {event.modification_number}"
                        f" < stored {row.modification_number}"
                    )
                if event.modification_number == row.modification_number:
                    if event.payload == row.payload:
                        return False
                    raise StorageConflict(
                        f"event {event.event_id!r}: modificationNumber "
                        f"{event.modification_number} stored with other content"
                    )
                _apply(row, event)
            else:
                row = EventRow(event_id=event.event_id)
                _apply(row, event)
                session.add(row)
            await session.flush()
            await self._replace_targets(session, event)
            await enqueue_in(
                self._db,
                session,
                notify,
                payload=event.payload,
                kind=EVENT_KIND,
                dedup_key=f"event:{event.event_id}:{event.modification_number}",
                at=event.updated_at,
            )
            return True

    async def _replace_targets(self, session: AsyncSession, event: EventRecord) -> None:
        await session.execute(
            delete(EventTargetRow).where(EventTargetRow.event_id == event.event_id)
        )
        rows = [
            {"event_id": event.event_id, "kind": t.kind.value, "value": t.value}
            for t in dict.fromkeys(event.targets)
        ]
        if rows:
            await session.execute(self._db.insert(EventTargetRow).values(rows))

    async def get(self, event_id: str) -> EventRecord | None:
        async with self._db.read() as session:
            row = await session.get(EventRow, event_id)
            if row is None:
                return None
            return _record(row, (await _targets(session, [event_id])).get(event_id, ()))

    async def query(
        self, *, statuses: Iterable[EventStatus] | None = None
    ) -> tuple[EventRecord, ...]:
        """Events ordered by event_id, optionally only those in ``statuses``."""
        stmt = select(EventRow).order_by(EventRow.event_id)
        if statuses is not None:
            stmt = stmt.where(EventRow.status.in_([s.value for s in statuses]))
        async with self._db.read() as session:
            rows = list(await session.scalars(stmt))
            by_event = await _targets(session, [r.event_id for r in rows])
            return tuple(_record(row, by_event.get(row.event_id, ())) for row in rows)

    async def mark_delivered(
        self, event_id: str, ven_ids: Iterable[str], *, modification_number: int, at: datetime
    ) -> None:
        """Record that these VENs were sent ``modification_number`` of the event (one statement)."""
        rows = [
            {
                "event_id": event_id,
                "ven_id": v,
                "delivered_modification_number": modification_number,
                "delivered_at": at,
            }
            for v in dict.fromkeys(ven_ids)
        ]
        if not rows:
            return
        stmt = self._db.insert(EventDeliveryRow).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "ven_id"],
            set_={
                "delivered_modification_number": stmt.excluded.delivered_modification_number,
                "delivered_at": stmt.excluded.delivered_at,
            },
        )
        async with self._db.write() as session:
            await session.execute(stmt)

    async def record_ack(self, ack: EventAck) -> Delivery:
        """Store a VEN's oadrCreatedEvent answer; idempotent; never replaced by an older one."""
        table = EventDeliveryRow.__table__
        stmt = self._db.insert(EventDeliveryRow).values(
            event_id=ack.event_id,
            ven_id=ack.ven_id,
            ack_modification_number=ack.modification_number,
            ack_opt_type=ack.opt_type.value,
            ack_response_code=ack.response_code,
            ack_at=ack.at,
        )
        current = table.c.ack_modification_number
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "ven_id"],
            set_={
                name: getattr(stmt.excluded, name)
                for name in (
                    "ack_modification_number",
                    "ack_opt_type",
                    "ack_response_code",
                    "ack_at",
                )
            },
            where=or_(current.is_(None), current <= stmt.excluded.ack_modification_number),
        )
        async with self._db.write() as session:
            await session.execute(stmt)
            row = await session.get(EventDeliveryRow, (ack.event_id, ack.ven_id))
            assert row is not None
            return _delivery(row)

    async def deliveries(self, event_id: str) -> tuple[Delivery, ...]:
        stmt = (
            select(EventDeliveryRow)
            .where(EventDeliveryRow.event_id == event_id)
            .order_by(EventDeliveryRow.ven_id)
        )
        async with self._db.read() as session:
            return tuple(_delivery(row) for row in await session.scalars(stmt))

    async def delivery(self, event_id: str, ven_id: str) -> Delivery | None:
        async with self._db.read() as session:
            row = await session.get(EventDeliveryRow, (event_id, ven_id))
            return None if row is None else _delivery(row)
