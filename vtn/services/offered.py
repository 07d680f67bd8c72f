"""EiReport with the VTN as the reporting party (OpenADR 2.0b profile 8.3, either direction).

The VTN offers reports to a VEN in an oadrRegisterReport of its own (:func:`offer_reports`); the
VEN asks for them in its oadrRegisteredReport (acknowledged with an oadrCreatedReport the VTN
queues) or later in an oadrCreateReport (answered with oadrCreatedReport); the VTN sends data as
oadrUpdateReport (:func:`send_report_data`, queued: the answer to the VEN's next poll, or pushed),
which the VEN answers with oadrUpdatedReport; the VEN stops a report with oadrCancelReport.

Invariants:
- Every handler binds the payload's venID to the peer's certificate first (463 otherwise).
- A VEN's requests are stored all or none, and only for reports offered to that VEN with rIDs of
  them (461, report not supported, otherwise); they are committed before the acknowledgement.
- Data goes out only for a request live when it is queued (active, before its end), of the report
  requested: the check and the record of the send are one transaction. The record is written
  before the message is queued, so a send with no answer shows as unanswered rather than
  vanishing; a requestID recorded before queues nothing again.
- An oadrUpdatedReport is recorded on the send it answers; one carrying an oadrCancelReport
  cancels those requests as an oadrCancelReport would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from schemas import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    EiResponse,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportInterval,
    ReportName,
    ReportNotSupported,
    ReportRequest,
    Response,
    UpdatedReport,
    UpdateReport,
    new_id,
)
from vtn.storage import OfferedReport, OfferedRequest
from vtn.transport import Peer

from ._context import ServiceContext, require_ven
from .reports import request_record

__all__ = [
    "live_requests",
    "offer_reports",
    "on_cancel_report",
    "on_create_report",
    "on_registered_report",
    "on_updated_report",
    "send_report",
    "send_report_data",
]

_METADATA_PREFIX = "METADATA_"


async def offer_reports(ctx: ServiceContext, ven_id: str, reports: Sequence[Report]) -> str:
    """Offer ``reports`` (METADATA: descriptions, no intervals) to the VEN, replacing what it was
    offered before, and queue the oadrRegisterReport carrying them; returns its requestID."""
    now = ctx.clock()
    await ctx.storage.offered.offer(ven_id, [
        OfferedReport(ven_id=ven_id, report_specifier_id=r.report_specifier_id,
                      report_name=str(r.report_name or ""),
                      r_ids=tuple(d.r_id for d in r.descriptions),
                      payload=ctx.encode_for_queue(RegisterReport(request_id="", reports=(r,))),
                      offered_at=now)
        for r in reports
    ])
    request_id = new_id()
    await ctx.enqueue((ven_id,), RegisterReport(request_id=request_id, reports=tuple(reports),
                                                ven_id=ven_id))
    return request_id


async def live_requests(ctx: ServiceContext, ven_id: str, *,
                        report_specifier_id: str | None = None) -> tuple[OfferedRequest, ...]:
    """The VEN's live requests for offered reports (of one report when given), oldest first."""
    found = await ctx.storage.offered.requests(ven_id, live_at=ctx.clock())
    return tuple(r for r in found
                 if report_specifier_id is None or r.report_specifier_id == report_specifier_id)


async def _accept(ctx: ServiceContext, ven_id: str,
                  requests: Iterable[ReportRequest]) -> tuple[str, ...]:
    """Store the requests (all or none, 461 if one names what was not offered); the VEN's live
    reportRequestIDs afterwards (oadrCreatedReport's pendingReports)."""
    now = ctx.clock()
    unmatched = await ctx.storage.offered.accept(
        ven_id, [request_record(OfferedRequest, ven_id, r, now) for r in requests])
    if unmatched:
        raise ReportNotSupported(
            f"reportRequestID {unmatched[0]!r} names a report or rID this VTN did not offer")
    return tuple(r.report_request_id for r in await live_requests(ctx, ven_id))


async def on_registered_report(ctx: ServiceContext, peer: Peer,
                               msg: RegisteredReport) -> Response:
    """oadrRegisteredReport: the VEN's answer to our METADATA; requests it carries are stored
    and confirmed with an oadrCreatedReport queued for the VEN."""
    ven_id = (await require_ven(ctx, peer, msg.ven_id)).ven_id
    if msg.report_requests:
        pending = await _accept(ctx, ven_id, msg.report_requests)
        await ctx.enqueue((ven_id,), CreatedReport(
            response=EiResponse(request_id=msg.response.request_id), pending_reports=pending,
            ven_id=ven_id))
    return Response(response=EiResponse(request_id=msg.response.request_id), ven_id=ven_id)


async def on_create_report(ctx: ServiceContext, peer: Peer, msg: CreateReport) -> CreatedReport:
    """oadrCreateReport from a VEN: requests for reports this VTN offered to it."""
    ven_id = (await require_ven(ctx, peer, msg.ven_id)).ven_id
    pending = await _accept(ctx, ven_id, msg.report_requests)
    return CreatedReport(response=EiResponse(request_id=msg.request_id), pending_reports=pending,
                         ven_id=ven_id)


async def on_cancel_report(ctx: ServiceContext, peer: Peer, msg: CancelReport) -> CanceledReport:
    """oadrCancelReport from a VEN: its requests stop (re-sending the cancel is harmless)."""
    ven_id = (await require_ven(ctx, peer, msg.ven_id)).ven_id
    await ctx.storage.offered.cancel(ven_id, msg.report_request_ids, at=ctx.clock())
    pending = tuple(r.report_request_id for r in await live_requests(ctx, ven_id))
    return CanceledReport(response=EiResponse(request_id=msg.request_id),
                          pending_reports=pending, ven_id=ven_id)


async def on_updated_report(ctx: ServiceContext, peer: Peer, msg: UpdatedReport) -> Response:
    """oadrUpdatedReport: the VEN's answer to data we sent; recorded on that send."""
    ven_id = (await require_ven(ctx, peer, msg.ven_id)).ven_id
    now = ctx.clock()
    await ctx.storage.offered.record_answer(ven_id, msg.response.request_id, msg.response.code,
                                            at=now)
    if msg.cancel_report is not None:
        await ctx.storage.offered.cancel(ven_id, msg.cancel_report.report_request_ids, at=now)
    return Response(response=EiResponse(request_id=msg.response.request_id), ven_id=ven_id)


def _data_name(metadata_name: str) -> ReportName | str:
    plain = metadata_name.removeprefix(_METADATA_PREFIX)
    return ReportName(plain) if plain in ReportName._value2member_map_ else plain


async def _live_request(ctx: ServiceContext, ven_id: str,
                        report_request_id: str) -> OfferedRequest:
    for request in await live_requests(ctx, ven_id):
        if request.report_request_id == report_request_id:
            return request
    raise LookupError(f"VEN {ven_id!r} has no live request {report_request_id!r}")


async def send_report(ctx: ServiceContext, ven_id: str, report: Report, *,
                      request_id: str | None = None) -> str | None:
    """Queue an oadrUpdateReport carrying ``report`` (data for the VEN's live request named by its
    reportRequestID, of the report it requested) for the VEN; returns the oadrUpdateReport's
    requestID, which the VEN's oadrUpdatedReport echoes.

    A ``request_id`` the application chooses makes this idempotent: if a send under it was
    recorded before, nothing is queued and the result is None. LookupError when the request is
    unknown, cancelled or over; ValueError when ``report`` is of another report than requested.
    """
    request = await _live_request(ctx, ven_id, report.report_request_id)
    if report.report_specifier_id != request.report_specifier_id:
        raise ValueError(f"request {request.report_request_id!r} is for report "
                         f"{request.report_specifier_id!r}, not {report.report_specifier_id!r}")
    request_id = request_id or new_id()
    # checked again with the record, in one transaction: a cancel in between wins
    recorded = await ctx.storage.offered.record_send(ven_id, report.report_request_id,
                                                     request_id, at=ctx.clock())
    if recorded is None:
        raise LookupError(f"VEN {ven_id!r} has no live request {report.report_request_id!r}")
    if not recorded[1]:
        return None
    await ctx.enqueue((ven_id,), UpdateReport(request_id=request_id, reports=(report,),
                                              ven_id=ven_id))
    return request_id


async def send_report_data(
    ctx: ServiceContext, ven_id: str, report_request_id: str,
    intervals: Sequence[ReportInterval], *, dtstart: datetime | None = None,
    duration: timedelta | None = None, report_id: str | None = None,
    request_id: str | None = None,
) -> str | None:
    """:func:`send_report` of ``intervals`` for the live request ``report_request_id``: the
    report's reportSpecifierID is the requested one's, its name the offered one's data name."""
    request = await _live_request(ctx, ven_id, report_request_id)
    names = {o.report_specifier_id: o.report_name
             for o in await ctx.storage.offered.offers(ven_id)}
    name = names.get(request.report_specifier_id)
    report = Report(
        report_request_id=report_request_id, report_specifier_id=request.report_specifier_id,
        created_date_time=ctx.clock(), report_id=report_id,
        report_name=None if name is None else _data_name(name),
        dtstart=dtstart, duration=duration, intervals=tuple(intervals))
    return await send_report(ctx, ven_id, report, request_id=request_id)
