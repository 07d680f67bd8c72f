"""The settled-energy cap C_k = max(S_k, ..., S_(k-L)) and the 0.90 tolerance, with exact amounts.

Numbers: setpoints on the 4-s grid from T0 (ISP 58), baseline 9.2 MW flat, measured = 9.2 less the
response; L = 2 samples. One sample of 1 MW is 4/3600 MWh.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cbp.market import Delivery, MarketRules, Sample, settle_tso, validate_delivery

AMS = ZoneInfo("Europe/Amsterdam")
DT = timedelta(seconds=4)
RULES = MarketRules()
T0 = datetime(2025, 3, 14, 14, 20, tzinfo=AMS)


def _series(values: list[Decimal], start: datetime = T0) -> tuple[Sample, ...]:
    return tuple(Sample(at=start + k * DT, value=v) for k, v in enumerate(values))


def _delivery(setpoints: list[str], response: list[str], lag: int) -> Delivery:
    """``response[k]`` MW delivered at sample ``k + lag``; 9.2 MW baseline from 20 samples
    before T0 to 20 after the last setpoint."""
    span = range(-20, len(setpoints) + 20)
    answer = {k + lag: Decimal(r) for k, r in enumerate(response)}
    measured = [Decimal("9.2") - answer.get(k, Decimal(0)) for k in span]
    start = T0 + span[0] * DT
    return validate_delivery(_series([Decimal(s) for s in setpoints]), _series(measured, start),
                             _series([Decimal("9.2")] * len(span), start), RULES)  # fmt: skip


RAMP = ["1", "2", "3", "3", "3", "2", "1", "0"]  # 15 MW-samples requested


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_a_pool_following_at_once_or_up_to_l_samples_late_is_paid_in_full(lag: int) -> None:
    delivery = _delivery(RAMP, RAMP, lag)
    assert delivery.requested_mwh * 3600 / 4 == 15
    assert delivery.delivered_mwh * 3600 / 4 == 15
    assert delivery.settled_mwh * 3600 / 4 == 15


def test_at_once_the_cap_is_the_largest_of_the_last_three_setpoints() -> None:
    delivery = _delivery(RAMP, RAMP, 0)
    caps = [r.cap_mw for r in delivery.rows]
    # rows run from the first setpoint to L = 2 samples past the last one
    assert caps == [Decimal(v) for v in ("1", "2", "3", "3", "3", "3", "3", "2", "1", "0")]


def test_a_pool_three_samples_late_loses_what_it_gives_above_the_cap() -> None:
    # Late by 3, the pool gives S_(k-3) at k; all 15 MW-samples arrive in the window (k = 3..9).
    # On the ramp down it gives 3, 2, 1 at k = 7, 8, 9 where the caps are max(S_7, S_6, S_5) = 2,
    # then 1, then 0 (past the last setpoint S = 0): 1 MW-sample lost on each, 12 settled.
    delivery = _delivery(RAMP, RAMP, 3)
    assert delivery.delivered_mwh * 3600 / 4 == 15
    assert delivery.settled_mwh * 3600 / 4 == 12


def test_over_delivery_above_the_cap_is_unpaid() -> None:
    # 2 MW asked for 5 samples, the pool gives 3 MW at once: 15 delivered, 10 settled.
    delivery = _delivery(["2"] * 5, ["3"] * 5, 0)
    assert delivery.delivered_mwh * 3600 / 4 == 15
    assert delivery.settled_mwh * 3600 / 4 == 10
    assert delivery.ratio == Decimal("1.5")


def test_settled_energy_never_exceeds_the_request_on_a_falling_setpoint() -> None:
    # A step down from 3 to 0: holding 3 MW for L more samples stays under the cap (3, 3), but
    # the request was 3 MW for 1 sample: settled is bounded by the 3 MW-samples requested.
    delivery = _delivery(["3", "0", "0"], ["3", "3", "3"], 0)
    assert sum(r.settled_mw for r in delivery.rows) == 9
    assert delivery.settled_mwh * 3600 / 4 == 3


# The tolerance sweep: 100 MW requested for one ISP (225 samples) = 25 MWh; the pool follows the
# allowed 2 samples late at rho * 100 MW, so settled = delivered = rho * 25 MWh.
# Payment = settled * 200; penalty if rho < 0.90: (0.9 * 25 - rho * 25) * 1.25 * max(200, 180).
@pytest.mark.parametrize(
    ("rho", "payment", "penalty"),
    [
        ("0.85", "4250.00", "312.50"),  # 21.25 MWh; (22.5 - 21.25) * 250
        ("0.89", "4450.00", "62.50"),  # 22.25 MWh; 0.25 * 250
        ("0.8999", "4499.50", "0.63"),  # 22.4975 MWh; 0.0025 * 250 = 0.625 -> 0.63 half-up
        ("0.9001", "4500.50", "0.00"),  # 22.5025 MWh: at or above 0.90, no penalty
    ],
)
def test_tolerance_sweep_exact_amounts(rho: str, payment: str, penalty: str) -> None:
    delivery = _delivery(["100"] * 225, [str(Decimal(rho) * 100)] * 225, 2)
    assert delivery.requested_mwh == 25
    assert delivery.ratio == Decimal(rho)
    statement = settle_tso(delivery, clearing_price=Decimal("200"), bid_price=Decimal("180"),
                           rules=RULES)  # fmt: skip
    assert (str(statement.payment_eur), str(statement.penalty_eur)) == (payment, penalty)
