"""The storage backend: the repositories' hot paths, one typed interface, an implementation
per database engine, chosen once when storage opens (:func:`vtn.storage.open_storage`).

- :class:`vtn.storage._sqlite_backend.SqliteBackend`: plain ``sqlite3`` SQL on this process's
  database threads (:meth:`vtn.storage._engine.Database.run_sqlite`).
- :class:`vtn.storage._postgres_backend.PostgresBackend`: SQL sent by asyncpg on a fixed-size
  pool of its own, arrays bound as parameters (one statement for a batch of report points).

The repositories (:mod:`vtn.storage.events` and its siblings) hold one :class:`Backend` and
call it; what is not on a hot path stays in SQLAlchemy Core statements that both engines run.

Invariants every backend keeps (the contract tests in ``tests/vtn/test_backend_contract.py``
run each against a real SQLite file and a real PostgreSQL database):
- every call is one transaction, and returns after it committed;
- a unique or foreign-key violation is :class:`~vtn.storage.records.StorageConflict` and a
  naive datetime a ``ValueError``; nothing of the call is stored then;
- the same calls store the same rows and answer the same records on either engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple, NoReturn, Protocol

from .records import (
    Delivery,
    EventAck,
    EventRecord,
    EventStatus,
    OutboxItem,
    PollDelivery,
    ReportData,
    VenRegistration,
)

__all__ = ["EVENT_KIND", "Backend", "CheckNewer", "Distribution", "Enrolment", "Held", "Queue",
           "Queued", "Refuse", "StoredEvent", "TargetQuery", "answers_current"]

EVENT_KIND: Final = "oadrDistributeEvent"  # the outbox kind of "this VEN's event list changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue:
    """The outbox rows an event write adds: one per VEN, all with this payload and dedup key."""

    ven_ids: tuple[str, ...]
    payload: bytes
    dedup_key: str


#: The payload the caller already holds for an event version, named by (eventID,
#: modificationNumber, updated_at), or None. It must be the bytes stored for that version: a
#: publish stamps updated_at from the clock, so a version purged and published again with other
#: content carries another updated_at.
Held = Callable[[str, int, datetime], bytes | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """One VEN's current event list, to be read and recorded as delivered in one transaction:
    the events addressed to ``ven_id`` (no targets, or a target that is its venID or one of its
    memberships) whose stored status is in ``statuses``, minus those the clock completed by
    ``now`` (``ends_at`` passed; a cancelled event stays cancelled) and cancelled ones last
    changed before ``cancelled_since``; ordered by event_id, at most ``limit``. ``outbox_seq``
    names the outbox item that asked for the list, marked delivered with it. A backend may take
    a listed event's payload from ``held`` instead of reading it (SQLite does: a payload names
    every VEN an event targets, tens of kilobytes that each VEN's poll read again)."""

    ven_id: str
    statuses: tuple[EventStatus, ...]
    now: datetime
    cancelled_since: datetime
    limit: int | None = None
    outbox_seq: int | None = None
    held: Held | None = None


class Queued(NamedTuple):
    """One outbox item for a single VEN; a ``dedup_key`` already queued for it is skipped."""

    kind: str
    payload: bytes
    dedup_key: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment:
    """What one oadrCreatePartyRegistration writes and reads, in one transaction: the
    registration stored by fingerprint (a known certificate's row updated in place, its venID
    and created_at kept), each of ``queued`` added to its VEN's outbox, and, unless ``live`` is
    empty, the events in those statuses not ended at ``now`` that already target the VEN (its
    venID or a membership it holds), an event-list item (:data:`EVENT_KIND`) queued when any do."""

    registration: VenRegistration
    queued: tuple[Queued, ...] = ()
    live: tuple[EventStatus, ...] = ()
    now: datetime


# An eiTarget as (venIDs named, (kind, value) memberships).
TargetQuery = tuple[list[str], list[tuple[str, str]]]

class StoredEvent(NamedTuple):
    """What an event write compares a new version with."""

    modification_number: int
    payload: bytes


# Raises why an oadrCreatedEvent's acks were refused, given the versions they were checked
# against (eventID -> current modificationNumber of the events delivered to the VEN).
Refuse = Callable[[dict[str, int]], NoReturn]


def answers_current(acks: Iterable[EventAck], delivered: Mapping[str, int]) -> bool:
    """Whether each ack names an event of ``delivered`` (eventID -> its current
    modificationNumber, of the events delivered to the VEN) at that modificationNumber: the
    only acks :meth:`Backend.record_answer` stores."""
    return all(delivered.get(ack.event_id) == ack.modification_number for ack in acks)


# Whether ``event`` replaces the stored one; raises StaleModification / StorageConflict as
# EventRepository.put documents.
CheckNewer = Callable[[EventRecord, StoredEvent], bool]


class Backend(Protocol):
    """The hot paths of the repositories on one database engine."""

    async def nonce_seen(self, nonce: str, timestamp: datetime) -> bool:
        """Record a ReplayProtect nonce; True if it was recorded before."""
        ...

    async def poll_lookup(self, fingerprint: str) -> tuple[VenRegistration | None, bool]:
        """The certificate's registration and whether anything is undelivered for its VEN."""
        ...

    async def resolve_targets(
        self, queries: Sequence[TargetQuery]
    ) -> tuple[tuple[str, ...], ...]:
        """For each eiTarget, the active VENs it addresses, by venID."""
        ...

    async def register(self, enrolment: Enrolment) -> tuple[VenRegistration, tuple[str, ...]]:
        """:class:`Enrolment`: the stored registration and the eventIDs found targeting it."""
        ...

    async def put_events(self, items: Sequence[tuple[EventRecord, Queue]],
                         check_newer: CheckNewer) -> tuple[bool, ...]:
        """Store each event with its targets and queue its outbox rows; whether it changed."""
        ...

    async def enqueue(self, ven_ids: tuple[str, ...], payload: bytes, kind: str,
                      dedup_key: str | None, at: datetime) -> int:
        """Queue ``payload`` for each VEN (a dedup key already queued is skipped); rows added."""
        ...

    async def distribute(self, query: Distribution) -> tuple[EventRecord, ...]:
        """The VEN's event list recorded as delivered (with ``query.outbox_seq``)."""
        ...

    async def deliver_next(self, event_list: Distribution) -> tuple[PollDelivery | None, bool]:
        """The VEN's oldest waiting item marked delivered (with its event list when it is an
        event item), and whether anything is still undelivered for the VEN afterwards."""
        ...

    async def claim(self, ven_id: str, now: datetime, until: datetime,
                    supersede: str | None) -> OutboxItem | None:
        """Lease the VEN's oldest claimable item until ``until``."""
        ...

    async def claim_next(self, event_list: Distribution,
                         until: datetime) -> PollDelivery | None:
        """:meth:`deliver_next` with the item leased until ``until`` instead of marked (the
        VEN's other event items marked with it, as :meth:`claim` with ``supersede`` does), in one
        transaction; the item's ``more_waiting`` as :meth:`claim` sets it."""
        ...

    async def mark_delivered(self, seq: int, at: datetime) -> str | None:
        """Mark an item delivered; its venID, or None if it was already (or never existed)."""
        ...

    async def record_acks(self, acks: tuple[EventAck, ...]) -> tuple[Delivery, ...]:
        """Store the acks (never over one for a newer modificationNumber; a repeat of the stored
        answer writes nothing); what is stored."""
        ...

    async def record_answer(self, ven_id: str, fingerprint: str, acks: tuple[EventAck, ...],
                            refuse: Refuse, event_ids: list[str]) -> tuple[Delivery, ...] | None:
        """The acks of one oadrCreatedEvent, if ``fingerprint`` is ``ven_id``'s active
        registration (else None) and :func:`answers_current` holds for the delivered versions
        of ``event_ids``; when it does not, nothing is stored and ``refuse`` raises with them."""
        ...

    async def delivered_versions(self, ven_id: str, event_ids: list[str]) -> dict[str, int]:
        """Of ``event_ids``, those delivered to ``ven_id``: their current modificationNumber."""
        ...

    async def delivered_to(self, event_ids: list[str]) -> dict[str, tuple[str, ...]]:
        """eventID -> the venIDs it was delivered to, in venID order."""
        ...

    async def store_update(self, ven_id: str, reports: Sequence[ReportData], wanted: list[str],
                           fingerprint: str | None) -> tuple[int, tuple[str, ...]] | None:
        """One oadrUpdateReport's points (first value wins) and which of ``wanted`` requests
        are cancelled; None, nothing stored, if ``fingerprint`` is not the active one."""
        ...

    async def close(self) -> None:
        """Release what the backend holds of its own."""
        ...
