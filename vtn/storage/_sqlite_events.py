"""The event repository's hot paths on SQLite, as plain ``sqlite3`` SQL (see
:meth:`vtn.storage._engine.Database.run_sqlite` for why): storing an event with its targets and
outbox rows, building a VEN's event list and recording it as delivered (alone, or with the outbox
item a poll hands out), storing acks, and the delivered versions an ack is checked against.

Invariants: each function runs inside the caller's transaction and does exactly what the Core
statements of :mod:`vtn.storage.events` do on SQLite (same rows, same upsert rules, same order),
so both paths stay interchangeable; times go through :func:`sqlite_time`/``from_sqlite_time``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final

from . import backend
from ._engine import from_sqlite_time, sqlite_time
from .backend import EVENT_KIND, CheckNewer, Distribution, Queue, StoredEvent
from .outbox import claim_sqlite, waiting_sqlite
from .records import (
    Delivery,
    EventAck,
    EventRecord,
    EventStatus,
    OptType,
    PollDelivery,
    TargetKind,
    TargetRef,
)

__all__ = [
    "claim_next",
    "deliver_next",
    "delivered_to",
    "delivered_versions",
    "distribute",
    "put",
    "record_acks",
    "record_answer",
]


# An event's columns but its payload (read apart, only for the events the caller does not hold)
_LISTED_COLUMNS: Final = (
    "event_id, modification_number, status, market_context, starts_at, ends_at,"
    " response_required, updated_at"
)
_DELIVERY_COLUMNS: Final = (
    "event_id, ven_id, delivered_modification_number, delivered_at, ack_modification_number,"
    " ack_opt_type, ack_response_code, ack_at"
)
_DELIVERED: Final = (
    "INSERT INTO event_deliveries (event_id, ven_id, delivered_modification_number,"
    " delivered_at) VALUES (?, ?, ?, ?) ON CONFLICT (event_id, ven_id) DO UPDATE SET"
    " delivered_modification_number = excluded.delivered_modification_number,"
    " delivered_at = excluded.delivered_at"
)
_OUTBOX_DELIVERED: Final = (
    "UPDATE outbox SET delivered_at = ?, claimed_until = NULL"
    " WHERE seq = ? AND delivered_at IS NULL"
)
# An ack never replaces one for a newer modificationNumber, and one repeating the stored
# answer leaves its row as it is (module docstring of events.py).
_ACK: Final = (
    "INSERT INTO event_deliveries (event_id, ven_id, ack_modification_number, ack_opt_type,"
    " ack_response_code, ack_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, ven_id)"
    " DO UPDATE SET ack_modification_number = excluded.ack_modification_number,"
    " ack_opt_type = excluded.ack_opt_type, ack_response_code = excluded.ack_response_code,"
    " ack_at = excluded.ack_at WHERE (event_deliveries.ack_modification_number IS NULL"
    " OR event_deliveries.ack_modification_number <= excluded.ack_modification_number)"
    " AND (event_deliveries.ack_modification_number IS NOT excluded.ack_modification_number"
    " OR event_deliveries.ack_opt_type IS NOT excluded.ack_opt_type"
    " OR event_deliveries.ack_response_code IS NOT excluded.ack_response_code)"
    f" RETURNING {_DELIVERY_COLUMNS}"
)
_ACTIVE_VEN: Final = (
    "SELECT 1 FROM vens WHERE fingerprint = ? AND ven_id = ? AND cancelled_at IS NULL"
)
_DELIVERY: Final = (
    f"SELECT {_DELIVERY_COLUMNS} FROM event_deliveries WHERE event_id = ? AND ven_id = ?"
)
# Of the answered events (the caller appends the IN list's marks), those delivered to the
# VEN (?): each event's current modificationNumber, and with it its delivery row.
_ANSWERED: Final = (
    " FROM events e JOIN event_deliveries d ON d.event_id = e.event_id"
    " WHERE d.ven_id = ? AND e.event_id IN"
)
_VERSIONS: Final = f"SELECT e.event_id, e.modification_number{_ANSWERED}"
_VERSIONS_AND_ROWS: Final = (
    f"SELECT e.modification_number, {', '.join(f'd.{c}' for c in _DELIVERY_COLUMNS.split(', '))}"
    f"{_ANSWERED}"
)


_PUT_EVENT: Final = (
    "INSERT INTO events (event_id, modification_number, status, market_context, starts_at,"
    " ends_at, response_required, payload, updated_at, untargeted)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (event_id) DO UPDATE SET modification_number = excluded.modification_number,"
    " status = excluded.status, market_context = excluded.market_context,"
    " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
    " response_required = excluded.response_required, payload = excluded.payload,"
    " updated_at = excluded.updated_at, untargeted = excluded.untargeted"
)
_QUEUE: Final = (
    "INSERT INTO outbox (ven_id, kind, payload, dedup_key, enqueued_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (ven_id, dedup_key) DO NOTHING"
)


def put(
    conn: sqlite3.Connection,
    event: EventRecord,
    check_newer: CheckNewer,
    queue: Queue,
) -> bool:
    """:meth:`EventRepository.put` on SQLite: the event row, its targets and the outbox rows in
    the caller's transaction, each as one statement."""
    found = conn.execute("SELECT modification_number, payload FROM events WHERE event_id = ?",
                         (event.event_id,)).fetchone()
    if found is not None and not check_newer(event, StoredEvent(*found)):
        return False
    targets = [(event.event_id, t.kind.value, t.value) for t in dict.fromkeys(event.targets)]
    conn.execute(_PUT_EVENT, (
        event.event_id, event.modification_number, event.status.value, event.market_context,
        _time(event.starts_at), _time(event.ends_at), int(event.response_required),
        event.payload, sqlite_time(event.updated_at), int(not targets)))
    conn.execute("DELETE FROM event_targets WHERE event_id = ?", (event.event_id,))
    conn.executemany("INSERT INTO event_targets (event_id, kind, value) VALUES (?, ?, ?)", targets)
    at = sqlite_time(event.updated_at)
    conn.executemany(_QUEUE, [(v, EVENT_KIND, queue.payload, queue.dedup_key, at)
                              for v in dict.fromkeys(queue.ven_ids)])
    return True


def _time(value: datetime | None) -> str | None:
    return None if value is None else sqlite_time(value)


def distribute(conn: sqlite3.Connection, query: Distribution) -> tuple[EventRecord, ...]:
    """:meth:`EventRepository.distribute` on SQLite; records carry the targets addressing the
    VEN (not the others')."""
    where, params = _status_filter(query.statuses)
    ven_id, at = query.ven_id, sqlite_time(query.now)
    by_event: dict[str, list[TargetRef]] = {}
    # The target rows that address this VEN, through the (kind, value) index: its venID and its
    # memberships. Only their events and the untargeted ones (through their partial index) are
    # read whole: an aggregator with one event per device read every device's event for each
    # device's poll.
    for event_id, kind, value in conn.execute(
            "SELECT event_id, kind, value FROM event_targets WHERE kind = ? AND value = ?"
            " UNION SELECT t.event_id, t.kind, t.value FROM ven_memberships m"
            " JOIN event_targets t ON t.kind = m.kind AND t.value = m.value WHERE m.ven_id = ?"
            " ORDER BY 2, 3", (TargetKind.VEN.value, ven_id, ven_id)):
        by_event.setdefault(event_id, []).append(TargetRef(kind=TargetKind(kind), value=value))
    wanted = [*by_event, *(row[0] for row in conn.execute(
        f"SELECT e.event_id FROM events e{where} AND e.untargeted", params))]
    if not wanted:
        events: list[EventRecord] = []
    else:
        cancelled = EventStatus.CANCELLED.value
        rows = conn.execute(
            f"SELECT {_LISTED_COLUMNS} FROM events e{where}"
            f" AND e.event_id IN ({','.join('?' * len(wanted))})"
            " AND (e.status != ? OR e.updated_at >= ?)"
            " AND (e.status = ? OR e.ends_at IS NULL OR e.ends_at > ?) ORDER BY event_id",
            (*params, *wanted, cancelled, sqlite_time(query.cancelled_since), cancelled, at)
        ).fetchall()[: query.limit]
        payloads = _payloads(conn, rows, query.held)
        events = [_event(row, payloads[row[0]], by_event.get(row[0], ())) for row in rows]
    if events:
        conn.executemany(_DELIVERED, [(e.event_id, ven_id, e.modification_number, at)
                                      for e in events])
    if query.outbox_seq is not None:
        conn.execute(_OUTBOX_DELIVERED, (at, query.outbox_seq))
    return tuple(events)


def deliver_next(conn: sqlite3.Connection,
                 event_list: Distribution) -> tuple[PollDelivery | None, bool]:
    """:meth:`EventRepository.deliver_next` on SQLite, and whether anything is still undelivered
    for the VEN once it is done."""
    ven_id = event_list.ven_id
    item = claim_sqlite(conn, ven_id, event_list.now, None, EVENT_KIND)  # marked delivered
    delivered = None
    if item is not None:
        events = distribute(conn, event_list) if item.kind == EVENT_KIND else ()
        delivered = PollDelivery(item=item, events=events)
    return delivered, waiting_sqlite(conn, ven_id)


def claim_next(conn: sqlite3.Connection, event_list: Distribution,
               until: datetime) -> PollDelivery | None:
    """:meth:`EventRepository.claim_next` on SQLite."""
    item = claim_sqlite(conn, event_list.ven_id, event_list.now, until, EVENT_KIND)
    if item is None:
        return None
    return PollDelivery(item=item,
                        events=distribute(conn, event_list) if item.kind == EVENT_KIND else ())


def _status_filter(statuses: tuple[EventStatus, ...]) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause on ``e.status`` and its parameters."""
    if not statuses:
        return " WHERE 0", ()
    marks = ", ".join("?" * len(statuses))
    return f" WHERE e.status IN ({marks})", tuple(s.value for s in statuses)


def _payloads(conn: sqlite3.Connection, rows: list[Any],
              held: backend.Held | None) -> dict[str, bytes]:
    """eventID -> payload of the events in ``rows`` (:data:`_LISTED_COLUMNS`): what ``held``
    answers for each one's version, the others read in one statement."""
    payloads: dict[str, bytes] = {}
    missing: list[str] = []
    for event_id, number, *_, updated in rows:
        updated_at = from_sqlite_time(updated)
        assert updated_at is not None
        payload = None if held is None else held(event_id, number, updated_at)
        if payload is None:
            missing.append(event_id)
        else:
            payloads[event_id] = payload
    if missing:
        marks = ",".join("?" * len(missing))
        payloads.update(conn.execute(
            f"SELECT event_id, payload FROM events WHERE event_id IN ({marks})", missing))
    return payloads


def _event(row: Any, payload: bytes, targets: Iterable[TargetRef]) -> EventRecord:
    event_id, number, status, market, starts, ends, required, updated = row
    updated_at = from_sqlite_time(updated)
    assert updated_at is not None
    return EventRecord(
        event_id=event_id,
        modification_number=number,
        status=EventStatus(status),
        market_context=market,
        starts_at=from_sqlite_time(starts),
        ends_at=from_sqlite_time(ends),
        response_required=bool(required),
        targets=tuple(targets),
        payload=payload,
        updated_at=updated_at,
    )


def _delivery(row: Any) -> Delivery:
    event_id, ven_id, number, at, ack_number, opt, code, ack_at = row
    return Delivery(
        event_id=event_id,
        ven_id=ven_id,
        delivered_modification_number=number,
        delivered_at=from_sqlite_time(at),
        ack_modification_number=ack_number,
        ack_opt_type=None if opt is None else OptType(opt),
        ack_response_code=code,
        ack_at=from_sqlite_time(ack_at),
    )


def record_acks(conn: sqlite3.Connection, acks: Iterable[EventAck]) -> tuple[Delivery, ...]:
    stored = []
    for ack in acks:
        # No row back: an ack for a newer modificationNumber, or this very answer, stays;
        # read what is stored.
        stored.append(_acked(conn, ack) or _delivery(
            conn.execute(_DELIVERY, (ack.event_id, ack.ven_id)).fetchone()))
    return tuple(stored)


def _acked(conn: sqlite3.Connection, ack: EventAck) -> Delivery | None:
    """``ack`` upserted: its row as written, or None if the row stays as it was."""
    row = conn.execute(_ACK, (ack.event_id, ack.ven_id, ack.modification_number,
                              ack.opt_type.value, ack.response_code,
                              sqlite_time(ack.at))).fetchone()
    return None if row is None else _delivery(row)


def _changes(ack: EventAck, row: Delivery) -> bool:
    """Whether ``ack`` rewrites the stored ``row`` (as :data:`_ACK`'s condition says)."""
    number = row.ack_modification_number
    return (number is None or number <= ack.modification_number) and (
        number, row.ack_opt_type, row.ack_response_code) != (
        ack.modification_number, ack.opt_type, ack.response_code)


def record_answer(
    conn: sqlite3.Connection,
    ven_id: str,
    fingerprint: str,
    acks: tuple[EventAck, ...],
    refuse: backend.Refuse,
    event_ids: list[str],
) -> tuple[Delivery, ...] | None:
    """:meth:`EventRepository.record_answer` on SQLite. The answered events' delivery rows
    are read with their versions, so an ack that would leave its row as it is (a VEN answers
    every event of its list again) is neither written nor read back."""
    if conn.execute(_ACTIVE_VEN, (fingerprint, ven_id)).fetchone() is None:
        return None
    delivered: dict[str, int] = {}
    rows: dict[str, Delivery] = {}
    for number, *row in _answered(conn, _VERSIONS_AND_ROWS, ven_id, event_ids):
        delivered[row[0]] = number
        rows[row[0]] = _delivery(row)
    if not backend.answers_current(acks, delivered):
        refuse(delivered)
    stored = []
    for ack in acks:
        row = rows[ack.event_id]
        if _changes(ack, row):  # else _ACK would leave the row as it is: not even run
            rows[ack.event_id] = row = _acked(conn, ack) or row
        stored.append(row)
    return tuple(stored)


def delivered_versions(
    conn: sqlite3.Connection, ven_id: str, event_ids: list[str]
) -> dict[str, int]:
    return dict(_answered(conn, _VERSIONS, ven_id, event_ids))


def _answered(conn: sqlite3.Connection, select: str, ven_id: str,
              event_ids: list[str]) -> Iterator[Any]:
    """The rows of ``select`` (:data:`_VERSIONS`, :data:`_VERSIONS_AND_ROWS`) for
    ``event_ids``."""
    # In slices: an oadrCreatedEvent may answer more events than SQLite takes bind parameters.
    for start in range(0, len(event_ids), 500):
        part = event_ids[start : start + 500]
        yield from conn.execute(f"{select} ({', '.join('?' * len(part))})", (ven_id, *part))


def delivered_to(conn: sqlite3.Connection, event_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """eventID -> the venIDs it was delivered to, in venID order (events delivered to nobody
    left out)."""
    grouped: dict[str, list[str]] = {}
    for start in range(0, len(event_ids), 500):  # within SQLite's bind-parameter limit
        part = event_ids[start : start + 500]
        for event_id, ven_id in conn.execute(
                "SELECT event_id, ven_id FROM event_deliveries WHERE event_id IN"
                f" ({','.join('?' * len(part))}) ORDER BY event_id, ven_id", part):
            grouped.setdefault(event_id, []).append(ven_id)
    return {event_id: tuple(vens) for event_id, vens in sorted(grouped.items())}
