"""schemas.xmppframes: which IQs the framer takes off a client stream as bytes, that what it
passes on is the rest of the stream unchanged and in order however the reads cut it, and that
the bytes taken decode as the payload slixmpp's tree would have given."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import EiResponse, Poll, Response
from schemas.xmpp import PAYLOAD_NAMESPACE as OADR
from schemas.xmpp import payload_of
from schemas.xmppframes import IQ_SLACK_BYTES, PayloadFramer, PayloadRequest, StreamSplitter

_HEAD = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
         b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' version='1.0'>")
_PAYLOAD = (f"<oadrPayload xmlns='{OADR}'><oadrSignedObject><x a='&gt;&apos;' b='/>'>"
            "t &amp; u /></x><y/></oadrSignedObject></oadrPayload>").encode()
_FROM = "0123456789abcdef0123@localhost/dev"
_IQ = (f"<iq type='set' id='7' from='{_FROM}' to='vtn@localhost/r'>").encode() + _PAYLOAD + b"</iq>"
_OTHERS = (b"<iq type='result' id='1' from='a@localhost/b' to='vtn@localhost/r'/> ",
           b"<iq type='set' id='2' from='a@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>",
           b"<message from='a@localhost/b'><body>&lt;iq&gt;</body></message>\n")


def _frame(chunks: list[bytes], limit: int = 1 << 20) -> tuple[bytes, list[PayloadRequest]]:
    framer = PayloadFramer(limit)
    out = [piece for chunk in chunks for piece in framer.feed(chunk)]
    return (b"".join(p for p in out if isinstance(p, bytes)),
            [p for p in out if isinstance(p, PayloadRequest)])


def _cuts(data: bytes, at: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(at)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def test_an_iq_set_carrying_a_payload_is_taken_with_the_payload_byte_for_byte() -> None:
    passed, taken = _frame([_HEAD + _OTHERS[0] + _IQ + _OTHERS[1] + _OTHERS[2]])
    assert passed == _HEAD + b"".join(_OTHERS)
    assert taken == [PayloadRequest({"type": "set", "id": "7", "from": _FROM,
                                     "to": "vtn@localhost/r"}, _PAYLOAD)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(_HEAD + _OTHERS[0] + _IQ + _OTHERS[1]) * 2), max_size=6))
def test_however_the_reads_cut_the_stream_the_same_comes_out(cuts: list[int]) -> None:
    stream = _HEAD + _OTHERS[0] + _IQ + _OTHERS[1] + _IQ + _OTHERS[2]
    passed, taken = _frame(_cuts(stream, [c % len(stream) for c in cuts]))
    assert passed == _HEAD + b"".join(_OTHERS)
    assert [t.payload for t in taken] == [_PAYLOAD, _PAYLOAD]


def test_one_byte_at_a_time_the_same_comes_out() -> None:
    stream = _HEAD + _IQ + _OTHERS[0]
    passed, taken = _frame([stream[i:i + 1] for i in range(len(stream))])
    assert passed == _HEAD + _OTHERS[0]
    assert [t.payload for t in taken] == [_PAYLOAD]


def test_an_iq_inside_another_stanza_is_not_taken_and_its_from_is_never_read() -> None:
    # Only the root's children carry a server-stamped "from": an IQ nested in a message (a
    # sender's own markup) is passed on as part of its message.
    nested = (f"<message from='a@localhost/b'><x xmlns='urn:example'>"
              f"<iq type='set' id='9' from='{_FROM}'>").encode() + _PAYLOAD + b"</iq></x></message>"
    passed, taken = _frame([_HEAD + nested])
    assert (passed, taken) == (_HEAD + nested, [])


@pytest.mark.parametrize("stanza", [
    pytest.param(b"<iq type='get' id='1'>" + _PAYLOAD + b"</iq>", id="an IQ get"),
    pytest.param(b"<iq type='result' id='1'>" + _PAYLOAD + b"</iq>", id="an IQ result"),
    pytest.param(f"<iq type='set' id='1'><oadr:oadrPayload xmlns:oadr='{OADR}'/></iq>".encode(),
                 id="a prefixed payload"),
    pytest.param(f"<iq type='set' id='1' xmlns:o='{OADR}'><o:oadrPayload xmlns:o='{OADR}'>"
                 "<o:x/></o:oadrPayload></iq>".encode(), id="a prefix declared on the IQ"),
    pytest.param(f"<iq type='set' id='1' xmlns='{OADR}'><oadrPayload><x/></oadrPayload>"
                 "</iq>".encode(), id="the namespace inherited from the IQ"),
    pytest.param(b"<iq type='set' id='1'><oadrPayload xmlns='urn:other'><x/></oadrPayload></iq>",
                 id="another namespace"),
    pytest.param(f"<iq type='set' id='1'><oadrPayload xmlns='{OADR}'/></iq>".encode(),
                 id="a self-closing payload"),
    pytest.param(b"<iq type='set' id='1'>" + _PAYLOAD + b"<error/></iq>", id="a second child"),
    pytest.param(b"<iq type='set' id='1'><query xmlns='urn:q'/>" + _PAYLOAD + b"</iq>",
                 id="a payload after another child"),
])
def test_an_iq_of_another_shape_is_passed_on_unchanged(stanza: bytes) -> None:
    assert _frame([_HEAD + stanza + _OTHERS[0]]) == (_HEAD + stanza + _OTHERS[0], [])


def test_a_stream_declaring_other_prefixes_on_its_root_keeps_every_iq() -> None:
    # a payload could lean on the root's prefixes: alone its bytes would mean something else
    head = _HEAD.replace(b"version='1.0'>", b"xmlns:o='urn:o' version='1.0'>")
    assert _frame([head + _IQ]) == (head + _IQ, [])


def test_an_iq_over_the_payload_cap_is_passed_on_not_held() -> None:
    limit = 256
    big = (f"<iq type='set' id='1'><oadrPayload xmlns='{OADR}'><x>").encode()
    framer = PayloadFramer(limit)
    first = framer.feed(_HEAD + big + b"v" * (limit + IQ_SLACK_BYTES))
    assert b"".join(p for p in first if isinstance(p, bytes)) == (
        _HEAD + big + b"v" * (limit + IQ_SLACK_BYTES))
    assert framer.feed(b"</x></oadrPayload></iq>") == [b"</x></oadrPayload></iq>"]


def test_a_payload_within_the_cap_but_over_it_is_taken_for_the_size_check() -> None:
    # taken whole within one read: the transport refuses it by its length before decoding
    _passed, taken = _frame([_HEAD + _IQ], limit=16)
    assert [t.payload for t in taken] == [_PAYLOAD]


def test_after_a_stream_that_is_not_well_formed_everything_is_passed_on_unread() -> None:
    framer = PayloadFramer(1 << 20)
    assert framer.feed(_HEAD + b"<iq type='set'></message>") == [
        _HEAD + b"<iq type='set'></message>"]
    assert framer.feed(_IQ) == [_IQ]


def test_the_bytes_taken_decode_as_the_payload_slixmpp_would_have_given() -> None:
    message = Response(response=EiResponse(request_id="r1"), ven_id="v1")
    for body in (schemas.encode(message), schemas.encode(Poll(ven_id="v1"))):
        tree = ET.fromstring(b"<iq xmlns='jabber:client' type='set' id='1'>"
                             + body[body.index(b"?>") + 2:] + b"</iq>")
        # the form an XMPP server writes it in: every element unprefixed, namespaces declared
        # where they change
        served = _server_form(tree[0], "jabber:client")
        _passed, taken = _frame([_HEAD + b"<iq type='set' id='1'>" + served + b"</iq>"])
        assert [t.payload for t in taken] == [served]
        slow = payload_of(tree)
        assert slow is not None
        assert schemas.decode(served) == schemas.decode(slow)


def _server_form(element: ET.Element, parent: str) -> bytes:
    namespace, local = element.tag[1:].split("}")
    declared = f" xmlns='{namespace}'" if namespace != parent else ""
    attributes = "".join(f" {k}='{v}'" for k, v in element.attrib.items() if "}" not in k)
    inner = b"".join(_server_form(c, namespace) for c in element)
    text = (element.text or "").replace("&", "&amp;").replace("<", "&lt;").encode()
    return f"<{local}{declared}{attributes}>".encode() + text + inner + f"</{local}>".encode()


class _CountingFramer(PayloadFramer):
    """Counts the start tags its handler was called for."""

    def __init__(self, max_payload_bytes: int) -> None:
        self.starts = 0
        super().__init__(max_payload_bytes)

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self.starts += 1
        super()._start(name, attributes)


_BIG = (f"<oadrPayload xmlns='{OADR}'><oadrSignedObject>".encode()
        + b"<a><b>1</b><c x='>'/></a>" * 50 + b"</oadrSignedObject></oadrPayload>")


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_the_elements_inside_a_payload_call_no_handler(size: int) -> None:
    # the stream root, the IQ and the payload: not the 151 elements inside it, however the
    # reads cut the stream
    iq = b"<iq type='set' id='1'>" + _BIG + b"</iq>"
    stream = _HEAD + iq + _OTHERS[0]
    framer = _CountingFramer(1 << 20)
    out = [p for i in range(0, len(stream), size) for p in framer.feed(stream[i:i + size])]
    assert [p.payload for p in out if isinstance(p, PayloadRequest)] == [_BIG]
    assert b"".join(p for p in out if isinstance(p, bytes)) == _HEAD + _OTHERS[0]
    assert framer.starts == 3 + 1  # and the IQ result after it


# content whose first "</oadrPayload>" is not the payload's end tag
_TRICKY = [
    pytest.param(f"<oadrPayload xmlns='{OADR}'><x><oadrPayload><y/></oadrPayload>"
                 "<oadrPayloadResourceStatus/></x></oadrPayload>", id="a nested payload"),
    pytest.param(f"<oadrPayload xmlns='{OADR}'><x><!-- </oadrPayload> --></x></oadrPayload>",
                 id="an end tag in a comment"),
    pytest.param(f"<oadrPayload xmlns='{OADR}'><x><![CDATA[</oadrPayload>]]></x></oadrPayload>",
                 id="an end tag in CDATA"),
    pytest.param(f"<oadrPayload xmlns='{OADR}'><x><?pi </oadrPayload>?></x></oadrPayload >",
                 id="an end tag in an instruction"),
]


@pytest.mark.parametrize("payload", _TRICKY)
@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(0, 400), max_size=5))
def test_a_payload_whose_content_holds_its_end_tag_is_taken_whole(payload: str,
                                                                  cuts: list[int]) -> None:
    iq = b"<iq type='set' id='1'>" + payload.encode() + b"</iq>"
    stream = _HEAD + iq + _OTHERS[0] + _IQ
    passed, taken = _frame(_cuts(stream, [c % len(stream) for c in cuts]))
    assert passed == _HEAD + _OTHERS[0]
    assert [t.payload for t in taken] == [payload.encode(), _PAYLOAD]


def test_a_payload_not_well_formed_inside_passes_the_stream_on_unread() -> None:
    iq = f"<iq type='set' id='1'><oadrPayload xmlns='{OADR}'><x></oadrPayload></iq>".encode()
    assert _frame([_HEAD + iq + _IQ]) == (_HEAD + iq + _IQ, [])


def test_a_read_is_split_in_order_and_its_rest_left_once_the_stream_restarts() -> None:
    """StreamSplitter: before its first restart a read is passed on whole; then the bytes and
    the IQs taken go out in order; once passing on restarted the stream (a new one started on a
    stanza of the read), nothing more of the read is handed to either side."""
    out: list[bytes | PayloadRequest] = []
    splitter = StreamSplitter(1 << 20, out.append)
    splitter.read(_HEAD + _IQ, out.append)
    assert out == [_HEAD + _IQ]

    out.clear()
    splitter.restart()
    splitter.read(_HEAD + _OTHERS[0] + _IQ + _OTHERS[1], out.append)
    assert [type(p) for p in out] == [bytes, PayloadRequest, bytes]
    assert out[0] == _HEAD + _OTHERS[0] and out[2] == _OTHERS[1]

    def restarting(piece: bytes) -> None:
        out.append(piece)
        splitter.restart()

    out.clear()
    splitter.restart()
    splitter.read(_HEAD + _OTHERS[0] + _IQ + _OTHERS[1], restarting)
    assert out == [_HEAD + _OTHERS[0]]
