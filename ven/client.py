"""The VEN client: one VEN's conversation with one VTN over OpenADR 2.0b Simple HTTP.

Owns registration state (venID, registrationID, the VTN's poll frequency), the pull loop, and
opt requests; the handling of every payload a VTN sends (pulled by oadrPoll or pushed to
:class:`ven.PushReceiver`) and the remembered event versions live in ``ven._inbound``, reports in
:class:`ven.reports.ReportDesk`, the reports the VTN offers us in :class:`ven.offered.VtnReports`.

Invariants:
- Pull (profile 8.6): the VTN may queue several payloads; any reply other than a bare oadrResponse
  may have more behind it, so the loop polls again at once; a bare 200 oadrResponse means empty and
  the loop waits its interval (never shorter than the caller chose; by default the VTN's
  oadrRequestedOadrPollFreq).
- Transport failures back off exponentially with jitter, and for at least the Retry-After of an
  HTTP 429/503 (bounded by the back-off cap); a refusal from the VTN is logged and handed to
  ``on_error``; neither ends the loop. After a failed exchange the loop asks for the
  full event list (oadrRequestEvent, profile 8.2) before polling again: a VTN's poll reply lost
  with the connection (a VTN killed mid-reply) is recovered that way, since the VTN hands each
  queued item out once.
- In that resync an unconfirmed oadrCreatedEvent answer is sent again (``ven._inbound``), so an
  ack lost on the wire is re-sent (the VTN stores acks idempotently). The loop ends when the VTN
  cancels the registration or :meth:`VenClient.close` is called.
- Every task this client starts is owned and awaited by :meth:`VenClient.close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import (
    Availability,
    CanceledOpt,
    CanceledPartyRegistration,
    CancelOpt,
    CancelPartyRegistration,
    Codec,
    CreatedOpt,
    CreatedPartyRegistration,
    CreateOpt,
    CreatePartyRegistration,
    DistributeEvent,
    Event,
    LocalProtocolError,
    Message,
    OptReason,
    OptType,
    Poll,
    QualifiedEventId,
    QueryRegistration,
    RegisteredReport,
    RegisterReport,
    RemoteProtocolError,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportRequest,
    RequestEvent,
    Response,
    Service,
    Target,
    new_id,
)
from schemas.logtext import escaped

from ._http import VtnLink, check_reply
from ._inbound import EventHandler, Inbound, Outcome
from .errors import VenError, VtnRefused, VtnUnavailable
from .offered import VtnReports
from .outbox import Outbox
from .reports import ReportDesk, metadata_report
from .settings import VenSettings

__all__ = ["EventHandler", "Outcome", "Registration", "VenClient"]

log = logging.getLogger(__name__)

_DEFAULT_POLL = timedelta(seconds=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """What oadrCreatedPartyRegistration gave us."""

    ven_id: str
    registration_id: str
    vtn_id: str
    poll_freq: timedelta | None = None


class VenClient:
    """A VEN towards one VTN, built from its :class:`~ven.settings.VenSettings`. Use
    ``async with``; then :meth:`register` and :meth:`run`.

    One process may hold several clients (one per VTN) sharing one :class:`Outbox`; each client's
    items are keyed by ``settings.outbox_key`` (default: the VTN's URL). Without an outbox, an
    in-memory one is used and reports do not survive a restart.
    """

    def __init__(self, settings: VenSettings, *, outbox: Outbox | None = None) -> None:
        self.ven_name = settings.ven_name
        connection, hooks = settings.connection, settings.hooks
        link = connection.link
        self.codec = link.codec if link is not None else connection.codec or Codec()
        self._link = link or VtnLink(connection.vtn_url, connection.ssl_context, self.codec,
                                     request_timeout=connection.request_timeout)
        self._outbox = outbox
        self._owns_outbox = outbox is None
        self._outbox_key = settings.outbox_key or connection.vtn_url
        self._connection, self._hooks, self._time = connection, hooks, settings.time
        self.registration: Registration | None = None
        self.deregistered = False
        self._resync = False
        # the reports the VTN offers us: ``vtn.request_report(...)``, data to ``on_report_data``
        self.vtn = VtnReports(exchange=self._link.exchange, ven_id=self._require_ven_id,
                              on_data=hooks.on_report_data, choose=hooks.request_vtn_reports)
        self._inbound = Inbound(on_event=hooks.on_event, desk=lambda: self.desk, vtn=self.vtn,
                                registration=self._require_registration,
                                register=self.register, cancelled=self._deregistered_by_vtn)
        self._desk: ReportDesk | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[object]] = set()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> VenClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the outbox (in memory if none was given) and start draining it."""
        if self._desk is not None:
            return
        if self._outbox is None:
            self._outbox = await Outbox.open(":memory:")
        self._desk = ReportDesk(
            link=self._link, outbox=self._outbox, outbox_key=self._outbox_key,
            backoff=self._connection.backoff, clock=self._time.clock, new_id=new_id,
            ven_id=self._require_ven_id, provider=self._hooks.report_provider,
            sleep=self._time.report_sleep, on_error=self._surface,
            retry_sleep=self._time.retry_sleep or asyncio.sleep,
        )
        self._desk.start()

    async def close(self) -> None:
        self._stop.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._desk is not None:
            await self._desk.close()
        await self._link.close()
        if self._owns_outbox and self._outbox is not None:
            await self._outbox.close()
            self._outbox = None

    def spawn(self, work: Awaitable[object]) -> asyncio.Task[object]:
        """Run ``work`` as a task this client owns (cancelled and awaited by :meth:`close`). A
        coroutine becomes the task itself, so one cancelled before its first step is closed, not
        left un-awaited."""

        async def wrapped() -> object:
            return await work

        task = asyncio.get_running_loop().create_task(
            work if asyncio.iscoroutine(work) else wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start_polling(self) -> asyncio.Task[object]:
        """:meth:`run` as an owned background task."""
        return self.spawn(self.run())

    @property
    def desk(self) -> ReportDesk:
        if self._desk is None:
            raise LocalProtocolError("start the VenClient first (async with VenClient(...))")
        return self._desk

    @property
    def vtn_reports(self) -> tuple[Report, ...]:
        """The METADATA reports the VTN offers us (its last oadrRegisterReport)."""
        return self.vtn.metadata

    @property
    def outbox_key(self) -> str:
        return self._outbox_key

    # ------------------------------------------------------------ requests to the VTN

    def _require_registration(self) -> Registration:
        if self.registration is None:
            raise LocalProtocolError("not registered with the VTN: call register() first")
        return self.registration

    def _require_ven_id(self) -> str:
        return self._require_registration().ven_id

    async def register(self) -> Registration:
        """oadrQueryRegistration, then oadrCreatePartyRegistration (profile 8.1).

        Re-registration keeps the venID and registrationID we hold.
        """
        query = await self._link.exchange(
            Service.REGISTER_PARTY, QueryRegistration(request_id=new_id()),
            CreatedPartyRegistration,
        )
        if not any(p.profile_name == "2.0b" for p in query.profiles):
            raise VtnRefused(None, "the VTN does not offer the 2.0b profile")
        previous = self.registration
        request = CreatePartyRegistration(
            request_id=new_id(),
            registration_id=previous.registration_id if previous else None,
            ven_id=previous.ven_id if previous else None,
            transport_name=self._link.transport_name,
            transport_address=self._link.address or self._connection.push_url,
            xml_signature=self.codec.signer is not None,
            ven_name=self.ven_name,
            http_pull_model=(self._connection.push_url is None if self._link.polls else None),
        )
        created = await self._link.exchange(
            Service.REGISTER_PARTY, request, CreatedPartyRegistration)
        if not created.ven_id or not created.registration_id:
            raise VtnRefused(created.response.code, "the VTN did not accept the registration")
        self.registration = Registration(
            ven_id=created.ven_id, registration_id=created.registration_id,
            vtn_id=created.vtn_id,
            poll_freq=created.requested_oadr_poll_freq or query.requested_oadr_poll_freq,
        )
        self.deregistered = False
        log.info("registered with VTN %s as venID %s", escaped(created.vtn_id),
                 escaped(created.ven_id))
        return self.registration

    async def cancel_registration(self) -> None:
        """oadrCancelPartyRegistration from our side; forgets the registration."""
        registration = self._require_registration()
        message = CancelPartyRegistration(
            request_id=new_id(), registration_id=registration.registration_id,
            ven_id=registration.ven_id,
        )
        await self._link.exchange(Service.REGISTER_PARTY, message, CanceledPartyRegistration)
        self.registration = None
        self.deregistered = True

    async def request_events(self) -> None:
        """oadrRequestEvent: fetch the full event set and handle it like a pulled one."""
        reply = await self._link.send(
            Service.EVENT, RequestEvent(request_id=new_id(), ven_id=self._require_ven_id())
        )
        check_reply(reply, "oadrRequestEvent")
        if isinstance(reply, DistributeEvent):
            await self._handle_pulled(reply)

    async def create_opt(
        self,
        *,
        opt_type: OptType,
        opt_reason: OptReason,
        vavailability: Sequence[Availability] | None = None,
        qualified_event_id: QualifiedEventId | None = None,
        target: Target | None = None,
        market_context: str | None = None,
        opt_id: str | None = None,
    ) -> CreatedOpt:
        """oadrCreateOpt (profile 8.4): an availability schedule or a per-event opt."""
        message = CreateOpt(
            opt_id=opt_id or new_id(), opt_type=opt_type, opt_reason=opt_reason,
            market_context=market_context, ven_id=self._require_ven_id(),
            vavailability=tuple(vavailability) if vavailability is not None else None,
            created_date_time=self._time.clock(), request_id=new_id(),
            qualified_event_id=qualified_event_id, target=target or Target(),
        )
        return await self._link.exchange(Service.OPT, message, CreatedOpt)

    async def cancel_opt(self, opt_id: str) -> CanceledOpt:
        message = CancelOpt(request_id=new_id(), opt_id=opt_id, ven_id=self._require_ven_id())
        return await self._link.exchange(Service.OPT, message, CanceledOpt)

    # ------------------------------------------------------------ reports

    async def register_reports(
        self,
        descriptions: Sequence[ReportDescription],
        *,
        report_name: ReportName | str = ReportName.METADATA_TELEMETRY_USAGE,
        report_specifier_id: str | None = None,
    ) -> tuple[ReportRequest, ...]:
        """Offer one METADATA report of ``descriptions``; the report requests we accepted."""
        report = metadata_report(
            descriptions, created=self._time.clock(), report_name=report_name,
            report_specifier_id=report_specifier_id or new_id(),
        )
        return await self.register_metadata((report,))

    async def register_metadata(self, reports: Sequence[Report]) -> tuple[ReportRequest, ...]:
        """oadrRegisterReport; requests carried by the oadrRegisteredReport are accepted and
        confirmed with oadrCreatedReport (profile 8.3.1)."""
        desk = self.desk
        desk.offer(reports)
        message = RegisterReport(
            request_id=new_id(), reports=tuple(reports), ven_id=self._require_ven_id()
        )
        registered = await self._link.exchange(Service.REPORT, message, RegisteredReport)
        taken = desk.accept(registered.report_requests)
        if registered.report_requests:
            await self._link.acknowledged(Service.REPORT, desk.created_report(message.request_id))
        return tuple(desk.accepted[i].request for i in taken)

    async def send_report(
        self,
        report_request_id: str,
        intervals: Sequence[ReportInterval],
        *,
        dtstart: datetime | None = None,
        duration: timedelta | None = None,
        report_specifier_id: str | None = None,
    ) -> int:
        """Queue an oadrUpdateReport in the durable outbox; it is sent in order, when it can be."""
        return await self.desk.send(
            report_request_id, intervals, dtstart=dtstart, duration=duration,
            report_specifier_id=report_specifier_id,
        )

    async def flush_reports(self) -> int:
        """Send queued reports now; raises :class:`VtnUnavailable` when the VTN is away."""
        return await self.desk.flush()

    # ------------------------------------------------------------ pull loop

    async def poll_once(self) -> bool:
        """One oadrPoll; True when the VTN sent something (so there may be more)."""
        reply = await self._link.send(Service.POLL, Poll(ven_id=self._require_ven_id()))
        if reply is None:
            return False
        if isinstance(reply, Response):
            check_reply(reply, "oadrPoll")
            return False
        await self._handle_pulled(reply)
        return True

    async def _handle_pulled(self, message: Message) -> None:
        outcome = await self.receive(message)
        if outcome.reply is not None:
            await self._link.acknowledged(outcome.service, outcome.reply)
        if outcome.after is not None:
            await outcome.after()

    def _interval(self) -> float:
        interval = self._connection.poll_interval
        if interval is not None:
            return interval
        freq = self.registration.poll_freq if self.registration else None
        return (freq or _DEFAULT_POLL).total_seconds()

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Register if needed, then poll until closed or deregistered by the VTN."""
        attempt = 0
        while not self._stop.is_set() and not self.deregistered:
            step = "registration"  # what failed, for the log line
            try:
                if self.registration is None:
                    await self.register()
                step = "event resync"
                if self._resync:
                    self._inbound.resending = True
                    try:
                        await self.request_events()
                    finally:
                        self._inbound.resending = False
                    self._resync = False
                step = "poll"
                more = await self.poll_once() if self._link.polls else False
            except (VtnUnavailable, VtnRefused, RemoteProtocolError) as error:
                if isinstance(error, VtnRefused) and error.code == 463:
                    self.registration = None  # the VTN forgot us: register again
                self._resync = True
                delay = self._connection.backoff.delay_after(
                    attempt, getattr(error, "retry_after", None))
                attempt += 1
                log.warning("%s failed (%s); retry %d in %.3f s", step, escaped(error), attempt,
                            delay)
                self._surface(error)
                await (self._time.retry_sleep or self._pause)(delay)
                continue
            attempt = 0
            if not more:
                await self._pause(self._interval())

    def _surface(self, error: Exception) -> None:
        on_error = self._hooks.on_error
        if on_error is not None:
            wrapped = error if isinstance(error, VenError) else VtnRefused(
                getattr(error, "response_code", None), str(error))
            on_error(wrapped)

    # ------------------------------------------------------------ inbound payloads

    @property
    def events(self) -> dict[str, Event]:
        """The current event set, by eventID (the latest version of each)."""
        return self._inbound.events

    @events.setter
    def events(self, events: dict[str, Event]) -> None:
        self._inbound.events = events

    async def receive(self, message: Message) -> Outcome:
        """Handle one payload the VTN sent; the reply owed and what to do after sending it."""
        return await self._inbound.handle(message)

    def _deregistered_by_vtn(self) -> None:
        """The VTN cancelled our registration: say so (WARNING), forget it and end the loop."""
        assert self.registration is not None  # Inbound calls it for the registration held
        log.warning("the VTN cancelled this VEN's registration (venID %s); polling ends",
                    escaped(self.registration.ven_id))
        self.registration = None
        self.deregistered = True
        self._stop.set()
