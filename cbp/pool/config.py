"""Aggregator pool parameters (docs/architecture.md#the-cbp-profile-on-openadr), all configuration.

``PoolConfig`` holds what the aggregator's dispatch, forecast, offer and aggregation brains need
beyond the market rules (the telemetry sample period, offer minimum/step and row resolutions come
from ``cbp.market.MarketRules``, never from here):

- a device is lost after 3 consecutive missed samples and its share is re-dispatched;
- the dispatcher keeps a reserve of 10 % of the request in unassigned, healthy flex (else it
  flags the shortage) and ranks device classes EV first, then heat pumps, then batteries;
- offers keep a 10 % safety margin below the forecast availability;
- baselines for +1, +5, +10 min are sent every 60 s;
- per-device metering (MSP) covers 5 min before to 5 min after an activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from cbp.devices import DeviceClass
from cbp.errors import CbpError

__all__ = ["PoolConfig", "PoolConfigError"]


class PoolConfigError(CbpError, ValueError):
    """A pool parameter is out of range."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    missed_samples_to_drop: int = 3
    reserve_share: float = 0.10
    dispatch_horizon: timedelta = timedelta(minutes=15)
    class_priority: tuple[DeviceClass, ...] = (
        DeviceClass.EV_CHARGER,
        DeviceClass.HEAT_PUMP,
        DeviceClass.BATTERY,
    )
    offer_margin: Decimal = Decimal("0.10")
    baseline_interval: timedelta = timedelta(seconds=60)
    forecast_horizons: tuple[timedelta, ...] = (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=10),
    )
    msp_before: timedelta = timedelta(minutes=5)
    msp_after: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.missed_samples_to_drop < 1:
            raise PoolConfigError("missed_samples_to_drop must be at least 1")
        if not 0 <= self.reserve_share <= 1 or not Decimal(0) <= self.offer_margin < Decimal(1):
            raise PoolConfigError("reserve_share and offer_margin must be fractions below 1")
        if len(set(self.class_priority)) != len(self.class_priority):
            raise PoolConfigError("class_priority names a device class twice")
        if not self.forecast_horizons or min(self.forecast_horizons) <= timedelta(0):
            raise PoolConfigError("forecast horizons must be positive")
        for name in ("dispatch_horizon", "baseline_interval"):
            if getattr(self, name) <= timedelta(0):
                raise PoolConfigError(f"{name} must be positive")
        if self.msp_before < timedelta(0) or self.msp_after < timedelta(0):
            raise PoolConfigError("MSP margins must not be negative")

    def rank(self, device_class: DeviceClass) -> int:
        """Dispatch rank of a class (lower goes first); unlisted classes go last."""
        try:
            return self.class_priority.index(device_class)
        except ValueError:
            return len(self.class_priority)
