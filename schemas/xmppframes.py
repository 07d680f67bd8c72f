"""An XMPP client's incoming stream, split so that a request's payload arrives as the bytes the
server sent: no element tree of it is built, and none is serialised again.

The XMPP library parses every stanza into an element tree; a payload read from that tree has to
be serialised again (in pure Python) for the codec, which parses and validates it a second time.
At 1,000 devices' telemetry that round trip was the aggregator's dearest step over XMPP
(bench/README.md). :class:`PayloadFramer` sits in front of the library's parser: it reads the
stream with expat, takes out each IQ ``set`` whose one child element is an ``oadrPayload``, and
passes every other byte on, unchanged and in order, to the library.

An IQ is taken only when its payload's bytes mean alone what they meant in the stream:

- the framer reads the stream from its first byte (a new one for each stream the connection
  starts), and the root declares the default namespace ``jabber:client`` and no prefix but
  ``stream``; the IQ is a child of the root and declares no namespace but that default;
- the payload is an unprefixed ``oadrPayload`` element declaring the OpenADR namespace as its
  own default, and the IQ has no other child element.

Every name inside the payload then resolves alone as in the stream, or (a prefix declared only
outside it) does not resolve at all: the codec refuses such bytes as not well-formed, never
reads them otherwise. The bytes go to the codec like an HTTP body, through its intake (size,
markup declarations, encoding) and the XSD. Anything else -- an IQ of another type, another
child, a payload that inherits its namespace, a self-closing payload, an IQ over
``max_payload_bytes`` plus :data:`IQ_SLACK_BYTES` -- goes to the library as before.

Invariants: pure (no I/O); the bytes passed on plus the IQs taken are the stream, in order; an
IQ is held until its end tag and no longer; an IQ of which more than ``max_payload_bytes`` plus
:data:`IQ_SLACK_BYTES` have arrived is not held past that read; once the stream is not
well-formed, everything is passed on unread (the library reports the error as before).
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass
from typing import Final

from ._wire import OADR

__all__ = ["IQ_SLACK_BYTES", "PayloadFramer", "PayloadRequest"]

#: what an IQ may carry besides its payload before it is no longer held: its own tags and
#: attributes (a full JID each way, an id), far under this
IQ_SLACK_BYTES: Final = 4096
_STREAM_PREFIX: Final = "xmlns:stream"


@dataclass(frozen=True, slots=True)
class PayloadRequest:
    """An IQ ``set`` taken off the stream: its attributes (``from`` as the server stamped it,
    ``id``, ``to``, ``type``) and its ``oadrPayload`` element, byte for byte as received."""

    attributes: dict[str, str]
    payload: bytes


class PayloadFramer:
    """Feed it what the connection reads (:meth:`feed`); it returns, in order, the bytes to pass
    on to the XMPP library and the :class:`PayloadRequest` s taken out."""

    def __init__(self, max_payload_bytes: int) -> None:
        self._limit = max_payload_bytes + IQ_SLACK_BYTES
        self._buffer = bytearray()
        self._depth = 0
        self._out: list[bytes | PayloadRequest] = []
        # the IQ being held: where it starts, its attributes, its child elements so far, and
        # where its payload starts and ends
        self._held: int | None = None
        self._attributes: dict[str, str] = {}
        self._children = 0
        self._payload: tuple[int, int | None] = (0, None)
        self._broken = False
        self._client_stream = False  # the root is a client stream as this framer reads it
        self._parser = xml.parsers.expat.ParserCreate()
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._base = 0  # stream offset of _buffer[0]

    def feed(self, data: bytes) -> list[bytes | PayloadRequest]:
        """Read ``data``."""
        if self._broken:
            return [data]
        self._buffer += data
        try:
            self._parser.Parse(data, False)
        except xml.parsers.expat.ExpatError:
            self._broken = True
            self._held = None
        if self._held is not None and self._base + len(self._buffer) - self._held > self._limit:
            self._held = None  # too big to hold: the library reads it (and refuses it by size)
        # up to where expat has read: a tag cut by the end of ``data`` stays until it is whole
        # (it might open an IQ to take)
        read = self._base + len(self._buffer) if self._broken else self._parser.CurrentByteIndex
        self._pass_on(read if self._held is None else min(read, self._held))
        out, self._out = self._out, []
        return out

    def _pass_on(self, until: int) -> None:
        cut = until - self._base
        if cut > 0:
            self._out.append(bytes(self._buffer[:cut]))
            del self._buffer[:cut]
            self._base = until

    def _end_of_tag(self, at: int) -> int:
        """The stream offset just past the end tag starting at ``at`` (an end tag holds no
        attribute, so its first ">" closes it)."""
        return self._buffer.index(b">", at - self._base) + 1 + self._base

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        depth = self._depth
        self._depth = depth + 1
        if depth == 0:
            self._client_stream = (
                attributes.get("xmlns") == "jabber:client"
                and all(a == _STREAM_PREFIX for a in attributes if a.startswith("xmlns:")))
        elif depth == 1:
            if (self._client_stream and name == "iq" and attributes.get("type") == "set"
                    and attributes.get("xmlns", "jabber:client") == "jabber:client"
                    and not any(a.startswith("xmlns:") for a in attributes)):
                self._held = self._parser.CurrentByteIndex
                self._attributes, self._children = attributes, 0
        elif depth == 2 and self._held is not None:
            self._children += 1
            if (self._children == 1 and name == "oadrPayload"
                    and attributes.get("xmlns") == OADR):
                self._payload = (self._parser.CurrentByteIndex, None)
            else:
                self._held = None  # another child, or one this framer does not read alone

    def _end(self, _name: str) -> None:
        self._depth -= 1
        depth = self._depth
        if self._held is None or depth > 2:
            return
        at = self._parser.CurrentByteIndex
        if depth == 2:  # the payload's end: expat stands at its end tag, or (self-closing)
            # just past it: no payload the codec takes; the library answers it as before
            if self._buffer.startswith(b"</oadrPayload", at - self._base):
                self._payload = (self._payload[0], self._end_of_tag(at))
            else:
                self._held = None
            return
        start, end = self._payload
        if self._children != 1 or end is None:
            self._held = None
            return
        self._pass_on(self._held)
        self._out.append(PayloadRequest(
            self._attributes, bytes(self._buffer[start - self._base:end - self._base])))
        finished = self._end_of_tag(at)
        del self._buffer[:finished - self._base]
        self._base, self._held = finished, None
