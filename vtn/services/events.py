"""EiEvent (OpenADR 2.0b profile 8.2): publishing events to VENs, oadrRequestEvent, and acks.

Model: the stored :class:`~vtn.storage.EventRecord` keeps the event as last published (encoded as a
one-event oadrDistributeEvent); the outbox only says "this VEN's event list changed". Whenever a VEN
is sent events it gets its *whole* current list, freshly built, because 2.0b treats an event missing
from the list as cancelled (implied cancel) -- so a VEN dropped from an event's targets learns it.

Invariants:
- modificationNumber rises by one on every change the VTN makes (modify, cancel); status changes
  that follow from the clock (far -> active -> completed) do not raise it (profile 8.2).
- A cancelled event is final: the VENs were told it is cancelled, so a modify of it raises
  :class:`EventCancelled` and a second cancel changes nothing (no new modificationNumber, nothing
  queued).
- A completed event is final too: once the injected clock is at or past the end of its active
  period, a modify or a cancel of it raises :class:`EventCompleted` (its setpoints are history;
  2.0b has no way to change what a VEN already did); a batch cancel (:func:`cancel_events`)
  leaves it as it is.
- An ack (oadrCreatedEvent) naming an older modificationNumber than the current one is refused with
  450 (out of sequence) and nothing of that message is stored.
- A VEN may ack only events it was delivered; any other eventID is 452, as if unknown.
- Targeting is re-evaluated when a VEN's memberships change (:func:`set_memberships`) or it begins
  a registration (:func:`vtn.services.registration.on_create`, in the registration's own
  transaction): if live events join or leave its list, the list is queued for it, as a publish
  would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import NoReturn

from schemas import (
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    Event,
    EventResponse,
    EventStatus,
    InvalidId,
    NotRegistered,
    OutOfSequence,
    RequestEvent,
    Response,
    ResponseRequired,
    Target,
    new_id,
)
from vtn.errors import VtnError
from vtn.storage import EventAck, EventRecord, OptType, TargetKind, TargetRef
from vtn.storage import EventStatus as StoredStatus
from vtn.storage.events import EVENT_KIND, Distribution
from vtn.transport import Peer

from ._context import ServiceContext, require_ven
from .hooks import call_hook

__all__ = [
    "EVENT_KIND",
    "LIVE",
    "EventCancelled",
    "EventCompleted",
    "EventFinal",
    "cancel_event",
    "cancel_events",
    "distribute_for",
    "event_list",
    "get_event",
    "list_message",
    "modify_event",
    "on_created_event",
    "on_request_event",
    "publish_event",
    "publish_events",
    "refuse_ended",
    "set_memberships",
]

#: events encoded between yields to the loop while a batch is published
_ENCODED_BETWEEN_YIELDS = 50

#: the stored statuses of events still on a VEN's list (a cancelled one until it is told)
LIVE = (StoredStatus.NONE, StoredStatus.FAR, StoredStatus.NEAR, StoredStatus.ACTIVE,
        StoredStatus.CANCELLED)


class EventFinal(VtnError):
    """A change to an event that is over, cancelled or completed (the admin API answers 409)."""


class EventCancelled(EventFinal):
    """A modify of an event already cancelled: the VENs were told it is cancelled, so it stays so
    (the admin API answers 409)."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id!r} is cancelled; a cancelled event cannot be modified "
                         "(publish a new event instead)")
        self.event_id = event_id


class EventCompleted(EventFinal):
    """A modify or cancel of an event whose active period has ended (the admin API answers
    409)."""

    def __init__(self, event_id: str, ended: datetime) -> None:
        super().__init__(f"event {event_id!r} completed at {ended.isoformat()}; a completed event "
                         "cannot be modified or cancelled (publish a new event instead)")
        self.event_id = event_id


def target_refs(target: Target) -> tuple[TargetRef, ...]:
    pairs = (
        [(TargetKind.VEN, v) for v in target.ven_ids]
        + [(TargetKind.GROUP, g) for g in (*target.group_ids, *target.group_names)]
        + [(TargetKind.RESOURCE, r) for r in target.resource_ids]
        + [(TargetKind.PARTY, p) for p in target.party_ids]
    )
    return tuple(TargetRef(kind=k, value=v) for k, v in dict.fromkeys(pairs))


def _ends_at(event: Event) -> datetime | None:
    period = event.active_period
    return None if not period.duration else period.dtstart + period.duration  # PT0S: open-ended


def _status_at(event: Event, now: datetime) -> EventStatus:
    """The clock-driven status; cancelled stays cancelled."""
    if event.descriptor.event_status is EventStatus.CANCELLED:
        return EventStatus.CANCELLED
    ends = _ends_at(event)
    if ends is not None and now >= ends:
        return EventStatus.COMPLETED
    return EventStatus.ACTIVE if now >= event.active_period.dtstart else EventStatus.FAR


async def get_event(ctx: ServiceContext, event_id: str) -> Event | None:
    record = await ctx.storage.events.get(event_id)
    return None if record is None else ctx.event_cache.decoded(record)


async def publish_event(ctx: ServiceContext, event: Event) -> tuple[str, ...]:
    """Store ``event`` (new, or a higher modificationNumber) and queue the change for every VEN it
    targets now or was delivered to before. Returns the VENs it now targets."""
    (targeted,) = await publish_events(ctx, (event,))
    return targeted


async def publish_events(ctx: ServiceContext,
                         events: Sequence[Event]) -> tuple[tuple[str, ...], ...]:
    """:func:`publish_event` for many events with one read and one write transaction (an
    aggregator dispatching an activation publishes one event per device); all are stored or,
    if one is stale or conflicts, none. Returns the VENs each event now targets."""
    refs = [target_refs(event.target) for event in events]
    targeted = await ctx.storage.vens.resolve_targets_many(refs)
    earlier = await ctx.storage.events.delivered_to_many(event.event_id for event in events)
    now = ctx.clock()
    items = []
    for n, (event, event_refs, vens) in enumerate(zip(events, refs, targeted, strict=True)):
        if n and n % _ENCODED_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)  # let requests in while a large batch is encoded
        record = EventRecord(
            event_id=event.event_id,
            modification_number=event.modification_number,
            status=StoredStatus(_status_at(event, now).value),
            market_context=event.descriptor.market_context,
            starts_at=event.active_period.dtstart,
            ends_at=_ends_at(event),
            response_required=event.response_required is ResponseRequired.ALWAYS,
            targets=event_refs,
            payload=ctx.encode_for_queue(DistributeEvent(request_id="", vtn_id=ctx.vtn_id,
                                                         events=(event,))),
            updated_at=now,
        )
        items.append((record, tuple(dict.fromkeys((*vens, *earlier.get(event.event_id, ()))))))
    # The queued item only says "your list changed" (the poll builds the list afresh), so it
    # carries no payload: a copy per VEN made publishing to 500 VENs write ~8 MB.
    await ctx.storage.events.put_many(items, queued=b"")
    for (record, _), event in zip(items, events, strict=True):
        ctx.event_cache.remember(record, event)  # sent next: no parse of what was just encoded
    ctx.on_enqueued(tuple(dict.fromkeys(v for _, notify in items for v in notify)))
    return targeted


async def modify_event(ctx: ServiceContext, event: Event) -> tuple[str, ...]:
    """Publish ``event`` as the next modification of the stored one (modificationNumber + 1).
    Raises :class:`EventCancelled` if the stored one is cancelled, :class:`EventCompleted` if
    its active period ended at or before ``ctx.clock()``, and ValueError if ``event``'s would
    have (completed at once, it would drop from its VENs' lists: a cancel that says nothing)."""
    current = await ctx.storage.events.get(event.event_id)
    if current is None:
        raise LookupError(f"no event {event.event_id!r}")
    if current.status is StoredStatus.CANCELLED:
        raise EventCancelled(event.event_id)
    ended = _completed_at(ctx, current)
    if ended is not None:
        raise EventCompleted(event.event_id, ended)
    refuse_ended(ctx, event, "its VENs would drop it (cancel it instead)")
    return await publish_event(ctx, _next_version(ctx, event, current))


def refuse_ended(ctx: ServiceContext, event: Event, consequence: str) -> None:
    """ValueError naming ``consequence`` if ``event``'s active period ends at or before
    ``ctx.clock()`` (it would be completed at once); an open-ended one (PT0S) never does."""
    ends = _ends_at(event)
    if ends is not None and ends <= ctx.clock():
        raise ValueError(f"event {event.event_id!r} ended at {ends.isoformat()}, before now: "
                         f"{consequence}")


def _completed_at(ctx: ServiceContext, record: EventRecord) -> datetime | None:
    """When ``record``'s active period ended, if at or before ``ctx.clock()``; else None."""
    if record.ends_at is not None and ctx.clock() >= record.ends_at:
        return record.ends_at
    return None


async def cancel_event(ctx: ServiceContext, event_id: str) -> tuple[str, ...]:
    """Publish the stored event with status cancelled (an explicit cancel, profile 8.2). Returns
    the VENs it targets; an event cancelled before is left as it is and ``()`` returned. Raises
    :class:`EventCompleted` if its active period ended at or before ``ctx.clock()``."""
    (targeted,) = await _cancel(ctx, (event_id,), refuse_completed=True)
    return targeted


async def cancel_events(ctx: ServiceContext,
                        event_ids: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """:func:`cancel_event` for many events, published together (:func:`publish_events`); those
    cancelled before or completed are left as they are (their entry is ``()``): an aggregator
    releasing its device events is not refused for the ones already over."""
    return await _cancel(ctx, event_ids, refuse_completed=False)


async def _cancel(ctx: ServiceContext, event_ids: Sequence[str], *,
                  refuse_completed: bool) -> tuple[tuple[str, ...], ...]:
    records = await ctx.storage.events.get_many(event_ids)
    missing = [event_id for event_id in event_ids if event_id not in records]
    if missing:
        raise LookupError(f"no event {missing[0]!r}")
    to_cancel = []
    for event_id in event_ids:
        record = records[event_id]
        if record.status is StoredStatus.CANCELLED:
            continue
        ended = _completed_at(ctx, record)
        if ended is not None:
            if refuse_completed:
                raise EventCompleted(event_id, ended)
            continue
        to_cancel.append(event_id)
    cancelled = []
    for event_id in to_cancel:
        event = ctx.event_cache.decoded(records[event_id])
        event = replace(event, descriptor=replace(event.descriptor,
                                                  event_status=EventStatus.CANCELLED))
        cancelled.append(_next_version(ctx, event, records[event_id]))
    published = await publish_events(ctx, cancelled) if cancelled else ()
    targeted = dict(zip(to_cancel, published, strict=True))
    return tuple(targeted.get(event_id, ()) for event_id in event_ids)


async def set_memberships(ctx: ServiceContext, ven_id: str,
                          members: Iterable[TargetRef]) -> tuple[str, ...]:
    """Replace the VEN's group/resource/party memberships. When live events target one it
    gained or lost, its event list changed and is queued for it: the events of a group it joined
    arrive, those of a group it left go (implied cancel). Returns those events' IDs."""
    wanted = frozenset(members)
    before = frozenset(await ctx.storage.vens.memberships(ven_id))
    await ctx.storage.vens.set_memberships(ven_id, wanted)
    return await _list_changed(ctx, ven_id, before ^ wanted)


async def _list_changed(ctx: ServiceContext, ven_id: str,
                        refs: Collection[TargetRef]) -> tuple[str, ...]:
    now = ctx.clock()
    affected = await ctx.storage.events.targeting(refs, statuses=LIVE, now=now)
    await _changed(ctx, ven_id, affected, now)
    return affected


async def _changed(ctx: ServiceContext, ven_id: str, affected: tuple[str, ...],
                   now: datetime) -> None:
    if affected:
        # like a publish: the queued item only says "your list changed"
        await ctx.storage.outbox.enqueue((ven_id,), b"", EVENT_KIND, at=now)
        ctx.on_enqueued((ven_id,))


def _next_version(ctx: ServiceContext, event: Event, current: EventRecord) -> Event:
    """``event`` as the modification after the stored ``current`` (modificationNumber + 1)."""
    return replace(event, descriptor=replace(
        event.descriptor, modification_number=current.modification_number + 1,
        modification_date_time=ctx.clock()))


def _as_sent(ctx: ServiceContext, record: EventRecord, now: datetime) -> Event:
    """The stored event as this VEN receives it, with its status at ``now``. VENs addressed
    alike (untargeted, or through the same group) share one Event object per (event, version,
    status, target), so its XML is built once (vtn.services._event_cache). The status comes
    first, so each VEN's own variant is one copy of an object all VENs share."""
    event = ctx.event_cache.decoded(record)
    return _addressing(ctx, ctx.event_cache.with_status(event, _status_at(event, now)),
                       record.targets)


def _addressing(ctx: ServiceContext, event: Event, refs: tuple[TargetRef, ...]) -> Event:
    """``event`` with its eiTarget cut down to ``refs``, the entries that address this VEN. The
    other entries name other VENs (their venIDs are certificate fingerprints) and are none of
    this one's business (docs/architecture.md#privacy-design); an untargeted event goes out as
    stored."""
    whole = event.target
    target = ctx.event_cache.narrowed(whole, refs)
    if target == whole:
        return event
    # with this VEN's own venID nobody else receives the same object; its XML is still the
    # stored event's, retargeted
    return ctx.event_cache.addressed(event, target, personal=bool(target.ven_ids))


def event_list(ctx: ServiceContext, ven_id: str, now: datetime,
               reply_limit: int | None = None) -> Distribution:
    """The VEN's whole current event list at ``now``, as storage chooses it: addressed to the
    VEN, live, not completed, cancelled ones within retention (at most ``reply_limit``); the
    payloads the event cache holds need not be read again."""
    return Distribution(ven_id=ven_id, statuses=LIVE, now=now,
                        cancelled_since=now - ctx.cancelled_event_retention,
                        limit=reply_limit or None, held=ctx.event_cache.held)


def list_message(ctx: ServiceContext, records: tuple[EventRecord, ...], now: datetime,
                 request_id: str) -> DistributeEvent:
    """The oadrDistributeEvent carrying an :func:`event_list` read at ``now``."""
    events = tuple(_as_sent(ctx, record, now) for record in records)
    return DistributeEvent(request_id=request_id or new_id(), vtn_id=ctx.vtn_id, events=events,
                           response=EiResponse(request_id=request_id))


async def distribute_for(ctx: ServiceContext, ven_id: str, request_id: str,
                         reply_limit: int | None = None) -> DistributeEvent:
    """The VEN's whole current event list, chosen and recorded as delivered in one
    transaction."""
    now = ctx.clock()
    records = await ctx.storage.events.distribute(event_list(ctx, ven_id, now, reply_limit))
    return list_message(ctx, records, now, request_id)


async def on_request_event(ctx: ServiceContext, peer: Peer, msg: RequestEvent) -> DistributeEvent:
    """oadrRequestEvent: every active or pending event for this VEN."""
    registration = await require_ven(ctx, peer, msg.ven_id)
    return await distribute_for(ctx, registration.ven_id, msg.request_id, msg.reply_limit)


async def on_created_event(ctx: ServiceContext, peer: Peer, msg: CreatedEvent) -> Response:
    """oadrCreatedEvent: store each optIn/optOut; a stale modificationNumber refuses all (450)."""
    now = ctx.clock()
    # One write transaction: the certificate must be the venID's active registration
    # (require_ven's check: 463, before anything else), then the answers are checked against
    # what was delivered (452/450: nothing stored), then stored.
    stored = await ctx.storage.events.record_answer(
        msg.ven_id,
        (EventAck(event_id=answer.event_id, ven_id=msg.ven_id,
                  modification_number=answer.modification_number,
                  opt_type=OptType(answer.opt_type.value), response_code=answer.code, at=now)
         for answer in msg.event_responses),
        fingerprint=peer.fingerprint,
        refuse=lambda current: _refuse(msg.event_responses, current))
    if stored is None:
        await require_ven(ctx, peer, msg.ven_id)  # raises the precise NotRegistered
        raise NotRegistered("this certificate has no active registration")
    for answer in msg.event_responses:
        await call_hook(ctx.handlers.on_event_response, msg.ven_id, answer)
    return Response(response=EiResponse(request_id=msg.response.request_id), ven_id=msg.ven_id)


def _refuse(answers: Iterable[EventResponse], current: Mapping[str, int]) -> NoReturn:
    """Why storage refused the answers: one does not name an event delivered to the VEN
    (``current``: eventID -> its modificationNumber now) at that modificationNumber."""
    # A VEN answers only events it was sent; another VEN's event reads as unknown (the same
    # 452 and words), so acks cannot be forged onto it nor used to probe which IDs exist.
    for answer in answers:
        number = current.get(answer.event_id)
        if number is None:
            raise InvalidId(f"no event {answer.event_id!r}")
        if answer.modification_number < number:
            raise OutOfSequence(
                f"event {answer.event_id!r}: modificationNumber {answer.modification_number} is"
                f" older than the current {number}")
        if answer.modification_number > number:
            raise InvalidId(f"event {answer.event_id!r} has no modificationNumber "
                            f"{answer.modification_number}")
    raise AssertionError("storage refused answers that name the current versions")
