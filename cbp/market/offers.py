"""The offer book: flex offers (bids) per ISP, their admission rules, and awards.

docs/architecture.md#market-rules, reference scenarios 2-3: an offer names an ISP, a direction, a
volume in MW and a price in EUR/MWh. It is admitted only if the ISP exists, it arrives no later than
gate closure
(ISP start - 25 min; an offer at exactly gate closure is on time), the volume is at least 1 MW in
whole-MW steps and within the forecast availability when one is given, and the price lies within
+-15,000 EUR/MWh. Re-submitting an offer id with identical content is idempotent ("already
submitted", still one offer); the same id with other content is refused.

Invariants: the book holds at most one offer per id; every held offer passed every rule at the
``now`` it was submitted; an award never exceeds its offer's volume and is made once per offer.
``now`` is always passed in; the book never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from cbp.errors import CbpError

from .config import MarketRules
from .isp import IspCalendar, IspRef, NoSuchIsp

__all__ = [
    "Accepted",
    "Award",
    "AwardError",
    "Direction",
    "Offer",
    "OfferBook",
    "RefusalReason",
    "Refused",
    "SubmitResult",
]


class Direction(StrEnum):
    """Upward = less consumption / more generation; wire values follow the CBP profile."""

    UP = "up"
    DOWN = "down"


class RefusalReason(StrEnum):
    NO_SUCH_ISP = "no_such_isp"
    TOO_LATE = "too_late"
    UNDER_MINIMUM = "under_minimum"
    NOT_WHOLE_STEP = "not_whole_mw"
    OVER_AVAILABLE = "over_available"
    PRICE_OUT_OF_BOUNDS = "price_out_of_bounds"
    DUPLICATE_CONFLICT = "duplicate_id_different_content"


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    offer_id: str
    aggregator_id: str
    isp: IspRef
    direction: Direction
    mw: Decimal
    price_eur_per_mwh: Decimal
    available_mw: Decimal | None = None  # the aggregator's forecast availability, if sent


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    offer: Offer
    already_submitted: bool = False

    @property
    def message(self) -> str:
        return "already submitted" if self.already_submitted else "accepted"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    offer_id: str
    reason: RefusalReason
    detail: str


SubmitResult = Accepted | Refused


@dataclass(frozen=True, slots=True, kw_only=True)
class Award:
    offer_id: str
    isp: IspRef
    direction: Direction
    mw: Decimal
    bid_price_eur_per_mwh: Decimal
    clearing_price_eur_per_mwh: Decimal


class AwardError(CbpError, ValueError):
    """An award names an unknown offer, exceeds its volume, or repeats."""


class OfferBook:
    """Offers by id, checked against ``MarketRules`` when submitted; awards by offer id."""

    __slots__ = ("_awards", "_calendar", "_offers", "_rules")

    def __init__(self, rules: MarketRules | None = None) -> None:
        self._rules = rules if rules is not None else MarketRules()
        self._calendar = IspCalendar(self._rules)
        self._offers: dict[str, Offer] = {}
        self._awards: dict[str, Award] = {}

    def submit(self, offer: Offer, now: datetime) -> SubmitResult:
        held = self._offers.get(offer.offer_id)
        if held is not None:
            if held == offer:
                return Accepted(offer=held, already_submitted=True)
            return Refused(
                offer_id=offer.offer_id,
                reason=RefusalReason.DUPLICATE_CONFLICT,
                detail=f"offer id {offer.offer_id!r} was already submitted with other content",
            )
        refusal = self._check(offer, now)
        if refusal is not None:
            return Refused(offer_id=offer.offer_id, reason=refusal[0], detail=refusal[1])
        self._offers[offer.offer_id] = offer
        return Accepted(offer=offer)

    def _check(self, offer: Offer, now: datetime) -> tuple[RefusalReason, str] | None:
        rules = self._rules
        try:
            start = self._calendar.isp_start(offer.isp)
        except NoSuchIsp as exc:
            return RefusalReason.NO_SUCH_ISP, str(exc)
        closure = start - rules.gate_closure
        if now > closure:
            return RefusalReason.TOO_LATE, f"gate closure for ISP {offer.isp} was {closure}"
        if offer.mw < rules.min_offer_mw:
            return RefusalReason.UNDER_MINIMUM, f"{offer.mw} MW is under {rules.min_offer_mw} MW"
        if offer.mw % rules.offer_step_mw != 0:
            return RefusalReason.NOT_WHOLE_STEP, f"{offer.mw} MW is not a multiple of " + (
                f"{rules.offer_step_mw} MW"
            )
        if offer.available_mw is not None and offer.mw > offer.available_mw:
            return RefusalReason.OVER_AVAILABLE, (
                f"{offer.mw} MW exceeds the forecast availability {offer.available_mw} MW"
            )
        if abs(offer.price_eur_per_mwh) > rules.max_abs_price_eur_per_mwh:
            return RefusalReason.PRICE_OUT_OF_BOUNDS, (
                f"{offer.price_eur_per_mwh} EUR/MWh is outside "
                f"+-{rules.max_abs_price_eur_per_mwh} EUR/MWh"
            )
        return None

    def get(self, offer_id: str) -> Offer | None:
        return self._offers.get(offer_id)

    def offers_for(self, isp: IspRef, direction: Direction | None = None) -> tuple[Offer, ...]:
        """Offers for one ISP, cheapest first (the TSO's merit order), ties by offer id."""
        chosen = [
            o for o in self._offers.values()
            if o.isp == isp and (direction is None or o.direction is direction)
        ]  # fmt: skip
        return tuple(sorted(chosen, key=lambda o: (o.price_eur_per_mwh, o.offer_id)))

    def award(self, offer_id: str, mw: Decimal, clearing_price: Decimal) -> Award:
        """Record that ``mw`` of an offer was awarded at the ISP's clearing price."""
        offer = self._offers.get(offer_id)
        if offer is None:
            raise AwardError(f"no offer {offer_id!r}")
        if offer_id in self._awards:
            raise AwardError(f"offer {offer_id!r} is already awarded")
        if not Decimal(0) < mw <= offer.mw:
            raise AwardError(f"award of {mw} MW outside (0, {offer.mw}] MW")
        award = Award(
            offer_id=offer_id,
            isp=offer.isp,
            direction=offer.direction,
            mw=mw,
            bid_price_eur_per_mwh=offer.price_eur_per_mwh,
            clearing_price_eur_per_mwh=clearing_price,
        )
        self._awards[offer_id] = award
        return award

    def awards_for(self, isp: IspRef) -> tuple[Award, ...]:
        return tuple(a for a in self._awards.values() if a.isp == isp)

    def __len__(self) -> int:
        return len(self._offers)
