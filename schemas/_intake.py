"""Hardened intake: bytes from the network become an lxml tree, or a :class:`HostileDocument`.

Invariants:
- Any DOCTYPE, ENTITY or other markup declaration is refused by a byte scan *before* libxml2 sees
  the document. lxml 5 and 6 crash the whole process (SIGSEGV) when a schema-validating parser
  meets a DTD entity, and DTDs are the road to XXE and entity expansion; OpenADR never needs one.
- Only UTF-8 is accepted (OpenADR 2.0b profile: payloads are UTF-8); anything else is refused, so a
  UTF-16 document cannot smuggle a DOCTYPE past the byte scan.
- No network, no entity resolution, no DTD loading; size is capped here and nesting depth by libxml2
  (256 levels with XML_PARSE_HUGE off); the XSD then bounds the depth of anything that validates.
- Identifiers and names (any element whose local name ends in ``ID``, ``Name``, ``Context`` or
  ``Address``, and xcal:text, the uid) hold at most ``max_id_chars`` characters (refused with
  454): the XSD bounds none of them, and a node stores and echoes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lxml import etree

from ._errors import HostileDocument, InvalidData, MalformedXml

__all__ = ["IntakeLimits", "parse_untrusted"]

# "<!" followed by anything but a comment or CDATA opener is a markup declaration (DOCTYPE, ENTITY,
# ELEMENT, ATTLIST, NOTATION): refused whatever its case.
_HARMLESS_BANG = (b"<!--", b"<![CDATA[")
_UTF8_BOM = b"\xef\xbb\xbf"
_XML_DECL_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeLimits:
    """Caps applied to every incoming document. OpenADR payloads are a few KB."""

    max_bytes: int = 4 * 1024 * 1024
    max_id_chars: int = 512


_LONG_TEXT = etree.XPath("//*[string-length(text()) > $cap]")
_ID_SUFFIXES = ("ID", "Name", "Context", "Address")
_XCAL_TEXT = "{urn:ietf:params:xml:ns:icalendar-2.0}text"
_XML_DECL = b"<?xml"
_BOM_XML_DECL = _UTF8_BOM + _XML_DECL
# The declarations lxml and openleadr write: UTF-8 said outright, nothing more to look at.
_UTF8_DECLARATIONS = (b"<?xml version='1.0' encoding='UTF-8'?>",
                      b'<?xml version="1.0" encoding="utf-8"?>',
                      b'<?xml version="1.0" encoding="UTF-8"?>')
_DECLARATION_LENGTH = len(_UTF8_DECLARATIONS[0])  # all three are this long
_BANG, _QUESTION = ord("!"), ord("?")


@lru_cache(maxsize=8)
def _long_run(cap: int) -> re.Pattern[bytes]:
    # Anchored on ">", so every byte is scanned once: linear, whatever the document.
    return re.compile(rb">[^<]{%d}" % (cap + 1))


@lru_cache(maxsize=256)
def _is_identifier(tag: str) -> bool:
    return tag == _XCAL_TEXT or tag.rpartition("}")[2].endswith(_ID_SUFFIXES)


def _markup_free(data: bytes, declared_utf8: bool) -> bool:
    """True when ``data`` has no "<!" (declaration, comment, CDATA) and no "<?" (processing
    instruction) but an XML declaration at its start, behind a BOM or not: one scan that lets
    the common document skip the closer looks below. ``declared_utf8``: ``data`` starts with one
    of ``_UTF8_DECLARATIONS``."""
    if declared_utf8:
        rest = data[_DECLARATION_LENGTH:]
    elif data.startswith(_XML_DECL):
        rest = data[len(_XML_DECL):]
    elif data.startswith(_BOM_XML_DECL):
        rest = data[len(_BOM_XML_DECL):]
    else:
        rest = data
    # "!" and "?" are rare in payloads: one memchr pass for the lone byte settles most documents,
    # where a search for "<!" stops at every "<" (~20x slower on a 3 KB payload). The byte is
    # looked for as an int with the operator ``in``: ``find`` parses its arguments, and ``in``
    # with a bytes operand first fails (and formats) an int conversion, ~1-3 k instructions each.
    return ((_BANG not in data or data.find(b"<!") == -1)
            and (_QUESTION not in rest or rest.find(b"<?") == -1))


def _check_identifiers(data: bytes, root: etree._Element, cap: int, markup_free: bool,
                       long_run: re.Pattern[bytes]) -> None:
    """Refuse an identifier over ``cap`` characters. A text of n characters is a raw run of at
    least n bytes after a ">" unless markup (a comment, CDATA section or instruction) splits it;
    with neither, the tree is not walked (and a document of at most ``cap`` bytes holds no such
    run; ``long_run`` is ``_long_run(cap)``). Any such markup past the XML declaration sends the
    document to the walk."""
    if markup_free and (len(data) <= cap or long_run.search(data) is None):
        return
    found = _LONG_TEXT(root, cap=cap)
    assert isinstance(found, list)
    for element in found:
        if not isinstance(element, etree._Element):
            continue
        tag = element.tag
        if isinstance(tag, str) and _is_identifier(tag):
            raise InvalidData(f"<{etree.QName(tag).localname}> is {len(element.text or '')} "
                              f"characters long, over the {cap}-character cap")


def _check_encoding(data: bytes) -> None:
    """Refuse a document that is not UTF-8; the caller has let one of ``_UTF8_DECLARATIONS``
    through already."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4]:
        raise HostileDocument("document is not UTF-8 (UTF-16/32 byte order found); send UTF-8")
    declared = _XML_DECL_ENCODING.match(data.removeprefix(_UTF8_BOM))
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise HostileDocument(f"document declares encoding {declared.group(1)!r}; send UTF-8")
    # Invalid UTF-8 sequences are left to libxml2, which refuses them as not well-formed.


def _has_declaration(data: bytes) -> bool:
    start = data.find(b"<!")
    while start != -1:
        if not data.startswith(_HARMLESS_BANG, start):
            return True
        start = data.find(b"<!", start + 2)
    return False


def _not_well_formed(data: bytes, parser: etree.XMLParser,
                     exc: etree.XMLSyntaxError) -> InvalidData:
    """The error for a document the push parser refused, worded by the one-shot parser where it
    refuses it too: the push interface says "no element found (line 0)" where fromstring names
    an undefined entity and its place. Only refused documents pay for the second parse."""
    try:
        etree.fromstring(data, parser)
    except etree.XMLSyntaxError as one_shot:
        exc = one_shot
    if "depth" in str(exc).lower():
        return HostileDocument(f"document nests too deeply: {exc}")
    return MalformedXml(f"not well-formed XML: {exc}")


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


class Intake:
    """Parses untrusted bytes; one per codec. Its lxml parser is reused and holds a document's
    state between ``feed`` and ``close``: never share an Intake between threads."""

    __slots__ = ("_long_run", "_parser", "limits")

    def __init__(self, limits: IntakeLimits | None = None) -> None:
        self.limits = limits or IntakeLimits()
        self._parser = _new_parser()
        self._long_run = _long_run(self.limits.max_id_chars)

    def parse(self, data: bytes) -> etree._Element:
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError("decode() takes the raw bytes received, not str")
            data = bytes(data)
        if len(data) > self.limits.max_bytes:
            raise HostileDocument(
                f"document is {len(data)} bytes, over the {self.limits.max_bytes}-byte cap"
            )
        if not data or data.isspace():
            raise MalformedXml("empty document")
        declared_utf8 = data.startswith(_UTF8_DECLARATIONS)
        markup_free = _markup_free(data, declared_utf8)
        if not markup_free and _has_declaration(data):
            raise HostileDocument(
                "document contains a DOCTYPE or markup declaration; OpenADR payloads must not"
            )
        if not declared_utf8:
            _check_encoding(data)
        parser = self._parser
        try:
            # The push interface: ~7 k instructions (13 %) under fromstring's on a 400-byte
            # payload; fromstring's reading of a memory buffer (xmlParserInputBufferGrow and the
            # routine under it, ~8 k) is what it skips. It accepts and refuses what fromstring
            # does (tests/schemas/test_intake.py: every prefix of a payload, each with one byte
            # dropped or one "<" or "&" added, the same verdict and tree), and a feed that
            # failed leaves the parser ready for the next document.
            parser.feed(data)
            root = parser.close()
        except etree.XMLSyntaxError as exc:
            raise _not_well_formed(data, parser, exc) from None
        _check_identifiers(data, root, self.limits.max_id_chars, markup_free, self._long_run)
        return root


def parse_untrusted(data: bytes, limits: IntakeLimits | None = None) -> etree._Element:
    """One-off hardened parse (builds a parser each call; codecs keep an :class:`Intake`)."""
    return Intake(limits).parse(data)
