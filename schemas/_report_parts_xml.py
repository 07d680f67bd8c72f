"""Wire form of the report parts: oadrReport (data and metadata) and oadrReportRequest.

Element order follows oadr_20b.xsd (oadrReportType extends strm:StreamBaseType, so dtstart, duration
and intervals come *before* eiReportID), oadr_ei_20b.xsd (ReportPayloadType, ReportSpecifierType,
SpecifierPayloadType) and oadr_xcal_20b.xsd. Decoders run on XSD-valid trees only, so they read by
position where the schema fixes it and trust required children to exist.

Report data (strm:intervals, the telemetry hot path) is in ``_report_data_xml``. decode_report
reads the children of an oadrReport in one pass rather than with one ElementPath call per field.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from lxml import etree

from ._base import builder
from ._report_data_xml import (
    READING_TYPES,
    REPORT_NAMES,
    REPORT_TYPES,
    datetime_wire,
    decode_intervals,
    duration_prop,
    encode_intervals,
    read_dtstart,
    token,
)
from ._wire import (
    EI,
    EMIX,
    OADR,
    STRM,
    XCAL,
    check_period,
    children,
    format_bool,
    format_duration,
    parse_bool,
    parse_datetime,
    parse_duration,
    q,
    text_opt,
)
from ._writer import Node, leaf, leaf_value, sub, sub_dtstart, sub_duration, sub_period
from .parts import decode_target, encode_target
from .reports import (
    Report,
    ReportDescription,
    ReportingPeriod,
    ReportInterval,
    ReportRequest,
    ReportSpecifier,
    SamplingRate,
    SpecifierPayload,
)
from .units import decode_item_base, encode_item_base, is_item_base, is_item_base_tag

_DTSTART: Final = q(XCAL, "dtstart")
_DURATION: Final = q(XCAL, "duration")
_GRANULARITY: Final = q(XCAL, "granularity")
_PROPERTIES: Final = q(XCAL, "properties")
_INTERVALS: Final = q(STRM, "intervals")
_REPORT: Final = q(OADR, "oadrReport")
_REPORT_ID: Final = q(EI, "eiReportID")
_DESCRIPTION: Final = q(OADR, "oadrReportDescription")
_REPORT_REQUEST_ID: Final = q(EI, "reportRequestID")
_REPORT_SPECIFIER_ID: Final = q(EI, "reportSpecifierID")
_REPORT_NAME: Final = q(EI, "reportName")
_CREATED: Final = q(EI, "createdDateTime")
_R_ID: Final = q(EI, "rID")
_SUBJECT: Final = q(EI, "reportSubject")
_DATA_SOURCE: Final = q(EI, "reportDataSource")
_REPORT_TYPE: Final = q(EI, "reportType")
_READING_TYPE: Final = q(EI, "readingType")
_MARKET_CONTEXT: Final = q(EMIX, "marketContext")
_SAMPLING_RATE: Final = q(OADR, "oadrSamplingRate")
_MIN_PERIOD: Final = q(OADR, "oadrMinPeriod")
_MAX_PERIOD: Final = q(OADR, "oadrMaxPeriod")
_ON_CHANGE: Final = q(OADR, "oadrOnChange")
_REPORT_REQUEST: Final = q(OADR, "oadrReportRequest")
_SPECIFIER: Final = q(EI, "reportSpecifier")
_BACK_DURATION: Final = q(EI, "reportBackDuration")
_REPORT_INTERVAL: Final = q(EI, "reportInterval")
_SPECIFIER_PAYLOAD: Final = q(EI, "specifierPayload")

_new_description: Final = builder(ReportDescription)
_new_sampling_rate: Final = builder(SamplingRate)
_new_report: Final = builder(Report)

# ---------------------------------------------------------------- descriptions (METADATA)


def _encode_description(parent: Node, description: ReportDescription) -> None:
    element = sub(parent, _DESCRIPTION)
    leaf(element, _R_ID, description.r_id)
    if description.report_subject is not None:
        encode_target(element, description.report_subject, _SUBJECT)
    if description.report_data_source is not None:
        encode_target(element, description.report_data_source, _DATA_SOURCE)
    leaf(element, _REPORT_TYPE, description.report_type)
    if description.item_base is not None:
        encode_item_base(element, description.item_base)
    leaf(element, _READING_TYPE, description.reading_type)
    if description.market_context is not None:
        leaf(element, _MARKET_CONTEXT, description.market_context)
    rate = description.sampling_rate
    if rate is not None:
        holder = sub(element, _SAMPLING_RATE)
        leaf_value(holder, _MIN_PERIOD, format_duration(rate.min_period))
        leaf_value(holder, _MAX_PERIOD, format_duration(rate.max_period))
        leaf_value(holder, _ON_CHANGE, format_bool(rate.on_change))


def _decode_sampling_rate(element: etree._Element) -> SamplingRate:
    # XSD sequence: oadrMinPeriod, oadrMaxPeriod, oadrOnChange, all required
    return _new_sampling_rate(
        min_period=parse_duration(element[0].text or ""),
        max_period=parse_duration(element[1].text or ""),
        on_change=parse_bool(element[2].text or ""),
    )


def _decode_description(element: etree._Element) -> ReportDescription:
    # XSD sequence: rID, reportSubject?, reportDataSource?, reportType, emix:itemBase? (one of
    # many tags), readingType, marketContext?, oadrSamplingRate?; read by position, a tag looked
    # at only where an optional element may stand
    subject = source = None
    index = 1
    part = element[index]
    if part.tag == _SUBJECT:
        subject = decode_target(part)
        index += 1
        part = element[index]
    if part.tag == _DATA_SOURCE:
        source = decode_target(part)
        index += 1
        part = element[index]
    report_type = token(REPORT_TYPES, part.text)
    index += 1
    part = element[index]
    tag = part.tag
    item = None
    if tag != _READING_TYPE:
        item = decode_item_base(part) if is_item_base_tag(tag) else None
        index += 1
        part = element[index]
    reading_type = token(READING_TYPES, part.text)
    market_context: str | None = None
    rate: SamplingRate | None = None
    for after in part.itersiblings():
        if after.tag == _MARKET_CONTEXT:
            market_context = after.text or ""
        else:
            rate = _decode_sampling_rate(after)
    return _new_description(
        r_id=element[0].text or "",
        report_subject=subject,
        report_data_source=source,
        report_type=report_type,
        item_base=item,
        reading_type=reading_type,
        market_context=market_context,
        sampling_rate=rate,
    )


# ---------------------------------------------------------------- oadrReport


def encode_report(parent: Node, report: Report) -> None:
    element = sub(parent, _REPORT)
    sub_period(element, report.dtstart, report.duration)
    encode_intervals(element, report.intervals)
    if report.report_id is not None:
        leaf(element, _REPORT_ID, report.report_id)
    for description in report.descriptions:
        _encode_description(element, description)
    leaf(element, _REPORT_REQUEST_ID, report.report_request_id)
    leaf(element, _REPORT_SPECIFIER_ID, report.report_specifier_id)
    if report.report_name is not None:
        leaf(element, _REPORT_NAME, report.report_name)
    leaf_value(element, _CREATED, datetime_wire(report.created_date_time))


def decode_report(element: etree._Element) -> Report:
    # One pass over the children: each find()/findtext() is an ElementPath call costing more than
    # this whole loop. The XSD has already fixed which children exist and in what order.
    dtstart: datetime | None = None
    duration: timedelta | None = None
    intervals: tuple[ReportInterval, ...] = ()
    descriptions: list[ReportDescription] = []
    report_id: str | None = None
    request_id = specifier_id = created = ""
    name: str | None = None
    for part in element:
        tag = part.tag
        if tag == _INTERVALS:
            intervals = decode_intervals(part)
        elif tag == _REPORT_REQUEST_ID:
            request_id = part.text or ""
        elif tag == _REPORT_SPECIFIER_ID:
            specifier_id = part.text or ""
        elif tag == _CREATED:
            created = part.text or ""
        elif tag == _REPORT_NAME:
            name = part.text or ""
        elif tag == _REPORT_ID:
            report_id = part.text or ""
        elif tag == _DESCRIPTION:
            descriptions.append(_decode_description(part))
        elif tag == _DTSTART:
            dtstart = read_dtstart(part)
        elif tag == _DURATION:
            duration = duration_prop(part)
    if dtstart is not None and duration is not None:
        check_period(dtstart, duration)
    return _new_report(
        report_request_id=request_id,
        report_specifier_id=specifier_id,
        created_date_time=parse_datetime(created),
        report_id=report_id,
        report_name=None if name is None else token(REPORT_NAMES, name),
        dtstart=dtstart,
        duration=duration,
        intervals=intervals,
        descriptions=tuple(descriptions),
    )


# ---------------------------------------------------------------- oadrReportRequest


def encode_report_request(parent: Node, request: ReportRequest) -> None:
    element = sub(parent, _REPORT_REQUEST)
    leaf(element, _REPORT_REQUEST_ID, request.report_request_id)
    spec = request.report_specifier
    holder = sub(element, _SPECIFIER)
    leaf(holder, _REPORT_SPECIFIER_ID, spec.report_specifier_id)
    sub_duration(holder, spec.granularity, _GRANULARITY)
    sub_duration(holder, spec.report_back_duration, _BACK_DURATION)
    if spec.report_interval is not None:
        properties = sub(sub(holder, _REPORT_INTERVAL), _PROPERTIES)
        sub_dtstart(properties, spec.report_interval.dtstart)
        sub_duration(properties, spec.report_interval.duration)
    for payload in spec.specifier_payloads:
        item = sub(holder, _SPECIFIER_PAYLOAD)
        leaf(item, _R_ID, payload.r_id)
        if payload.item_base is not None:
            encode_item_base(item, payload.item_base)
        leaf(item, _READING_TYPE, payload.reading_type)


def _decode_specifier_payload(element: etree._Element) -> SpecifierPayload:
    second = element[1]
    kids = children(element)
    return SpecifierPayload(
        r_id=text_opt(kids, _R_ID) or "",
        item_base=decode_item_base(second) if is_item_base(second) else None,
        reading_type=token(READING_TYPES, text_opt(kids, _READING_TYPE)),
    )


def _decode_reporting_period(element: etree._Element | None) -> ReportingPeriod | None:
    """ei:reportInterval; tolerance and x-ei* properties have no meaning for a report period."""
    if element is None:
        return None
    properties = element[0]
    dtstart, duration = read_dtstart(properties[0]), duration_prop(properties[1])
    check_period(dtstart, duration)
    return ReportingPeriod(dtstart=dtstart, duration=duration)


def decode_report_request(element: etree._Element) -> ReportRequest:
    spec = element[1]
    spec_kids = children(spec)
    return ReportRequest(
        report_request_id=element[0].text or "",  # reportRequestID, then reportSpecifier (XSD)
        report_specifier=ReportSpecifier(
            report_specifier_id=text_opt(spec_kids, _REPORT_SPECIFIER_ID) or "",
            granularity=duration_prop(spec[1]),
            report_back_duration=duration_prop(spec[2]),
            report_interval=_decode_reporting_period(spec_kids.get(_REPORT_INTERVAL)),
            specifier_payloads=tuple(
                _decode_specifier_payload(p) for p in spec.iterchildren(_SPECIFIER_PAYLOAD)
            ),
        ),
    )
