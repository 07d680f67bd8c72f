"""Report registrations (METADATA), report requests, and received report data (spec 8.3, EiReport).

Invariants:
- A VEN's oadrRegisterReport is its whole set of reports: registering replaces the previous set in
  one transaction, and deletes the report requests it supersedes: those for a report no longer
  registered, and older ones for a report this registration was answered a new request for. So
  re-registering, however often, leaves one generation of requests, never a pile of orphans.
- A report request is keyed by (ven_id, reportRequestID); storing it again is an update.
- Received points are keyed by (ven_id, reportSpecifierID, reportRequestID, rID, dtstart): a VEN
  re-sending an oadrUpdateReport (e.g. after a lost reply) stores nothing twice, and the first value
  received wins. :meth:`ReportRepository.add_points` writes a batch in one multi-row INSERT
  (docs/architecture.md#where-the-time-goes: a transaction per row costs 20-60x a batch).
- :meth:`ReportRepository.store_update` is one oadrUpdateReport in one transaction: given the
  client certificate, it first checks that it is the reporting VEN's active registration and
  stores nothing otherwise, so the check and the write cannot be split by a cancel between them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, delete, or_, select, update

from ._batches import PURGE_BATCH, delete_in_batches
from ._engine import (
    MAX_BIND_PARAMS,
    NAIVE_EPOCH,
    Database,
    Upsert,
    insert_many,
    sqlite_time,
)
from ._models import ReportDescriptionRow, ReportPointRow, ReportRequestRow, VenRow
from .backend import Backend
from .records import (
    ReportData,
    ReportDescription,
    ReportPoint,
    ReportRequest,
    ReportRequestStatus,
)

__all__ = ["ReportRepository"]

# A point's columns: those its report gives every point (a ReportData's own fields), then its
# own (a PointRow, in its order).
_REPORT_FIELDS: Final = ("ven_id", "report_request_id", "report_specifier_id", "received_at")
_ROW_FIELDS: Final = (
    "r_id", "dtstart", "duration", "value", "confidence", "accuracy", "data_quality")
_POINT_FIELDS: Final = (*_REPORT_FIELDS, *_ROW_FIELDS)
# One multi-row INSERT per batch: one sqlite3_step (and one GIL release and re-take on the writer
# thread) for the whole batch, where executemany steps (and hands the GIL over) once per row.
_ROWS_PER_INSERT: Final = (MAX_BIND_PARAMS - len(_REPORT_FIELDS)) // len(_ROW_FIELDS)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    return (values[i:i + MAX_BIND_PARAMS] for i in range(0, len(values), MAX_BIND_PARAMS))


@lru_cache(maxsize=64)
def _insert_points_sqlite(rows: int) -> str:
    """The INSERT of ``rows`` points of one report: the report's fields are bound once (?1-?4),
    each point's after them, a row of the VALUES table: a 15-point report binds 109 parameters,
    not 165 (each column of each row), which took 4-16 % off the writer thread's transaction
    (bench/README.md). SQLite wants the WHERE before ON CONFLICT after an INSERT's SELECT."""
    shared = ", ".join(f"?{n}" for n in range(1, len(_REPORT_FIELDS) + 1))
    columns = ", ".join(f"column{n}" for n in range(1, len(_ROW_FIELDS) + 1))
    row = f"({', '.join('?' * len(_ROW_FIELDS))})"
    return (f"INSERT INTO report_points ({', '.join(_POINT_FIELDS)})"
            f" SELECT {shared}, {columns} FROM (VALUES {', '.join([row] * rows)})"
            " WHERE true ON CONFLICT DO NOTHING")


_ACTIVE_VEN_SQLITE: Final = (
    "SELECT 1 FROM vens WHERE fingerprint = ? AND ven_id = ? AND cancelled_at IS NULL"
)


def _sqlite_values(reports: Sequence[ReportData]) -> list[list[object]]:
    """Each report's sqlite3 parameters: its _REPORT_FIELDS, then its points' _ROW_FIELDS, row
    after row. A batch repeats a few times many times (one received_at, one duration, a dtstart
    per interval): each distinct one is formatted once."""
    times: dict[datetime, str] = {}
    durations: dict[timedelta, str] = {}
    parts: list[list[object]] = []
    for data in reports:
        values: list[object] = [data.ven_id, data.report_request_id, data.report_specifier_id,
                                sqlite_time(data.received_at)]
        for r_id, dtstart, duration, value, confidence, accuracy, quality in data.rows:
            start = times.get(dtstart)
            if start is None:
                start = times[dtstart] = sqlite_time(dtstart)
            length = None if duration is None else durations.get(duration)
            if length is None and duration is not None:
                # SQLAlchemy's Interval on SQLite: the datetime text of 1970-01-01 + duration
                length = durations[duration] = (NAIVE_EPOCH + duration).isoformat(
                    " ", "microseconds")
            values += (r_id, start, length, value, confidence, accuracy, quality)
        parts.append(values)
    return parts


def _cancelled_sqlite(conn: sqlite3.Connection, ven_id: str, wanted: list[str]) -> set[str]:
    gone: set[str] = set()
    for start in range(0, len(wanted), 500):  # within SQLite's bind-parameter limit
        part = wanted[start : start + 500]
        gone.update(r for (r,) in conn.execute(
            "SELECT report_request_id FROM report_requests WHERE ven_id = ? AND status = ?"
            f" AND report_request_id IN ({', '.join('?' * len(part))})",
            (ven_id, ReportRequestStatus.CANCELLED.value, *part)))
    return gone


def _store_update_sqlite(
    conn: sqlite3.Connection, ven_id: str, fingerprint: str | None,
    parts: list[list[object]], wanted: list[str],
) -> tuple[int, tuple[str, ...]] | None:
    if fingerprint is not None and conn.execute(
            _ACTIVE_VEN_SQLITE, (fingerprint, ven_id)).fetchone() is None:
        return None
    added, shared, width = 0, len(_REPORT_FIELDS), len(_ROW_FIELDS)
    for values in parts:  # one report's (_sqlite_values)
        for start in range(shared, len(values), _ROWS_PER_INSERT * width):
            rows = values[start : start + _ROWS_PER_INSERT * width]
            added += conn.execute(_insert_points_sqlite(len(rows) // width),
                                  [*values[:shared], *rows]).rowcount
    gone = _cancelled_sqlite(conn, ven_id, wanted) if wanted else set()
    return added, tuple(r for r in wanted if r in gone)


_REQUEST_FIELDS: Final = (
    "report_specifier_id",
    "granularity",
    "report_back_duration",
    "starts_at",
    "ends_at",
    "status",
    "created_at",
    "cancelled_at",
    "refusal_code",
    "refusal_reason",
)


def _description(row: ReportDescriptionRow) -> ReportDescription:
    return ReportDescription(
        ven_id=row.ven_id,
        report_specifier_id=row.report_specifier_id,
        report_name=row.report_name,
        r_ids=tuple(row.r_ids),
        payload=row.payload,
        registered_at=row.registered_at,
    )


_REQUESTS = cast(Table, ReportRequestRow.__table__)
_POINTS = cast(Table, ReportPointRow.__table__)
_VENS = cast(Table, VenRow.__table__)
# Unique within one VEN: its points' primary key after ven_id, which a purge pins.
_POINT_KEY: Final = tuple(_POINTS.primary_key.columns)[1:]


def _request(row: Any) -> ReportRequest:
    return ReportRequest(
        ven_id=row.ven_id,
        report_request_id=row.report_request_id,
        report_specifier_id=row.report_specifier_id,
        r_ids=tuple(row.r_ids),
        granularity=row.granularity,
        report_back_duration=row.report_back_duration,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        status=ReportRequestStatus(row.status),
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
        refusal_code=row.refusal_code,
        refusal_reason=row.refusal_reason,
    )


def _point(row: ReportPointRow) -> ReportPoint:
    return ReportPoint(**{name: getattr(row, name) for name in _POINT_FIELDS})


def _request_values(request: ReportRequest) -> dict[str, Any]:
    """A report request as the parameters of the request upsert."""
    values = {name: getattr(request, name) for name in _REQUEST_FIELDS}
    values.update(r_ids=list(request.r_ids), ven_id=request.ven_id,
                  report_request_id=request.report_request_id)
    return values


class ReportRepository:
    def __init__(self, db: Database, backend: Backend) -> None:
        self._db = db
        self._backend = backend
        self._upsert_request: Upsert | None = None

    # ------------------------------------------------------------ METADATA registrations

    async def register_descriptions(
        self, ven_id: str, descriptions: Iterable[ReportDescription]
    ) -> None:
        """Replace the VEN's registered reports with ``descriptions`` (all for ``ven_id``)."""
        await self.register_reports(ven_id, descriptions, ())

    async def register_reports(self, ven_id: str, descriptions: Iterable[ReportDescription],
                               requests: Iterable[ReportRequest]) -> None:
        """An oadrRegisterReport in one transaction: replace the VEN's registered reports with
        ``descriptions``, delete the report requests they supersede (see the module docstring)
        and store (or update) the report ``requests`` answered to it."""
        described = list(descriptions)
        if any(d.ven_id != ven_id for d in described):
            raise ValueError("every description must belong to the registering VEN")
        rows = [{"ven_id": ven_id, "report_specifier_id": d.report_specifier_id,
                 "report_name": d.report_name, "r_ids": list(d.r_ids), "payload": d.payload,
                 "registered_at": d.registered_at} for d in described]
        upserts = [_request_values(r) for r in requests]
        replace_rows = delete(ReportDescriptionRow).where(ReportDescriptionRow.ven_id == ven_id)
        specifier = ReportRequestRow.report_specifier_id
        superseded = delete(ReportRequestRow).where(
            ReportRequestRow.ven_id == ven_id,
            ReportRequestRow.report_request_id.not_in([u["report_request_id"] for u in upserts]),
            or_(specifier.in_({u["report_specifier_id"] for u in upserts}),
                specifier.not_in({d.report_specifier_id for d in described})))
        insert_rows = self._db.insert(ReportDescriptionRow)
        upsert = self._request_upsert()

        def work(conn: Connection) -> None:
            conn.execute(replace_rows)
            conn.execute(superseded)
            if rows:
                conn.execute(insert_rows, rows)
            for values in upserts:
                conn.execute(upsert, values)

        await self._db.run_write(work)

    async def descriptions(self, ven_id: str) -> tuple[ReportDescription, ...]:
        stmt = (
            select(ReportDescriptionRow)
            .where(ReportDescriptionRow.ven_id == ven_id)
            .order_by(ReportDescriptionRow.report_specifier_id)
        )
        async with self._db.read() as session:
            return tuple(_description(row) for row in await session.scalars(stmt))

    async def erase_r_ids(self, ven_id: str, r_ids: Iterable[str]) -> int:
        """Delete every row of the VEN that names one of ``r_ids``: its points, and any stored
        registration or request listing one (an erasure request, GDPR art. 17). One
        transaction; returns how many rows went."""
        wanted = set(r_ids)
        points = [delete(ReportPointRow).where(ReportPointRow.ven_id == ven_id,
                                               ReportPointRow.r_id.in_(chunk))
                  for chunk in _chunks(sorted(wanted))]
        listed: list[tuple[Any, Any]] = [
            (ReportDescriptionRow, ReportDescriptionRow.report_specifier_id),
            (ReportRequestRow, ReportRequestRow.report_request_id)]

        def work(conn: Connection) -> int:
            gone = sum(conn.execute(stmt).rowcount for stmt in points)
            for model, key in listed:
                rows = conn.execute(select(key, model.r_ids).where(model.ven_id == ven_id))
                hit = [k for k, ids in rows if wanted.intersection(ids)]
                if hit:
                    gone += conn.execute(delete(model).where(model.ven_id == ven_id,
                                                             key.in_(hit))).rowcount
            return gone

        return await self._db.run_write(work)

    # ------------------------------------------------------------ report requests

    def _request_upsert(self) -> Upsert:
        # Built once: constructing the ON CONFLICT clause (its ``excluded`` column proxies) cost
        # more CPU per call than executing it; the values go in as parameters.
        if self._upsert_request is None:
            stmt = self._db.insert(ReportRequestRow)
            self._upsert_request = stmt.on_conflict_do_update(
                index_elements=["ven_id", "report_request_id"],
                set_={name: getattr(stmt.excluded, name)
                      for name in (*_REQUEST_FIELDS, "r_ids") if name != "created_at"})
        return self._upsert_request

    async def put_request(self, request: ReportRequest) -> None:
        """Store or update a report request (subscription) sent to a VEN."""
        values, stmt = _request_values(request), self._request_upsert()
        await self._db.run_write(lambda conn: conn.execute(stmt, values))

    async def set_request_status(
        self,
        ven_id: str,
        report_request_id: str,
        status: ReportRequestStatus,
        *,
        at: datetime,
    ) -> bool:
        """Activate (oadrCreatedReport) or cancel (oadrCancelReport) a request; False if unknown."""
        cancelled_at = at if status is ReportRequestStatus.CANCELLED else None
        stmt = (
            update(ReportRequestRow)
            .where(
                ReportRequestRow.ven_id == ven_id,
                ReportRequestRow.report_request_id == report_request_id,
            )
            .values(status=status.value, cancelled_at=cancelled_at)
        )
        return await self._db.run_write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def refuse_request(self, ven_id: str, report_request_id: str, *, code: int,
                             reason: str | None) -> bool:
        """Record that the VEN refused a pending request (oadrCreatedReport with an error code);
        False if no such request is pending."""
        stmt = (
            update(ReportRequestRow)
            .where(
                ReportRequestRow.ven_id == ven_id,
                ReportRequestRow.report_request_id == report_request_id,
                ReportRequestRow.status == ReportRequestStatus.PENDING.value,
            )
            .values(status=ReportRequestStatus.REFUSED.value, refusal_code=code,
                    refusal_reason=reason)
        )
        return await self._db.run_write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def get_request(self, ven_id: str, report_request_id: str) -> ReportRequest | None:
        stmt = select(_REQUESTS).where(_REQUESTS.c.ven_id == ven_id,
                                       _REQUESTS.c.report_request_id == report_request_id)

        def work(conn: Connection) -> ReportRequest | None:
            row = conn.execute(stmt).one_or_none()
            return None if row is None else _request(row)

        return await self._db.run_read(work)

    async def requests(
        self, ven_id: str, *, statuses: Iterable[ReportRequestStatus] | None = None
    ) -> tuple[ReportRequest, ...]:
        stmt = (
            select(ReportRequestRow)
            .where(ReportRequestRow.ven_id == ven_id)
            .order_by(ReportRequestRow.created_at, ReportRequestRow.report_request_id)
        )
        if statuses is not None:
            stmt = stmt.where(ReportRequestRow.status.in_([s.value for s in statuses]))
        async with self._db.read() as session:
            return tuple(_request(row) for row in await session.scalars(stmt))

    # ------------------------------------------------------------ received data

    async def add_points(self, points: Sequence[ReportPoint]) -> int:
        """Store received points in one transaction (one statement per 2,700 points); returns how
        many were new. Points already stored under their natural key are skipped."""
        rows = [{name: getattr(p, name) for name in _POINT_FIELDS} for p in points]
        if not rows:
            return 0
        return await self._db.run_write(lambda conn: self._insert_points(conn, rows))

    async def store_update(
        self, ven_id: str, reports: Sequence[ReportData], request_ids: Iterable[str], *,
        fingerprint: str | None = None,
    ) -> tuple[int, tuple[str, ...]] | None:
        """One oadrUpdateReport of ``ven_id`` in one transaction: :meth:`add_points` (the points of
        ``reports``, all of them the VEN's), and which of the VEN's ``request_ids`` are
        cancelled, so the reply can tell it. Returns (points added, cancelled reportRequestIDs
        in the order given).

        With ``fingerprint`` the same transaction first checks that this client certificate is
        ``ven_id``'s active registration (what the service would otherwise read in a round trip
        of its own); if it is not, nothing is stored and the result is None."""
        if any(data.ven_id != ven_id for data in reports):
            raise ValueError("every point must belong to the reporting VEN")
        wanted = list(dict.fromkeys(request_ids))
        return await self._backend.store_update(ven_id, reports, wanted, fingerprint)

    def _insert_points(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        stmt = self._db.insert(ReportPointRow).on_conflict_do_nothing()
        return insert_many(conn, stmt.returning(_POINTS.c.r_id), rows)

    async def purge_points(self, before: datetime, *, r_id_prefix: str | None = None,
                           batch: int = PURGE_BATCH) -> int:
        """Delete the received points whose interval starts before ``before`` (retention), of
        every VEN; with ``r_id_prefix`` only those whose rID starts with it. Returns how many.
        At most ``batch`` rows per transaction (:func:`~._batches.delete_in_batches`), one VEN
        after another: the primary key leads with (ven_id, dtstart), so a VEN's old points are
        one range of it, each batch starts where the last one ended, and no batch reads the
        points of the VEN's kept range (no index on dtstart alone, which every report insert
        would pay for)."""
        old = _POINTS.c.dtstart < before
        if r_id_prefix is not None:
            old = old & _POINTS.c.r_id.startswith(r_id_prefix, autoescape=True)
        vens = await self._db.run_read(
            lambda conn: list(conn.scalars(select(_VENS.c.ven_id).order_by(_VENS.c.ven_id))))
        deleted = 0
        for ven_id in vens:
            deleted += await delete_in_batches(
                self._db, _POINTS, (_POINTS.c.ven_id == ven_id) & old, batch=batch,
                key=_POINT_KEY)
        return deleted

    async def points(
        self,
        ven_id: str,
        start: datetime,
        end: datetime,
        *,
        r_id: str | None = None,
        report_specifier_id: str | None = None,
    ) -> tuple[ReportPoint, ...]:
        """The VEN's points with ``start <= dtstart < end``, by dtstart then rID."""
        stmt = (
            select(ReportPointRow)
            .where(
                ReportPointRow.ven_id == ven_id,
                ReportPointRow.dtstart >= start,
                ReportPointRow.dtstart < end,
            )
            .order_by(ReportPointRow.dtstart, ReportPointRow.r_id)
        )
        if r_id is not None:
            stmt = stmt.where(ReportPointRow.r_id == r_id)
        if report_specifier_id is not None:
            stmt = stmt.where(ReportPointRow.report_specifier_id == report_specifier_id)
        async with self._db.read() as session:
            return tuple(_point(row) for row in await session.scalars(stmt))
