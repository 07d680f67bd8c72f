"""The TSO statement explained in words: one line per figure, each with the statement's value."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from cbp.market import MarketRules, Sample, explain_statement, price_text, settle_tso
from cbp.market import validate_delivery as validate

AMS = ZoneInfo("Europe/Amsterdam")
DT = timedelta(seconds=4)
RULES = MarketRules()
T0 = datetime(2025, 3, 14, 14, 20, tzinfo=AMS)


def _samples(values: list[str], start: datetime = T0) -> tuple[Sample, ...]:
    return tuple(Sample(at=start + k * DT, value=Decimal(v)) for k, v in enumerate(values))


def _statement(response: str, count: int = 90, bid: str = "180") -> tuple[str, ...]:
    """2 MW asked for ``count`` samples, the pool gives ``response`` MW at once."""
    setpoints = _samples(["2"] * count)
    measured = _samples(["9.2"] * 5 + [str(Decimal("9.2") - Decimal(response))] * count
                        + ["9.2"] * 5, T0 - 5 * DT)  # fmt: skip
    baseline = _samples(["9.2"] * (count + 10), T0 - 5 * DT)
    delivery = validate(setpoints, measured, baseline, RULES)
    statement = settle_tso(delivery, clearing_price=Decimal("200"), bid_price=Decimal(bid),
                           rules=RULES)  # fmt: skip
    return explain_statement(statement, RULES)


def test_over_delivery_explains_why_settled_is_below_delivered() -> None:
    # 2.5 MW given for 2 MW asked, 90 samples: requested 0.2 MWh, delivered 0.25, settled 0.2.
    lines = _statement("2.5")
    assert lines[0].startswith("requested 0.200000 MWh: the TSO's setpoints (MW), each held one")
    assert lines[1].startswith("delivered 0.250000 MWh: baseline minus measured pool power")
    assert lines[2].startswith("settled 0.200000 MWh: the delivered power of each sample up to "
                               "the largest of the last 3 setpoints")  # fmt: skip
    assert lines[2].endswith("0.050000 MWh was delivered above that and is not paid")
    assert lines[3] == "ratio 1.2500: delivered / requested; a penalty applies below 0.90"
    assert lines[4] == "payment EUR 40.00: settled 0.200000 MWh x clearing price 200.00 EUR/MWh"
    assert lines[5] == "penalty EUR 0.00: none, the ratio is not below 0.90"
    assert lines[6] == "net EUR 40.00: payment minus penalty"
    assert len(lines) == 7


def test_a_penalty_line_shows_its_formula() -> None:
    # 1.6 of 2 MW: delivered 0.16 MWh of 0.2; penalty (0.18 - 0.16) * 1.25 * 250 = 6.25.
    lines = _statement("1.6", bid="250")
    assert lines[3] == "ratio 0.8000: delivered / requested; a penalty applies below 0.90"
    assert lines[5] == ("penalty EUR 6.25: (0.90 x requested - delivered) x 1.25 x the higher of "
                        "clearing 200.00 and bid 250.00 EUR/MWh, as the ratio is below 0.90")
    assert lines[6] == "net EUR 25.75: payment minus penalty"  # 0.16 * 200 = 32.00 - 6.25


def test_flags_are_explained() -> None:
    setpoints = _samples(["2"] * 10)
    measured = _samples(["9.2"] * 15 + ["7.2"] * 10 + ["9.2"] * 5, T0 - 15 * DT)
    delivery = validate(setpoints, measured, None, RULES)  # no baseline: meter-before
    statement = settle_tso(delivery, clearing_price=Decimal("200"), bid_price=Decimal("180"),
                           rules=RULES)  # fmt: skip
    assert explain_statement(statement, RULES)[-1] == (
        "flag baseline_fallback: the baseline was replaced by the mean meter reading before the "
        "start")  # fmt: skip


def test_prices_are_written_to_the_cent_and_never_rounded() -> None:
    assert [price_text(Decimal(v)) for v in ("180", "180.0", "212.4", "180.125", "-3")] == [
        "180.00", "180.00", "212.40", "180.125", "-3.00"]  # fmt: skip
