"""oadrCreatedEvent answers on PostgreSQL: the answers that wait together
(:class:`._postgres_groups.Groups`) are checked and stored by one statement, their acks in
arrays tagged with their answer.

Invariants:
- Each answer is checked on its own, as :meth:`.backend.Backend.record_answer` documents: its
  fingerprint must be its venID's active registration, and each of its acks must name an event
  delivered to its VEN at the event's current modificationNumber (:func:`.backend.answers_current`);
  only then are its acks stored. A refused answer stores nothing and never keeps another answer
  of the group from being stored, nor the reverse; its :class:`Outcome` carries the versions it
  was checked against, for the caller to refuse with.
- An ack never replaces one stored for a newer modificationNumber, nor rewrites one that
  already says the same (:mod:`.events`); the row as this statement's snapshot saw it comes
  back then (another worker's write of the same moment may be newer).
- Within an answer the eventIDs are distinct, and a group holds one answer per VEN, so the
  statement's upsert touches each (event, VEN) row at most once; it takes the rows' locks in
  key order, as a poll's delivery does, so two workers' groups never wait on each other in a
  cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._postgres_groups import Fetch, rows_by_write
from ._postgres_rows import ACK_CHANGES, DELIVERY_COLUMNS, delivery_of
from .records import Delivery, EventAck

__all__ = ["Answer", "Outcome", "check_and_store"]

# $1 venIDs, $2 fingerprints: one per answer, numbered from 1 in order; then one array per ack
# field, $3 the number of the ack's answer. The answers' flags: whether the registration is
# active, whether every ack names a delivered event at its current number; then one row per
# ack, in order: the flags, the versions its answer was checked against, the row the upsert
# wrote, the row as stored before it. An answer with no ack gives one row with no ack.
_ANSWERS: Final = (
    "WITH answers AS (SELECT a.n, a.ven_id, EXISTS (SELECT 1 FROM vens v"
    " WHERE v.fingerprint = a.fingerprint AND v.ven_id = a.ven_id AND v.cancelled_at IS NULL)"
    " AS active FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS a(ven_id, fingerprint, n)),"
    " acks AS (SELECT k.*, a.ven_id FROM unnest($3::bigint[], $4::text[], $5::int[], $6::text[],"
    " $7::int[], $8::timestamptz[]) WITH ORDINALITY AS k(n, event_id, number, opt, code, at, i)"
    " JOIN answers a ON a.n = k.n),"
    " current AS (SELECT k.n, k.event_id, e.modification_number FROM acks k"
    " JOIN event_deliveries d ON d.event_id = k.event_id AND d.ven_id = k.ven_id"
    " JOIN events e ON e.event_id = k.event_id),"
    " accepted AS (SELECT a.n, a.active AND NOT EXISTS (SELECT 1 FROM acks k"
    " LEFT JOIN current c ON c.n = k.n AND c.event_id = k.event_id"
    " WHERE k.n = a.n AND c.modification_number IS DISTINCT FROM k.number) AS ok FROM answers a),"
    " up AS (INSERT INTO event_deliveries (event_id, ven_id, ack_modification_number,"
    " ack_opt_type, ack_response_code, ack_at)"
    " SELECT k.event_id, k.ven_id, k.number, k.opt, k.code, k.at FROM acks k"
    " JOIN accepted x ON x.n = k.n WHERE x.ok ORDER BY k.event_id, k.ven_id"
    " ON CONFLICT (event_id, ven_id) DO UPDATE SET"
    " ack_modification_number = excluded.ack_modification_number,"
    " ack_opt_type = excluded.ack_opt_type, ack_response_code = excluded.ack_response_code,"
    f" ack_at = excluded.ack_at WHERE {ACK_CHANGES} RETURNING {DELIVERY_COLUMNS})"
    " SELECT a.n, a.active, x.ok, ARRAY(SELECT c.event_id FROM current c WHERE c.n = a.n"
    " ORDER BY c.event_id), ARRAY(SELECT c.modification_number FROM current c WHERE c.n = a.n"
    " ORDER BY c.event_id), u.*, d.* FROM answers a JOIN accepted x ON x.n = a.n"
    " LEFT JOIN (acks k LEFT JOIN up u ON u.event_id = k.event_id AND u.ven_id = k.ven_id"
    " LEFT JOIN event_deliveries d ON d.event_id = k.event_id AND d.ven_id = k.ven_id)"
    " ON k.n = a.n ORDER BY a.n, k.i"
)
_UPDATED: Final = slice(5, 13)
_BEFORE: Final = slice(13, 21)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One oadrCreatedEvent: its acks (each of ``ven_id``, distinct eventIDs, times aware)."""

    ven_id: str
    fingerprint: str
    acks: tuple[EventAck, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What became of an :class:`Answer`: ``stored`` is None unless its registration was
    active (``active``) and every ack named a current version of ``delivered`` (eventID -> the
    current modificationNumber of the answered events delivered to the VEN)."""

    active: bool
    delivered: dict[str, int]
    stored: tuple[Delivery, ...] | None


async def check_and_store(fetch: Fetch, group: Sequence[Answer]) -> list[Outcome]:
    """What became of each answer of ``group``, checked and stored by one statement through
    ``fetch``."""
    numbers: list[int] = []
    acks: list[EventAck] = []
    for n, answer in enumerate(group, 1):
        numbers += [n] * len(answer.acks)
        acks += answer.acks
    rows = await fetch(
        _ANSWERS, [a.ven_id for a in group], [a.fingerprint for a in group], numbers,
        [a.event_id for a in acks], [a.modification_number for a in acks],
        [a.opt_type.value for a in acks], [a.response_code for a in acks],
        [a.at for a in acks])
    return [_outcome(answer_rows) for answer_rows in rows_by_write(rows, len(group))]


def _outcome(rows: list[Any]) -> Outcome:
    _, active, accepted, event_ids, numbers = rows[0][:5]
    delivered = dict(zip(event_ids, numbers, strict=True))
    if not (active and accepted):
        return Outcome(active=bool(active), delivered=delivered, stored=None)
    # the updated row, else (an ack for a newer modificationNumber stays) the stored one
    return Outcome(active=True, delivered=delivered, stored=tuple(
        delivery_of(row[_UPDATED] if row[_UPDATED.start] is not None else row[_BEFORE])
        for row in rows if row[_BEFORE.start] is not None))
