"""The harness's VEN: an OpenADR 2.0b client over Simple HTTP or XMPP that records everything.

In push mode (``HarnessSettings.push``) it also serves its own HTTPS receiver (its own
certificate, on ``push_host``), registers that as its transport address, answers every push with
oadrResponse 200 and hands the pushed payload to the cases as a poll would have brought it.
Over XMPP (``HarnessSettings.xmpp``, always push) its requests and the VTN's payloads travel as
IQs through the XMPP server (:mod:`~cbp.conformance.harness_xmpp`), answered and handed on alike;
the rules about Simple HTTP's framing are skipped there, the XMPP binding's own run instead.

Unlike crowdflex's own VEN (:mod:`ven`), this client hides nothing: every request is posted as the
bytes the case chose (a typed payload, or a deliberately broken body), every reply is kept as an
:class:`~cbp.conformance.Exchange`, inspected by the passive :mod:`~cbp.conformance.rules`, and
returned to the case. Cases read what they expect with :meth:`HarnessVen.wait_for`, which polls
and gives routine answers (acknowledgements a well-behaved VEN sends) to anything else that
arrives, so one case's leftovers never block the next.

Invariants: every request has a timeout (``request_timeout_s``), and of every reply at most
:data:`~cbp.conformance._model.MAX_BODY_BYTES` is read (a longer one is a failed exchange);
waiting for an operator's act to reach the VEN is bounded by ``wait_timeout_s``; the
registration state (``registration_id``) is cleared whenever the node ends the registration.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Final, TypeVar

import aiohttp
from aiohttp import web
from lxml import etree

from schemas import (
    SERVICE_PREFIX,
    CanceledPartyRegistration,
    CanceledReport,
    CancelPartyRegistration,
    CancelReport,
    Codec,
    CreatedEvent,
    CreatedPartyRegistration,
    CreatedReport,
    CreatePartyRegistration,
    CreateReport,
    DistributeEvent,
    EiResponse,
    EventResponse,
    EventStatus,
    Message,
    OptType,
    Poll,
    RegisteredReport,
    RegisterReport,
    RemoteProtocolError,
    RequestReregistration,
    Response,
    ResponseRequired,
    SchemaViolation,
    TransportName,
    new_id,
)
from schemas.parts import echoed_request_id
from schemas.tls import server_context
from ven import VenError, read_capped

from ._checks import expect
from ._model import MAX_BODY_BYTES, CaseFailed, Exchange, Violation
from .harness_settings import HarnessSettings
from .harness_xmpp import XmppChannel
from .operators import Operator, Step, StepKind, carry_out
from .rules import RULES, Memory, Seen

__all__ = ["HarnessSettings", "HarnessVen"]

M = TypeVar("M", bound=Message)
_MAX_SETTLE_POLLS: Final = 100
_RETRIES_429: Final = 4


class HarnessVen:
    """One VEN identity for a whole run; cases share it in order (use as ``async with``)."""

    def __init__(self, settings: HarnessSettings, operator: Operator) -> None:
        self.settings = settings
        self.operator = operator
        self.codec = settings.codec()
        self.memory = Memory(settings.clock)
        self.registration_id: str | None = None
        self.exchanges: list[Exchange] = []  # of the current case
        self.history: list[Exchange] = []  # of the whole run
        self.steps: list[Step] = []
        self._answered: set[tuple[str, int]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._pushed: asyncio.Queue[Message] = asyncio.Queue()
        self._receiver: web.AppRunner | None = None
        self._xmpp: XmppChannel | None = None
        self.transport_address: str | None = None  # where the VTN pushes, in push mode
        self.rules = tuple(r for r in RULES if r.applies(settings.transport))

    async def __aenter__(self) -> HarnessVen:
        if self.settings.xmpp is not None:
            self._xmpp = self.settings.xmpp_channel()
            self.transport_address = self._xmpp.address
            await self._xmpp.open(self._take_xmpp_payload)
            return self
        self._http = self.session(self.settings.client_context())
        if self.settings.push:
            await self._serve_pushes()
        return self

    async def _serve_pushes(self) -> None:
        app = web.Application()
        app.router.add_post(f"{SERVICE_PREFIX}/{{service}}", self._take_push)
        self._receiver = web.AppRunner(app, access_log=None)
        await self._receiver.setup()
        settings = self.settings
        context = server_context(cert=settings.cert, key=settings.key, ca=settings.ca,
                                 profile=settings.tls_profile)
        await web.TCPSite(self._receiver, settings.push_host, 0, ssl_context=context).start()
        port = self._receiver.addresses[0][1]
        self.transport_address = f"https://{settings.push_host}:{port}{SERVICE_PREFIX}"

    async def _take_push(self, request: web.Request) -> web.Response:
        """A payload the VTN pushed over HTTP: :meth:`_taken`, 400 when it does not decode."""
        media = request.headers.get("Content-Type", "").split(";")[0].strip() or None
        exchange, answer = self._taken(Exchange(
            service=request.match_info["service"], request=b"", sent=None, status=200,
            content_type=media, reply=await request.read()))
        if answer is None:
            return web.Response(status=400, text=exchange.error or "does not decode")
        return web.Response(body=answer, content_type="application/xml")

    async def _take_xmpp_payload(self, body: bytes) -> bytes:
        """A payload the VTN sent over XMPP: :meth:`_taken`; one that does not decode is
        answered oadrResponse 400 (the IQ result must carry a payload)."""
        exchange, answer = self._taken(Exchange(service="XMPP", request=b"", sent=None,
                                                status=200, reply=body,
                                                transport=TransportName.XMPP))
        if answer is not None:
            return answer
        return self.codec.encode(Response(response=EiResponse(
            code=400, description=(exchange.error or "does not decode")[:200]),
            ven_id=self.memory.ven_id))

    def _taken(self, exchange: Exchange) -> tuple[Exchange, bytes | None]:
        """A payload the VTN pushed: judged as a reply would be and queued for the cases; the
        encoded oadrResponse 200 answering it, None when it does not decode."""
        exchange = self._inspect(exchange)
        self._record(exchange)
        if exchange.received is None:
            return exchange, None
        self._pushed.put_nowait(exchange.received)
        answer = Response(response=EiResponse(request_id=echoed_request_id(exchange.received)),
                          ven_id=self.memory.ven_id)
        return exchange, self.codec.encode(answer)

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        if self._http is not None:
            await self._http.close()
        if self._receiver is not None:
            await self._receiver.cleanup()
        if self._xmpp is not None:
            await self._xmpp.close()

    def session(self, context: ssl.SSLContext) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s)
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), timeout=timeout)

    @property
    def ven_id(self) -> str:
        if self.memory.ven_id is None:
            raise CaseFailed("the VTN never gave this VEN a venID")
        return self.memory.ven_id

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.settings.clock

    def begin_case(self) -> None:
        self.exchanges = []
        self.steps = []

    # ------------------------------------------------------------ one exchange

    async def post(self, service: str, body: bytes, sent: Message | None, *,
                   content_type: str = "application/xml",
                   http: aiohttp.ClientSession | None = None) -> Exchange:
        """POST ``body`` to ``service``; record the exchange and check the rules on the reply.

        An HTTP 429 (the VTN's rate limit, answered before it reads the body) is waited out as a
        well-behaved VEN does: the same bytes again after its Retry-After (at most
        ``_RETRIES_429`` times, each wait at most ``wait_timeout_s``); every try is recorded.
        Over XMPP the bytes go as an IQ to the VTN's JID (``http`` is not used)."""
        if self._xmpp is not None:
            exchange = self._inspect(await self._xmpp.post(service, body, sent))
            self._record(exchange)
            return exchange
        http = http or self._http
        assert http is not None, "use HarnessVen as an async context manager"
        url = f"{self.settings.url.rstrip('/')}/{service}"
        for _ in range(_RETRIES_429):
            try:
                async with http.post(url, data=body,
                                     headers={"Content-Type": content_type}) as got:
                    reply = await read_capped(got.content, MAX_BODY_BYTES)
                    status = got.status
                    media = got.headers.get("Content-Type", "").split(";")[0].strip() or None
                    retry_after = got.headers.get("Retry-After", "")
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
                exchange = Exchange(service=service, request=body, sent=sent, status=None,
                                    error=f"{type(exc).__name__}: {exc}")
                self._record(exchange)
                return exchange
            if len(reply) > MAX_BODY_BYTES:  # unread beyond: the connection is dropped
                exchange = Exchange(service=service, request=body, sent=sent, status=status,
                                    content_type=media,
                                    error=f"reply over {MAX_BODY_BYTES} bytes, not read further")
                self._record(exchange)
                return exchange
            exchange = self._inspect(Exchange(service=service, request=body, sent=sent,
                                              status=status, content_type=media, reply=reply))
            self._record(exchange)
            if status != 429:
                break
            wait = float(retry_after) if retry_after.isdigit() else 1.0
            await asyncio.sleep(min(wait, self.settings.wait_timeout_s))
        return exchange

    async def post_anonymously(self, service: str, body: bytes, sent: Message | None
                               ) -> Exchange:
        """:meth:`post` over TLS that presents no client certificate: by a session of its
        own (over XMPP one that claims the harness's JID), closed afterwards."""
        if self.settings.xmpp is None:
            async with self.session(self.settings.anonymous_context()) as anonymous:
                return await self.post(service, body, sent, http=anonymous)
        channel = self.settings.xmpp_channel(anonymous=True)
        try:
            exchange = self._inspect(await channel.post(service, body, sent))
        finally:
            await channel.close()
        self._record(exchange)
        return exchange

    async def discover(self) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
        """Over XMPP, what the VTN announces by service discovery (features; (JID, node)
        items under the services node); :class:`CaseFailed` when it does not answer."""
        if self._xmpp is None:
            raise CaseFailed("service discovery is XMPP's (harness bug)")
        try:
            return await self._xmpp.link.discover()
        except VenError as exc:
            raise CaseFailed(f"service discovery failed: {exc}") from None

    def _record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        self.history.append(exchange)

    def _inspect(self, exchange: Exchange) -> Exchange:
        tree: etree._Element | None = None
        schema_error: str | None = None
        received: Message | None = None
        error = exchange.error
        if exchange.status == 200 and exchange.reply:
            try:
                tree = self.codec.parse(exchange.reply)
                received = self.codec.typed(tree, self.codec.check_signature(tree))[0]
            except SchemaViolation as exc:
                schema_error, error = exc.reason, f"reply does not decode: {exc}"
                tree = etree.fromstring(exchange.reply, etree.XMLParser(
                    resolve_entities=False, no_network=True, load_dtd=False))
            except RemoteProtocolError as exc:
                error = f"reply does not decode: {exc}"
        elif exchange.status is not None and exchange.status != 200:
            error = f"HTTP {exchange.status}: {exchange.reply[:200].decode(errors='replace')}"
        exchange = replace(exchange, received=received, error=error)
        seen = Seen(exchange=exchange, tree=tree, schema_error=schema_error)
        violations = tuple(Violation(rule_id=rule.rule_id, detail=detail)
                           for rule in self.rules for detail in rule.check(seen, self.memory))
        if received is not None:
            self.memory.learn(received)
        return replace(exchange, violations=violations)

    def unverified_reply(self, reply: bytes) -> str | None:
        """Why a reply's signature does not verify against ``ca``, None when it does (checked by
        a codec of its own, so the nonce the harness already saw is no replay)."""
        codec = Codec(verifier=self.settings.verifier(), clock=self.settings.clock)
        try:
            _, verification = codec.decode_signed(reply)
        except RemoteProtocolError as exc:
            return f"its signature does not verify: {exc}"
        return None if verification is not None else "it is not signed"

    async def send(self, service: str, message: Message) -> Message:
        """Post a typed payload; the decoded reply, or :class:`CaseFailed` saying why none."""
        exchange = await self.post(service, self.codec.encode(message), message)
        if exchange.received is None:
            raise CaseFailed(f"{exchange.sent_name} to {service}: {exchange.error}")
        return exchange.received

    # ------------------------------------------------------------ registration and polling

    async def register(self, *, registration_id: str | None = None) -> CreatedPartyRegistration:
        reply = await self.send("EiRegisterParty", CreatePartyRegistration(
            request_id=new_id(), registration_id=registration_id,
            ven_id=self.memory.ven_id if registration_id else None,
            ven_name=self.settings.ven_name, transport_name=self.settings.transport,
            http_pull_model=None if self._xmpp else not self.settings.push,
            transport_address=self.transport_address))
        created = expect(reply, CreatedPartyRegistration)
        if created.response.code != 200 or not created.registration_id:
            raise CaseFailed(f"registration refused: {created.response.code} "
                             f"{created.response.description}")
        self.registration_id = created.registration_id
        return created

    async def ensure_registered(self) -> None:
        """Registered and with nothing queued: the state every case starts from."""
        if self.registration_id is None:
            await self.register()
        await self.settle()

    async def poll(self) -> Message:
        """The next payload the VTN has for this VEN: by oadrPoll, or in push mode the next
        push, an empty oadrResponse (not sent by the VTN) when none came within
        ``poll_interval_s``."""
        if not self.settings.push:
            return await self.send("OadrPoll", Poll(ven_id=self.ven_id))
        try:
            async with asyncio.timeout(self.settings.poll_interval_s):
                return await self._pushed.get()
        except TimeoutError:
            return Response(response=EiResponse(), ven_id=self.memory.ven_id)

    async def settle(self) -> None:
        """Poll until the VTN has nothing more, answering what arrives as a VEN routinely does."""
        for _ in range(_MAX_SETTLE_POLLS):
            message = await self.poll()
            if isinstance(message, Response):
                return
            await self.routine(message)
        raise CaseFailed(f"the VTN still had payloads queued after {_MAX_SETTLE_POLLS} polls")

    async def wait_for(self, kind: type[M], what: str,
                       accept: Callable[[M], bool] = lambda _: True) -> M:
        """Poll until a ``kind`` payload that ``accept`` takes arrives (it is not answered);
        routine answers go to everything else. :class:`CaseFailed` after ``wait_timeout_s``."""
        timeout = self.settings.wait_timeout_s
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self.poll()
                    if isinstance(message, kind) and accept(message):
                        return message
                    if isinstance(message, Response):
                        if not self.settings.push:  # a push VEN's poll already waited
                            await asyncio.sleep(self.settings.poll_interval_s)
                    else:
                        await self.routine(message)
        except TimeoutError:
            raise CaseFailed(f"no {what} arrived within {timeout:g} s of polling") from None

    async def operate(self, kind: StepKind, **params: object) -> Step:
        """Have the VTN's operator carry out one step; :class:`CaseFailed` if it cannot."""
        step = Step(kind=kind, ven_id=self.ven_id, params=params)
        self.steps.append(step)
        await carry_out(self.operator, step)
        return step

    # ------------------------------------------------------------ routine answers

    async def routine(self, message: Message) -> None:
        """What a well-behaved pull VEN answers to a VTN-initiated payload."""
        ven_id = self.ven_id
        match message:
            case DistributeEvent():
                await self.acknowledge(message, OptType.OPT_IN)
            case RegisterReport():
                await self.send("EiReport", RegisteredReport(
                    response=EiResponse(request_id=message.request_id), ven_id=ven_id))
            case CreateReport():
                await self.send("EiReport", CreatedReport(
                    response=EiResponse(request_id=message.request_id), ven_id=ven_id,
                    pending_reports=tuple(r.report_request_id for r in message.report_requests)))
            case CancelReport():
                await self.send("EiReport", CanceledReport(
                    response=EiResponse(request_id=message.request_id), ven_id=ven_id))
            case RequestReregistration():
                await self.send("EiRegisterParty", Response(response=EiResponse(), ven_id=ven_id))
                await self.register(registration_id=self.registration_id)
            case CancelPartyRegistration():
                await self.send("EiRegisterParty", CanceledPartyRegistration(
                    response=EiResponse(request_id=message.request_id),
                    registration_id=message.registration_id, ven_id=ven_id))
                self.ended_registration()
            case _:
                pass

    async def acknowledge(self, distribution: DistributeEvent, opt: OptType) -> Message | None:
        """oadrCreatedEvent for every event version that asks for one and was not answered."""
        responses = tuple(
            EventResponse(request_id=distribution.request_id, event_id=event.event_id,
                          modification_number=event.modification_number, opt_type=opt)
            for event in distribution.events
            if event.response_required is ResponseRequired.ALWAYS
            and event.descriptor.event_status is not EventStatus.COMPLETED
            and (event.event_id, event.modification_number) not in self._answered)
        if not responses:
            return None
        self._answered.update((r.event_id, r.modification_number) for r in responses)
        return await self.send("EiEvent", CreatedEvent(
            response=EiResponse(request_id=distribution.request_id), ven_id=self.ven_id,
            event_responses=responses))

    def ended_registration(self) -> None:
        self.registration_id = None
        self.memory.forget_events()

