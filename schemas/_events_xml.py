"""Wire form of :mod:`schemas.events`: oadrRequestEvent, oadrDistributeEvent, oadrCreatedEvent.

Element order follows oadr_20b.xsd (oadrDistributeEventType) and oadr_pyld_20b.xsd (eiRequestEvent,
eiCreatedEvent), oadr_ei_20b.xsd (eventResponses). One oadrEvent's own wire form lives in
:mod:`schemas._event_parts_xml`; oadrDistributeEvent appends its events through the encoding
codec's :class:`~schemas._event_cache.EventEncodeCache`, so it is not in ``ENCODERS`` but made per
cache by :func:`distribute_event_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from lxml import etree

from ._base import builder
from ._event_cache import EventEncodeCache
from ._event_parts_xml import decode_event
from ._wire import (
    EI,
    OADR,
    PYLD,
    child,
    children,
    enum_reader,
    parse_int,
    q,
    text,
    text_opt,
)
from ._writer import Node, leaf, leaf_opt, leaf_value, payload_root, sub
from .events import CreatedEvent, DistributeEvent, EventResponse, OptType, RequestEvent
from .parts import decode_response, encode_response

_REQUEST_EVENT = q(OADR, "oadrRequestEvent")
_DISTRIBUTE_EVENT = q(OADR, "oadrDistributeEvent")
_CREATED_EVENT = q(OADR, "oadrCreatedEvent")
_EI_REQUEST_EVENT = q(PYLD, "eiRequestEvent")
_EI_CREATED_EVENT = q(PYLD, "eiCreatedEvent")
_REQUEST_ID = q(PYLD, "requestID")
_REPLY_LIMIT = q(PYLD, "replyLimit")
_VEN_ID = q(EI, "venID")
_VTN_ID = q(EI, "vtnID")
_EI_RESPONSE = q(EI, "eiResponse")
_EVENT_RESPONSES = q(EI, "eventResponses")
_EVENT_RESPONSE = q(EI, "eventResponse")
_CODE = q(EI, "responseCode")
_DESCRIPTION = q(EI, "responseDescription")
_QUALIFIED_EVENT_ID = q(EI, "qualifiedEventID")
_EVENT_ID = q(EI, "eventID")
_MOD_NUMBER = q(EI, "modificationNumber")
_OPT_TYPE = q(EI, "optType")
_read_opt_type = enum_reader(OptType)


def encode_request_event(parent: Node, message: RequestEvent) -> None:
    element = sub(payload_root(_REQUEST_EVENT, parent), _EI_REQUEST_EVENT)
    leaf(element, _REQUEST_ID, message.request_id)
    leaf(element, _VEN_ID, message.ven_id)
    if message.reply_limit is not None:
        leaf_value(element, _REPLY_LIMIT, str(message.reply_limit))


def decode_request_event(payload: etree._Element) -> RequestEvent:
    kids = children(child(children(payload), _EI_REQUEST_EVENT))
    limit = text_opt(kids, _REPLY_LIMIT)
    return RequestEvent(
        request_id=text(kids, _REQUEST_ID),
        ven_id=text(kids, _VEN_ID),
        reply_limit=None if limit is None else parse_int(limit),
    )


def encode_distribute_event(parent: Node, message: DistributeEvent, *,
                            events: EventEncodeCache) -> None:
    element = payload_root(_DISTRIBUTE_EVENT, parent)
    if message.response is not None:
        encode_response(element, message.response)
    leaf(element, _REQUEST_ID, message.request_id)
    leaf(element, _VTN_ID, message.vtn_id)
    for event in message.events:
        events.append(element, event)


def distribute_event_encoder(
        events: EventEncodeCache) -> Callable[[Node, DistributeEvent], None]:
    """The oadrDistributeEvent encoder that builds or copies each oadrEvent through ``events``."""
    return partial(encode_distribute_event, events=events)


def decode_distribute_event(element: etree._Element) -> DistributeEvent:
    # oadrDistributeEventType: eiResponse? (the one child that holds elements), requestID,
    # vtnID, oadrEvent*: read by position
    parts = list(element)
    start = 1 if len(parts[0]) else 0
    return DistributeEvent(
        response=decode_response(parts[0]) if start else None,
        request_id=parts[start].text or "",
        vtn_id=parts[start + 1].text or "",
        events=tuple([decode_event(e) for e in parts[start + 2:]]),
    )


def _encode_event_response(parent: Node, response: EventResponse) -> None:
    element = sub(parent, _EVENT_RESPONSE)
    leaf_value(element, _CODE, f"{response.code:03d}")
    leaf_opt(element, _DESCRIPTION, response.description)
    leaf(element, _REQUEST_ID, response.request_id)
    qualified = sub(element, _QUALIFIED_EVENT_ID)
    leaf(qualified, _EVENT_ID, response.event_id)
    leaf_value(qualified, _MOD_NUMBER, str(response.modification_number))
    leaf(element, _OPT_TYPE, response.opt_type.value)


_new_event_response = builder(EventResponse)
_new_created_event = builder(CreatedEvent)


def _decode_event_response(element: etree._Element) -> EventResponse:
    # XSD sequence: ei:responseCode, ei:responseDescription?, pyld:requestID,
    # ei:qualifiedEventID (ei:eventID, ei:modificationNumber), ei:optType; read by position
    parts = list(element)
    qualified = parts[-2]
    return _new_event_response(
        code=parse_int(parts[0].text or ""),
        description=parts[1].text or "" if len(parts) == 5 else None,
        request_id=parts[-3].text or "",
        event_id=qualified[0].text or "",
        modification_number=parse_int(qualified[1].text or ""),
        opt_type=_read_opt_type(parts[-1].text or ""),
    )


def encode_created_event(parent: Node, message: CreatedEvent) -> None:
    element = sub(payload_root(_CREATED_EVENT, parent), _EI_CREATED_EVENT)
    encode_response(element, message.response)
    # eventResponses may be present and empty; we write it only when it has something to say
    if message.event_responses:
        holder = sub(element, _EVENT_RESPONSES)
        for response in message.event_responses:
            _encode_event_response(holder, response)
    leaf(element, _VEN_ID, message.ven_id)


def decode_created_event(payload: etree._Element) -> CreatedEvent:
    # XSD: oadrCreatedEvent holds pyld:eiCreatedEvent alone, a sequence of ei:eiResponse,
    # ei:eventResponses? (ei:eventResponse*), ei:venID; read by position
    body = payload[0]
    return _new_created_event(
        response=decode_response(body[0]),
        event_responses=tuple([_decode_event_response(e) for e in body[1]])
        if len(body) == 3 else (),
        ven_id=body[-1].text or "",
    )


ENCODERS = {
    RequestEvent: encode_request_event,
    CreatedEvent: encode_created_event,
}
DECODERS = {
    _REQUEST_EVENT: decode_request_event,
    _DISTRIBUTE_EVENT: decode_distribute_event,
    _CREATED_EVENT: decode_created_event,
}
