"""The exceptions of docs/architecture.md#reference-scenarios with numbers of our own: partial
delivery and its penalty, data gaps, a device clock 7 s off, a late acknowledgement, pool coherence,
an ISP-crossing activation,
and a downward activation. Each test states its numbers."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from cbp.market import (
    BaselineMonitor,
    Direction,
    Flag,
    IspCalendar,
    IspRef,
    MarketRules,
    Sample,
    SampleQuality,
    check_ack,
    check_pool_coherence,
    regularise,
    round_energy,
    settle_tso,
    split_by_isp,
    validate_delivery,
)

AMS = ZoneInfo("Europe/Amsterdam")
DT = timedelta(seconds=4)
RULES = MarketRules()
T0 = datetime(2025, 3, 14, 14, 20, tzinfo=AMS)  # ISP 58


def block(mw: str, count: int, start: datetime = T0) -> tuple[Sample, ...]:
    return tuple(Sample(at=start + k * DT, value=Decimal(mw)) for k in range(count))


def meter(response_mw: str, count: int, start: datetime = T0, base: str = "9.2",
          skip: range = range(0), lag: int = 2) -> tuple[Sample, ...]:  # fmt: skip
    """9.2 MW from 2 min before ``start`` to 2 min after the block, less ``response_mw`` for
    ``count`` samples beginning ``lag`` samples after ``start`` (the pool follows the setpoint
    L = 2 samples late, the latest the settled-energy cap pays in full); indices in ``skip``
    (relative to ``start``) are not sent."""
    out = []
    for k in range(-30, count + 30):
        if k in skip:
            continue
        value = Decimal(base) - (Decimal(response_mw) if lag <= k < count + lag else 0)
        out.append(Sample(at=start + k * DT, value=value))
    return tuple(out)


def test_partial_delivery_below_90_percent_is_penalised_at_the_clearing_price() -> None:
    # 2 MW requested for 45 samples: E_req = 90 * 4 / 3600 = 0.1 MWh; the pool gives 1.6 MW:
    # E_del = 0.08, rho = 0.80. Payment = 0.08 * 200.40 = 16.032 -> 16.03; penalty
    # = (0.09 - 0.08) * 1.25 * max(200.40, 180) = 2.505 -> 2.51 (half-up; half-even gives 2.50).
    delivery = validate_delivery(block("2", 45), meter("1.6", 45), block("9.2", 60), RULES)
    assert delivery.ratio == Decimal("0.8")
    s = settle_tso(delivery, clearing_price=Decimal("200.40"), bid_price=Decimal("180"),
                   rules=RULES)  # fmt: skip
    assert (str(s.requested_mwh), str(s.delivered_mwh), str(s.settled_mwh)) == (
        "0.100000", "0.080000", "0.080000",
    )  # fmt: skip
    assert str(s.ratio) == "0.8000"
    assert str(s.payment_eur) == "16.03"
    assert str(s.penalty_eur) == "2.51"
    assert str(s.net_eur) == "13.52"


def test_penalty_uses_the_bid_when_it_exceeds_the_clearing_price() -> None:
    # Same shortfall 0.01 MWh * 1.25 * max(200.40, 250) = 3.125 -> 3.13.
    delivery = validate_delivery(block("2", 45), meter("1.6", 45), block("9.2", 60), RULES)
    s = settle_tso(delivery, clearing_price=Decimal("200.40"), bid_price=Decimal("250"),
                   rules=RULES)  # fmt: skip
    assert str(s.penalty_eur) == "3.13"


def test_exactly_90_percent_is_not_penalised() -> None:
    delivery = validate_delivery(block("2", 45), meter("1.8", 45), block("9.2", 60), RULES)
    assert delivery.ratio == Decimal("0.9")
    s = settle_tso(delivery, clearing_price=Decimal("200"), bid_price=Decimal("180"), rules=RULES)
    assert str(s.penalty_eur) == "0.00"
    assert str(s.payment_eur) == "18.00"  # 0.09 MWh * 200


def test_three_missing_samples_are_interpolated_and_flagged_estimated() -> None:
    # 2 MW for 30 samples, delivered at once: E_del = 60 * 4 / 3600 = 0.066667 MWh either way.
    delivery = validate_delivery(block("2", 30), meter("2", 30, skip=range(10, 13)),
                                 block("9.2", 40), RULES)  # fmt: skip
    assert delivery.delivered_mwh * 3600 / 4 == 60
    assert delivery.count(SampleQuality.ESTIMATED) == 3
    assert delivery.flags == (Flag.ESTIMATED,)
    estimated = [r for r in delivery.rows if r.quality is SampleQuality.ESTIMATED]
    assert [r.at for r in estimated] == [T0 + k * DT for k in (10, 11, 12)]


def test_five_missing_samples_count_as_zero_delivery_never_fabricated() -> None:
    # 5 gone: those samples deliver 0 -> 50 of 60 MW-samples, rho = 0.8333 -> penalty
    # (0.9 * 0.066667 - 0.055556) * 1.25 * 200 = 0.0044444 * 250 = 1.111 -> 1.11.
    delivery = validate_delivery(block("2", 30), meter("2", 30, skip=range(10, 15)),
                                 block("9.2", 40), RULES)  # fmt: skip
    assert delivery.delivered_mwh * 3600 / 4 == 50
    assert delivery.count(SampleQuality.MISSING) == 5
    assert delivery.flags == (Flag.MISSING_COUNTED_ZERO,)
    assert all(r.measured_mw is None for r in delivery.rows if r.quality is SampleQuality.MISSING)
    s = settle_tso(delivery, clearing_price=Decimal("200"), bid_price=Decimal("180"), rules=RULES)
    assert (str(s.ratio), str(s.penalty_eur)) == ("0.8333", "1.11")


def test_interpolation_is_linear_and_only_between_real_neighbours() -> None:
    values = {0: "1", 4: "5", 9: "9"}  # gap of 3 (1..3) then a gap of 4 (5..8)
    samples = [Sample(at=T0 + k * DT, value=Decimal(v)) for k, v in values.items()]
    grid = regularise(samples, RULES, span=(T0 - 2 * DT, T0 + 9 * DT))
    got = {(p.at - T0) // DT: (p.value, p.quality) for p in grid.points}
    assert got[2] == (Decimal(3), SampleQuality.ESTIMATED)
    assert [got[k][1] for k in (5, 6, 7, 8)] == [SampleQuality.MISSING] * 4
    assert [got[k][1] for k in (-2, -1)] == [SampleQuality.MISSING] * 2  # edge: one side unknown
    assert got[9] == (Decimal(9), SampleQuality.MEASURED)


def test_device_clock_7_s_ahead_is_realigned_and_flagged() -> None:
    skewed = tuple(Sample(at=s.at + timedelta(seconds=7), value=s.value)
                   for s in meter("2", 30))  # fmt: skip
    known = validate_delivery(block("2", 30), skewed, block("9.2", 40), RULES,
                              clock_offset=timedelta(seconds=7))  # fmt: skip
    assert known.delivered_mwh * 3600 / 4 == 60 and known.settled_mwh == known.delivered_mwh
    assert known.realigned_samples == 90
    assert known.flags == (Flag.CLOCK_REALIGNED,)
    # With the offset unknown, each sample snaps to the nearest grid point (+8 s): the response
    # looks 2 samples later than it was, the last 2 fall outside the window (56 of 60 MW-samples
    # count), and the data is flagged so the shortfall can be traced to the clock.
    unknown = validate_delivery(block("2", 30), skewed, block("9.2", 40), RULES)
    assert unknown.flags == (Flag.CLOCK_REALIGNED,)
    assert unknown.delivered_mwh * 3600 / 4 == 56
    assert unknown.settled_mwh * 3600 / 4 == 56


def test_duplicate_samples_after_realignment_keep_the_first_and_flag() -> None:
    samples = (*meter("2", 30), Sample(at=T0 + timedelta(seconds=1), value=Decimal("0")))
    delivery = validate_delivery(block("2", 30), samples, block("9.2", 40), RULES)
    assert Flag.DUPLICATE_SAMPLES_DROPPED in delivery.flags
    assert delivery.delivered_mwh * 3600 / 4 == 60  # the first (real) sample was kept


def test_acknowledgement_at_31_s_is_late_at_30_s_on_time() -> None:
    sent = datetime(2025, 3, 14, 14, 2, 30, tzinfo=AMS)
    assert check_ack(sent, sent + timedelta(seconds=31), RULES).late
    on_time = check_ack(sent, sent + timedelta(seconds=30), RULES)
    assert not on_time.late and on_time.delay == timedelta(seconds=30)


def test_pool_coherence_within_rounding() -> None:
    # Devices at 0.1 kW resolution: 2.5 + 7.5 + 4.9 = 14.9 kW; pool row at 1 kW: 0.015 MW.
    # Tolerance 3 * 0.05 kW + 0.5 kW = 0.00065 MW; a pool row of 0.017 MW is off by 0.0021 MW.
    devices = {name: block(kw, 2) for name, kw in (("psn1_a", "2.5"), ("psn1_b", "7.5"),
                                                    ("psn1_c", "4.9"))}  # fmt: skip
    pool = (Sample(at=T0, value=Decimal("0.015")), Sample(at=T0 + DT, value=Decimal("0.017")))
    result = check_pool_coherence(pool, devices, RULES)
    assert result.tolerance_mw == Decimal("0.00065")
    assert result.incoherent == (T0 + DT,)
    assert result.max_deviation_mw == Decimal("0.0021")
    assert check_pool_coherence(pool[:1], devices, RULES).coherent


def test_activation_crossing_an_isp_boundary_is_split_per_isp() -> None:
    start = datetime(2025, 3, 14, 14, 14, tzinfo=AMS)  # 15 samples in ISP 57, 15 in ISP 58
    delivery = validate_delivery(block("2", 30, start), meter("2", 30, start),
                                 block("9.2", 40, start), RULES)  # fmt: skip
    parts = split_by_isp(delivery, IspCalendar(RULES))
    day = date(2025, 3, 14)
    assert sorted(parts) == [IspRef(day=day, index=57), IspRef(day=day, index=58)]
    # Each ISP: 15 samples * 2 MW requested; the 2-late responses go with the setpoints they
    # answer, so both ISPs deliver in full; together they equal the whole activation.
    for part in parts.values():
        assert part.requested_mwh * 3600 / 4 == 30
        assert part.delivered_mwh * 3600 / 4 == 30
        assert part.ratio == 1
    # Per-ISP statements round each part on its own (2 x 0.033333), the exact parts add up.
    assert {round_energy(p.settled_mwh) for p in parts.values()} == {Decimal("0.033333")}
    assert (sum(p.settled_mwh for p in parts.values()) - delivery.settled_mwh).copy_abs() < Decimal(
        "1e-20"
    )


def test_downward_activation_counts_extra_consumption() -> None:
    up_meter = meter("-1", 30)  # consumption rises by 1 MW
    delivery = validate_delivery(block("1", 30), up_meter, block("9.2", 40), RULES,
                                 direction=Direction.DOWN)  # fmt: skip
    assert delivery.ratio == 1
    wrong_way = validate_delivery(block("1", 30), up_meter, block("9.2", 40), RULES)
    assert wrong_way.delivered_mwh == 0


@given(
    setpoints=st.lists(st.integers(0, 50), min_size=1, max_size=40),
    responses=st.lists(st.integers(-60, 60), min_size=45, max_size=45),
)
def test_settled_never_exceeds_delivered_or_requested(setpoints: list[int],
                                                      responses: list[int]) -> None:  # fmt: skip
    tenth = Decimal("0.1")
    sp = tuple(Sample(at=T0 + k * DT, value=v * tenth) for k, v in enumerate(setpoints))
    measured = tuple(Sample(at=T0 + (k - 3) * DT, value=Decimal("9.2") - r * tenth)
                     for k, r in enumerate(responses))  # fmt: skip
    delivery = validate_delivery(sp, measured, block("9.2", 45, T0 - 3 * DT), RULES)
    assert 0 <= delivery.settled_mwh <= delivery.delivered_mwh
    assert delivery.settled_mwh <= delivery.requested_mwh


def test_baseline_monitor_recovers_and_counts_a_resent_isp_once() -> None:
    # Offered 5 MW; a +0.8 MW forecast error is 16 %, an exact forecast 0 %.
    monitor = BaselineMonitor(RULES)
    day = date(2025, 3, 14)
    metered = block("9.0", 225)
    biased = tuple(Sample(at=s.at, value=s.value + Decimal("0.8")) for s in metered)
    monitor.record_idle_isp(IspRef(day=day, index=40), biased, metered, Decimal("5"))
    assert monitor.flagged
    # Re-sending ISP 40's data replaces it rather than counting twice.
    again = monitor.record_idle_isp(IspRef(day=day, index=40), metered, metered, Decimal("5"))
    assert again.samples == 225 and again.nmae == 0 and not monitor.flagged
    # One bad ISP among four pooled: 16 % / 4 = 4 % NMAE and bias -> acceptable.
    monitor.record_idle_isp(IspRef(day=day, index=41), biased, metered, Decimal("5"))
    for index in (42, 43):
        quality = monitor.record_idle_isp(IspRef(day=day, index=index), metered, metered,
                                          Decimal("5"))  # fmt: skip
    assert quality.nmae == Decimal("0.04") and quality.acceptable
