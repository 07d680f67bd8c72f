"""Between asyncpg and our records on PostgreSQL: the times we bind and the rows we read back.

Invariants:
- A naive datetime is refused with ``ValueError`` before anything is sent, as
  :class:`._models.UtcDateTime` refuses it; asyncpg reads ``timestamptz`` as aware datetimes,
  handed out in UTC.
- Each converter takes a row (or a slice of one) whose columns are in the order of the
  ``*_COLUMNS`` constant or statement named in its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from .records import (
    Delivery,
    EventRecord,
    EventStatus,
    OptType,
    OutboxItem,
    TargetRef,
    VenRegistration,
)

__all__ = ["ACK_CHANGES", "DELIVERY_COLUMNS", "EVENT_COLUMNS", "aware", "delivery_of",
           "event_of", "item_of", "maybe", "registration_of"]

EVENT_COLUMNS: Final = (
    "event_id, modification_number, status, market_context, starts_at, ends_at,"
    " response_required, payload, updated_at"
)
DELIVERY_COLUMNS: Final = (
    "event_id, ven_id, delivered_modification_number, delivered_at, ack_modification_number,"
    " ack_opt_type, ack_response_code, ack_at"
)
# The condition of the ack upserts (vtn.storage.events): an ack never replaces one for a newer
# modificationNumber, and writes nothing when it repeats the stored answer.
ACK_CHANGES: Final = (
    "(event_deliveries.ack_modification_number IS NULL"
    " OR event_deliveries.ack_modification_number <= excluded.ack_modification_number)"
    " AND (event_deliveries.ack_modification_number, event_deliveries.ack_opt_type,"
    " event_deliveries.ack_response_code) IS DISTINCT FROM (excluded.ack_modification_number,"
    " excluded.ack_opt_type, excluded.ack_response_code)"
)


def aware(value: datetime) -> datetime:
    """``value``, if it names its time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: storage takes timezone-aware UTC only")
    return value


def maybe(value: datetime | None) -> datetime | None:
    """:func:`aware`, or None."""
    return None if value is None else aware(value)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def registration_of(row: Any) -> VenRegistration:
    """The vens row, columns in table order."""
    return VenRegistration(
        ven_id=row[0], registration_id=row[1], fingerprint=row[2], ven_name=row[3],
        profile_name=row[4], transport_name=row[5], transport_address=row[6],
        http_pull_model=row[7], report_only=row[8], xml_signature=row[9],
        created_at=row[10].astimezone(UTC), cancelled_at=_utc(row[11]))


def event_of(row: Any, targets: Sequence[TargetRef]) -> EventRecord:
    """The :data:`EVENT_COLUMNS` of an event, with the targets given."""
    return EventRecord(
        event_id=row[0], modification_number=row[1], status=EventStatus(row[2]),
        market_context=row[3], starts_at=_utc(row[4]), ends_at=_utc(row[5]),
        response_required=row[6], targets=tuple(targets), payload=row[7],
        updated_at=row[8].astimezone(UTC))


def delivery_of(row: Any) -> Delivery:
    """The :data:`DELIVERY_COLUMNS` of an event_deliveries row."""
    return Delivery(
        event_id=row[0], ven_id=row[1], delivered_modification_number=row[2],
        delivered_at=_utc(row[3]), ack_modification_number=row[4],
        ack_opt_type=None if row[5] is None else OptType(row[5]), ack_response_code=row[6],
        ack_at=_utc(row[7]))


def item_of(row: Any, more_waiting: bool = False,
            claimed_until: datetime | None = None) -> OutboxItem:
    """seq, ven_id, kind, payload, dedup_key, enqueued_at of an outbox row."""
    return OutboxItem(seq=row[0], ven_id=row[1], kind=row[2], payload=row[3],
                      dedup_key=row[4], enqueued_at=row[5].astimezone(UTC),
                      more_waiting=more_waiting, claimed_until=claimed_until)
