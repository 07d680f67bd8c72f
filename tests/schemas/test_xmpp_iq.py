"""The IQ a payload travels in (:func:`schemas.xmpp.iq_bytes`): our encoder's bytes unchanged
inside, the attributes escaped, and what the stream's parser reads back is the payload."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from schemas import Codec, EiResponse, Response
from schemas.xmpp import iq_bytes, payload_of


def test_the_iq_carries_the_encoded_payload_byte_for_byte():
    codec = Codec()
    body = codec.encode(Response(response=EiResponse(request_id="r-1")))
    assert body.startswith(b"<?xml")
    raw = iq_bytes(kind="result", iq_id="a'b<c", to="ven@localhost/x&y", body=body)
    declaration_end = body.index(b"?>") + 2
    assert body[declaration_end:].lstrip() in raw
    # as the stream's parser reads it: inside <stream xmlns='jabber:client'>
    iq = ET.fromstring(b"<s xmlns='jabber:client'>" + raw + b"</s>")[0]
    assert iq.tag == "{jabber:client}iq"
    assert (iq.get("type"), iq.get("id"), iq.get("to")) == ("result", "a'b<c", "ven@localhost/x&y")
    carried = payload_of(iq)
    assert carried is not None
    assert codec.decode(carried) == codec.decode(body)
