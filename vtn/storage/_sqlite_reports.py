"""oadrUpdateReport writes on SQLite: the report updates that wait together
(:class:`._groups.Groups`) are stored by one job of the writer thread, in one transaction.

A job looks up the registrations of every update that names a certificate in one statement and
the cancelled requests of every update in another (each a JSON array of pairs, so the SQL text
stays the same whatever the group's size and sqlite3 keeps it prepared); each update's points
go in by INSERTs of their own, whose row count is that update's new points.

Invariants:
- Each update is answered with exactly what it alone would answer: whether the registration
  check passed (nothing stored if not), how many of its points were new, which of its requests
  are cancelled. Its points' own INSERTs count its new points.
- An unknown venID fails the foreign key, and with it the group's job, which rolls back (each
  update is then sent alone, so only its caller sees the failure).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final

from ._engine import MAX_BIND_PARAMS, sqlite_time
from .records import ReportData, ReportRequestStatus
from .reports import POINT_FIELDS

__all__ = ["Result", "Update", "store", "values_of"]

Result = tuple[int, tuple[str, ...]] | None

# One multi-row INSERT per batch: one sqlite3_step (and one GIL release and re-take on the writer
# thread) for the whole batch, where executemany steps (and hands the GIL over) once per row.
_ROWS_PER_INSERT: Final = MAX_BIND_PARAMS // len(POINT_FIELDS)
_WIDTH: Final = len(POINT_FIELDS)
# SQLAlchemy's Interval on SQLite is stored as the datetime text of 1970-01-01 + the duration.
_INTERVAL_EPOCH: Final = datetime(1970, 1, 1)
# ? a JSON array of [venID, fingerprint] pairs: the venIDs whose certificate it is, active.
_ACTIVE: Final = (
    "SELECT v.ven_id FROM json_each(?) AS j JOIN vens AS v"
    " ON v.ven_id = json_extract(j.value, '$[0]')"
    " AND v.fingerprint = json_extract(j.value, '$[1]') WHERE v.cancelled_at IS NULL"
)
# ? a JSON array of [venID, reportRequestID] pairs, ? the cancelled status: those cancelled.
_CANCELLED: Final = (
    "SELECT r.ven_id, r.report_request_id FROM json_each(?) AS j JOIN report_requests AS r"
    " ON r.ven_id = json_extract(j.value, '$[0]')"
    " AND r.report_request_id = json_extract(j.value, '$[1]') WHERE r.status = ?"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """One oadrUpdateReport as the writer job takes it: ``values`` are its points' sqlite3
    parameters (:func:`values_of`), ``wanted`` the reportRequestIDs asked about."""

    ven_id: str
    fingerprint: str | None
    values: list[object]
    wanted: list[str]


@lru_cache(maxsize=64)
def _insert(rows: int) -> str:
    row = f"({', '.join('?' * _WIDTH)})"
    return (f"INSERT INTO report_points ({', '.join(POINT_FIELDS)})"
            f" VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING")


def values_of(reports: Sequence[ReportData]) -> list[object]:
    """The points' sqlite3 parameters, row after row in POINT_FIELDS order. A batch repeats a few
    times many times (one received_at, one duration, a dtstart per interval): each distinct one
    is formatted once."""
    times: dict[datetime, str] = {}
    durations: dict[timedelta, str] = {}
    values: list[object] = []
    for data in reports:
        ven_id, request_id, specifier_id = (
            data.ven_id, data.report_request_id, data.report_specifier_id)
        received = sqlite_time(data.received_at)
        for r_id, dtstart, duration, value, confidence, accuracy, quality in data.rows:
            start = times.get(dtstart)
            if start is None:
                start = times[dtstart] = sqlite_time(dtstart)
            length = None if duration is None else durations.get(duration)
            if length is None and duration is not None:
                length = durations[duration] = (_INTERVAL_EPOCH + duration).isoformat(
                    " ", "microseconds")
            values += (ven_id, request_id, specifier_id, r_id, start, length, value,
                       confidence, accuracy, quality, received)
    return values


def _added(conn: sqlite3.Connection, values: list[object]) -> int:
    added, step = 0, _ROWS_PER_INSERT * _WIDTH
    for start in range(0, len(values), step):
        part = values[start : start + step]
        added += conn.execute(_insert(len(part) // _WIDTH), part).rowcount
    return added


def store(conn: sqlite3.Connection, group: Sequence[Update]) -> list[Result]:
    """What each update of ``group`` answers, stored in ``conn``'s transaction."""
    checked = [[u.ven_id, u.fingerprint] for u in group if u.fingerprint is not None]
    active = {v for (v,) in conn.execute(_ACTIVE, (json.dumps(checked),))} if checked else set()
    asked = [[u.ven_id, r] for u in group for r in u.wanted]
    gone: set[tuple[str, str]] = set(conn.execute(_CANCELLED, (
        json.dumps(asked), ReportRequestStatus.CANCELLED.value))) if asked else set()
    results: list[Result] = []
    for u in group:
        if u.fingerprint is not None and u.ven_id not in active:
            results.append(None)
        else:
            results.append((_added(conn, u.values),
                            tuple(r for r in u.wanted if (u.ven_id, r) in gone)))
    return results
