"""OpenADR 2.0b opt payloads (EiOpt service): availability schedules and per-event opt overrides.

OpenADR 2.0b profile 8.4 (EiOpt) and oadr_20b.xsd / oadr_ei_20b.xsd (EiOptType): a VEN tells the VTN
when its resources are (un)available (oadrCreateOpt with an xcal:vavailability schedule), or opts a
target in or out of one event (with a qualifiedEventID); the VTN acknowledges (oadrCreatedOpt); the
VEN may withdraw a schedule (oadrCancelOpt / oadrCanceledOpt).

Invariants: IDs are ``str`` exactly as received; times are aware UTC datetimes; an opt reason is
always an :class:`OptReason`, either a spec value or an ``x-`` extension token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from ._base import Message
from ._wire import check_unsigned
from .events import OptType  # one ei:OptTypeType for events and opts; exported by events
from .parts import EiResponse, Target

__all__ = [
    "Availability",
    "CancelOpt",
    "CanceledOpt",
    "CreateOpt",
    "CreatedOpt",
    "OptReason",
    "QualifiedEventId",
]

# ei:EiExtensionTokenType is an xs:token matching ``x-\S.*``; being a token, it has no leading,
# trailing or doubled whitespace once the schema has normalised it.
_EXTENSION_TOKEN: Final = re.compile(r"x-\S(?:\S| (?! ))*(?<! )")


class OptReason(StrEnum):
    """ei:OptReasonType: the enumerated reasons, or any ``x-`` extension token.

    The spec lets a VEN coin reasons like ``x-crowdBalancing``. ``OptReason("x-crowdBalancing")``
    returns a member-like value of this class (not cached: peers choose these strings, and an
    ever-growing class table would be theirs to fill). Equality is by value, so
    ``OptReason("x-a") == OptReason("x-a")``; anything else raises ``ValueError``.
    """

    ECONOMIC = "economic"
    EMERGENCY = "emergency"
    MUST_RUN = "mustRun"
    NOT_PARTICIPATING = "notParticipating"
    OUTAGE_RUN_STATUS = "outageRunStatus"
    OVERRIDE_STATUS = "overrideStatus"
    PARTICIPATING = "participating"
    X_SCHEDULE = "x-schedule"

    @classmethod
    def _missing_(cls, value: object) -> OptReason | None:
        if not (isinstance(value, str) and _EXTENSION_TOKEN.fullmatch(value)):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_extension(self) -> bool:
        """True for ``x-`` tokens, including the spec's own ``x-schedule``."""
        return self.value.startswith("x-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Availability:
    """One xcal:available component: available from ``dtstart`` for ``duration``."""

    dtstart: datetime
    duration: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class QualifiedEventId:
    """ei:qualifiedEventID: an event and the modification of it this message refers to."""

    event_id: str
    modification_number: int

    def __post_init__(self) -> None:
        check_unsigned("modificationNumber", self.modification_number)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateOpt(Message):
    """VEN -> VTN: opt ``target`` in or out, by schedule (``vavailability``) or for one event.

    ``vavailability`` None leaves the element out; an empty tuple sends an empty schedule.
    ``device_class`` lists the endDeviceAsset mrids of oadrDeviceClass (the only part 2.0b uses).
    """

    opt_id: str
    opt_type: OptType
    opt_reason: OptReason
    market_context: str | None = None
    ven_id: str
    vavailability: tuple[Availability, ...] | None = None
    created_date_time: datetime
    request_id: str
    qualified_event_id: QualifiedEventId | None = None
    target: Target = field(default_factory=Target)
    device_class: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedOpt(Message):
    """VTN -> VEN: acknowledges :class:`CreateOpt` ``opt_id``."""

    response: EiResponse
    opt_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOpt(Message):
    """VEN -> VTN: withdraw the opt schedule ``opt_id``."""

    request_id: str
    opt_id: str
    ven_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CanceledOpt(Message):
    """VTN -> VEN: acknowledges :class:`CancelOpt`."""

    response: EiResponse
    opt_id: str | None = None
