"""Hardened intake: what a hostile peer tried, and that the process lives on to answer it."""

from __future__ import annotations

import pytest
from lxml import etree

import schemas
from schemas import HostileDocument, MalformedXml, SchemaViolation, UnknownPayload
from schemas._intake import _UTF8_DECLARATIONS, Intake, _markup_free, _new_parser

POLL = schemas.encode(schemas.Poll(ven_id="ven-1"))

# The payload that segfaults lxml 5/6 when a schema-validating parser meets a DTD entity; it also
# carries an external entity (XXE). We refuse it on a byte scan before libxml2 sees it.
DTD_ENTITY = POLL.replace(
    b"<oadr:oadrPayload",
    b'<!DOCTYPE oadr:oadrPayload [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<oadr:oadrPayload',
).replace(b">ven-1<", b">&xxe;<")

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)


@pytest.mark.parametrize(
    ("what", "payload"),
    [
        ("DTD with an external entity (XXE) inside a valid oadrPoll", DTD_ENTITY),
        ("billion laughs entity expansion", BILLION_LAUGHS),
        ("lower-case doctype", b"<!doctype x><x/>"),
        ("bare ENTITY declaration", b"<x><!ENTITY a 'b'></x>"),
    ],
)
def test_declarations_are_refused_before_parsing(what: str, payload: bytes) -> None:
    with pytest.raises(HostileDocument, match="DOCTYPE") as caught:
        schemas.decode(payload)
    assert caught.value.response_code == 454, what


def test_deep_nesting_is_refused() -> None:
    deep = b"<a>" * 10_000 + b"</a>" * 10_000
    with pytest.raises(HostileDocument, match="deep"):
        schemas.decode(deep)


def test_fifty_megabyte_body_is_refused_without_parsing() -> None:
    body = POLL + b" " * (50 * 1024 * 1024)
    with pytest.raises(HostileDocument, match="over the"):
        schemas.decode(body)


@pytest.mark.parametrize(
    ("what", "payload", "error"),
    [
        ("truncated", POLL[:-20], MalformedXml),
        ("empty", b"", MalformedXml),
        ("latin-1 bytes", POLL.replace(b"ven-1", "vén".encode("latin-1")), MalformedXml),
        ("utf-16", POLL.decode().replace("UTF-8", "UTF-16").encode("utf-16"), HostileDocument),
        ("schema-invalid", POLL.replace(b"ei:venID", b"ei:partyID"), SchemaViolation),
        ("valid element that is not a payload",
         b'<ei:venID xmlns:ei="http://docs.oasis-open.org/ns/energyinterop/201110">x</ei:venID>',
         UnknownPayload),
    ],
)
def test_bad_documents_get_their_error(what: str, payload: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        schemas.decode(payload)


def test_digit_only_ids_stay_strings_and_markup_is_escaped() -> None:
    message = schemas.Poll(ven_id="000123<b>&amp;")
    wire = schemas.encode(message)
    assert b"<b>" not in wire
    assert schemas.decode(wire) == message


def _poll_with_ven_id(raw: bytes) -> bytes:
    return POLL.replace(b">ven-1<", b">" + raw + b"<")


@pytest.mark.parametrize(
    ("what", "ven_id"),
    [
        ("one plain run", b"v" * 513),
        ("split by a comment", b"v" * 300 + b"<!-- -->" + b"v" * 213),
        ("split by a CDATA section", b"v" * 300 + b"<![CDATA[" + b"v" * 213 + b"]]>"),
        ("split by a processing instruction", b"v" * 300 + b"<?pi x?>" + b"v" * 213),
    ],
)
def test_an_identifier_over_the_cap_is_refused_however_it_is_spelled(what: str,
                                                                     ven_id: bytes) -> None:
    """The one-scan path for plain documents must not let a split identifier through: any "<!"
    or "<?" sends the document to the full check (libxml2 merges the pieces into one text)."""
    assert schemas.decode(_poll_with_ven_id(b"v" * 512)) == schemas.Poll(ven_id="v" * 512)
    with pytest.raises(schemas.InvalidData, match="512-character cap") as caught:
        schemas.decode(_poll_with_ven_id(ven_id))
    assert caught.value.response_code == 454, what


@pytest.mark.parametrize("head", [b"", b"\xef\xbb\xbf"], ids=["plain", "behind a BOM"])
def test_a_declaration_after_the_xml_declaration_is_refused(head: bytes) -> None:
    """The scan skips only the "<?xml" that opens a document, nothing after it."""
    body = POLL.split(b"?>", 1)[1]
    for declaration in (b"<?xml version='1.0' encoding='UTF-8'?><!DOCTYPE x>",
                        b"<?xml version='1.0'?><!ENTITY a 'b'>"):
        with pytest.raises(HostileDocument, match="DOCTYPE"):
            schemas.decode(head + declaration + body)


@pytest.mark.parametrize("head", [b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?>",
                                  b"   <?pi x?>"],
                         ids=["declaration behind a BOM", "instruction at byte 3"])
def test_an_identifier_split_by_an_instruction_is_refused_whatever_opens_the_document(
        head: bytes) -> None:
    """Whatever precedes the root, an instruction inside an identifier sends the document to the
    full check: skipping only a "<?" at byte 3 (where the XML declaration sits behind a BOM) let
    any document with one there through, whatever instructions followed."""
    body = _poll_with_ven_id(b"v" * 300 + b"<?pi x?>" + b"v" * 213).split(b"?>", 1)[1]
    with pytest.raises(schemas.InvalidData, match="512-character cap"):
        schemas.decode(head + body)


@pytest.mark.parametrize("declaration", _UTF8_DECLARATIONS)
def test_the_scan_skips_exactly_each_utf8_declaration(declaration: bytes) -> None:
    """The scan for "<?" starts right after the declaration that opens the document: an
    instruction at its first byte is seen, the declaration itself is not."""
    assert _markup_free(declaration + b"<x/>", declared_utf8=True)
    assert not _markup_free(declaration + b"<?pi x?><x/>", declared_utf8=True)


def test_an_undefined_entity_is_named_in_the_error() -> None:
    """The push parser alone would say "no element found (line 0)"; the refusal is worded by the
    one-shot parse, which names the entity and where it stands."""
    with pytest.raises(MalformedXml, match="Entity 'nbsp' not defined, line 2"):
        schemas.decode(_poll_with_ven_id(b"ven&nbsp;1"))


def test_a_refused_document_leaves_the_parser_ready_for_the_next() -> None:
    """The intake's push parser is reused: a document it refused half-way must not run on into
    the next one (the tail of a truncated poll would otherwise complete it)."""
    codec = schemas.Codec()
    head, tail = POLL[:-40], POLL[-40:]
    for refused in (head, POLL.replace(b"</ei:venID>", b"</ei:vtnID>"), b"<a>" * 300):
        with pytest.raises(schemas.InvalidData):
            codec.decode(refused)
        with pytest.raises(MalformedXml):
            codec.decode(tail)
        assert codec.decode(POLL) == schemas.Poll(ven_id="ven-1")


def _one_shot(data: bytes) -> bytes | None:
    try:
        return etree.tostring(etree.fromstring(data, _new_parser()))
    except etree.XMLSyntaxError:
        return None


def _intake(intake: Intake, data: bytes) -> bytes | None:
    try:
        return etree.tostring(intake.parse(data))
    except MalformedXml:
        return None


@pytest.mark.parametrize("message", [schemas.Poll(ven_id="ven-1"),
                                     schemas.QueryRegistration(request_id="q-1")],
                         ids=lambda m: type(m).__name__)
def test_the_push_parser_accepts_and_refuses_what_the_one_shot_parser_does(
        message: schemas.Message) -> None:
    """Every prefix of the payload, and the payload with one byte dropped or one "<" or "&"
    added at each place: the same verdict and the same tree either way (the variants the byte
    scan refuses before parsing, a declaration made to name another encoding, are left out)."""
    intake, data = Intake(), schemas.encode(message)
    compared = 0
    for cut in range(1, len(data) + 1):
        for variant in (data[:cut], data[:cut - 1] + data[cut:],
                        data[:cut] + b"<" + data[cut:], data[:cut] + b"&" + data[cut:]):
            try:
                ours = _intake(intake, variant)
            except HostileDocument:
                continue
            assert ours == _one_shot(variant), variant
            compared += 1
    assert compared > 3 * len(data)
