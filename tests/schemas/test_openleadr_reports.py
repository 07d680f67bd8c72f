"""Interop with an independent implementation: openleadr's EiReport messages, both directions.

openleadr -> crowdflex: every report payload openleadr's ``create_message`` builds decodes with our
codec (XSD-validated) into the values it was given; IDs such as ``000123`` stay strings with us.
crowdflex -> openleadr: our oadrUpdateReport and oadrRegisterReport parse with openleadr's
``parse_message`` into the same values. openleadr's reader turns digit-only text into ints, so that
direction uses IDs openleadr keeps as text.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import objects
from openleadr.messaging import create_message, parse_message

import schemas
from schemas import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    EiResponse,
    ReadingType,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportType,
    SamplingRate,
    Target,
    UpdatedReport,
    UpdateReport,
)
from schemas.units import ItemBase, ItemKind, SiScale

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
SAMPLE = timedelta(seconds=4)


def _from_openleadr(message_type: str, **payload: Any) -> schemas.Message:
    wire = create_message(message_type, **payload).encode()
    return schemas.decode(wire)


def _ol_response(request_id: str) -> dict[str, Any]:
    return {"response_code": 200, "response_description": "OK", "request_id": request_id}


def _ol_report_request(report_request_id: str) -> dict[str, Any]:
    return asdict(objects.ReportRequest(
        report_request_id=report_request_id,
        report_specifier=objects.ReportSpecifier(
            report_specifier_id="000077",
            granularity=SAMPLE,
            report_back_duration=timedelta(minutes=1),
            report_interval=objects.Interval(dtstart=T0, duration=timedelta(hours=1),
                                             signal_payload=0.0),
            specifier_payloads=[
                objects.SpecifierPayload(r_id="000001", reading_type="Direct Read"),
                objects.SpecifierPayload(r_id="status-1", reading_type="x-notApplicable"),
            ],
        ),
    ))


def _assert_report_request(got: schemas.ReportRequest, report_request_id: str) -> None:
    assert got.report_request_id == report_request_id
    spec = got.report_specifier
    assert spec.report_specifier_id == "000077"
    assert (spec.granularity, spec.report_back_duration) == (SAMPLE, timedelta(minutes=1))
    assert spec.report_interval is not None
    assert (spec.report_interval.dtstart, spec.report_interval.duration) == (
        T0, timedelta(hours=1)
    )
    assert [(p.r_id, p.reading_type) for p in spec.specifier_payloads] == [
        ("000001", ReadingType.DIRECT_READ), ("status-1", ReadingType.X_NOT_APPLICABLE)
    ]


# ---------------------------------------------------------------- openleadr -> crowdflex


def test_openleadr_register_report_decodes_with_descriptions() -> None:
    usage = objects.ReportDescription(
        r_id="000001", market_context="https://tso.example/afrr", reading_type="Direct Read",
        report_subject=None, report_data_source=objects.Target(resource_id="000009"),
        report_type="usage",
        sampling_rate=objects.SamplingRate(min_period=SAMPLE, max_period=timedelta(minutes=1),
                                           on_change=False),
        measurement=objects.Measurement(name="powerReal", description="RealPower", unit="W",
                                        scale="k", power_attributes=objects.PowerAttributes()),
    )
    report = objects.Report(
        report_specifier_id="000077", report_name="METADATA_TELEMETRY_USAGE",
        report_descriptions=[usage], created_date_time=T0, duration=timedelta(hours=1),
    )
    message = _from_openleadr("oadrRegisterReport", request_id="000123",
                              reports=[asdict(report)], ven_id="000042")
    assert isinstance(message, RegisterReport)
    assert (message.request_id, message.ven_id) == ("000123", "000042")
    got = message.reports[0]
    assert got.report_name is ReportName.METADATA_TELEMETRY_USAGE
    assert (got.report_specifier_id, got.report_request_id) == ("000077", "0")
    assert (got.created_date_time, got.duration) == (T0, timedelta(hours=1))
    description = got.descriptions[0]
    assert description.r_id == "000001"
    assert description.report_type is ReportType.USAGE
    assert description.reading_type is ReadingType.DIRECT_READ
    assert description.report_data_source == Target(resource_ids=("000009",))
    assert description.market_context == "https://tso.example/afrr"
    assert description.sampling_rate == SamplingRate(
        min_period=SAMPLE, max_period=timedelta(minutes=1), on_change=False
    )
    assert description.item_base is not None
    assert description.item_base.kind is ItemKind.POWER_REAL
    assert (description.item_base.units, description.item_base.scale) == ("W", SiScale.KILO)


def test_openleadr_registered_report_decodes_with_requests() -> None:
    message = _from_openleadr("oadrRegisteredReport", response=_ol_response("000123"),
                              report_requests=[_ol_report_request("000555")], ven_id="000042")
    assert isinstance(message, RegisteredReport)
    assert message.response == EiResponse(code=200, description="OK", request_id="000123")
    assert message.ven_id == "000042"
    _assert_report_request(message.report_requests[0], "000555")


def test_openleadr_create_report_decodes() -> None:
    message = _from_openleadr("oadrCreateReport", request_id="000124",
                              report_requests=[_ol_report_request("000556")], ven_id="000042")
    assert isinstance(message, CreateReport)
    assert (message.request_id, message.ven_id) == ("000124", "000042")
    _assert_report_request(message.report_requests[0], "000556")


def test_openleadr_created_report_decodes_pending_reports() -> None:
    message = _from_openleadr(
        "oadrCreatedReport", response=_ol_response("000124"), ven_id="000042",
        pending_reports=[{"report_request_id": "000556"}, {"report_request_id": "rr-2"}],
    )
    assert isinstance(message, CreatedReport)
    assert message.pending_reports == ("000556", "rr-2")
    assert message.response.request_id == "000124"


def _ol_update(report_name: str, specifier: str, values: list[float]) -> dict[str, Any]:
    return asdict(objects.Report(
        report_specifier_id=specifier, report_name=report_name, report_request_id="000556",
        created_date_time=T0, dtstart=T0, duration=SAMPLE * len(values),
        intervals=[
            objects.ReportInterval(
                dtstart=T0 + i * SAMPLE, duration=SAMPLE,
                report_payload=objects.ReportPayload(r_id="000001", value=v, confidence=95,
                                                     accuracy=0.5),
            )
            for i, v in enumerate(values)
        ],
    ))


def test_openleadr_update_report_decodes_usage_and_status_data() -> None:
    usage = _ol_update("TELEMETRY_USAGE", "000077", [1.25, -0.5, 3.0])
    status = _ol_update("TELEMETRY_STATUS", "000078", [1.0])
    message = _from_openleadr("oadrUpdateReport", request_id="000125", reports=[usage, status],
                              ven_id="000042")
    assert isinstance(message, UpdateReport)
    assert (message.request_id, message.ven_id) == ("000125", "000042")
    got_usage, got_status = message.reports
    assert got_usage.report_name is ReportName.TELEMETRY_USAGE
    assert got_status.report_name is ReportName.TELEMETRY_STATUS
    assert (got_usage.report_request_id, got_usage.report_specifier_id) == ("000556", "000077")
    assert got_usage.dtstart == T0  # openleadr's template writes no report-level duration
    assert got_usage.duration is None
    assert [i.dtstart for i in got_usage.intervals] == [T0, T0 + SAMPLE, T0 + 2 * SAMPLE]
    assert all(i.duration == SAMPLE for i in got_usage.intervals)
    payloads = [i.payloads[0] for i in got_usage.intervals]
    assert [p.value for p in payloads] == [1.25, -0.5, 3.0]
    assert {(p.r_id, p.confidence, p.accuracy) for p in payloads} == {("000001", 95, 0.5)}
    assert got_status.intervals[0].payloads[0].value == 1.0


def test_openleadr_updated_report_decodes_with_cancel() -> None:
    message = _from_openleadr(
        "oadrUpdatedReport", response=_ol_response("000125"), ven_id="000042",
        cancel_report={"request_id": "000126", "report_request_id": ["000556", "000557"],
                       "report_to_follow": True, "ven_id": "000042"},
    )
    assert isinstance(message, UpdatedReport)
    assert message.response.request_id == "000125"
    assert message.cancel_report == CancelReport(
        request_id="000126", report_request_ids=("000556", "000557"), report_to_follow=True,
        ven_id="000042",
    )


def test_openleadr_cancel_report_decodes() -> None:
    message = _from_openleadr("oadrCancelReport", request_id="000127",
                              report_request_id="000556", report_to_follow=False,
                              ven_id="000042")
    assert message == CancelReport(request_id="000127", report_request_ids=("000556",),
                                   report_to_follow=False, ven_id="000042")


def test_openleadr_canceled_report_decodes() -> None:
    message = _from_openleadr("oadrCanceledReport", response=_ol_response("000127"),
                              pending_reports=[{"report_request_id": "000557"}],
                              ven_id="000042")
    assert isinstance(message, CanceledReport)
    assert message.pending_reports == ("000557",)
    assert (message.response.code, message.ven_id) == (200, "000042")


# ---------------------------------------------------------------- crowdflex -> openleadr


def test_our_update_report_parses_in_openleadr() -> None:
    intervals = tuple(
        ReportInterval(dtstart=T0 + i * SAMPLE, duration=SAMPLE, payloads=(
            ReportPayload(r_id="psn1_abc", value=v, confidence=90, accuracy=0.25),
        ))
        for i, v in enumerate([0.5, 1.75])
    )
    ours = UpdateReport(request_id="req-a", ven_id="ven-a", reports=(Report(
        report_request_id="rr-a", report_specifier_id="spec-a", report_id="rep-a",
        report_name=ReportName.TELEMETRY_USAGE, created_date_time=T0, dtstart=T0,
        duration=2 * SAMPLE, intervals=intervals,
    ),))
    kind, payload = parse_message(schemas.encode(ours))
    assert kind == "oadrUpdateReport"
    assert (payload["request_id"], payload["ven_id"]) == ("req-a", "ven-a")
    report = payload["reports"][0]
    assert (report["report_request_id"], report["report_specifier_id"]) == ("rr-a", "spec-a")
    assert (report["report_id"], report["report_name"]) == ("rep-a", "TELEMETRY_USAGE")
    assert (report["dtstart"], report["duration"], report["created_date_time"]) == (
        T0, 2 * SAMPLE, T0
    )
    assert [(i["dtstart"], i["duration"]) for i in report["intervals"]] == [
        (T0, SAMPLE), (T0 + SAMPLE, SAMPLE)
    ]
    assert [i["report_payload"] for i in report["intervals"]] == [
        {"r_id": "psn1_abc", "value": 0.5, "confidence": 90, "accuracy": 0.25},
        {"r_id": "psn1_abc", "value": 1.75, "confidence": 90, "accuracy": 0.25},
    ]


def test_our_register_report_parses_in_openleadr() -> None:
    description = ReportDescription(
        r_id="psn1_abc", report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
        report_data_source=Target(resource_ids=("psn1_abc",)), item_base=ItemBase.megawatts(),
        market_context="https://tso.example/afrr",
        sampling_rate=SamplingRate(min_period=SAMPLE, max_period=timedelta(minutes=1)),
    )
    ours = RegisterReport(request_id="req-b", ven_id="ven-a", reports=(Report(
        report_request_id="rr-0", report_specifier_id="spec-a", created_date_time=T0,
        report_name=ReportName.METADATA_TELEMETRY_USAGE, duration=timedelta(hours=1),
        descriptions=(description,),
    ),))
    kind, payload = parse_message(schemas.encode(ours))
    assert kind == "oadrRegisterReport"
    assert (payload["request_id"], payload["ven_id"]) == ("req-b", "ven-a")
    report = payload["reports"][0]
    assert (report["report_name"], report["report_specifier_id"]) == (
        "METADATA_TELEMETRY_USAGE", "spec-a"
    )
    assert (report["created_date_time"], report["duration"]) == (T0, timedelta(hours=1))
    got = report["report_descriptions"][0]
    assert (got["r_id"], got["report_type"], got["reading_type"]) == (
        "psn1_abc", "usage", "Direct Read"
    )
    assert got["report_data_source"] == {"resource_id": "psn1_abc"}
    assert got["market_context"] == "https://tso.example/afrr"
    assert got["sampling_rate"] == {
        "min_period": SAMPLE, "max_period": timedelta(minutes=1), "on_change": False
    }
    assert (got["measurement"]["name"], got["measurement"]["unit"],
            got["measurement"]["scale"]) == ("powerReal", "W", "M")
