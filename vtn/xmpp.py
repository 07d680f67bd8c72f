"""The VTN's XMPP face (OpenADR 2.0b profile 9.3): the same services and payloads as the HTTP
endpoints of :mod:`vtn.transport`, carried in IQ stanzas through an XMPP server.

The VTN is an XMPP client of the server named in ``[xmpp]`` (:class:`vtn.settings.XmppSettings`),
over STARTTLS with its own certificate, authenticated by SASL EXTERNAL: the server names it, like
every client, by its certificate's fingerprint (:mod:`schemas.xmpp`). A VEN's request is an IQ
``set`` whose child is the ``oadrPayload``; the answer leaves as the IQ ``result``. Payloads the
VTN starts (events, report requests, ...) are IQ ``set`` s to the full JID the VEN registered
from, sent by :class:`vtn.push.PushDelivery` through :meth:`XmppTransport.send`; the VEN's answer
is routed as if it had sent it.

A request's life, as on HTTP (docs/architecture.md#a-messages-life): identity, size, budgets,
decode, route, encode. Identity is the fingerprint in the server-stamped ``from`` JID's
localpart, from nothing the payload says; a stanza from a JID that is no certificate's name
(another domain, a server, any other localpart) is refused with ``not-authorized`` before its
payload is read. Then: a VEN over its request rate, or its byte or CPU budget (the same
:class:`vtn.limits.VenBudgets` its HTTP requests pay from), is ``resource-constraint`` (type
``wait``), as is the VTN at its in-flight cap, all before the payload is serialised for the
codec (whose CPU the VEN is charged, as it is for decoding); a payload over ``max_body_bytes`` is
``not-acceptable``; the database away is ``resource-constraint`` again. A stanza nested deeper
than :data:`schemas.xmpp.MAX_DEPTH` is dropped before any of this (a request among them answered
``not-acceptable``). A protocol failure is an ``oadrResponse`` carrying its OpenADR code in
the IQ ``result``, as HTTP answers it in a 200. oadrPoll is not served over XMPP (453). An IQ
``set`` carrying anything but an ``oadrPayload`` is answered ``feature-not-implemented``, an IQ
``get`` carrying one ``bad-request``.

A payload reaches the codec as the bytes the server wrote: a
:class:`~schemas.xmppframes.PayloadFramer` in front of slixmpp's parser, on the session VENs send
to, takes each IQ ``set`` carrying one ``oadrPayload`` off the stream (slixmpp would build its
tree, and the tree would be serialised again in pure Python for the codec to parse a second
time); an IQ of any other shape goes to slixmpp, whose payload is serialised again as before.
Either way the bytes go through the same refusals first and then the codec's intake and the XSD.
The framer reads without recursion, so its stanzas need no depth guard; the codec's parser
has its own depth limit.

The session (identity, refusals, the window on sends) is apart from what answers a payload, a
:class:`Responder` given its bytes: :class:`ServiceResponder` (the services) in the VTN, a
recorder of its own in the conformance harness's VTN (:mod:`cbp.conformance.harness_vtn`).

Not carried over XMPP: payload signatures (the XMPP library re-serialises the payload, which a
signature over its exact bytes does not survive); :func:`vtn.app.create_app` refuses both at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from functools import lru_cache
from typing import Any, Final, Protocol

import slixmpp
from aiohttp import web
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchMany, MatchXPath, StanzaPath
from slixmpp.xmlstream.xmlstream import NotConnectedError

from schemas import Codec, Message, NotRecognized, OtherError, RemoteProtocolError, Service
from schemas.logtext import escaped
from schemas.xmpp import (
    FEATURE,
    IQ_WITH_PAYLOAD,
    SERVICES_NODE,
    XMPP_SERVICES,
    depth_guard,
    error_bytes,
    fingerprint_of_jid,
    iq_bytes,
    localpart_of,
    payload_of,
    service_node,
)
from schemas.xmppframes import PayloadRequest, StreamSplitter
from vtn.limits import RateLimiter, VenBudgets
from vtn.services import ROUTES
from vtn.settings import XmppSettings
from vtn.transport import Peer, Router, error_reply

__all__ = ["Responder", "ServiceResponder", "XmppTransport", "service_of"]

log = logging.getLogger(__name__)

#: how many senders' identities :func:`_peer_of` remembers (a fleet's devices, each asking
#: every few seconds; a JID seen again after more others than this is read again)
_PEERS_REMEMBERED: Final = 16384


def service_of(message: Message) -> Service:
    """The service a payload sent over XMPP belongs to: the one of :data:`ROUTES` taking its
    class (a bare oadrResponse is answered alike by every service). 453 for oadrPoll and for
    payloads no service takes."""
    for service in XMPP_SERVICES:
        if type(message) in ROUTES[service]:
            return service
    raise NotRecognized(f"{type(message).__name__} is not served over XMPP")


@lru_cache(maxsize=_PEERS_REMEMBERED)
def _peer_of(sender: str, domain: str) -> Peer | None:
    """The full JID ``sender`` as the server of ``domain`` named it: the peer whose certificate
    it names, None for a JID that names none. Remembered for the last
    :data:`_PEERS_REMEMBERED` senders (a Peer is immutable): each of a device's requests read
    its JID again."""
    fingerprint = fingerprint_of_jid(sender, domain)
    return None if fingerprint is None else Peer(fingerprint, address=sender)


class Responder(Protocol):
    """What answers the payloads VENs send on the session: ``body`` (the IQ's ``oadrPayload``,
    within ``max_body_bytes``) from ``peer`` in, the encoded answer for the IQ ``result`` out."""

    async def __call__(self, peer: Peer, body: bytes) -> bytes: ...


class ServiceResponder:
    """The VTN's services as a :class:`Responder`, as :mod:`vtn.transport` answers a POST:
    decode, route, encode, the CPU of decoding and encoding charged to the VEN's ``budgets``.
    A protocol failure is an oadrResponse with its code; a database away raises
    ``web.HTTPException`` (the transport answers ``resource-constraint``)."""

    def __init__(self, *, codec: Codec, route: Router, budgets: VenBudgets | None = None,
                 on_refused: Callable[[Service, RemoteProtocolError], None] | None = None
                 ) -> None:
        self._codec = codec
        self._route = route
        self._budgets = budgets
        self._on_refused = on_refused

    async def __call__(self, peer: Peer, body: bytes) -> bytes:
        service: Service | None = None
        message: Message | None = None
        try:
            started = time.thread_time()
            try:
                message = self._codec.decode(body)
            finally:
                self._charge(peer, started)
            service = service_of(message)
            reply = await self._route(service, peer, message)
        except RemoteProtocolError as error:
            log.info("refused over XMPP on %s: %s", service or "?", escaped(error))
            if self._on_refused is not None:
                self._on_refused(service or Service.REGISTER_PARTY, error)
            reply = error_reply(error, message)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unexpected failure on %s over XMPP", service or "?")
            reply = error_reply(OtherError("internal error; the request was not applied"),
                                message)
        started = time.thread_time()
        try:
            return self._codec.encode(reply)
        finally:
            self._charge(peer, started)

    def _charge(self, peer: Peer, started: float) -> None:
        if self._budgets is not None:
            self._budgets.charge_cpu(peer.fingerprint, time.thread_time() - started)


class _Client(slixmpp.ClientXMPP):
    """slixmpp's client, with a :class:`~schemas.xmppframes.PayloadFramer` in front of its
    parser when ``on_payload`` is given: the IQ sets carrying an ``oadrPayload`` reach
    ``on_payload`` as the bytes received, everything else slixmpp's parser as before. A new
    framer with each stream slixmpp's parser starts (a connection, STARTTLS, SASL), so both read
    the same bytes from the same first one."""

    def __init__(self, jid: str, *, ssl_context: ssl.SSLContext, max_payload_bytes: int,
                 on_payload: Callable[[PayloadRequest], None] | None) -> None:
        self._splitter = None if on_payload is None else StreamSplitter(max_payload_bytes,
                                                                        on_payload)
        super().__init__(jid, "", sasl_mech="EXTERNAL", ssl_context=ssl_context)

    def init_parser(self) -> None:
        super().init_parser()
        if self._splitter is not None:
            self._splitter.restart()

    def data_received(self, data: bytes | str) -> None:
        if self._splitter is None or isinstance(data, str):
            super().data_received(data)
        else:
            self._splitter.read(data, super().data_received)


class _Session:
    """One XMPP session of the VTN: a connection to the server under the JID ``jid`` (the VTN's
    certificate, one resource), the sends in flight on it by id, and its reconnection when it
    drops. ``on_start`` runs each time the session is (re)established, before it counts as
    online."""

    def __init__(self, settings: XmppSettings, jid: str, ssl_context: ssl.SSLContext, *,
                 on_start: Callable[[slixmpp.ClientXMPP], None] = lambda _client: None,
                 on_payload: Callable[[PayloadRequest], None] | None = None,
                 max_payload_bytes: int = 0) -> None:
        self.settings = settings
        self.jid = jid
        self.online = asyncio.Event()
        self.failure: str | None = None
        self._stopping = False
        self._on_start = on_start
        # The answers to our sends, found by id: slixmpp's Iq.send registers a handler per IQ in
        # flight and tries every one on every incoming stanza, so a dispatch to a thousand
        # devices made each of their telemetry IQs pay a thousand matches (the aggregator's
        # CPU went to slixmpp's matchers; answers came too late and pushes timed out).
        self.sent: dict[str, tuple[str, asyncio.Future[Any]]] = {}  # id -> (JID sent to, answer)
        self._unwritten: list[bytes] = []  # IQs of this turn of the loop, for one write
        # given at construction: otherwise slixmpp first builds a default context and loads the
        # system's CA store into it, twice (0.4-0.7 s per client, measured under load)
        client = self.client = _Client(jid, ssl_context=ssl_context,
                                       max_payload_bytes=max_payload_bytes, on_payload=on_payload)
        # STARTTLS only, as the profile's servers offer it: slixmpp's default first tries direct TLS
        # on the same port, a wasted connection per session the server drops
        client.enable_direct_tls = False
        # every session, not only the one VENs ask: any client can send to any of its JIDs
        client.add_filter("in", depth_guard(client.send_raw))
        client.register_plugin("xep_0199", {"keepalive": True,
                                            "interval": settings.keepalive_s})
        client.add_event_handler("session_start", self._started)
        client.add_event_handler("failed_auth", self._auth_failed)
        client.add_event_handler("disconnected", self._disconnected)
        # results and errors only: an IQ set or get no handler takes must stay unhandled, so
        # that slixmpp answers it feature-not-implemented (RFC 6120 8.2.3: every request gets
        # an answer; a foreign payload once waited out the sender's timeout instead)
        client.register_handler(Callback("openadr-answers", MatchMany(
            [StanzaPath("iq@type=result"), StanzaPath("iq@type=error")]), self._on_answer))

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def connect(self) -> None:
        # slixmpp reconnects by itself when its keepalive ping times out: a second connect on
        # the same stream would feed two connections into one parser (stanzas lost, parse
        # errors, sessions thrown out in turn)
        if not (self.client.is_connected() or self.client.is_connecting()):
            self.client.connect(host=self.settings.host, port=self.settings.port)

    async def disconnect(self, wait: float) -> None:
        self._stopping = True
        await self.client.disconnect(wait=wait)

    def _started(self, _event: object) -> None:
        self._on_start(self.client)
        log.info("XMPP session %s online", self.client.boundjid.full)
        self.online.set()

    def _auth_failed(self, _event: object) -> None:
        self.failure = "SASL EXTERNAL refused (is the VTN certificate trusted by the server?)"
        log.error("XMPP server %s refused %s: %s", self.server, self.jid, self.failure)

    def _disconnected(self, _event: object) -> None:
        self.online.clear()
        self._unwritten.clear()
        # what was in flight here gets no answer on this session: its senders hear it now (the
        # push lane sends it again, maybe over another session) instead of at their timeout
        for address, answer in self.sent.values():
            if not answer.done():
                answer.set_exception(ConnectionError(
                    f"the XMPP session {self.jid} dropped before {address} answered"))
        if not self._stopping:
            log.warning("XMPP session %s to %s lost; reconnecting", self.jid, self.server)
            asyncio.get_running_loop().call_later(self.settings.reconnect_s, self.connect)

    async def exchange(self, address: str, body: bytes) -> Any:
        """One IQ ``set`` out and its result or error back, within ``request_timeout_s``."""
        key = self.client.new_id()
        answered = self.sent[key] = (address, asyncio.get_running_loop().create_future())
        try:
            if not self.client.transport:
                raise NotConnectedError
            self._write(iq_bytes(kind="set", iq_id=key, to=address, body=body))
            async with asyncio.timeout(self.settings.request_timeout_s):
                return await answered[1]
        except NotConnectedError:
            raise ConnectionError(f"the XMPP session {self.jid} is down") from None
        except TimeoutError:
            raise ConnectionError(f"{address} did not answer within "
                                  f"{self.settings.request_timeout_s} s") from None
        finally:
            del self.sent[key]

    def _write(self, stanza: bytes) -> None:
        """``stanza`` out with the others written in this turn of the loop, in one write: TLS
        makes records of up to 16 KB of one write, and Prosody reads one record of a connection
        per turn of its loop (one 6-KB device event per turn when each IQ was its own write)."""
        if not self._unwritten:
            asyncio.get_running_loop().call_soon(self._flush)
        self._unwritten.append(stanza)

    def _flush(self) -> None:
        stanzas, self._unwritten = self._unwritten, []
        # down since: the sends are failed by _disconnected (their push lanes send them again)
        with contextlib.suppress(NotConnectedError):
            self.client.send_raw(b"".join(stanzas))

    def _on_answer(self, iq: Any) -> None:
        """The result or error answering one of our sends (the handler's matcher passes no
        other IQ): only from the JID it went to."""
        sent = self.sent.get(iq["id"])
        if sent is not None and iq["from"].full == sent[0] and not sent[1].done():
            sent[1].set_result(iq)


class XmppTransport:
    """Serve the OpenADR services (``respond``, a :class:`ServiceResponder` in the VTN) on an
    XMPP session; :meth:`running` for the app's lifetime.

    ``settings.sessions`` sessions, each a connection of its own under the VTN's certificate:
    the first, at :attr:`jid`, is the one VENs send to; the payloads the VTN sends go out over
    all of them (:meth:`send_body`), and a VEN answers on the one that sent."""

    def __init__(self, settings: XmppSettings, *, ssl_context: ssl.SSLContext, codec: Codec,
                 respond: Responder, fingerprint: str, max_body_bytes: int,
                 budgets: VenBudgets | None = None, limiter: RateLimiter | None = None,
                 max_in_flight: int | None = None) -> None:
        self.settings = settings
        bare = f"{localpart_of(fingerprint)}@{settings.domain}"
        self.jid = f"{bare}/{settings.resource}"
        self._codec = codec
        self._respond = respond
        self._max_body = max_body_bytes
        self._budgets = budgets
        self._limiter = limiter
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._sessions = [_Session(settings, self.jid, ssl_context,
                                   on_start=self._offer_services, on_payload=self._on_payload,
                                   max_payload_bytes=max_body_bytes)]
        self._sessions.extend(
            _Session(settings, f"{bare}/{settings.resource}-{n}", ssl_context)
            for n in range(1, settings.sessions))
        # VENs' requests arrive on the first session; the others only send
        client = self._client = self._sessions[0].client
        client.register_plugin("xep_0030")  # service discovery
        client.register_handler(CoroutineCallback(
            "openadr", MatchXPath(IQ_WITH_PAYLOAD), self._on_request))
        # The window on our sends: a dispatch to a thousand devices put a thousand IQs in front of
        # Prosody at once and the answers behind them missed the timeout, which measured the queue
        # rather than the device; a send waits (in order) for its slot, then its timeout starts.
        # Each session has max_sends_in_flight of the slots (Prosody reads each connection once
        # per turn of its loop: a window of one session's is what one connection carries).
        self._window = asyncio.Semaphore(settings.max_sends_in_flight * settings.sessions)
        self._serving: set[asyncio.Task[None]] = set()  # requests in service (running ends them)

    # ------------------------------------------------------------ session

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[XmppTransport]:
        """Connected and serving inside the block (every session within ``connect_timeout_s``,
        else :class:`ConnectionError`); disconnected after it."""
        for session in self._sessions:
            session.connect()
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                for session in self._sessions:
                    await session.online.wait()
        except TimeoutError:
            for session in self._sessions:
                session.client.disconnect(wait=0)
            late = next(s for s in self._sessions if not s.online.is_set())
            raise ConnectionError(f"XMPP server {late.server} did not take {late.jid}: "
                                  f"{late.failure or 'no session'}") from None
        try:
            yield self
        finally:
            await asyncio.gather(*(session.disconnect(wait=1.0) for session in self._sessions))
            # then no request arrives any more: those still in service are cancelled (their
            # answers could not leave) and awaited, not left running past the VTN's stop
            serving = tuple(self._serving)
            for task in serving:
                task.cancel()
            await asyncio.gather(*serving, return_exceptions=True)

    def _offer_services(self, client: slixmpp.ClientXMPP) -> None:
        disco = client.plugin["xep_0030"]
        disco.add_feature(FEATURE)
        for service in XMPP_SERVICES:
            disco.add_item(jid=client.boundjid.full, node=SERVICES_NODE,
                           subnode=service_node(service), ijid=client.boundjid)

    # ------------------------------------------------------------ VEN -> VTN

    def _on_payload(self, request: PayloadRequest) -> None:
        """An IQ set the framer took off the stream: served as slixmpp's would be, from its
        attributes (the server-stamped ``from``, the ``id``) and its payload's bytes as
        received; no slixmpp stanza is made of it."""
        attributes = request.attributes
        self._in_service(attributes.get("from", ""), attributes.get("id", ""), request.payload)

    async def _on_request(self, iq: Any) -> None:
        """An IQ carrying a payload that the framer left to slixmpp (another shape, or a
        session without a framer): its payload serialised again from slixmpp's elements."""
        if iq["type"] == "get":  # answered, as every request must be (RFC 6120 8.2.3)
            self._answer_error(iq["from"].full, iq["id"], "bad-request", "modify",
                               "a payload travels in an IQ set")
            return
        if iq["type"] != "set":  # a result is the answer to our own request (``send``)
            return
        self._in_service(iq["from"].full, iq["id"], lambda: payload_of(iq.xml) or b"")

    def _in_service(self, sender: str, iq_id: str,
                    payload: bytes | Callable[[], bytes]) -> None:
        """Serve the IQ in a task of its own, which :meth:`running` ends with the sessions."""
        # the id is the peer's text, and asyncio logs a task's name (an exception not retrieved)
        task = asyncio.get_running_loop().create_task(
            self._serve(sender, iq_id, payload), name=f"crowdflex-vtn-xmpp:{escaped(iq_id)}")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, sender: str, iq_id: str,
                     payload: bytes | Callable[[], bytes]) -> None:
        """Refuse or answer the IQ ``iq_id`` from the full JID ``sender``; ``payload`` is its
        payload's bytes as received, or gives them when serialised again, asked only once the
        refusals that need none have passed (serialising costs CPU, charged to the VEN)."""
        peer = _peer_of(sender, self.settings.domain)
        refusal = self._refusal(peer)
        if refusal is None:
            assert peer is not None  # _refusal
            if isinstance(payload, bytes):
                body, cpu = payload, 0.0
            else:
                started = time.thread_time()
                body = payload()
                cpu = time.thread_time() - started
            refusal = self._charge(peer, cpu, len(body))
            if refusal is None:
                await self._answer(sender, iq_id, peer, body)
                return
        log.info("refused an XMPP request from %s: %s", escaped(sender), escaped(refusal[2]))
        self._answer_error(sender, iq_id, *refusal)

    async def _answer(self, sender: str, iq_id: str, peer: Peer, body: bytes) -> None:
        self._in_flight += 1
        try:
            reply = await self._respond(peer, body)
        except web.HTTPException as unavailable:  # the database is away (vtn.faults)
            self._answer_error(sender, iq_id, "resource-constraint", "wait",
                               unavailable.text or "try later")
            return
        finally:
            self._in_flight -= 1
        with contextlib.suppress(NotConnectedError):  # the VEN asks again
            self._client.send_raw(iq_bytes(kind="result", iq_id=iq_id, to=sender, body=reply))

    def _answer_error(self, sender: str, iq_id: str, condition: str, kind: str,
                      text: str) -> None:
        """Answer the IQ ``iq_id`` from ``sender`` with an XMPP error: ``condition`` and
        ``kind`` as RFC 6120 8.3 names them."""
        with contextlib.suppress(NotConnectedError):  # the VEN asks again
            self._client.send_raw(error_bytes(iq_id=iq_id, to=sender, condition=condition,
                                              kind=kind, text=text))

    def _refusal(self, peer: Peer | None) -> tuple[str, str, str] | None:
        """Why a request is answered with an XMPP error (condition, type, text) before its
        payload is serialised for the codec, if it is."""
        if peer is None:
            return ("not-authorized", "auth", "the sender's JID names no client certificate")
        key = peer.fingerprint
        if self._limiter is not None and self._limiter.take(key) > 0.0:
            return ("resource-constraint", "wait", "request rate over this VEN's limit")
        if self._budgets is not None and self._budgets.wait(key) > 0.0:
            return ("resource-constraint", "wait", "this VEN is over its byte or CPU budget")
        if self._max_in_flight is not None and self._in_flight >= self._max_in_flight:
            return ("resource-constraint", "wait", "the VTN is at its in-flight cap")
        return None

    def _charge(self, peer: Peer, cpu: float, size: int) -> tuple[str, str, str] | None:
        """Charge ``peer`` the payload's ``size`` in bytes and the ``cpu`` seconds of
        serialising it; the refusal of one over ``max_body_bytes``."""
        if self._budgets is not None:
            if cpu:
                self._budgets.charge_cpu(peer.fingerprint, cpu)
            self._budgets.charge_bytes(peer.fingerprint, size)
        if size > self._max_body:
            return ("not-acceptable", "modify", f"payload over {self._max_body} bytes")
        return None

    # ------------------------------------------------------------ VTN -> VEN

    async def send(self, address: str, message: Message) -> Message | None:
        """Send ``message`` to the VEN at the full JID ``address``; its answer (None when the
        result carried no payload). :class:`ConnectionError` when it was not answered."""
        reply = await self.send_body(address, self._codec.encode(message))
        return None if reply is None else self._codec.decode(reply)

    async def send_body(self, address: str, body: bytes) -> bytes | None:
        """Send our own encoder's ``body`` of a payload to the full JID ``address``; the payload
        of its answer as received (None when the result carried none). :class:`ConnectionError`
        when it was not answered, answered with an XMPP error, or answered over
        ``max_body_bytes``, or when the session it went out on dropped first.

        At most ``max_sends_in_flight`` times ``sessions`` sends are out at once; the others
        wait for a slot in the order they came, and ``request_timeout_s`` starts when a send
        has its slot. A send goes out on the online session with the fewest in flight (so each
        carries at most ``max_sends_in_flight`` while all are online)."""
        async with self._window:
            online = [s for s in self._sessions if s.online.is_set()]
            if not online:
                raise ConnectionError("the XMPP session is down")
            result = await min(online, key=lambda s: len(s.sent)).exchange(address, body)
        if result["type"] == "error":
            raise ConnectionError(f"{address} answered {result['error']['condition']}")
        reply = payload_of(result.xml)
        if reply is not None and len(reply) > self._max_body:
            raise ConnectionError(f"{address} answered more than {self._max_body} bytes")
        return reply
