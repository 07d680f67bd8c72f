"""XML output: the encoders' elements as escaped text, rendered once into the payload's bytes.

Encoders append elements in document order (the XSD's order) to a :class:`Node`: a child that
holds children is a Node of its own, a child that holds text is already its finished text. No
lxml tree is built: an lxml element costs ~9 k instructions (its proxy and the walk up to the
envelope for its namespace declaration) and serialising the tree ~25 k per message, which kept
encoding within 3-5x of openleadr; writing text costs a fraction of that.

Invariants:
- every text and attribute value passes :func:`escape` / :func:`escape_attribute` except the
  ones :func:`leaf_value` writes, which crowdflex formatted itself (numbers, times, durations,
  enum values: no markup character can occur in them);
- a character XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE/U+FFFF) is
  refused with :class:`LocalProtocolError`, never written;
- every element and attribute name is an ASCII XML name (else :class:`LocalProtocolError`),
  written with the prefix the envelope declares for its namespace (:data:`schemas._wire.NSMAP`),
  so the output needs no declaration below the root. The bytes
  are those lxml writes for the same tree (``<tag/>`` when empty, ``&#13;`` for CR, ``'`` in the
  XML declaration), which tests/schemas/test_writer.py checks against lxml.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

from ._errors import LocalProtocolError
from ._wire import (
    EI,
    NSMAP,
    OADR,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ATTR,
    XCAL,
    format_datetime,
    format_duration,
    q,
)

_PREFIXES: Final = {namespace: prefix for prefix, namespace in NSMAP.items()}

# Text needs escaping (or refusing) only when it holds one of these; most IDs hold none, and one
# regex search is cheaper than the replace chain.
_SPECIAL: Final = re.compile("[&<>\"\r\n\t\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_FORBIDDEN: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _refuse_forbidden(value: str) -> None:
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise LocalProtocolError(
            f"{value!r} holds {bad.group()!r}, which XML 1.0 cannot carry")


def escape(value: str) -> str:
    """``value`` as element text: ``& < >`` escaped, CR as ``&#13;`` (a parser would turn a raw
    one into LF)."""
    if _SPECIAL.search(value) is None:
        return value
    _refuse_forbidden(value)
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def escape_attribute(value: str) -> str:
    """``value`` inside a double-quoted attribute: also ``"``, and the whitespace a parser would
    normalise (tab, LF, CR) as character references."""
    if _SPECIAL.search(value) is None:
        return value
    return (escape(value).replace('"', "&quot;").replace("\n", "&#10;")
            .replace("\t", "&#9;"))


# Clark name -> (start tag without ">", start tag, end tag); filled on first use of each name.
_NAMES: dict[str, tuple[str, str, str]] = {}


def _names(tag: str) -> tuple[str, str, str]:
    found = _NAMES.get(tag)
    if found is None:
        found = _NAMES[tag] = _render_names(tag)
    return found


# Every OpenADR element and attribute name is an ASCII NCName; a name is written as given (once
# per tag, then cached), so one holding markup would become structure.
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


def _qualified(name: str) -> str:
    namespace, _, local = name[1:].partition("}")
    prefix = _PREFIXES.get(namespace)
    if prefix is None:
        raise LocalProtocolError(f"{name}: the envelope declares no prefix for its namespace")
    if _NAME.match(local) is None:
        raise LocalProtocolError(f"{local!r} is not an XML name crowdflex writes")
    return f"{prefix}:{local}"


def _render_names(tag: str) -> tuple[str, str, str]:
    name = _qualified(tag)
    return f"<{name}", f"<{name}>", f"</{name}>"


class Node:
    """An element being written: its start tag (attributes included) and its content, each part
    escaped text or a child Node."""

    __slots__ = ("end", "parts", "start")

    def __init__(self, tag: str) -> None:
        start, _, end = _names(tag)
        self.start = start
        self.end = end
        self.parts: list[str | Node] = []

    def set(self, name: str, value: str) -> None:
        """Add the attribute ``name`` (a Clark name) = ``value``."""
        self.start += f' {_qualified(name)}="{escape_attribute(value)}"'

    def render(self, out: list[str]) -> None:
        if not self.parts:
            out.append(self.start + "/>")
            return
        out.append(self.start + ">")
        for part in self.parts:
            if type(part) is str:
                out.append(part)
            else:
                part.render(out)  # type: ignore[union-attr]
        out.append(self.end)


def render_parts(node: Node) -> str:
    """The text of ``node``'s content, without its own tags."""
    out: list[str] = []
    for part in node.parts:
        if type(part) is str:
            out.append(part)
        else:
            part.render(out)  # type: ignore[union-attr]
    return "".join(out)


def start_tag(tag: str) -> str:
    return _names(tag)[1]


def end_tag(tag: str) -> str:
    return _names(tag)[2]


def sub(parent: Node, tag: str) -> Node:
    """Append the element ``tag`` to ``parent`` and return it, to be given children."""
    element = Node(tag)
    parent.parts.append(element)
    return element


def leaf(parent: Node, tag: str, text: str) -> None:
    """Append ``<tag>text</tag>``, ``text`` escaped: markup in an ID stays data."""
    _, start, end = _names(tag)
    parent.parts.append(start + escape(text) + end)


def leaf_value(parent: Node, tag: str, text: str) -> None:
    """Append ``<tag>text</tag>`` for a text crowdflex formatted itself (a number, time,
    duration or enum value), which holds no character to escape."""
    _, start, end = _names(tag)
    parent.parts.append(start + text + end)


def leaf_opt(parent: Node, tag: str, text: str | None) -> None:
    """Append ``<tag>text</tag>`` only when ``text`` is not None."""
    if text is not None:
        leaf(parent, tag, text)


def leaf_all(parent: Node, tag: str, texts: tuple[str, ...]) -> None:
    for text in texts:
        leaf(parent, tag, text)


def payload_root(tag: str, parent: Node) -> Node:
    """The payload element (e.g. oadrPoll) under oadrSignedObject, with schemaVersion set."""
    element = sub(parent, tag)
    element.start += _SCHEMA_VERSION
    return element


_SCHEMA_VERSION: Final = f' {_qualified(SCHEMA_VERSION_ATTR)}="{SCHEMA_VERSION}"'
_DTSTART: Final = q(XCAL, "dtstart")
_DATE_TIME: Final = q(XCAL, "date-time")
_DURATION: Final = q(XCAL, "duration")


# Fixed markup around a value, written as one string rather than element by element.
_DTSTART_START: Final = start_tag(_DTSTART) + start_tag(_DATE_TIME)
_DTSTART_END: Final = end_tag(_DATE_TIME) + end_tag(_DTSTART)
_FLOAT_START: Final = start_tag(q(EI, "payloadFloat")) + start_tag(q(EI, "value"))
_FLOAT_END: Final = end_tag(q(EI, "value")) + end_tag(q(EI, "payloadFloat"))


def sub_dtstart(parent: Node, value: datetime) -> None:
    """``<xcal:dtstart><xcal:date-time>...Z</xcal:date-time></xcal:dtstart>``."""
    parent.parts.append(_DTSTART_START + format_datetime(value) + _DTSTART_END)


def sub_duration(parent: Node, value: timedelta, tag: str = _DURATION) -> None:
    """``<tag><xcal:duration>PT15M</xcal:duration></tag>`` (tag is xcal:duration by default)."""
    _, start, end = _names(tag)
    parent.parts.append(
        f"{start}<xcal:duration>{format_duration(value)}</xcal:duration>{end}")


def sub_period(parent: Node, dtstart: datetime | None, duration: timedelta | None) -> None:
    """xcal:dtstart, then xcal:duration, each only when given (intervals and reports)."""
    if dtstart is not None:
        sub_dtstart(parent, dtstart)
    if duration is not None:
        sub_duration(parent, duration)


def payload_float(value: str) -> str:
    """``<ei:payloadFloat><ei:value>value</ei:value></ei:payloadFloat>`` for a formatted number."""
    return _FLOAT_START + value + _FLOAT_END


# ---------------------------------------------------------------- the document

_DECLARATIONS: Final = "".join(f' xmlns:{prefix}="{namespace}"'
                               for prefix, namespace in NSMAP.items())
_PAYLOAD_START: Final = (f"<?xml version='1.0' encoding='UTF-8'?>\n"
                         f"<oadr:oadrPayload{_DECLARATIONS}>")
_PAYLOAD_END: Final = "</oadr:oadrPayload>"
SIGNED_OBJECT: Final = q(OADR, "oadrSignedObject")


def document(signed_object: Node) -> bytes:
    """The UTF-8 bytes of an oadrPayload holding ``signed_object``, XML declaration first."""
    out = [_PAYLOAD_START]
    signed_object.render(out)
    out.append(_PAYLOAD_END)
    return "".join(out).encode()
