"""Home battery simulator: charge/discharge setpoints within power and state-of-charge limits.

Without instruction the battery idles (0 kW): the simulator has no PV or household load to
self-consume against, so its natural consumption is honestly zero. A setpoint in kW is clamped to
[-rated, +rated] (negative = discharge/export) and then to what the state of charge allows this
sample, with a one-way efficiency on each direction.

Invariants: |measured kW| <= rated kW; soc_min <= state of charge <= soc_max at every step.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from uuid import UUID

from .base import DeviceClass, OnlineState, power_bucket
from .config import BatteryParams

__all__ = ["HomeBattery"]

_HOUR_S = 3600.0


class HomeBattery(OnlineState):
    __slots__ = (
        "_cap_kwh", "_dt_h", "_eff", "_soc", "_soc_max", "_soc_min",
        "device_id", "power_bucket", "rated_kw",
    )  # fmt: skip

    device_class = DeviceClass.BATTERY

    def __init__(
        self,
        *,
        device_id: UUID,
        params: BatteryParams,
        sample_period: timedelta,
        rng: random.Random,
    ) -> None:
        self.device_id = device_id
        self.rated_kw = params.rated_kw
        self.power_bucket = power_bucket(params.rated_kw)
        self._dt_h = sample_period.total_seconds() / _HOUR_S
        self._cap_kwh = rng.uniform(*params.capacity_kwh)
        self._eff = params.efficiency
        self._soc_min, self._soc_max = params.soc_min, params.soc_max
        self._soc = rng.uniform(*params.initial_soc)
        self._online = True
        self._true_kw = 0.0

    @property
    def soc(self) -> float:
        return self._soc

    @property
    def soc_limits(self) -> tuple[float, float]:
        return self._soc_min, self._soc_max

    def step(self, now: datetime, setpoint_kw: float | None) -> float | None:
        kw = 0.0
        if setpoint_kw is not None and self._online and setpoint_kw:
            rated = self.rated_kw
            kw = -rated if setpoint_kw < -rated else (rated if setpoint_kw > rated else setpoint_kw)
            per_kw = self._dt_h / self._cap_kwh
            if kw > 0:
                room = (self._soc_max - self._soc) / (per_kw * self._eff)
                kw = room if kw > room else kw
                self._soc = min(self._soc_max, self._soc + kw * per_kw * self._eff)
            else:
                stock = (self._soc - self._soc_min) * self._eff / per_kw
                kw = -stock if -kw > stock else kw
                self._soc = max(self._soc_min, self._soc + kw * per_kw / self._eff)
            if -1e-9 < kw < 1e-9:
                kw = 0.0  # float dust at a SoC limit is no power
        self._true_kw = kw
        return kw if self._online else None

    def natural_kw(self, now: datetime) -> float:
        return 0.0

    def available_flex_kw(
        self, now: datetime, horizon: timedelta, *, at: datetime | None = None
    ) -> float:
        # Idle until ``at``, then discharge at the power the stored energy sustains for horizon.
        hours = horizon.total_seconds() / _HOUR_S
        if hours <= 0:
            return self.rated_kw
        sustained = (self._soc - self._soc_min) * self._cap_kwh * self._eff / hours
        return max(0.0, min(self.rated_kw, sustained))

    def forecast_kw(self, now: datetime, at: datetime) -> float:
        return 0.0
