"""What a :class:`ven.VenClient` makes of each payload its VTN sends, pulled or pushed.

Owns the inbound side of the conversation: the match over VTN-to-VEN payloads
(oadrDistributeEvent, oadrCreateReport, oadrCancelReport, oadrRegisterReport,
oadrRequestReregistration, oadrCancelPartyRegistration; for the reports the VTN offers,
oadrRegisterReport, oadrCreatedReport and oadrUpdateReport are answered by
:class:`ven.offered.VtnReports`), the event versions the VEN remembers, and the
oadrCreatedEvent answers the VTN has not yet confirmed. Sending the reply is the caller's job (the
pull loop POSTs it; :class:`ven.PushReceiver` returns it as the HTTP response body).

It touches its client only through what the client hands it when built (:class:`Inbound`'s
arguments): the report desk, the reports the VTN offers, the registration, registering again and
ending the registration; it never imports ``ven.client``.

Invariants:
- Events (profile 8.2): the handler sees each (eventID, modificationNumber) once; copies with a
  modificationNumber not above the one remembered are ignored; oadrCreatedEvent lists exactly the
  new versions whose responseRequired is ``always``. oadrDistributeEvent carries the complete set,
  so events it leaves out are forgotten.
- An answer stays "unconfirmed" until the reply carrying it was taken (``Outcome.after``). While
  :attr:`Inbound.resending` (the client's resync after a failed exchange), a copy of the same
  event version carries the same answer again without asking the handler twice; otherwise repeated
  copies stay unanswered.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from schemas import (
    CanceledPartyRegistration,
    CanceledReport,
    CancelPartyRegistration,
    CancelReport,
    CreatedEvent,
    CreatedReport,
    CreateReport,
    DistributeEvent,
    EiResponse,
    Event,
    EventResponse,
    Message,
    OptType,
    RegisterReport,
    RequestReregistration,
    Response,
    ResponseRequired,
    Service,
    UpdateReport,
)
from schemas.logtext import escaped

from .offered import VtnReports
from .reports import ReportDesk

__all__ = ["EventHandler", "Inbound", "Outcome", "Registered"]

# the logger these messages always had, before inbound handling left ven.client
log = logging.getLogger("ven.client")

EventHandler = Callable[[Event], OptType | str | Awaitable[OptType | str]]
"""Called once per new event version; returns optIn or optOut (plain or awaitable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one VTN payload came to: the reply, where it goes, and what follows it."""

    reply: Message | None
    service: Service
    after: Callable[[], Awaitable[object]] | None = None


class Registered(Protocol):
    """The registration inbound handling answers for."""

    @property
    def ven_id(self) -> str: ...

    @property
    def registration_id(self) -> str: ...


class Inbound:
    """The handling of VTN payloads for one client, and the event state it keeps.

    ``desk`` (the client's report desk, once started), ``vtn`` (the reports the VTN offers),
    ``registration`` (the current one, or a LocalProtocolError), ``register`` (register again, on
    oadrRequestReregistration) and ``cancelled`` (the VTN ended the registration) are all it
    needs of its client.
    """

    def __init__(self, *, on_event: EventHandler | None, desk: Callable[[], ReportDesk],
                 vtn: VtnReports, registration: Callable[[], Registered],
                 register: Callable[[], Awaitable[object]],
                 cancelled: Callable[[], None]) -> None:
        self._on_event = on_event
        self._desk = desk
        self._vtn = vtn
        self._registration = registration
        self._register = register
        self._cancelled = cancelled
        self.events: dict[str, Event] = {}
        # answers sent but not yet confirmed by the VTN, by eventID
        self._unconfirmed: dict[str, EventResponse] = {}
        self.resending = False

    async def handle(self, message: Message) -> Outcome:
        """Handle one payload the VTN sent; the reply owed and what to do after sending it."""
        match message:
            case DistributeEvent():
                return await self._on_distribute(message)
            case CreateReport():
                desk = self._desk()
                desk.accept(message.report_requests)
                return Outcome(reply=desk.created_report(message.request_id),
                               service=Service.REPORT)
            case CancelReport():
                pending = self._desk().cancel(message.report_request_ids)
                canceled = CanceledReport(response=EiResponse(request_id=message.request_id),
                                          pending_reports=pending,
                                          ven_id=self._registration().ven_id)
                return Outcome(reply=canceled, service=Service.REPORT)
            case RegisterReport():
                return Outcome(reply=await self._vtn.on_register_report(message),
                               service=Service.REPORT)
            case CreatedReport():
                return Outcome(reply=self._vtn.on_created_report(message),
                               service=Service.REPORT)
            case UpdateReport():
                return Outcome(reply=await self._vtn.on_update_report(message),
                               service=Service.REPORT)
            case RequestReregistration():
                ack = Response(response=EiResponse(), ven_id=self._registration().ven_id)
                return Outcome(reply=ack, service=Service.REGISTER_PARTY, after=self._register)
            case CancelPartyRegistration():
                return self._on_cancel_registration(message)
            case _:
                log.warning("ignored %s from the VTN: not a VTN-to-VEN payload",
                            type(message).__name__)
                return Outcome(reply=None, service=Service.EVENT)

    def _on_cancel_registration(self, message: CancelPartyRegistration) -> Outcome:
        registration = self._registration()
        code = 200 if message.registration_id == registration.registration_id else 452
        if code == 200:
            self._cancelled()
        reply = CanceledPartyRegistration(
            response=EiResponse(code=code, description="OK" if code == 200 else "unknown "
                                "registrationID", request_id=message.request_id),
            registration_id=message.registration_id, ven_id=registration.ven_id,
        )
        return Outcome(reply=reply, service=Service.REGISTER_PARTY)

    async def _on_distribute(self, message: DistributeEvent) -> Outcome:
        ven_id = self._registration().ven_id
        answers: list[EventResponse] = []
        current: dict[str, Event] = {}
        for event in message.events:
            known = self.events.get(event.event_id)
            if known is not None and event.modification_number <= known.modification_number:
                current[event.event_id] = known  # an old or repeated copy: already handled
                pending = self._unconfirmed.get(event.event_id)
                if self.resending and pending is not None and \
                        pending.modification_number == event.modification_number:
                    answers.append(dataclasses.replace(pending, request_id=message.request_id))
                continue
            current[event.event_id] = event
            opt = await self._decide(event)
            if event.response_required is ResponseRequired.ALWAYS:
                answers.append(EventResponse(
                    request_id=message.request_id, event_id=event.event_id,
                    modification_number=event.modification_number, opt_type=opt,
                ))
        # oadrDistributeEvent carries the complete set: events left out are over.
        self.events = current
        self._unconfirmed = {
            k: v for k, v in self._unconfirmed.items() if k in current}
        if not answers:
            return Outcome(reply=None, service=Service.EVENT)
        for answer in answers:
            self._unconfirmed[answer.event_id] = answer
        reply = CreatedEvent(response=EiResponse(request_id=message.request_id), ven_id=ven_id,
                             event_responses=tuple(answers))

        async def confirmed() -> None:
            for answer in answers:
                if self._unconfirmed.get(answer.event_id) is answer:
                    del self._unconfirmed[answer.event_id]

        return Outcome(reply=reply, service=Service.EVENT, after=confirmed)

    async def _decide(self, event: Event) -> OptType:
        if self._on_event is None:
            log.warning("no event handler: opting out of %s", escaped(event.event_id))
            return OptType.OPT_OUT
        try:
            answer = self._on_event(event)
            if inspect.isawaitable(answer):
                answer = await answer
            return OptType(answer)
        except Exception:
            log.exception("event handler failed on %s: opting out", escaped(event.event_id))
            return OptType.OPT_OUT
