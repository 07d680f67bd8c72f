"""ISP calendar (docs/architecture.md#market-rules) and the MarketRules configuration."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cbp.market import IspCalendar, IspRef, MarketRules, MarketRulesError, NoSuchIsp

AMS = ZoneInfo("Europe/Amsterdam")
SCENARIO_DAY = date(2025, 3, 14)


def test_isp_57_on_the_scenario_day_is_14_00_local() -> None:
    cal = IspCalendar()
    isp = IspRef(day=SCENARIO_DAY, index=57)
    assert cal.isp_start(isp) == datetime(2025, 3, 14, 13, 0, tzinfo=UTC)  # CET = UTC+1
    assert cal.isp_end(isp) == datetime(2025, 3, 14, 13, 15, tzinfo=UTC)
    assert cal.isp_start(isp).tzinfo is UTC


@pytest.mark.parametrize(
    ("day", "count"),
    [(date(2025, 3, 14), 96), (date(2025, 3, 30), 92), (date(2025, 10, 26), 100)],
)
def test_isp_count_per_day_including_dst(day: date, count: int) -> None:
    cal = IspCalendar()
    assert cal.isp_count(day) == count
    assert len(list(cal.isps(day))) == count
    last = IspRef(day=day, index=count)
    assert cal.isp_end(last) == cal.day_start(day + timedelta(days=1))


def test_isp_97_on_a_normal_day_does_not_exist() -> None:
    cal = IspCalendar()
    with pytest.raises(NoSuchIsp, match="no ISP 97 on 2025-03-14"):
        cal.isp_start(IspRef(day=SCENARIO_DAY, index=97))
    with pytest.raises(NoSuchIsp):
        cal.isp_start(IspRef(day=SCENARIO_DAY, index=0))
    # ...but ISP 97..100 exist on the autumn DST day.
    assert cal.isp_start(IspRef(day=date(2025, 10, 26), index=100)) == datetime(
        2025, 10, 26, 22, 45, tzinfo=UTC
    )


def test_isp_at_maps_instants_back_including_the_repeated_hour() -> None:
    cal = IspCalendar()
    assert cal.isp_at(datetime(2025, 3, 14, 14, 7, 30, tzinfo=AMS)) == IspRef(
        day=SCENARIO_DAY, index=57
    )
    # 2025-10-26: local 02:00 occurs twice; CEST 02:00 = 00:00Z is ISP 9, CET 02:00 = 01:00Z is 13.
    assert cal.isp_at(datetime(2025, 10, 26, 0, 0, tzinfo=UTC)).index == 9
    assert cal.isp_at(datetime(2025, 10, 26, 1, 0, tzinfo=UTC)).index == 13
    # ISP start is inclusive, end exclusive.
    assert cal.isp_at(datetime(2025, 3, 14, 13, 15, tzinfo=UTC)).index == 58
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.isp_at(datetime(2025, 3, 14, 13, 15))


def test_every_isp_round_trips_on_a_dst_day() -> None:
    cal = IspCalendar()
    for isp in cal.isps(date(2025, 3, 30)):
        assert cal.isp_at(cal.isp_start(isp)) == isp
        assert cal.isp_at(cal.isp_end(isp) - timedelta(microseconds=1)) == isp


def test_compressed_profile_runs_an_isp_in_a_minute() -> None:
    rules = MarketRules.compressed()
    cal = IspCalendar(rules)
    assert cal.isp_count(SCENARIO_DAY) == 1440
    assert rules.samples_per_isp == 15
    assert cal.isp_end(IspRef(day=SCENARIO_DAY, index=1)) - cal.day_start(
        SCENARIO_DAY
    ) == timedelta(minutes=1)


def test_defaults_are_the_design_numbers() -> None:
    r = MarketRules()
    assert (r.isp_length, r.gate_closure, r.sample_period) == (
        timedelta(minutes=15), timedelta(minutes=25), timedelta(seconds=4),
    )  # fmt: skip
    assert (r.min_offer_mw, r.offer_step_mw, r.max_abs_price_eur_per_mwh) == (
        Decimal(1), Decimal(1), Decimal(15000),
    )  # fmt: skip
    assert (r.tracking_lag_samples, r.tolerance_ratio, r.penalty_factor) == (
        2, Decimal("0.90"), Decimal("1.25"),
    )  # fmt: skip
    assert (r.max_baseline_nmae, r.max_baseline_bias, r.max_interpolated_gap) == (
        Decimal("0.10"), Decimal("0.05"), 3,
    )  # fmt: skip
    assert r.ack_deadline == timedelta(seconds=30)
    assert r.samples_per_isp == 225


def test_rules_from_a_config_table() -> None:
    rules = MarketRules.from_mapping(
        {"isp_length_s": 300, "tolerance_ratio": "0.95", "tracking_lag_samples": 3}
    )
    assert rules.isp_length == timedelta(minutes=5)
    assert rules.tolerance_ratio == Decimal("0.95")
    assert rules.tracking_lag_samples == 3
    with pytest.raises(MarketRulesError, match="unknown market rule 'tolerance'"):
        MarketRules.from_mapping({"tolerance": "0.9"})
    with pytest.raises(MarketRulesError, match="seconds"):
        MarketRules.from_mapping({"isp_length": 300})
    with pytest.raises(MarketRulesError, match="divide one hour"):
        MarketRules.from_mapping({"isp_length_s": 7 * 60})
    with pytest.raises(MarketRulesError, match="fraction"):
        MarketRules(tolerance_ratio=Decimal("1.5"))


def test_a_phase_shifts_the_whole_grid_and_keeps_every_isp_round_trip() -> None:
    """A compressed grid 20 s after the minute: ISP 1 of the day starts at local 00:00:20, every
    instant maps to the ISP that contains it, an instant just before an ISP start belongs to the
    one before, and the last ISP of a day ends where the next day's first begins."""
    rules = replace(MarketRules.compressed(), isp_phase=timedelta(seconds=20))
    cal = IspCalendar(rules)
    first = IspRef(day=SCENARIO_DAY, index=1)
    assert cal.isp_start(first) == datetime(2025, 3, 14, 0, 0, 20, tzinfo=AMS).astimezone(UTC)
    for isp in list(cal.isps(SCENARIO_DAY))[::97]:
        start = cal.isp_start(isp)
        assert cal.isp_at(start) == isp
        assert cal.isp_at(start + timedelta(seconds=59)) == isp
        assert cal.isp_at(start - timedelta(microseconds=1)) != isp
    last = IspRef(day=SCENARIO_DAY, index=cal.isp_count(SCENARIO_DAY))
    assert cal.isp_end(last) == cal.isp_start(IspRef(day=SCENARIO_DAY + timedelta(days=1),
                                                     index=1))
    assert cal.isp_at(cal.isp_end(last)) == IspRef(day=SCENARIO_DAY + timedelta(days=1), index=1)


@pytest.mark.parametrize("seconds", [-4, 60, 6])
def test_a_phase_off_the_sample_grid_or_past_an_isp_is_refused(seconds: int) -> None:
    """Tried: a negative phase, one a whole ISP long, one that is not whole 4-s samples."""
    with pytest.raises(MarketRulesError, match="isp_phase"):
        replace(MarketRules.compressed(), isp_phase=timedelta(seconds=seconds))
