"""The storage backend contract (vtn.storage.backend): every test runs against a real SQLite
file and a real PostgreSQL database (the ``storage`` fixture), calls the backend the storage
chose when it opened, and asserts what both must answer alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pytest

from vtn.storage import (
    EventAck,
    EventRecord,
    EventStatus,
    OptType,
    ReportData,
    ReportRequest,
    ReportRequestStatus,
    StaleModification,
    Storage,
    StorageConflict,
    TargetKind,
    TargetRef,
    VenRegistration,
)
from vtn.storage._postgres_backend import PostgresBackend
from vtn.storage._sqlite_backend import SqliteBackend
from vtn.storage.backend import (
    EVENT_KIND,
    Backend,
    Distribution,
    Enrolment,
    Queue,
    Queued,
    StoredEvent,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LIVE = (EventStatus.FAR, EventStatus.NEAR, EventStatus.ACTIVE, EventStatus.CANCELLED)


def registration(n: int) -> VenRegistration:
    return VenRegistration(ven_id=f"ven-{n}", registration_id=f"reg-{n}",
                           fingerprint=f"FP:{n:04d}", ven_name=f"ven {n}", created_at=T0)


def event(event_id: str, number: int = 0, *, targets: tuple[TargetRef, ...] = (),
          status: EventStatus = EventStatus.FAR, ends_at: datetime | None = None,
          payload: bytes | None = None, updated_at: datetime = T0) -> EventRecord:
    return EventRecord(event_id=event_id, modification_number=number, status=status,
                       starts_at=T0, ends_at=ends_at or T0 + timedelta(hours=1),
                       targets=targets, updated_at=updated_at,
                       payload=payload or f"<{event_id} {number}/>".encode())


def newer(new: EventRecord, stored: StoredEvent) -> bool:
    if new.modification_number < stored.modification_number:
        raise StaleModification(new.event_id)
    if new.modification_number == stored.modification_number:
        if new.payload != stored.payload:
            raise StorageConflict(new.event_id)
        return False
    return True


def queue(ven_ids: tuple[str, ...], key: str) -> Queue:
    return Queue(ven_ids=ven_ids, payload=b"", dedup_key=key)


def event_list(ven_id: str, *, now: datetime = T0, limit: int | None = None,
               outbox_seq: int | None = None) -> Distribution:
    return Distribution(ven_id=ven_id, statuses=LIVE, now=now,
                        cancelled_since=now - timedelta(hours=1), limit=limit,
                        outbox_seq=outbox_seq)


def ack(event_id: str, ven_id: str, number: int, opt: OptType = OptType.OPT_IN) -> EventAck:
    return EventAck(event_id=event_id, ven_id=ven_id, modification_number=number,
                    opt_type=opt, at=T0 + timedelta(minutes=number))


async def vens(storage: Storage, count: int) -> list[str]:
    return [(await storage.vens.register(registration(n))).ven_id for n in range(count)]


async def test_the_backend_is_chosen_for_the_engine_when_storage_opens(
        storage: Storage, storage_url: str) -> None:
    expected = PostgresBackend if storage_url.startswith("postgresql") else SqliteBackend
    backend: Backend = storage.backend
    assert type(backend) is expected


async def test_nonces_are_seen_once_and_naive_times_refused(storage: Storage) -> None:
    backend = storage.backend
    assert await backend.nonce_seen("n-1", T0) is False
    assert await backend.nonce_seen("n-1", T0 + timedelta(seconds=1)) is True
    assert await backend.nonce_seen("n-2", T0) is False
    with pytest.raises(ValueError, match="naive"):
        await backend.nonce_seen("n-3", datetime(2030, 1, 1))


async def test_poll_lookup_names_the_registration_and_whether_anything_waits(
        storage: Storage) -> None:
    backend = storage.backend
    (ven_id,) = await vens(storage, 1)
    assert await backend.poll_lookup("FP:none") == (None, False)
    assert await backend.poll_lookup("FP:0000") == (registration(0), False)
    assert await backend.enqueue((ven_id,), b"<x/>", "k", None, T0) == 1
    assert await backend.poll_lookup("FP:0000") == (registration(0), True)


async def test_a_registration_stores_queues_and_finds_live_events_in_one_call(
        storage: Storage) -> None:
    """A new certificate's row is inserted, its items queued (a dedup key once); a known
    certificate's row is updated in place (venID and created_at kept, cancel cleared); live
    events targeting the VEN by venID or by a membership it holds are found and one event-list
    item queued; an ended, completed or foreign event is not."""
    backend = storage.backend
    metadata = Queued("oadrRegisterReport", b"<meta/>", "vtn-metadata:reg-0")
    stored, found = await backend.register(Enrolment(
        registration=registration(0), queued=(metadata,), live=LIVE, now=T0))
    assert (stored, found) == (registration(0), ())
    ven = stored.ven_id
    await storage.vens.set_memberships(ven, [TargetRef(kind=TargetKind.GROUP, value="g")])
    await storage.vens.cancel("reg-0", T0)
    by_id = event("e1", targets=(TargetRef(kind=TargetKind.VEN, value=ven),))
    by_group = event("e2", targets=(TargetRef(kind=TargetKind.GROUP, value="g"),))
    ended = event("e3", targets=by_id.targets, ends_at=T0 - timedelta(minutes=1))
    completed = event("e4", targets=by_id.targets, status=EventStatus.COMPLETED)
    foreign = event("e5", targets=(TargetRef(kind=TargetKind.GROUP, value="other"),))
    assert await backend.put_events(
        [(e, queue((), e.event_id)) for e in (by_id, by_group, ended, completed, foreign)],
        newer) == (True,) * 5
    again = replace(registration(0), ven_id="other-id", registration_id="reg-0b",
                    ven_name="renamed", created_at=T0 + timedelta(days=1))
    stored, found = await backend.register(Enrolment(
        registration=again, queued=(metadata,), live=LIVE, now=T0))
    assert stored == replace(registration(0), registration_id="reg-0b", ven_name="renamed")
    assert found == ("e1", "e2")
    pending = await storage.outbox.pending(ven)
    assert [(i.kind, i.payload) for i in pending] == [
        ("oadrRegisterReport", b"<meta/>"), (EVENT_KIND, b"")]  # the repeated dedup key: once
    _, found = await backend.register(Enrolment(registration=again, now=T0))
    assert found == () and len(await storage.outbox.pending(ven)) == 2  # nothing looked up


async def test_targets_resolve_to_active_vens_by_id_or_membership(storage: Storage) -> None:
    backend = storage.backend
    a, b, c = await vens(storage, 3)
    await storage.vens.set_memberships(b, [TargetRef(kind=TargetKind.GROUP, value="g")])
    await storage.vens.set_memberships(c, [TargetRef(kind=TargetKind.GROUP, value="g")])
    await storage.vens.cancel("reg-2", T0)
    found = await backend.resolve_targets([
        ([a], []), ([], [("groupID", "g")]), ([a], [("groupID", "g")]), ([], []),
        (["nobody"], [("groupID", "none")])])
    assert found == ((a,), (b,), (a, b), (), ())


async def test_event_writes_rise_retry_and_refuse_together(storage: Storage) -> None:
    backend = storage.backend
    a, b = await vens(storage, 2)
    first = event("e1", targets=(TargetRef(kind=TargetKind.VEN, value=a),))
    assert await backend.put_events([(first, queue((a,), "e1:0"))], newer) == (True,)
    assert await backend.put_events([(first, queue((a,), "e1:0"))], newer) == (False,)
    second = event("e1", 1, targets=(TargetRef(kind=TargetKind.VEN, value=b),))
    other = event("e2")
    assert await backend.put_events(
        [(second, queue((b,), "e1:1")), (other, queue((a, b), "e2:0"))], newer) == (True, True)
    stored = await storage.events.get("e1")
    assert stored is not None
    assert (stored.modification_number, stored.targets) == (1, second.targets)
    # An older version, or the same one with other content: nothing of the batch is stored.
    with pytest.raises(StaleModification):
        await backend.put_events([(event("e3"), queue((a,), "e3:0")),
                                  (first, queue((a,), "e1:0"))], newer)
    with pytest.raises(StorageConflict):
        await backend.put_events([(event("e3"), queue((a,), "e3:0")),
                                  (event("e2", payload=b"<other/>"), queue((a,), "e2:0"))], newer)
    assert await storage.events.get("e3") is None
    assert [i.dedup_key for i in await storage.outbox.pending(a)] == ["e1:0", "e2:0"]
    assert [i.dedup_key for i in await storage.outbox.pending(b)] == ["e1:1", "e2:0"]


async def test_enqueue_keeps_order_skips_a_queued_dedup_key_and_refuses_unknown_vens(
        storage: Storage) -> None:
    backend = storage.backend
    a, b = await vens(storage, 2)
    assert await backend.enqueue((b, a, b), b"<1/>", "k", "d1", T0) == 2
    assert await backend.enqueue((a, b), b"<1/>", "k", "d1", T0) == 0
    assert await backend.enqueue((a,), b"<2/>", "k", None, T0) == 1
    assert await backend.enqueue((a,), b"<2/>", "k", None, T0) == 1
    pending_a = await storage.outbox.pending(a)
    pending_b = await storage.outbox.pending(b)
    assert [i.payload for i in pending_a] == [b"<1/>", b"<2/>", b"<2/>"]
    assert pending_b[0].seq < pending_a[0].seq  # the caller's order is seq order
    with pytest.raises(StorageConflict):
        await backend.enqueue(("nobody",), b"<x/>", "k", None, T0)


async def test_a_poll_delivery_takes_the_oldest_item_and_the_vens_own_event_list(
        storage: Storage) -> None:
    backend = storage.backend
    a, b = await vens(storage, 2)
    await storage.vens.set_memberships(a, [TargetRef(kind=TargetKind.GROUP, value="g")])
    mine = event("e1", targets=(TargetRef(kind=TargetKind.GROUP, value="g"),
                                TargetRef(kind=TargetKind.VEN, value=b)))
    everyone = event("e2")
    ended = event("e3", ends_at=T0 - timedelta(minutes=1))
    theirs = event("e4", targets=(TargetRef(kind=TargetKind.VEN, value=b),))
    gone = event("e5", status=EventStatus.CANCELLED, updated_at=T0 - timedelta(hours=2))
    await backend.put_events([(e, queue((a,), f"{e.event_id}:0"))
                              for e in (mine, everyone, ended, theirs, gone)], newer)
    await backend.enqueue((a,), b"<report/>", "oadrCreateReport", None, T0)
    assert await backend.deliver_next(event_list(b)) == (None, False)

    delivered, waiting = await backend.deliver_next(event_list(a))
    assert delivered is not None and waiting  # the report request still waits
    assert (delivered.item.kind, delivered.item.dedup_key) == (EVENT_KIND, "e1:0")
    # one event-list item answers them all; only the targets addressing the VEN come back
    assert [(e.event_id, e.targets) for e in delivered.events] == [
        ("e1", (TargetRef(kind=TargetKind.GROUP, value="g"),)), ("e2", ())]
    assert delivered.events[1] == everyone
    assert await backend.delivered_versions(a, ["e1", "e2", "e3", "e4"]) == {"e1": 0, "e2": 0}
    assert await backend.delivered_to(["e1", "e2", "e4"]) == {"e1": (a,), "e2": (a,)}

    report, waiting = await backend.deliver_next(event_list(a))
    assert report is not None and (report.item.payload, report.events, waiting) == (
        b"<report/>", (), False)
    assert await backend.deliver_next(event_list(a)) == (None, False)


async def test_polls_waiting_together_each_take_their_own_delivery(storage: Storage) -> None:
    """Polls of many VENs at once (on PostgreSQL one statement takes them all): each takes its
    VEN's oldest item and event list as it would alone; a VEN's second poll waits for its
    first."""
    backend = storage.backend
    a, b, c, d = await vens(storage, 4)
    await storage.vens.set_memberships(b, [TargetRef(kind=TargetKind.GROUP, value="g")])
    await backend.put_events([
        (event("e1", targets=(TargetRef(kind=TargetKind.VEN, value=a),)), queue((a,), "e1:0")),
        (event("e2", targets=(TargetRef(kind=TargetKind.GROUP, value="g"),)),
         queue((b,), "e2:0")),
        (event("e3"), queue((a, b, d), "e3:0"))], newer)
    await backend.enqueue((a, c), b"<report/>", "oadrCreateReport", None, T0)
    polls = (event_list(a), event_list(b), event_list(c), event_list(d, limit=0),
             event_list(a), event_list(a))
    outcomes = await asyncio.gather(*(backend.deliver_next(poll) for poll in polls))
    (first_a, waiting_a), (got_b, waiting_b), (got_c, waiting_c), (got_d, waiting_d) = (
        outcomes[:4])
    # a's two event-list items go as one list, its report on its next poll, then nothing
    assert first_a is not None and waiting_a
    assert (first_a.item.dedup_key, [e.event_id for e in first_a.events]) == (
        "e1:0", ["e1", "e3"])
    second_a, waiting_second = outcomes[4]
    assert second_a is not None and (second_a.item.payload, waiting_second) == (
        b"<report/>", False)
    assert outcomes[5] == (None, False)
    assert got_b is not None and not waiting_b
    assert [(e.event_id, e.targets) for e in got_b.events] == [
        ("e2", (TargetRef(kind=TargetKind.GROUP, value="g"),)), ("e3", ())]
    assert got_c is not None and (got_c.item.payload, got_c.events, waiting_c) == (
        b"<report/>", (), False)
    assert got_d is not None and (got_d.item.dedup_key, got_d.events, waiting_d) == (
        "e3:0", (), False)
    assert await backend.delivered_to(["e1", "e2", "e3"]) == {
        "e1": (a,), "e2": (b,), "e3": (a, b)}


async def test_distribute_records_the_list_and_marks_the_item_that_asked(
        storage: Storage) -> None:
    backend = storage.backend
    (a,) = await vens(storage, 1)
    await backend.put_events([(event(f"e{n}"), queue((a,), f"e{n}")) for n in range(3)], newer)
    item = await backend.claim(a, T0, T0 + timedelta(seconds=30), None)
    assert item is not None
    events = await backend.distribute(event_list(a, limit=2, outbox_seq=item.seq))
    assert [e.event_id for e in events] == ["e0", "e1"]
    assert await backend.delivered_to(["e0", "e1", "e2"]) == {"e0": (a,), "e1": (a,)}
    assert await backend.mark_delivered(item.seq, T0) is None  # already, by distribute


async def test_a_listed_event_carries_its_stored_payload_held_or_read(
        storage: Storage, storage_url: str) -> None:
    """``Distribution.held``: a payload the caller holds for a listed version (eventID,
    modificationNumber, updated_at) may stand in for reading it, and on SQLite does; a version
    it does not hold is read. Either way each record carries the stored bytes."""
    backend = storage.backend
    a, b = await vens(storage, 2)
    first, second = event("e1", updated_at=T0 + timedelta(seconds=1)), event("e2")
    await backend.put_events([(first, queue((a, b), "e1:0")), (second, queue((a, b), "e2:0"))],
                             newer)
    copy = bytes(bytearray(first.payload))  # the same bytes, another object
    asked: list[tuple[str, int, datetime]] = []

    def held(event_id: str, number: int, updated_at: datetime) -> bytes | None:
        asked.append((event_id, number, updated_at))
        return copy if (event_id, number, updated_at) == ("e1", 0, first.updated_at) else None

    listed = await backend.distribute(replace(event_list(a), held=held))
    delivered, _ = await backend.deliver_next(replace(event_list(b), held=held))
    assert delivered is not None
    for events in (listed, delivered.events):
        assert [(e.event_id, e.payload) for e in events] == [
            ("e1", first.payload), ("e2", second.payload)]
    if storage_url.startswith("sqlite"):
        assert asked == [("e1", 0, first.updated_at), ("e2", 0, T0)] * 2
        assert listed[0].payload is copy and delivered.events[0].payload is copy


async def test_an_event_is_every_vens_exactly_while_it_has_no_targets(
        storage: Storage) -> None:
    """Each new version of an event decides again whether it is untargeted: an event list (of a
    push's claim or of a poll) holds it for every VEN only while it has no targets."""
    backend = storage.backend
    a, b = await vens(storage, 2)
    to_b = (TargetRef(kind=TargetKind.VEN, value=b),)

    async def lists() -> tuple[list[str], list[str]]:
        listed_a = await backend.distribute(event_list(a))
        delivered_b, _ = await backend.deliver_next(event_list(b))
        assert delivered_b is not None
        return [e.event_id for e in listed_a], [e.event_id for e in delivered_b.events]

    await backend.put_events([(event("e1", targets=to_b), queue((b,), "e1:0"))], newer)
    assert await lists() == ([], ["e1"])
    await backend.put_events([(event("e1", 1), queue((b,), "e1:1"))], newer)
    assert await lists() == (["e1"], ["e1"])
    await backend.put_events([(event("e1", 2, targets=to_b), queue((b,), "e1:2"))], newer)
    assert await lists() == ([], ["e1"])


async def test_claim_next_leases_the_item_and_records_its_list_in_one_call(
        storage: Storage) -> None:
    """A push's claim: the item leased (not marked), the VEN's other event items marked with it,
    its event list recorded as delivered, and whether more waits behind it."""
    backend = storage.backend
    (a,) = await vens(storage, 1)
    await backend.put_events([(event(f"e{n}"), queue((a,), f"e{n}")) for n in range(2)], newer)
    await backend.enqueue((a,), b"<report/>", "oadrCreateReport", None, T0)
    lease = T0 + timedelta(seconds=30)
    first = await backend.claim_next(event_list(a), lease)
    assert first is not None and (first.item.dedup_key, first.item.more_waiting) == ("e0", True)
    assert [e.event_id for e in first.events] == ["e0", "e1"]
    assert await backend.delivered_to(["e0", "e1"]) == {"e0": (a,), "e1": (a,)}
    assert [i.dedup_key for i in await storage.outbox.pending(a)] == ["e0", None]
    second = await backend.claim_next(event_list(a), lease)
    assert second is not None and (second.item.payload, second.events) == (b"<report/>", ())
    assert not second.item.more_waiting
    assert await backend.claim_next(event_list(a), lease) is None  # both leased
    again = await backend.claim_next(event_list(a, now=lease), lease + timedelta(seconds=30))
    assert again is not None and again.item.seq == first.item.seq  # its lease ran out
    assert await backend.mark_delivered(first.item.seq, T0) == a


async def test_claims_lease_in_order_and_supersede(storage: Storage) -> None:
    backend = storage.backend
    (a,) = await vens(storage, 1)
    for key in ("k1", "k2", "k3"):
        await backend.enqueue((a,), key.encode(), EVENT_KIND if key != "k3" else "x", key, T0)
    lease = T0 + timedelta(seconds=30)
    first = await backend.claim(a, T0, lease, None)
    assert first is not None and (first.dedup_key, first.more_waiting) == ("k1", True)
    # k1 is leased: k2 is next, and being an event-list item it marks k1 delivered with it
    second = await backend.claim(a, T0, lease, EVENT_KIND)
    assert second is not None and second.dedup_key == "k2"
    assert [i.dedup_key for i in await storage.outbox.pending(a)] == ["k2", "k3"]
    third = await backend.claim(a, T0, lease, None)
    assert third is not None and (third.dedup_key, third.more_waiting) == ("k3", False)
    assert await backend.claim(a, T0, lease, None) is None
    again = await backend.claim(a, lease, lease + timedelta(seconds=30), None)
    assert again is not None and again.dedup_key == "k2"  # its lease ran out
    assert await backend.mark_delivered(again.seq, T0) == a
    assert await backend.mark_delivered(again.seq, T0) is None


async def test_acks_never_go_back_and_answers_check_the_registration(storage: Storage) -> None:
    backend = storage.backend
    (a,) = await vens(storage, 1)
    await backend.put_events([(event("e1", 1), queue((a,), "e1:1"))], newer)
    await backend.distribute(event_list(a))
    (stored,) = await backend.record_acks((ack("e1", a, 1),))
    assert (stored.ack_modification_number, stored.delivered_modification_number) == (1, 1)
    (kept,) = await backend.record_acks((ack("e1", a, 0, OptType.OPT_OUT),))
    assert (kept.ack_modification_number, kept.ack_opt_type) == (1, OptType.OPT_IN)

    refused: list[dict[str, int]] = []

    def refuse(current: dict[str, int]) -> NoReturn:
        refused.append(current)
        raise LookupError(current)

    answer = (ack("e1", a, 1, OptType.OPT_OUT),)
    assert await backend.record_answer(a, "FP:other", answer, refuse, ["e1"]) is None
    assert refused == []
    # an older or newer modificationNumber than the current, or an event not delivered to the
    # VEN, refuses the whole message with the versions delivered to it
    for wrong in ((ack("e1", a, 0),), (ack("e1", a, 2),), (answer[0], ack("e2", a, 1)),
                  (ack("e1", a, 1), ack("e1", a, 0))):
        with pytest.raises(LookupError):
            await backend.record_answer(a, "FP:0000", wrong,
                                        refuse, list(dict.fromkeys(x.event_id for x in wrong)))
    assert refused == [{"e1": 1}] * 4
    assert (await storage.events.delivery("e1", a)).ack_opt_type is OptType.OPT_IN  # type: ignore[union-attr]
    (done,) = await backend.record_answer(a, "FP:0000", answer, refuse, ["e1"]) or ()
    assert (done.ack_modification_number, done.ack_opt_type) == (1, OptType.OPT_OUT)
    # one event answered twice in one message: each ack applies in order
    twice = (ack("e1", a, 1), ack("e1", a, 1, OptType.OPT_OUT))
    stored_twice = await backend.record_answer(a, "FP:0000", twice, refuse, ["e1"])
    assert [d.ack_opt_type for d in stored_twice or ()] == [OptType.OPT_IN, OptType.OPT_OUT]
    assert await backend.record_answer(a, "FP:0000", (), refuse, []) == ()
    # an ack stored for a newer modificationNumber stays, and comes back
    await backend.record_acks((ack("e1", a, 5),))
    (kept,) = await backend.record_answer(a, "FP:0000", answer, refuse, ["e1"]) or ()
    assert (kept.ack_modification_number, kept.ack_opt_type) == (5, OptType.OPT_IN)
    assert refused == [{"e1": 1}] * 4
    await storage.vens.cancel("reg-0", T0)
    assert await backend.record_answer(a, "FP:0000", answer, refuse, ["e1"]) is None


async def test_an_answer_given_again_leaves_its_row_as_it_is(storage: Storage) -> None:
    """A VEN answers every event of its list each time it is sent the list: an ack that
    repeats the stored answer keeps when that answer was stored, on every path that
    stores acks (an answer, one answering an event twice, acks alone); another is written."""
    backend = storage.backend
    (a,) = await vens(storage, 1)
    later, latest = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)

    def refuse(current: dict[str, int]) -> NoReturn:
        raise AssertionError(current)

    await backend.put_events([(event("e1"), queue((a,), "e1:0"))], newer)
    await backend.distribute(event_list(a))
    answer = ack("e1", a, 0)
    await backend.record_answer(a, "FP:0000", (answer,), refuse, ["e1"])
    again = replace(answer, at=later)
    for acks in ((again,), (again, again)):
        stored = await backend.record_answer(a, "FP:0000", acks, refuse, ["e1"])
        assert [(d.ack_opt_type, d.ack_at) for d in stored or ()] == [
            (OptType.OPT_IN, T0)] * len(acks)
    (stored,) = await backend.record_acks((again,))
    assert (stored.ack_modification_number, stored.ack_at, stored.delivered_at) == (0, T0, T0)

    (out,) = await backend.record_answer(
        a, "FP:0000", (replace(again, opt_type=OptType.OPT_OUT),), refuse, ["e1"]) or ()
    assert (out.ack_opt_type, out.ack_at) == (OptType.OPT_OUT, later)
    (coded,) = await backend.record_acks(
        (replace(answer, opt_type=OptType.OPT_OUT, response_code=400, at=latest),))
    assert (coded.ack_response_code, coded.ack_at) == (400, latest)
    await backend.put_events([(event("e1", 1), queue((a,), "e1:1"))], newer)
    await backend.distribute(event_list(a, now=latest))
    (newer_answer,) = await backend.record_answer(
        a, "FP:0000", (replace(answer, modification_number=1, at=latest),), refuse,
        ["e1"]) or ()
    assert (newer_answer.ack_modification_number, newer_answer.ack_opt_type,
            newer_answer.ack_at) == (1, OptType.OPT_IN, latest)
    assert await storage.events.deliveries("e1") == (newer_answer,)


async def test_answers_waiting_together_each_get_their_own_outcome(storage: Storage) -> None:
    """oadrCreatedEvent answers of many VENs at once (on PostgreSQL one statement checks and
    stores them all): each is stored, refused with its own versions, or found unregistered,
    as it would be alone; a VEN's second answer waits for its first."""
    backend = storage.backend
    good, stale, unknown, stranger, wrong_cert, late = await vens(storage, 6)
    await backend.put_events([(event("e1", 1), queue((good,), "e1:1")),
                              (event("e2"), queue((good,), "e2:0"))], newer)
    for ven_id in (good, stale, unknown, wrong_cert, late):
        await backend.distribute(event_list(ven_id))

    def refuse(ven_id: str) -> Callable[[dict[str, int]], NoReturn]:
        def refused(current: dict[str, int]) -> NoReturn:
            raise LookupError(ven_id, current)
        return refused

    answers = (
        (good, "FP:0000", (ack("e1", good, 1, OptType.OPT_OUT), ack("e2", good, 0))),
        (stale, "FP:0001", (ack("e2", stale, 0), ack("e1", stale, 0))),
        (unknown, "FP:0002", (ack("e9", unknown, 0),)),
        (stranger, "FP:0003", (ack("e1", stranger, 1),)),  # never delivered to it
        (wrong_cert, "FP:0000", (ack("e1", wrong_cert, 1),)),
        (late, "FP:0005", (ack("e1", late, 1),)),
        (good, "FP:0000", (ack("e1", good, 1),)),  # after its first answer
        (late, "FP:0005", ()),
    )
    outcomes = await asyncio.gather(*(
        backend.record_answer(ven_id, fingerprint, acks, refuse(ven_id),
                              [a.event_id for a in acks])
        for ven_id, fingerprint, acks in answers), return_exceptions=True)
    first, stale_out, unknown_out, stranger_out, wrong_out, late_out, second, empty = outcomes
    assert [(d.event_id, d.ack_opt_type) for d in first] == [  # type: ignore[union-attr]
        ("e1", OptType.OPT_OUT), ("e2", OptType.OPT_IN)]
    assert [(d.event_id, d.ack_opt_type) for d in second] == [  # type: ignore[union-attr]
        ("e1", OptType.OPT_IN)]
    assert [(d.ven_id, d.ack_modification_number) for d in late_out] == [  # type: ignore[union-attr]
        (late, 1)]
    assert empty == ()
    assert wrong_out is None
    for refused, ven_id, current in ((stale_out, stale, {"e1": 1, "e2": 0}),
                                     (unknown_out, unknown, {}), (stranger_out, stranger, {})):
        assert isinstance(refused, LookupError) and refused.args == (ven_id, current)
    acked = {(d.event_id, d.ven_id): d.ack_opt_type
             for e in ("e1", "e2") for d in await storage.events.deliveries(e)
             if d.ack_opt_type is not None}
    assert acked == {("e1", good): OptType.OPT_IN, ("e2", good): OptType.OPT_IN,
                     ("e1", late): OptType.OPT_IN}


async def test_report_updates_waiting_together_each_get_their_own_outcome(
        storage: Storage) -> None:
    """Report updates of many VENs at once (on PostgreSQL one statement): an unknown VEN fails
    alone, a wrong certificate stores nothing, the rest count their own new points."""
    backend = storage.backend
    a, b, c = await vens(storage, 3)

    def update(ven_id: str, count: int) -> list[ReportData]:
        return [ReportData(ven_id=ven_id, report_request_id="q", report_specifier_id="s",
                           received_at=T0, rows=tuple(
                               (f"r{k}", T0, None, 1.0, None, None, None) for k in range(count)))]

    outcomes = await asyncio.gather(
        backend.store_update(a, update(a, 3), [], "FP:0000"),
        backend.store_update("nobody", update("nobody", 1), [], None),
        backend.store_update(b, update(b, 2), [], "FP:0000"),
        backend.store_update(c, update(c, 4), [], None),
        backend.store_update(a, update(a, 5), [], "FP:0000"),
        return_exceptions=True)
    assert isinstance(outcomes[1], StorageConflict)
    assert [outcomes[0], outcomes[2], outcomes[3], outcomes[4]] == [(3, ()), None, (4, ()), (2, ())]
    assert len(await storage.reports.points(b, T0, T0 + timedelta(minutes=1))) == 0


async def test_report_updates_check_the_registration_keep_first_values_and_name_cancelled(
        storage: Storage) -> None:
    backend = storage.backend
    (a,) = await vens(storage, 1)
    await storage.reports.put_request(ReportRequest(
        ven_id=a, report_request_id="gone", report_specifier_id="s",
        status=ReportRequestStatus.CANCELLED, created_at=T0))

    def data(value: float, count: int, start: int = 0) -> ReportData:
        return ReportData(ven_id=a, report_request_id="q", report_specifier_id="s",
                          received_at=T0, rows=tuple(
                              (f"r{k}", T0 + timedelta(seconds=k), timedelta(seconds=1),
                               value, None, None, None) for k in range(start, start + count)))

    assert await backend.store_update(a, [data(1.0, 10)], ["q", "gone"], "FP:other") is None
    assert await backend.store_update(a, [data(1.0, 10)], ["q", "gone"], "FP:0000") == (
        10, ("gone",))
    assert await backend.store_update(a, [data(2.0, 10, 5)], [], None) == (5, ())
    stored = await storage.reports.points(a, T0, T0 + timedelta(minutes=1))
    assert [p.value for p in stored] == [1.0] * 10 + [2.0] * 5
    with pytest.raises(ValueError, match="naive"):
        await backend.store_update(a, [ReportData(
            ven_id=a, report_request_id="q", report_specifier_id="s", received_at=T0,
            rows=(("r", datetime(2030, 1, 1), None, 1.0, None, None, None),))],
            [], None)
    with pytest.raises(StorageConflict):
        await backend.store_update("nobody", [ReportData(
            ven_id="nobody", report_request_id="q", report_specifier_id="s", received_at=T0,
            rows=(("r", T0, None, 1.0, None, None, None),))], [], None)
