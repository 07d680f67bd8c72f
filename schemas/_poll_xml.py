"""Wire form of :mod:`schemas.poll`."""

from __future__ import annotations

from lxml import etree

from ._base import builder
from ._wire import (
    EI,
    OADR,
    child,
    children,
    only_text,
    q,
    text_opt,
)
from ._writer import Node, leaf, leaf_opt, payload_root
from .parts import decode_response, encode_response
from .poll import Poll, Response

_POLL = q(OADR, "oadrPoll")
_RESPONSE = q(OADR, "oadrResponse")
_VEN_ID = q(EI, "venID")
_EI_RESPONSE = q(EI, "eiResponse")
_new_poll = builder(Poll)


def encode_poll(parent: Node, message: Poll) -> None:
    leaf(payload_root(_POLL, parent), _VEN_ID, message.ven_id)


def decode_poll(element: etree._Element) -> Poll:
    return _new_poll(ven_id=only_text(element))  # ei:venID, the XSD's one child


def encode_oadr_response(parent: Node, message: Response) -> None:
    element = payload_root(_RESPONSE, parent)
    encode_response(element, message.response)
    leaf_opt(element, _VEN_ID, message.ven_id)


def decode_oadr_response(element: etree._Element) -> Response:
    kids = children(element)
    return Response(
        response=decode_response(child(kids, _EI_RESPONSE)),
        ven_id=text_opt(kids, _VEN_ID),
    )


ENCODERS = {Poll: encode_poll, Response: encode_oadr_response}
DECODERS = {_POLL: decode_poll, _RESPONSE: decode_oadr_response}
