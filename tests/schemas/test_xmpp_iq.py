"""The IQ a payload travels in (:func:`schemas.xmpp.iq_bytes`): our encoder's bytes unchanged
inside, the attributes escaped, and what the stream's parser reads back is the payload."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from schemas import Codec, EiResponse, Response
from schemas.xmpp import MAX_DEPTH, error_bytes, iq_bytes, nested_deeper_than, payload_of


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


def test_an_error_names_its_condition_and_escapes_what_it_carries():
    raw = error_bytes(iq_id="a'b", to="ven@localhost/x&y", condition="not-acceptable",
                      kind="modify", text="<over> & out")
    iq = ET.fromstring(b"<s xmlns='jabber:client'>" + raw + b"</s>")[0]
    assert (iq.get("type"), iq.get("id"), iq.get("to")) == ("error", "a'b", "ven@localhost/x&y")
    stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
    error = iq.find("{jabber:client}error")
    assert error is not None and error.get("type") == "modify"
    assert error.find(f"{{{stanzas}}}not-acceptable") is not None
    assert error.findtext(f"{{{stanzas}}}text") == "<over> & out"


def test_nesting_is_measured_from_the_stanza_without_recursion():
    def nested(depth: int) -> ET.Element:
        return ET.fromstring("<a><b/>" + "<c>" * (depth - 1) + "</c>" * (depth - 1) + "</a>")

    assert not nested_deeper_than(nested(MAX_DEPTH), MAX_DEPTH)
    assert nested_deeper_than(nested(MAX_DEPTH + 1), MAX_DEPTH)
    assert nested_deeper_than(nested(50_000), MAX_DEPTH)  # far past Python's recursion limit
