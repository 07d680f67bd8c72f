"""Wire form of report *data*: strm:intervals of ei:interval carrying oadrReportPayload values.

Element order follows oadr_ei_20b.xsd (IntervalType: dtstart?, duration?, uid?, stream payloads;
ReportPayloadType: rID, confidence?, accuracy?, payloadBase) and oadr_20b.xsd (oadrReportPayload
adds oadrDataQuality?; oadrPayloadResourceStatus is the TELEMETRY_STATUS payloadBase).

This is the hot path of telemetry, so it is written for speed (decoders only see XSD-valid trees):
- decoding reads a block of eight or more plain telemetry intervals (``_decode_plain``) in a
  few C-filtered passes, anything else one pass per interval and payload, by the XSD's positions
  (no ElementPath calls), and builds the two dataclasses per interval without their generated
  ``__init__`` (``_payload``, ``_interval``); repeated duration texts (``PT4S`` in every
  interval) are parsed once, ``...Z`` times go straight to ``datetime.fromisoformat``, and no
  regex touches a number;
- encoding writes text (:mod:`schemas._writer`); a float payload's fixed markup is one string.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from math import isfinite
from typing import Final, TypeVar

from lxml import etree

from ._errors import InvalidData
from ._wire import (
    EI,
    OADR,
    STRM,
    XCAL,
    Children,
    check_period,
    children,
    format_bool,
    format_datetime,
    format_float,
    only_text,
    parse_bool,
    parse_datetime,
    parse_duration,
    parse_float,
    q,
    text_opt,
)
from ._writer import (
    Node,
    leaf,
    leaf_value,
    payload_float,
    sub,
    sub_period,
)
from .reports import (
    DataQuality,
    LoadControlState,
    LoadControlValue,
    ReadingType,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportType,
    ResourceStatus,
)

_DTSTART: Final = q(XCAL, "dtstart")
_DATE_TIME: Final = q(XCAL, "date-time")
_DURATION: Final = q(XCAL, "duration")
_UID: Final = q(XCAL, "uid")
_TEXT: Final = q(XCAL, "text")
_INTERVALS: Final = q(STRM, "intervals")
_INTERVAL: Final = q(EI, "interval")
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

_E = TypeVar("_E", ReportName, ReportType, ReadingType, DataQuality)
_T = TypeVar("_T")

# Spec tokens decode to their enum member; x- extensions stay the (whitespace-collapsed) string.
REPORT_NAMES: Final[dict[str, ReportName]] = {m.value: m for m in ReportName}
REPORT_TYPES: Final[dict[str, ReportType]] = {m.value: m for m in ReportType}
READING_TYPES: Final[dict[str, ReadingType]] = {m.value: m for m in ReadingType}
_QUALITIES: Final[dict[str, DataQuality]] = {m.value: m for m in DataQuality}


def token(table: dict[str, _E], raw: str | None) -> _E | str:
    """An xs:token value: the XSD collapses whitespace before checking, so we do too."""
    value = raw or ""
    found = table.get(value)
    if found is not None:
        return found
    value = " ".join(value.split())
    return table.get(value, value)


def float_wire(value: float) -> str:
    """format_float's output, with its common case (finite, no exponent) checked cheaply first."""
    try:
        if isfinite(value) and value.__class__ is not bool:
            shortest = repr(float(value))
            if "e" not in shortest:
                return shortest
    except OverflowError:  # an int beyond every float: format_float says so
        pass
    return format_float(value)  # spells exponents out, or raises LocalProtocolError


# format_datetime is itself the fast path now; the name stays for this module's callers.
datetime_wire: Final = format_datetime


def duration_prop(element: etree._Element) -> timedelta:
    """A DurationPropType element: ``<tag><xcal:duration>PT1M</xcal:duration></tag>``."""
    return parse_duration(only_text(element))


def read_dtstart(element: etree._Element) -> datetime:
    return parse_datetime(only_text(element))


# ---------------------------------------------------------------- interval payloads

# A decoded report builds two frozen dataclasses per interval. Their generated ``__init__`` sets
# each field through ``object.__setattr__`` (a frozen class refuses plain assignment), about half
# of what building one costs; ``_payload`` and ``_interval`` set the slots through their member
# descriptors instead and run the same ``__post_init__`` checks, so what they build and refuse
# is what the class call would (tests/schemas/test_reports.py compares the two).
_new: Final[Callable[[type[_T]], _T]] = object.__new__
_set_r_id, _set_confidence, _set_accuracy, _set_value, _set_quality = (
    vars(ReportPayload)[name].__set__
    for name in ("r_id", "confidence", "accuracy", "value", "data_quality")
)
_set_payloads, _set_dtstart, _set_duration, _set_uid = (
    vars(ReportInterval)[name].__set__ for name in ("payloads", "dtstart", "duration", "uid")
)


def _payload(r_id: str, confidence: int | None, accuracy: float | None,
             value: float | ResourceStatus, quality: DataQuality | str | None) -> ReportPayload:
    """The fields in the XSD's order, so a caller's arguments are read in document order."""
    payload = _new(ReportPayload)
    _set_r_id(payload, r_id)
    _set_confidence(payload, confidence)
    _set_accuracy(payload, accuracy)
    _set_value(payload, value)
    _set_quality(payload, quality)
    payload.__post_init__()
    return payload


def _interval(payloads: tuple[ReportPayload, ...], dtstart: datetime | None,
              duration: timedelta | None, uid: str | None) -> ReportInterval:
    interval = _new(ReportInterval)
    _set_payloads(interval, payloads)
    _set_dtstart(interval, dtstart)
    _set_duration(interval, duration)
    _set_uid(interval, uid)
    interval.__post_init__()
    return interval



def _encode_control_value(parent: Node, tag: str, value: LoadControlValue | None) -> None:
    if value is None:
        return
    element = sub(parent, tag)
    if value.min is not None:
        leaf_value(element, _MIN, format_float(value.min))
    if value.max is not None:
        leaf_value(element, _MAX, format_float(value.max))
    leaf_value(element, _CURRENT, format_float(value.current))
    if value.normal is not None:
        leaf_value(element, _NORMAL, format_float(value.normal))


def _encode_status(parent: Node, status: ResourceStatus) -> None:
    element = sub(parent, _STATUS)
    leaf_value(element, _ONLINE, format_bool(status.online))
    leaf_value(element, _MANUAL_OVERRIDE, format_bool(status.manual_override))
    state = status.load_control_state
    if state is not None:
        holder = sub(element, _LOAD_CONTROL)
        _encode_control_value(holder, _CAPACITY, state.capacity)
        _encode_control_value(holder, _LEVEL_OFFSET, state.level_offset)
        _encode_control_value(holder, _PERCENT_OFFSET, state.percent_offset)
        _encode_control_value(holder, _SET_POINT, state.set_point)


def _opt_float(kids: Children, tag: str) -> float | None:
    found = text_opt(kids, tag)
    return None if found is None else parse_float(found)


def _decode_control_value(element: etree._Element | None) -> LoadControlValue | None:
    if element is None:
        return None
    kids = children(element)
    return LoadControlValue(
        current=parse_float(text_opt(kids, _CURRENT) or ""),
        min=_opt_float(kids, _MIN),
        max=_opt_float(kids, _MAX),
        normal=_opt_float(kids, _NORMAL),
    )


def _decode_status(element: etree._Element) -> ResourceStatus:
    kids = children(element)
    holder = kids.get(_LOAD_CONTROL)
    states = {} if holder is None else children(holder)
    return ResourceStatus(
        online=parse_bool(text_opt(kids, _ONLINE) or ""),
        manual_override=parse_bool(text_opt(kids, _MANUAL_OVERRIDE) or ""),
        load_control_state=None if holder is None else LoadControlState(
            capacity=_decode_control_value(states.get(_CAPACITY)),
            level_offset=_decode_control_value(states.get(_LEVEL_OFFSET)),
            percent_offset=_decode_control_value(states.get(_PERCENT_OFFSET)),
            set_point=_decode_control_value(states.get(_SET_POINT)),
        ),
    )


def _encode_payload(parent: Node, payload: ReportPayload) -> None:
    element = sub(parent, _REPORT_PAYLOAD)
    leaf(element, _R_ID, payload.r_id)
    if payload.confidence is not None:
        leaf_value(element, _CONFIDENCE, str(payload.confidence))
    if payload.accuracy is not None:
        leaf_value(element, _ACCURACY, float_wire(payload.accuracy))
    value = payload.value
    if isinstance(value, ResourceStatus):
        _encode_status(element, value)
    else:
        element.parts.append(payload_float(float_wire(value)))
    if payload.data_quality is not None:
        leaf(element, _DATA_QUALITY, payload.data_quality)


def _decode_payload(element: etree._Element) -> ReportPayload:
    # XSD sequence: rID, confidence?, accuracy?, payloadBase, oadrDataQuality?; read by position.
    # The base is the one child with children (payloadFloat holds ei:value, a resource status at
    # least oadrOnline and oadrManualOverride), so a tag is read only when exactly one of
    # confidence and accuracy stands before it.
    parts = list(element)
    at = 1
    while not len(parts[at]):
        at += 1
    confidence: int | None = None
    accuracy: float | None = None
    if at == 3:
        confidence = int(parts[1].text or "")
        accuracy = parse_float(parts[2].text or "")
    elif at == 2:
        if parts[1].tag == _CONFIDENCE:
            confidence = int(parts[1].text or "")
        else:
            accuracy = parse_float(parts[1].text or "")
    base = parts[at]
    value = parse_float(base[0].text or "") if len(base) == 1 else _decode_status(base)
    return _payload(parts[0].text or "", confidence, accuracy, value,
                    token(_QUALITIES, parts[-1].text) if len(parts) > at + 1 else None)


def _encode_interval(parent: Node, interval: ReportInterval) -> None:
    element = sub(parent, _INTERVAL)
    sub_period(element, interval.dtstart, interval.duration)
    if interval.uid is not None:
        leaf(sub(element, _UID), _TEXT, interval.uid)
    for payload in interval.payloads:
        _encode_payload(element, payload)


def decode_interval(element: etree._Element) -> ReportInterval:
    dtstart: datetime | None = None
    duration: timedelta | None = None
    uid: str | None = None
    payloads: list[ReportPayload] = []
    for part in element:
        if len(part) > 1:  # an oadrReportPayload (rID and a payloadBase at least); the
            payloads.append(_decode_payload(part))  # others here hold one child each (XSD)
            continue
        tag = part.tag
        if tag == _DTSTART:
            dtstart = read_dtstart(part)
        elif tag == _DURATION:
            duration = duration_prop(part)
        elif tag == _UID:
            uid = part[0].text or ""
        elif isinstance(tag, str):  # comments and PIs have no str tag
            # signalPayload / oadrGBPayload are legal stream payloads but not report data.
            raise InvalidData(f"report interval carries <{etree.QName(tag).localname}>")
    if dtstart is not None and duration is not None:
        check_period(dtstart, duration)
    return _interval(tuple(payloads), dtstart, duration, uid)


# ---------------------------------------------------------------- strm:intervals

# Any of these inside strm:intervals rules out the plain-telemetry fast path (_decode_plain).
_NOT_PLAIN: Final = (
    _UID, _STATUS, _DATA_QUALITY, q(EI, "signalPayload"), q(OADR, "oadrGBPayload"),
)

# Below this many intervals one by one is the faster path (one process, best of 7: one
# interval of one payload 3.8 us against 9.8 us by the block, eight of two payloads 37.5 against
# 36.8, twenty of one 66.0 against 63.6).
PLAIN_BLOCK_AT_LEAST: Final = 8


def encode_intervals(parent: Node, intervals: tuple[ReportInterval, ...]) -> None:
    """strm:intervals (omitted when empty: the XSD wants at least one ei:interval inside)."""
    if not intervals:
        return
    holder = sub(parent, _INTERVALS)
    for interval in intervals:
        _encode_interval(holder, interval)


def decode_intervals(element: etree._Element) -> tuple[ReportInterval, ...]:
    """The ei:interval children of a strm:intervals element, in order."""
    if len(element) >= PLAIN_BLOCK_AT_LEAST:
        plain = _decode_plain(element)
        if plain is not None:
            return plain
    return tuple(decode_interval(interval) for interval in element)


def _decode_plain(element: etree._Element) -> tuple[ReportInterval, ...] | None:
    """Plain telemetry read in a few C-filtered passes, one proxy per value
    and per interval; None when the block has another shape. An interval may carry several
    payloads (a device's power, natural power and forecasts at one instant).

    The XSD makes the counts conclusive: every interval has at most one dtstart and duration and
    at least one payload, every payload exactly one rID and at most one confidence and accuracy,
    so n dtstarts (2n xcal:duration: outer and inner) for n intervals means exactly one per
    interval, and the other children of each are its payloads when they add up to the rIDs and
    values (one each per payload); p confidences for p payloads means one per payload, 0 none
    anywhere; and no element outside this shape appears anywhere.
    """
    count = len(element)
    # The first interval's last payload ends in a leaf, an oadrDataQuality (its payloadBase is
    # the one child with children): a look at three proxies before the subtree pass.
    if not len(element[0][-1][-1]) or next(element.iter(*_NOT_PLAIN), None) is not None:
        return None
    starts = [e.text or "" for e in element.iter(_DATE_TIME)]
    durations = [e.text or "" for e in element.iter(_DURATION)][1::2]
    if not len(starts) == len(durations) == count:
        return None
    sizes = [len(interval) - 2 for interval in element]  # all but dtstart and duration
    r_ids = [e.text or "" for e in element.iter(_R_ID)]
    values = [e.text or "" for e in element.iter(_VALUE)]
    total = len(r_ids)
    if not sum(sizes) == total == len(values) or min(sizes) < 1:
        return None
    confidences = [e.text or "" for e in element.iter(_CONFIDENCE)]
    accuracies = [e.text or "" for e in element.iter(_ACCURACY)]
    if len(confidences) not in (0, total) or len(accuracies) not in (0, total):
        return None
    # Values are read in document order, as decode_interval would, so a bad one is reported
    # the same way on either path.
    intervals = []
    first = 0
    for i, size in enumerate(sizes):
        dtstart = parse_datetime(starts[i])
        duration = parse_duration(durations[i])
        check_period(dtstart, duration)
        if size == 1 and not confidences and not accuracies:  # one value, the common interval
            payloads: tuple[ReportPayload, ...] = (
                _payload(r_ids[first], None, None, parse_float(values[first]), None),)
        else:
            payloads = tuple([_payload(
                r_ids[j],
                int(confidences[j]) if confidences else None,
                parse_float(accuracies[j]) if accuracies else None,
                parse_float(values[j]),
                None,
            ) for j in range(first, first + size)])
        intervals.append(_interval(payloads, dtstart, duration, None))
        first += size
    return tuple(intervals)
