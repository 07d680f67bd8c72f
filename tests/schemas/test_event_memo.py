"""An Event's memo (schemas.events.Event._memo): a fan-out encodes one Event object for hundreds
of VENs, so its oadrEvent is built once per thread and copied after; an event given each VEN's own
target (Event.with_target) is a copy of the untargeted build plus that target. Either must be
indistinguishable from a fresh build, and the memo must never leak into equality or repr."""

from __future__ import annotations

import copy
import pickle
import threading
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import DistributeEvent, EiResponse, Event, EventStatus, Target

from .strategies import ids, targets
from .test_events import _activation, events
from .xsd_oracle import assert_xsd_valid


def _fresh(event: Event) -> Event:
    """An equal Event object with an empty memo."""
    return replace(event)


def _distribute(request_id: str, *evs: Event) -> DistributeEvent:
    return DistributeEvent(request_id=request_id, vtn_id="VTN-1", events=evs,
                           response=EiResponse(request_id=""))


@settings(deadline=None, max_examples=40)
@given(st.lists(events, min_size=1, max_size=2).map(tuple), ids, ids)
def test_memoized_encoding_is_the_fresh_encoding(evs: tuple[Event, ...], first: str,
                                                second: str) -> None:
    codec = schemas.Codec()
    built = codec.encode(_distribute(first, *evs))
    # The same Event objects again, in another message: the events come from the memo.
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
    for target in addressed:  # the first builds the untargeted form, the others copy it
        for variant in (event.with_target(target), event.with_target(target).with_status(status)):
            assert variant == replace(event, target=target).with_status(
                variant.descriptor.event_status)
            assert codec.encode(_distribute("r", variant)) == codec.encode(
                _distribute("r", _fresh(variant)))
    assert event.with_target(event.target) is event


def test_an_event_in_two_positions_and_another_thread_encodes_alike() -> None:
    event = _activation(1.0, 2.0)
    other = replace(_activation(3.0), descriptor=replace(event.descriptor, event_id="000124"))
    codec = schemas.Codec()
    expected = codec.encode(_distribute("r1", _fresh(event), _fresh(other), _fresh(event)))
    assert codec.encode(_distribute("r1", event, other, event)) == expected
    assert codec.encode(_distribute("r1", event, other, event)) == expected
    from_thread: list[bytes] = []
    worker = threading.Thread(
        target=lambda: from_thread.append(schemas.Codec().encode(
            _distribute("r1", event, other, event))))
    worker.start()
    worker.join(timeout=60)
    assert from_thread == [expected]


def test_with_status_returns_one_object_per_status_and_the_memo_stays_private() -> None:
    event = _activation(1.0)  # NEAR
    assert event.with_status(EventStatus.NEAR) is event
    active = event.with_status(EventStatus.ACTIVE)
    assert active is event.with_status(EventStatus.ACTIVE)
    assert active == replace(event, descriptor=replace(event.descriptor,
                                                       event_status=EventStatus.ACTIVE))
    assert active.descriptor.event_status is EventStatus.ACTIVE
    assert event.descriptor.event_status is EventStatus.NEAR
    schemas.Codec().encode(_distribute("r", event, active))  # fills both memos
    twin = _fresh(event)
    assert twin == event and hash(twin) == hash(event) and repr(twin) == repr(event)
    assert "_memo" not in repr(event)


def test_an_encoded_event_pickles_and_copies_without_its_memo() -> None:
    event = _activation(1.0, 2.0)
    codec = schemas.Codec()
    wire = codec.encode(_distribute("r", event, event.with_status(EventStatus.ACTIVE)))
    for twin in (pickle.loads(pickle.dumps(event)), copy.deepcopy(event), copy.copy(event)):
        assert twin == event
        assert codec.encode(_distribute("r", twin, twin.with_status(EventStatus.ACTIVE))) == wire
    assert pickle.loads(pickle.dumps(event))._memo == {}


def test_a_changed_event_is_encoded_afresh() -> None:
    event = _activation(1.0)
    codec = schemas.Codec()
    codec.encode(_distribute("r", event))
    moved = replace(event, target=Target(ven_ids=("0043",)))  # replace: a new, empty memo
    decoded = codec.decode(codec.encode(_distribute("r", moved)))
    assert isinstance(decoded, DistributeEvent)
    assert decoded.events[0].target == Target(ven_ids=("0043",))
