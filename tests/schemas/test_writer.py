"""The text writer behind every encoder (schemas/_writer.py): its bytes are what lxml writes for
the same tree, they validate and decode back, and every text is escaped or refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import schemas
from schemas import LocalProtocolError
from schemas._wire import EI, OADR, q
from schemas._writer import Node, escape, escape_attribute, leaf
from tests.kit.clock import Clock
from tests.kit.signing import T0, make_identity, pair

from .strategies import ei_responses, ids
from .test_events import STRATEGIES as EVENT_MESSAGES
from .test_opt import STRATEGIES as OPT_MESSAGES
from .test_registration import STRATEGIES as REGISTRATION_MESSAGES
from .test_reports import PAYLOADS as REPORT_MESSAGES
from .xsd_oracle import assert_xsd_valid

MESSAGES: dict[str, st.SearchStrategy[schemas.Message]] = {
    "Poll": st.builds(schemas.Poll, ven_id=ids),
    "Response": st.builds(schemas.Response, response=ei_responses,
                          ven_id=st.one_of(st.none(), ids)),
    **{kind.__name__: strategy for kind, strategy in EVENT_MESSAGES.items()},
    **{kind.__name__: strategy for kind, strategy in OPT_MESSAGES.items()},
    **{kind.__name__: strategy for kind, strategy in REGISTRATION_MESSAGES.items()},
    **REPORT_MESSAGES,
}


def test_every_payload_type_has_a_strategy() -> None:
    assert len(MESSAGES) == 23


def _as_lxml_writes(wire: bytes) -> bytes:
    """The tree parsed from ``wire``, serialised by lxml (as the lxml builders before the writer
    did)."""
    return etree.tostring(etree.fromstring(wire), xml_declaration=True, encoding="UTF-8")


# An empty text is written <a></a>, as lxml writes an element whose text is "" (the builders'
# output); parsed back, its text is None, which lxml writes <a/>.
_EMPTY_TEXT = re.compile(rb"<([\w:.-]+)((?: [^>]*)?)></\1>")


def _collapsed(wire: bytes) -> bytes:
    return _EMPTY_TEXT.sub(rb"<\1\2/>", wire)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_written_bytes_are_lxmls_and_valid_and_decode_back(name: str) -> None:
    @settings(deadline=None, max_examples=25)
    @given(MESSAGES[name])
    def check(message: schemas.Message) -> None:
        wire = schemas.encode(message)
        assert _collapsed(wire) == _as_lxml_writes(wire)
        assert_xsd_valid(wire)
        assert schemas.decode(wire) == message

    check()


# Markup, entity look-alikes, quotes, CR (a raw one would be read back as LF), non-ASCII.
TRICKY = ("a<b>&c", "&amp;", "]]>", "x\"y'z", "line\r\nnext", "tab\there", "é€😀", "<!--", " ")


@pytest.mark.parametrize("value", TRICKY)
def test_texts_are_escaped_as_lxml_escapes_them_and_read_back(value: str) -> None:
    wire = schemas.encode(schemas.Poll(ven_id=value))
    assert wire == _as_lxml_writes(wire)
    element = etree.fromstring(wire).find(f".//{q(EI, 'venID')}")
    assert element is not None and element.text == value
    assert schemas.decode(wire) == schemas.Poll(ven_id=value)


@pytest.mark.parametrize("value", TRICKY)
def test_attribute_values_are_escaped_as_lxml_escapes_them(value: str) -> None:
    tag, name = q(OADR, "oadrPoll"), q(EI, "schemaVersion")
    node = Node(tag)
    node.set(name, value)
    out: list[str] = []
    node.render(out)
    reference = etree.Element(tag, nsmap={"oadr": OADR, "ei": EI})
    reference.set(name, value)
    expected = etree.tostring(reference, encoding="unicode").replace(
        f' xmlns:oadr="{OADR}"', "").replace(f' xmlns:ei="{EI}"', "")
    assert "".join(out) == expected
    assert escape_attribute(value).count("<") == 0 and escape(value).count("<") == 0


# Any character, and the ones that need care: markup, whitespace a parser normalises, what XML
# 1.0 cannot carry (controls, lone surrogates, U+FFFE/U+FFFF), length-changing non-ASCII.
_HOSTILE_PIECES = ("&", "<", ">", '"', "'", "]]>", "\r", "\n", "\t", "\x00", "\x1f", "\x7f",
                   "\x85", "\u2028", "\ud800", "\udfff", "\ufeff", "\ufffe", "\uffff", "\U0001f600")
_HOSTILE_TEXT = st.lists(st.one_of(st.characters(), st.sampled_from(_HOSTILE_PIECES)),
                         max_size=12).map("".join)


def _lxml_writes(value: str, attribute: bool) -> str | None:
    """``value`` as lxml serialises it as an element's text or attribute, None if it refuses."""
    element = etree.Element("x")
    try:
        element.set("a", value) if attribute else setattr(element, "text", value)
    except ValueError:
        return None
    written = etree.tostring(element, encoding="unicode")
    return written[len('<x a="'):-len('"/>')] if attribute else written[len("<x>"):-len("</x>")]


@settings(max_examples=400, deadline=None)
@given(_HOSTILE_TEXT)
def test_any_text_is_written_as_lxml_writes_it_or_refused_as_lxml_refuses_it(value: str) -> None:
    for attribute, writer in ((False, escape), (True, escape_attribute)):
        expected = _lxml_writes(value, attribute)
        if expected is None:
            with pytest.raises(LocalProtocolError):
                writer(value)
        else:
            assert writer(value) == expected


@pytest.mark.parametrize("value", ["nul\x00", "bell\x07", "esc\x1b", "lone\ud800", "\ufffe"])
def test_characters_xml_cannot_carry_are_refused_not_written(value: str) -> None:
    with pytest.raises(LocalProtocolError, match=r"XML 1\.0 cannot carry"):
        schemas.encode(schemas.Poll(ven_id=value))
    with pytest.raises(LocalProtocolError):
        leaf(Node(q(OADR, "oadrPoll")), q(EI, "venID"), value)


def test_an_element_outside_the_envelopes_namespaces_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="declares no prefix"):
        Node("{urn:elsewhere}thing")


@pytest.mark.parametrize("local", ["a><b", 'a x="1"', "a/", "", "1a", "a:b"])
def test_a_name_that_is_not_a_plain_xml_name_is_refused_not_written(local: str) -> None:
    """Names are written as given, so one that is not a name would be markup: refused, as lxml
    refuses it, for elements and attributes alike."""
    with pytest.raises(LocalProtocolError, match="not an XML name"):
        Node(q(OADR, local))
    with pytest.raises(LocalProtocolError, match="not an XML name"):
        Node(q(OADR, "oadrPoll")).set(q(EI, local), "v")


def test_signed_and_checked_encodings_still_go_through_a_tree() -> None:
    checked = schemas.Codec(validate_output=True)
    wire = checked.encode(schemas.Poll(ven_id="ven-1"))
    assert wire == schemas.encode(schemas.Poll(ven_id="ven-1"))
    assert isinstance(checked.build(schemas.Poll(ven_id="ven-1")), etree._Element)


def test_a_text_past_the_intakes_limits_still_signs_and_checks() -> None:
    """Signing and checking parse the written bytes back; our own output is not held to the
    limits libxml2 sets for untrusted input (one text node of at most 10 MB), so a long text
    signs, verifies and validates as it did when the encoders built the tree directly."""
    ven = make_identity("ven-long", kind="ec")
    sender, receiver = pair(ven.signer(), ven.cert_pem, schemas.SchemaSet(), Clock(T0))
    long_poll = schemas.Poll(ven_id="v" * 10_000_001)
    root = etree.fromstring(sender.encode(long_poll), etree.XMLParser(huge_tree=True))
    assert receiver.check_signature(root)[0] is schemas.SignatureState.VERIFIED
    assert root.findtext(f".//{q(EI, 'venID')}") == long_poll.ven_id
    checked = schemas.Codec(validate_output=True)
    assert checked.encode(long_poll) == schemas.encode(long_poll)
