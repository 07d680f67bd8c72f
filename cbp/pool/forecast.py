"""Pool forecasts: the consumption baseline for +1/+5/+10 min and the available flex per ISP.

Baseline (docs/architecture.md#the-cbp-profile-on-openadr, report ``x-BASELINE``; sent every 60 s):
each device projects its own natural consumption at the target time: persistence of what it draws
now, cut by what it knows
about its session (an EV leaves at its departure time or stops at its target state of charge; a
heat pump's controller relaxes to the steady heat loss). The pool forecast is the sum. Cars that
have not arrived yet are not guessed: the forecast errs low when many arrive, which the baseline
quality check (NMAE/bias) will show honestly.

Available flex per ISP (for offers): the sum over online devices of the reduction each can hold
for the whole ISP, projected from now, in MW rounded down to the pool resolution.

Invariants: forecasts are for natural behaviour (a baseline never includes the response it
measures), in MW as ``Decimal`` at ``MarketRules.pool_resolution_mw``; times aware UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from cbp.devices import Device
from cbp.market import MarketRules

from .config import PoolConfig

__all__ = ["BaselineForecast", "HorizonForecast", "baseline_due", "forecast_baseline",
           "forecast_flex_mw"]  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class HorizonForecast:
    horizon: timedelta
    target: datetime  # made_at + horizon: the instant the value is for
    mw: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineForecast:
    made_at: datetime
    points: tuple[HorizonForecast, ...]

    def for_horizon(self, horizon: timedelta) -> HorizonForecast:
        for point in self.points:
            if point.horizon == horizon:
                return point
        raise KeyError(f"no forecast for horizon {horizon}")


def _mw(kw: float, rules: MarketRules, rounding: str) -> Decimal:
    return (Decimal(repr(kw)) / 1000).quantize(rules.pool_resolution_mw, rounding=rounding)


def forecast_baseline(
    devices: Iterable[Device], now: datetime, rules: MarketRules, config: PoolConfig
) -> BaselineForecast:
    """The pool's natural consumption at now + each configured horizon (+1, +5, +10 min)."""
    pool = tuple(devices)
    points = []
    for horizon in config.forecast_horizons:
        target = now + horizon
        kw = sum(d.forecast_kw(now, target) for d in pool)
        points.append(HorizonForecast(horizon=horizon, target=target,
                                      mw=_mw(kw, rules, ROUND_HALF_UP)))  # fmt: skip
    return BaselineForecast(made_at=now, points=tuple(points))


def baseline_due(last_sent: datetime | None, now: datetime, config: PoolConfig) -> bool:
    """True when a baseline report is due: none sent yet, or ``baseline_interval`` elapsed."""
    return last_sent is None or now - last_sent >= config.baseline_interval


def forecast_flex_mw(
    devices: Iterable[Device], now: datetime, isp_start: datetime, rules: MarketRules
) -> Decimal:
    """Upward flex (MW) the pool can hold through the ISP starting at ``isp_start``.

    Offline devices count for nothing: the aggregator cannot instruct them."""
    kw = sum(d.available_flex_kw(now, rules.isp_length, at=isp_start) for d in devices if d.online)
    return _mw(kw, rules, ROUND_DOWN)
