"""The ``x-SETTLEMENT`` report: the TSO's settlement statement on the wire
(docs/architecture.md#the-cbp-profile-on-openadr, last row).

Direction (OpenADR 2.0b profile 8.3): report data flows from the party that *offers* a report to
the party that asked for it, so the TSO (VTN) offers ``x-SETTLEMENT`` in an oadrRegisterReport of
its own (:func:`settlement_metadata`, one report per pool, through
:func:`vtn.services.offered.offer_reports` when the aggregator's pools register); the aggregator
(VEN) requests it in its oadrRegisteredReport (:func:`settlement_request`), which the TSO stores
and confirms with oadrCreatedReport; after settling an activation the TSO sends the statement as
an oadrUpdateReport (:func:`statement_report`) for that live request
(:func:`vtn.services.offered.send_report`), delivered like every VTN-to-VEN payload (in the reply
to the aggregator's oadrPoll, or pushed), and the aggregator answers oadrUpdatedReport.

One report per settled activation: eiReportID ``settlement:<eventID>``, one interval = the ISP
(dtstart = its start), one data point per statement field (:data:`SETTLEMENT_RIDS`: requested,
delivered and capped MWh, the delivery ratio, clearing and bid price EUR/MWh, payment and
penalty EUR). No device, pseudonym or vault value appears in it.

Invariants: values are written from ``Decimal`` with ``float(str(d))`` and read back with
``Decimal(repr(f))``, so every statement value (at most 15 significant digits) arrives equal
to the TSO's ``Decimal``; a missing ratio (nothing requested) is no data point, not a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cbp.market import TsoStatement
from schemas import (
    ItemBase,
    ItemKind,
    ReadingType,
    Report,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportRequest,
    ReportSpecifier,
    ReportType,
    SiScale,
    SpecifierPayload,
)

from .profile import SETTLEMENT_REPORT, SETTLEMENT_RIDS

__all__ = [
    "SETTLEMENT_SUFFIX",
    "ReceivedStatement",
    "parse_statement",
    "settlement_metadata",
    "settlement_request",
    "statement_report",
]

SETTLEMENT_SUFFIX = ":settlement"
_REPORT_ID_PREFIX = "settlement:"
_MONEY = frozenset({"payment_eur", "penalty_eur"})
_PRICE = frozenset({"clearing_price_eur_per_mwh", "bid_price_eur_per_mwh"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedStatement:
    """What the aggregator learnt from one x-SETTLEMENT report."""

    event_id: str
    isp_start: datetime
    requested_mwh: Decimal
    delivered_mwh: Decimal
    settled_mwh: Decimal  # "capped": delivery above the largest of the last L + 1 setpoints unpaid
    ratio: Decimal | None
    clearing_price_eur_per_mwh: Decimal
    bid_price_eur_per_mwh: Decimal
    payment_eur: Decimal
    penalty_eur: Decimal


def _description(field: str, r_id: str) -> ReportDescription:
    if field in _MONEY or field in _PRICE:
        return ReportDescription(r_id=r_id, report_type=ReportType.PRICE,
                                 reading_type=ReadingType.SUMMED if field in _MONEY
                                 else ReadingType.CONTRACT,
                                 item_base=ItemBase.of(ItemKind.CURRENCY, units="EUR"))
    if field == "ratio":
        return ReportDescription(r_id=r_id, report_type=ReportType.PERCENT_USAGE,
                                 reading_type=ReadingType.DERIVED)
    return ReportDescription(r_id=r_id, report_type=ReportType.USAGE,
                             reading_type=ReadingType.SUMMED,
                             item_base=ItemBase.of(ItemKind.ENERGY_REAL, scale=SiScale.MEGA))


def settlement_metadata(pool_id: str, *, created: datetime) -> Report:
    """The TSO's METADATA offering ``x-SETTLEMENT`` for one pool."""
    return Report(
        report_request_id="0", report_specifier_id=pool_id + SETTLEMENT_SUFFIX,
        created_date_time=created, report_name=SETTLEMENT_REPORT, duration=timedelta(0),
        descriptions=tuple(_description(f, r) for f, r in SETTLEMENT_RIDS.items()))


def _wire(value: Decimal) -> float:
    return float(str(value))


def settlement_request(metadata: Report, *, report_request_id: str) -> ReportRequest:
    """The aggregator's request for an offered x-SETTLEMENT report: every data point, sent once
    per settled activation (granularity and reportBackDuration zero: not periodic)."""
    return ReportRequest(report_request_id=report_request_id, report_specifier=ReportSpecifier(
        report_specifier_id=metadata.report_specifier_id, granularity=timedelta(0),
        report_back_duration=timedelta(0), specifier_payloads=tuple(
            SpecifierPayload(r_id=d.r_id, reading_type=d.reading_type)
            for d in metadata.descriptions)))


def statement_report(statement: TsoStatement, *, report_request_id: str, pool_id: str,
                     event_id: str, isp_start: datetime, isp_length: timedelta,
                     created: datetime) -> Report:
    """The oadrReport carrying one settled activation's statement, for the aggregator's request
    ``report_request_id``."""
    payloads = []
    for field, r_id in SETTLEMENT_RIDS.items():
        value = getattr(statement, field)
        if value is not None:
            payloads.append(ReportPayload(r_id=r_id, value=_wire(value)))
    specifier = pool_id + SETTLEMENT_SUFFIX
    return Report(
        report_request_id=report_request_id, report_specifier_id=specifier,
        created_date_time=created, report_id=_REPORT_ID_PREFIX + event_id,
        report_name=SETTLEMENT_REPORT, dtstart=isp_start, duration=isp_length,
        intervals=(ReportInterval(dtstart=isp_start, duration=isp_length,
                                  payloads=tuple(payloads)),))


def parse_statement(report: Report) -> ReceivedStatement:
    """Read an x-SETTLEMENT report; ValueError when it is not one or misses a value."""
    if str(report.report_name or "") != SETTLEMENT_REPORT or len(report.intervals) != 1:
        raise ValueError("not an x-SETTLEMENT report of one interval")
    report_id = report.report_id or ""
    interval = report.intervals[0]
    if not report_id.startswith(_REPORT_ID_PREFIX) or interval.dtstart is None:
        raise ValueError("an x-SETTLEMENT report needs its eiReportID and the ISP start")
    values: dict[str, Decimal] = {}
    for payload in interval.payloads:
        if isinstance(payload.value, float | int):
            values[payload.r_id] = Decimal(repr(float(payload.value)))
    fields: dict[str, Decimal | None] = {}
    for field, r_id in SETTLEMENT_RIDS.items():
        if r_id not in values and field != "ratio":
            raise ValueError(f"x-SETTLEMENT report without {r_id}")
        fields[field] = values.get(r_id)
    return ReceivedStatement(event_id=report_id.removeprefix(_REPORT_ID_PREFIX),
                             isp_start=interval.dtstart, **fields)  # type: ignore[arg-type]
