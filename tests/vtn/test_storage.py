"""vtn.storage on SQLite files and on PostgreSQL: every repository, idempotency, batching,
concurrent consumers, restarts (including SIGKILL) and migrations from an empty database."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import bindparam, event, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.kit.storage import T0, register, ven
from vtn.migrations import upgrade
from vtn.storage import (
    EventAck,
    EventRecord,
    EventStatus,
    OptSchedule,
    OptType,
    OptWindow,
    ReportData,
    ReportDescription,
    ReportPoint,
    ReportRequest,
    ReportRequestStatus,
    StaleModification,
    Storage,
    StorageConflict,
    TargetKind,
    TargetRef,
    VenRegistration,
    open_storage,
)
from vtn.storage._engine import create_engine_for
from vtn.storage._models import Base, UtcDateTime, VenRow
from vtn.storage._postgres_backend import POOL_SIZE, PostgresBackend
from vtn.storage.backend import Distribution


async def register_in_bulk(storage: Storage, count: int) -> list[str]:
    """Many VENs in one statement: a test shortcut (VENs really register one by one)."""
    rows = [_fields(ven(n)) for n in range(count)]
    async with storage.engine.begin() as conn:
        await conn.execute(insert(VenRow).values(rows))
    return [row["ven_id"] for row in rows]


@asynccontextmanager
async def count_inserts(storage: Storage) -> AsyncIterator[list[str]]:
    """Collect the INSERT statements sent to the driver (each is one round trip): those of the
    SQLAlchemy engines, and on PostgreSQL those of the backend's asyncpg pool."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "WITH")) and "INSERT" in statement:
            seen.append(statement)

    def logged(record: Any) -> None:
        before(None, None, record.query)

    # On SQLite the repositories' hot paths run on their own synchronous engine.
    engines = [e for e in (storage.engine.sync_engine, storage.sqlite_engine) if e is not None]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    pool = storage.backend.pool if isinstance(storage.backend, PostgresBackend) else None
    await _each_pooled(pool, lambda conn: conn.add_query_logger(logged))
    try:
        yield seen
    finally:
        await _each_pooled(pool, lambda conn: conn.remove_query_logger(logged))
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)


async def _each_pooled(pool: Any, call: Any) -> None:
    """``call`` on every connection of an idle asyncpg pool (holding them all at once)."""
    if pool is None:
        return
    held = [await pool.acquire() for _ in range(POOL_SIZE)]
    for conn in held:
        call(conn)
        await pool.release(conn)


# ------------------------------------------------------------------ migrations, time values


@asynccontextmanager
async def at_revision(storage_url: str, revision: str) -> AsyncIterator[AsyncConnection]:
    """A transaction on the database migrated to ``revision`` only, to fill as it stored."""
    engine = create_engine_for(storage_url)
    try:
        await upgrade(engine, revision)
        async with engine.begin() as conn:
            yield conn
    finally:
        await engine.dispose()


# VEN n (venID v<n>) as an older revision's schema stores it; bind n (text) and at.
OLD_VEN = text(
    "INSERT INTO vens (ven_id, registration_id, fingerprint, ven_name, profile_name,"
    " transport_name, http_pull_model, report_only, xml_signature, created_at) VALUES"
    " ('v' || :n, 'r' || :n, 'AA:0' || :n, 'old', '2.0b', 'simpleHttp', true, false, false, :at)")


async def test_migrations_create_the_schema_from_empty(storage_url: str) -> None:
    storage = await open_storage(storage_url)
    async with storage.engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()

        def diff(sync_conn: Any) -> list[Any]:
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        assert await conn.run_sync(diff) == []
    assert version == "0006"
    await storage.close()
    again = await open_storage(storage_url)  # a second start finds nothing to do
    assert await again.vens.active() == ()
    await again.close()


async def test_revision_0005_flags_the_untargeted_events_of_a_0004_database(
        storage_url: str) -> None:
    """Events stored before the flag keep their audience: the one without targets goes to
    every VEN, the targeted one only to its VEN."""
    async with at_revision(storage_url, "0004") as conn:
        for n in (1, 2):
            await conn.execute(OLD_VEN, {"n": str(n), "at": T0})
        for event_id in ("e1", "e2"):
            await conn.execute(text(
                "INSERT INTO events (event_id, modification_number, status, starts_at,"
                " ends_at, response_required, payload, updated_at) VALUES"
                " (:e, 0, 'far', :at, :end, true, :p, :at)"),
                {"e": event_id, "at": T0, "end": T0 + timedelta(hours=1), "p": b"<e/>"})
        await conn.execute(text("INSERT INTO event_targets (event_id, kind, value)"
                                " VALUES ('e1', 'venID', 'v2')"))
    storage = await open_storage(storage_url)
    try:
        lists = [[e.event_id for e in await storage.events.distribute(Distribution(
            ven_id=v, statuses=(EventStatus.FAR,), now=T0, cancelled_since=T0))]
            for v in ("v1", "v2")]
        assert lists == [["e2"], ["e1", "e2"]]
    finally:
        await storage.close()


async def test_revision_0006_rekeys_the_points_of_a_0005_database_keeping_them(
        storage_url: str) -> None:
    """The points (and every other VEN's row) survive the rebuild of report_points, its key
    still refuses a re-sent point, and erasing a VEN still takes its points with it."""
    async with at_revision(storage_url, "0005") as conn:
        for n in (1, 2):
            await conn.execute(OLD_VEN, {"n": str(n), "at": T0})
            await conn.execute(text(
                "INSERT INTO report_requests (ven_id, report_request_id, report_specifier_id,"
                " r_ids, status, created_at) VALUES (:v, 'q', 's', '[]', 'active', :at)"),
                {"v": f"v{n}", "at": T0})
            for k in range(3):  # times as the models store them (UtcDateTime)
                await conn.execute(text(
                    "INSERT INTO report_points (ven_id, report_specifier_id,"
                    " report_request_id, r_id, dtstart, value, received_at)"
                    " VALUES (:v, 's', 'q', :r, :at, :value, :at)").bindparams(
                        bindparam("at", type_=UtcDateTime())),
                    {"v": f"v{n}", "r": f"r{k % 2}", "at": T0 + timedelta(seconds=k),
                     "value": float(k)})
    storage = await open_storage(storage_url)
    try:
        window = (T0, T0 + timedelta(minutes=1))
        for v in ("v1", "v2"):
            points = await storage.reports.points(v, *window)
            assert [(p.dtstart, p.r_id, p.value) for p in points] == [
                (T0 + timedelta(seconds=k), f"r{k % 2}", float(k)) for k in range(3)]
            assert [r.report_request_id for r in await storage.reports.requests(v)] == ["q"]
        resent = ReportData(ven_id="v1", report_request_id="q", report_specifier_id="s",
                            received_at=T0, rows=(("r0", T0, None, 9.0, None, None, None),
                                                  ("r1", T0, None, 9.0, None, None, None)))
        assert await storage.reports.store_update("v1", [resent], ()) == (1, ())
        assert await storage.vens.erase("v1") > 0
        assert await storage.reports.points("v1", *window) == ()
        assert len(await storage.reports.points("v2", *window)) == 3
    finally:
        await storage.close()


async def test_times_are_utc_in_and_out(storage: Storage) -> None:
    amsterdam = timezone(timedelta(hours=2))
    stored = await storage.vens.register(ven(1, at=datetime(2026, 6, 1, 14, 0, tzinfo=amsterdam)))
    loaded = await storage.vens.get(stored.ven_id)
    assert loaded is not None
    assert loaded.created_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert loaded.created_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        await storage.vens.register(ven(2, at=datetime(2026, 6, 1, 12, 0)))


# ------------------------------------------------------------------ VENs


async def test_vens_register_lookup_cancel_and_target(storage: Storage) -> None:
    ids = await register(storage, 3)
    assert ids == ["000000", "000001", "000002"]
    first = await storage.vens.get("000001")
    assert first == ven(1)
    assert await storage.vens.by_fingerprint("AA:BB:00002") == ven(2)
    assert await storage.vens.by_registration_id("reg-0") == ven(0)
    assert await storage.vens.get("1") is None

    # Same certificate again: same ven_id, new registration, original created_at.
    again = await storage.vens.register(
        VenRegistration(
            ven_id="ignored",
            registration_id="reg-1b",
            fingerprint="AA:BB:00001",
            ven_name="renamed",
            created_at=T0 + timedelta(days=1),
        )
    )
    assert (again.ven_id, again.registration_id, again.created_at) == ("000001", "reg-1b", T0)
    with pytest.raises(StorageConflict):  # a ven_id bound to another certificate
        await storage.vens.register(ven(1).__class__(**{**_fields(ven(1)), "fingerprint": "X"}))

    await storage.vens.set_memberships(
        "000000", [TargetRef(kind=TargetKind.GROUP, value="zone-NL")]
    )
    await storage.vens.set_memberships(
        "000002",
        [
            TargetRef(kind=TargetKind.GROUP, value="zone-NL"),
            TargetRef(kind=TargetKind.RESOURCE, value="psn1_abc"),
        ],
    )
    assert await storage.vens.memberships("000002") == (
        TargetRef(kind=TargetKind.GROUP, value="zone-NL"),
        TargetRef(kind=TargetKind.RESOURCE, value="psn1_abc"),
    )
    group = [TargetRef(kind=TargetKind.GROUP, value="zone-NL")]
    assert await storage.vens.resolve_targets(group) == ("000000", "000002")
    mixed = [
        TargetRef(kind=TargetKind.VEN, value="000001"),
        TargetRef(kind=TargetKind.RESOURCE, value="psn1_abc"),
    ]
    assert await storage.vens.resolve_targets(mixed) == ("000001", "000002")

    cancelled = await storage.vens.cancel("reg-0", T0 + timedelta(hours=1))
    assert cancelled is not None and not cancelled.active
    assert await storage.vens.cancel("no-such-registration", T0) is None
    assert [v.ven_id for v in await storage.vens.active()] == ["000001", "000002"]
    # by venID, cancelled or not, unknown ones left out, in venID order
    many = await storage.vens.get_many(["000002", "nobody", "000000", "000002"])
    assert [(v.ven_id, v.active) for v in many] == [("000000", False), ("000002", True)]
    assert await storage.vens.get_many([]) == ()
    assert await storage.vens.resolve_targets(group) == ("000002",)
    assert await storage.vens.resolve_targets([]) == ()


def _fields(reg: VenRegistration) -> dict[str, Any]:
    return {name: getattr(reg, name) for name in reg.__dataclass_fields__}


# ------------------------------------------------------------------ events


def an_event(mod: int, *, payload: bytes | None = None, status: EventStatus = EventStatus.FAR):
    return EventRecord(
        event_id="ev-1",
        modification_number=mod,
        status=status,
        market_context="http://cbp.example/mc",
        starts_at=T0 + timedelta(hours=1),
        ends_at=T0 + timedelta(hours=2),
        targets=(TargetRef(kind=TargetKind.GROUP, value=f"g{mod}"),),
        payload=payload if payload is not None else f"<event mod='{mod}'/>".encode(),
        updated_at=T0 + timedelta(minutes=mod),
    )


async def test_events_modification_numbers_only_rise(storage: Storage) -> None:
    vens = await register(storage, 3)
    assert await storage.events.put(an_event(0), notify=vens)
    assert not await storage.events.put(an_event(0), notify=vens)  # retry: no change, no dup
    assert await storage.outbox.pending_count(vens[0]) == 1
    with pytest.raises(StorageConflict):
        await storage.events.put(an_event(0, payload=b"<other/>"))

    assert await storage.events.put(an_event(1, status=EventStatus.ACTIVE), notify=vens[:1])
    with pytest.raises(StaleModification):
        await storage.events.put(an_event(0))
    stored = await storage.events.get("ev-1")
    assert stored == an_event(1, status=EventStatus.ACTIVE)
    assert stored.targets == (TargetRef(kind=TargetKind.GROUP, value="g1"),)
    assert [i.payload for i in await storage.outbox.pending(vens[0])] == [
        b"<event mod='0'/>",
        b"<event mod='1'/>",
    ]
    assert await storage.outbox.pending_count(vens[1]) == 1
    assert await storage.events.query(statuses=[EventStatus.ACTIVE]) == (stored,)
    assert await storage.events.query(statuses=[EventStatus.CANCELLED]) == ()
    assert await storage.events.get("nope") is None


async def test_event_delivery_and_acks(storage: Storage) -> None:
    vens = await register(storage, 2)
    await storage.events.put(an_event(2))
    await storage.events.mark_delivered("ev-1", vens, modification_number=2, at=T0)
    ack = EventAck(
        event_id="ev-1", ven_id=vens[0], modification_number=2, opt_type=OptType.OPT_IN, at=T0
    )
    delivery = await storage.events.record_ack(ack)
    assert delivery.ack_opt_type is OptType.OPT_IN
    assert (delivery.delivered_modification_number, delivery.ack_modification_number) == (2, 2)
    assert await storage.events.record_ack(ack) == delivery  # re-sent ack: idempotent

    late_old = EventAck(
        event_id="ev-1", ven_id=vens[0], modification_number=1, opt_type=OptType.OPT_OUT, at=T0
    )
    assert (await storage.events.record_ack(late_old)).ack_opt_type is OptType.OPT_IN
    deliveries = await storage.events.deliveries("ev-1")
    assert [(d.ven_id, d.ack_opt_type) for d in deliveries] == [
        (vens[0], OptType.OPT_IN),
        (vens[1], None),
    ]
    assert await storage.events.delivery("ev-1", vens[1]) == deliveries[1]
    with pytest.raises(StorageConflict):  # unknown VEN: the foreign key refuses it
        await storage.events.mark_delivered("ev-1", ["999999"], modification_number=2, at=T0)


async def test_ended_events_are_purged_with_their_targets_and_deliveries(
        storage: Storage) -> None:
    """Retention's delete, on both backends: only events whose period ended before the cutoff."""
    vens = await register(storage, 2)
    await storage.events.put(an_event(0))
    later = replace(an_event(0), event_id="ev-2", ends_at=T0 + timedelta(hours=5))
    await storage.events.put(later)
    for event_id in ("ev-1", "ev-2"):
        await storage.events.mark_delivered(event_id, vens, modification_number=0, at=T0)
    ended = an_event(0).ends_at
    assert ended is not None
    assert await storage.events.purge_ended(ended) == 0  # ends exactly there: kept
    assert await storage.events.purge_ended(ended + timedelta(seconds=1)) == 1
    assert await storage.events.get("ev-1") is None
    assert await storage.events.deliveries("ev-1") == ()
    assert [e.event_id for e in await storage.events.query()] == ["ev-2"]
    assert len(await storage.events.deliveries("ev-2")) == 2
    async with storage.engine.connect() as conn:
        targets = await conn.scalar(text("SELECT count(*) FROM event_targets"))
    assert targets == 1  # ev-2's own


# ------------------------------------------------------------------ outbox


async def test_outbox_fan_out_to_500_vens_is_one_insert_and_keeps_order(storage: Storage) -> None:
    vens = await register_in_bulk(storage, 500)
    assert await storage.vens.get(vens[499]) == ven(499)
    async with count_inserts(storage) as inserts:
        added = await storage.outbox.enqueue(vens, b"<first/>", "oadrDistributeEvent", at=T0)
    assert (added, len(inserts)) == (500, 1)
    await storage.outbox.enqueue(vens, b"<second/>", "oadrDistributeEvent", "k2", at=T0)
    assert await storage.outbox.enqueue(vens, b"<second/>", "oadrDistributeEvent", "k2", at=T0) == 0

    for ven_id in (vens[0], vens[250], vens[499]):
        first = await storage.outbox.next_for(ven_id, now=T0)
        assert first is not None and (first.payload, first.more_waiting) == (b"<first/>", True)
        assert await storage.outbox.mark_delivered(first.seq, at=T0)
        assert not await storage.outbox.mark_delivered(first.seq, at=T0)
        second = await storage.outbox.next_for(ven_id, now=T0)
        assert second is not None and second.seq > first.seq
        assert (second.payload, second.dedup_key, second.more_waiting) == (
            b"<second/>",
            "k2",
            False,
        )
        await storage.outbox.mark_delivered(second.seq, at=T0)
        assert await storage.outbox.next_for(ven_id, now=T0) is None
    assert await storage.outbox.pending_count(vens[1]) == 2


async def test_outbox_claim_lease_expires_and_release(storage: Storage) -> None:
    (ven_id,) = await register(storage, 1)
    await storage.outbox.enqueue([ven_id], b"<a/>", "k", at=T0)
    lease = timedelta(seconds=30)
    claimed = await storage.outbox.next_for(ven_id, now=T0, lease=lease)
    assert claimed is not None
    assert await storage.outbox.next_for(ven_id, now=T0 + timedelta(seconds=29)) is None
    # The worker died without marking it: after the lease another poll gets it again.
    again = await storage.outbox.next_for(ven_id, now=T0 + lease, lease=lease)
    assert again is not None and again.seq == claimed.seq
    assert await storage.outbox.release(again)
    assert (await storage.outbox.next_for(ven_id, now=T0)).seq == claimed.seq  # type: ignore[union-attr]
    await storage.outbox.mark_delivered(claimed.seq, at=T0)
    assert await storage.outbox.purge_delivered(T0 + timedelta(seconds=1)) == 1
    assert await storage.outbox.pending(ven_id) == ()


async def test_a_release_after_the_lease_ran_out_leaves_the_new_claim_alone(
        storage: Storage) -> None:
    """A push outlasting its lease: another claim took the item, then the first push failed and
    released it. The release must not free the item under the second claim, or a third claim
    would push it a second time at once."""
    (ven_id,) = await register(storage, 1)
    await storage.outbox.enqueue([ven_id], b"<a/>", "k", at=T0)
    lease = timedelta(seconds=30)
    first = await storage.outbox.next_for(ven_id, now=T0, lease=lease)
    second = await storage.outbox.next_for(ven_id, now=T0 + lease, lease=lease)
    assert first is not None and second is not None and second.seq == first.seq
    assert not await storage.outbox.release(first)
    assert await storage.outbox.next_for(ven_id, now=T0 + lease) is None  # still second's
    await storage.outbox.mark_delivered(second.seq, at=T0 + lease)
    assert not await storage.outbox.release(second)  # delivered: nothing to give back
    assert await storage.outbox.pending(ven_id) == ()


async def test_only_a_leased_item_can_be_released(storage: Storage) -> None:
    (ven_id,) = await register(storage, 1)
    await storage.outbox.enqueue([ven_id], b"<a/>", "k", at=T0)
    leased = await storage.outbox.next_for(ven_id, now=T0)
    assert leased is not None
    with pytest.raises(ValueError, match="claimed for a lease"):
        await storage.outbox.release(replace(leased, claimed_until=None))


async def test_outbox_drop_pending_empties_one_vens_queue(storage: Storage) -> None:
    """An evicted VEN's undelivered items go; delivered ones and other VENs' queues stay."""
    evicted, other = await register(storage, 2)
    await storage.outbox.enqueue([evicted, other], b"<a/>", "k", at=T0)
    await storage.outbox.enqueue([evicted], b"<b/>", "k", at=T0)
    delivered = await storage.outbox.next_for(evicted, now=T0)
    assert delivered is not None
    await storage.outbox.mark_delivered(delivered.seq, at=T0)
    assert await storage.outbox.drop_pending(evicted) == 1
    assert await storage.outbox.pending(evicted) == ()
    assert await storage.outbox.next_for(evicted, now=T0) is None
    assert await storage.outbox.pending_count(other) == 1
    assert await storage.outbox.purge_delivered(T0 + timedelta(seconds=1)) == 1


async def test_two_workers_never_get_the_same_item(storage_url: str) -> None:
    worker_a, worker_b = await open_storage(storage_url), await open_storage(storage_url)
    try:
        (ven_id,) = await register(worker_a, 1)
        for n in range(40):
            await worker_a.outbox.enqueue([ven_id], f"<m n='{n}'/>".encode(), "k", at=T0)

        async def drain(worker: Storage) -> list[int]:
            got: list[int] = []
            while (item := await worker.outbox.next_for(ven_id, now=T0)) is not None:
                got.append(item.seq)
            return got

        a, b, c = await asyncio.gather(drain(worker_a), drain(worker_b), drain(worker_a))
        taken = a + b + c
        assert len(taken) == len(set(taken)) == 40
        assert a == sorted(a) and b == sorted(b) and c == sorted(c)  # each claims in seq order
    finally:
        await worker_a.close()
        await worker_b.close()


# ------------------------------------------------------------------ reports


def points(ven_id: str, count: int, *, start: int = 0, value: float = 1.5) -> list[ReportPoint]:
    return [
        ReportPoint(
            ven_id=ven_id,
            report_request_id="rr-1",
            report_specifier_id="TELEMETRY_USAGE",
            r_id=f"psn1_{k % 4}",
            dtstart=T0 + timedelta(seconds=4 * (k // 4)),
            duration=timedelta(seconds=4),
            value=value + k,
            confidence=95 if k % 2 else None,
            data_quality="Quality Good - Non Specific",
            received_at=T0,
        )
        for k in range(start, start + count)
    ]


async def test_report_points_batched_idempotent_and_queried_by_time(storage: Storage) -> None:
    (ven_id,) = await register(storage, 1)
    async with count_inserts(storage) as inserts:
        assert await storage.reports.add_points(points(ven_id, 1000)) == 1000
    assert len(inserts) == 1
    # A VEN re-sending after a lost reply, overlapping new data: only the new points are stored.
    assert await storage.reports.add_points(points(ven_id, 1000, value=99.0)) == 0
    assert await storage.reports.add_points(points(ven_id, 8, start=996)) == 4
    window = await storage.reports.points(ven_id, T0, T0 + timedelta(seconds=8))
    assert window == tuple(points(ven_id, 8))  # first values kept, ordered by dtstart then rID
    one = await storage.reports.points(ven_id, T0, T0 + timedelta(hours=1), r_id="psn1_3")
    assert len(one) == 251 and all(p.r_id == "psn1_3" for p in one)
    assert await storage.reports.points(ven_id, T0 - timedelta(hours=1), T0) == ()
    assert await storage.reports.add_points([]) == 0


async def test_erased_points_leave_no_copy_in_the_sqlite_file_or_its_wal(
        storage: Storage, storage_url: str) -> None:
    """Deleted content is zeroed (secure_delete) and scrub truncates the WAL: the raw files no
    longer hold an erased rID. PostgreSQL keeps dead rows until VACUUM: scrub says so (False)."""
    (ven_id,) = await register(storage, 1)
    rows = [replace(p, r_id="psn1_erasedvalue") if k == 201 else p
            for k, p in enumerate(points(ven_id, 400))]
    assert await storage.reports.add_points(rows) == 400
    await storage.scrub()  # the rows are in the file itself, not only in the WAL
    assert await storage.reports.erase_r_ids(ven_id, {"psn1_erasedvalue"}) == 1
    if storage_url.startswith("postgresql"):
        assert await storage.scrub() is False
        return
    assert await storage.scrub() is True
    path = Path(storage_url.split(":///", 1)[1])
    raw = b"".join(f.read_bytes() for f in path.parent.glob(path.name + "*"))
    assert b"psn1_erasedvalue" not in raw and b"psn1_3" in raw


async def test_report_descriptions_and_requests(storage: Storage) -> None:
    (ven_id,) = await register(storage, 1)

    def description(spec: str) -> ReportDescription:
        return ReportDescription(
            ven_id=ven_id,
            report_specifier_id=spec,
            report_name="METADATA_TELEMETRY_USAGE",
            r_ids=("psn1_a", "psn1_b"),
            payload=b"<oadrReport/>",
            registered_at=T0,
        )

    await storage.reports.register_descriptions(ven_id, [description("S1"), description("S2")])
    await storage.reports.register_descriptions(ven_id, [description("S3")])  # replaces
    assert await storage.reports.descriptions(ven_id) == (description("S3"),)

    request = ReportRequest(
        ven_id=ven_id,
        report_request_id="rr-1",
        report_specifier_id="S3",
        r_ids=("psn1_a",),
        granularity=timedelta(seconds=4),
        report_back_duration=timedelta(minutes=1),
        starts_at=T0,
        created_at=T0,
    )
    await storage.reports.put_request(request)
    await storage.reports.put_request(request)  # a retry is an update, not a second row
    assert await storage.reports.requests(ven_id) == (request,)
    assert await storage.reports.set_request_status(
        ven_id, "rr-1", ReportRequestStatus.ACTIVE, at=T0
    )
    active = await storage.reports.requests(ven_id, statuses=[ReportRequestStatus.ACTIVE])
    assert [r.status for r in active] == [ReportRequestStatus.ACTIVE]
    later = T0 + timedelta(hours=1)
    await storage.reports.set_request_status(
        ven_id, "rr-1", ReportRequestStatus.CANCELLED, at=later
    )
    cancelled = await storage.reports.get_request(ven_id, "rr-1")
    assert cancelled is not None and cancelled.cancelled_at == later
    assert not await storage.reports.set_request_status(
        ven_id, "nope", ReportRequestStatus.ACTIVE, at=T0
    )


# ------------------------------------------------------------------ opts and nonces


async def test_opt_schedules(storage: Storage) -> None:
    (ven_id,) = await register(storage, 1)
    window = OptWindow(starts_at=T0, duration=timedelta(minutes=15))
    schedule = OptSchedule(
        ven_id=ven_id,
        opt_id="opt-1",
        opt_type=OptType.OPT_OUT,
        opt_reason="participating",
        resource_id="psn1_a",
        windows=(window, OptWindow(starts_at=T0 + timedelta(hours=1), duration=timedelta(hours=1))),
        created_at=T0,
    )
    await storage.opts.put(schedule)
    assert await storage.opts.get(ven_id, "opt-1") == schedule
    assert await storage.opts.in_force(ven_id, T0 + timedelta(minutes=14)) == (schedule,)
    assert await storage.opts.in_force(ven_id, T0 + timedelta(minutes=15)) == ()
    assert await storage.opts.in_force(ven_id, T0, resource_id="psn1_other") == ()

    narrowed = OptSchedule(**{**_opt_fields(schedule), "windows": (window,)})
    await storage.opts.put(narrowed)  # same optID again: replaced, windows included
    assert await storage.opts.for_ven(ven_id) == (narrowed,)
    assert await storage.opts.cancel(ven_id, "opt-1", at=T0)
    assert not await storage.opts.cancel(ven_id, "opt-1", at=T0)
    assert await storage.opts.for_ven(ven_id) == ()
    kept = await storage.opts.for_ven(ven_id, include_cancelled=True)
    assert [s.cancelled_at for s in kept] == [T0]
    assert await storage.opts.in_force(ven_id, T0) == ()


def _opt_fields(schedule: OptSchedule) -> dict[str, Any]:
    return {name: getattr(schedule, name) for name in schedule.__dataclass_fields__}


async def test_nonce_replay_detection(storage: Storage) -> None:
    assert not await storage.nonces.seen("n-1", T0)
    assert await storage.nonces.seen("n-1", T0 + timedelta(seconds=1))
    # Two workers racing on the same nonce: exactly one accepts it.
    results = await asyncio.gather(*(storage.nonces.seen("n-2", T0) for _ in range(4)))
    assert sorted(results) == [False, True, True, True]
    assert not await storage.nonces.seen("n-3", T0 + timedelta(minutes=10))
    assert await storage.nonces.purge(T0 + timedelta(minutes=5)) == 2
    assert not await storage.nonces.seen("n-1", T0 + timedelta(minutes=20))


# ------------------------------------------------------------------ restarts


async def test_everything_survives_close_and_reopen(storage_url: str) -> None:
    first = await open_storage(storage_url)
    vens = await register(first, 2)
    await first.events.put(an_event(3), notify=vens)
    await first.reports.add_points(points(vens[0], 10))
    await first.nonces.seen("n", T0)
    await first.close()

    second = await open_storage(storage_url)
    try:
        assert [v.ven_id for v in await second.vens.active()] == vens
        assert await second.events.get("ev-1") == an_event(3)
        item = await second.outbox.next_for(vens[1], now=T0)
        assert item is not None and item.payload == an_event(3).payload
        assert len(await second.reports.points(vens[0], T0, T0 + timedelta(days=1))) == 10
        assert await second.nonces.seen("n", T0)
    finally:
        await second.close()


_CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from vtn.storage import VenRegistration, open_storage

async def main(url):
    storage = await open_storage(url)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await storage.vens.register(VenRegistration(
        ven_id="000042", registration_id="r", fingerprint="F", ven_name="v", created_at=at))
    await storage.outbox.enqueue(["000042"], b"<queued/>", "k", at=at)
    print("committed", flush=True)
    await asyncio.Event().wait()  # hold the connections open until killed

asyncio.run(main(sys.argv[1]))
"""


async def test_sigkill_after_commit_loses_nothing(storage_url: str) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, storage_url, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        async with asyncio.timeout(60):
            assert await child.stdout.readline() == b"committed\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
    storage = await open_storage(storage_url)
    try:
        assert (await storage.vens.get("000042")) is not None
        assert [i.payload for i in await storage.outbox.pending("000042")] == [b"<queued/>"]
    finally:
        await storage.close()


@asynccontextmanager
async def postgres_statements(storage: Storage) -> AsyncIterator[list[str]]:
    """Every statement the PostgreSQL backend's pool sends meanwhile (each is a round trip),
    but asyncpg's own type introspection, done once per connection for a type it meets."""
    assert isinstance(storage.backend, PostgresBackend)
    sent: list[str] = []

    def logged(record: Any) -> None:
        if "pg_catalog" not in record.query and "'jit'" not in record.query:
            sent.append(record.query)

    pool = storage.backend.pool
    await _each_pooled(pool, lambda conn: conn.add_query_logger(logged))
    try:
        yield sent
    finally:
        await _each_pooled(pool, lambda conn: conn.remove_query_logger(logged))


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_postgres_report_updates_waiting_together_share_one_statement(
        storage: Storage) -> None:
    ven_ids = await register(storage, 12)

    def update(ven_id: str, n: int) -> ReportData:
        return ReportData(ven_id=ven_id, report_request_id="q", report_specifier_id="s",
                          received_at=T0, rows=tuple(
                              (f"r{k}", T0 + timedelta(seconds=n), None, float(k), None, None,
                               None) for k in range(10)))

    async with postgres_statements(storage) as sent:
        results = await asyncio.gather(*(
            storage.reports.store_update(v, [update(v, n)], ())
            for n in range(2) for v in ven_ids))
    # each caller gets its own answer; 24 updates of 12 VENs went as (at most) a few statements
    assert results == [(10, ())] * 24
    assert 2 <= len(sent) <= 4  # one VEN per group: its second update waits for the next
    for v in ven_ids:
        stored = await storage.reports.points(v, T0, T0 + timedelta(minutes=1))
        assert len(stored) == 20


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_postgres_polls_and_answers_waiting_together_share_one_statement(
        storage: Storage) -> None:
    """A fan-out's two statements per VEN (its poll's delivery, its acknowledgement) are
    shared by the VENs that wait together."""
    ven_ids = await register(storage, 12)
    await storage.events.put(replace(an_event(0), targets=()), notify=ven_ids)  # for everyone
    now = T0 + timedelta(minutes=1)
    polls = [Distribution(ven_id=v, statuses=(EventStatus.FAR,), now=now,
                          cancelled_since=T0) for v in ven_ids]

    def refuse(current: dict[str, int]) -> NoReturn:
        raise AssertionError(current)

    async with postgres_statements(storage) as sent:
        delivered = await asyncio.gather(*(storage.events.deliver_next(p) for p in polls))
    assert [d.item.ven_id for d in delivered if d is not None] == ven_ids
    assert len(sent) == 1
    async with postgres_statements(storage) as sent:
        stored = await asyncio.gather(*(storage.events.record_answer(
            v, [EventAck(event_id="ev-1", ven_id=v, modification_number=0,
                         opt_type=OptType.OPT_IN, at=now)],
            fingerprint=ven(n).fingerprint, refuse=refuse) for n, v in enumerate(ven_ids)))
    assert [d[0].ack_modification_number for d in stored if d] == [0] * 12
    assert len(sent) == 1


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_postgres_poll_delivery_is_one_statement(storage: Storage) -> None:
    (ven_id,) = await register(storage, 1)
    await storage.events.put(an_event(0), notify=[ven_id])
    await storage.outbox.enqueue([ven_id], b"<report/>", "oadrCreateReport", at=T0)
    event_list = Distribution(ven_id=ven_id, statuses=(EventStatus.FAR,), now=T0,
                              cancelled_since=T0)
    async with postgres_statements(storage) as sent:
        delivered = await storage.events.deliver_next(event_list)
    assert delivered is not None and delivered.item.kind == "oadrDistributeEvent"
    assert len(sent) == 1
