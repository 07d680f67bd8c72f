"""The storage layer's own value types: what repositories take and return.

ORM rows never leave :mod:`vtn.storage`; callers see these frozen dataclasses instead. They are
deliberately independent of :mod:`schemas` (the message layer evolves on its own): payloads that
must be re-sent are kept as the encoded XML bytes, and enums repeat the OpenADR wire values so a
``schemas`` enum converts by value (``OptType(msg.opt_type.value)``).

Invariants: IDs are ``str`` exactly as received; every ``datetime`` is timezone-aware UTC, in and
out, on SQLite and PostgreSQL alike; durations are ``timedelta``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from vtn.errors import VtnError

__all__ = [
    "Delivery",
    "EventAck",
    "EventRecord",
    "EventStatus",
    "OptSchedule",
    "OptType",
    "OptWindow",
    "OutboxItem",
    "PointRow",
    "PollDelivery",
    "ReportData",
    "ReportDescription",
    "ReportPoint",
    "ReportRequest",
    "ReportRequestStatus",
    "StaleModification",
    "StorageBusy",
    "StorageConflict",
    "StorageError",
    "StorageUnavailable",
    "TargetKind",
    "TargetRef",
    "VenRegistration",
]


class StorageError(VtnError):
    """Root of the storage errors (the tree is drawn in the :mod:`vtn` package docstring)."""


class StorageConflict(StorageError):
    """A unique or foreign key refused the write (e.g. a fingerprint bound to another VEN, an
    unknown ven_id); nothing was written."""


class StorageUnavailable(StorageError):
    """The database could not be reached, refused the connection or lost it, is out of
    resources (disk, connections), or cancelled a statement that ran past the statement timeout;
    nothing of the call was committed."""


class StorageBusy(StorageUnavailable):
    """PostgreSQL did not grant a lock the call waited for within the lock timeout (another
    transaction holds the row): the statement was cancelled and rolled back, nothing of it
    committed; the call may succeed once the lock is released."""


class StaleModification(StorageConflict):
    """An event older than the stored one (a lower modificationNumber); nothing was written."""


class EventStatus(StrEnum):
    """ei:eventStatus wire values (OpenADR 2.0b spec 8.1, EventStatusEnumeratedType)."""

    NONE = "none"
    FAR = "far"
    NEAR = "near"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class OptType(StrEnum):
    """ei:optType wire values (OptTypeType)."""

    OPT_IN = "optIn"
    OPT_OUT = "optOut"


class TargetKind(StrEnum):
    """Which ei:eiTarget member a target value names."""

    VEN = "venID"
    GROUP = "groupID"
    RESOURCE = "resourceID"
    PARTY = "partyID"


class ReportRequestStatus(StrEnum):
    PENDING = "pending"  # sent to the VEN, no oadrCreatedReport yet
    ACTIVE = "active"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the VEN answered oadrCreatedReport with an error code


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRef:
    """One member of an event target or of a VEN's membership: (kind, value)."""

    kind: TargetKind
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VenRegistration:
    """A VEN's registration (oadrCreatePartyRegistration / oadrCreatedPartyRegistration)."""

    ven_id: str
    registration_id: str
    fingerprint: str  # TLS client certificate fingerprint; unique across VENs
    ven_name: str
    profile_name: str = "2.0b"
    transport_name: str = "simpleHttp"
    transport_address: str | None = None
    http_pull_model: bool = True
    report_only: bool = False
    xml_signature: bool = False
    created_at: datetime
    cancelled_at: datetime | None = None

    def __post_init__(self) -> None:
        # The poll index keeps a registration per VEN for as long as it polls: its fingerprint
        # is the one its connection is known by (schemas.identity interns those too) and its
        # profile and transport names are every VEN's, so each is kept once, not per read.
        for name in ("fingerprint", "profile_name", "transport_name"):
            object.__setattr__(self, name, sys.intern(getattr(self, name)))

    @property
    def active(self) -> bool:
        return self.cancelled_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """One event as last distributed: its identity, state and the encoded ei:eiEvent (or whole
    oadrDistributeEvent) the VTN re-sends."""

    event_id: str
    modification_number: int
    status: EventStatus
    market_context: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    response_required: bool = True
    targets: tuple[TargetRef, ...] = ()
    payload: bytes
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EventAck:
    """A VEN's oadrCreatedEvent answer for one event."""

    event_id: str
    ven_id: str
    modification_number: int
    opt_type: OptType
    response_code: int = 200
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """Per-VEN delivery and acknowledgement state of one event."""

    event_id: str
    ven_id: str
    delivered_modification_number: int | None = None
    delivered_at: datetime | None = None
    ack_modification_number: int | None = None
    ack_opt_type: OptType | None = None
    ack_response_code: int | None = None
    ack_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """A payload queued for one VEN. ``seq`` grows monotonically across the whole outbox, so per
    VEN it orders items by enqueue time."""

    seq: int
    ven_id: str
    kind: str
    payload: bytes
    dedup_key: str | None
    enqueued_at: datetime
    more_waiting: bool = False  # set by ``next_for``: more items were queued behind this one
    # the lease this claim holds (``next_for``); None for an item handed out as delivered
    claimed_until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PollDelivery:
    """What a poll hands a VEN: an outbox item, already marked delivered, and, when the item
    says the VEN's event list changed, that list as chosen and recorded delivered with it."""

    item: OutboxItem
    events: tuple[EventRecord, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportDescription:
    """One oadrReport of a VEN's METADATA registration (oadrRegisterReport), kept encoded."""

    ven_id: str
    report_specifier_id: str
    report_name: str
    r_ids: tuple[str, ...] = ()
    payload: bytes
    registered_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRequest:
    """A report subscription the VTN sent to a VEN (oadrCreateReport / oadrReportRequest)."""

    ven_id: str
    report_request_id: str
    report_specifier_id: str
    r_ids: tuple[str, ...] = ()
    granularity: timedelta | None = None
    report_back_duration: timedelta | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    status: ReportRequestStatus = ReportRequestStatus.PENDING
    created_at: datetime
    cancelled_at: datetime | None = None
    # a refused request: the VEN's responseCode and responseDescription
    refusal_code: int | None = None
    refusal_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportPoint:
    """One received interval value. The natural key (ven_id, report_specifier_id,
    report_request_id, r_id, dtstart) makes a VEN's re-send idempotent."""

    ven_id: str
    report_request_id: str
    report_specifier_id: str
    r_id: str
    dtstart: datetime
    duration: timedelta | None = None
    value: float | None = None
    confidence: int | None = None
    accuracy: float | None = None
    data_quality: str | None = None
    received_at: datetime


# One point of a ReportData: r_id, dtstart, duration, value, confidence, accuracy, data_quality.
PointRow = tuple[str, datetime, timedelta | None, float | None, int | None, float | None,
                 str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportData:
    """One received report's points, what they share given once and a :data:`PointRow` each:
    the telemetry hot path makes a tuple per point where a ReportPoint costs ~10x more.
    :meth:`points` spells them out."""

    ven_id: str
    report_request_id: str
    report_specifier_id: str
    received_at: datetime
    rows: tuple[PointRow, ...]

    def points(self) -> list[ReportPoint]:
        return [
            ReportPoint(ven_id=self.ven_id, report_request_id=self.report_request_id,
                        report_specifier_id=self.report_specifier_id, r_id=r_id,
                        dtstart=dtstart, duration=duration, value=value, confidence=confidence,
                        accuracy=accuracy, data_quality=quality, received_at=self.received_at)
            for r_id, dtstart, duration, value, confidence, accuracy, quality in self.rows
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class OptWindow:
    """One availability window of an opt schedule (xcal:vavailability/xcal:available)."""

    starts_at: datetime
    duration: timedelta

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.duration


@dataclass(frozen=True, slots=True, kw_only=True)
class OptSchedule:
    """A VEN's oadrCreateOpt: opt in/out of windows (or of one event), maybe for one resource."""

    ven_id: str
    opt_id: str
    opt_type: OptType
    opt_reason: str
    market_context: str | None = None
    resource_id: str | None = None
    event_id: str | None = None
    windows: tuple[OptWindow, ...] = ()
    created_at: datetime
    cancelled_at: datetime | None = None
