"""ReportRepository.store_update: one oadrUpdateReport in one transaction, the certificate check
inside it, and what the SQLite fast path stores reads back exactly (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vtn.storage import (
    ReportData,
    ReportPoint,
    ReportRequest,
    ReportRequestStatus,
    Storage,
    StorageConflict,
    VenRegistration,
)

T0 = datetime(2026, 10, 25, 0, 59, 58, 250_000, tzinfo=UTC)  # Europe/Amsterdam leaves DST


def ven(n: int) -> VenRegistration:
    return VenRegistration(ven_id=f"ven-{n}", registration_id=f"reg-{n}",
                           fingerprint=f"fp:{n:02d}", ven_name=f"ven {n}", created_at=T0)


def batch(ven_id: str, first: int, count: int, *, value: float = 0.5) -> list[ReportPoint]:
    """``count`` points on 4 s intervals from interval ``first``, two rIDs each, one of them
    without the optional fields, as a 10-point TELEMETRY report of two devices carries them."""
    return [
        ReportPoint(
            ven_id=ven_id, report_request_id="rr-1", report_specifier_id="TELEMETRY_USAGE",
            r_id=f"psn1_{k % 2}", dtstart=T0 + timedelta(seconds=4 * (k // 2)),
            duration=timedelta(seconds=4) if k % 2 else None,
            value=value + k if k % 2 else None, confidence=100 if k % 2 else None,
            accuracy=0.1 if k % 2 else None, data_quality="Quality Good - Non Specific"
            if k % 2 else None, received_at=T0 + timedelta(microseconds=1))
        for k in range(2 * first, 2 * first + count)
    ]


def update(points: list[ReportPoint]) -> list[ReportData]:
    """The points (all of one VEN, request and receipt, as batch() makes them) as one report."""
    first = points[0]
    return [ReportData(
        ven_id=first.ven_id, report_request_id=first.report_request_id,
        report_specifier_id=first.report_specifier_id, received_at=first.received_at,
        rows=tuple((p.r_id, p.dtstart, p.duration, p.value, p.confidence, p.accuracy,
                    p.data_quality) for p in points))]


def test_report_data_spells_out_the_points_it_was_made_from() -> None:
    sent = batch("ven-1", 0, 10)
    assert update(sent)[0].points() == sent


async def test_store_update_reads_back_exactly_and_is_idempotent(storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    sent = batch(a, 0, 10)
    for added in (10, 0):
        assert await storage.reports.store_update(
            a, update(sent), ["rr-1"], fingerprint="fp:01") == (added, ())
    stored = await storage.reports.points(a, T0, T0 + timedelta(minutes=1))
    assert stored == tuple(sorted(sent, key=lambda p: (p.dtstart, p.r_id)))


async def test_store_update_refuses_another_or_cancelled_certificate(storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    b = (await storage.vens.register(ven(2))).ven_id
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    # VEN 1's certificate naming VEN 2, and a certificate nobody registered: nothing stored.
    assert await storage.reports.store_update(
        b, update(batch(b, 0, 4)), (), fingerprint="fp:01") is None
    assert await storage.reports.store_update(
        b, update(batch(b, 0, 4)), (), fingerprint="fp:99") is None
    assert await storage.reports.points(b, *window) == ()
    assert await storage.reports.store_update(
        a, update(batch(a, 0, 4)), (), fingerprint="fp:01") == (4, ())
    assert await storage.vens.cancel("reg-1", T0) is not None
    assert await storage.reports.store_update(
        a, update(batch(a, 2, 4)), (), fingerprint="fp:01") is None
    assert len(await storage.reports.points(a, *window)) == 4


async def test_store_update_names_the_cancelled_requests_in_order(storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    for rrid in ("rr-1", "rr-2", "rr-3"):
        await storage.reports.put_request(ReportRequest(
            ven_id=a, report_request_id=rrid, report_specifier_id="TELEMETRY_USAGE",
            r_ids=("psn1_0",), created_at=T0))
    for rrid in ("rr-3", "rr-1"):
        await storage.reports.set_request_status(a, rrid, ReportRequestStatus.CANCELLED, at=T0)
    result = await storage.reports.store_update(
        a, update(batch(a, 0, 2)), ["rr-3", "rr-2", "rr-1", "rr-3"], fingerprint="fp:01")
    assert result == (2, ("rr-3", "rr-1"))


async def test_concurrent_updates_are_each_answered_for_their_own_points(
        storage: Storage) -> None:
    """Many reports at once (on SQLite they share commits): every caller gets its own count, a
    batch the database refuses fails alone, and every other batch is stored."""
    vens = [(await storage.vens.register(ven(n))).ven_id for n in range(8)]

    async def send(n: int) -> tuple[int, tuple[str, ...]] | None:
        v = vens[n % 8]
        return await storage.reports.store_update(v, update(batch(v, 5 * (n // 8), 10)), ["rr-1"])

    async def orphan() -> object:  # no such VEN: the foreign key refuses the whole batch
        nobody = update(batch("ven-nobody", 0, 10))
        return await storage.reports.store_update("ven-nobody", nobody, ())

    results = await asyncio.gather(*(send(n) for n in range(40)), orphan(),
                                   *(send(n) for n in range(40, 64)), return_exceptions=True)
    assert isinstance(results[40], StorageConflict)
    assert all(r == (10, ()) for r in results[:40] + results[41:])
    for v in vens:
        assert len(await storage.reports.points(v, T0, T0 + timedelta(hours=1))) == 80
    assert await storage.reports.points("ven-nobody", T0, T0 + timedelta(hours=1)) == ()


async def test_updates_waiting_together_are_each_refused_or_stored_on_their_own(
        storage: Storage) -> None:
    """At once: a cancelled registration, another VEN's certificate and naive times are
    refused, each alone; the other updates store their points and hear of their own
    cancelled requests."""
    vens = [(await storage.vens.register(ven(n))).ven_id for n in range(6)]
    for v in vens:
        await storage.reports.put_request(ReportRequest(
            ven_id=v, report_request_id="rr-1", report_specifier_id="TELEMETRY_USAGE",
            created_at=T0))
    await storage.reports.set_request_status(vens[2], "rr-1", ReportRequestStatus.CANCELLED,
                                             at=T0)
    assert await storage.vens.cancel("reg-1", T0) is not None
    naive = replace(batch(vens[4], 0, 1)[0], dtstart=datetime(2026, 1, 1))

    def send(n: int, points: list[ReportPoint] | None = None,
             fingerprint: str | None = None) -> object:
        return storage.reports.store_update(
            vens[n], update(points or batch(vens[n], 0, 4)), ["rr-1"],
            fingerprint=fingerprint or f"fp:{n:02d}")

    results = await asyncio.gather(
        send(0), send(1), send(2), send(3, fingerprint="fp:05"), send(4, [naive]), send(5),
        return_exceptions=True)
    assert results[:4] == [(4, ()), None, (4, ("rr-1",)), None]
    assert isinstance(results[4], ValueError) and results[5] == (4, ())
    window = (T0 - timedelta(days=400), T0 + timedelta(hours=1))
    assert [len(await storage.reports.points(v, *window)) for v in vens] == [4, 0, 4, 0, 0, 4]


async def test_a_time_in_any_zone_is_stored_as_the_core_path_stores_its_utc_instant(
        storage: Storage) -> None:
    """The hot path's times (store_update) and the Core path's (add_points, UtcDateTime) are the
    same stored value for one instant, whatever zone spells it: the same points sent again the
    other way, in another zone, add nothing, and read back as the UTC instants."""
    a = (await storage.vens.register(ven(1))).ven_id
    east, west = timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))

    def spelled(points: list[ReportPoint], zone: timezone) -> list[ReportPoint]:
        return [replace(p, dtstart=p.dtstart.astimezone(zone),
                        received_at=p.received_at.astimezone(zone)) for p in points]

    first, second = batch(a, 0, 6), batch(a, 3, 6)
    assert await storage.reports.store_update(
        a, update(spelled(first, east)), (), fingerprint="fp:01") == (6, ())
    assert await storage.reports.add_points(spelled(first, west)) == 0
    assert await storage.reports.add_points(spelled(second, west)) == 6
    assert await storage.reports.store_update(
        a, update(spelled(second, east)), (), fingerprint="fp:01") == (0, ())
    stored = await storage.reports.points(a, T0, T0 + timedelta(minutes=1))
    assert stored == tuple(sorted(first + second, key=lambda p: (p.dtstart, p.r_id)))
    assert all(p.dtstart.tzinfo is UTC for p in stored)


async def test_each_report_of_an_update_stores_its_points_under_its_own_ids(
        storage: Storage) -> None:
    """Several reports in one oadrUpdateReport: every point keeps its own report's request,
    specifier and receipt, whichever report came first."""
    a = (await storage.vens.register(ven(1))).ven_id
    first = batch(a, 0, 4)
    second = [replace(p, report_request_id="rr-2", report_specifier_id="TELEMETRY_STATUS",
                      received_at=T0 + timedelta(seconds=1)) for p in batch(a, 0, 6)]
    assert await storage.reports.store_update(
        a, update(first) + update(second), ["rr-1", "rr-2"], fingerprint="fp:01") == (10, ())
    stored = await storage.reports.points(a, T0, T0 + timedelta(minutes=1))
    assert len(stored) == 10 and set(stored) == set(first + second)


async def test_store_update_refuses_naive_times(storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    bad = replace(batch(a, 0, 1)[0], dtstart=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        await storage.reports.store_update(a, update([bad]), (), fingerprint="fp:01")
    assert await storage.reports.points(a, T0 - timedelta(days=400), T0 + timedelta(days=1)) == ()


async def test_a_large_update_spans_statements_and_the_first_of_duplicates_wins(
        storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    sent = batch(a, 0, 5000)  # more rows than one SQLite statement takes (4,285)
    # The same natural key twice in one report, other value: the first one is kept.
    twice = [*sent, replace(sent[1], value=-1.0)]
    assert await storage.reports.store_update(
        a, update(twice), (), fingerprint="fp:01") == (5000, ())
    assert await storage.reports.store_update(a, update(sent), (), fingerprint="fp:01") == (0, ())
    stored = await storage.reports.points(a, T0, T0 + timedelta(days=1))
    assert len(stored) == 5000
    assert stored[1] == sent[1] and stored[1].value == 1.5


async def test_purge_points_deletes_only_what_starts_before_the_cutoff(storage: Storage) -> None:
    """Retention's delete, on both backends: by interval start, every VEN, optionally by rID."""
    a = (await storage.vens.register(ven(1))).ven_id
    b = (await storage.vens.register(ven(2))).ven_id
    for v, fp in ((a, "fp:01"), (b, "fp:02")):
        # 10 instants 4 s apart, two points each: device rows at even instants, pool rows at odd
        points = [replace(p, r_id=p.r_id if k % 4 < 2 else f"pool-{k % 2}")
                  for k, p in enumerate(batch(v, 0, 20))]
        assert await storage.reports.store_update(v, update(points), (), fingerprint=fp) == (
            20, ())
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    cutoff = T0 + timedelta(seconds=8)  # instants 0 (device rows) and 1 (pool rows) are older
    assert await storage.reports.purge_points(cutoff, r_id_prefix="psn1_") == 2 * 2  # 2 VENs
    left = await storage.reports.points(a, *window)
    assert len(left) == 18
    assert all(p.dtstart >= cutoff or not p.r_id.startswith("psn1_") for p in left)
    assert await storage.reports.purge_points(cutoff) == 2 * 2  # the pool rows of instant 1
    assert all(p.dtstart >= cutoff for p in await storage.reports.points(b, *window))
    assert await storage.reports.purge_points(cutoff) == 0
    # a prefix holding LIKE's wildcards matches only itself
    assert await storage.reports.purge_points(T0 + timedelta(hours=1), r_id_prefix="psn%") == 0


async def test_erase_r_ids_deletes_every_row_naming_them_and_nothing_else(
        storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    b = (await storage.vens.register(ven(2))).ven_id
    for v in (a, b):
        await storage.reports.store_update(v, update(batch(v, 0, 10)), ())
        await storage.reports.put_request(ReportRequest(
            ven_id=v, report_request_id="rr-1", report_specifier_id="TELEMETRY_USAGE",
            r_ids=("psn1_0", "psn1_1"), created_at=T0))
        await storage.reports.put_request(ReportRequest(
            ven_id=v, report_request_id="rr-2", report_specifier_id="POOL",
            r_ids=("pool",), created_at=T0))
    window = (T0, T0 + timedelta(hours=1))
    assert await storage.reports.erase_r_ids(a, {"psn1_0"}) == 5 + 1
    assert {p.r_id for p in await storage.reports.points(a, *window)} == {"psn1_1"}
    assert [r.report_request_id for r in await storage.reports.requests(a)] == ["rr-2"]
    assert len(await storage.reports.points(b, *window)) == 10  # another VEN's rows stay
    assert len(await storage.reports.requests(b)) == 2


async def test_erasing_a_ven_removes_it_from_every_table(storage: Storage) -> None:
    a = (await storage.vens.register(ven(1))).ven_id
    b = (await storage.vens.register(ven(2))).ven_id
    for v in (a, b):
        await storage.reports.store_update(v, update(batch(v, 0, 4)), ())
    assert await storage.vens.erase(a) == 4 + 1
    assert await storage.vens.get(a) is None and await storage.vens.by_fingerprint("fp:01") is None
    assert await storage.reports.points(a, T0, T0 + timedelta(hours=1)) == ()
    assert len(await storage.reports.points(b, T0, T0 + timedelta(hours=1))) == 4
