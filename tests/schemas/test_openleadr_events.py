"""Interop with an independent implementation: openleadr's event messages, both directions.

openleadr builds its XML from Jinja templates and reads it back with xmltodict into dicts; its
reader turns digit-only text into ints, so the openleadr -> crowdflex direction uses IDs like
``000123`` (which must stay strings with us) and the other direction uses IDs openleadr keeps.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from openleadr import objects
from openleadr.messaging import create_message, parse_message

import schemas
from schemas import (
    ActivePeriod,
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    Event,
    EventDescriptor,
    EventInterval,
    EventResponse,
    EventSignal,
    EventStatus,
    OptType,
    RequestEvent,
    ResponseRequired,
    SignalType,
    Target,
)
from schemas.units import ItemBase

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
ISP = timedelta(minutes=15)


def _openleadr_event(event_id: str, status: str, setpoints: list[float]) -> dict[str, Any]:
    """An openleadr event dict as its VTN builds one: objects, then asdict, status pinned."""
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id=event_id, modification_number=3, market_context="https://tso.example/afrr",
            event_status=status, created_date_time=T0, modification_date_time=T0, priority=1,
            test_event=True, vtn_comment="activation",
        ),
        event_signals=[objects.EventSignal(
            intervals=[objects.Interval(dtstart=T0 + i * ISP, duration=ISP, signal_payload=mw,
                                        uid=i) for i, mw in enumerate(setpoints)],
            signal_name="LOAD_DISPATCH", signal_type="setpoint", signal_id="000001",
            current_value=0.0,
            measurement=objects.Measurement(name="powerReal", description="RealPower", unit="W",
                                            scale="M", power_attributes=objects.PowerAttributes()),
        )],
        targets=[objects.Target(ven_id="000042"), objects.Target(group_id="0g")],
        active_period=objects.ActivePeriod(
            dtstart=T0, duration=ISP * len(setpoints), tolerance={"startafter": ISP / 15},
            notification_period=timedelta(minutes=5), ramp_up_period=timedelta(minutes=2),
            recovery_period=timedelta(minutes=1),
        ),
        response_required="always",
    )
    as_dict: dict[str, Any] = asdict(event)
    # objects.Event recomputes the status from the clock; pin the one under test
    as_dict["event_descriptor"]["event_status"] = status
    return as_dict


def test_openleadr_distribute_event_decodes_with_every_value() -> None:
    wire = create_message(
        "oadrDistributeEvent", request_id="0007", vtn_id="0vtn",
        response={"response_code": 200, "response_description": "OK", "request_id": "0007"},
        events=[_openleadr_event("000123", "near", [3.5, 5.0]),
                _openleadr_event("000124", "cancelled", [1.0])],
    )
    message = schemas.decode(wire.encode())
    assert isinstance(message, DistributeEvent)
    assert (message.request_id, message.vtn_id) == ("0007", "0vtn")
    assert message.response == EiResponse(code=200, description="OK", request_id="0007")
    first, second = message.events
    assert (first.event_id, second.event_id) == ("000123", "000124")
    assert second.descriptor.event_status is EventStatus.CANCELLED
    assert first.descriptor == EventDescriptor(
        event_id="000123", modification_number=3, market_context="https://tso.example/afrr",
        created_date_time=T0, event_status=EventStatus.NEAR, modification_date_time=T0,
        priority=1, test_event="true", vtn_comment="activation",
    )
    assert first.descriptor.is_test
    assert first.active_period == ActivePeriod(
        dtstart=T0, duration=2 * ISP, start_after=timedelta(minutes=1),
        notification=timedelta(minutes=5), ramp_up=timedelta(minutes=2),
        recovery=timedelta(minutes=1),
    )
    (signal,) = first.signals
    assert signal == EventSignal(
        intervals=(EventInterval(values=(3.5,), duration=ISP, uid="0", dtstart=T0),
                   EventInterval(values=(5.0,), duration=ISP, uid="1", dtstart=T0 + ISP)),
        signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="000001",
        item_base=ItemBase.megawatts(), current_value=0.0,
    )
    assert first.target == Target(ven_ids=("000042",), group_ids=("0g",))
    assert first.response_required is ResponseRequired.ALWAYS


def test_openleadr_distribute_event_without_events_decodes() -> None:
    wire = create_message("oadrDistributeEvent", request_id="01", vtn_id="02", events=[])
    assert schemas.decode(wire.encode()) == DistributeEvent(request_id="01", vtn_id="02")


def test_openleadr_created_event_decodes() -> None:
    wire = create_message(
        "oadrCreatedEvent", ven_id="000042",
        response={"response_code": 200, "response_description": "OK", "request_id": "0007"},
        event_responses=[
            {"response_code": 200, "response_description": "OK", "request_id": "0007",
             "event_id": "000123", "modification_number": 3, "opt_type": "optIn"},
            {"response_code": 200, "request_id": "0007", "event_id": "000124",
             "modification_number": 0, "opt_type": "optOut"},
        ],
    )
    message = schemas.decode(wire.encode())
    assert message == CreatedEvent(
        # openleadr leaves the overall requestID empty when it lists event responses
        response=EiResponse(code=200, description="OK", request_id=""),
        ven_id="000042",
        event_responses=(
            EventResponse(request_id="0007", event_id="000123", modification_number=3,
                          opt_type=OptType.OPT_IN, code=200, description="OK"),
            EventResponse(request_id="0007", event_id="000124", modification_number=0,
                          opt_type=OptType.OPT_OUT, code=200, description=None),
        ),
    )


def test_openleadr_request_event_decodes() -> None:
    with_limit = create_message("oadrRequestEvent", request_id="0001", ven_id="000042",
                                reply_limit=5)
    without = create_message("oadrRequestEvent", request_id="0002", ven_id="000042")
    assert schemas.decode(with_limit.encode()) == RequestEvent(
        request_id="0001", ven_id="000042", reply_limit=5
    )
    assert schemas.decode(without.encode()) == RequestEvent(request_id="0002", ven_id="000042")


# ---------------------------------------------------------------- crowdflex -> openleadr


def _our_activation(event_id: str, status: EventStatus) -> Event:
    return Event(
        descriptor=EventDescriptor(
            event_id=event_id, modification_number=2, market_context="https://tso.example/afrr",
            created_date_time=T0, event_status=status, modification_date_time=T0, priority=4,
            test_event="false", vtn_comment="isp 48",
        ),
        active_period=ActivePeriod(dtstart=T0, duration=2 * ISP, start_after=timedelta(seconds=30),
                                   notification=timedelta(minutes=5), ramp_up=timedelta(minutes=1),
                                   recovery=timedelta(minutes=2)),
        signals=(EventSignal(
            intervals=(EventInterval(values=(2.5,), duration=ISP, uid="0"),
                       EventInterval(values=(-1.25,), duration=ISP, uid="1")),
            signal_name="LOAD_DISPATCH", signal_type=SignalType.SETPOINT, signal_id="sig-a",
            item_base=ItemBase.megawatts(), current_value=0.5,
        ),),
        target=Target(ven_ids=("ven-a",), group_ids=("pool-1",)),
        response_required=ResponseRequired.NEVER,
    )


def test_our_distribute_event_parses_in_openleadr() -> None:
    message = DistributeEvent(
        request_id="req-7", vtn_id="tso", response=EiResponse(request_id="req-7"),
        events=(_our_activation("evt-1", EventStatus.ACTIVE),
                _our_activation("evt-2", EventStatus.CANCELLED)),
    )
    kind, payload = parse_message(schemas.encode(message))
    assert kind == "oadrDistributeEvent"
    assert (payload["request_id"], payload["vtn_id"]) == ("req-7", "tso")
    assert payload["response"] == {"response_code": 200, "response_description": "OK",
                                   "request_id": "req-7"}
    first, second = payload["events"]
    assert second["event_descriptor"]["event_status"] == "cancelled"
    assert first["event_descriptor"] == {
        "event_id": "evt-1", "modification_number": 2, "modification_date_time": T0,
        "priority": 4, "market_context": "https://tso.example/afrr", "created_date_time": T0,
        "event_status": "active", "test_event": False, "vtn_comment": "isp 48",
    }
    assert first["active_period"] == {
        "dtstart": T0, "duration": 2 * ISP,
        "tolerance": {"tolerate": {"startafter": timedelta(seconds=30)}},
        "notification": timedelta(minutes=5), "ramp_up": timedelta(minutes=1),
        "recovery": timedelta(minutes=2),
    }
    (signal,) = first["event_signals"]
    assert signal["intervals"] == [
        {"duration": ISP, "uid": 0, "signal_payload": 2.5},
        {"duration": ISP, "uid": 1, "signal_payload": -1.25},
    ]
    assert (signal["signal_name"], signal["signal_type"], signal["signal_id"]) == (
        "LOAD_DISPATCH", "setpoint", "sig-a"
    )
    assert signal["current_value"] == 0.5
    assert signal["measurement"] == {
        "name": "powerReal", "description": "RealPower", "unit": "W", "scale": "M",
        "power_attributes": {"hertz": 50.0, "voltage": 230.0, "ac": True},
    }
    assert first["targets_by_type"] == {"ven_id": ["ven-a"], "group_id": ["pool-1"]}
    assert first["response_required"] == "never"


def test_our_created_event_parses_in_openleadr() -> None:
    message = CreatedEvent(
        response=EiResponse(request_id="req-7"), ven_id="ven-a",
        event_responses=(
            EventResponse(request_id="req-7", event_id="evt-1", modification_number=2,
                          opt_type=OptType.OPT_IN),
            EventResponse(request_id="req-7", event_id="evt-2", modification_number=0,
                          opt_type=OptType.OPT_OUT, code=460, description=None),
        ),
    )
    kind, payload = parse_message(schemas.encode(message))
    assert kind == "oadrCreatedEvent"
    assert payload["ven_id"] == "ven-a"
    assert payload["response"] == {"response_code": 200, "response_description": "OK",
                                   "request_id": "req-7"}
    assert payload["event_responses"] == [
        {"response_code": 200, "response_description": "OK", "request_id": "req-7",
         "event_id": "evt-1", "modification_number": 2, "opt_type": "optIn"},
        {"response_code": 460, "request_id": "req-7", "event_id": "evt-2",
         "modification_number": 0, "opt_type": "optOut"},
    ]
