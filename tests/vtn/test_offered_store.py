"""Storage of the reports the VTN offers (vtn.storage.offered), on SQLite and PostgreSQL; and
revision 0002 applied to a database already at 0001 with data in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.kit.storage import ven
from vtn.migrations import upgrade
from vtn.storage import (
    OfferedReport,
    OfferedRequest,
    ReportRequestStatus,
    Storage,
    open_storage,
)
from vtn.storage._engine import create_engine_for

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def offer(ven_id: str, spec: str, *r_ids: str) -> OfferedReport:
    return OfferedReport(ven_id=ven_id, report_specifier_id=spec, report_name="x-SETTLEMENT",
                         r_ids=r_ids, payload=b"<metadata/>", offered_at=T0)


def request(ven_id: str, request_id: str, spec: str, *r_ids: str,
            ends_at: datetime | None = None) -> OfferedRequest:
    return OfferedRequest(ven_id=ven_id, report_request_id=request_id, report_specifier_id=spec,
                          r_ids=r_ids, granularity=timedelta(minutes=15), ends_at=ends_at,
                          created_at=T0)


async def _two_vens(storage: Storage) -> tuple[str, str]:
    a = (await storage.vens.register(ven(1))).ven_id
    b = (await storage.vens.register(ven(2))).ven_id
    return a, b


async def test_an_offer_replaces_the_previous_one_per_ven(storage: Storage) -> None:
    a, b = await _two_vens(storage)
    repo = storage.offered
    await repo.offer(a, [offer(a, "s1", "r1"), offer(a, "s2", "r2")])
    await repo.offer(b, [offer(b, "s9", "r9")])
    await repo.offer(a, [offer(a, "s3", "r3", "r4")])
    assert [(o.report_specifier_id, o.r_ids) for o in await repo.offers(a)] == [
        ("s3", ("r3", "r4"))]
    assert [o.report_specifier_id for o in await repo.offers(b)] == ["s9"]


async def test_requests_are_stored_all_or_none_and_only_for_what_was_offered(
        storage: Storage) -> None:
    a, b = await _two_vens(storage)
    repo = storage.offered
    await repo.offer(a, [offer(a, "s1", "r1", "r2")])
    await repo.offer(b, [offer(b, "s2", "r1")])
    # another VEN's report, and an rID outside the offer: nothing of the batch is stored
    assert await repo.accept(a, [request(a, "q1", "s1", "r1"), request(a, "q2", "s2", "r1"),
                                 request(a, "q3", "s1", "r9")]) == ("q2", "q3")
    assert await repo.requests(a) == ()
    assert await repo.accept(a, [request(a, "q1", "s1", "r1", "r2")]) == ()
    (stored,) = await repo.requests(a)
    assert (stored.report_request_id, stored.r_ids, stored.status) == (
        "q1", ("r1", "r2"), ReportRequestStatus.ACTIVE)
    assert stored.granularity == timedelta(minutes=15)


async def test_data_is_recorded_only_for_a_live_request_and_its_answer_on_it(
        storage: Storage) -> None:
    a, _ = await _two_vens(storage)
    repo = storage.offered
    await repo.offer(a, [offer(a, "s1", "r1")])
    await repo.accept(a, [request(a, "q1", "s1", "r1"),
                          request(a, "q2", "s1", "r1", ends_at=T0 + timedelta(hours=1))])
    sent = await repo.record_send(a, "q1", "u1", at=T0)
    assert sent is not None and sent[0].report_specifier_id == "s1" and sent[1]
    again = await repo.record_send(a, "q1", "u1", at=T0 + timedelta(seconds=1))
    assert again is not None and not again[1]  # the same requestID: recorded once
    assert await repo.record_send(a, "nope", "u2", at=T0) is None
    assert await repo.record_send(a, "q2", "u3", at=T0 + timedelta(hours=1)) is None  # over
    assert [r.report_request_id for r in await repo.requests(a, live_at=T0 + timedelta(hours=2))
            ] == ["q1"]
    assert await repo.cancel(a, ["q1", "q1", "unknown"], at=T0) == ("q1",)
    assert await repo.cancel(a, ["q1"], at=T0) == ()  # a re-sent cancel changes nothing
    assert await repo.record_send(a, "q1", "u4", at=T0) is None
    assert await repo.record_answer(a, "u1", 200, at=T0 + timedelta(seconds=5))
    assert not await repo.record_answer(a, "u-unknown", 200, at=T0)
    (send,) = await repo.sends(a)
    assert (send.request_id, send.report_request_id, send.response_code, send.answered_at) == (
        "u1", "q1", 200, T0 + timedelta(seconds=5))
    # asking again under the same reportRequestID makes it live again
    assert await repo.accept(a, [request(a, "q1", "s1", "r1")]) == ()
    assert await repo.record_send(a, "q1", "u5", at=T0) is not None


async def test_revision_0002_upgrades_a_0001_database_keeping_its_data(
        storage_url: str) -> None:
    engine = create_engine_for(storage_url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO vens (ven_id, registration_id, fingerprint, ven_name, profile_name,"
                " transport_name, http_pull_model, report_only, xml_signature, created_at)"
                " VALUES ('v1', 'r1', 'AA:01', 'old', '2.0b', 'simpleHttp', true, false, false,"
                " :at)"), {"at": T0})
    finally:
        await engine.dispose()
    storage = await open_storage(storage_url)
    try:
        async with storage.engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert version == "0006"  # opened storage is at head
        assert (await storage.vens.get("v1")) is not None
        await storage.offered.offer("v1", [offer("v1", "s1", "r1")])
        assert [o.report_specifier_id for o in await storage.offered.offers("v1")] == ["s1"]
    finally:
        await storage.close()
