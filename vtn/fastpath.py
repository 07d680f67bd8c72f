"""The VTN's own HTTP/1.1 path for plain OpenADR requests, beside aiohttp's protocol.

aiohttp's ``Application`` costs a request about 0.15-0.17 ms of CPU above a bare protocol
(request and response objects, the router, the middleware chain; bench/README.md), nine times in
a fleet device's minute. A VEN polling over keep-alive sends the same plain request shape
again and again, so :class:`FastConnection` answers that shape itself, from the read it arrived
in, and leaves everything else to aiohttp:

- **What it answers**: a read holding exactly one whole ``POST /OpenADR2/Simple/2.0b/<service>
  HTTP/1.1`` request, one of the five services, every header line a plain ``name: value`` of
  printable ASCII, no header name twice, one ``Content-Length`` equal to the bytes that follow
  the head and within ``max_body_bytes``, an XML ``Content-Type`` (:data:`vtn.transport.XML_TYPES`),
  no ``Transfer-Encoding``, ``Content-Encoding``, ``Expect``, ``Connection``, ``Upgrade`` or
  ``TE``, within aiohttp's line, field and header-count limits. A VEN on keep-alive sends one
  head again and again but for its Content-Length, so a connection keeps the last head checked
  whole, cut around that value, and takes the next request with that head by comparing bytes.
- **Hand-over, for good**: the first read that is anything else (a partial head or body, a
  pipelined second request, chunked, malformed) goes to aiohttp's protocol, and so does every
  later read of that connection; aiohttp answers it as it always has (malformed HTTP: 400). A
  read arriving while a reply is being made is held and handed over once that reply is written,
  so replies keep their order. The protocol was connected when the connection was handed over
  (:mod:`vtn.site`), so it counts the connection, the CRL watch and shutdown close it, and its
  keep-alive deadline runs from the start.
- **The same behaviour as the aiohttp path**, through the same objects: the limits
  (:class:`vtn.limits.RequestLimits`: per-VEN rate and budgets, the in-flight cap shared with
  aiohttp's path, a 429 closes the connection), the metrics
  (:meth:`vtn.metrics.VtnMetrics.answered`), the answer itself (:class:`vtn.transport.Exchange`,
  whose ``web.HTTPException`` -- the 503 of a database away -- is written as aiohttp writes it),
  the access log (the runner's access logger, same format), shutdown waiting for a request in
  flight (aiohttp's ``_request_in_progress``), and the keep-alive deadline: held while a request
  is answered, moved ``keepalive_timeout_s`` past each reply (bytes of a request that never
  completes do not move it: they are aiohttp's, which does not either).
- **Where it is off**: a VTN with ``[signatures]`` (signed intake and its middleware), a trusted
  proxy header (the identity is in a header), or any middleware beyond the metrics' and the
  limits' (:meth:`FastPath.serves`: a TSO's capture) never uses it.

Invariants: nothing is answered here that aiohttp would answer differently; the one reply task of
a connection is awaited by aiohttp's shutdown (``_handler_waiter``) and holds the connection's
reading order.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Final, NamedTuple, cast

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict, CIMultiDictProxy

from schemas import SERVICE_PREFIX, NotRegistered, Service
from vtn.limits import RequestLimits, budget_key
from vtn.metrics import CLIENT_GONE, VtnMetrics
from vtn.transport import XML_TYPES, Exchange, Peer, PeerIdentity, service_named

__all__ = ["FastConnection", "FastPath", "HeadLimits"]

log = logging.getLogger(__name__)

_PREFIX: Final = b"POST " + SERVICE_PREFIX.encode("ascii") + b"/"
_VERSION: Final = b" HTTP/1.1"
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_PRINTABLE: Final = re.compile(rb"[^\t\x20-\x7e]")
# headers whose framing or semantics only aiohttp's protocol implements
_HANDED: Final = frozenset({b"transfer-encoding", b"content-encoding", b"expect", b"connection",
                            b"upgrade", b"te"})


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadLimits:
    """aiohttp's limits on a request head (``handler_args`` of :func:`vtn.app.create_app`) and
    the body cap; a request near any of them is left to aiohttp, which answers it."""

    max_line_size: int
    max_field_size: int
    max_headers: int
    max_body_bytes: int


class _Request(NamedTuple):  # a tuple: made per request, and a frozen dataclass is slower
    service: Service
    head: bytes  # request line and header lines, for the access log
    body: bytes
    shape: _Shape | None  # its head but for the Content-Length value (None: not kept)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A head :func:`parsed` accepted, cut around its Content-Length value: a VEN on keep-alive
    sends the same head again and again, the length aside, and a head that is this one with
    another length is accepted by comparing bytes (:meth:`request`), as :func:`parsed` would."""

    service: Service
    before: bytes  # the head up to the Content-Length value
    after: bytes  # from the end of that value through the blank line
    room: int  # the most digits the value may have within aiohttp's field size

    def request(self, data: bytes, max_body_bytes: int) -> _Request | None:
        """The one whole request ``data`` holds if its head is this shape, else None."""
        if not data.startswith(self.before):
            return None
        start = len(self.before)
        stop = data.find(b"\r\n", start)
        value = data[start:stop]
        if (stop < 0 or stop - start > self.room or not value.isdigit()
                or not data.startswith(self.after, stop)):
            return None
        end = stop + len(self.after)
        length = int(value)
        if length != len(data) - end or length > max_body_bytes:
            return None
        return _Request(self.service, data[:end - 4], data[end:], self)


def parsed(data: bytes, limits: HeadLimits) -> _Request | None:
    """The one whole plain request ``data`` holds, or None for anything else; with the
    :class:`_Shape` of its head when the Content-Length value has no trailing blanks."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(_PREFIX):
        return None
    lines = data[:end].split(b"\r\n")
    first = lines[0]
    if not first.endswith(_VERSION) or len(first) > limits.max_line_size:
        return None
    if len(lines) > limits.max_headers:  # the request line and max_headers - 1 fields
        return None
    service = service_named(first[len(_PREFIX):-len(_VERSION)].decode("latin-1"))
    if service is None:
        return None
    seen: set[bytes] = set()
    length: int | None = None
    length_line = b""
    xml = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if (not colon or len(line) > limits.max_field_size or _TOKEN.fullmatch(name) is None
                or _NOT_PRINTABLE.search(value) is not None):
            return None
        name = name.lower()
        if name in seen or name in _HANDED:
            return None
        seen.add(name)
        value = value.strip(b" \t")
        if name == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
            length_line = line
        elif name == b"content-type":
            xml = value.split(b";", 1)[0].strip(b" \t").lower().decode("ascii") in XML_TYPES
    body = data[end + 4:]
    if not xml or length is None or length != len(body) or length > limits.max_body_bytes:
        return None
    return _Request(service, data[:end], body, _shape(service, data[:end + 4], length_line,
                                                      limits))


def _shape(service: Service, head: bytes, length_line: bytes, limits: HeadLimits
           ) -> _Shape | None:
    """``head`` (through its blank line) cut around the value of its ``length_line``."""
    digits = length_line.partition(b":")[2].lstrip(b" \t")
    if not digits.isdigit():  # blanks after the value: not kept
        return None
    # names are unique and every CRLF of a head ends a line: the one place of that line
    stop = head.index(b"\r\n" + length_line + b"\r\n") + 2 + len(length_line)
    start = stop - len(digits)
    return _Shape(service, head[:start], head[stop:],
                  limits.max_field_size - (len(length_line) - len(digits)))


@dataclass(slots=True, kw_only=True)
class FastPath:
    """What every fast connection of one VTN app shares; counts the requests it answered and the
    connections it handed over to aiohttp (for operators and tests). ``middlewares``: the app's
    middlewares whose work it does (the metrics' and the limits')."""

    exchange: Exchange
    limits: RequestLimits
    metrics: VtnMetrics
    identify: PeerIdentity
    head_limits: HeadLimits
    middlewares: tuple[Middleware, ...]
    answered: int = 0
    handed_over: int = 0

    def __post_init__(self) -> None:
        if self.identify.proxy is not None:
            raise ValueError("the fast path names peers by their TLS certificate only")

    def serves(self, app: web.Application) -> bool:
        """Whether ``app``'s middlewares are exactly those this path does the work of."""
        return tuple(app.middlewares) == self.middlewares

    def connection(self, handler: RequestHandler, transport: asyncio.Transport
                   ) -> FastConnection:
        return FastConnection(self, handler, transport)


class FastConnection:
    """One connection's reads: answered here while they are plain requests, then aiohttp's."""

    __slots__ = ("_handed", "_handler", "_held", "_path", "_peer", "_replying", "_shape",
                 "_ssl_object", "_transport")

    def __init__(self, path: FastPath, handler: RequestHandler,
                 transport: asyncio.Transport) -> None:
        self._path = path
        self._handler = handler
        self._transport = transport
        self._ssl_object = transport.get_extra_info("ssl_object")
        self._handed = False
        self._held: list[bytes] = []
        self._replying: asyncio.Task[None] | None = None
        self._shape: _Shape | None = None  # of the last head parsed whole
        self._peer: Peer | None = None  # once named: a connection's certificate never changes

    def data_received(self, data: bytes) -> None:
        if self._handed:
            self._handler.data_received(data)
            return
        if self._replying is not None:  # held until that reply is written, reading paused
            self._held.append(data)
            self._transport.pause_reading()
            return
        handler = self._handler
        if handler._force_close or handler._close:  # shutting down: aiohttp drops reads too
            return
        limits = self._path.head_limits
        shape = self._shape
        request = None if shape is None else shape.request(data, limits.max_body_bytes)
        if request is None:
            request = parsed(data, limits)
            if request is None:
                self._hand_over(data)
                return
            self._shape = request.shape
        self._replying = asyncio.get_running_loop().create_task(self._reply(request))

    def _hand_over(self, data: bytes) -> None:
        self._handed = True
        self._path.handed_over += 1
        self._handler.data_received(data)

    async def _reply(self, request: _Request) -> None:
        path, handler = self._path, self._handler
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        _request_began(handler)
        status = CLIENT_GONE
        try:
            wire, close = await self._answer(request)
            status = int(wire[9:12])
            if not self._transport.is_closing():
                self._transport.write(wire)
            path.answered += 1
            if close:
                handler.force_close()
            else:
                _keep_alive_from_now(handler, loop)
            if handler._logging_enabled and handler.access_logger is not None:
                handler.access_logger.log(
                    cast(web.BaseRequest, _Logged.of(request.head, self._transport)),
                    cast(web.StreamResponse, _LoggedReply(status=status,
                                                          body_length=len(wire))),
                    time.perf_counter() - started)
        finally:
            path.metrics.answered(request.service.value, status, time.perf_counter() - started)
            _request_ended(handler)
            self._replying = None
        if self._held:
            held, self._held = b"".join(self._held), []
            if not self._transport.is_closing():
                self._transport.resume_reading()  # before aiohttp, which may pause it again
            self._hand_over(held)

    async def _answer(self, request: _Request) -> tuple[bytes, bool]:
        """The reply's bytes and whether the connection closes after them."""
        path = self._path
        peer: Peer | NotRegistered | None = self._peer
        if peer is None:
            try:
                peer = self._peer = path.identify.of_connection(self._ssl_object)
            except NotRegistered as refusal:  # the exchange raises it; not kept (raised again,
                peer = refusal  # an exception's traceback grows)
        key = budget_key(peer)
        try:
            path.limits.admit(key)
            try:
                body = await path.exchange.reply(request.service, peer, request.body)
            finally:
                path.limits.release(key, len(request.body))
        except web.HTTPException as answer:
            return self._http_answer(answer)
        except Exception:  # a bug of ours: answered as aiohttp answers a failing handler
            log.exception("unexpected failure on %s", request.service)
            return self._http_answer(web.HTTPInternalServerError())
        return _wire(_OK, body, close=False), False

    @staticmethod
    def _http_answer(answer: web.HTTPException) -> tuple[bytes, bool]:
        assert isinstance(answer.body, bytes)
        close = answer.keep_alive is False
        return _wire(_opening(answer.status, answer.reason, answer.headers), answer.body,
                     close=close), close


def _opening(status: int, reason: str, headers: CIMultiDict[str] | CIMultiDictProxy[str]
             ) -> bytes:
    """A reply's status line and ``headers`` but its Content-Length, through the name of that."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items()
                 if name.lower() != "content-length")
    return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


_OK: Final = _opening(200, "OK", CIMultiDict({"Content-Type": "application/xml"}))
_SERVER: Final = f"\r\nServer: {SERVER_SOFTWARE}".encode("latin-1")


def _wire(opening: bytes, body: bytes, *, close: bool) -> bytes:
    """A reply as aiohttp's writer frames it: its :func:`_opening`, Content-Length, Date,
    Server, and ``Connection: close`` when the connection ends after it."""
    return b"%s%d\r\nDate: %s%s%s%s" % (
        opening, len(body), rfc822_formatted_time().encode("latin-1"),  # aiohttp's own date
        _SERVER, b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n", body)


def _request_began(handler: RequestHandler) -> None:
    """As aiohttp's own request does: shutdown waits for it, and the keep-alive deadline, which
    closes only an idle connection, is held (aiohttp's protocol believes itself idle): its
    check, should it come now, neither closes nor comes again (aiohttp's ``keep_alive(False)``
    without the timer's cancel; :func:`_keep_alive_from_now` arms it again if it came)."""
    handler._request_in_progress = True
    if handler._manager is not None:
        handler._manager.requests_count += 1
    handler._keepalive = False


def _request_ended(handler: RequestHandler) -> None:
    handler._request_in_progress = False
    handler._keepalive = True  # aiohttp's protocol has answered nothing that could unset it
    if handler._handler_waiter is not None and not handler._handler_waiter.done():
        handler._handler_waiter.set_result(None)


def _keep_alive_from_now(handler: RequestHandler, loop: asyncio.AbstractEventLoop) -> None:
    """aiohttp's deadline after a reply: ``keepalive_timeout`` from now; its check, still armed
    for an earlier deadline, comes then and waits again for this one."""
    timeout = handler.keepalive_timeout
    if timeout <= 0 or handler._force_close or handler._close:
        return
    close_time = loop.time() + timeout
    handler._next_keepalive_close_time = close_time
    if handler._keepalive_handle is None:
        handler._keepalive_handle = loop.call_at(close_time, handler._process_keepalive)


@dataclass(frozen=True, slots=True)
class _Logged:
    """What aiohttp's access logger reads of a request."""

    method: str
    path_qs: str
    version: object
    remote: str | None
    headers: CIMultiDict[str]

    @classmethod
    def of(cls, head: bytes, transport: asyncio.Transport) -> _Logged:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ")
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.add(name, value.strip(" \t"))
        peer = transport.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple | list) else (
            None if peer is None else str(peer))
        return cls(method=method, path_qs=target, version=HttpVersion11, remote=remote,
                   headers=headers)


@dataclass(frozen=True, slots=True)
class _LoggedReply:
    """What aiohttp's access logger reads of a reply (``body_length``: every byte written)."""

    status: int
    body_length: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
