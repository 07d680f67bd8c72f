"""Group commit of oadrUpdateReport writes on PostgreSQL: report updates that wait together are
stored by one statement, in one transaction, with one commit.

Each commit costs PostgreSQL a WAL flush (``synchronous_commit = on``: what makes a stored report
durable before its reply goes out), about 0.2 ms of CPU and a disk flush. Under telemetry load
many VENs report at once; :class:`ReportWrites` sends all updates waiting when the previous
statement returns as one statement (arrays of every point, tagged with its update), as
:mod:`._groupcommit` does for the SQLite writer thread.

Invariants:
- A caller is answered only after the statement holding its update committed, with exactly what
  the update alone would answer: whether the registration check passed (nothing stored if not),
  how many of its points were new, which of its requests are cancelled.
- A group holds at most one update per VEN (another waits for the next group), so the points a
  group adds are counted per VEN; at most :data:`MAX_GROUP` updates.
- If a group fails (an unknown venID fails the foreign key), each of its updates is sent again
  alone, so a failure reaches only the caller whose update caused it.
- At most one group is in flight at a time; while the database is idle an update goes at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from .records import ReportData, ReportRequestStatus

__all__ = ["MAX_GROUP", "Fetch", "ReportWrites", "Update"]

MAX_GROUP: Final = 64

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


class Fetch(Protocol):
    """One statement with its parameters, in its own transaction: all its rows (asyncpg
    Records, which the driver does not type)."""

    def __call__(self, sql: str, /, *args: object) -> Awaitable[list[Any]]: ...


@dataclass(slots=True, kw_only=True)
class Update:
    """One oadrUpdateReport: its points as one tuple each, in the order of :data:`_STORE`'s
    point arrays (request, specifier, rID, dtstart, duration, value, confidence, accuracy,
    quality, received)."""

    ven_id: str
    fingerprint: str | None
    points: list[StoredPoint]
    wanted: list[str]
    future: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())


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


class ReportWrites:
    """Sends :class:`Update`\\ s through ``fetch(sql, *args)`` (one statement, its own
    transaction), grouped as the module docstring says."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._waiting: list[Update] = []
        self._draining: asyncio.Task[None] | None = None

    async def store(self, update: Update) -> Result:
        self._waiting.append(update)
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        return await update.future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group: list[Update] = []
                rest: list[Update] = []
                vens: set[str] = set()
                for update in self._waiting:
                    if update.future.done():  # its caller was cancelled
                        continue
                    if update.ven_id in vens or len(group) >= MAX_GROUP:
                        rest.append(update)
                    else:
                        vens.add(update.ven_id)
                        group.append(update)
                self._waiting = rest
                if group:
                    await self._send(group)
        finally:
            self._draining = None

    async def _send(self, group: list[Update]) -> None:
        try:
            results = await self._run(group)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc=exc)
                return
            for update in group:  # alone, so only the guilty one fails
                await self._send([update])
            return
        for update, result in zip(group, results, strict=True):
            _settle(update, result=result)

    async def _run(self, group: list[Update]) -> list[Result]:
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
        rows = await self._fetch(
            _STORE, [u.ven_id for u in group], [u.fingerprint for u in group], numbers,
            *columns, asked_n, asked, ReportRequestStatus.CANCELLED.value)
        results: list[Result] = []
        for update, (ok, added, gone) in zip(group, rows, strict=True):
            cancelled = set(gone)
            results.append(None if not ok else (
                int(added), tuple(r for r in update.wanted if r in cancelled)))
        return results


def _settle(update: Update, *, result: Result = None, exc: BaseException | None = None) -> None:
    if update.future.done():
        return
    if exc is not None:
        update.future.set_exception(exc)
    else:
        update.future.set_result(result)
