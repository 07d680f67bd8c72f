"""Poll deliveries on PostgreSQL: the polls that wait together (:class:`._postgres_groups.Groups`)
take their items, and their event lists, by one statement.

Invariants (:meth:`.backend.Backend.deliver_next`, for each poll of the group on its own):
- The VEN's oldest claimable outbox item is taken with ``FOR UPDATE SKIP LOCKED`` and re-checked
  by the UPDATE (PostgreSQL re-evaluates the conditions on the latest version if another worker
  committed meanwhile), so an item is delivered once across workers.
- An event-list item takes the VEN's other event-list items with it, but not one another
  worker holds (it is that worker's to hand out): waiting for it, two workers delivering to one
  VEN at once could each wait for the other's. Its event list (its own statuses, times and
  limit) is read and recorded as delivered in the same statement; the statement's parts see
  one snapshot, so "still waiting" leaves out what the statement marks.
- A group holds one poll per VEN, so the statement touches each (event, VEN) delivery row at
  most once; it takes the rows' locks in key order, as a group of answers does.
- A poll whose caller was cancelled while its group was in flight gives its item back
  (:func:`give_back`): it waits for the VEN's next poll, which reads the event list afresh. So
  does a poll whose rows this version cannot read (an enum value it does not know): it fails
  alone, as if it had rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ._postgres_groups import Fetch, rows_by_write
from ._postgres_rows import aware, event_of, item_of
from .backend import EVENT_KIND, Distribution
from .notify import OUTBOX_CHANNEL, enqueued_payload
from .records import EventStatus, PollDelivery, TargetKind, TargetRef

__all__ = ["Delivered", "deliver", "give_back"]

# Per poll, numbered from 1 in order: $1 venID, $2 now, $3 cancelled since, $4 limit (NULL: no
# limit); ($5 poll number, $6 status) pairs: the statuses each list takes; $7 the cancelled
# status, $8 the venID target kind, $9 EVENT_KIND. One row per listed event of each poll (or
# one with no event), each with the poll's number, its item and whether anything else waits.
_DELIVER: Final = (
    "WITH polls AS (SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[],"
    " $4::int[]) WITH ORDINALITY AS p(ven_id, at, since, lim, n)),"
    " oldest AS (SELECT p.n, (SELECT o.seq FROM outbox o WHERE o.ven_id = p.ven_id"
    " AND o.delivered_at IS NULL AND (o.claimed_until IS NULL OR o.claimed_until <= p.at)"
    " ORDER BY o.seq LIMIT 1 FOR UPDATE SKIP LOCKED) AS seq FROM polls p),"
    " taken AS (UPDATE outbox o SET delivered_at = p.at, claimed_until = NULL"
    " FROM oldest x JOIN polls p ON p.n = x.n WHERE o.seq = x.seq AND o.ven_id = p.ven_id"
    " AND o.delivered_at IS NULL AND (o.claimed_until IS NULL OR o.claimed_until <= p.at)"
    " RETURNING p.n, p.at, p.since, p.lim, o.seq, o.ven_id, o.kind, o.payload, o.dedup_key,"
    " o.enqueued_at),"
    " superseded AS (UPDATE outbox o SET delivered_at = s.at, claimed_until = NULL FROM"
    " (SELECT x.seq, t.at FROM taken t JOIN outbox x ON x.ven_id = t.ven_id AND x.kind = $9"
    " AND x.delivered_at IS NULL AND x.seq <> t.seq WHERE t.kind = $9"
    " FOR UPDATE OF x SKIP LOCKED) s WHERE o.seq = s.seq RETURNING o.seq),"
    " hits AS (SELECT t.n, g.event_id, g.kind, g.value FROM taken t JOIN event_targets g"
    " ON g.kind = $8 AND g.value = t.ven_id WHERE t.kind = $9"
    " UNION SELECT t.n, g.event_id, g.kind, g.value FROM taken t JOIN ven_memberships m"
    " ON m.ven_id = t.ven_id JOIN event_targets g ON g.kind = m.kind AND g.value = m.value"
    " WHERE t.kind = $9),"
    " listed AS (SELECT t.n, t.ven_id, t.at, e.* FROM taken t CROSS JOIN LATERAL"
    " (SELECT e.event_id, e.modification_number, e.status, e.market_context, e.starts_at,"
    " e.ends_at, e.response_required, e.payload, e.updated_at,"
    " ARRAY(SELECT h.kind FROM hits h WHERE h.n = t.n AND h.event_id = e.event_id"
    " ORDER BY h.kind, h.value) AS kinds, ARRAY(SELECT h.value FROM hits h WHERE h.n = t.n"
    " AND h.event_id = e.event_id ORDER BY h.kind, h.value) AS target_values FROM events e"
    " WHERE t.kind = $9 AND e.status IN (SELECT s.status FROM unnest($5::bigint[], $6::text[])"
    " AS s(n, status) WHERE s.n = t.n)"
    " AND (e.event_id IN (SELECT h.event_id FROM hits h WHERE h.n = t.n)"
    " OR e.untargeted)"
    " AND (e.status != $7 OR e.updated_at >= t.since)"
    " AND (e.status = $7 OR e.ends_at IS NULL OR e.ends_at > t.at)"
    " ORDER BY e.event_id LIMIT t.lim) e),"
    " delivered AS (INSERT INTO event_deliveries (event_id, ven_id,"
    " delivered_modification_number, delivered_at)"
    " SELECT event_id, ven_id, modification_number, at FROM listed ORDER BY event_id, ven_id"
    " ON CONFLICT (event_id, ven_id) DO UPDATE SET"
    " delivered_modification_number = excluded.delivered_modification_number,"
    " delivered_at = excluded.delivered_at)"
    " SELECT p.n, t.seq, t.ven_id, t.kind, t.payload, t.dedup_key, t.enqueued_at,"
    " EXISTS (SELECT 1 FROM outbox o WHERE o.ven_id = p.ven_id AND o.delivered_at IS NULL"
    " AND o.seq NOT IN (SELECT seq FROM taken) AND o.seq NOT IN (SELECT seq FROM superseded)),"
    " l.event_id, l.modification_number, l.status, l.market_context, l.starts_at, l.ends_at,"
    " l.response_required, l.payload, l.updated_at, l.kinds, l.target_values"
    " FROM polls p LEFT JOIN taken t ON t.n = p.n LEFT JOIN listed l ON l.n = p.n"
    " ORDER BY p.n, l.event_id"
)

# An event-list item it superseded stays delivered: the list the item brings is read when sent.
# Every worker's poll index hears of it as of an enqueue: one may have seen the VEN with
# nothing waiting meanwhile.
_GIVE_BACK: Final = (
    "WITH back AS (UPDATE outbox SET delivered_at = NULL WHERE seq = $1"
    " AND delivered_at IS NOT NULL RETURNING ven_id) SELECT pg_notify($2, $3) FROM back"
)

# What a poll is handed, and whether anything is still undelivered for its VEN afterwards.
Delivered = tuple[PollDelivery | None, bool]


async def deliver(fetch: Fetch,
                  group: Sequence[Distribution]) -> list[Delivered | Exception]:
    """What each poll of ``group`` (one per VEN) is handed, taken by one statement through
    ``fetch``; the ValueError of one whose rows this version cannot read."""
    numbers: list[int] = []
    statuses: list[str] = []
    for n, poll in enumerate(group, 1):
        numbers += [n] * len(poll.statuses)
        statuses += [status.value for status in poll.statuses]
    rows = await fetch(
        _DELIVER, [p.ven_id for p in group], [aware(p.now) for p in group],
        [aware(p.cancelled_since) for p in group], [p.limit for p in group], numbers, statuses,
        EventStatus.CANCELLED.value, TargetKind.VEN.value, EVENT_KIND)
    delivered: list[Delivered | Exception] = []
    for poll, poll_rows in zip(group, rows_by_write(rows, len(group)), strict=True):
        try:
            delivered.append(_delivered(poll_rows))
        except ValueError as exc:  # a value this version does not know: the item waits
            await _give_back(fetch, poll_rows[0][1], poll.ven_id)
            delivered.append(exc)
    return delivered


def _delivered(rows: list[Any]) -> Delivered:
    first = rows[0]
    waiting = bool(first[7])
    if first[1] is None:
        return None, waiting
    events = tuple(
        event_of(row[8:17], [TargetRef(kind=TargetKind(k), value=v)
                             for k, v in zip(row[17], row[18], strict=True)])
        for row in rows if row[8] is not None)
    return PollDelivery(item=item_of(first[1:7]), events=events), waiting


async def give_back(fetch: Fetch, poll: Distribution, delivered: Delivered) -> None:
    """The item of ``poll``, which no one received (its caller was cancelled), waits again."""
    if delivered[0] is not None:
        await _give_back(fetch, delivered[0].item.seq, poll.ven_id)


async def _give_back(fetch: Fetch, seq: int, ven_id: str) -> None:
    await fetch(_GIVE_BACK, seq, OUTBOX_CHANNEL, enqueued_payload([ven_id]))
