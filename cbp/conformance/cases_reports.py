"""R1 cases: EiReport, the harness playing the VEN (profile 8.3).

The harness VEN offers two METADATA reports, TELEMETRY_USAGE (one power data point) and
TELEMETRY_STATUS (one resource status), the two the profile requires of a 2.0b VEN; the operator
requests and cancels reports over them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

from schemas import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    EiResponse,
    ItemBase,
    ItemKind,
    ReadingType,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportRequest,
    ReportType,
    ResourceStatus,
    Response,
    SamplingRate,
    SiScale,
    Target,
    UpdatedReport,
    UpdateReport,
    new_id,
)

from ._checks import ok, require
from ._model import Case
from .operators import StepKind
from .session import HarnessVen

__all__ = ["REPORT_CASES"]

_SECTION: Final = "OpenADR 2.0b profile 8.3 (EiReport)"
USAGE: Final = ("CF-TELEMETRY-USAGE", "cf-power")
STATUS: Final = ("CF-TELEMETRY-STATUS", "cf-status")
_MINUTE: Final = timedelta(minutes=1)


def _metadata(ven: HarnessVen) -> tuple[Report, ...]:
    now = ven.clock()
    source = Target(resource_ids=("cf-resource-1",))
    rate = SamplingRate(min_period=_MINUTE, max_period=_MINUTE)
    usage = ReportDescription(
        r_id=USAGE[1], report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
        report_data_source=source, sampling_rate=rate,
        item_base=ItemBase.of(ItemKind.POWER_REAL, scale=SiScale.KILO))
    status = ReportDescription(
        r_id=STATUS[1], report_type=ReportType.X_RESOURCE_STATUS,
        reading_type=ReadingType.X_NOT_APPLICABLE, report_data_source=source, sampling_rate=rate)
    return (
        Report(report_request_id="0", report_specifier_id=USAGE[0], created_date_time=now,
               report_name=ReportName.METADATA_TELEMETRY_USAGE, duration=timedelta(hours=24),
               descriptions=(usage,)),
        Report(report_request_id="0", report_specifier_id=STATUS[0], created_date_time=now,
               report_name=ReportName.METADATA_TELEMETRY_STATUS, duration=timedelta(hours=24),
               descriptions=(status,)),
    )


async def _register_metadata(ven: HarnessVen) -> RegisteredReport:
    """Offer the two METADATA reports; accept any requests the answer carries; settle."""
    await ven.ensure_registered()
    registered = ok(await ven.send("EiReport", RegisterReport(
        request_id=new_id(), reports=_metadata(ven), ven_id=ven.ven_id)), RegisteredReport)
    if registered.report_requests:
        ok(await ven.send("EiReport", CreatedReport(
            response=EiResponse(request_id=registered.response.request_id), ven_id=ven.ven_id,
            pending_reports=tuple(r.report_request_id for r in registered.report_requests))),
           Response)
    await ven.settle()
    return registered


async def _requested(ven: HarnessVen, which: tuple[str, str], reading: str) -> ReportRequest:
    """Have the operator request report ``which``; wait for it; answer oadrCreatedReport."""
    await _register_metadata(ven)
    specifier, r_id = which
    await ven.operate(StepKind.REQUEST_REPORT, report_specifier_id=specifier, r_ids=[r_id],
                      granularity_s=60, report_back_duration_s=60, reading_type=reading)

    def asks(create: CreateReport) -> bool:
        return any(r.report_specifier.report_specifier_id == specifier
                   for r in create.report_requests)

    create = await ven.wait_for(CreateReport, f"oadrCreateReport for {specifier}", asks)
    request = next(r for r in create.report_requests
                   if r.report_specifier.report_specifier_id == specifier)
    spec = request.report_specifier
    require(spec.granularity == _MINUTE, f"granularity {spec.granularity}, not 1 minute")
    require([p.r_id for p in spec.specifier_payloads] == [r_id],
            f"rIDs {[p.r_id for p in spec.specifier_payloads]}, not [{r_id!r}]")
    ok(await ven.send("EiReport", CreatedReport(
        response=EiResponse(request_id=create.request_id), ven_id=ven.ven_id,
        pending_reports=(request.report_request_id,))), Response)
    return request


def _data(ven: HarnessVen, request: ReportRequest, name: ReportName,
          value: float | ResourceStatus) -> UpdateReport:
    now = ven.clock().replace(microsecond=0)
    spec = request.report_specifier
    interval = ReportInterval(dtstart=now - _MINUTE, duration=_MINUTE, payloads=(
        ReportPayload(r_id=spec.specifier_payloads[0].r_id, value=value),))
    return UpdateReport(request_id=new_id(), ven_id=ven.ven_id, reports=(Report(
        report_request_id=request.report_request_id,
        report_specifier_id=spec.report_specifier_id, created_date_time=now, report_name=name,
        dtstart=now - _MINUTE, duration=_MINUTE, intervals=(interval,)),))


async def _register(ven: HarnessVen) -> str:
    registered = await _register_metadata(ven)
    return (f"TELEMETRY_USAGE and TELEMETRY_STATUS registered; the VTN requested "
            f"{len(registered.report_requests)} report(s) in its answer")


async def _vtn_metadata(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    seen = [e.received for e in ven.history if isinstance(e.received, RegisterReport)]
    require(seen, "the VTN never sent its oadrRegisterReport after the registration")
    return f"the VTN offered its METADATA ({len(seen[0].reports)} report(s))"


async def _request_usage(ven: HarnessVen) -> str:
    request = await _requested(ven, USAGE, ReadingType.DIRECT_READ.value)
    return f"oadrCreateReport {request.report_request_id!r} for TELEMETRY_USAGE, 1 min"


async def _update_usage(ven: HarnessVen) -> str:
    request = await _requested(ven, USAGE, ReadingType.DIRECT_READ.value)
    reply = ok(await ven.send("EiReport", _data(ven, request, ReportName.TELEMETRY_USAGE, 1.5)),
               UpdatedReport)
    require(reply.cancel_report is None, "the VTN cancelled the report in its answer")
    return f"oadrUpdateReport for {request.report_request_id!r} answered 200"


async def _update_status(ven: HarnessVen) -> str:
    request = await _requested(ven, STATUS, ReadingType.X_NOT_APPLICABLE.value)
    status = ResourceStatus(online=True, manual_override=False)
    ok(await ven.send("EiReport", _data(ven, request, ReportName.TELEMETRY_STATUS, status)),
       UpdatedReport)
    return f"TELEMETRY_STATUS for {request.report_request_id!r} answered 200"


async def _cancel(ven: HarnessVen) -> str:
    request = await _requested(ven, USAGE, ReadingType.DIRECT_READ.value)
    rrid = request.report_request_id
    await ven.operate(StepKind.CANCEL_REPORT, report_request_id=rrid)
    cancel = await ven.wait_for(CancelReport, f"oadrCancelReport for {rrid!r}",
                                lambda c: rrid in c.report_request_ids)
    ok(await ven.send("EiReport", CanceledReport(
        response=EiResponse(request_id=cancel.request_id), ven_id=ven.ven_id)), Response)
    return f"oadrCancelReport for {rrid!r} arrived by poll; oadrCanceledReport accepted"


def _case(number: str, purpose: str, requirement: str, messages: tuple[str, ...],
          run: Callable[[HarnessVen], Awaitable[str]]) -> Case[HarnessVen]:
    return Case(case_id=f"R1_{number}_TH_VEN", purpose=purpose,
                requirement=f"{_SECTION}: {requirement}", messages=messages, run=run)


_REQUEST: Final = ("operator: request report", "> oadrPoll", "< oadrCreateReport",
                   "> oadrCreatedReport", "< oadrResponse")
REPORT_CASES: Final = (
    _case("3010", "register METADATA with TELEMETRY_USAGE and TELEMETRY_STATUS",
          "oadrRegisterReport (reportRequestID 0) is answered oadrRegisteredReport 200",
          ("> oadrRegisterReport", "< oadrRegisteredReport"), _register),
    _case("3020", "the VTN offers its own METADATA after registration",
          "after a registration both parties send oadrRegisterReport, the VTN's too",
          ("> oadrPoll", "< oadrRegisterReport", "> oadrRegisteredReport"), _vtn_metadata),
    _case("3030", "the VTN requests TELEMETRY_USAGE (operator)",
          "oadrCreateReport reaches a pull VEN by poll with the requested rID and granularity",
          _REQUEST, _request_usage),
    _case("3040", "report data: oadrUpdateReport with TELEMETRY_USAGE",
          "oadrUpdateReport for a requested report is answered oadrUpdatedReport 200",
          (*_REQUEST, "> oadrUpdateReport", "< oadrUpdatedReport"), _update_usage),
    _case("3050", "report data: TELEMETRY_STATUS with oadrPayloadResourceStatus",
          "a TELEMETRY_STATUS report carries resource status payloads; answered 200",
          (*_REQUEST, "> oadrUpdateReport", "< oadrUpdatedReport"), _update_status),
    _case("3060", "the VTN cancels a report (operator)",
          "oadrCancelReport reaches a pull VEN by poll; oadrCanceledReport is accepted",
          (*_REQUEST, "operator: cancel report", "> oadrPoll", "< oadrCancelReport",
           "> oadrCanceledReport", "< oadrResponse"), _cancel),
)
