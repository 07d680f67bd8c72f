"""The OpenADR 2.0b XMPP binding as plain data: namespaces, service discovery names, and how a
JID names a certificate. Both nodes import it from here; the XMPP sessions live in ``vtn.xmpp``
and ``ven.xmpp``.

Profile section 9.3 (XMPP): VTN and VEN are both clients of an XMPP server, authenticated by
their TLS client certificates (SASL EXTERNAL, XEP-0178). Every service exchange is a request and
its answer, so each payload travels as the single child ``oadrPayload`` of an IQ ``set`` and the
answer as the child of the IQ ``result``. A VTN announces the OpenADR feature and, under the
services node, one disco item per service (XEP-0030); all of crowdflex's services answer at one
JID. There is no oadrPoll on XMPP: the VTN sends when it has something.

Identity: the XMPP server names each client by its certificate's OpenADR fingerprint
(:func:`localpart_of`; ``examples/prosody/mod_auth_openadr.lua`` does this for Prosody), and
stamps the authenticated JID on every stanza; so the fingerprint is read back from the JID
(:func:`fingerprint_of_jid`, :func:`fingerprint_of_localpart`), never from anything the payload
says.

Nesting: the XMPP library copies a stanza recursively to answer it, and the standard library
serialises a payload recursively, so a stanza nested a few thousand deep raised RecursionError
where nothing caught it and ended the session (one 14 KB IQ from any client took the VTN off
the server). :func:`depth_guard` drops every stanza nested deeper than :data:`MAX_DEPTH` before
any handler sees it, answering a request among them with an error.

Invariants: pure, no I/O (:func:`depth_guard` writes through the function it is given);
:func:`fingerprint_of_localpart` answers only for exactly the text :func:`localpart_of` produces
(20 lower-case hex digits).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Final, Literal
from xml.sax.saxutils import escape, quoteattr

from ._wire import OADR
from .identity import FINGERPRINT_PATTERN
from .logtext import escaped
from .services import Service

__all__ = [
    "FEATURE",
    "IQ_WITH_PAYLOAD",
    "MAX_DEPTH",
    "PAYLOAD_NAMESPACE",
    "SERVICES_NODE",
    "XMPP_SERVICES",
    "depth_guard",
    "error_bytes",
    "fingerprint_of_jid",
    "fingerprint_of_localpart",
    "iq_bytes",
    "localpart_of",
    "nested_deeper_than",
    "payload_of",
    "service_node",
]

PAYLOAD_NAMESPACE: Final = OADR  # the oadrPayload element's namespace
FEATURE: Final = "http://openadr.org/openadr2"  # disco#info feature of an OpenADR 2.0 VTN
SERVICES_NODE: Final = "http://openadr.org/openadr2#services"  # disco#items node of the services
# the services reachable over XMPP: all but OadrPoll (XMPP delivers without polling)
XMPP_SERVICES: Final = (Service.REGISTER_PARTY, Service.EVENT, Service.REPORT, Service.OPT)

#: the deepest nesting of a stanza taken (the stanza element is level 1): libxml2's own limit,
#: which the codec applies to a payload anyway, and far below where a recursive copy or
#: serialisation of it meets Python's recursion limit
MAX_DEPTH: Final = 256
_STANZAS: Final = "urn:ietf:params:xml:ns:xmpp-stanzas"  # RFC 6120 8.3.3's conditions

log = logging.getLogger(__name__)

_LOCALPART: Final = re.compile(r"[0-9a-f]{20}")
_PAYLOAD_TAG: Final = f"{{{PAYLOAD_NAMESPACE}}}oadrPayload"
# the XPath an IQ carrying a payload matches (slixmpp's MatchXPath; the stream is jabber:client)
IQ_WITH_PAYLOAD: Final = f"{{jabber:client}}iq/{_PAYLOAD_TAG}"


def payload_of(stanza: ET.Element) -> bytes | None:
    """The ``oadrPayload`` child of an IQ (as the XMPP library parsed it), serialised for the
    codec to decode and validate; None when there is none."""
    element = stanza.find(_PAYLOAD_TAG)
    return None if element is None else ET.tostring(element)


def iq_bytes(*, kind: Literal["set", "result"], iq_id: str, to: str, body: bytes) -> bytes:
    """The IQ ``kind`` with ``iq_id`` to the JID ``to`` carrying our own encoder's ``body``
    (UTF-8, its XML declaration dropped) byte for byte, ready to write on the stream: built as
    elements, the XMPP library would serialise the payload again in pure Python, the dearest step
    of a payload's trip at 2,000 devices (profiled). No ``from``: the server stamps it."""
    if body.startswith(b"<?xml"):
        body = body[body.index(b"?>") + 2:].lstrip()
    head = f"<iq type='{kind}' id={quoteattr(iq_id)} to={quoteattr(to)}>"
    return head.encode() + body + b"</iq>"


def error_bytes(*, iq_id: str, to: str, condition: str, kind: str, text: str) -> bytes:
    """The IQ ``error`` answering the request ``iq_id`` from the JID ``to``: the RFC 6120 8.3
    ``condition`` of type ``kind``, with ``text``. Written out, not built from the request as the
    XMPP library's ``reply`` does, which copies the whole request first (a refused payload was
    copied, up to the server's stanza cap, only to be thrown away)."""
    return (f"<iq type='error' id={quoteattr(iq_id)} to={quoteattr(to)}>"
            f"<error type={quoteattr(kind)}><{condition} xmlns='{_STANZAS}'/>"
            f"<text xmlns='{_STANZAS}'>{escape(text)}</text></error></iq>").encode()


def nested_deeper_than(element: ET.Element, limit: int) -> bool:
    """Whether any element under ``element`` (itself level 1) is at a level over ``limit``;
    level by level, without recursion, each element looked at once."""
    level = [element]
    for _ in range(limit):
        level = [child for parent in level for child in parent]
        if not level:
            return False
    return True


def depth_guard(send_raw: Callable[[bytes], object]) -> Callable[[Any], Any]:
    """An incoming-stanza filter for the XMPP library (``add_filter("in", ...)``): a stanza
    nested deeper than :data:`MAX_DEPTH` is dropped, and answered ``not-acceptable`` through
    ``send_raw`` when it is an IQ request; any other stanza passes unchanged."""

    def guard(stanza: Any) -> Any:
        if not nested_deeper_than(stanza.xml, MAX_DEPTH):
            return stanza
        sender = stanza.xml.get("from", "")
        log.info("dropped a stanza from %s nested deeper than %d", escaped(sender), MAX_DEPTH)
        if stanza.xml.tag == "{jabber:client}iq" and stanza.xml.get("type") in ("get", "set"):
            send_raw(error_bytes(iq_id=stanza.xml.get("id", ""), to=sender,
                                 condition="not-acceptable", kind="modify",
                                 text=f"nested deeper than {MAX_DEPTH} elements"))
        return None

    return guard


def service_node(service: Service) -> str:
    """The disco item node naming ``service``, e.g. ``http://openadr.org/OpenADR2/EiEvent``."""
    return f"http://openadr.org/OpenADR2/{service}"


def localpart_of(fingerprint: str) -> str:
    """The JID localpart of the certificate with this OpenADR fingerprint."""
    if FINGERPRINT_PATTERN.fullmatch(fingerprint.upper()) is None:
        raise ValueError(f"not an OpenADR fingerprint: {fingerprint!r}")
    return fingerprint.replace(":", "").lower()


def fingerprint_of_localpart(localpart: str) -> str | None:
    """The OpenADR fingerprint a server-named JID localpart stands for; None for any other."""
    if _LOCALPART.fullmatch(localpart) is None:
        return None
    digits = localpart.upper()
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def fingerprint_of_jid(jid: str, domain: str) -> str | None:
    """The OpenADR fingerprint the full JID ``jid`` of a client of ``domain`` stands for, its
    localpart and domain read in lower case (as the XMPP library normalises them); None for a
    JID of another domain, one without a localpart or a resource, or any other localpart."""
    bare, _, resource = jid.partition("/")
    localpart, at, server = bare.lower().partition("@")
    if not (at and resource) or server != domain:
        return None
    return fingerprint_of_localpart(localpart)
