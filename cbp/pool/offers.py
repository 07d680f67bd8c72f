"""Building flex offers from the availability forecast (docs/architecture.md#market-rules, reference
scenario 2).

The offered volume keeps a safety margin below the forecast (``PoolConfig.offer_margin``, 10 %)
and is rounded DOWN to the market's step (whole MW) so the pool never promises what it may not
hold: 5.6 MW available -> 5.6 * 0.9 = 5.04 -> 5 MW. Below the market minimum (1 MW) there is no
offer. The offer carries the forecast as its ``available_mw`` so the TSO can see the margin.

Invariants: an offer built here always satisfies the volume rules of ``cbp.market.OfferBook``
(>= minimum, whole steps, <= available); offer ids are deterministic per pool, ISP and direction,
so re-sending the same offer is idempotent at the TSO.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal

from cbp.market import Direction, IspRef, MarketRules, Offer

from .config import PoolConfig

__all__ = ["build_offer", "build_offers", "offer_id_for", "offer_volume_mw"]


def offer_volume_mw(forecast_mw: Decimal, rules: MarketRules, config: PoolConfig) -> Decimal | None:
    """The volume to offer for a forecast availability, or ``None`` when under the minimum."""
    if forecast_mw <= 0:
        return None
    usable = forecast_mw * (1 - config.offer_margin)
    steps = (usable / rules.offer_step_mw).to_integral_value(rounding=ROUND_DOWN)
    volume = steps * rules.offer_step_mw
    return volume if volume >= rules.min_offer_mw else None


def offer_id_for(pool_id: str, isp: IspRef, direction: Direction) -> str:
    return f"{pool_id}:{isp.day.isoformat()}:{isp.index}:{direction.value}"


def build_offer(
    *,
    pool_id: str,
    aggregator_id: str,
    isp: IspRef,
    forecast_mw: Decimal,
    price_eur_per_mwh: Decimal,
    rules: MarketRules,
    config: PoolConfig,
) -> Offer | None:
    """An upward offer (less consumption) for one ISP, or ``None`` if too little is available."""
    volume = offer_volume_mw(forecast_mw, rules, config)
    if volume is None:
        return None
    return Offer(
        offer_id=offer_id_for(pool_id, isp, Direction.UP),
        aggregator_id=aggregator_id,
        isp=isp,
        direction=Direction.UP,
        mw=volume,
        price_eur_per_mwh=price_eur_per_mwh,
        available_mw=forecast_mw,
    )


def build_offers(
    *,
    pool_id: str,
    aggregator_id: str,
    forecasts_mw: Mapping[IspRef, Decimal],
    price_eur_per_mwh: Decimal,
    rules: MarketRules,
    config: PoolConfig,
) -> tuple[Offer, ...]:
    """Offers for every ISP whose forecast supports one, in ISP order."""
    built = (
        build_offer(pool_id=pool_id, aggregator_id=aggregator_id, isp=isp, forecast_mw=mw,
                    price_eur_per_mwh=price_eur_per_mwh, rules=rules, config=config)
        for isp, mw in sorted(forecasts_mw.items())
    )  # fmt: skip
    return tuple(offer for offer in built if offer is not None)
