"""OpenADR 2.0b event payloads (EiEvent service): request, distribute and acknowledge DR events.

OpenADR 2.0b profile 8.2 (EiEvent) and oadr_20b.xsd / oadr_ei_20b.xsd: a pull-mode VEN asks for
events (oadrRequestEvent); the VTN sends every active or pending event in one oadrDistributeEvent;
the VEN answers events that need it with oadrCreatedEvent, one optIn/optOut per event.

Model: one :class:`Event` is an ``oadr:oadrEvent`` -- the ``ei:eiEvent`` plus its
``oadrResponseRequired`` -- because in 2.0b an eiEvent never travels without that flag. Signal
values are floats (``ei:payloadFloat`` is ``xs:float``); signal names stay ``str`` so ``x-``
extensions pass. Events are plain data: what an encoder derives from one (its built XML, its
status and target variants) lives in the encoder's :class:`~schemas._event_cache.EventEncodeCache`.

Invariants: IDs are ``str`` exactly as received (``000123`` stays ``000123``); times are aware
UTC datetimes; every tuple the XSD requires to be non-empty and every unsigned number is checked
when the object is built, so an illegal message is a local bug caught before it is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from ._base import Message
from ._errors import LocalProtocolError
from ._wire import check_unsigned
from .parts import EiResponse, Target
from .units import ItemBase

__all__ = [
    "SPEC_SIGNAL_NAMES",
    "ActivePeriod",
    "CreatedEvent",
    "DistributeEvent",
    "Event",
    "EventBaseline",
    "EventDescriptor",
    "EventInterval",
    "EventResponse",
    "EventSignal",
    "EventStatus",
    "OptType",
    "RequestEvent",
    "ResponseRequired",
    "SignalType",
]


class EventStatus(StrEnum):
    """ei:EventStatusEnumeratedType."""

    NONE = "none"
    FAR = "far"
    NEAR = "near"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class SignalType(StrEnum):
    """ei:SignalTypeEnumeratedType: how a signal's values are to be read."""

    DELTA = "delta"
    LEVEL = "level"
    MULTIPLIER = "multiplier"
    PRICE = "price"
    PRICE_MULTIPLIER = "priceMultiplier"
    PRICE_RELATIVE = "priceRelative"
    SETPOINT = "setpoint"
    X_LOAD_CONTROL_CAPACITY = "x-loadControlCapacity"
    X_LOAD_CONTROL_LEVEL_OFFSET = "x-loadControlLevelOffset"
    X_LOAD_CONTROL_PERCENT_OFFSET = "x-loadControlPercentOffset"
    X_LOAD_CONTROL_SETPOINT = "x-loadControlSetpoint"


class ResponseRequired(StrEnum):
    """oadr:ResponseRequiredType: whether the VEN must answer with oadrCreatedEvent."""

    ALWAYS = "always"
    NEVER = "never"


class OptType(StrEnum):
    """ei:OptTypeType."""

    OPT_IN = "optIn"
    OPT_OUT = "optOut"


# ei:SignalNameEnumeratedType; anything else must match ei:EiExtensionTokenType (x-\S.*).
SPEC_SIGNAL_NAMES: Final = frozenset({
    "SIMPLE", "simple", "ELECTRICITY_PRICE", "ENERGY_PRICE", "DEMAND_CHARGE", "BID_PRICE",
    "BID_LOAD", "BID_ENERGY", "CHARGE_STATE", "LOAD_DISPATCH", "LOAD_CONTROL",
})
_EXTENSION_TOKEN: Final = re.compile(r"x-\S")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventInterval:
    """One ei:interval of a signal or baseline: when (optional in the XSD) and which values.

    ``values`` holds each ``signalPayload/payloadFloat/value`` in order; the XSD wants at least one.
    """

    values: tuple[float, ...]
    duration: timedelta | None = None
    uid: str | None = None
    dtstart: datetime | None = None

    def __post_init__(self) -> None:
        if not self.values:
            raise LocalProtocolError("ei:interval needs at least one signalPayload")

    @property
    def value(self) -> float:
        """The first payload value: in practice an event interval carries exactly one."""
        return self.values[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSignal:
    """ei:eiEventSignal: named, typed interval values, with an optional unit and current value."""

    intervals: tuple[EventInterval, ...]
    signal_name: str
    signal_type: SignalType
    signal_id: str
    target: Target | None = None
    item_base: ItemBase | None = None
    current_value: float | None = None

    def __post_init__(self) -> None:
        if not self.intervals:
            raise LocalProtocolError("ei:eiEventSignal needs at least one interval")
        name = self.signal_name
        # an xs:token reads back whitespace-collapsed, so only collapsed names survive the wire
        collapsed = name == " ".join(name.split())
        if not collapsed or (name not in SPEC_SIGNAL_NAMES and not _EXTENSION_TOKEN.match(name)):
            raise LocalProtocolError(f"signalName {name!r} is neither a 2.0b name nor an x- name")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBaseline:
    """ei:eiEventBaseline: the baseline the VTN assumes for the event's resources."""

    dtstart: datetime
    duration: timedelta
    intervals: tuple[EventInterval, ...]
    baseline_id: str
    baseline_name: str
    resource_ids: tuple[str, ...] = ()
    item_base: ItemBase | None = None

    def __post_init__(self) -> None:
        if not self.intervals:
            raise LocalProtocolError("ei:eiEventBaseline needs at least one interval")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventDescriptor:
    """ei:eventDescriptor. ``modification_number`` rises on every change the VTN makes."""

    event_id: str
    modification_number: int
    market_context: str
    created_date_time: datetime
    event_status: EventStatus
    modification_date_time: datetime | None = None
    modification_reason: str | None = None
    priority: int | None = None
    test_event: str | None = None
    vtn_comment: str | None = None

    def __post_init__(self) -> None:
        check_unsigned("modificationNumber", self.modification_number)
        check_unsigned("priority", self.priority)

    @property
    def is_test(self) -> bool:
        """The XSD: anything other than ``false`` in testEvent marks a test event."""
        return self.test_event is not None and self.test_event.strip() != "false"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivePeriod:
    """ei:eiActivePeriod properties: the event's start and length, and its optional margins."""

    dtstart: datetime
    duration: timedelta
    start_after: timedelta | None = None  # tolerance/tolerate/startafter: randomised start window
    notification: timedelta | None = None  # x-eiNotification
    ramp_up: timedelta | None = None  # x-eiRampUp
    recovery: timedelta | None = None  # x-eiRecovery


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """oadr:oadrEvent: one ei:eiEvent and whether the VEN must opt in or out of it."""

    descriptor: EventDescriptor
    active_period: ActivePeriod
    signals: tuple[EventSignal, ...]
    target: Target = field(default_factory=Target)
    baseline: EventBaseline | None = None
    response_required: ResponseRequired = ResponseRequired.ALWAYS

    def __post_init__(self) -> None:
        if not self.signals:
            raise LocalProtocolError("ei:eiEventSignals needs at least one eiEventSignal")

    @property
    def event_id(self) -> str:
        return self.descriptor.event_id

    @property
    def modification_number(self) -> int:
        return self.descriptor.modification_number


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEvent(Message):
    """oadrRequestEvent: a VEN asks for its events; ``reply_limit`` caps how many come back."""

    request_id: str
    ven_id: str
    reply_limit: int | None = None

    def __post_init__(self) -> None:
        check_unsigned("replyLimit", self.reply_limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributeEvent(Message):
    """oadrDistributeEvent: the complete set of events for a VEN (an empty tuple clears them)."""

    request_id: str
    vtn_id: str
    events: tuple[Event, ...] = ()
    response: EiResponse | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventResponse:
    """ei:eventResponse: the VEN's answer to one event version (eventID + modificationNumber)."""

    request_id: str
    event_id: str
    modification_number: int
    opt_type: OptType
    code: int = 200
    description: str | None = "OK"

    def __post_init__(self) -> None:
        check_unsigned("modificationNumber", self.modification_number)
        if not 0 <= self.code <= 999:
            raise LocalProtocolError(f"responseCode {self.code} is not three digits")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedEvent(Message):
    """oadrCreatedEvent: a VEN's optIn/optOut per event, or an error for the whole distribution."""

    response: EiResponse
    ven_id: str
    event_responses: tuple[EventResponse, ...] = ()
