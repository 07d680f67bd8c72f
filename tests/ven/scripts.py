"""Payload builders and a default script for the in-test VTN (tests.ven.conftest.scripted_vtn)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from schemas import (
    ActivePeriod,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    DistributeEvent,
    EiResponse,
    Event,
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    Message,
    Poll,
    Profile,
    ProfileName,
    QueryRegistration,
    RegisteredReport,
    RegisterReport,
    ReportRequest,
    ReportSpecifier,
    ResponseRequired,
    SignalType,
    SpecifierPayload,
    TransportName,
)
from ven import Registration, VenClient

from .conftest import REGISTRATION_ID, VEN_ID, Script, ok

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(event_id: str, modification: int, *, required: bool = True,
          status: EventStatus = EventStatus.FAR) -> Event:
    return Event(
        descriptor=EventDescriptor(event_id=event_id, modification_number=modification,
                                   market_context="oadr://crowdflex/test", created_date_time=T0,
                                   event_status=status),
        active_period=ActivePeriod(dtstart=T0, duration=timedelta(minutes=15)),
        signals=(EventSignal(
            intervals=(EventInterval(values=(float(modification),), uid="0",
                                     duration=timedelta(minutes=15)),),
            signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="sig-1"),),
        response_required=ResponseRequired.ALWAYS if required else ResponseRequired.NEVER,
    )


def distribute(*events: Event, request_id: str = "dist-1") -> DistributeEvent:
    return DistributeEvent(request_id=request_id, vtn_id="scripted-vtn", events=events)


def created_registration(request_id: str = "") -> CreatedPartyRegistration:
    return CreatedPartyRegistration(
        response=EiResponse(request_id=request_id), registration_id=REGISTRATION_ID,
        ven_id=VEN_ID, vtn_id="scripted-vtn",
        profiles=(Profile(profile_name=ProfileName.OADR_20B,
                          transports=(TransportName.SIMPLE_HTTP,)),),
        requested_oadr_poll_freq=timedelta(seconds=30),
    )


def report_request(specifier_id: str, r_id: str = "meter-1",
                   back: timedelta = timedelta(seconds=4)) -> ReportRequest:
    return ReportRequest(
        report_request_id=f"rr-{specifier_id}",
        report_specifier=ReportSpecifier(
            report_specifier_id=specifier_id, granularity=timedelta(seconds=4),
            report_back_duration=back,
            specifier_payloads=(SpecifierPayload(r_id=r_id, reading_type="Direct Read"),)),
    )


def default_script(
    queue: list[Message] | None = None,
    *,
    request_reports: bool = True,
    extra: Callable[[str, Message], Message | web.StreamResponse | None] | None = None,
) -> Script:
    """Registers anyone, hands out ``queue`` to polls (then an empty oadrResponse), requests every
    offered report when asked to, and acknowledges everything else with oadrResponse."""
    pending = queue if queue is not None else []

    async def script(service: str, message: Message) -> Message | web.StreamResponse:
        if extra is not None and (special := extra(service, message)) is not None:
            return special
        match message:
            case QueryRegistration() | CreatePartyRegistration():
                return created_registration(message.request_id)
            case Poll():
                return pending.pop(0) if pending else ok()
            case RegisterReport():
                requests = tuple(report_request(r.report_specifier_id) for r in message.reports)
                return RegisteredReport(response=EiResponse(request_id=message.request_id),
                                        report_requests=requests if request_reports else (),
                                        ven_id=VEN_ID)
            case _:
                return ok()

    return script


def registered(ven: VenClient) -> VenClient:
    ven.registration = Registration(ven_id=VEN_ID, registration_id=REGISTRATION_ID,
                                    vtn_id="scripted-vtn")
    return ven
