"""Reports the VTN offers to this VEN (OpenADR 2.0b profile 8.3, the VTN as the reporting party).

Owns: the VTN's METADATA (its last oadrRegisterReport), the requests this VEN made for those
reports (by reportRequestID), and the answers to the VTN's report payloads:

- oadrRegisterReport -> oadrRegisteredReport, carrying the requests ``choose`` picks at once;
- oadrCreatedReport (the VTN confirming requests) -> oadrResponse;
- oadrUpdateReport -> oadrUpdatedReport, after ``on_data`` took each report (plain or async).

:meth:`VtnReports.request_report` asks for an offered report later (oadrCreateReport) and
:meth:`VtnReports.cancel` stops one (oadrCancelReport).

Invariants: a request is remembered (in memory) once the VTN confirmed it in an
oadrCreatedReport. Data is never dropped: a report naming a request this client does not hold
(made before a restart, or cancelled) is handed to ``on_data`` too, and the oadrUpdatedReport
carries an oadrCancelReport for that request, so the VTN stops serving a request nobody holds.
A failing ``on_data`` answers 454 (invalid data) and is logged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from schemas import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    EiResponse,
    InvalidData,
    Message,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportingPeriod,
    ReportRequest,
    ReportSpecifier,
    Response,
    Service,
    SpecifierPayload,
    UpdatedReport,
    UpdateReport,
    new_id,
)
from schemas.logtext import escaped

__all__ = ["ReportChooser", "ReportDataHandler", "VtnReports"]

log = logging.getLogger(__name__)

ReportDataHandler = Callable[[Report], object]
"""Called once per report in an oadrUpdateReport from the VTN (may return an awaitable)."""

ReportChooser = Callable[[tuple[Report, ...]], object]
"""Given the VTN's METADATA, the ReportRequests to make at once (iterable, None, or awaitable)."""

Exchange = Callable[[Service, Message, type[Any]], Awaitable[Any]]


async def _call(hook: Callable[..., object], *args: object) -> Any:
    result = hook(*args)
    return await result if inspect.isawaitable(result) else result


class VtnReports:
    """The VTN's offered reports for one :class:`ven.VenClient` (``client.vtn``)."""

    def __init__(self, *, exchange: Exchange, ven_id: Callable[[], str],
                 on_data: ReportDataHandler | None = None,
                 choose: ReportChooser | None = None) -> None:
        self._exchange = exchange
        self._ven_id = ven_id
        self._on_data = on_data
        self._choose = choose
        self.metadata: tuple[Report, ...] = ()
        self.requests: dict[str, ReportRequest] = {}
        # made in an oadrRegisteredReport, not yet confirmed by the VTN's oadrCreatedReport
        self._proposed: dict[str, ReportRequest] = {}

    # ------------------------------------------------------------ payloads from the VTN

    async def on_register_report(self, message: RegisterReport) -> RegisteredReport:
        """The VTN's METADATA: remember it; request what ``choose`` picks."""
        self.metadata = message.reports
        chosen: tuple[ReportRequest, ...] = ()
        if self._choose is not None and message.reports:
            picked = await _call(self._choose, message.reports)
            chosen = tuple(picked or ())
        self._proposed.update((r.report_request_id, r) for r in chosen)
        return RegisteredReport(response=EiResponse(request_id=message.request_id),
                                report_requests=chosen, ven_id=self._ven_id())

    def on_created_report(self, message: CreatedReport) -> Response:
        """The VTN accepted our requests: those it lists as pending are ours now."""
        if message.response.ok:
            for request_id in message.pending_reports:
                proposed = self._proposed.pop(request_id, None)
                if proposed is not None:
                    self.requests[request_id] = proposed
        return Response(response=EiResponse(request_id=message.response.request_id),
                        ven_id=self._ven_id())

    async def on_update_report(self, message: UpdateReport) -> UpdatedReport:
        """Report data from the VTN: hand each report to ``on_data``; cancel requests we do
        not hold."""
        unknown = tuple(dict.fromkeys(
            r.report_request_id for r in message.reports
            if r.report_request_id not in self.requests))
        code, description = 200, "OK"
        on_data = self._on_data
        if on_data is None:
            log.warning("no report data handler: %d report(s) from the VTN taken unread",
                        len(message.reports))
        else:
            for report in message.reports:
                try:
                    await _call(on_data, report)
                except Exception as exc:
                    log.exception("report data handler failed on %s",
                                  escaped(report.report_request_id))
                    code = InvalidData.response_code
                    description = str(exc)[:500] or "invalid data"
        if unknown:
            log.warning("report data for requests this VEN does not hold: %s", escaped(unknown))
        cancel = (CancelReport(request_id=new_id(), report_request_ids=unknown,
                               ven_id=self._ven_id()) if unknown else None)
        return UpdatedReport(response=EiResponse(code=code, description=description,
                                                 request_id=message.request_id),
                             cancel_report=cancel, ven_id=self._ven_id())

    # ------------------------------------------------------------ requests to the VTN

    def offered(self, report_specifier_id: str) -> Report:
        """The VTN's METADATA report ``report_specifier_id``; LookupError if not offered."""
        for report in self.metadata:
            if report.report_specifier_id == report_specifier_id:
                return report
        raise LookupError(f"the VTN offers no report {report_specifier_id!r}")

    async def request_report(
        self, report_specifier_id: str, *, r_ids: Sequence[str] | None = None,
        granularity: timedelta = timedelta(0), report_back_duration: timedelta = timedelta(0),
        report_interval: ReportingPeriod | None = None, report_request_id: str | None = None,
    ) -> ReportRequest:
        """oadrCreateReport for an offered report (all its rIDs unless ``r_ids``); the request,
        once the VTN's oadrCreatedReport lists it as pending."""
        report = self.offered(report_specifier_id)
        types = {d.r_id: d.reading_type for d in report.descriptions}
        wanted = tuple(r_ids) if r_ids is not None else tuple(types)
        if not set(wanted) <= set(types):
            missing = sorted(set(wanted) - set(types))
            raise LookupError(f"report {report_specifier_id!r} has no rIDs {missing}")
        request = ReportRequest(
            report_request_id=report_request_id or new_id(),
            report_specifier=ReportSpecifier(
                report_specifier_id=report_specifier_id, granularity=granularity,
                report_back_duration=report_back_duration, report_interval=report_interval,
                specifier_payloads=tuple(
                    SpecifierPayload(r_id=r, reading_type=types[r]) for r in wanted)))
        created: CreatedReport = await self._exchange(
            Service.REPORT, CreateReport(request_id=new_id(), report_requests=(request,),
                                         ven_id=self._ven_id()), CreatedReport)
        if request.report_request_id not in created.pending_reports:
            raise LookupError(f"the VTN did not take request {request.report_request_id!r}")
        self.requests[request.report_request_id] = request
        return request

    async def cancel(self, report_request_ids: Iterable[str]) -> tuple[str, ...]:
        """oadrCancelReport for our requests; the reportRequestIDs the VTN still serves."""
        ids = tuple(report_request_ids)
        canceled: CanceledReport = await self._exchange(
            Service.REPORT, CancelReport(request_id=new_id(), report_request_ids=ids,
                                         ven_id=self._ven_id()), CanceledReport)
        for request_id in ids:
            self.requests.pop(request_id, None)
        return canceled.pending_reports
