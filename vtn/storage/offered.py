"""Reports the VTN offers to a VEN (spec 8.3, the VTN as the reporting party): the VTN's METADATA
per VEN, the VEN's requests for it, and each oadrUpdateReport the VTN queued with its answer.

This is the mirror of :mod:`vtn.storage.reports` (the VEN reports, the VTN asks), kept in tables
of its own: reportRequestIDs here are chosen by the VEN, so they may not share a key space with
the ones the VTN hands out.

Invariants:
- A VEN's offer is the whole set: :meth:`OfferedReportRepository.offer` replaces the previous one
  in one transaction. Requests already made for a report no longer offered are left as they are
  (the VEN cancels them, or the application stops sending).
- :meth:`~OfferedReportRepository.accept` stores every request or none: each must name a
  reportSpecifierID offered to that VEN and only rIDs of it. A request sent again under the same
  reportRequestID replaces the earlier one (and is live again).
- :meth:`~OfferedReportRepository.record_send` checks that the request is live (active and not
  past its end) and records the send in the same transaction, so no data is recorded for a
  request the VEN had cancelled before. A send is keyed by (venID, requestID): recording the same
  requestID again changes nothing and says so, which makes an application's re-send idempotent.
- An oadrUpdatedReport is recorded on the send it answers (by the oadrUpdateReport's requestID);
  an answer to an unknown requestID changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import JSON, Connection, ForeignKey, Table, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ._engine import Database
from ._models import Base
from .records import ReportRequestStatus

__all__ = ["OfferedReport", "OfferedReportRepository", "OfferedRequest", "OfferedSend"]

_VEN_FK = "vens.ven_id"


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferedReport:
    """One METADATA report the VTN offered to a VEN (its encoded oadrReport in ``payload``)."""

    ven_id: str
    report_specifier_id: str
    report_name: str
    r_ids: tuple[str, ...]
    payload: bytes
    offered_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferedRequest:
    """A VEN's request for a report the VTN offered (oadrReportRequest)."""

    ven_id: str
    report_request_id: str
    report_specifier_id: str
    r_ids: tuple[str, ...] = ()
    granularity: timedelta | None = None
    report_back_duration: timedelta | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    status: ReportRequestStatus = ReportRequestStatus.ACTIVE
    created_at: datetime
    cancelled_at: datetime | None = None

    def live(self, at: datetime) -> bool:
        """Active and not past its reporting period at ``at``."""
        return self.status is ReportRequestStatus.ACTIVE and (
            self.ends_at is None or at < self.ends_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferedSend:
    """One oadrUpdateReport the VTN queued for a request, and the VEN's answer to it."""

    ven_id: str
    request_id: str  # the oadrUpdateReport's requestID, echoed by oadrUpdatedReport
    report_request_id: str
    queued_at: datetime
    answered_at: datetime | None = None
    response_code: int | None = None


class OfferedReportRow(Base):
    __tablename__ = "offered_reports"

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    report_specifier_id: Mapped[str] = mapped_column(primary_key=True)
    report_name: Mapped[str]
    r_ids: Mapped[list[str]] = mapped_column(JSON())
    payload: Mapped[bytes]
    offered_at: Mapped[datetime]


class OfferedRequestRow(Base):
    __tablename__ = "offered_requests"

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    report_request_id: Mapped[str] = mapped_column(primary_key=True)
    report_specifier_id: Mapped[str]
    r_ids: Mapped[list[str]] = mapped_column(JSON())
    granularity: Mapped[timedelta | None]
    report_back_duration: Mapped[timedelta | None]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    status: Mapped[str]
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class OfferedSendRow(Base):
    __tablename__ = "offered_sends"

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    request_id: Mapped[str] = mapped_column(primary_key=True)
    report_request_id: Mapped[str]
    queued_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    response_code: Mapped[int | None]


_OFFERS = cast(Table, OfferedReportRow.__table__)
_REQUESTS = cast(Table, OfferedRequestRow.__table__)
_SENDS = cast(Table, OfferedSendRow.__table__)
_REQUEST_FIELDS = ("report_specifier_id", "granularity", "report_back_duration", "starts_at",
                   "ends_at", "status", "created_at", "cancelled_at")


def _offer(row: Any) -> OfferedReport:
    return OfferedReport(ven_id=row.ven_id, report_specifier_id=row.report_specifier_id,
                         report_name=row.report_name, r_ids=tuple(row.r_ids),
                         payload=row.payload, offered_at=row.offered_at)


def _request(row: Any) -> OfferedRequest:
    values = {name: getattr(row, name) for name in _REQUEST_FIELDS}
    values["status"] = ReportRequestStatus(row.status)
    return OfferedRequest(ven_id=row.ven_id, report_request_id=row.report_request_id,
                          r_ids=tuple(row.r_ids), **values)


def _send(row: Any) -> OfferedSend:
    return OfferedSend(ven_id=row.ven_id, request_id=row.request_id,
                       report_request_id=row.report_request_id, queued_at=row.queued_at,
                       answered_at=row.answered_at, response_code=row.response_code)


def _unmatched(conn: Connection, ven_id: str,
               requests: Sequence[OfferedRequest]) -> tuple[str, ...]:
    """The reportRequestIDs that name no offered report of ``ven_id`` or rIDs outside it."""
    offered = {row.report_specifier_id: set(row.r_ids) for row in conn.execute(
        select(_OFFERS.c.report_specifier_id, _OFFERS.c.r_ids).where(_OFFERS.c.ven_id == ven_id))}
    return tuple(r.report_request_id for r in requests
                 if r.report_specifier_id not in offered
                 or not set(r.r_ids) <= offered[r.report_specifier_id])


class OfferedReportRepository:
    """The offered-report aggregate of one :class:`~vtn.storage.Storage`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def offer(self, ven_id: str, reports: Iterable[OfferedReport]) -> None:
        """Replace the reports offered to ``ven_id`` (all must be ``ven_id``'s)."""
        rows = [{"ven_id": r.ven_id, "report_specifier_id": r.report_specifier_id,
                 "report_name": r.report_name, "r_ids": list(r.r_ids), "payload": r.payload,
                 "offered_at": r.offered_at} for r in reports]
        if any(row["ven_id"] != ven_id for row in rows):
            raise ValueError("every offered report must be for the same VEN")
        insert = self._db.insert(OfferedReportRow)

        def work(conn: Connection) -> None:
            conn.execute(delete(_OFFERS).where(_OFFERS.c.ven_id == ven_id))
            if rows:
                conn.execute(insert, rows)

        await self._db.run_write(work)

    async def offers(self, ven_id: str) -> tuple[OfferedReport, ...]:
        stmt = select(_OFFERS).where(_OFFERS.c.ven_id == ven_id).order_by(
            _OFFERS.c.report_specifier_id)
        return await self._db.run_read(
            lambda conn: tuple(_offer(row) for row in conn.execute(stmt)))

    async def accept(self, ven_id: str, requests: Sequence[OfferedRequest]) -> tuple[str, ...]:
        """Store all of ``requests`` (``ven_id``'s) if each matches an offer; otherwise store
        nothing and return the reportRequestIDs that did not match."""
        if any(r.ven_id != ven_id for r in requests):
            raise ValueError("every request must be the requesting VEN's")
        rows = [{"ven_id": ven_id, "report_request_id": r.report_request_id,
                 "r_ids": list(r.r_ids), **{n: getattr(r, n) for n in _REQUEST_FIELDS}}
                for r in requests]
        for row in rows:
            row["status"] = row["status"].value
        stmt = self._db.insert(OfferedRequestRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["ven_id", "report_request_id"],
            set_={n: getattr(stmt.excluded, n) for n in ("r_ids", *_REQUEST_FIELDS)})

        def work(conn: Connection) -> tuple[str, ...]:
            unmatched = _unmatched(conn, ven_id, requests)
            if not unmatched and rows:
                for row in rows:  # one at a time: a request may repeat an ID within a message
                    conn.execute(stmt, row)
            return unmatched

        return await self._db.run_write(work)

    async def requests(self, ven_id: str, *, live_at: datetime | None = None
                       ) -> tuple[OfferedRequest, ...]:
        """The VEN's requests (only those live at ``live_at`` when given), oldest first."""
        stmt = select(_REQUESTS).where(_REQUESTS.c.ven_id == ven_id).order_by(
            _REQUESTS.c.created_at, _REQUESTS.c.report_request_id)
        found = await self._db.run_read(
            lambda conn: tuple(_request(row) for row in conn.execute(stmt)))
        return found if live_at is None else tuple(r for r in found if r.live(live_at))

    async def cancel(self, ven_id: str, report_request_ids: Iterable[str], *,
                     at: datetime) -> tuple[str, ...]:
        """Cancel the VEN's named requests; returns those that were active until now."""
        wanted = list(dict.fromkeys(report_request_ids))
        stmt = (update(_REQUESTS)
                .where(_REQUESTS.c.ven_id == ven_id,
                       _REQUESTS.c.report_request_id.in_(wanted),
                       _REQUESTS.c.status == ReportRequestStatus.ACTIVE.value)
                .values(status=ReportRequestStatus.CANCELLED.value, cancelled_at=at)
                .returning(_REQUESTS.c.report_request_id))

        def work(conn: Connection) -> tuple[str, ...]:
            done = set(conn.scalars(stmt))
            return tuple(r for r in wanted if r in done)

        return await self._db.run_write(work)

    async def record_send(self, ven_id: str, report_request_id: str, request_id: str, *,
                          at: datetime) -> tuple[OfferedRequest, bool] | None:
        """If the request is live at ``at``, record an oadrUpdateReport ``request_id`` for it;
        the request and whether the send is new (False: ``request_id`` was recorded before,
        nothing changed). None, and nothing recorded, if the request is not live."""
        find = select(_REQUESTS).where(_REQUESTS.c.ven_id == ven_id,
                                       _REQUESTS.c.report_request_id == report_request_id)
        insert = self._db.insert(OfferedSendRow).values(
            ven_id=ven_id, request_id=request_id, report_request_id=report_request_id,
            queued_at=at).on_conflict_do_nothing().returning(_SENDS.c.request_id)

        def work(conn: Connection) -> tuple[OfferedRequest, bool] | None:
            row = conn.execute(find).one_or_none()
            request = None if row is None else _request(row)
            if request is None or not request.live(at):
                return None
            return request, conn.execute(insert).first() is not None

        return await self._db.run_write(work)

    async def record_answer(self, ven_id: str, request_id: str, code: int, *,
                            at: datetime) -> bool:
        """Record the VEN's oadrUpdatedReport to send ``request_id``; False if no such send."""
        stmt = (update(_SENDS)
                .where(_SENDS.c.ven_id == ven_id, _SENDS.c.request_id == request_id)
                .values(answered_at=at, response_code=code))
        return await self._db.run_write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def sends(self, ven_id: str) -> tuple[OfferedSend, ...]:
        """Every recorded send to the VEN, in the order queued."""
        stmt = select(_SENDS).where(_SENDS.c.ven_id == ven_id).order_by(
            _SENDS.c.queued_at, _SENDS.c.request_id)
        return await self._db.run_read(
            lambda conn: tuple(_send(row) for row in conn.execute(stmt)))
