"""EV charger simulator: plug-in sessions, state of charge, curtailment down to zero.

Sessions: a car arrives, stays plugged until its departure time and charges at its session rate
(mostly 7.5 kW, never above the charger's 11 kW) until it reaches its target state of charge,
tapering over the last stretch (CV phase). Between sessions the charger draws nothing. While
plugged it follows a consumption setpoint anywhere from 0 up to its natural charging power;
setpoints below the 6 A minimum (~1.4 kW) pause charging (IEC 61851 cannot draw less).
Curtailment only lowers consumption: an EV charger never discharges.

Invariants: 0 <= measured kW <= rated kW; 0 <= state of charge <= 1; energy drawn only while
plugged. The session generator draws from the charger's own ``random.Random``, and only at
session boundaries, so setpoints never change the random sequence (same seed -> same run).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from uuid import UUID

from .base import DeviceClass, OnlineState, power_bucket
from .config import EvParams

__all__ = ["EvCharger"]

_HOUR_S = 3600.0


class EvCharger(OnlineState):
    __slots__ = (
        "_cap_kwh", "_departure", "_dt_h", "_eff", "_min_kw", "_next_change",
        "_params", "_plugged", "_rate_kw", "_rng", "_soc", "_taper", "_target",
        "device_id", "power_bucket", "rated_kw",
    )  # fmt: skip

    device_class = DeviceClass.EV_CHARGER

    def __init__(
        self,
        *,
        device_id: UUID,
        params: EvParams,
        sample_period: timedelta,
        rng: random.Random,
        start: datetime,
    ) -> None:
        self.device_id = device_id
        self.rated_kw = params.rated_kw
        self.power_bucket = power_bucket(params.rated_kw)
        self._params = params
        self._rng = rng
        self._dt_h = sample_period.total_seconds() / _HOUR_S
        self._eff = params.charge_efficiency
        self._min_kw = params.min_charge_kw
        self._taper = max(1e-9, 1.0 - params.taper_from_soc)
        self._cap_kwh = rng.uniform(*params.capacity_kwh)
        self._online = True
        self._true_kw = 0.0
        self._rate_kw = self._target = self._soc = 0.0
        self._plugged = False
        self._departure = start
        if rng.random() < params.plugged_at_start:
            # Found mid-session: departure somewhere within the next plug duration.
            self._begin_session(start, rng.uniform(1.0, params.plug_hours[1]))
        else:
            self._next_change = start + timedelta(hours=rng.expovariate(1 / params.mean_gap_hours))

    # -- sessions ---------------------------------------------------------------------------
    def _begin_session(self, arrival: datetime, plug_hours: float) -> None:
        p, rng = self._params, self._rng
        self._plugged = True
        self._rate_kw = rng.choices(p.charge_rates_kw, p.charge_rate_weights)[0]
        self._soc = rng.uniform(*p.arrival_soc)
        self._target = max(self._soc, rng.uniform(*p.target_soc))
        self._departure = arrival + timedelta(hours=plug_hours)
        self._next_change = self._departure

    def _advance(self, now: datetime) -> None:
        while now >= self._next_change:
            if self._plugged:
                self._plugged = False
                gap = self._rng.expovariate(1 / self._params.mean_gap_hours)
                self._next_change = self._departure + timedelta(hours=gap)
            else:
                self._begin_session(self._next_change, self._rng.uniform(*self._params.plug_hours))

    def _charge_kw(self, soc: float) -> float:
        """Natural charging power at ``soc``: the session rate, tapering near the target."""
        left = self._target - soc
        if left <= 0:
            return 0.0
        kw = self._rate_kw * left / self._taper if left < self._taper else self._rate_kw
        return kw if kw > self._min_kw else self._min_kw

    # -- Device protocol --------------------------------------------------------------------
    @property
    def plugged(self) -> bool:
        return self._plugged

    @property
    def soc(self) -> float:
        return self._soc

    def step(self, now: datetime, setpoint_kw: float | None) -> float | None:
        if now >= self._next_change:
            self._advance(now)
        kw = 0.0
        if self._plugged:
            kw = self._charge_kw(self._soc)
            if setpoint_kw is not None and self._online and setpoint_kw < kw:
                kw = setpoint_kw if setpoint_kw >= self._min_kw else 0.0
            if kw:
                soc = self._soc + kw * self._dt_h * self._eff / self._cap_kwh
                self._soc = soc if soc < 1.0 else 1.0
        self._true_kw = kw
        return kw if self._online else None

    def natural_kw(self, now: datetime) -> float:
        if not self._plugged or now >= self._departure:
            return 0.0
        return self._charge_kw(self._soc)

    def _soc_at(self, now: datetime, at: datetime) -> float:
        hours = max(0.0, (at - now).total_seconds() / _HOUR_S)
        return self._soc + self._rate_kw * hours * self._eff / self._cap_kwh

    def available_flex_kw(
        self, now: datetime, horizon: timedelta, *, at: datetime | None = None
    ) -> float:
        # Only a car that is here now, stays for the whole window and still charges at its end
        # can hold a curtailment; future arrivals are not counted on.
        start = now if at is None else at
        end = start + horizon
        if not self._plugged or self._departure < end:
            return 0.0
        if self._soc_at(now, end) >= self._target:
            return 0.0
        return self._charge_kw(self._soc_at(now, start))

    def forecast_kw(self, now: datetime, at: datetime) -> float:
        if not self._plugged or at >= self._departure:
            return 0.0
        return self._charge_kw(min(1.0, self._soc_at(now, at)))
