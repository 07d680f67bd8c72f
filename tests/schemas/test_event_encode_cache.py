"""A codec's EventEncodeCache (schemas._event_cache): a fan-out encodes one Event object for
hundreds of VENs, so its oadrEvent is written once and its text reused after (threads share
it); an event given each VEN's own target (EventEncodeCache.with_target) is the untargeted text
around that target. Either must be indistinguishable from a fresh build, and the Event itself
stays plain data."""

from __future__ import annotations

import copy
import pickle
import threading
from dataclasses import fields, replace

from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import DistributeEvent, EiResponse, Event, EventEncodeCache, EventStatus, Target

from .strategies import cbp_activation, events, ids, targets
from .xsd_oracle import assert_xsd_valid


def _fresh(event: Event) -> Event:
    """An equal Event object no cache has seen."""
    return replace(event)


def _distribute(request_id: str, *evs: Event) -> DistributeEvent:
    return DistributeEvent(request_id=request_id, vtn_id="VTN-1", events=evs,
                           response=EiResponse(request_id=""))


@settings(deadline=None, max_examples=40)
@given(st.lists(events, min_size=1, max_size=2).map(tuple), ids, ids)
def test_a_reused_build_is_the_fresh_encoding(evs: tuple[Event, ...], first: str,
                                             second: str) -> None:
    codec = schemas.Codec()
    built = codec.encode(_distribute(first, *evs))
    # The same Event objects again, in another message: the events are copies of the builds.
    again = codec.encode(_distribute(second, *evs))
    assert again == codec.encode(_distribute(second, *(_fresh(e) for e in evs)))
    assert built == codec.encode(_distribute(first, *(_fresh(e) for e in evs)))
    assert_xsd_valid(again)
    decoded = codec.decode(again)
    assert isinstance(decoded, DistributeEvent)
    assert decoded.request_id == second and decoded.events == evs


@settings(deadline=None, max_examples=40)
@given(events, st.lists(targets, min_size=1, max_size=3), st.sampled_from(EventStatus))
def test_a_retargeted_event_encodes_as_a_fresh_one(event: Event, addressed: list[Target],
                                                   status: EventStatus) -> None:
    codec = schemas.Codec()
    cache = codec.event_cache
    for target in addressed:  # the first builds the untargeted form, the others copy it
        for variant in (cache.with_target(event, target),
                        cache.with_status(cache.with_target(event, target), status)):
            assert variant == replace(event, target=target, descriptor=replace(
                event.descriptor, event_status=variant.descriptor.event_status))
            assert codec.encode(_distribute("r", variant)) == codec.encode(
                _distribute("r", _fresh(variant)))
    assert cache.with_target(event, event.target) is event


def test_an_event_in_two_positions_and_another_thread_encodes_alike() -> None:
    event = cbp_activation(1.0, 2.0)
    other = replace(cbp_activation(3.0), descriptor=replace(event.descriptor, event_id="000124"))
    codec = schemas.Codec()
    expected = codec.encode(_distribute("r1", _fresh(event), _fresh(other), _fresh(event)))
    assert codec.encode(_distribute("r1", event, other, event)) == expected
    assert codec.encode(_distribute("r1", event, other, event)) == expected
    from_thread: list[bytes] = []
    worker = threading.Thread(target=lambda: from_thread.extend(
        c.encode(_distribute("r1", event, other, event)) for c in (schemas.Codec(), codec)))
    worker.start()
    worker.join(timeout=60)
    assert from_thread == [expected, expected]


def test_with_status_returns_one_object_per_status_and_the_event_stays_plain_data() -> None:
    event = cbp_activation(1.0)  # NEAR
    codec = schemas.Codec()
    cache = codec.event_cache
    assert cache.with_status(event, EventStatus.NEAR) is event
    active = cache.with_status(event, EventStatus.ACTIVE)
    assert active is cache.with_status(event, EventStatus.ACTIVE)
    assert active == replace(event, descriptor=replace(event.descriptor,
                                                       event_status=EventStatus.ACTIVE))
    assert active.descriptor.event_status is EventStatus.ACTIVE
    assert event.descriptor.event_status is EventStatus.NEAR
    assert EventEncodeCache().with_status(event, EventStatus.ACTIVE) is not active  # per cache
    codec.encode(_distribute("r", event, active))  # builds both
    assert [f.name for f in fields(Event)] == ["descriptor", "active_period", "signals",
                                               "target", "baseline", "response_required"]
    assert Event.__slots__ == tuple(f.name for f in fields(Event))
    twin = _fresh(event)
    assert twin == event and hash(twin) == hash(event) and repr(twin) == repr(event)


def test_an_encoded_event_pickles_and_copies_as_plain_data() -> None:
    event = cbp_activation(1.0, 2.0)
    codec = schemas.Codec()
    active = codec.event_cache.with_status
    wire = codec.encode(_distribute("r", event, active(event, EventStatus.ACTIVE)))
    for twin in (pickle.loads(pickle.dumps(event)), copy.deepcopy(event), copy.copy(event)):
        assert twin == event
        assert codec.encode(_distribute("r", twin, active(twin, EventStatus.ACTIVE))) == wire


def test_a_changed_event_is_encoded_afresh() -> None:
    event = cbp_activation(1.0)
    codec = schemas.Codec()
    codec.encode(_distribute("r", event))
    moved = replace(event, target=Target(ven_ids=("0043",)))  # replace: a new object
    decoded = codec.decode(codec.encode(_distribute("r", moved)))
    assert isinstance(decoded, DistributeEvent)
    assert decoded.events[0].target == Target(ven_ids=("0043",))


def test_equal_events_that_spell_differently_never_share_a_build() -> None:
    # 0.0 == -0.0, so the two events are equal and hash alike, yet their XML differs: a cache
    # keyed by value would send one's bytes for the other.
    positive, negative = cbp_activation(0.0), cbp_activation(-0.0)
    assert positive == negative and hash(positive) == hash(negative)
    codec = schemas.Codec()
    codec.encode(_distribute("r", positive))
    assert codec.encode(_distribute("r", negative)) == schemas.Codec().encode(
        _distribute("r", negative))
    assert b"-0.0" in codec.encode(_distribute("r", negative))


def test_the_cache_keeps_at_most_kept_entries_and_a_dropped_one_is_rebuilt_alike() -> None:
    cache = EventEncodeCache(kept=2)
    first, second, third = (cbp_activation(float(n)) for n in range(3))
    kept = cache.with_status(first, EventStatus.ACTIVE)
    assert cache.with_status(first, EventStatus.ACTIVE) is kept
    cache.with_status(second, EventStatus.ACTIVE)
    cache.with_status(third, EventStatus.ACTIVE)  # the oldest, first's, is dropped
    again = cache.with_status(first, EventStatus.ACTIVE)
    assert again is not kept and again == kept
    codec = schemas.Codec(event_cache=cache)
    wire = schemas.Codec().encode(_distribute("r", first, second, third, first))
    for _ in range(2):
        assert codec.encode(_distribute("r", first, second, third, first)) == wire
