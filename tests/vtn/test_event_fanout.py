"""Event fan-out storage on SQLite and PostgreSQL: ``EventRepository.distribute`` chooses and
records a VEN's event list in one transaction, reading only the events and targets addressing
it; ``deliver_next`` hands out a poll's outbox item with that list in one transaction; ``put``
queues a caller's marker; checked acks are all or nothing. Same on both paths."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, NoReturn

import pytest

from tests.kit.storage import T0, register
from vtn.storage import (
    EventAck,
    EventRecord,
    EventStatus,
    OptType,
    Storage,
    TargetKind,
    TargetRef,
)
from vtn.storage.events import EVENT_KIND, Distribution

VEN = TargetKind.VEN
GROUP = TargetKind.GROUP
RESOURCE = TargetKind.RESOURCE
PARTY = TargetKind.PARTY


def _event(event_id: str, *targets: tuple[TargetKind, str],
           status: EventStatus = EventStatus.FAR) -> EventRecord:
    return EventRecord(
        event_id=event_id, modification_number=0, status=status, starts_at=T0,
        ends_at=T0 + timedelta(hours=1),
        targets=tuple(TargetRef(kind=k, value=v) for k, v in targets),
        payload=f"<{event_id}/>".encode(), updated_at=T0)


def _seen(records: tuple[EventRecord, ...]) -> dict[str, tuple[tuple[str, str], ...]]:
    return {r.event_id: tuple((t.kind.value, t.value) for t in r.targets) for r in records}


def _list(ven_id: str, *statuses: EventStatus, **fields: Any) -> Distribution:
    return Distribution(ven_id=ven_id, statuses=statuses or LIVE, now=T0,
                        cancelled_since=T0 - timedelta(days=1), **fields)


LIVE = (EventStatus.FAR, EventStatus.ACTIVE, EventStatus.CANCELLED)


async def test_distribute_reads_only_the_events_and_targets_addressing_the_ven(
        storage: Storage) -> None:
    a, b, c = await register(storage, 3)
    await storage.vens.set_memberships(a, [TargetRef(kind=GROUP, value="zone-NL"),
                                           TargetRef(kind=RESOURCE, value="psn1_x"),
                                           TargetRef(kind=PARTY, value="party-1")])
    await storage.vens.set_memberships(b, [TargetRef(kind=GROUP, value="zone-DE")])
    for record in (
        _event("e1-many-vens", (VEN, a), (VEN, b), (VEN, c)),
        _event("e2-group", (GROUP, "zone-NL"), (GROUP, "zone-DE")),
        _event("e3-everyone"),
        _event("e4-resource-and-party", (RESOURCE, "psn1_x"), (PARTY, "party-1"), (VEN, c)),
        _event("e5-others", (VEN, b), (GROUP, "zone-DE"), (RESOURCE, a)),  # a's ID, other kind
        _event("e6-cancelled", (VEN, a), status=EventStatus.CANCELLED),
        _event("e7-completed", (VEN, a), status=EventStatus.COMPLETED),
    ):
        assert await storage.events.put(record)

    records = await storage.events.distribute(_list(a))
    assert _seen(records) == {
        "e1-many-vens": (("venID", a),),
        "e2-group": (("groupID", "zone-NL"),),
        "e3-everyone": (),
        "e4-resource-and-party": (("partyID", "party-1"), ("resourceID", "psn1_x")),
        "e6-cancelled": (("venID", a),),
    }
    assert [r.payload for r in records] == [f"<{e}/>".encode() for e in _seen(records)]
    assert _seen(await storage.events.distribute(_list(b))) == {
        "e1-many-vens": (("venID", b),),
        "e2-group": (("groupID", "zone-DE"),),
        "e3-everyone": (),
        "e5-others": (("groupID", "zone-DE"), ("venID", b)),
    }
    everything = (*LIVE, EventStatus.COMPLETED)
    assert list(_seen(await storage.events.distribute(_list(c, *everything)))) == [
        "e1-many-vens", "e3-everyone", "e4-resource-and-party"]
    # Each list was recorded as delivered, at the events' modificationNumbers, and only it.
    assert [d.ven_id for d in await storage.events.deliveries("e1-many-vens")] == [a, b, c]
    assert [d.ven_id for d in await storage.events.deliveries("e5-others")] == [b]
    assert await storage.events.deliveries("e7-completed") == ()
    assert await storage.events.delivered_to("e1-many-vens") == (a, b, c)
    assert await storage.events.delivered_to("e7-completed") == ()


async def test_distribute_leaves_out_what_the_clock_ended_and_marks_the_outbox_item(
        storage: Storage) -> None:
    (a,) = await register(storage, 1)
    hour = timedelta(hours=1)
    for record in (
        replace(_event("e1-ended", (VEN, a)), ends_at=T0),  # ends now: completed
        replace(_event("e2-open-ended", (VEN, a)), ends_at=None),
        replace(_event("e3-runs", (VEN, a)), ends_at=T0 + hour),
        replace(_event("e4-cancelled-after-its-end", (VEN, a), status=EventStatus.CANCELLED),
                ends_at=T0 - hour),  # a cancelled event stays cancelled, not completed
        replace(_event("e5-cancelled-long-ago", (VEN, a), status=EventStatus.CANCELLED),
                updated_at=T0 - 2 * timedelta(days=1)),
    ):
        assert await storage.events.put(record, notify=(a,), queued=b"")
    first, *others = await storage.outbox.pending(a)  # one per put
    records = await storage.events.distribute(_list(a, outbox_seq=first.seq))
    assert [r.event_id for r in records] == [
        "e2-open-ended", "e3-runs", "e4-cancelled-after-its-end"]
    assert await storage.outbox.pending(a) == tuple(others)
    limited = await storage.events.distribute(_list(a, limit=1))
    assert [r.event_id for r in limited] == ["e2-open-ended"]
    nothing = Distribution(ven_id=a, statuses=(), now=T0, cancelled_since=T0)
    assert await storage.events.distribute(nothing) == ()


async def test_deliver_next_hands_out_items_in_order_one_list_for_all_its_markers(
        storage: Storage) -> None:
    a, b = await register(storage, 2)
    await storage.outbox.enqueue([a], b"<first/>", "oadrRequestReregistration", at=T0)
    for event_id in ("e1", "e2"):
        assert await storage.events.put(_event(event_id, (VEN, a), (VEN, b)), notify=(a, b),
                                        queued=b"")

    first = await storage.events.deliver_next(_list(a))
    assert first is not None and first.events == ()
    assert (first.item.kind, first.item.payload) == ("oadrRequestReregistration", b"<first/>")
    assert await storage.events.deliveries("e1") == ()  # a plain item records no event list
    assert len(await storage.outbox.pending(a)) == 2  # both event markers still wait

    listed = await storage.events.deliver_next(_list(a))
    assert listed is not None and listed.item.kind == EVENT_KIND
    assert _seen(listed.events) == {"e1": (("venID", a),), "e2": (("venID", a),)}
    assert await storage.outbox.pending(a) == ()  # one list answered both markers
    assert [(d.ven_id, d.delivered_modification_number)
            for d in await storage.events.deliveries("e2")] == [(a, 0)]
    assert await storage.events.deliver_next(_list(a)) is None
    assert len(await storage.outbox.pending(b)) == 2  # another VEN's queue is untouched


async def test_put_queues_the_callers_marker_and_stays_idempotent(storage: Storage) -> None:
    vens = await register(storage, 3)
    record = _event("e1", *((VEN, v) for v in vens))
    assert await storage.events.put(record, notify=vens, queued=b"")
    assert not await storage.events.put(record, notify=vens, queued=b"")  # a retry adds nothing
    for ven_id in vens:
        assert [(i.kind, i.payload, i.dedup_key) for i in await storage.outbox.pending(ven_id)] \
            == [("oadrDistributeEvent", b"", "event:e1:0")]
    stored = await storage.events.get("e1")
    assert stored == record  # the event keeps its payload; only the queue carries the marker


async def test_a_checked_ack_batch_is_all_or_nothing(storage: Storage) -> None:
    a, b = await register(storage, 2)
    for event_id in ("e1", "e2"):
        assert await storage.events.put(_event(event_id, (VEN, a)), notify=(a,), queued=b"")
    await storage.events.mark_delivered("e1", (a,), modification_number=0, at=T0)  # e2: never
    acks = tuple(EventAck(event_id=e, ven_id=a, modification_number=0, opt_type=OptType.OPT_IN,
                          response_code=200, at=T0) for e in ("e1", "e2"))
    seen: list[dict[str, int]] = []

    def refuse(current: dict[str, int]) -> NoReturn:
        seen.append(dict(current))
        raise LookupError("not delivered")

    fingerprint = (await storage.vens.get(a)).fingerprint
    with pytest.raises(LookupError):
        await storage.events.record_answer(a, acks, fingerprint=fingerprint, refuse=refuse)
    assert seen[-1] == {"e1": 0}  # what was delivered to a, at the current version
    assert (await storage.events.delivery("e1", a)).ack_opt_type is None  # e1 not stored either
    assert await storage.events.delivery("e2", a) is None

    # Another VEN's certificate, or a cancelled registration: nothing stored, nothing checked.
    other = (await storage.vens.get(b)).fingerprint
    assert await storage.events.record_answer(a, acks[:1], fingerprint=other,
                                              refuse=refuse) is None
    assert await storage.events.record_answer(a, (), fingerprint=other,
                                              refuse=refuse) is None
    assert seen == [{"e1": 0}] and (await storage.events.delivery("e1", a)).ack_opt_type is None
    stored = await storage.events.record_answer(a, acks[:1], fingerprint=fingerprint,
                                                refuse=refuse)
    assert stored is not None and seen == [{"e1": 0}]
    assert [(d.event_id, d.ack_opt_type) for d in stored] == [("e1", OptType.OPT_IN)]
    await storage.vens.cancel(f"reg-{int(a)}", at=T0)
    assert await storage.events.record_answer(a, acks[:1], fingerprint=fingerprint,
                                              refuse=refuse) is None
    # An older ack than the stored one comes back as the stored one (not replaced).
    newer = EventAck(event_id="e1", ven_id=a, modification_number=3, opt_type=OptType.OPT_OUT,
                     response_code=200, at=T0)
    await storage.events.record_acks((newer,))
    (kept,) = await storage.events.record_acks(acks[:1])
    assert (kept.ack_modification_number, kept.ack_opt_type) == (3, OptType.OPT_OUT)
    assert await storage.events.delivered_versions(b, ["e1"]) == {}
