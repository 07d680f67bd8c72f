"""Offers from the flex forecast (reference scenario 2), baseline forecasts, telemetry aggregation,
MSP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from cbp.devices import DeviceClass, FaultInjector, build_pool
from cbp.market import (
    Accepted,
    IspCalendar,
    IspRef,
    MarketRules,
    OfferBook,
    Sample,
    check_pool_coherence,
)
from cbp.pool import (
    MspRecorder,
    PoolConfig,
    aggregate_sample,
    baseline_due,
    build_offer,
    build_offers,
    forecast_baseline,
    forecast_flex_mw,
    offer_volume_mw,
)

RULES, CONFIG = MarketRules(), PoolConfig()
ISP57 = IspRef(day=date(2025, 3, 14), index=57)
DT = timedelta(seconds=4)


@pytest.mark.parametrize(
    ("forecast", "offered"),
    [("5.6", "5"), ("5.55", "4"), ("1.2", "1"), ("1.1", None), ("0", None), ("12.3", "11")],
)
def test_offer_volume_keeps_margin_and_rounds_down(forecast: str, offered: str | None) -> None:
    volume = offer_volume_mw(Decimal(forecast), RULES, CONFIG)
    assert volume == (None if offered is None else Decimal(offered))


def test_scenario_2_offer_is_accepted_by_the_book() -> None:
    offer = build_offer(pool_id="VDB-AFRR-01", aggregator_id="AGG-1", isp=ISP57,
                        forecast_mw=Decimal("5.6"), price_eur_per_mwh=Decimal("180"),
                        rules=RULES, config=CONFIG)  # fmt: skip
    assert offer is not None and offer.mw == Decimal("5") and offer.available_mw == Decimal("5.6")
    assert offer.offer_id == "VDB-AFRR-01:2025-03-14:57:up"
    book = OfferBook(RULES)
    result = book.submit(offer, datetime(2025, 3, 14, 12, 20, tzinfo=UTC))  # 13:20 local
    assert isinstance(result, Accepted) and not result.already_submitted


def test_build_offers_skips_isps_under_the_minimum() -> None:
    isps = {IspRef(day=date(2025, 3, 14), index=i): Decimal(mw)
            for i, mw in ((58, "0.9"), (57, "5.6"), (59, "2.3"))}  # fmt: skip
    offers = build_offers(pool_id="P", aggregator_id="A", forecasts_mw=isps,
                          price_eur_per_mwh=Decimal("180"), rules=RULES, config=CONFIG)  # fmt: skip
    assert [(o.isp.index, o.mw) for o in offers] == [(57, Decimal("5")), (59, Decimal("2"))]


START = datetime(2025, 3, 14, 12, 20, tzinfo=UTC)


def test_flex_forecast_for_isp_57_supports_an_offer_and_ignores_offline_devices() -> None:
    pool = build_pool(2000, seed=7, start=START)
    isp_start = IspCalendar(RULES).isp_start(ISP57)
    flex = forecast_flex_mw(pool, START, isp_start, RULES)
    assert Decimal("3") < flex < Decimal("12")
    assert flex == flex.quantize(RULES.pool_resolution_mw)
    offer = offer_volume_mw(flex, RULES, CONFIG)
    assert offer is not None and offer <= flex * Decimal("0.9")
    evs = pool.of_class(DeviceClass.EV_CHARGER)
    faults = FaultInjector()
    faults.offline([d.device_id for d in evs], START, None)
    faults.apply(START, pool)
    assert forecast_flex_mw(pool, START, isp_start, RULES) < Decimal("2")


def test_baseline_forecast_tracks_the_idle_pool() -> None:
    pool = build_pool(2000, seed=7, start=START)
    made = forecast_baseline(pool, START, RULES, CONFIG)
    assert [p.horizon for p in made.points] == list(CONFIG.forecast_horizons)
    measured = {}
    for k in range(0, 151):  # 10 minutes idle
        now = START + k * DT
        total = sum(v for v in pool.step(now, {}).values() if v is not None)
        measured[now] = Decimal(repr(total)) / 1000
    for point in made.points:
        error = abs(point.mw - measured[point.target]) / measured[point.target]
        assert error < Decimal("0.05"), point.horizon
    assert baseline_due(None, START, CONFIG)
    assert not baseline_due(START, START + timedelta(seconds=59), CONFIG)
    assert baseline_due(START, START + timedelta(seconds=60), CONFIG)


def test_device_rows_add_up_to_the_pool_row_and_missing_stay_missing() -> None:
    pool = build_pool(300, seed=5, start=START)
    gone = pool.devices[0].device_id
    faults = FaultInjector()
    faults.offline([gone], START + DT, None)
    pool_rows, device_rows = [], {}
    for k in range(10):
        now = START + k * DT
        faults.apply(now, pool)
        row, rows = aggregate_sample(now, pool.step(now, {}), RULES)
        pool_rows.append(Sample(at=now, value=row.mw))
        for device_id, kw in rows.items():
            device_rows.setdefault(str(device_id), []).append(Sample(at=now, value=kw))
        assert row.reporting + len(row.missing) == 300
        assert row.complete is (k == 0) and (k == 0 or row.missing == (gone,))
        assert all(v == v.quantize(Decimal("0.1")) for v in rows.values())
    assert len(device_rows[str(gone)]) == 1  # one real sample, nothing filled in afterwards
    coherence = check_pool_coherence(pool_rows, device_rows, RULES)
    assert coherence.coherent and coherence.checked == 10


def test_the_pool_row_is_the_exact_sum_of_the_device_rows_and_lists_the_missing_in_uuid_order(
) -> None:
    readings: dict[UUID, float | None] = {
        UUID(int=(7919 * i) % 1000): (None if i % 3 == 0 else 0.05 + i * 1.37) for i in range(1000)}
    row, rows = aggregate_sample(START, readings, RULES)
    assert row.mw == (sum(rows.values(), Decimal(0)) / 1000).quantize(
        RULES.pool_resolution_mw, rounding="ROUND_HALF_UP")
    missing = [d for d, kw in readings.items() if kw is None]
    assert list(row.missing) == sorted(missing) != missing
    assert row.reporting == len(rows) == 1000 - len(missing)


def _rows(values: dict[UUID, str]) -> dict[UUID, Decimal]:
    return {d: Decimal(v) for d, v in values.items()}


def test_msp_rows_cover_five_minutes_either_side_for_activated_devices_only() -> None:
    a, b, idle = UUID(int=1), UUID(int=2), UUID(int=3)
    recorder = MspRecorder(CONFIG)
    t0 = datetime(2025, 3, 14, 12, 50, tzinfo=UTC)  # 13:50 local
    start = datetime(2025, 3, 14, 13, 3, tzinfo=UTC)
    last = datetime(2025, 3, 14, 13, 12, 56, tzinfo=UTC)
    n = int((datetime(2025, 3, 14, 13, 20, tzinfo=UTC) - t0) / DT)
    for k in range(n):
        now = t0 + k * DT
        if now == start:
            recorder.begin("evt-1", start)
            recorder.mark_activated("evt-1", [a])
        if now == start + timedelta(minutes=2):
            recorder.mark_activated("evt-1", [b])  # added later: still from 13:58 local
        if now == last:
            recorder.end("evt-1", last)
        missing_b = start <= now < start + 3 * DT
        recorder.record(now, _rows({a: "7.5", idle: "2.5"} | ({} if missing_b else {b: "7.4"})))
        if now < last + timedelta(minutes=5):
            assert recorder.ready(now) == ()
    assert recorder.ready(t0 + n * DT) == ("evt-1",)
    data = recorder.take("evt-1")
    assert set(data.rows) == {a, b}
    assert data.window_start == datetime(2025, 3, 14, 12, 58, tzinfo=UTC)
    assert data.window_end == datetime(2025, 3, 14, 13, 17, 56, tzinfo=UTC)
    assert len(data.rows[a]) == 300  # 13:58:00 .. 14:17:56 local, every 4 s
    assert data.rows[a][0].at == data.window_start and data.rows[a][-1].at == data.window_end
    assert len(data.rows[b]) == 297  # its three missing samples are absent, not invented
    with pytest.raises(KeyError):
        recorder.take("evt-1")
