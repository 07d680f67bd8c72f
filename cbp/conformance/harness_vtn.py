"""The harness's VTN: an OpenADR 2.0b server over Simple HTTP or XMPP that records everything.

``crowdflex conformance ven`` points a VEN under test at this server (:attr:`HarnessVtn.address`).
It answers every request at once the way the 2.0b profile asks a VTN to (registration,
acknowledgements, empty polls) and keeps each request with its reply as an
:class:`~cbp.conformance.Exchange` checked by the VEN-side passive rules
(:mod:`~cbp.conformance.ven_rules`). A payload a case queues with
:meth:`HarnessVtn.deliver` goes to a pull VEN's next poll, or is POSTed at once to a push VEN's
transport address (profile 9.1), whose reply in the response body is heard like a request.
Over XMPP (``VenHarnessSettings.xmpp``, profile 9.3) the harness is a client of an XMPP server
through the product's session (:class:`vtn.xmpp.XmppTransport`, with this harness as its
:class:`~vtn.xmpp.Responder`): the VEN's IQs are its requests, and every payload a case queues
is sent at once to the full JID the VEN registered from; an exchange there has no Content-Type,
its ``service`` is :data:`XMPP_SERVICE` and status 200 stands for an IQ ``result``. Cases
read what the VEN sent with :meth:`HarnessVtn.wait_for`, and have the VEN act on its own (send an
opt) through an :class:`~cbp.conformance.Operator` with :meth:`HarnessVtn.operate`. Signed
(``VenHarnessSettings.signed``, profile 10), it signs everything it sends with its own
certificate and refuses, with HTTP 400, a request whose signature is absent or does not verify
against ``ca``.

Invariants: only a client certificate chaining to ``ca`` gets through the handshake (over XMPP: a
sender the XMPP server named by a certificate's fingerprint), and the venID the harness gives is
that certificate's fingerprint; a push goes only to a server presenting that same certificate
(over XMPP: to the JID the registration came from); pushes leave one at a time, in order; every
wait is bounded by ``wait_timeout_s``; of a request or a push's answer at most
:data:`~cbp.conformance._model.MAX_BODY_BYTES` is read; a request is answered before it is
offered to a case, so a slow case never holds the VEN up.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, TypeVar

import aiohttp
from aiohttp import web
from lxml import etree

from schemas import (
    SERVICE_PREFIX,
    CanceledOpt,
    CanceledPartyRegistration,
    CancelOpt,
    CancelPartyRegistration,
    Codec,
    ComplianceError,
    CreatedOpt,
    CreatedPartyRegistration,
    CreateOpt,
    CreatePartyRegistration,
    DistributeEvent,
    EiResponse,
    Event,
    Message,
    Poll,
    Profile,
    ProfileName,
    QueryRegistration,
    RegisteredReport,
    RegisterReport,
    RemoteProtocolError,
    ReportRequest,
    RequestEvent,
    Response,
    SchemaViolation,
    Signer,
    TransportName,
    UpdatedReport,
    UpdateReport,
    Verifier,
    new_id,
    utc_now,
)
from schemas.certpath import Purpose
from schemas.identity import TlsProfile, fingerprint_from_pem
from schemas.parts import echoed_request_id
from schemas.tls import client_context, peer_fingerprint, server_context
from ven import read_capped
from vtn.push import PinnedVen, service_for
from vtn.settings import XmppSettings
from vtn.transport import Peer
from vtn.xmpp import XmppTransport

from ._model import MAX_BODY_BYTES, CaseFailed, ConformanceError, Exchange, Violation
from .operators import Operator, Step, StepKind, carry_out
from .ven_rules import VEN_RULES, Heard, Said
from .vtn_address import HttpAddress, VtnAddress, XmppAddress

__all__ = ["XMPP_SERVICE", "HarnessVtn", "VenHarnessSettings"]

M = TypeVar("M", bound=Message)
#: an XMPP exchange's ``service``: IQs go to one JID, there are no service endpoints
XMPP_SERVICE: Final = "XMPP IQ"


@dataclass(frozen=True, slots=True, kw_only=True)
class VenHarnessSettings:
    """Who the harness VTN is and how it treats the VEN under test.

    ``cert``/``key`` are the harness VTN's server certificate (the VEN must trust its CA), ``ca``
    what the VEN's client certificate must chain to. ``poll_freq_s`` is the
    oadrRequestedOadrPollFreq the harness gives; ``report_back_s`` the granularity and
    reportBackDuration of the reports it requests. ``push`` says which mode the VEN under test is
    expected to register for. ``signed``: sign every payload with ``cert``/``key`` and require
    every request to be signed by a certificate chaining to ``ca``. ``xmpp``: serve over XMPP
    through that server instead of HTTP (``host``/``port`` unused), logging in with
    ``cert``/``key`` and trusting a server certificate chaining to ``ca``; the VEN is pushed to
    as there is no polling, so ``push`` must be set, and ``signed`` cannot be (the XMPP
    library re-serialises payloads, which their signatures do not survive).
    """

    cert: Path
    key: Path
    ca: Path
    host: str = "127.0.0.1"
    port: int = 0
    tls_profile: TlsProfile = TlsProfile.OPENADR_TLS12_OR_TLS13
    vtn_id: str = "crowdflex-conformance-vtn"
    poll_freq_s: int = 1
    report_back_s: int = 5
    wait_timeout_s: float = 30.0
    push: bool = False
    signed: bool = False
    request_timeout_s: float = 10.0
    xmpp: XmppSettings | None = None
    clock: Callable[[], datetime] = field(default=utc_now, compare=False)

    def __post_init__(self) -> None:
        if self.xmpp is not None and (self.signed or not self.push):
            raise ConformanceError("over XMPP the harness pushes (push=True) and signs nothing "
                             "(signed=False)")

    def codec(self) -> Codec:
        """The harness VTN's codec: signed, it signs with ``cert``/``key`` and accepts only
        requests signed by a VEN certificate chaining to ``ca``."""
        if not self.signed:
            return Codec(clock=self.clock)
        return Codec(signer=Signer.from_files(self.key, self.cert),
                     verifier=Verifier.from_files(self.ca, purpose=Purpose.CLIENT),
                     require_signature=True, clock=self.clock)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Decoded:
    """What the harness made of a request body: its tree (None when not XML), the XSD's and the
    signature check's complaints, the payload (None when refused) and the refusal."""

    tree: etree._Element | None = None
    schema_error: str | None = None
    signature_error: str | None = None
    message: Message | None = None
    error: str | None = None


class HarnessVtn:
    """One server for a whole run; cases share it in order (use as ``async with``)."""

    def __init__(self, settings: VenHarnessSettings, operator: Operator) -> None:
        self.settings = settings
        self.operator = operator  # of the VEN under test
        self.codec = settings.codec()
        self.said = Said()
        self.ven_id: str | None = None
        self.registration_id: str | None = None
        self.events: dict[str, Event] = {}  # live events, by eventID, as last distributed
        self.report_request: ReportRequest | None = None  # the report the cases asked for
        self.exchanges: list[Exchange] = []  # of the current case
        self.history: list[Exchange] = []  # of the whole run
        self.steps: list[Step] = []  # of the current case
        self._heard: list[Message] = []  # every decoded request, in arrival order
        self._taken: set[int] = set()
        self._arrival = asyncio.Condition()
        self._outgoing: deque[tuple[Message, bytes]] = deque()  # with its body as sent
        self._runner: web.AppRunner | None = None
        self._xmpp: XmppTransport | None = None
        self._session = AsyncExitStack()  # the XMPP session's
        self._port = settings.port
        # where pushes go once the VEN registered: its transport address, over XMPP its JID
        self.push_to: str | None = None
        self._push_lock = asyncio.Lock()
        self._pushes: set[asyncio.Task[None]] = set()
        self._push_error: str | None = None
        self._push_context: ssl.SSLContext | None = None

    async def __aenter__(self) -> HarnessVtn:
        if self.settings.xmpp is not None:
            await self._serve_xmpp(self.settings.xmpp)
            return self
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(f"{SERVICE_PREFIX}/{{service}}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = server_context(cert=self.settings.cert, key=self.settings.key,
                                 ca=self.settings.ca, profile=self.settings.tls_profile)
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port,
                           ssl_context=context)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._push_context = client_context(
            cert=self.settings.cert, key=self.settings.key, ca=self.settings.ca,
            profile=self.settings.tls_profile, check_hostname=False)  # pinned by fingerprint
        return self

    async def _serve_xmpp(self, xmpp: XmppSettings) -> None:
        settings = self.settings
        context = client_context(cert=settings.cert, key=settings.key, ca=settings.ca,
                                 profile=settings.tls_profile)
        self._xmpp = XmppTransport(
            replace(xmpp, request_timeout_s=settings.request_timeout_s), ssl_context=context,
            codec=self.codec, respond=self._respond,
            fingerprint=fingerprint_from_pem(settings.cert.read_bytes()),
            max_body_bytes=MAX_BODY_BYTES)
        await self._session.enter_async_context(self._xmpp.running())

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        for task in self._pushes:
            task.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        await self._session.aclose()

    @property
    def address(self) -> VtnAddress:
        """Where the VEN under test is pointed: the Simple HTTP root, or the XMPP server and
        the harness's JID."""
        xmpp = self.settings.xmpp
        if xmpp is None or self._xmpp is None:
            return HttpAddress(url=f"https://{self.settings.host}:{self._port}{SERVICE_PREFIX}")
        return XmppAddress(host=xmpp.host, port=xmpp.port, domain=xmpp.domain,
                           jid=self._xmpp.jid)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.settings.clock

    def begin_case(self) -> None:
        self.exchanges = []
        self.steps = []

    def registered_ven(self) -> str:
        if self.ven_id is None:
            raise CaseFailed("the VEN never registered")
        return self.ven_id

    # ------------------------------------------------------------ what cases do

    def deliver(self, message: Message, body: bytes | None = None) -> None:
        """Hand ``message`` to the VEN: pushed at once to a push VEN, else to its next poll;
        either way payloads leave in the order they were delivered. ``body`` replaces its
        encoding (a case that sends a deliberately broken payload)."""
        self.said.remember(message)
        body = self.codec.encode(message) if body is None else body
        if self.push_to is None:
            self._outgoing.append((message, body))
            return
        task = asyncio.create_task(self._push(self.push_to, message, body))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    def distribute(self) -> DistributeEvent:
        """Queue an oadrDistributeEvent carrying every live event, as the profile requires."""
        message = DistributeEvent(request_id=new_id(), vtn_id=self.settings.vtn_id,
                                  events=tuple(self.events.values()))
        self.deliver(message)
        return message

    async def operate(self, kind: StepKind, **params: object) -> Step:
        """Have the VEN's operator carry out one step; :class:`CaseFailed` if it cannot."""
        step = Step(kind=kind, ven_id=self.registered_ven(), params=params)
        self.steps.append(step)
        await carry_out(self.operator, step)
        return step

    def mark(self) -> int:
        """A position in the arrivals: :meth:`wait_for` with ``after`` ignores what came before."""
        return len(self._heard)

    async def wait_for(self, kind: type[M], what: str, accept: Callable[[M], bool] = lambda _: True,
                       *, after: int = 0) -> M:
        """The first not yet taken ``kind`` request since ``after`` that ``accept`` takes;
        :class:`CaseFailed` when none arrived within ``wait_timeout_s``."""
        timeout = self.settings.wait_timeout_s
        try:
            async with asyncio.timeout(timeout), self._arrival:
                while True:
                    for index in range(after, len(self._heard)):
                        message = self._heard[index]
                        if index not in self._taken and isinstance(message, kind) \
                                and accept(message):
                            self._taken.add(index)
                            return message
                    await self._arrival.wait()
        except TimeoutError:
            failed = f"; the last push failed: {self._push_error}" if self._push_error else ""
            raise CaseFailed(f"the VEN sent no {what} within {timeout:g} s{failed}") from None

    def heard_since(self, after: int) -> list[Message]:
        return self._heard[after:]

    async def pushed(self) -> None:
        """Wait until every push delivered so far has its answer (or failed)."""
        await asyncio.gather(*self._pushes, return_exceptions=True)

    # ------------------------------------------------------------ pushing

    async def _push(self, to: str, message: Message, body: bytes) -> None:
        async with self._push_lock:  # FIFO: pushes leave in the order they were delivered
            if self._xmpp is not None:
                await self._send_iq(self._xmpp, to, message, body)
                return
            service = service_for(message)
            assert self._push_context is not None, "use HarnessVtn as an async context manager"
            connector = aiohttp.TCPConnector(ssl=PinnedVen(self.ven_id or ""))
            timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
            try:
                async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http, \
                        http.post(f"{to.rstrip('/')}/{service}", data=body,
                                  ssl=self._push_context, allow_redirects=False,
                                  headers={"Content-Type": "application/xml"}) as got:
                    reply, status = await read_capped(got.content, MAX_BODY_BYTES), got.status
                    media = got.headers.get("Content-Type", "").split(";")[0].strip() or None
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
                self._push_error = f"{service}: {type(exc).__name__}: {exc}"
                return
            if len(reply) > MAX_BODY_BYTES:  # unread beyond: the connection is dropped
                self._push_error = f"{service}: reply over {MAX_BODY_BYTES} bytes"
                return
            if status != 200:
                self._push_error = f"{service}: HTTP {status}"
            await self._hear(service, reply, media, self.ven_id, answering=message,
                             status=status)

    async def _send_iq(self, xmpp: XmppTransport, jid: str, message: Message, body: bytes
                       ) -> None:
        """One push over XMPP: an IQ ``set`` to ``jid``, its ``result`` heard as the answer."""
        try:
            reply = await xmpp.send_body(jid, body)
        except ConnectionError as exc:
            self._push_error = f"{XMPP_SERVICE} to {jid}: {exc}"
            return
        await self._hear(XMPP_SERVICE, reply or b"", None, self.ven_id, answering=message,
                         status=200)

    # ------------------------------------------------------------ serving

    async def _respond(self, peer: Peer, body: bytes) -> bytes:
        """A VEN's IQ over XMPP (:class:`~vtn.xmpp.Responder`): the answer for its ``result``,
        an oadrResponse with code 400 when the payload does not decode."""
        reply = await self._hear(XMPP_SERVICE, body, None, peer.fingerprint,
                                 address=peer.address)
        if reply is None:
            return self.codec.encode(Response(response=EiResponse(
                code=400, description="the request does not decode")))
        return reply

    async def _serve(self, request: web.Request) -> web.Response:
        service = request.match_info["service"]
        body = await request.read()
        media = request.headers.get("Content-Type", "").split(";")[0].strip() or None
        reply = await self._hear(service, body, media, peer_fingerprint(request.transport))
        if reply is None:
            return web.Response(status=400, text="the request does not decode")
        return web.Response(body=reply, content_type="application/xml")

    async def _hear(self, service: str, body: bytes, media: str | None,
                    fingerprint: str | None, *, address: str | None = None,
                    answering: Message | None = None, status: int | None = None
                    ) -> bytes | None:
        """Decode and record what the VEN sent (a request, over XMPP from the full JID
        ``address``, or its reply to a push, which ``answering`` names, whose HTTP ``status``
        is kept and which gets no answer); the encoded answer owed, if any."""
        decoded = self._decode(body)
        message = decoded.message
        reply_message, reply = None, None
        if message is not None and answering is None:
            reply_message, reply = self._reply(message, fingerprint, address)
        if status is None:
            status = 400 if message is None else 200
        exchange = Exchange(service=service, request=body, sent=message, status=status,
                            content_type=media, reply=reply or b"", error=decoded.error,
                            received=reply_message or answering)
        heard = Heard(exchange=exchange, tree=decoded.tree, schema_error=decoded.schema_error,
                      signature_error=decoded.signature_error, fingerprint=fingerprint,
                      xmpp=self._xmpp is not None)
        violations = tuple(Violation(rule_id=rule.rule_id, detail=detail)
                           for rule in VEN_RULES for detail in rule.check(heard, self.said))
        exchange = replace(exchange, violations=violations)
        if reply_message is not None:
            self.said.remember(reply_message)
        self.exchanges.append(exchange)
        self.history.append(exchange)
        if message is not None:
            async with self._arrival:
                self._heard.append(message)
                self._arrival.notify_all()
        return reply

    def _decode(self, body: bytes) -> _Decoded:
        try:
            tree = self.codec.parse(body)
        except SchemaViolation as exc:
            return _Decoded(tree=_plain_tree(body), schema_error=exc.reason,
                            error=f"request does not decode: {exc}")
        except RemoteProtocolError as exc:
            return _Decoded(error=f"request does not decode: {exc}")
        try:
            return _Decoded(tree=tree,
                            message=self.codec.typed(tree, self.codec.check_signature(tree))[0])
        except ComplianceError as exc:  # unsigned, a signature that fails, a replayed nonce
            return _Decoded(tree=tree, signature_error=exc.reason,
                            error=f"request refused: {exc}")
        except RemoteProtocolError as exc:
            return _Decoded(tree=tree, error=f"request does not decode: {exc}")

    def _reply(self, message: Message, fingerprint: str | None, address: str | None
               ) -> tuple[Message, bytes]:
        """The answer to ``message`` with its body: a poll takes what was delivered, as it was
        encoded then; everything else gets :meth:`_answer`, encoded now."""
        if isinstance(message, Poll) and self._outgoing:
            return self._outgoing.popleft()
        answer = self._answer(message, fingerprint, address)
        return answer, self.codec.encode(answer)

    def _answer(self, message: Message, fingerprint: str | None, address: str | None
                ) -> Message:
        """What a 2.0b VTN answers to each VEN request (profile 8.1-8.4)."""
        ven_id = self.ven_id
        match message:
            case QueryRegistration():
                return self._registration(message.request_id)
            case CreatePartyRegistration():
                self.ven_id = fingerprint
                self.registration_id = self.registration_id or new_id()
                if self._xmpp is not None:
                    self.push_to = address
                else:
                    self.push_to = None if message.http_pull_model is not False \
                        else message.transport_address
                return self._registration(message.request_id)
            case CancelPartyRegistration():
                self.registration_id = None
                return CanceledPartyRegistration(
                    response=EiResponse(request_id=message.request_id),
                    registration_id=message.registration_id, ven_id=ven_id)
            case Poll():  # nothing queued (:meth:`_reply` hands out what is)
                return Response(response=EiResponse(), ven_id=ven_id)
            case RequestEvent():
                return DistributeEvent(request_id=message.request_id,
                                       vtn_id=self.settings.vtn_id,
                                       events=tuple(self.events.values()),
                                       response=EiResponse(request_id=message.request_id))
            case RegisterReport():
                return RegisteredReport(response=EiResponse(request_id=message.request_id),
                                        ven_id=ven_id)
            case UpdateReport():
                return UpdatedReport(response=EiResponse(request_id=message.request_id),
                                     ven_id=ven_id)
            case CreateOpt():  # an opt for an event never sent is refused (profile 8.4)
                unknown = message.qualified_event_id is not None \
                    and message.qualified_event_id.event_id not in self.events
                return CreatedOpt(response=EiResponse(
                    request_id=message.request_id, code=452 if unknown else 200,
                    description="no such event" if unknown else "OK"), opt_id=message.opt_id)
            case CancelOpt():
                return CanceledOpt(response=EiResponse(request_id=message.request_id),
                                   opt_id=message.opt_id)
            case _:  # an acknowledgement: oadrCreatedEvent, oadrCreatedReport, oadrResponse...
                return Response(response=EiResponse(request_id=echoed_request_id(message)),
                                ven_id=ven_id)

    def _registration(self, request_id: str) -> CreatedPartyRegistration:
        return CreatedPartyRegistration(
            response=EiResponse(request_id=request_id),
            registration_id=self.registration_id, ven_id=self.ven_id if self.registration_id
            else None, vtn_id=self.settings.vtn_id,
            profiles=(Profile(profile_name=ProfileName.OADR_20B, transports=(
                TransportName.SIMPLE_HTTP if self._xmpp is None else TransportName.XMPP,)),),
            requested_oadr_poll_freq=timedelta(seconds=self.settings.poll_freq_s))


def _plain_tree(body: bytes) -> etree._Element | None:
    """``body``'s XML tree without the schema (for the rules), None when it is no XML."""
    try:
        return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True,
                                                      load_dtd=False))
    except etree.XMLSyntaxError:
        return None
