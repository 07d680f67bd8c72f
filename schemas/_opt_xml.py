"""Wire form of :mod:`schemas.opt`, element order as in oadr_20b.xsd and ei:EiOptType.

oadrCreateOpt extends ei:EiOptType, so the EiOpt elements (optID .. createdDateTime) come first and
the oadr additions (requestID, qualifiedEventID, eiTarget, oadrDeviceClass) after them.
"""

from __future__ import annotations

from lxml import etree

from ._wire import (
    EI,
    EMIX,
    OADR,
    POWER,
    PYLD,
    XCAL,
    Children,
    check_period,
    child,
    children,
    format_datetime,
    only_text,
    parse_datetime,
    parse_duration,
    parse_int,
    q,
    text,
    text_opt,
)
from ._writer import Node, leaf, leaf_opt, leaf_value, payload_root, sub, sub_dtstart, sub_duration
from .events import OptType
from .opt import (
    Availability,
    CanceledOpt,
    CancelOpt,
    CreatedOpt,
    CreateOpt,
    OptReason,
    QualifiedEventId,
)
from .parts import decode_response, decode_target, encode_response, encode_target

_CREATE = q(OADR, "oadrCreateOpt")
_CREATED = q(OADR, "oadrCreatedOpt")
_CANCEL = q(OADR, "oadrCancelOpt")
_CANCELED = q(OADR, "oadrCanceledOpt")

_REQUEST_ID = q(PYLD, "requestID")
_EI_RESPONSE = q(EI, "eiResponse")
_OPT_ID = q(EI, "optID")
_OPT_TYPE = q(EI, "optType")
_OPT_REASON = q(EI, "optReason")
_MARKET_CONTEXT = q(EMIX, "marketContext")
_VEN_ID = q(EI, "venID")
_CREATED_DATE_TIME = q(EI, "createdDateTime")
_QUALIFIED_EVENT_ID = q(EI, "qualifiedEventID")
_EVENT_ID = q(EI, "eventID")
_MODIFICATION_NUMBER = q(EI, "modificationNumber")
_TARGET = q(EI, "eiTarget")
_DEVICE_CLASS = q(OADR, "oadrDeviceClass")
_END_DEVICE_ASSET = q(POWER, "endDeviceAsset")
_MRID = q(POWER, "mrid")
_VAVAILABILITY = q(XCAL, "vavailability")
_COMPONENTS = q(XCAL, "components")
_AVAILABLE = q(XCAL, "available")
_PROPERTIES = q(XCAL, "properties")


def _token(value: str) -> str:
    """xs:token normalisation: the schema compares collapsed whitespace, so do we."""
    return " ".join(value.split())


# ---------------------------------------------------------------- create


def _encode_vavailability(parent: Node, schedule: tuple[Availability, ...]) -> None:
    components = sub(sub(parent, _VAVAILABILITY), _COMPONENTS)
    for component in schedule:
        properties = sub(sub(components, _AVAILABLE), _PROPERTIES)
        sub_dtstart(properties, component.dtstart)
        sub_duration(properties, component.duration)


def _decode_availability(available: etree._Element) -> Availability:
    # XSD sequences: xcal:available holds xcal:properties alone, which starts with xcal:dtstart
    # and xcal:duration, both required
    properties = available[0]
    dtstart = parse_datetime(only_text(properties[0]))
    duration = parse_duration(only_text(properties[1]))
    check_period(dtstart, duration)
    return Availability(dtstart=dtstart, duration=duration)


def _decode_vavailability(kids: Children) -> tuple[Availability, ...] | None:
    element = kids.get(_VAVAILABILITY)
    if element is None:
        return None
    # xcal:vavailability holds xcal:components alone, and that only xcal:available elements
    return tuple([_decode_availability(available) for available in element[0]])


def _decode_qualified_event_id(kids: Children) -> QualifiedEventId | None:
    element = kids.get(_QUALIFIED_EVENT_ID)
    if element is None:
        return None
    # XSD sequence: ei:eventID, ei:modificationNumber
    return QualifiedEventId(
        event_id=element[0].text or "",
        modification_number=parse_int(element[1].text or ""),
    )


def encode_create(parent: Node, message: CreateOpt) -> None:
    element = payload_root(_CREATE, parent)
    leaf(element, _OPT_ID, message.opt_id)
    leaf(element, _OPT_TYPE, message.opt_type.value)
    leaf(element, _OPT_REASON, message.opt_reason.value)
    leaf_opt(element, _MARKET_CONTEXT, message.market_context)
    leaf(element, _VEN_ID, message.ven_id)
    if message.vavailability is not None:
        _encode_vavailability(element, message.vavailability)
    leaf_value(element, _CREATED_DATE_TIME, format_datetime(message.created_date_time))
    leaf(element, _REQUEST_ID, message.request_id)
    if message.qualified_event_id is not None:
        qualified = sub(element, _QUALIFIED_EVENT_ID)
        leaf(qualified, _EVENT_ID, message.qualified_event_id.event_id)
        leaf_value(qualified, _MODIFICATION_NUMBER,
                   str(message.qualified_event_id.modification_number))
    encode_target(element, message.target)
    if message.device_class:
        device_class = sub(element, _DEVICE_CLASS)
        for mrid in message.device_class:
            leaf(sub(device_class, _END_DEVICE_ASSET), _MRID, mrid)


def decode_create(element: etree._Element) -> CreateOpt:
    kids = children(element)
    device_class = kids.get(_DEVICE_CLASS)
    return CreateOpt(
        opt_id=text(kids, _OPT_ID),
        opt_type=OptType(_token(text(kids, _OPT_TYPE))),
        opt_reason=OptReason(_token(text(kids, _OPT_REASON))),
        market_context=text_opt(kids, _MARKET_CONTEXT),
        ven_id=text(kids, _VEN_ID),
        vavailability=_decode_vavailability(kids),
        created_date_time=parse_datetime(text(kids, _CREATED_DATE_TIME)),
        request_id=text(kids, _REQUEST_ID),
        qualified_event_id=_decode_qualified_event_id(kids),
        target=decode_target(child(kids, _TARGET)),
        device_class=() if device_class is None else tuple(
            text(children(asset), _MRID) for asset in device_class.iterchildren(_END_DEVICE_ASSET)
        ),
    )


# ---------------------------------------------------------------- acknowledgements and cancel


def encode_created(parent: Node, message: CreatedOpt) -> None:
    element = payload_root(_CREATED, parent)
    encode_response(element, message.response)
    leaf(element, _OPT_ID, message.opt_id)


def decode_created(element: etree._Element) -> CreatedOpt:
    # XSD sequence: ei:eiResponse, ei:optID
    return CreatedOpt(response=decode_response(element[0]), opt_id=element[1].text or "")


def encode_cancel(parent: Node, message: CancelOpt) -> None:
    element = payload_root(_CANCEL, parent)
    leaf(element, _REQUEST_ID, message.request_id)
    leaf(element, _OPT_ID, message.opt_id)
    leaf(element, _VEN_ID, message.ven_id)


def decode_cancel(element: etree._Element) -> CancelOpt:
    # XSD sequence: pyld:requestID, ei:optID, ei:venID
    return CancelOpt(
        request_id=element[0].text or "",
        opt_id=element[1].text or "",
        ven_id=element[2].text or "",
    )


def encode_canceled(parent: Node, message: CanceledOpt) -> None:
    element = payload_root(_CANCELED, parent)
    encode_response(element, message.response)
    leaf_opt(element, _OPT_ID, message.opt_id)


def decode_canceled(element: etree._Element) -> CanceledOpt:
    # XSD sequence: ei:eiResponse, ei:optID?
    return CanceledOpt(
        response=decode_response(element[0]),
        opt_id=element[1].text or "" if len(element) == 2 else None,
    )


ENCODERS = {
    CreateOpt: encode_create,
    CreatedOpt: encode_created,
    CancelOpt: encode_cancel,
    CanceledOpt: encode_canceled,
}
DECODERS = {
    _CREATE: decode_create,
    _CREATED: decode_created,
    _CANCEL: decode_cancel,
    _CANCELED: decode_canceled,
}
