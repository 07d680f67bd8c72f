"""The SQLite poll index (vtn.storage.pollindex): empty polls answered from memory, and never a
"nothing for you" while something waits, whatever order reads and writes commit in."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.kit.storage import T0, ven
from vtn.storage import EventRecord, EventStatus, Storage, TargetKind, TargetRef, open_storage
from vtn.storage.events import Distribution
from vtn.storage.notify import EVERYONE, enqueued_payload
from vtn.storage.pollindex import PollIndex


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> Storage:
    return await open_storage(f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}")


async def test_a_quiet_ven_is_answered_without_reading_the_database(
        sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    try:
        registration = await storage.vens.register(ven(1))
        assert await storage.vens.poll_lookup(registration.fingerprint) == (registration, False)
        # Remove the row behind the index's back (no VTN does this; it shows who answers).
        async with storage.engine.begin() as conn:
            await conn.execute(text("DELETE FROM vens"))
        assert await storage.vens.poll_lookup(registration.fingerprint) == (registration, False)
    finally:
        await storage.close()


async def test_an_enqueue_makes_the_next_poll_look(sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    try:
        registration = await storage.vens.register(ven(1))
        fingerprint, ven_id = registration.fingerprint, registration.ven_id
        assert (await storage.vens.poll_lookup(fingerprint))[1] is False
        await storage.outbox.enqueue([ven_id], b"<m/>", "k", at=T0)
        assert (await storage.vens.poll_lookup(fingerprint))[1] is True
        item = await storage.outbox.next_for(ven_id, now=T0)
        assert item is not None
        # Claimed but not yet marked delivered: still waiting (its lease may run out).
        assert (await storage.vens.poll_lookup(fingerprint))[1] is True
        await storage.outbox.mark_delivered(item.seq, at=T0)
        assert (await storage.vens.poll_lookup(fingerprint))[1] is False
        assert (await storage.vens.poll_lookup(fingerprint))[1] is False  # now from memory
    finally:
        await storage.close()


def _event(ven_id: str) -> EventRecord:
    return EventRecord(
        event_id="e-1", modification_number=0, status=EventStatus.FAR, payload=b"<e/>",
        targets=(TargetRef(kind=TargetKind.VEN, value=ven_id),), updated_at=T0,
        starts_at=T0 + timedelta(minutes=5), ends_at=T0 + timedelta(minutes=20),
    )


async def test_an_event_for_a_quiet_ven_is_seen_at_its_next_poll(sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    try:
        registration = await storage.vens.register(ven(1))
        assert (await storage.vens.poll_lookup(registration.fingerprint))[1] is False
        assert await storage.events.put(_event(registration.ven_id), notify=[registration.ven_id])
        assert (await storage.vens.poll_lookup(registration.fingerprint))[1] is True
    finally:
        await storage.close()


async def test_the_poll_that_delivers_the_last_item_leaves_the_ven_quiet(
        sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    try:
        registration = await storage.vens.register(ven(1))
        fingerprint, ven_id = registration.fingerprint, registration.ven_id
        await storage.outbox.enqueue([ven_id], b"<m/>", "k", at=T0)
        assert await storage.events.put(_event(ven_id), notify=[ven_id], queued=b"")
        assert await storage.vens.poll_lookup(fingerprint) == (registration, True)
        everything = Distribution(ven_id=ven_id, statuses=tuple(EventStatus), now=T0,
                                  cancelled_since=T0)
        assert await storage.events.deliver_next(everything) is not None  # <m/>; the event waits
        assert await storage.vens.poll_lookup(fingerprint) == (registration, True)
        delivered = await storage.events.deliver_next(everything)
        assert delivered is not None and [e.event_id for e in delivered.events] == ["e-1"]
        async with storage.engine.begin() as conn:  # behind the index's back, as above
            await conn.execute(text("DELETE FROM vens"))
        assert await storage.vens.poll_lookup(fingerprint) == (registration, False)
    finally:
        await storage.close()


def test_a_delivery_overtaken_by_an_enqueue_does_not_leave_the_ven_quiet() -> None:
    index = PollIndex()
    registration = ven(1)
    index.learn(index.ticket(), registration.fingerprint, registration)  # known, not quiet
    ticket = index.ticket()  # the poll's delivery begins and hands out the last item...
    index.enqueued([registration.ven_id])  # ...while another item for the VEN commits
    index.handed_out(ticket, registration.ven_id, False)
    assert index.quiet_registration(registration.fingerprint) is None
    assert index.waiting_registration(registration.fingerprint) == registration
    index.handed_out(index.ticket(), registration.ven_id, True)  # more waits: still waiting
    assert index.waiting_registration(registration.fingerprint) == registration
    index.handed_out(index.ticket(), registration.ven_id, False)
    assert index.quiet_registration(registration.fingerprint) == registration
    assert index.waiting_registration(registration.fingerprint) is None


async def test_a_cancelled_registration_is_seen_at_the_next_poll(sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    try:
        registration = await storage.vens.register(ven(1))
        assert (await storage.vens.poll_lookup(registration.fingerprint))[0] == registration
        await storage.vens.cancel(registration.registration_id, at=T0)
        found, _ = await storage.vens.poll_lookup(registration.fingerprint)
        assert found is not None and found.cancelled_at == T0
    finally:
        await storage.close()


def test_a_read_overtaken_by_an_enqueue_is_not_learned_as_quiet() -> None:
    index = PollIndex()
    registration = ven(1)
    ticket = index.ticket()  # the poll's read begins, sees an empty outbox...
    index.enqueued([registration.ven_id])  # ...while an item for the VEN commits
    index.learn(ticket, registration.fingerprint, registration, False)
    assert index.quiet_registration(registration.fingerprint) is None


def test_a_read_overtaken_by_a_registration_write_is_not_learned() -> None:
    index = PollIndex()
    registration = ven(1)
    ticket = index.ticket()
    index.registration_changed(registration.fingerprint)  # e.g. the VEN cancelled meanwhile
    index.learn(ticket, registration.fingerprint, registration, False)
    assert index.quiet_registration(registration.fingerprint) is None
    index.learn(index.ticket(), registration.fingerprint, registration, False)
    assert index.quiet_registration(registration.fingerprint) == registration


async def test_a_registration_forgets_only_the_registering_vens_cached_registration(
        sqlite_storage: Storage) -> None:
    """A registration storm must not send every other VEN's poll to the database."""
    storage = sqlite_storage
    try:
        one = await storage.vens.register(ven(1))
        two = await storage.vens.register(ven(2))
        for registration in (one, two):
            assert await storage.vens.poll_lookup(registration.fingerprint) == (registration,
                                                                                 False)
        async with storage.engine.begin() as conn:  # behind the index's back, as above
            await conn.execute(text("UPDATE vens SET ven_name = 'changed'"))
        again = await storage.vens.register(replace(ven(1), ven_name="again"))
        assert again.ven_name == "again"
        # the registering VEN's cached registration is dropped: its next poll reads the row
        assert await storage.vens.poll_lookup(one.fingerprint) == (again, False)
        # the other VEN's is kept: answered from memory, with the name the row no longer has
        assert await storage.vens.poll_lookup(two.fingerprint) == (two, False)
    finally:
        await storage.close()


def test_a_registration_write_forgets_its_certificates_or_if_unknown_every_one() -> None:
    """Unknown: a cancel or erasure that failed (it may have committed) names no certificate."""
    index = PollIndex()
    one, two = ven(1), ven(2)
    for registration in (one, two):
        index.learn(index.ticket(), registration.fingerprint, registration, False)
    index.registration_changed(one.fingerprint)
    assert index.registration(one.fingerprint) is None
    assert index.registration(two.fingerprint) == two
    index.registration_changed(None)
    assert index.registration(two.fingerprint) is None


def test_an_enqueue_after_learning_unquiets_only_its_vens() -> None:
    index = PollIndex()
    one, two = ven(1), ven(2)
    for registration in (one, two):
        index.learn(index.ticket(), registration.fingerprint, registration, False)
    index.enqueued([one.ven_id])
    assert index.quiet_registration(one.fingerprint) is None
    assert index.quiet_registration(two.fingerprint) == two


async def test_the_certificate_lookup_is_learned_and_forgotten_on_registration_writes(
        sqlite_storage: Storage) -> None:
    storage = sqlite_storage
    try:
        registration = await storage.vens.register(ven(1))
        assert await storage.vens.by_fingerprint(registration.fingerprint) == registration
        async with storage.engine.begin() as conn:  # behind the index's back, as above
            await conn.execute(text("UPDATE vens SET ven_name = 'changed'"))
        known = await storage.vens.by_fingerprint(registration.fingerprint)
        assert known is not None and known.ven_name == registration.ven_name  # from memory
        await storage.vens.cancel(registration.registration_id, at=T0)  # a registration write
        found = await storage.vens.by_fingerprint(registration.fingerprint)
        assert found is not None and found.cancelled_at == T0 and found.ven_name == "changed"
    finally:
        await storage.close()


def test_a_suspended_index_knows_nothing_and_learns_nothing() -> None:
    """PostgreSQL while notifications may be missed (vtn.storage.notify): every poll reads."""
    index = PollIndex()
    registration = ven(1)
    index.learn(index.ticket(), registration.fingerprint, registration, False)
    index.suspend()
    assert not index.live
    assert index.registration(registration.fingerprint) is None
    index.learn(index.ticket(), registration.fingerprint, registration, False)
    assert index.quiet_registration(registration.fingerprint) is None


def test_a_read_begun_while_suspended_is_not_learned_after_resuming() -> None:
    index = PollIndex(live=False)
    registration = ven(1)
    ticket = index.ticket()  # a poll's read begins while changes may go unheard...
    index.resume()  # ...and the listener is back before it ends
    index.learn(ticket, registration.fingerprint, registration, False)
    assert index.quiet_registration(registration.fingerprint) is None
    index.learn(index.ticket(), registration.fingerprint, registration, False)
    assert index.quiet_registration(registration.fingerprint) == registration


def test_items_for_too_many_vens_to_name_unquiet_everyone() -> None:
    index = PollIndex()
    one, two = ven(1), ven(2)
    for registration in (one, two):
        index.learn(index.ticket(), registration.fingerprint, registration, False)
    many = [f"ven-{n:05d}" for n in range(1000)]
    assert enqueued_payload(many) == EVERYONE  # over PostgreSQL's 8,000-byte payload limit
    assert enqueued_payload([one.ven_id]) == one.ven_id
    index.everyone_enqueued()
    assert index.quiet_registration(one.fingerprint) is None
    assert index.quiet_registration(two.fingerprint) is None
