"""E1 cases: EiEvent, the harness playing the VEN (profile 8.2).

The operator creates each event with exact parameters (:func:`event_params`, in the admin API's
body form); the case then checks that the event reaches the VEN (by poll, or pushed) exactly as
created.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Final

from schemas import (
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    Event,
    EventResponse,
    EventStatus,
    OptType,
    RequestEvent,
    Response,
    ResponseRequired,
    new_id,
)

from ._checks import ok, refused, require
from ._model import MARKET_CONTEXT, Case, CaseFailed
from .operators import StepKind
from .session import HarnessVen

__all__ = ["EVENT_CASES", "event_params", "received_event"]

_SECTION: Final = "OpenADR 2.0b profile 8.2 (EiEvent)"
_INTERVAL: Final = timedelta(minutes=10)


def event_params(ven: HarnessVen, values: tuple[float, ...], *,
                 targets: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """An event starting in an hour: one LOAD_DISPATCH setpoint interval of 10 min per value."""
    start = (ven.clock() + timedelta(hours=1)).replace(microsecond=0)
    return {
        "event_id": f"cf-{new_id()}", "market_context": MARKET_CONTEXT,
        "start": start.isoformat(), "duration_s": int(_INTERVAL.total_seconds()) * len(values),
        "targets": targets if targets is not None else {"ven_ids": [ven.ven_id]},
        "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint", "id": "cf-signal-0",
                     "intervals": [{"duration_s": int(_INTERVAL.total_seconds()), "value": v}
                                   for v in values]}],
        "response_required": "always",
    }


def _find(distribution: DistributeEvent, event_id: str) -> Event | None:
    return next((e for e in distribution.events if e.event_id == event_id), None)


def _mismatches(event: Event, params: dict[str, Any]) -> list[str]:
    wrong = []
    if event.descriptor.market_context != params["market_context"]:
        wrong.append(f"marketContext {event.descriptor.market_context!r}")
    if event.active_period.dtstart != datetime.fromisoformat(params["start"]):
        wrong.append(f"dtstart {event.active_period.dtstart.isoformat()}")
    if event.active_period.duration != timedelta(seconds=params["duration_s"]):
        wrong.append(f"duration {event.active_period.duration}")
    if event.response_required is not ResponseRequired.ALWAYS:
        wrong.append(f"oadrResponseRequired {event.response_required.value}")
    (wanted,) = params["signals"]
    if len(event.signals) != 1:
        return [*wrong, f"{len(event.signals)} signals, not 1"]
    signal = event.signals[0]
    if (signal.signal_name, signal.signal_type.value) != (wanted["name"], wanted["type"]):
        wrong.append(f"signal {signal.signal_name}/{signal.signal_type.value}")
    got = [(i.duration, i.values) for i in signal.intervals]
    expected = [(timedelta(seconds=i["duration_s"]), (float(i["value"]),))
                for i in wanted["intervals"]]
    if got != expected:
        wrong.append(f"intervals {[(str(d), v) for d, v in got]}")
    return wrong


async def received_event(ven: HarnessVen, params: dict[str, Any], *,
                         modification: int = 0) -> tuple[DistributeEvent, Event]:
    """Wait for the event of ``params`` at ``modification`` (or later) and check its fields."""
    event_id = params["event_id"]

    def carries(distribution: DistributeEvent) -> bool:
        found = _find(distribution, event_id)
        return found is not None and found.modification_number >= modification

    distribution = await ven.wait_for(DistributeEvent, f"oadrDistributeEvent with {event_id!r}",
                                      carries)
    event = _find(distribution, event_id)
    assert event is not None
    wrong = _mismatches(event, params)
    require(not wrong, f"event {event_id!r} differs from what the operator created: "
            + "; ".join(wrong))
    return distribution, event


async def _created(ven: HarnessVen, values: tuple[float, ...] = (4.0,)
                   ) -> tuple[dict[str, Any], DistributeEvent, Event]:
    await ven.ensure_registered()
    params = event_params(ven, values)
    await ven.operate(StepKind.CREATE_EVENT, **params)
    distribution, event = await received_event(ven, params)
    return params, distribution, event


async def _answer(ven: HarnessVen, distribution: DistributeEvent, event: Event,
                  opt: OptType) -> None:
    ok(await ven.send("EiEvent", CreatedEvent(
        response=EiResponse(request_id=distribution.request_id), ven_id=ven.ven_id,
        event_responses=(EventResponse(
            request_id=distribution.request_id, event_id=event.event_id,
            modification_number=event.modification_number, opt_type=opt),))), Response)


async def _request_event(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    reply = ok(await ven.send("EiEvent", RequestEvent(request_id=new_id(), ven_id=ven.ven_id)),
               DistributeEvent)
    return f"oadrDistributeEvent with {len(reply.events)} event(s)"


async def _opt_in(ven: HarnessVen) -> str:
    _, distribution, event = await _created(ven)
    require(event.modification_number == 0,
            f"a new event has modificationNumber {event.modification_number}, not 0")
    await _answer(ven, distribution, event, OptType.OPT_IN)
    return f"event {event.event_id!r} arrived as created; optIn accepted"


async def _opt_out(ven: HarnessVen) -> str:
    _, distribution, event = await _created(ven)
    await _answer(ven, distribution, event, OptType.OPT_OUT)
    again = ok(await ven.send("EiEvent", RequestEvent(request_id=new_id(), ven_id=ven.ven_id)),
               DistributeEvent)
    require(_find(again, event.event_id) is not None,
            "after the optOut the event is missing from oadrRequestEvent's answer")
    return f"optOut of {event.event_id!r} accepted; the event is still listed"


async def _modified(ven: HarnessVen) -> str:
    params, distribution, event = await _created(ven, (4.0, 2.0))
    await _answer(ven, distribution, event, OptType.OPT_IN)
    changed = {**params, "signals": [{**params["signals"][0], "intervals": [
        {"duration_s": 600, "value": 4.0}, {"duration_s": 600, "value": 1.0}]}]}
    await ven.operate(StepKind.MODIFY_EVENT, **changed)
    wanted = event.modification_number + 1
    distribution, modified = await received_event(ven, changed, modification=wanted)
    require(modified.modification_number == wanted,
            f"modificationNumber went from {event.modification_number} to "
            f"{modified.modification_number}, not {wanted}")
    await _answer(ven, distribution, modified, OptType.OPT_IN)
    return f"modificationNumber {event.modification_number} -> {wanted}; new values arrived"


async def _cancelled(ven: HarnessVen) -> str:
    _, distribution, event = await _created(ven)
    await _answer(ven, distribution, event, OptType.OPT_IN)
    await ven.operate(StepKind.CANCEL_EVENT, event_id=event.event_id)

    def cancelled(candidate: DistributeEvent) -> bool:
        found = _find(candidate, event.event_id)
        return found is not None and found.descriptor.event_status is EventStatus.CANCELLED

    distribution = await ven.wait_for(DistributeEvent, "the event with status cancelled",
                                      cancelled)
    gone = _find(distribution, event.event_id)
    assert gone is not None
    require(gone.modification_number > event.modification_number,
            f"cancelling left modificationNumber at {gone.modification_number}")
    await _answer(ven, distribution, gone, OptType.OPT_IN)
    return f"status cancelled, modificationNumber {gone.modification_number}; acknowledged"


async def _intervals(ven: HarnessVen) -> str:
    _, distribution, event = await _created(ven, (1.0, 2.0, 3.0))
    signal = event.signals[0]
    total = sum((i.duration or timedelta() for i in signal.intervals), timedelta())
    require(total == event.active_period.duration,
            f"the intervals last {total}, the event {event.active_period.duration}")
    await _answer(ven, distribution, event, OptType.OPT_IN)
    return f"3 intervals in order, uids {[i.uid for i in signal.intervals]}"


async def _targets(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    elsewhere = event_params(ven, (5.0,), targets={"group_ids": [f"cf-other-{new_id()}"]})
    await ven.operate(StepKind.CREATE_EVENT, **elsewhere)
    params = event_params(ven, (4.0,))
    await ven.operate(StepKind.CREATE_EVENT, **params)
    distribution, _ = await received_event(ven, params)
    for exchange in ven.exchanges:
        if isinstance(exchange.received, DistributeEvent) \
                and _find(exchange.received, elsewhere["event_id"]) is not None:
            raise CaseFailed(f"event {elsewhere['event_id']!r} for another group reached the VEN")
    await ven.acknowledge(distribution, OptType.OPT_IN)
    return "the event for another group stayed away; the one for this venID arrived"


async def _unknown_event(ven: HarnessVen) -> str:
    await ven.ensure_registered()
    request_id = new_id()
    message = CreatedEvent(
        response=EiResponse(request_id=request_id), ven_id=ven.ven_id,
        event_responses=(EventResponse(request_id=request_id, event_id=f"cf-unknown-{new_id()}",
                                       modification_number=0, opt_type=OptType.OPT_IN),))
    how = refused(await ven.post("EiEvent", ven.codec.encode(message), message))
    return f"refused: {how}"


def _case(number: str, purpose: str, requirement: str, messages: tuple[str, ...],
          run: Callable[[HarnessVen], Awaitable[str]]) -> Case[HarnessVen]:
    return Case(case_id=f"E1_{number}_TH_VEN", purpose=purpose,
                requirement=f"{_SECTION}: {requirement}", messages=messages, run=run)


_DELIVERY: Final = ("operator: create event", "> oadrPoll", "< oadrDistributeEvent")
EVENT_CASES: Final = (
    _case("1010", "oadrRequestEvent is answered with the VEN's events",
          "a VEN may ask for its events at any time; the answer is oadrDistributeEvent 200",
          ("> oadrRequestEvent", "< oadrDistributeEvent"), _request_event),
    _case("1020", "a new event reaches the VEN exactly as created; optIn",
          "events reach a pull VEN by poll with modificationNumber 0; oadrCreatedEvent optIn "
          "is answered 200", (*_DELIVERY, "> oadrCreatedEvent optIn", "< oadrResponse"),
          _opt_in),
    _case("1030", "optOut of an event",
          "oadrCreatedEvent optOut is answered 200 and the event stays in the VEN's list",
          (*_DELIVERY, "> oadrCreatedEvent optOut", "< oadrResponse", "> oadrRequestEvent",
           "< oadrDistributeEvent"), _opt_out),
    _case("1040", "a modified event arrives with modificationNumber + 1",
          "every change to an event increments its modificationNumber by one (the VEN "
          "answers the new version)", (*_DELIVERY, "operator: modify event", "> oadrPoll",
                                       "< oadrDistributeEvent", "> oadrCreatedEvent"),
          _modified),
    _case("1050", "a cancelled event arrives with status cancelled",
          "cancelling sets eventStatus cancelled and increments modificationNumber",
          (*_DELIVERY, "operator: cancel event", "> oadrPoll", "< oadrDistributeEvent",
           "> oadrCreatedEvent"), _cancelled),
    _case("1060", "an event with several intervals",
          "intervals keep their order and durations; their sum is the event's duration "
          "(uids: Conformance Rule 2)", (*_DELIVERY, "> oadrCreatedEvent"), _intervals),
    _case("1070", "targets: an event for another group does not reach the VEN",
          "eiTarget selects the VENs an event is sent to",
          ("operator: create event for another group", "operator: create event for this VEN",
           "> oadrPoll", "< oadrDistributeEvent"), _targets),
    _case("1080", "oadrCreatedEvent for an unknown eventID is refused",
          "Conformance Rule 21: an unexpected eventID is answered with an error",
          ("> oadrCreatedEvent (unknown eventID)", "< error"), _unknown_event),
)
