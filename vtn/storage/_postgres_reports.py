"""oadrUpdateReport writes on PostgreSQL: the report updates that wait together
(:class:`._postgres_groups.Groups`) are stored by one statement, arrays of every point tagged
with its update.

Invariants:
- Each update is answered with exactly what it alone would answer: whether the registration
  check passed (nothing stored if not), how many of its points were new, which of its requests
  are cancelled. The points a group adds are counted per VEN, which holds because a group has
  at most one update per VEN.
- An unknown venID fails the foreign key, and with it the group (each update is then sent
  alone, so only its caller sees the failure).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from ._postgres_groups import Fetch
from .records import ReportData, ReportRequestStatus

__all__ = ["Result", "Update", "points_of", "store"]

# $1 venIDs, $2 fingerprints (NULL: no check): one per update, numbered from 1 in order; then
# one array per point field, $3 the number of the point's update; $14/$15 (update number,
# reportRequestID) pairs asked about; $16 the cancelled status.
_STORE: Final = (
    "WITH updates AS (SELECT u.ven_id, u.n, u.fingerprint IS NULL OR EXISTS (SELECT 1 FROM vens v"
    " WHERE v.fingerprint = u.fingerprint AND v.ven_id = u.ven_id AND v.cancelled_at IS NULL)"
    " AS ok FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(ven_id, fingerprint, n)),"
    " added AS (INSERT INTO report_points (ven_id, report_request_id, report_specifier_id,"
    " r_id, dtstart, duration, value, confidence, accuracy, data_quality, received_at)"
    " SELECT u.ven_id, p.request, p.specifier, p.r_id, p.dtstart, p.duration, p.value,"
    " p.confidence, p.accuracy, p.quality, p.received FROM unnest($3::bigint[], $4::text[],"
    " $5::text[], $6::text[], $7::timestamptz[], $8::interval[], $9::float8[], $10::int[],"
    " $11::float8[], $12::text[], $13::timestamptz[]) AS p(n, request, specifier, r_id,"
    " dtstart, duration, value, confidence, accuracy, quality, received)"
    " JOIN updates u ON u.n = p.n WHERE u.ok ON CONFLICT DO NOTHING RETURNING ven_id)"
    " SELECT u.ok, (SELECT count(*) FROM added a WHERE a.ven_id = u.ven_id),"
    " ARRAY(SELECT w.id FROM unnest($14::bigint[], $15::text[]) AS w(n, id)"
    " JOIN report_requests r ON r.ven_id = u.ven_id AND r.report_request_id = w.id"
    " AND r.status = $16 WHERE w.n = u.n) FROM updates u ORDER BY u.n"
)

Result = tuple[int, tuple[str, ...]] | None
# One point as _STORE takes it: reportRequestID, reportSpecifierID, then the ReportData's
# PointRow (rID, dtstart, duration, value, confidence, accuracy, quality), then received_at.
StoredPoint = tuple[str, str, str, datetime, timedelta | None, float | None, int | None,
                    float | None, str | None, datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """One oadrUpdateReport: its points as one tuple each, in the order of :data:`_STORE`'s
    point arrays (request, specifier, rID, dtstart, duration, value, confidence, accuracy,
    quality, received)."""

    ven_id: str
    fingerprint: str | None
    points: list[StoredPoint]
    wanted: list[str]


def points_of(reports: Sequence[ReportData],
              aware: Callable[[datetime], datetime]) -> list[StoredPoint]:
    """The points of ``reports`` as :class:`Update` wants them; ``aware`` refuses a naive time
    (each distinct one checked once)."""
    checked: set[datetime] = set()
    points: list[StoredPoint] = []
    for data in reports:
        request, specifier, received = (
            data.report_request_id, data.report_specifier_id, data.received_at)
        checked.add(aware(received))
        for r_id, dtstart, duration, value, confidence, accuracy, quality in data.rows:
            if dtstart not in checked:
                checked.add(aware(dtstart))
            points.append((request, specifier, r_id, dtstart, duration, value, confidence,
                           accuracy, quality, received))
    return points


async def store(fetch: Fetch, group: Sequence[Update]) -> list[Result]:
    """What each update of ``group`` answers, stored by one statement through ``fetch``."""
    numbers: list[int] = []
    columns: list[list[object]] = [[] for _ in range(10)]
    asked_n: list[int] = []
    asked: list[str] = []
    for n, update in enumerate(group, 1):
        numbers += [n] * len(update.points)
        for point in update.points:
            for column, value in zip(columns, point, strict=True):
                column.append(value)
        asked_n += [n] * len(update.wanted)
        asked += update.wanted
    rows = await fetch(
        _STORE, [u.ven_id for u in group], [u.fingerprint for u in group], numbers,
        *columns, asked_n, asked, ReportRequestStatus.CANCELLED.value)
    results: list[Result] = []
    for update, (ok, added, gone) in zip(group, rows, strict=True):
        cancelled = set(gone)
        results.append(None if not ok else (
            int(added), tuple(r for r in update.wanted if r in cancelled)))
    return results
