"""ven.offered: the VEN's side of reports its VTN offers, without a network (the flow against our
VTN over mutual TLS is in tests/vtn/test_offered_flow.py)."""

from __future__ import annotations

from datetime import timedelta

from lxml import etree

from schemas import (
    Codec,
    CreatedReport,
    EiResponse,
    ReadingType,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportRequest,
    ReportSpecifier,
    ReportType,
    Response,
    SchemaSet,
    SpecifierPayload,
    UpdatedReport,
    UpdateReport,
    utc_now,
)
from tests.ven.scripts import registered
from ven import Connection, Hooks, VenClient, VenSettings

from .conftest import VEN_ID

SPEC = "pool-1:settlement"


def metadata() -> Report:
    return Report(report_request_id="0", report_specifier_id=SPEC, created_date_time=utc_now(),
                  report_name="x-SETTLEMENT", duration=timedelta(0), descriptions=(
                      ReportDescription(r_id="payment", report_type=ReportType.PRICE,
                                        reading_type=ReadingType.SUMMED),))


def request(request_id: str) -> ReportRequest:
    return ReportRequest(report_request_id=request_id, report_specifier=ReportSpecifier(
        report_specifier_id=SPEC, granularity=timedelta(0), report_back_duration=timedelta(0),
        specifier_payloads=(SpecifierPayload(r_id="payment", reading_type=ReadingType.SUMMED),)))


def data(*request_ids: str) -> UpdateReport:
    return UpdateReport(request_id="u1", ven_id=VEN_ID, reports=tuple(
        Report(report_request_id=r, report_specifier_id=SPEC, created_date_time=utc_now(),
               intervals=(ReportInterval(payloads=(ReportPayload(r_id="payment", value=1.0),)),))
        for r in request_ids))


async def _requested(ven: VenClient, request_id: str) -> None:
    """The VTN offers METADATA, the chooser requests it, the VTN confirms."""
    outcome = await ven.receive(RegisterReport(request_id="m1", ven_id=VEN_ID,
                                               reports=(metadata(),)))
    assert isinstance(outcome.reply, RegisteredReport)
    assert [r.report_request_id for r in outcome.reply.report_requests] == [request_id]
    assert ven.vtn.requests == {}  # not ours until the VTN confirms
    confirm = await ven.receive(CreatedReport(response=EiResponse(request_id="m1"),
                                              pending_reports=(request_id,), ven_id=VEN_ID))
    assert isinstance(confirm.reply, Response) and confirm.service == "EiReport"
    assert list(ven.vtn.requests) == [request_id]


async def test_async_handler_gets_the_data_and_stray_requests_are_cancelled() -> None:
    seen: list[str] = []

    async def on_data(report: Report) -> None:
        seen.append(report.report_request_id)

    async def choose(reports: tuple[Report, ...]) -> list[ReportRequest]:
        return [request("q1")]

    async with VenClient(VenSettings(
            ven_name="v", connection=Connection(vtn_url="https://127.0.0.1:9", ssl_context=None),
            hooks=Hooks(on_report_data=on_data, request_vtn_reports=choose))) as ven:
        registered(ven)
        await _requested(ven, "q1")
        outcome = await ven.receive(data("q1", "stray"))
    reply = outcome.reply
    assert isinstance(reply, UpdatedReport) and outcome.service == "EiReport"
    assert (reply.response.code, reply.response.request_id) == (200, "u1")
    assert seen == ["q1", "stray"]  # data is never dropped (e.g. a request made before a restart)
    assert reply.cancel_report is not None  # ...but the VTN is told to stop the stray request
    assert reply.cancel_report.report_request_ids == ("stray",)
    # one explicit schema check beside the codec's own
    SchemaSet().validate(etree.fromstring(Codec().encode(reply)))


async def test_a_failing_handler_answers_454() -> None:
    def on_data(report: Report) -> None:
        raise ValueError("statement for an unknown event")

    async with VenClient(VenSettings(
            ven_name="v", connection=Connection(vtn_url="https://127.0.0.1:9", ssl_context=None),
            hooks=Hooks(on_report_data=on_data,
                        request_vtn_reports=lambda reports: [request("q1")]))) as ven:
        registered(ven)
        await _requested(ven, "q1")
        outcome = await ven.receive(data("q1"))
    assert isinstance(outcome.reply, UpdatedReport)
    assert outcome.reply.response.code == 454
    assert outcome.reply.response.description == "statement for an unknown event"
    assert outcome.reply.cancel_report is None
