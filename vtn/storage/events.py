"""Events, their targets, and per-VEN delivery and acknowledgement state (spec 8.1, EiEvent).

Invariants:
- An event's modificationNumber never goes back: storing an older one raises
  :class:`StaleModification`; storing the same number with the same payload again is a no-op, so a
  retried write is idempotent.
- :meth:`EventRepository.put` can queue the encoded payload (or a caller's marker) for the VENs
  to notify in the same transaction (dedup key ``event:<id>:<modificationNumber>``): the event
  and its fan-out commit together or not at all.
- An acknowledgement (oadrCreatedEvent) only replaces one for the same or an older
  modificationNumber; a late ack of an old version never hides the ack of the current one.
- An ack repeating the stored answer (modificationNumber, optType and response code) leaves
  the row as it is, so ``ack_at`` is when the stored answer last changed, not when it was last
  repeated (a VEN answers every event of its list each time it is sent the list, which one
  changed event brings); an answer kept from before a cancellation keeps its ``ack_at``, which
  may then be earlier than ``delivered_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Table,
    or_,
    select,
    tuple_,
)

from ._batches import PURGE_BATCH, delete_in_batches
from ._engine import Database
from ._models import EventDeliveryRow, EventRow, EventTargetRow, VenMembershipRow, VenRow
from .backend import EVENT_KIND, Backend, Distribution, Refuse, StoredEvent
from .backend import Queue as _Queue
from .outbox import DEFAULT_LEASE
from .pollindex import PollIndex
from .records import (
    Delivery,
    EventAck,
    EventRecord,
    EventStatus,
    OptType,
    PollDelivery,
    StaleModification,
    StorageConflict,
    TargetKind,
    TargetRef,
)

__all__ = ["EVENT_KIND", "Distribution", "EventRepository"]



_EVENTS = cast(Table, EventRow.__table__)
_TARGETS = cast(Table, EventTargetRow.__table__)
_DELIVERIES = cast(Table, EventDeliveryRow.__table__)
_MEMBERS = cast(Table, VenMembershipRow.__table__)
_VENS = cast(Table, VenRow.__table__)


def _record(row: Any, targets: Iterable[Any]) -> EventRecord:
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


def _delivery(row: Any) -> Delivery:
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


def _columns(event: EventRecord) -> dict[str, object]:
    return {
        "modification_number": event.modification_number,
        "status": event.status.value,
        "market_context": event.market_context,
        "starts_at": event.starts_at,
        "ends_at": event.ends_at,
        "response_required": event.response_required,
        "payload": event.payload,
        "updated_at": event.updated_at,
    }


def _targets(conn: Connection, event_ids: list[str]) -> dict[str, list[Any]]:
    stmt = (
        select(_TARGETS)
        .where(_TARGETS.c.event_id.in_(event_ids))
        .order_by(_TARGETS.c.kind, _TARGETS.c.value)
    )
    by_event: dict[str, list[Any]] = {}
    for target in conn.execute(stmt):
        by_event.setdefault(target.event_id, []).append(target)
    return by_event


def _query(conn: Connection, statuses: Iterable[EventStatus] | None) -> tuple[EventRecord, ...]:
    stmt = select(_EVENTS).order_by(_EVENTS.c.event_id)
    if statuses is not None:
        stmt = stmt.where(_EVENTS.c.status.in_([s.value for s in statuses]))
    rows = list(conn.execute(stmt))
    by_event = _targets(conn, [r.event_id for r in rows])
    return tuple(_record(row, by_event.get(row.event_id, ())) for row in rows)


def _check_newer(event: EventRecord, row: StoredEvent) -> bool:
    """Whether ``event`` replaces the stored ``row``; False for a retry of the same version."""
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
    return True


class EventRepository:
    def __init__(self, db: Database, backend: Backend, index: PollIndex) -> None:
        self._db = db
        self._backend = backend
        self._index = index  # told of every queued notification (vtn.storage.pollindex)

    async def put(self, event: EventRecord, *, notify: Iterable[str] = (),
                  queued: bytes | None = None) -> bool:
        """Create or update an event and queue a payload for ``notify`` VENs, atomically: the
        event's own payload, or ``queued`` when given (a caller that rebuilds what it sends
        needs only a marker: 500 copies of a 500-target event are ~8 MB to write).

        Returns False when nothing changed (same modificationNumber and payload: a retry).
        Raises :class:`StaleModification` for an older modificationNumber and
        :class:`StorageConflict` for the same number with different content.
        """
        (changed,) = await self.put_many(((event, tuple(notify)),), queued=queued)
        return changed

    async def put_many(self, items: Sequence[tuple[EventRecord, tuple[str, ...]]], *,
                       queued: bytes | None = None) -> tuple[bool, ...]:
        """:meth:`put` for many events, each with the VENs to notify, in one transaction: an
        aggregator dispatching one event per device writes them all at once. A stale or
        conflicting event raises as in :meth:`put`, and then none of them is stored."""
        pairs = [(event, _Queue(ven_ids=notify,
                                payload=event.payload if queued is None else queued,
                                dedup_key=f"event:{event.event_id}:{event.modification_number}"))
                 for event, notify in items]
        try:
            return await self._backend.put_events(pairs, _check_newer)
        finally:  # also after a failure: the write may have committed before it surfaced
            self._index.enqueued(tuple(v for _, queue in pairs for v in queue.ven_ids))

    async def purge_ended(self, before: datetime, *, batch: int = PURGE_BATCH) -> int:
        """Delete the events whose active period ended before ``before`` (retention), their
        targets and per-VEN deliveries with them; returns how many events. At most ``batch``
        events per transaction (:func:`~._batches.delete_in_batches`)."""
        return await delete_in_batches(self._db, _EVENTS, _EVENTS.c.ends_at < before,
                                       batch=batch)

    async def get(self, event_id: str) -> EventRecord | None:
        return (await self.get_many((event_id,))).get(event_id)

    async def get_many(self, event_ids: Iterable[str]) -> dict[str, EventRecord]:
        """The stored events among ``event_ids``, by eventID (unknown ones are left out)."""
        wanted = list(dict.fromkeys(event_ids))

        def work(conn: Connection) -> dict[str, EventRecord]:
            rows = list(conn.execute(select(_EVENTS).where(_EVENTS.c.event_id.in_(wanted))))
            targets = _targets(conn, [row.event_id for row in rows])
            return {row.event_id: _record(row, targets.get(row.event_id, ())) for row in rows}

        return await self._db.run_read(work)

    async def query(
        self, *, statuses: Iterable[EventStatus] | None = None
    ) -> tuple[EventRecord, ...]:
        """Events ordered by event_id, optionally only those in ``statuses``."""
        return await self._db.run_read(lambda conn: _query(conn, statuses))

    async def targeting(self, refs: Iterable[TargetRef], *, statuses: Iterable[EventStatus],
                        now: datetime) -> tuple[str, ...]:
        """The eventIDs in ``statuses``, not ended at ``now``, with a target among ``refs``: a
        VEN gaining or losing one of ``refs`` gains or loses these events."""
        pairs = [(ref.kind.value, ref.value) for ref in set(refs)]
        if not pairs:
            return ()
        t, e = _TARGETS.c, _EVENTS.c
        stmt = (
            select(e.event_id).distinct()
            .join(_TARGETS, t.event_id == e.event_id)
            .where(e.status.in_([s.value for s in statuses]),
                   or_(e.ends_at.is_(None), e.ends_at > now),
                   tuple_(t.kind, t.value).in_(pairs))
            .order_by(e.event_id)
        )
        return await self._db.run_read(lambda conn: tuple(conn.scalars(stmt)))

    async def mark_delivered(
        self, event_id: str, ven_ids: Iterable[str], *, modification_number: int, at: datetime
    ) -> None:
        """Record that these VENs were sent ``modification_number`` of the event (one statement)."""
        rows = [(event_id, v, modification_number) for v in dict.fromkeys(ven_ids)]
        await self._db.run_write(lambda conn: self._delivered(conn, rows, at))

    async def distribute(self, query: Distribution) -> tuple[EventRecord, ...]:
        """The VEN's current event list (see :class:`Distribution`) recorded as delivered, each
        event at its modificationNumber, with the outbox item that asked for it: one write
        transaction (reading the list in it means no change slips in between). The records'
        ``targets`` are only those addressing the VEN."""
        events = await self._backend.distribute(query)
        if query.outbox_seq is not None:
            self._index.delivered(query.ven_id)
        return events

    async def deliver_next(self, event_list: Distribution) -> PollDelivery | None:
        """What a poll hands the VEN ``event_list.ven_id``, in one write transaction: its oldest
        waiting outbox item, marked delivered; when that item says the VEN's event list changed
        (:data:`EVENT_KIND`; the VEN's other such items are marked with it: one list answers them
        all), ``event_list`` chosen and recorded as delivered too (:meth:`distribute`). None when
        nothing waits. The poll index learns whether more waits for the VEN, so its next poll
        reads nothing (:meth:`PollIndex.handed_out`; on PostgreSQL the transaction's last
        statement looks, so an enqueue another worker committed before it is seen, and one
        committed after it is heard, moving the ticket)."""
        ticket = self._index.ticket()
        delivered, waiting = await self._backend.deliver_next(event_list)
        self._index.handed_out(ticket, event_list.ven_id, waiting)
        return delivered

    async def claim_next(self, event_list: Distribution, *,
                         lease: timedelta = DEFAULT_LEASE) -> PollDelivery | None:
        """What a push hands the VEN ``event_list.ven_id``, in one write transaction: its oldest
        waiting outbox item claimed for ``lease`` (:meth:`OutboxRepository.next_for`, the VEN's
        other :data:`EVENT_KIND` items marked delivered with it) and, for an event item,
        ``event_list`` chosen and recorded as delivered (:meth:`distribute`). None when nothing
        waits."""
        return await self._backend.claim_next(event_list, event_list.now + lease)

    def _delivered(self, conn: Connection, rows: list[tuple[str, str, int]], at: datetime) -> None:
        if not rows:
            return
        stmt = self._db.insert(EventDeliveryRow).values([
            {"event_id": e, "ven_id": v, "delivered_modification_number": n, "delivered_at": at}
            for e, v, n in rows
        ])
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "ven_id"],
            set_={
                "delivered_modification_number": stmt.excluded.delivered_modification_number,
                "delivered_at": stmt.excluded.delivered_at,
            },
        )
        conn.execute(stmt)

    async def record_ack(self, ack: EventAck) -> Delivery:
        """Store a VEN's oadrCreatedEvent answer; idempotent; never replaced by an older one."""
        return (await self.record_acks((ack,)))[0]

    async def record_acks(self, acks: Iterable[EventAck]) -> tuple[Delivery, ...]:
        """:meth:`record_ack` for several answers, in one transaction."""
        return await self._backend.record_acks(tuple(acks))

    async def record_answer(
        self, ven_id: str, acks: Iterable[EventAck], *, fingerprint: str,
        refuse: Refuse,
    ) -> tuple[Delivery, ...] | None:
        """One oadrCreatedEvent from ``ven_id``: its acks (each of ``ven_id``) in one write
        transaction that first checks, in order, that ``fingerprint`` is ``ven_id``'s active
        registration (else None: nothing stored), then that each ack names an event delivered
        to ``ven_id`` at its current modificationNumber (else nothing is stored and ``refuse``
        raises, given :meth:`delivered_versions` of the answered events). Checked and stored
        at once: no modification slips in between, and no separate registration read."""
        wanted = tuple(acks)
        assert all(ack.ven_id == ven_id for ack in wanted), "one VEN's answers"
        event_ids = list(dict.fromkeys(ack.event_id for ack in wanted))
        return await self._backend.record_answer(ven_id, fingerprint, wanted, refuse, event_ids)

    async def delivered_versions(self, ven_id: str, event_ids: Iterable[str]) -> dict[str, int]:
        """Of ``event_ids``, those delivered to ``ven_id``: eventID -> the event's current
        modificationNumber (what an ack is checked against), in one statement."""
        return await self._backend.delivered_versions(ven_id, list(dict.fromkeys(event_ids)))

    async def deliveries(self, event_id: str) -> tuple[Delivery, ...]:
        stmt = (
            select(_DELIVERIES)
            .where(_DELIVERIES.c.event_id == event_id)
            .order_by(_DELIVERIES.c.ven_id)
        )
        return await self._db.run_read(
            lambda conn: tuple(_delivery(row) for row in conn.execute(stmt)))

    async def delivered_to(self, event_id: str) -> tuple[str, ...]:
        """The VENs the event was ever delivered to, by venID."""
        return (await self.delivered_to_many((event_id,))).get(event_id, ())

    async def delivered_to_many(self, event_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """:meth:`delivered_to` for many events in one read: eventID -> venIDs, in venID order;
        an event delivered to nobody is left out."""
        return await self._backend.delivered_to(list(dict.fromkeys(event_ids)))

    async def delivery(self, event_id: str, ven_id: str) -> Delivery | None:
        stmt = select(_DELIVERIES).where(
            _DELIVERIES.c.event_id == event_id, _DELIVERIES.c.ven_id == ven_id)

        def work(conn: Connection) -> Delivery | None:
            row = conn.execute(stmt).one_or_none()
            return None if row is None else _delivery(row)

        return await self._db.run_read(work)
