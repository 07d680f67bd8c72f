"""Heat pump simulator: a one-node thermal model of the house and a comfort band.

Indoor temperature T (deg C) follows C dT/dt = COP * P - UA (T - T_out), stepped explicitly per
sample (4 s is tiny against the house's time constant C / UA of tens of hours). Natural control
is modulating: the heat loss at the comfort setpoint plus a proportional term pulling T back to it.
A setpoint (0 .. rated kW) replaces the natural power, so the pump can pause while T stays in the
band; comfort wins over the setpoint: the power is clamped so the next temperature stays within
[setpoint - band, setpoint + band].

Invariants: 0 <= measured kW <= rated kW; T never leaves the comfort band it starts in (the rated
power exceeds the design heat loss of every drawn house, checked when built).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from uuid import UUID

from .base import DeviceClass, OnlineState, power_bucket
from .config import DeviceParamsError, HeatPumpParams

__all__ = ["HeatPump"]

_HOUR_S = 3600.0


class HeatPump(OnlineState):
    __slots__ = (
        "_cap", "_cop", "_dt_h", "_gain", "_high", "_low", "_t", "_t_out", "_t_set",
        "_ua", "device_id", "power_bucket", "rated_kw",
    )  # fmt: skip

    device_class = DeviceClass.HEAT_PUMP

    def __init__(
        self,
        *,
        device_id: UUID,
        params: HeatPumpParams,
        sample_period: timedelta,
        rng: random.Random,
    ) -> None:
        self.device_id = device_id
        self.rated_kw = params.rated_kw
        self.power_bucket = power_bucket(params.rated_kw)
        self._dt_h = sample_period.total_seconds() / _HOUR_S
        self._cop = rng.uniform(*params.cop)
        self._ua = rng.uniform(*params.loss_kw_per_k)
        self._cap = rng.uniform(*params.capacity_kwh_per_k)
        self._t_out = rng.uniform(*params.outdoor_c)
        self._t_set = rng.uniform(*params.comfort_setpoint_c)
        self._gain = params.control_gain_kw_per_k
        half = params.comfort_half_band_k
        self._low, self._high = self._t_set - half, self._t_set + half
        if self._ua * (self._high - self._t_out) > self._cop * self.rated_kw:
            raise DeviceParamsError("heat pump too small to hold the comfort band for this house")
        self._t = self._t_set + rng.uniform(-0.3, 0.3)
        self._online = True
        self._true_kw = 0.0

    @property
    def indoor_c(self) -> float:
        return self._t

    @property
    def comfort_band_c(self) -> tuple[float, float]:
        return self._low, self._high

    def _natural(self, t: float) -> float:
        kw = (self._ua * (self._t_set - self._t_out) + self._gain * (self._t_set - t)) / self._cop
        return 0.0 if kw < 0 else (self.rated_kw if kw > self.rated_kw else kw)

    def step(self, now: datetime, setpoint_kw: float | None) -> float | None:
        t, cop = self._t, self._cop
        loss = self._ua * (t - self._t_out)
        kw = self._natural(t) if setpoint_kw is None or not self._online else setpoint_kw
        # Comfort beats the setpoint: bound the power so the next temperature stays in band.
        per_k = self._cap / self._dt_h
        floor = (per_k * (self._low - t) + loss) / cop
        ceiling = (per_k * (self._high - t) + loss) / cop
        if kw < floor:
            kw = floor
        if kw > ceiling:
            kw = ceiling
        kw = 0.0 if kw < 0 else (self.rated_kw if kw > self.rated_kw else kw)
        self._t = t + (cop * kw - loss) / per_k
        self._true_kw = kw
        return kw if self._online else None

    def natural_kw(self, now: datetime) -> float:
        return self._natural(self._t)

    def _hold_at_low_kw(self) -> float:
        return self._ua * (self._low - self._t_out) / self._cop

    def available_flex_kw(
        self, now: datetime, horizon: timedelta, *, at: datetime | None = None
    ) -> float:
        # Temperature is assumed to persist until ``at`` (natural control holds it near setpoint).
        natural = self._natural(self._t)
        hours = horizon.total_seconds() / _HOUR_S
        coasted = self._t_out + (self._t - self._t_out) * math.exp(-hours * self._ua / self._cap)
        if coasted >= self._low:
            return natural
        # It cannot pause that long: only the part above what holding the band's floor needs.
        return max(0.0, natural - self._hold_at_low_kw())

    def forecast_kw(self, now: datetime, at: datetime) -> float:
        # The proportional controller relaxes to the steady heat loss with time constant C/gain.
        steady = self._ua * (self._t_set - self._t_out) / self._cop
        hours = max(0.0, (at - now).total_seconds() / _HOUR_S)
        decay = math.exp(-hours * self._gain / self._cap) if self._gain else 1.0
        return steady + (self._natural(self._t) - steady) * decay
