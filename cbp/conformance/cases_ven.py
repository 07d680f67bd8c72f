"""The cases of ``crowdflex conformance ven``: the harness plays the VTN (``_TH_VTN``).

They run in this order against one VEN: registration and the VEN's report offer, events, reports,
then (after the opt cases of :mod:`.cases_ven_opt`) re-registration and the end of the
registration. Each case hands the VEN what a VTN would send (on its next poll, or pushed) and
checks what the VEN sends back. :data:`NER_CASES` are the pull-mode cases (N1, E1, R1); a push
VEN gets the same checks but those in :data:`PULL_ONLY` (the poll case), numbered as the Alliance
numbers push cases (N0_50xx, E0_60xx, R0_80xx). Over XMPP the VTN sends without being polled,
so an XMPP run is a push run: the push cases, with the registration stating transport XMPP and
the VEN's JID as its address.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Final

from schemas import (
    ActivePeriod,
    CanceledPartyRegistration,
    CanceledReport,
    CancelPartyRegistration,
    CancelReport,
    CreatedEvent,
    CreatedReport,
    CreatePartyRegistration,
    CreateReport,
    Event,
    EventDescriptor,
    EventInterval,
    EventResponse,
    EventSignal,
    EventStatus,
    Poll,
    ProfileName,
    RegisterReport,
    Report,
    ReportRequest,
    ReportSpecifier,
    RequestReregistration,
    ResponseRequired,
    SignalType,
    SpecifierPayload,
    Target,
    TransportName,
    UpdateReport,
    new_id,
)

from ._checks import require
from ._model import MARKET_CONTEXT, Case, CaseFailed
from .harness_vtn import HarnessVtn

__all__ = ["ENDS_REGISTRATION", "NER_CASES", "PULL_ONLY"]

_REGISTRATION: Final = "OpenADR 2.0b profile 8.1 (EiRegisterParty)"
_EVENTS: Final = "OpenADR 2.0b profile 8.2 (EiEvent)"
_REPORTS: Final = "OpenADR 2.0b profile 8.3 (EiReport)"


# ------------------------------------------------------------ registration


async def _registers(vtn: HarnessVtn) -> str:
    created = await vtn.wait_for(CreatePartyRegistration, "oadrCreatePartyRegistration")
    require(created.profile_name is ProfileName.OADR_20B,
            f"oadrProfileName is {created.profile_name.value}, not 2.0b")
    if vtn.settings.xmpp is not None:
        return _registered_over_xmpp(vtn, created)
    require(created.transport_name is TransportName.SIMPLE_HTTP,
            f"oadrTransportName is {created.transport_name.value}, not simpleHttp")
    stated = {None: "absent", True: "true", False: "false"}[created.http_pull_model]
    if vtn.settings.push:
        require(created.http_pull_model is False,
                f"a push VEN states oadrHttpPullModel false (it was {stated})")
        address = created.transport_address or ""
        require(address.startswith("https://"),
                f"a push VEN gives an https oadrTransportAddress, not {address!r}")
        return f"registered as venID {vtn.registered_ven()}, pushed to at {address}"
    require(created.http_pull_model is True,
            f"a pull VEN states oadrHttpPullModel true (it was {stated})")
    return f"registered as venID {vtn.registered_ven()}"


def _registered_over_xmpp(vtn: HarnessVtn, created: CreatePartyRegistration) -> str:
    """Profile 9.3: transport XMPP, and the oadrTransportAddress the VTN sends to is the JID the
    registration came from (the XMPP server stamped it; a resource may follow)."""
    require(created.transport_name is TransportName.XMPP,
            f"oadrTransportName is {created.transport_name.value}, not xmpp")
    sender = vtn.push_to or ""
    given = created.transport_address or ""
    require(given.split("/")[0] == sender.split("/")[0],
            f"oadrTransportAddress is {given!r}, not its JID {sender!r}")
    return f"registered as venID {vtn.registered_ven()} from {sender}"


async def _offers_reports(vtn: HarnessVtn) -> str:
    offer = await vtn.wait_for(RegisterReport, "oadrRegisterReport")
    require(offer.reports, "oadrRegisterReport offers no report")
    for report in offer.reports:
        require(report.report_request_id == "0",
                f"report {report.report_specifier_id!r} has reportRequestID "
                f"{report.report_request_id!r}, not 0")
        require(str(report.report_name or "").startswith("METADATA_"),
                f"report {report.report_specifier_id!r} is named {report.report_name!r}, "
                "not METADATA_...")
        require(report.descriptions, f"report {report.report_specifier_id!r} describes no data")
    names = ", ".join(str(r.report_name) for r in offer.reports)
    return f"offered {len(offer.reports)} report(s): {names}"


async def _polls(vtn: HarnessVtn) -> str:
    ven_id = vtn.registered_ven()
    mark = vtn.mark()
    for _ in range(2):
        await vtn.wait_for(Poll, "oadrPoll", lambda p: p.ven_id == ven_id, after=mark)
    return "two oadrPoll with its venID"


async def _reregisters(vtn: HarnessVtn) -> str:
    mark = vtn.mark()
    vtn.deliver(RequestReregistration(ven_id=vtn.registered_ven()))
    again = await vtn.wait_for(CreatePartyRegistration, "oadrCreatePartyRegistration after "
                               "oadrRequestReregistration", after=mark)
    return ("registered again" + (f" with registrationID {again.registration_id}"
                                  if again.registration_id else ""))


async def _cancels_registration(vtn: HarnessVtn) -> str:
    registration_id = vtn.registration_id
    if registration_id is None:
        raise CaseFailed("the VEN is not registered")
    cancel = CancelPartyRegistration(request_id=new_id(), registration_id=registration_id,
                                     ven_id=vtn.registered_ven())
    mark = vtn.mark()
    vtn.deliver(cancel)
    canceled = await vtn.wait_for(
        CanceledPartyRegistration, "oadrCanceledPartyRegistration",
        lambda m: m.response.request_id == cancel.request_id, after=mark)
    require(canceled.registration_id in (None, registration_id),
            f"it names registrationID {canceled.registration_id!r}, not {registration_id!r}")
    return f"registration {registration_id} cancelled"


# ------------------------------------------------------------ events


def new_event(vtn: HarnessVtn, response_required: ResponseRequired, *, live: bool = True
              ) -> Event:
    """A new event for the VEN; ``live``: kept among the events every distribution carries."""
    now = vtn.clock().replace(microsecond=0)
    event = Event(
        descriptor=EventDescriptor(event_id=f"cf-{new_id()}", modification_number=0,
                                   market_context=MARKET_CONTEXT, created_date_time=now,
                                   event_status=EventStatus.FAR),
        active_period=ActivePeriod(dtstart=now + timedelta(hours=1),
                                   duration=timedelta(minutes=10)),
        signals=(EventSignal(intervals=(EventInterval(values=(4.0,),
                                                      duration=timedelta(minutes=10), uid="0"),),
                             signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT,
                             signal_id="cf-signal-0"),),
        target=Target(ven_ids=(vtn.registered_ven(),)),
        response_required=response_required)
    if live:
        vtn.events[event.event_id] = event
    return event


def _next_version(vtn: HarnessVtn, event: Event, status: EventStatus) -> Event:
    descriptor = replace(event.descriptor, modification_number=event.modification_number + 1,
                         event_status=status, modification_date_time=vtn.clock())
    newer = replace(event, descriptor=descriptor)
    vtn.events[event.event_id] = newer
    return newer


def response_for(created: CreatedEvent, event: Event) -> EventResponse | None:
    return next((r for r in created.event_responses if r.event_id == event.event_id), None)


def answers_to(vtn: HarnessVtn, event: Event, *, after: int) -> list[CreatedEvent]:
    """The VEN's oadrCreatedEvents since ``after`` that answer ``event``."""
    return [m for m in vtn.heard_since(after)
            if isinstance(m, CreatedEvent) and response_for(m, event) is not None]


async def answered(vtn: HarnessVtn, event: Event) -> EventResponse:
    """Distribute the live events and wait for the VEN's answer to ``event``'s version."""
    mark = vtn.mark()
    distribution = vtn.distribute()

    def names(created: CreatedEvent) -> bool:
        found = response_for(created, event)
        return found is not None and found.modification_number == event.modification_number

    created = await vtn.wait_for(
        CreatedEvent, f"oadrCreatedEvent for {event.event_id!r} modification "
        f"{event.modification_number}", names, after=mark)
    response = response_for(created, event)
    assert response is not None
    require(response.request_id == distribution.request_id,
            f"its eventResponse carries requestID {response.request_id!r}, not the "
            f"distribution's {distribution.request_id!r}")
    require(200 <= response.code < 300, f"its eventResponse code is {response.code}")
    return response


async def _answers_event(vtn: HarnessVtn) -> str:
    event = new_event(vtn, ResponseRequired.ALWAYS)
    response = await answered(vtn, event)
    return f"{response.opt_type.value} for {event.event_id!r}"


def _live(vtn: HarnessVtn) -> Event:
    for event in reversed(vtn.events.values()):
        if event.response_required is ResponseRequired.ALWAYS \
                and event.descriptor.event_status is not EventStatus.CANCELLED:
            return event
    return new_event(vtn, ResponseRequired.ALWAYS)


async def _answers_modification(vtn: HarnessVtn) -> str:
    event = _next_version(vtn, _live(vtn), EventStatus.FAR)
    response = await answered(vtn, event)
    return f"{response.opt_type.value} for modification {event.modification_number}"


async def _silent_when_never(vtn: HarnessVtn) -> str:
    quiet = new_event(vtn, ResponseRequired.NEVER)
    loud = new_event(vtn, ResponseRequired.ALWAYS)
    mark = vtn.mark()
    await answered(vtn, loud)
    if not vtn.settings.push:  # a pull VEN may answer later: give it until its next poll
        ven_id = vtn.registered_ven()
        await vtn.wait_for(Poll, "oadrPoll after its oadrCreatedEvent",
                           lambda p: p.ven_id == ven_id, after=vtn.mark())
    require(not answers_to(vtn, quiet, after=mark),
            f"it answered {quiet.event_id!r}, whose oadrResponseRequired is never")
    return f"answered {loud.event_id!r} only"


async def _answers_cancellation(vtn: HarnessVtn) -> str:
    event = _next_version(vtn, _live(vtn), EventStatus.CANCELLED)
    response = await answered(vtn, event)
    return f"{response.opt_type.value} for the cancelled {event.event_id!r}"


# ------------------------------------------------------------ reports


def _offered(vtn: HarnessVtn) -> Report:
    offers = [m for m in vtn.heard_since(0) if isinstance(m, RegisterReport) and m.reports]
    if not offers:
        raise CaseFailed("the VEN offered no report (oadrRegisterReport) to request")
    return offers[-1].reports[0]


async def _creates_report(vtn: HarnessVtn) -> str:
    offered = _offered(vtn)
    period = timedelta(seconds=vtn.settings.report_back_s)
    request = ReportRequest(
        report_request_id=f"cf-{new_id()}",
        report_specifier=ReportSpecifier(
            report_specifier_id=offered.report_specifier_id, granularity=period,
            report_back_duration=period,
            specifier_payloads=tuple(SpecifierPayload(r_id=d.r_id, reading_type=d.reading_type)
                                     for d in offered.descriptions)))
    create = CreateReport(request_id=new_id(), report_requests=(request,),
                          ven_id=vtn.registered_ven())
    mark = vtn.mark()
    vtn.deliver(create)
    created = await vtn.wait_for(CreatedReport, "oadrCreatedReport",
                                 lambda m: m.response.request_id == create.request_id, after=mark)
    require(request.report_request_id in created.pending_reports,
            f"its oadrPendingReports {list(created.pending_reports)} lack "
            f"{request.report_request_id!r}")
    vtn.report_request = request
    return f"report {request.report_request_id!r} pending"


def _requested(vtn: HarnessVtn) -> ReportRequest:
    if vtn.report_request is None:
        raise CaseFailed("no report was requested (R1_3010 did not pass)")
    return vtn.report_request


async def _updates_report(vtn: HarnessVtn) -> str:
    request = _requested(vtn)
    update = await vtn.wait_for(
        UpdateReport, f"oadrUpdateReport for {request.report_request_id!r}",
        lambda m: any(r.report_request_id == request.report_request_id for r in m.reports))
    wanted = {p.r_id for p in request.report_specifier.specifier_payloads}
    for report in update.reports:
        sent = {p.r_id for i in report.intervals for p in i.payloads}
        require(report.intervals, "its report carries no interval")
        require(sent <= wanted, f"it reports rIDs {sorted(sent - wanted)} that were not asked")
    return f"oadrUpdateReport with {sum(len(r.intervals) for r in update.reports)} interval(s)"


async def _cancels_report(vtn: HarnessVtn) -> str:
    request = _requested(vtn)
    cancel = CancelReport(request_id=new_id(), report_request_ids=(request.report_request_id,),
                          ven_id=vtn.registered_ven())
    mark = vtn.mark()
    vtn.deliver(cancel)
    await vtn.wait_for(CanceledReport, "oadrCanceledReport",
                       lambda m: m.response.request_id == cancel.request_id, after=mark)
    vtn.report_request = None
    return f"report {request.report_request_id!r} cancelled"


#: the registration (N), event (E) and report (R) cases, pull mode, in running order
NER_CASES: Final[tuple[Case[HarnessVtn], ...]] = (
    Case(case_id="N1_0010_TH_VTN",
         purpose="the VEN registers for profile 2.0b, stating its transport: simpleHttp with "
         "its pull or push model, or XMPP with its JID",
         requirement=_REGISTRATION, run=_registers,
         messages=("< oadrCreatePartyRegistration", "> oadrCreatedPartyRegistration")),
    Case(case_id="N1_0020_TH_VTN",
         purpose="the VEN offers its reports: METADATA reports with reportRequestID 0",
         requirement=_REPORTS, run=_offers_reports,
         messages=("< oadrRegisterReport", "> oadrRegisteredReport")),
    Case(case_id="N1_0030_TH_VTN", purpose="the VEN polls with the venID it was given",
         requirement="OpenADR 2.0b profile 9.1.3 (OadrPoll)", run=_polls,
         messages=("< oadrPoll", "> oadrResponse")),
    Case(case_id="E1_1010_TH_VTN",
         purpose="an event that requires a response gets oadrCreatedEvent echoing the "
         "distribution's requestID", requirement=_EVENTS, run=_answers_event,
         messages=("> oadrDistributeEvent", "< oadrCreatedEvent")),
    Case(case_id="E1_1020_TH_VTN",
         purpose="a modified event (modificationNumber + 1) is answered again",
         requirement=_EVENTS, run=_answers_modification,
         messages=("> oadrDistributeEvent", "< oadrCreatedEvent")),
    Case(case_id="E1_1030_TH_VTN",
         purpose="an event whose oadrResponseRequired is never gets no oadrCreatedEvent",
         requirement=_EVENTS, run=_silent_when_never,
         messages=("> oadrDistributeEvent", "< oadrCreatedEvent", "< oadrPoll")),
    Case(case_id="E1_1040_TH_VTN", purpose="a cancelled event is answered with oadrCreatedEvent",
         requirement=_EVENTS, run=_answers_cancellation,
         messages=("> oadrDistributeEvent", "< oadrCreatedEvent")),
    Case(case_id="R1_3010_TH_VTN",
         purpose="a request for an offered report gets oadrCreatedReport listing it pending",
         requirement=_REPORTS, run=_creates_report,
         messages=("> oadrCreateReport", "< oadrCreatedReport")),
    Case(case_id="R1_3020_TH_VTN",
         purpose="the requested report arrives as oadrUpdateReport with its reportRequestID",
         requirement=_REPORTS, run=_updates_report,
         messages=("< oadrUpdateReport", "> oadrUpdatedReport")),
    Case(case_id="R1_3030_TH_VTN", purpose="a cancelled report request gets oadrCanceledReport",
         requirement=_REPORTS, run=_cancels_report,
         messages=("> oadrCancelReport", "< oadrCanceledReport")),
    Case(case_id="N1_0040_TH_VTN",
         purpose="oadrRequestReregistration makes the VEN register again",
         requirement=_REGISTRATION, run=_reregisters,
         messages=("> oadrRequestReregistration", "< oadrResponse",
                   "< oadrCreatePartyRegistration")),
    Case(case_id="N1_0050_TH_VTN",
         purpose="oadrCancelPartyRegistration is confirmed with oadrCanceledPartyRegistration",
         requirement=_REGISTRATION, run=_cancels_registration,
         messages=("> oadrCancelPartyRegistration", "< oadrCanceledPartyRegistration")),
)

#: the runs of the cases that re-register the VEN and end its registration: they come last
ENDS_REGISTRATION: Final = frozenset({_reregisters, _cancels_registration})
#: the runs of the cases that do not apply to a push VEN
PULL_ONLY: Final = frozenset({_polls})
