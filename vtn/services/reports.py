"""EiReport (OpenADR 2.0b profile 8.3): the VEN's METADATA, subscriptions, and received data.

The other direction, reports the VTN offers to VENs (their requests in oadrRegisteredReport,
oadrCreateReport, oadrCancelReport, and their oadrUpdatedReport answers), is
:mod:`vtn.services.offered`.

Invariants:
- A VEN's oadrRegisterReport replaces its whole set of registered reports (and the report requests
  that set supersedes are deleted, :mod:`vtn.storage.reports`).
- A document over the VTN's caps (:class:`vtn.limits.DocumentCaps`: METADATA reports and
  descriptions per oadrRegisterReport, points per oadrUpdateReport) is refused with 454 before
  anything is stored or any hook runs.
- Every reportRequestID the VTN hands out is stored (pending) before the message carrying it
  leaves, and becomes active on the VEN's oadrCreatedReport, or refused (with the VEN's code
  and reason) when that answer carries an error code.
- Data points are stored under their natural key, so a re-sent oadrUpdateReport stores nothing
  twice; the reply goes out after the batch committed. The venID-to-certificate check of an
  oadrUpdateReport (463 otherwise) runs inside that same transaction, before any point is written.
- TELEMETRY_STATUS points (oadrPayloadResourceStatus) are stored with no numeric value: the
  status is not a float. Their presence and time are kept, and the hook sees the whole report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from schemas import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    EiResponse,
    InvalidData,
    NotRegistered,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportRequest,
    ReportSpecifier,
    Response,
    SpecifierPayload,
    UpdatedReport,
    UpdateReport,
    new_id,
)
from schemas import ReportDescription as MessageDescription
from vtn.storage import ReportData, ReportDescription, ReportRequestStatus
from vtn.storage import ReportRequest as StoredRequest
from vtn.transport import Peer

from ._context import ServiceContext, require_ven
from .hooks import call_hook

_R = TypeVar("_R", covariant=True)


class RequestRecordType(Protocol[_R]):
    """A storage record class that keeps a report request's fields (see :func:`request_record`)."""

    def __call__(self, *, ven_id: str, report_request_id: str, report_specifier_id: str,
                 r_ids: tuple[str, ...], granularity: timedelta | None,
                 report_back_duration: timedelta | None, starts_at: datetime | None,
                 ends_at: datetime | None, created_at: datetime) -> _R: ...

__all__ = [
    "RequestRecordType",
    "cancel_subscription",
    "on_canceled_report",
    "on_created_report",
    "on_register_report",
    "on_update_report",
    "request_record",
    "subscribe",
]


def _data_name(report: Report) -> str:
    name = str(report.report_name or "")
    return name.removeprefix("METADATA_")


def _granularity(ctx: ServiceContext, descriptions: Iterable[MessageDescription]) -> timedelta:
    rates = [d.sampling_rate.min_period for d in descriptions if d.sampling_rate is not None]
    return max(rates) if rates else ctx.default_granularity


def default_requests(ctx: ServiceContext, reports: Iterable[Report]) -> tuple[ReportRequest, ...]:
    """One request per METADATA report whose data name is in ``ctx.auto_subscribe``."""
    requests = []
    for report in reports:
        if _data_name(report) not in ctx.auto_subscribe or not report.descriptions:
            continue
        granularity = _granularity(ctx, report.descriptions)
        requests.append(ReportRequest(
            report_request_id=new_id(),
            report_specifier=ReportSpecifier(
                report_specifier_id=report.report_specifier_id,
                granularity=granularity,
                report_back_duration=granularity,
                specifier_payloads=tuple(
                    SpecifierPayload(r_id=d.r_id, reading_type=d.reading_type)
                    for d in report.descriptions),
            ),
        ))
    return tuple(requests)


def request_record(make: RequestRecordType[_R], ven_id: str, request: ReportRequest,
                   now: datetime) -> _R:
    """A wire oadrReportRequest as a storage record made by ``make``: the VTN's own requests
    (:class:`vtn.storage.ReportRequest`) and VENs' requests for the reports the VTN offers
    (:class:`vtn.storage.OfferedRequest`) keep the same fields."""
    spec = request.report_specifier
    period = spec.report_interval
    return make(
        ven_id=ven_id, report_request_id=request.report_request_id,
        report_specifier_id=spec.report_specifier_id,
        r_ids=tuple(p.r_id for p in spec.specifier_payloads),
        granularity=spec.granularity, report_back_duration=spec.report_back_duration,
        starts_at=period.dtstart if period else None,
        ends_at=period.dtstart + period.duration if period and period.duration else None,
        created_at=now)


async def on_register_report(ctx: ServiceContext, peer: Peer,
                             msg: RegisterReport) -> RegisteredReport:
    """oadrRegisterReport: store the METADATA and the subscriptions policy chooses (one
    transaction, after the policy hook: a hook that refuses leaves nothing stored), answer
    with those subscriptions."""
    caps = ctx.caps
    _check_cap("METADATA reports", len(msg.reports), caps.max_metadata_reports)
    _check_cap("report descriptions", sum(len(r.descriptions) for r in msg.reports),
               caps.max_report_descriptions)
    registration = await require_ven(ctx, peer, msg.ven_id)
    ven_id = registration.ven_id
    chosen = await call_hook(ctx.handlers.report_subscriptions, ven_id, msg.reports)
    requests = default_requests(ctx, msg.reports) if chosen is None else tuple(chosen)
    now = ctx.clock()
    await ctx.storage.reports.register_reports(ven_id, [
        ReportDescription(
            ven_id=ven_id, report_specifier_id=r.report_specifier_id,
            report_name=str(r.report_name or ""), r_ids=tuple(d.r_id for d in r.descriptions),
            payload=ctx.encode_for_queue(RegisterReport(request_id="", reports=(r,))),
            registered_at=now)
        for r in msg.reports
    ], [request_record(StoredRequest, ven_id, request, now) for request in requests])
    return RegisteredReport(response=EiResponse(request_id=msg.request_id),
                            report_requests=requests, ven_id=ven_id)


async def on_created_report(ctx: ServiceContext, peer: Peer, msg: CreatedReport) -> Response:
    """oadrCreatedReport: the VEN accepted our requests, and those still pending become active;
    or it refused the oadrCreateReport its requestID names, and that request is ``refused``."""
    registration = await require_ven(ctx, peer, msg.ven_id)
    if msg.response.ok:
        for request_id in msg.pending_reports:
            await ctx.storage.reports.set_request_status(
                registration.ven_id, request_id, ReportRequestStatus.ACTIVE, at=ctx.clock())
    else:  # subscribe() gave the oadrCreateReport its request's reportRequestID as requestID
        await ctx.storage.reports.refuse_request(
            registration.ven_id, msg.response.request_id, code=msg.response.code,
            reason=msg.response.description)
    return Response(response=EiResponse(request_id=msg.response.request_id),
                    ven_id=registration.ven_id)


def _check_cap(what: str, count: int, cap: int) -> None:
    if count > cap:
        raise InvalidData(f"{count} {what} in one document, over the VTN's cap of {cap}")


def _report_data(ven_id: str, report: Report, received_at: datetime) -> ReportData:
    report_start = report.dtstart or report.created_date_time
    rows = []
    for interval in report.intervals:
        dtstart, duration = interval.dtstart or report_start, interval.duration
        for payload in interval.payloads:
            value, quality = payload.value, payload.data_quality
            rows.append((payload.r_id, dtstart, duration,
                         float(value) if isinstance(value, (float, int)) else None,
                         payload.confidence, payload.accuracy,
                         None if quality is None else str(quality)))
    return ReportData(ven_id=ven_id, report_request_id=report.report_request_id,
                      report_specifier_id=report.report_specifier_id, received_at=received_at,
                      rows=tuple(rows))


async def on_update_report(ctx: ServiceContext, peer: Peer, msg: UpdateReport) -> UpdatedReport:
    """oadrUpdateReport: store every point in one batch; tell the VEN which requests are gone."""
    _check_cap("report points", sum(len(i.payloads) for r in msg.reports for i in r.intervals),
               ctx.caps.max_report_points)
    now = ctx.clock()
    # Without a venID (rare) the points need the registration's before anything is stored.
    ven_id = (msg.ven_id if msg.ven_id is not None
              else (await require_ven(ctx, peer, None)).ven_id)
    data = [_report_data(ven_id, report, now) for report in msg.reports]
    # One transaction (one round trip): the check that the certificate is ven_id's active
    # registration (require_ven's, refused with 463 before anything is written), the points,
    # and which of the reports' requests are cancelled.
    stored = await ctx.storage.reports.store_update(
        ven_id, data, (r.report_request_id for r in msg.reports), fingerprint=peer.fingerprint)
    if stored is None:
        await require_ven(ctx, peer, ven_id)  # raises the precise NotRegistered
        raise NotRegistered("this certificate has no active registration")
    for report in msg.reports:
        await call_hook(ctx.handlers.on_report_data, ven_id, report)
    cancelled = stored[1]
    cancel = (CancelReport(request_id=new_id(), report_request_ids=cancelled,
                           ven_id=ven_id) if cancelled else None)
    return UpdatedReport(response=EiResponse(request_id=msg.request_id), cancel_report=cancel,
                         ven_id=ven_id)


async def on_canceled_report(ctx: ServiceContext, peer: Peer, msg: CanceledReport) -> Response:
    """oadrCanceledReport: the VEN confirms our cancel."""
    registration = await require_ven(ctx, peer, msg.ven_id)
    return Response(response=EiResponse(request_id=msg.response.request_id),
                    ven_id=registration.ven_id)


async def subscribe(ctx: ServiceContext, ven_id: str, request: ReportRequest) -> None:
    """Queue oadrCreateReport with ``request`` for the VEN (stored pending first). Its requestID
    is the reportRequestID, so a refusal (oadrCreatedReport echoing it) names the request."""
    await ctx.storage.reports.put_request(request_record(StoredRequest, ven_id, request,
                                                         ctx.clock()))
    await ctx.enqueue((ven_id,), CreateReport(request_id=request.report_request_id,
                                              report_requests=(request,), ven_id=ven_id))


async def cancel_subscription(ctx: ServiceContext, ven_id: str, report_request_id: str) -> bool:
    """Mark the request cancelled and queue oadrCancelReport; False if unknown."""
    changed = await ctx.storage.reports.set_request_status(
        ven_id, report_request_id, ReportRequestStatus.CANCELLED, at=ctx.clock())
    if changed:
        await ctx.enqueue((ven_id,), CancelReport(
            request_id=new_id(), report_request_ids=(report_request_id,), ven_id=ven_id))
    return changed
