"""Wire form of one oadrEvent (ei:eiEvent + oadrResponseRequired) and its parts.

Element order and optionality follow oadr_ei_20b.xsd (eiEventType, eventDescriptorType,
eiEventSignalType, eiEventBaselineType, IntervalType), oadr_xcal_20b.xsd (properties, tolerance)
and oadr_strm_20b.xsd (intervals). Event intervals carry only ``ei:signalPayload/ei:payloadFloat``:
an interval holding another stream payload (oadrReportPayload, oadrGBPayload) or a signalPayload
holding oadrPayloadResourceStatus is schema-valid elsewhere but meaningless in an event, so it is
refused as invalid data (454) rather than silently dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from lxml import etree

from ._errors import InvalidData
from ._wire import (
    EI,
    EMIX,
    OADR,
    STRM,
    XCAL,
    XSI,
    Children,
    check_period,
    child,
    children,
    enum_reader,
    format_datetime,
    format_duration,
    format_float,
    only_text,
    parse_datetime,
    parse_duration,
    parse_float,
    parse_int,
    q,
    read_dtstart,
    read_duration,
    text,
    text_opt,
    texts,
)
from ._writer import (
    Node,
    end_tag,
    leaf,
    leaf_all,
    leaf_opt,
    leaf_value,
    payload_float,
    render_parts,
    start_tag,
    sub,
    sub_dtstart,
    sub_duration,
    sub_period,
)
from .events import (
    ActivePeriod,
    Event,
    EventBaseline,
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    ResponseRequired,
    SignalType,
)
from .parts import Target, decode_target, encode_target
from .units import decode_item_base, encode_item_base, is_item_base_tag

OADR_EVENT = q(OADR, "oadrEvent")
_RESPONSE_REQUIRED = q(OADR, "oadrResponseRequired")
_EI_EVENT = q(EI, "eiEvent")
_TARGET = q(EI, "eiTarget")

_DESCRIPTOR = q(EI, "eventDescriptor")
_EVENT_ID = q(EI, "eventID")
_MOD_NUMBER = q(EI, "modificationNumber")
_MOD_DATE_TIME = q(EI, "modificationDateTime")
_MOD_REASON = q(EI, "modificationReason")
_PRIORITY = q(EI, "priority")
_EI_MARKET_CONTEXT = q(EI, "eiMarketContext")
_MARKET_CONTEXT = q(EMIX, "marketContext")
_CREATED = q(EI, "createdDateTime")
_STATUS = q(EI, "eventStatus")
_TEST_EVENT = q(EI, "testEvent")
_VTN_COMMENT = q(EI, "vtnComment")

_ACTIVE_PERIOD = q(EI, "eiActivePeriod")
_PROPERTIES = q(XCAL, "properties")
_COMPONENTS = q(XCAL, "components")
_TOLERANCE = q(XCAL, "tolerance")
_TOLERATE = q(XCAL, "tolerate")
_START_AFTER = q(XCAL, "startafter")
_NOTIFICATION = q(EI, "x-eiNotification")
_RAMP_UP = q(EI, "x-eiRampUp")
_RECOVERY = q(EI, "x-eiRecovery")

_SIGNALS = q(EI, "eiEventSignals")
_SIGNAL = q(EI, "eiEventSignal")
_SIGNAL_NAME = q(EI, "signalName")
_SIGNAL_TYPE = q(EI, "signalType")
_SIGNAL_ID = q(EI, "signalID")
_CURRENT_VALUE = q(EI, "currentValue")

_INTERVALS = q(STRM, "intervals")
_INTERVAL = q(EI, "interval")
_DTSTART = q(XCAL, "dtstart")
_DURATION = q(XCAL, "duration")
_UID = q(XCAL, "uid")
_TEXT = q(XCAL, "text")
_SIGNAL_PAYLOAD = q(EI, "signalPayload")

_BASELINE = q(EI, "eiEventBaseline")
_BASELINE_ID = q(EI, "baselineID")
_BASELINE_NAME = q(EI, "baselineName")
_RESOURCE_ID = q(EI, "resourceID")
_read_status: Final = enum_reader(EventStatus)
_read_signal_type: Final = enum_reader(SignalType)
_read_response_required: Final = enum_reader(ResponseRequired)


# ---------------------------------------------------------------- intervals


def _sub_float(parent: Node, tag: str, value: float) -> None:
    parent.parts.append(start_tag(tag) + payload_float(format_float(value)) + end_tag(tag))


def _encode_intervals(parent: Node, intervals: tuple[EventInterval, ...]) -> None:
    holder = sub(parent, _INTERVALS)
    for interval in intervals:
        element = sub(holder, _INTERVAL)
        sub_period(element, interval.dtstart, interval.duration)
        if interval.uid is not None:
            leaf(sub(element, _UID), _TEXT, interval.uid)
        for value in interval.values:
            _sub_float(element, _SIGNAL_PAYLOAD, value)


def _read_float(holder: etree._Element) -> float:
    """The value inside a signalPayload or currentValue, which must be an ei:payloadFloat. Of the
    XSD's two payloadBase elements it is the one with a single child (ei:value): the other,
    oadrPayloadResourceStatus, has at least two (oadrOnline, oadrManualOverride). Counting
    children spares the tag string."""
    payload = holder[0] if len(holder) else None  # the XSD's one choice of stream payload
    if payload is None or len(payload) != 1:
        raise InvalidData(f"<{etree.QName(holder).localname}> in an event must hold payloadFloat")
    return parse_float(only_text(payload))


def _decode_interval(element: etree._Element) -> EventInterval:
    values: list[float] = []
    dtstart: datetime | None = None
    duration: timedelta | None = None
    uid: str | None = None
    for part in element:  # one pass: the parser keeps no comments, so every part is an element
        tag = part.tag
        if tag == _SIGNAL_PAYLOAD:
            values.append(_read_float(part))
        elif tag == _DURATION:
            duration = parse_duration(only_text(part))
        elif tag == _DTSTART:
            dtstart = parse_datetime(only_text(part))
        elif tag == _UID:
            uid = only_text(part)
        else:
            raise InvalidData(f"event interval holds <{etree.QName(part).localname}>")
    return EventInterval(values=tuple(values), duration=duration, uid=uid, dtstart=dtstart)


def _decode_intervals(intervals: etree._Element) -> tuple[EventInterval, ...]:
    # strm:intervals holds only ei:interval elements (XSD): no tag filter needed
    return tuple([_decode_interval(e) for e in intervals])


# ---------------------------------------------------------------- signals and baseline


def _encode_signal(parent: Node, signal: EventSignal) -> None:
    element = sub(parent, _SIGNAL)
    _encode_intervals(element, signal.intervals)
    if signal.target is not None:
        encode_target(element, signal.target)
    leaf(element, _SIGNAL_NAME, signal.signal_name)
    leaf(element, _SIGNAL_TYPE, signal.signal_type.value)
    leaf(element, _SIGNAL_ID, signal.signal_id)
    if signal.item_base is not None:
        encode_item_base(element, signal.item_base)
    if signal.current_value is not None:
        _sub_float(element, _CURRENT_VALUE, signal.current_value)


def _find_item_base(kids: Children) -> etree._Element | None:
    return next((e for tag, e in kids.items() if is_item_base_tag(tag)), None)


def _decode_signal(element: etree._Element) -> EventSignal:
    # eiEventSignalType: strm:intervals, eiTarget?, signalName, signalType, signalID, then the
    # optional itemBase and currentValue: the required ones by position, the optional by tag
    # itemBase and currentValue are told apart by their child count: currentValue holds one
    # payloadFloat, every itemBase at least itemDescription and itemUnits
    parts = list(element)
    name_at = 2 if parts[1].tag == _TARGET else 1
    item = current = None
    for part in parts[name_at + 3:]:
        if len(part) == 1:
            current = part
        else:
            item = part
    return EventSignal(
        intervals=_decode_intervals(parts[0]),
        # xs:token values: the XSD compares them whitespace-collapsed, so we do too
        signal_name=(parts[name_at].text or "").strip(),
        signal_type=_read_signal_type(parts[name_at + 1].text or ""),
        signal_id=parts[name_at + 2].text or "",
        target=None if name_at == 1 else decode_target(parts[1]),
        item_base=None if item is None else decode_item_base(item),
        current_value=None if current is None else _read_float(current),
    )


def _encode_baseline(parent: Node, baseline: EventBaseline) -> None:
    element = sub(parent, _BASELINE)
    sub_dtstart(element, baseline.dtstart)
    sub_duration(element, baseline.duration)
    _encode_intervals(element, baseline.intervals)
    leaf(element, _BASELINE_ID, baseline.baseline_id)
    leaf_all(element, _RESOURCE_ID, baseline.resource_ids)
    leaf(element, _BASELINE_NAME, baseline.baseline_name)
    if baseline.item_base is not None:
        encode_item_base(element, baseline.item_base)


def _decode_baseline(element: etree._Element) -> EventBaseline:
    kids = children(element)
    dtstart, duration = read_dtstart(kids), read_duration(kids)
    if dtstart is None or duration is None:
        raise InvalidData("<eiEventBaseline> lacks dtstart or duration")
    check_period(dtstart, duration)
    item = _find_item_base(kids)
    return EventBaseline(
        dtstart=dtstart,
        duration=duration,
        intervals=_decode_intervals(child(kids, _INTERVALS)),
        baseline_id=text(kids, _BASELINE_ID),
        baseline_name=text(kids, _BASELINE_NAME),
        resource_ids=texts(element, _RESOURCE_ID),
        item_base=None if item is None else decode_item_base(item),
    )


# ---------------------------------------------------------------- descriptor and active period


def _encode_descriptor(parent: Node, descriptor: EventDescriptor) -> None:
    element = sub(parent, _DESCRIPTOR)
    leaf(element, _EVENT_ID, descriptor.event_id)
    leaf_value(element, _MOD_NUMBER, str(descriptor.modification_number))
    if descriptor.modification_date_time is not None:
        leaf_value(element, _MOD_DATE_TIME, format_datetime(descriptor.modification_date_time))
    leaf_opt(element, _MOD_REASON, descriptor.modification_reason)
    if descriptor.priority is not None:
        leaf_value(element, _PRIORITY, str(descriptor.priority))
    leaf(sub(element, _EI_MARKET_CONTEXT), _MARKET_CONTEXT, descriptor.market_context)
    leaf_value(element, _CREATED, format_datetime(descriptor.created_date_time))
    leaf(element, _STATUS, descriptor.event_status.value)
    leaf_opt(element, _TEST_EVENT, descriptor.test_event)
    leaf_opt(element, _VTN_COMMENT, descriptor.vtn_comment)


def _decode_descriptor(element: etree._Element) -> EventDescriptor:
    # eventDescriptorType: eventID, modificationNumber, the optional modificationDateTime,
    # modificationReason and priority, eiMarketContext (the one child holding an element: it ends
    # that optional run), createdDateTime, eventStatus, the optional testEvent and vtnComment.
    # The required ones by position, the optional ones by tag.
    parts = list(element)
    market = 2
    while not len(parts[market]):
        market += 1
    middle = children(parts[2:market])
    tail = parts[market + 3:]  # testEvent?, vtnComment?: both, or one told by its tag
    test_event = vtn_comment = None
    if len(tail) == 2:
        test_event, vtn_comment = tail[0].text or "", tail[1].text or ""
    elif tail:
        if tail[0].tag == _TEST_EVENT:
            test_event = tail[0].text or ""
        else:
            vtn_comment = tail[0].text or ""
    modified = text_opt(middle, _MOD_DATE_TIME)
    priority = text_opt(middle, _PRIORITY)
    return EventDescriptor(
        event_id=parts[0].text or "",
        modification_number=parse_int(parts[1].text or ""),
        modification_date_time=None if modified is None else parse_datetime(modified),
        modification_reason=text_opt(middle, _MOD_REASON),
        priority=None if priority is None else parse_int(priority),
        market_context=only_text(parts[market]).strip(),
        created_date_time=parse_datetime(parts[market + 1].text or ""),
        event_status=_read_status(parts[market + 2].text or ""),
        test_event=test_event,
        vtn_comment=vtn_comment,
    )


def _encode_active_period(parent: Node, period: ActivePeriod) -> None:
    element = sub(parent, _ACTIVE_PERIOD)
    properties = sub(element, _PROPERTIES)
    sub_dtstart(properties, period.dtstart)
    sub_duration(properties, period.duration)
    if period.start_after is not None:
        tolerate = sub(sub(properties, _TOLERANCE), _TOLERATE)
        leaf_value(tolerate, _START_AFTER, format_duration(period.start_after))
    for tag, value in ((_NOTIFICATION, period.notification), (_RAMP_UP, period.ramp_up),
                       (_RECOVERY, period.recovery)):
        if value is not None:
            sub_duration(properties, value, tag)
    # xcal:components is required and nillable; 2.0b events have no sub-components
    sub(element, _COMPONENTS).set(q(XSI, "nil"), "true")


def _decode_active_period(element: etree._Element) -> ActivePeriod:
    # eiActivePeriodType: xcal:properties, xcal:components; properties: dtstart, duration, then
    # the optional tolerance, x-eiNotification, x-eiRampUp and x-eiRecovery (read by tag)
    parts = list(element[0])
    dtstart = parse_datetime(only_text(parts[0]))
    duration = parse_duration(only_text(parts[1]))
    check_period(dtstart, duration)
    if len(parts) == 2:
        return ActivePeriod(dtstart=dtstart, duration=duration)
    optional = children(parts[2:])
    tolerance = optional.get(_TOLERANCE)
    tolerate = None if tolerance is None else children(tolerance).get(_TOLERATE)
    start_after = None if tolerate is None else text_opt(children(tolerate), _START_AFTER)
    return ActivePeriod(
        dtstart=dtstart,
        duration=duration,
        start_after=None if start_after is None else parse_duration(start_after),
        notification=read_duration(optional, _NOTIFICATION),
        ramp_up=read_duration(optional, _RAMP_UP),
        recovery=read_duration(optional, _RECOVERY),
    )


# ---------------------------------------------------------------- the event


def event_texts(event: Event) -> tuple[str, str]:
    """One ``oadr:oadrEvent`` as text, split where its ei:eiTarget goes (the last child of
    ei:eiEvent): the text before the target and the text after it. Encoders join them around
    :func:`target_text` and reuse them through :class:`schemas._event_cache.EventEncodeCache`."""
    body = Node(_EI_EVENT)
    _encode_descriptor(body, event.descriptor)
    _encode_active_period(body, event.active_period)
    signals = sub(body, _SIGNALS)
    for signal in event.signals:
        _encode_signal(signals, signal)
    if event.baseline is not None:
        _encode_baseline(signals, event.baseline)
    return (_EVENT_HEAD + render_parts(body),
            f"{_EVENT_TAIL}{event.response_required.value}{_RESPONSE_REQUIRED_END}")


def target_text(target: Target) -> str:
    """An event's ei:eiTarget as text."""
    holder = Node(_EI_EVENT)
    encode_target(holder, target)
    return render_parts(holder)


_EVENT_HEAD: Final = start_tag(OADR_EVENT) + start_tag(_EI_EVENT)
_EVENT_TAIL: Final = end_tag(_EI_EVENT) + start_tag(_RESPONSE_REQUIRED)
_RESPONSE_REQUIRED_END: Final = end_tag(_RESPONSE_REQUIRED) + end_tag(OADR_EVENT)


def decode_event(holder: etree._Element) -> Event:
    """One ``oadr:oadrEvent`` element -> :class:`Event`. Its XSD fixes every position: oadrEvent
    holds ei:eiEvent and oadrResponseRequired, eiEvent its eventDescriptor, eiActivePeriod,
    eiEventSignals and eiTarget, and eiEventSignals one or more eiEventSignal and an optional
    eiEventBaseline last."""
    event, required = holder
    descriptor, period, signal_holder, target = event
    signals = list(signal_holder)
    baseline = signals.pop() if signals[-1].tag == _BASELINE else None
    return Event(
        descriptor=_decode_descriptor(descriptor),
        active_period=_decode_active_period(period),
        signals=tuple([_decode_signal(e) for e in signals]),
        baseline=None if baseline is None else _decode_baseline(baseline),
        target=decode_target(target),
        response_required=_read_response_required(required.text or ""),
    )

