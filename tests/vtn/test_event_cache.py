"""The event service's cache (vtn.services._event_cache): a stored event is decoded once per
version and payload, VENs addressed alike share one variant, a VEN's own variant is its own, and
every table is bounded. No storage: the cache works on records and codecs only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import schemas
from schemas import (
    ActivePeriod,
    DistributeEvent,
    Event,
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    SignalType,
    Target,
)
from vtn.services._event_cache import EventCache
from vtn.storage import EventRecord, TargetKind, TargetRef
from vtn.storage import EventStatus as Stored

T0 = datetime(2026, 12, 6, 10, tzinfo=UTC)


def _event(event_id: str, *, value: float = 1.0) -> Event:
    return Event(
        descriptor=EventDescriptor(event_id=event_id, modification_number=0,
                                   market_context="https://tso.example", created_date_time=T0,
                                   event_status=EventStatus.FAR),
        active_period=ActivePeriod(dtstart=T0, duration=timedelta(minutes=15)),
        signals=(EventSignal(intervals=(EventInterval(values=(value,)),), signal_name="SIMPLE",
                             signal_type=SignalType.LEVEL, signal_id="s"),),
        target=Target(group_ids=("g1", "g2"), ven_ids=("v1", "v2")))


def _record(codec: schemas.Codec, event: Event) -> EventRecord:
    payload = codec.encode(DistributeEvent(request_id="", vtn_id="VTN", events=(event,)))
    return EventRecord(event_id=event.event_id, modification_number=event.modification_number,
                       status=Stored.FAR, payload=payload, updated_at=T0)


def _cache(kept: int = 256) -> tuple[EventCache, schemas.Codec]:
    store = schemas.Codec()
    return EventCache(store, schemas.Codec().event_cache, kept=kept), store


def test_held_answers_a_remembered_versions_payload_at_its_updated_at_only() -> None:
    """What storage may take instead of reading a payload (vtn.storage.backend.Held)."""
    cache, store = _cache()
    record = _record(store, _event("e1"))
    assert cache.held("e1", 0, T0) is None
    cache.decoded(record)
    assert cache.held("e1", 0, T0) is record.payload
    assert cache.held("e1", 0, T0 + timedelta(seconds=1)) is None  # published again since
    assert cache.held("e1", 1, T0) is None
    published = replace(record, modification_number=1, updated_at=T0 + timedelta(minutes=1))
    cache.remember(published, _event("e1"))
    assert cache.held("e1", 1, published.updated_at) is published.payload


def test_a_stored_event_is_decoded_once_per_payload() -> None:
    cache, store = _cache()
    record = _record(store, _event("e1"))
    decoded = cache.decoded(record)
    assert decoded == _event("e1")
    assert cache.decoded(record) is decoded
    # other bytes under the same (eventID, modificationNumber) are decoded, never mistaken
    other = replace(record, payload=_record(store, _event("e1", value=2.0)).payload)
    assert cache.decoded(other) == _event("e1", value=2.0)


def test_vens_addressed_alike_share_a_variant_and_a_ven_s_own_is_its_own() -> None:
    cache, _ = _cache()
    event = _event("e1")
    group = Target(group_ids=("g1",))
    shared = cache.addressed(event, group, personal=False)
    assert shared == replace(event, target=group)
    assert cache.addressed(event, group, personal=False) is shared
    own = Target(ven_ids=("v1",))
    personal = cache.addressed(event, own, personal=True)
    assert personal == replace(event, target=own)
    assert cache.addressed(event, own, personal=True) is not personal
    active = cache.with_status(shared, EventStatus.ACTIVE)
    assert active is cache.with_status(shared, EventStatus.ACTIVE)
    assert active.descriptor.event_status is EventStatus.ACTIVE


def test_the_tables_are_bounded_and_a_dropped_entry_is_derived_again_alike() -> None:
    cache, store = _cache(kept=2)
    records = [_record(store, _event(f"e{n}")) for n in range(3)]
    first = cache.decoded(records[0])
    cache.decoded(records[1])
    cache.decoded(records[2])  # drops e0's
    again = cache.decoded(records[0])
    assert again is not first and again == first
    event, group = _event("e1"), Target(group_ids=("g1",))
    shared = cache.addressed(event, group, personal=False)
    for other in ("g2", "g3"):
        cache.addressed(event, Target(group_ids=(other,)), personal=False)
    assert cache.addressed(event, group, personal=False) is not shared


def test_a_target_is_narrowed_to_the_entries_named_in_its_own_order() -> None:
    cache, _ = _cache()
    whole = Target(group_ids=("g2", "g1", "g2"), group_names=("g1", "north"),
                   resource_ids=("r1",), ven_ids=tuple(f"v{n}" for n in range(1000)),
                   party_ids=("p1",))
    refs = (TargetRef(kind=TargetKind.VEN, value="v7"), TargetRef(kind=TargetKind.GROUP,
                                                                  value="g2"),
            TargetRef(kind=TargetKind.GROUP, value="g1"),
            TargetRef(kind=TargetKind.GROUP, value="g1"),  # named twice: still kept once each
            TargetRef(kind=TargetKind.PARTY, value="nobody"))
    narrowed = cache.narrowed(whole, refs)
    # a group's ID and name are both of kind GROUP; order and repeats are the target's own
    assert narrowed == Target(group_ids=("g2", "g1", "g2"), group_names=("g1",),
                              ven_ids=("v7",))
    assert cache.narrowed(whole, ()) == Target()
    # asked again (the second VEN of a fan-out), from what was learned of the same target
    assert cache.narrowed(whole, (TargetRef(kind=TargetKind.VEN, value="v999"),)) == Target(
        ven_ids=("v999",))
    # an equal but distinct target is narrowed by its own values, never by another's entry
    other = replace(whole, ven_ids=("v999", "v7"))
    assert cache.narrowed(other, refs[:1]) == Target(ven_ids=("v7",))


class _CountedScans(tuple[str, ...]):
    """A target's venIDs that count how often they are scanned whole."""

    scans = 0

    def __iter__(self) -> Iterator[str]:
        _CountedScans.scans += 1
        return super().__iter__()


def test_a_target_is_scanned_once_however_many_vens_it_is_narrowed_for() -> None:
    cache, _ = _cache()
    whole = Target(ven_ids=_CountedScans(f"v{n}" for n in range(500)))
    _CountedScans.scans = 0
    for n in range(500):
        ref = TargetRef(kind=TargetKind.VEN, value=f"v{n}")
        assert cache.narrowed(whole, (ref,)) == Target(ven_ids=(f"v{n}",))
    assert _CountedScans.scans == 1  # where each venID sits is learned once, then looked up
