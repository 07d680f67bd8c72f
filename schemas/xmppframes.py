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

No Python handler runs for the elements inside a payload: expat reads a held payload's content
with its handlers unset once the end tag has arrived, when that end tag is the first
``</oadrPayload>`` after the start tag (no element of that name opens inside, and no comment,
CDATA section or instruction could hide one); other content is read element by element. Content
so read is balanced (expat refuses the end tag otherwise), so the depth after it is the depth
before it.

Invariants: pure (no I/O); the bytes passed on plus the IQs taken are the stream, in order; an
IQ is held until its end tag and no longer; an IQ of which more than ``max_payload_bytes`` plus
:data:`IQ_SLACK_BYTES` have arrived is not held past that read; once the stream is not
well-formed, everything is passed on unread (the library reports the error as before).
"""

from __future__ import annotations

import re
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._wire import OADR

__all__ = ["IQ_SLACK_BYTES", "PayloadFramer", "PayloadRequest", "StreamSplitter"]

#: what an IQ may carry besides its payload before it is no longer held: its own tags and
#: attributes (a full JID each way, an id), far under this
IQ_SLACK_BYTES: Final = 4096
_STREAM_PREFIX: Final = "xmlns:stream"
_PAYLOAD_START: Final = b"<oadrPayload"
#: the end tag of a payload (its name, whole, then the end of the tag)
_PAYLOAD_END: Final = re.compile(rb"</oadrPayload[ \t\r\n]*>")
#: what in a payload's content keeps it from being read without handlers: a start tag of the
#: payload's own name, or a comment, CDATA section or instruction (each could hide its end tag)
_NOT_QUIET: Final = re.compile(rb"<oadrPayload(?![-\w.:\x80-\xff])|<[!?]")


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
        # the held payload's content, read without handlers once its end tag is here: where it
        # starts and how far it has been looked through (stream offsets); None when there is none
        self._content: int | None = None
        self._scanned = 0
        self._fed = 0  # stream offset up to which expat has been given the bytes

    def feed(self, data: bytes) -> list[bytes | PayloadRequest]:
        """Read ``data``."""
        if self._broken:
            return [data]
        self._buffer += data
        self._parse()
        if self._held is not None and self._base + len(self._buffer) - self._held > self._limit:
            self._held = None  # too big to hold: the library reads it (and refuses it by size)
            self._parse()  # what waited for the payload's end tag, read as any other bytes
        # up to where expat has read: a tag cut by the end of ``data`` stays until it is whole
        # (it might open an IQ to take)
        read = self._base + len(self._buffer) if self._broken else self._parser.CurrentByteIndex
        self._pass_on(read if self._held is None else min(read, self._held))
        out, self._out = self._out, []
        return out

    def _parse(self) -> None:
        """Give expat the buffered bytes it has not read: a held payload's content without
        handlers once its end tag is here (:meth:`_quiet_content`); a payload start tag not
        whole yet, in a held IQ, waits in the buffer, as does the content before its end tag."""
        while not self._broken:
            fed = self._fed - self._base
            if fed >= len(self._buffer):
                return
            if self._content is not None:
                if self._held is None or not self._quiet_content():
                    self._content = None  # read element by element, as any other bytes
                elif self._content is not None:
                    return  # its end tag is not here yet
                continue
            # up to the end of the next tag that may open a payload: expat stops right after it
            at = self._buffer.find(_PAYLOAD_START, fed)
            if at == -1:  # or the start of one, cut by the end of the read
                at = self._buffer.rfind(b"<", max(fed, len(self._buffer) - len(_PAYLOAD_START)))
                if at != -1 and not _PAYLOAD_START.startswith(self._buffer[at:]):
                    at = -1
            stop = len(self._buffer) if at == -1 else self._buffer.find(b">", at) + 1
            if stop == 0:  # that tag is not whole yet
                if at == fed and self._held is not None:
                    return
                stop = at if at > fed else len(self._buffer)
            opened = self._base + at
            content = self._base + stop
            self._expat(self._buffer[fed:stop])
            if at != -1 and self._held is not None and self._payload == (opened, None):
                self._content = self._scanned = content

    def _quiet_content(self) -> bool:
        """Read the held payload's content, from :attr:`_content` to its end tag, with no
        handler called for the elements in it; False when it cannot be read so. That content
        is balanced (expat refuses the end tag otherwise), so the depth is the same after it.
        Its end tag is the first ``</oadrPayload>`` only when no element of that name opens
        inside and no comment, CDATA section or instruction could hide one: such content is
        read element by element instead. True while the end tag has not arrived."""
        assert self._content is not None
        start, scanned = self._content - self._base, self._scanned - self._base
        close = _PAYLOAD_END.search(self._buffer, scanned)
        until = len(self._buffer) if close is None else close.start()
        if _NOT_QUIET.search(self._buffer, scanned, until) is not None:
            return False
        if close is None:
            # the next look starts at the last "<", where a tag may be cut by the end of a read
            last = self._buffer.rfind(b"<", scanned)
            self._scanned = self._base + (len(self._buffer) if last == -1 else last)
            return True
        handlers = self._parser.StartElementHandler, self._parser.EndElementHandler
        self._parser.StartElementHandler = self._parser.EndElementHandler = None
        try:
            self._expat(self._buffer[start:until])
        finally:
            self._parser.StartElementHandler, self._parser.EndElementHandler = handlers
        self._content = None
        return True

    def _expat(self, data: bytes | bytearray) -> None:
        self._fed += len(data)
        try:
            self._parser.Parse(data, False)
        except xml.parsers.expat.ExpatError:
            self._broken = True
            self._held = None

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


class StreamSplitter:
    """What an XMPP client does with its reads: a :class:`PayloadFramer` for the stream in
    progress (:meth:`restart` with each stream the library's parser starts: a connection,
    STARTTLS, SASL, so both read the same bytes from the same first one), the bytes of each read
    passed on in order (:meth:`read`) and the IQs taken handed to ``take``."""

    def __init__(self, max_payload_bytes: int, take: Callable[[PayloadRequest], object]) -> None:
        self._max_payload = max_payload_bytes
        self._take = take
        self._framer: PayloadFramer | None = None

    def restart(self) -> None:
        self._framer = PayloadFramer(self._max_payload)

    def read(self, data: bytes, pass_on: Callable[[bytes], object]) -> None:
        """Split ``data``: before the first :meth:`restart`, all of it to ``pass_on``. Once
        passing on restarted the stream (the library started a new one on a stanza of this
        read: the server sends nothing after it before the client's new stream header), the
        rest of the read is handed to neither side."""
        framer = self._framer
        if framer is None:
            pass_on(data)
            return
        for piece in framer.feed(data):
            if self._framer is not framer:
                return
            if isinstance(piece, bytes):
                pass_on(piece)
            else:
                self._take(piece)
