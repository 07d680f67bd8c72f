"""Wire form of the report parts: oadrReport (data and metadata) and oadrReportRequest.

Element order follows oadr_20b.xsd (oadrReportType extends strm:StreamBaseType, so dtstart, duration
and intervals come *before* eiReportID), oadr_ei_20b.xsd (ReportPayloadType, ReportSpecifierType,
SpecifierPayloadType) and oadr_xcal_20b.xsd. Decoders run on XSD-valid trees only, so they read by
position where the schema fixes it and trust required children to exist.

Hot path (an oadrUpdateReport carries many intervals): each interval and payload is read in a single
pass over its children, with Clark tags computed once at import; no regex touches a number, and
repeated duration texts (``PT1M`` in every interval) are parsed once.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, TypeVar

from lxml import etree
from lxml.etree import SubElement

from ._errors import InvalidData
from ._wire import (
    EI,
    EMIX,
    NSMAP,
    OADR,
    STRM,
    XCAL,
    format_bool,
    format_datetime,
    format_duration,
    format_float,
    parse_bool,
    parse_datetime,
    parse_duration,
    q,
    sub,
    sub_dtstart,
    sub_duration,
)
from .parts import decode_target, encode_target
from .reports import (
    DataQuality,
    LoadControlState,
    LoadControlValue,
    ReadingType,
    Report,
    ReportDescription,
    ReportingPeriod,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportRequest,
    ReportSpecifier,
    ReportType,
    ResourceStatus,
    SamplingRate,
    SpecifierPayload,
)
from .units import decode_item_base, encode_item_base, is_item_base

_DTSTART: Final = q(XCAL, "dtstart")
_DATE_TIME: Final = q(XCAL, "date-time")
_DURATION: Final = q(XCAL, "duration")
_UID: Final = q(XCAL, "uid")
_TEXT: Final = q(XCAL, "text")
_GRANULARITY: Final = q(XCAL, "granularity")
_PROPERTIES: Final = q(XCAL, "properties")
_INTERVALS: Final = q(STRM, "intervals")
_INTERVAL: Final = q(EI, "interval")
_REPORT: Final = q(OADR, "oadrReport")
_REPORT_ID: Final = q(EI, "eiReportID")
_DESCRIPTION: Final = q(OADR, "oadrReportDescription")
_REPORT_REQUEST_ID: Final = q(EI, "reportRequestID")
_REPORT_SPECIFIER_ID: Final = q(EI, "reportSpecifierID")
_REPORT_NAME: Final = q(EI, "reportName")
_CREATED: Final = q(EI, "createdDateTime")
_R_ID: Final = q(EI, "rID")
_CONFIDENCE: Final = q(EI, "confidence")
_ACCURACY: Final = q(EI, "accuracy")
_PAYLOAD_FLOAT: Final = q(EI, "payloadFloat")
_VALUE: Final = q(EI, "value")
_REPORT_PAYLOAD: Final = q(OADR, "oadrReportPayload")
_DATA_QUALITY: Final = q(OADR, "oadrDataQuality")
_STATUS: Final = q(OADR, "oadrPayloadResourceStatus")
_ONLINE: Final = q(OADR, "oadrOnline")
_MANUAL_OVERRIDE: Final = q(OADR, "oadrManualOverride")
_LOAD_CONTROL: Final = q(OADR, "oadrLoadControlState")
_CAPACITY: Final = q(OADR, "oadrCapacity")
_LEVEL_OFFSET: Final = q(OADR, "oadrLevelOffset")
_PERCENT_OFFSET: Final = q(OADR, "oadrPercentOffset")
_SET_POINT: Final = q(OADR, "oadrSetPoint")
_MIN: Final = q(OADR, "oadrMin")
_MAX: Final = q(OADR, "oadrMax")
_CURRENT: Final = q(OADR, "oadrCurrent")
_NORMAL: Final = q(OADR, "oadrNormal")
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

_E = TypeVar("_E", ReportName, ReportType, ReadingType, DataQuality)

# Spec tokens decode to their enum member; x- extensions stay the (whitespace-collapsed) string.
_REPORT_NAMES: Final[dict[str, ReportName]] = {m.value: m for m in ReportName}
_REPORT_TYPES: Final[dict[str, ReportType]] = {m.value: m for m in ReportType}
_READING_TYPES: Final[dict[str, ReadingType]] = {m.value: m for m in ReadingType}
_QUALITIES: Final[dict[str, DataQuality]] = {m.value: m for m in DataQuality}


def _token(table: dict[str, _E], raw: str | None) -> _E | str:
    """An xs:token value: the XSD collapses whitespace before checking, so we do too."""
    value = raw or ""
    found = table.get(value)
    if found is not None:
        return found
    value = " ".join(value.split())
    return table.get(value, value)


@lru_cache(maxsize=256)
def _duration_text(value: str) -> timedelta:
    return parse_duration(value)


@lru_cache(maxsize=256)
def _duration_wire(value: timedelta) -> str:
    return format_duration(value)


def _datetime_wire(value: datetime) -> str:
    """format_datetime's output, faster for the common already-UTC value."""
    if value.tzinfo is not UTC:
        return format_datetime(value)  # converts, or refuses a naive time
    iso = value.isoformat()[:-6]  # drop "+00:00"
    return (iso.rstrip("0") if value.microsecond else iso) + "Z"


def _datetime_text(value: str) -> datetime:
    """parse_datetime, with the common ``...Z`` form read by fromisoformat directly."""
    if value.endswith("Z"):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # e.g. 7+ fraction digits, which the XSD allows: take the general path
    return parse_datetime(value)


def _duration_prop(element: etree._Element) -> timedelta:
    """A DurationPropType element: ``<tag><xcal:duration>PT1M</xcal:duration></tag>``."""
    return _duration_text(element[0].text or "")


def _dtstart(element: etree._Element) -> datetime:
    return _datetime_text(element[0].text or "")


# The envelope's prefixes, so lxml drops these declarations when a copy joins the tree.
_PROTOTYPE_NS: Final = {prefix: NSMAP[prefix] for prefix in ("oadr", "ei", "xcal")}


def _build_prototypes() -> tuple[etree._Element, etree._Element]:
    """Detached subtrees to deepcopy: copying one subtree in C is several times cheaper than
    building it node by node, and an oadrUpdateReport repeats the same shape in every interval."""
    interval = etree.Element(_INTERVAL, nsmap=_PROTOTYPE_NS)
    SubElement(SubElement(interval, _DTSTART), _DATE_TIME)
    SubElement(SubElement(interval, _DURATION), _DURATION)
    payload = etree.Element(_REPORT_PAYLOAD, nsmap=_PROTOTYPE_NS)
    SubElement(payload, _R_ID)
    SubElement(SubElement(payload, _PAYLOAD_FLOAT), _VALUE)
    return interval, payload


# Read-only after import: only ever deepcopied, never changed or attached.
_TIMED_INTERVAL, _FLOAT_PAYLOAD = _build_prototypes()


# ---------------------------------------------------------------- interval payloads


def _encode_control_value(parent: etree._Element, tag: str, value: LoadControlValue | None) -> None:
    if value is None:
        return
    element = SubElement(parent, tag)
    if value.min is not None:
        SubElement(element, _MIN).text = format_float(value.min)
    if value.max is not None:
        SubElement(element, _MAX).text = format_float(value.max)
    SubElement(element, _CURRENT).text = format_float(value.current)
    if value.normal is not None:
        SubElement(element, _NORMAL).text = format_float(value.normal)


def _encode_status(parent: etree._Element, status: ResourceStatus) -> None:
    element = SubElement(parent, _STATUS)
    SubElement(element, _ONLINE).text = format_bool(status.online)
    SubElement(element, _MANUAL_OVERRIDE).text = format_bool(status.manual_override)
    state = status.load_control_state
    if state is not None:
        holder = SubElement(element, _LOAD_CONTROL)
        _encode_control_value(holder, _CAPACITY, state.capacity)
        _encode_control_value(holder, _LEVEL_OFFSET, state.level_offset)
        _encode_control_value(holder, _PERCENT_OFFSET, state.percent_offset)
        _encode_control_value(holder, _SET_POINT, state.set_point)


def _opt_float(element: etree._Element, tag: str) -> float | None:
    found = element.findtext(tag)
    return None if found is None else float(found)


def _decode_control_value(element: etree._Element | None) -> LoadControlValue | None:
    if element is None:
        return None
    return LoadControlValue(
        current=float(element.findtext(_CURRENT) or ""),
        min=_opt_float(element, _MIN),
        max=_opt_float(element, _MAX),
        normal=_opt_float(element, _NORMAL),
    )


def _decode_status(element: etree._Element) -> ResourceStatus:
    holder = element.find(_LOAD_CONTROL)
    return ResourceStatus(
        online=parse_bool(element.findtext(_ONLINE) or ""),
        manual_override=parse_bool(element.findtext(_MANUAL_OVERRIDE) or ""),
        load_control_state=None if holder is None else LoadControlState(
            capacity=_decode_control_value(holder.find(_CAPACITY)),
            level_offset=_decode_control_value(holder.find(_LEVEL_OFFSET)),
            percent_offset=_decode_control_value(holder.find(_PERCENT_OFFSET)),
            set_point=_decode_control_value(holder.find(_SET_POINT)),
        ),
    )


def _encode_payload(parent: etree._Element, payload: ReportPayload) -> None:
    value = payload.value
    if payload.confidence is None and payload.accuracy is None and type(value) is float:
        element = deepcopy(_FLOAT_PAYLOAD)
        parent.append(element)
        element[0].text = payload.r_id
        element[1][0].text = format_float(value)
        if payload.data_quality is not None:
            SubElement(element, _DATA_QUALITY).text = payload.data_quality
        return
    element = SubElement(parent, _REPORT_PAYLOAD)
    SubElement(element, _R_ID).text = payload.r_id
    if payload.confidence is not None:
        SubElement(element, _CONFIDENCE).text = str(payload.confidence)
    if payload.accuracy is not None:
        SubElement(element, _ACCURACY).text = format_float(payload.accuracy)
    if isinstance(value, ResourceStatus):
        _encode_status(element, value)
    else:
        SubElement(SubElement(element, _PAYLOAD_FLOAT), _VALUE).text = format_float(value)
    if payload.data_quality is not None:
        SubElement(element, _DATA_QUALITY).text = payload.data_quality


def _decode_payload(element: etree._Element) -> ReportPayload:
    r_id = ""
    confidence: int | None = None
    accuracy: float | None = None
    value: float | ResourceStatus | None = None
    quality: DataQuality | str | None = None
    for part in element:
        tag = part.tag
        if tag == _PAYLOAD_FLOAT:
            value = float(part[0].text or "")
        elif tag == _R_ID:
            r_id = part.text or ""
        elif tag == _STATUS:
            value = _decode_status(part)
        elif tag == _CONFIDENCE:
            confidence = int(part.text or "")
        elif tag == _ACCURACY:
            accuracy = float(part.text or "")
        elif tag == _DATA_QUALITY:
            quality = _token(_QUALITIES, part.text)
    if value is None:
        raise InvalidData(f"report payload {r_id!r} carries no payloadFloat or resource status")
    return ReportPayload(
        r_id=r_id, value=value, confidence=confidence, accuracy=accuracy, data_quality=quality
    )


def _encode_interval(parent: etree._Element, interval: ReportInterval) -> None:
    if interval.dtstart is not None and interval.duration is not None:
        element = deepcopy(_TIMED_INTERVAL)
        parent.append(element)
        element[0][0].text = _datetime_wire(interval.dtstart)
        element[1][0].text = _duration_wire(interval.duration)
    else:
        element = SubElement(parent, _INTERVAL)
        if interval.dtstart is not None:
            sub_dtstart(element, interval.dtstart)
        if interval.duration is not None:
            sub_duration(element, interval.duration)
    if interval.uid is not None:
        SubElement(SubElement(element, _UID), _TEXT).text = interval.uid
    for payload in interval.payloads:
        _encode_payload(element, payload)


def _decode_interval(element: etree._Element) -> ReportInterval:
    dtstart: datetime | None = None
    duration: timedelta | None = None
    uid: str | None = None
    payloads: list[ReportPayload] = []
    for part in element:
        tag = part.tag
        if tag == _REPORT_PAYLOAD:
            payloads.append(_decode_payload(part))
        elif tag == _DTSTART:
            dtstart = _dtstart(part)
        elif tag == _DURATION:
            duration = _duration_prop(part)
        elif tag == _UID:
            uid = part[0].text or ""
        elif isinstance(tag, str):  # comments and PIs have no str tag
            # signalPayload / oadrGBPayload are legal stream payloads but not report data.
            raise InvalidData(f"report interval carries <{etree.QName(tag).localname}>")
    return ReportInterval(
        payloads=tuple(payloads), dtstart=dtstart, duration=duration, uid=uid
    )


# ---------------------------------------------------------------- descriptions (METADATA)


def _encode_description(parent: etree._Element, description: ReportDescription) -> None:
    element = SubElement(parent, _DESCRIPTION)
    SubElement(element, _R_ID).text = description.r_id
    if description.report_subject is not None:
        encode_target(element, description.report_subject, _SUBJECT)
    if description.report_data_source is not None:
        encode_target(element, description.report_data_source, _DATA_SOURCE)
    SubElement(element, _REPORT_TYPE).text = description.report_type
    if description.item_base is not None:
        encode_item_base(element, description.item_base)
    SubElement(element, _READING_TYPE).text = description.reading_type
    if description.market_context is not None:
        SubElement(element, _MARKET_CONTEXT).text = description.market_context
    rate = description.sampling_rate
    if rate is not None:
        holder = SubElement(element, _SAMPLING_RATE)
        SubElement(holder, _MIN_PERIOD).text = format_duration(rate.min_period)
        SubElement(holder, _MAX_PERIOD).text = format_duration(rate.max_period)
        SubElement(holder, _ON_CHANGE).text = format_bool(rate.on_change)


def _decode_sampling_rate(element: etree._Element | None) -> SamplingRate | None:
    if element is None:
        return None
    return SamplingRate(
        min_period=_duration_text(element.findtext(_MIN_PERIOD) or ""),
        max_period=_duration_text(element.findtext(_MAX_PERIOD) or ""),
        on_change=parse_bool(element.findtext(_ON_CHANGE) or ""),
    )


def _decode_description(element: etree._Element) -> ReportDescription:
    subject = element.find(_SUBJECT)
    source = element.find(_DATA_SOURCE)
    type_element = element.find(_REPORT_TYPE)
    assert type_element is not None  # required by the XSD, which validated this tree
    # emix:itemBase is optional and comes in many tags; if present it follows reportType.
    after_type = type_element.getnext()
    item = after_type if after_type is not None and is_item_base(after_type) else None
    return ReportDescription(
        r_id=element.findtext(_R_ID) or "",
        report_subject=None if subject is None else decode_target(subject),
        report_data_source=None if source is None else decode_target(source),
        report_type=_token(_REPORT_TYPES, type_element.text),
        item_base=None if item is None else decode_item_base(item),
        reading_type=_token(_READING_TYPES, element.findtext(_READING_TYPE)),
        market_context=element.findtext(_MARKET_CONTEXT),
        sampling_rate=_decode_sampling_rate(element.find(_SAMPLING_RATE)),
    )


# ---------------------------------------------------------------- oadrReport


def encode_report(parent: etree._Element, report: Report) -> None:
    element = SubElement(parent, _REPORT)
    if report.dtstart is not None:
        sub_dtstart(element, report.dtstart)
    if report.duration is not None:
        sub_duration(element, report.duration)
    if report.intervals:
        holder = SubElement(element, _INTERVALS)
        for interval in report.intervals:
            _encode_interval(holder, interval)
    if report.report_id is not None:
        SubElement(element, _REPORT_ID).text = report.report_id
    for description in report.descriptions:
        _encode_description(element, description)
    SubElement(element, _REPORT_REQUEST_ID).text = report.report_request_id
    SubElement(element, _REPORT_SPECIFIER_ID).text = report.report_specifier_id
    if report.report_name is not None:
        SubElement(element, _REPORT_NAME).text = report.report_name
    SubElement(element, _CREATED).text = format_datetime(report.created_date_time)


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
            intervals = tuple(_decode_interval(interval) for interval in part)
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
            dtstart = _dtstart(part)
        elif tag == _DURATION:
            duration = _duration_prop(part)
    return Report(
        report_request_id=request_id,
        report_specifier_id=specifier_id,
        created_date_time=_datetime_text(created),
        report_id=report_id,
        report_name=None if name is None else _token(_REPORT_NAMES, name),
        dtstart=dtstart,
        duration=duration,
        intervals=intervals,
        descriptions=tuple(descriptions),
    )


# ---------------------------------------------------------------- oadrReportRequest


def encode_report_request(parent: etree._Element, request: ReportRequest) -> None:
    element = SubElement(parent, _REPORT_REQUEST)
    SubElement(element, _REPORT_REQUEST_ID).text = request.report_request_id
    spec = request.report_specifier
    holder = SubElement(element, _SPECIFIER)
    SubElement(holder, _REPORT_SPECIFIER_ID).text = spec.report_specifier_id
    sub_duration(holder, spec.granularity, _GRANULARITY)
    sub_duration(holder, spec.report_back_duration, _BACK_DURATION)
    if spec.report_interval is not None:
        properties = sub(SubElement(holder, _REPORT_INTERVAL), _PROPERTIES)
        sub_dtstart(properties, spec.report_interval.dtstart)
        sub_duration(properties, spec.report_interval.duration)
    for payload in spec.specifier_payloads:
        item = SubElement(holder, _SPECIFIER_PAYLOAD)
        SubElement(item, _R_ID).text = payload.r_id
        if payload.item_base is not None:
            encode_item_base(item, payload.item_base)
        SubElement(item, _READING_TYPE).text = payload.reading_type


def _decode_specifier_payload(element: etree._Element) -> SpecifierPayload:
    second = element[1]
    return SpecifierPayload(
        r_id=element.findtext(_R_ID) or "",
        item_base=decode_item_base(second) if is_item_base(second) else None,
        reading_type=_token(_READING_TYPES, element.findtext(_READING_TYPE)),
    )


def _decode_reporting_period(element: etree._Element | None) -> ReportingPeriod | None:
    """ei:reportInterval; tolerance and x-ei* properties have no meaning for a report period."""
    if element is None:
        return None
    properties = element[0]
    return ReportingPeriod(
        dtstart=_dtstart(properties[0]),
        duration=_duration_prop(properties[1]),
    )


def decode_report_request(element: etree._Element) -> ReportRequest:
    spec = element[1]
    return ReportRequest(
        report_request_id=element.findtext(_REPORT_REQUEST_ID) or "",
        report_specifier=ReportSpecifier(
            report_specifier_id=spec.findtext(_REPORT_SPECIFIER_ID) or "",
            granularity=_duration_prop(spec[1]),
            report_back_duration=_duration_prop(spec[2]),
            report_interval=_decode_reporting_period(spec.find(_REPORT_INTERVAL)),
            specifier_payloads=tuple(
                _decode_specifier_payload(p) for p in spec.iterfind(_SPECIFIER_PAYLOAD)
            ),
        ),
    )
