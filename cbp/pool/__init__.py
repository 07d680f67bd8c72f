"""The aggregator's pure brains for one pool: allocation, forecasts, offers, aggregation.

    PoolConfig                                   (market numbers come from cbp.market.MarketRules)
    flex_snapshot -> Allocator.allocate / observe -> AllocationPlan (per-device kW setpoints)
    forecast_baseline (+1/+5/+10 min), forecast_flex_mw (per ISP) -> build_offer(s)
    aggregate_sample -> PoolRow + device rows; MspRecorder -> MspData (activated devices only)

No I/O and no clock: ``now`` is always passed in. Power in kW at device level, MW (Decimal) on
pool rows, forecasts and offers.
"""

from __future__ import annotations

from .aggregate import MspData, MspRecorder, PoolRow, aggregate_sample, device_rows
from .allocation import AllocationPlan, Allocator, FlexState, flex_snapshot
from .config import PoolConfig, PoolConfigError
from .forecast import (
    BaselineForecast,
    HorizonForecast,
    baseline_due,
    forecast_baseline,
    forecast_flex_mw,
)
from .offers import build_offer, build_offers, offer_id_for, offer_volume_mw

__all__ = [
    "AllocationPlan",
    "Allocator",
    "BaselineForecast",
    "FlexState",
    "HorizonForecast",
    "MspData",
    "MspRecorder",
    "PoolConfig",
    "PoolConfigError",
    "PoolRow",
    "aggregate_sample",
    "baseline_due",
    "build_offer",
    "build_offers",
    "device_rows",
    "flex_snapshot",
    "forecast_baseline",
    "forecast_flex_mw",
    "offer_id_for",
    "offer_volume_mw",
]  # fmt: skip
