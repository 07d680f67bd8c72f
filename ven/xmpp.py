"""The VEN's side of the OpenADR 2.0b XMPP binding (profile 9.3): :class:`XmppLink`, a
:class:`ven.VenClient` transport beside Simple HTTP.

The VEN is a client of the XMPP server, over STARTTLS with its own certificate, authenticated by
SASL EXTERNAL: the server names it by its certificate's fingerprint (:mod:`schemas.xmpp`), so its
JID is ``<fingerprint digits>@domain/resource`` and nothing it says can make it another VEN. Each
request is an IQ ``set`` to the VTN's JID carrying the ``oadrPayload``; the VTN's answer is the
IQ ``result``. The VTN sends its own payloads (events, report requests, ...) the same way, and
they are answered like HTTP pushes (:func:`ven.push.answer_pushed`): there is no polling.

Invariants: a session the server refuses (SASL EXTERNAL fails: no certificate, or one it does not
trust) fails the request waiting for it at once, as :class:`VtnUnavailable` saying so; an IQ not
from the VTN's JID (``vtn_jid``, bare) is refused with ``forbidden`` before
its payload is read, as is one over ``max_body_bytes``; a stanza nested deeper than
:data:`schemas.xmpp.MAX_DEPTH` is dropped unread (a request among them answered
``not-acceptable``), except an IQ set carrying one ``oadrPayload``, which a
:class:`~schemas.xmppframes.PayloadFramer` in front of slixmpp's parser takes off the stream as
the bytes the server wrote (no tree, no second serialisation; read without recursion) for the
codec, whose parser has its own depth limit; the session reconnects after
``reconnect_s`` when it drops, with the same resource, so the address the VTN holds stays good.
A request without an answer in ``request_timeout_s``, or with the session down, or answered with
an XMPP error of type ``wait`` (the VTN's budgets, its database away) is :class:`VtnUnavailable`;
any other XMPP error is :class:`XmppRefused` (a :class:`VtnRefused` naming the condition).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath
from slixmpp.xmlstream.xmlstream import NotConnectedError

from schemas import Codec, Message, Service, TransportName
from schemas.logtext import escaped
from schemas.xmpp import (
    IQ_WITH_PAYLOAD,
    SERVICES_NODE,
    depth_guard,
    error_bytes,
    iq_bytes,
    localpart_of,
    payload_of,
)
from schemas.xmppframes import PayloadRequest, StreamSplitter

from ._http import Link
from .client import VenClient
from .errors import VtnRefused, VtnUnavailable, XmppRefused
from .push import answer_pushed

__all__ = ["Answerer", "XmppLink"]

log = logging.getLogger(__name__)

#: what answers the VTN's payloads on a link: the payload's bytes in, the answer's bytes out
Answerer = Callable[[bytes], Awaitable[bytes]]


class XmppLink(Link):
    """Reach the VTN at ``vtn_jid`` through the XMPP server at ``host:port`` (domain ``domain``).

    ``fingerprint`` is the VEN's own certificate's (the one in ``ssl_context``): the server names
    the VEN by it. Connects at the first request (or :meth:`connect`); :meth:`serve` hands the
    VTN's payloads to a client (:meth:`answer_with`, to any :data:`Answerer`); :meth:`close`
    disconnects (``VenClient.close`` calls it).
    """

    transport_name = TransportName.XMPP
    polls = False

    def __init__(self, *, host: str, port: int, domain: str, vtn_jid: str, fingerprint: str,
                 ssl_context: ssl.SSLContext, codec: Codec | None = None,
                 resource: str = "ven", request_timeout_s: float = 30.0,
                 connect_timeout_s: float = 30.0, reconnect_s: float = 5.0,
                 max_body_bytes: int = 1024 * 1024) -> None:
        self.codec = codec or Codec()
        self.address = f"{localpart_of(fingerprint)}@{domain}/{resource}"
        self.vtn_jid = vtn_jid
        self._server = (host, port)
        self._timeout = request_timeout_s
        self._connect_timeout = connect_timeout_s
        self._reconnect_s = reconnect_s
        self._max_body = max_body_bytes
        self._client: VenClient | None = None
        self._answerer: Answerer | None = None
        self._online = asyncio.Event()
        self._settled = asyncio.Event()  # this connection has its session, or never will
        self._connecting = False
        self._closing = False
        self._failure: str | None = None
        self._posting = 0  # requests awaiting their answer
        self._answered = asyncio.Event()  # set while none is
        self._answered.set()
        self._vtn_bare = slixmpp.JID(vtn_jid).bare
        self._serving: set[asyncio.Task[None]] = set()  # payloads in service (close cancels)
        # given at construction: otherwise slixmpp first builds a default context and loads the
        # system's CA store into it, twice (0.4-0.7 s per client, measured under load)
        stream = self._stream = _Stream(self.address, ssl_context=ssl_context,
                                        max_payload_bytes=max_body_bytes,
                                        on_payload=self._on_payload)
        # STARTTLS only, as the profile's servers offer it: slixmpp's default first tries direct TLS
        # on the same port, a wasted connection per session the server drops
        stream.enable_direct_tls = False
        stream.add_filter("in", depth_guard(stream.send_raw))
        stream.register_plugin("xep_0199", {"keepalive": True, "interval": 60})
        stream.add_event_handler("session_start", self._session_started)
        stream.add_event_handler("failed_all_auth", self._auth_failed)
        stream.add_event_handler("disconnected", self._disconnected)
        stream.register_handler(CoroutineCallback(
            "openadr", MatchXPath(IQ_WITH_PAYLOAD), self._on_request))
        # A request leaves as our encoder's bytes and its answer is found by id, as the VTN's
        # sends are (vtn.xmpp): built as a slixmpp stanza, every telemetry report was parsed and
        # serialised again in pure Python, and a 2,000-device fleet process fell behind its clock.
        self._asked: dict[str, asyncio.Future[Any]] = {}
        stream.register_handler(Callback("openadr-answers", MatchXPath("{jabber:client}iq"),
                                         self._on_answer))

    def serve(self, client: VenClient) -> None:
        """Answer the VTN's payloads with ``client`` (as :class:`ven.PushReceiver` does)."""
        self._client = client
        self.answer_with(self._answer_as_client)

    def answer_with(self, answerer: Answerer) -> None:
        """Answer the VTN's payloads (from its JID, within the size cap) with ``answerer``."""
        self._answerer = answerer

    async def connect(self) -> None:
        """Have the session now (:class:`VtnUnavailable` after ``connect_timeout_s``): the VTN
        can reach this link at :attr:`address` before its first request."""
        await self._online_now()

    # ------------------------------------------------------------ session

    async def _online_now(self) -> None:
        if self._online.is_set():
            return
        if not self._connecting:
            self._connect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connect_timeout):
                await self._settled.wait()
        if not self._online.is_set():
            raise VtnUnavailable(f"XMPP server {self._server[0]}:{self._server[1]} gave no "
                                 f"session: {self._failure or 'no answer'}")

    def _connect(self) -> None:
        self._connecting = True
        self._settled.clear()
        # slixmpp reconnects by itself when its keepalive ping times out: a second connect on
        # the same stream would feed two connections into one parser
        if not (self._stream.is_connected() or self._stream.is_connecting()):
            self._stream.connect(host=self._server[0], port=self._server[1])

    def _session_started(self, _event: object) -> None:
        self._connecting = False
        self._failure = None
        self._online.set()
        self._settled.set()

    def _auth_failed(self, _event: object) -> None:
        # every mechanism tried (or none offered: no certificate presented), so no session will
        # come of this connection: the request waiting for one fails now, not at the timeout
        self._failure = "SASL EXTERNAL refused (is this certificate trusted by the server?)"
        self._settled.set()

    def _disconnected(self, _event: object) -> None:
        self._online.clear()
        self._connecting = False
        if not self._closing:
            log.warning("XMPP session lost; reconnecting in %s s", self._reconnect_s)
            asyncio.get_running_loop().call_later(self._reconnect_s, self._reconnect)

    def _reconnect(self) -> None:
        if not self._closing and not self._connecting and not self._online.is_set():
            self._connect()

    async def close(self) -> None:
        """End the session; the payloads still in service are cancelled, unanswered (the VTN
        sends them again), and gone when this returns."""
        self._closing = True
        serving = tuple(self._serving)
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        if self._online.is_set() or self._connecting:
            await self._stream.disconnect(wait=1.0)
        self._online.clear()

    # ------------------------------------------------------------ VEN -> VTN

    async def post(self, service: Service, body: bytes) -> Message | None:
        reply = await self.post_bytes(service, body)
        return None if reply is None else self.codec.decode(reply)

    async def post_bytes(self, service: Service | str, body: bytes) -> bytes | None:
        """Send ``body`` (an encoded payload for ``service``) and return the VTN's answer as
        the bytes of its ``oadrPayload``, None when the result carried none; errors as
        :meth:`post` raises them."""
        await self._online_now()
        key = self._stream.new_id()
        answered = self._asked[key] = asyncio.get_running_loop().create_future()
        self._posting += 1
        self._answered.clear()
        try:
            self._stream.send_raw(iq_bytes(kind="set", iq_id=key, to=self.vtn_jid, body=body))
            async with asyncio.timeout(self._timeout):
                result = await answered
        except NotConnectedError:
            raise VtnUnavailable(f"{service}: the XMPP session is down") from None
        except TimeoutError:
            raise VtnUnavailable(f"{service}: no answer within {self._timeout} s") from None
        finally:
            del self._asked[key]
            self._posting -= 1
            if not self._posting:
                self._answered.set()
        if result["type"] == "error":
            error = result["error"]
            raise _failure(service, error["condition"], error["type"], error["text"])
        reply = payload_of(result.xml)
        if reply is not None and len(reply) > self._max_body:
            raise VtnRefused(None, f"{service}: reply over {self._max_body} bytes")
        return reply

    async def discover(self) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
        """What the VTN announces by service discovery (XEP-0030, profile 9.3.2): the features
        of its disco#info, and the (JID, node) items under the OpenADR services node; errors as
        :meth:`post` raises them. The discovery plugin is loaded on first use only."""
        await self._online_now()
        if "xep_0030" not in self._stream.plugin:
            self._stream.register_plugin("xep_0030")
        disco = self._stream.plugin["xep_0030"]
        with self._answer_to("service discovery"):
            info = await disco.get_info(jid=slixmpp.JID(self.vtn_jid), timeout=self._timeout)
            items = await disco.get_items(jid=slixmpp.JID(self.vtn_jid), node=SERVICES_NODE,
                                          timeout=self._timeout)
        return (frozenset(info["disco_info"]["features"]),
                frozenset((jid, node) for jid, node, _name in items["disco_items"]["items"]))

    @contextlib.contextmanager
    def _answer_to(self, what: str) -> Iterator[None]:
        """Translate slixmpp's IQ failures into the link's errors, naming ``what`` was asked."""
        try:
            yield
        except IqTimeout:
            raise VtnUnavailable(f"{what}: no answer within {self._timeout} s") from None
        except IqError as error:
            raise _failure(what, error.condition, error.iq["error"]["type"], error.text) from None

    def _on_answer(self, iq: Any) -> None:
        """The result or error answering one of our requests: only from the VTN's JID."""
        if iq["type"] not in ("result", "error"):
            return
        asked = self._asked.get(iq["id"])
        if asked is not None and iq["from"] == slixmpp.JID(self.vtn_jid) and not asked.done():
            asked.set_result(iq)

    # ------------------------------------------------------------ VTN -> VEN

    def _on_payload(self, request: PayloadRequest) -> None:
        """An IQ set the framer took off the stream: answered as :meth:`_on_request` would, from
        its attributes (the server-stamped ``from``, the ``id``) and its payload's bytes as
        received; no slixmpp stanza is made of it, and its payload is not serialised again."""
        attributes = request.attributes
        self._in_service(attributes.get("from", ""), attributes.get("id", ""), request.payload)

    async def _on_request(self, iq: Any) -> None:
        """An IQ carrying a payload that the framer left to slixmpp (another shape): its payload
        serialised again from slixmpp's elements."""
        if iq["type"] == "get":  # answered, as every request must be (RFC 6120 8.2.3)
            self._refuse(iq["from"].full, iq["id"], "bad-request", "modify",
                         "a payload travels in an IQ set")
            return
        if iq["type"] != "set":  # a result answers our own request (``post``)
            return
        self._in_service(iq["from"].full, iq["id"], payload_of(iq.xml) or b"")

    def _in_service(self, sender: str, iq_id: str, body: bytes) -> None:
        """Serve the IQ in a task of its own that :meth:`close` cancels: an answer may take
        as long as the client's hooks do, and must not outlive the link it would go out on."""
        if self._closing:
            return  # the VTN sends it again to the next session
        # the id is the peer's text, and asyncio logs a task's name (an exception not retrieved)
        task = asyncio.get_running_loop().create_task(
            self._serve(sender, iq_id, body), name=f"crowdflex-ven-xmpp:{escaped(iq_id)}")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, sender: str, iq_id: str, body: bytes) -> None:
        """Refuse or answer the IQ ``iq_id`` from the full JID ``sender`` carrying ``body``."""
        if slixmpp.JID(sender).bare != self._vtn_bare:
            self._refuse(sender, iq_id, "forbidden", "auth",
                         "this VEN takes payloads from its VTN only")
        elif len(body) > self._max_body:
            self._refuse(sender, iq_id, "not-acceptable", "modify",
                         f"payload over {self._max_body} bytes")
        elif self._answerer is None:
            self._refuse(sender, iq_id, "service-unavailable", "wait",
                         "no client serves this link")
        else:
            reply = await self._answerer(body)
            with contextlib.suppress(NotConnectedError):  # the VTN sends it again
                self._stream.send_raw(iq_bytes(kind="result", iq_id=iq_id, to=sender,
                                               body=reply))

    async def _answer_as_client(self, body: bytes) -> bytes:
        client = self._client
        assert client is not None  # serve
        if client.registration is None:
            # The VTN may send its first payloads (its METADATA) before our registration's
            # answer is through: take them once our requests are answered.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await self._answered.wait()
        return self.codec.encode(await answer_pushed(client, body, "XMPP"))

    def _refuse(self, sender: str, iq_id: str, condition: str, kind: str, text: str) -> None:
        log.info("refused an XMPP payload: %s", escaped(text))
        with contextlib.suppress(NotConnectedError):  # the sender asks again
            self._stream.send_raw(error_bytes(iq_id=iq_id, to=sender, condition=condition,
                                              kind=kind, text=text))


class _Stream(slixmpp.ClientXMPP):
    """slixmpp's client with a :class:`~schemas.xmppframes.StreamSplitter` in front of its
    parser: the VTN's IQ sets carrying an ``oadrPayload`` reach ``on_payload`` as the bytes
    received, everything else slixmpp's parser."""

    def __init__(self, jid: str, *, ssl_context: ssl.SSLContext, max_payload_bytes: int,
                 on_payload: Callable[[PayloadRequest], None]) -> None:
        self._splitter = StreamSplitter(max_payload_bytes, on_payload)
        super().__init__(jid, "", sasl_mech="EXTERNAL", ssl_context=ssl_context)

    def init_parser(self) -> None:
        super().init_parser()
        self._splitter.restart()

    def data_received(self, data: bytes | str) -> None:
        if isinstance(data, str):
            super().data_received(data)
        else:
            self._splitter.read(data, super().data_received)


def _failure(what: str, condition: str, kind: str, text: str) -> VtnUnavailable | XmppRefused:
    """An XMPP error answering ``what``: worth asking again later (type ``wait``, or the VTN or
    the way to it unavailable) or a refusal naming its condition."""
    reason = f"{what}: XMPP {condition}: {text}"
    if kind == "wait" or condition in (
            "service-unavailable", "recipient-unavailable", "remote-server-timeout"):
        return VtnUnavailable(reason)
    return XmppRefused(condition, reason)
