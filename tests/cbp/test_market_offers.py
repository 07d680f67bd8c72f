"""Offer book rules: reference scenarios 2 (accepted) and 3 (refusals), duplicate offer ids,
awards."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cbp.market import (
    Accepted,
    AwardError,
    Direction,
    IspRef,
    MarketRules,
    Offer,
    OfferBook,
    RefusalReason,
    Refused,
)

AMS = ZoneInfo("Europe/Amsterdam")
ISP57 = IspRef(day=date(2025, 3, 14), index=57)


def _local(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2025, 3, 14, hh, mm, ss, tzinfo=AMS)


OFFER = Offer(
    offer_id="VDB-AFRR-01-2025-03-14-57-up",
    aggregator_id="VDB",
    isp=ISP57,
    direction=Direction.UP,
    mw=Decimal("5"),
    price_eur_per_mwh=Decimal("180"),
    available_mw=Decimal("5.6"),
)


def test_scenario_2_offer_accepted() -> None:
    book = OfferBook()
    result = book.submit(OFFER, _local(13, 20))
    assert result == Accepted(offer=OFFER)
    assert result.message == "accepted"
    assert book.offers_for(ISP57, Direction.UP) == (OFFER,)


def _refusal(offer: Offer, now: datetime) -> Refused:
    book = OfferBook()
    result = book.submit(offer, now)
    assert isinstance(result, Refused), result
    assert len(book) == 0
    return result


def test_scenario_3_too_late_one_second_after_gate_closure() -> None:
    refused = _refusal(OFFER, _local(13, 35, 1))
    assert refused.reason is RefusalReason.TOO_LATE
    assert "gate closure" in refused.detail
    # Exactly at gate closure (13:35:00) is still on time.
    assert isinstance(OfferBook().submit(OFFER, _local(13, 35, 0)), Accepted)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mw": Decimal("0.8")}, RefusalReason.UNDER_MINIMUM),
        ({"mw": Decimal("5.5")}, RefusalReason.NOT_WHOLE_STEP),
        ({"isp": IspRef(day=date(2025, 3, 14), index=97)}, RefusalReason.NO_SUCH_ISP),
        ({"price_eur_per_mwh": Decimal("15000.01")}, RefusalReason.PRICE_OUT_OF_BOUNDS),
        ({"price_eur_per_mwh": Decimal("-15001")}, RefusalReason.PRICE_OUT_OF_BOUNDS),
        ({"mw": Decimal("6")}, RefusalReason.OVER_AVAILABLE),  # forecast only 5.6 MW
    ],
)
def test_scenario_3_each_refusal_names_its_reason(change: dict[str, object], reason: str) -> None:
    refused = _refusal(replace(OFFER, **change), _local(13, 20))  # type: ignore[arg-type]
    assert refused.reason is reason
    assert refused.detail


def test_price_bounds_are_inclusive() -> None:
    book = OfferBook()
    low = replace(OFFER, offer_id="a", price_eur_per_mwh=Decimal("-15000"))
    high = replace(OFFER, offer_id="b", price_eur_per_mwh=Decimal("15000"))
    assert isinstance(book.submit(low, _local(13, 0)), Accepted)
    assert isinstance(book.submit(high, _local(13, 0)), Accepted)
    assert [o.offer_id for o in book.offers_for(ISP57)] == ["a", "b"]  # merit order


def test_duplicate_offer_id_identical_is_already_submitted_and_stays_one() -> None:
    book = OfferBook()
    book.submit(OFFER, _local(13, 20))
    again = book.submit(OFFER, _local(13, 21))
    assert isinstance(again, Accepted)
    assert again.already_submitted and again.message == "already submitted"
    assert len(book) == 1
    # An identical resubmission after gate closure is still just a no-op acknowledgement.
    assert isinstance(book.submit(OFFER, _local(13, 40)), Accepted)


def test_duplicate_offer_id_with_other_content_is_refused_and_the_first_kept() -> None:
    book = OfferBook()
    book.submit(OFFER, _local(13, 20))
    changed = replace(OFFER, price_eur_per_mwh=Decimal("150"))
    refused = book.submit(changed, _local(13, 21))
    assert isinstance(refused, Refused)
    assert refused.reason is RefusalReason.DUPLICATE_CONFLICT
    assert book.get(OFFER.offer_id) == OFFER
    assert len(book) == 1


def test_offer_ids_stay_strings_exactly() -> None:
    book = OfferBook()
    book.submit(replace(OFFER, offer_id="000123"), _local(13, 0))
    assert book.get("000123") is not None
    assert book.get("123") is None


def test_awards() -> None:
    book = OfferBook()
    book.submit(OFFER, _local(13, 20))
    award = book.award(OFFER.offer_id, Decimal("3"), Decimal("212.40"))
    assert award.isp == ISP57 and award.mw == Decimal("3")
    assert award.bid_price_eur_per_mwh == Decimal("180")
    assert award.clearing_price_eur_per_mwh == Decimal("212.40")
    assert book.awards_for(ISP57) == (award,)
    with pytest.raises(AwardError, match="already awarded"):
        book.award(OFFER.offer_id, Decimal("1"), Decimal("212.40"))
    with pytest.raises(AwardError, match="no offer"):
        book.award("nope", Decimal("1"), Decimal("1"))
    book.submit(replace(OFFER, offer_id="x"), _local(13, 20))
    with pytest.raises(AwardError, match="outside"):
        book.award("x", Decimal("6"), Decimal("1"))


def test_compressed_rules_move_gate_closure() -> None:
    rules = MarketRules.compressed()  # 1-min ISPs, gate closure 100 s before
    isp = IspRef(day=date(2025, 3, 14), index=14 * 60 + 1)  # 14:00 local
    offer = replace(OFFER, isp=isp)
    assert isinstance(OfferBook(rules).submit(offer, _local(13, 58, 20)), Accepted)
    late = OfferBook(rules).submit(offer, _local(13, 58, 21))
    assert isinstance(late, Refused) and late.reason is RefusalReason.TOO_LATE
