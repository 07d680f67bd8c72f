"""Telemetry for the tests that register and send reports to a VTN: the TELEMETRY_USAGE report
descriptions a device VEN offers (power in kW, 4-s samples), and an UpdateReport of three samples
taken from :data:`DATA_AT` on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas import (
    ReadingType,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportType,
    SamplingRate,
    UpdateReport,
)
from schemas.units import ItemBase

__all__ = ["DATA_AT", "telemetry_data", "telemetry_descriptions"]

DATA_AT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def telemetry_descriptions() -> tuple[ReportDescription, ...]:
    return (
        ReportDescription(
            r_id="meter-1", report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
            item_base=ItemBase.kilowatts(),
            sampling_rate=SamplingRate(min_period=timedelta(seconds=4),
                                       max_period=timedelta(minutes=1)),
        ),
    )


def telemetry_data(ven_id: str, request_id: str, value: float = 1.25) -> UpdateReport:
    """Three 4-s samples of ``rid-1`` from :data:`DATA_AT`: ``value``, then one more each."""
    report = Report(
        report_request_id=request_id, report_specifier_id="spec-1", created_date_time=DATA_AT,
        report_name=ReportName.TELEMETRY_USAGE, dtstart=DATA_AT,
        intervals=tuple(ReportInterval(dtstart=DATA_AT + timedelta(seconds=4 * i),
                                       duration=timedelta(seconds=4),
                                       payloads=(ReportPayload(r_id="rid-1", value=value + i),))
                        for i in range(3)),
    )
    return UpdateReport(request_id="upd", reports=(report,), ven_id=ven_id)
