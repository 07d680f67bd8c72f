"""Simulator parameters for the device models (the reference pool,
docs/architecture.md#reference-scenarios), all configuration.

``DeviceParams`` groups the parameters of each device class plus the telemetry sample period the
simulators step in (docs/architecture.md#market-rules: 4 s; take it from
``MarketRules.sample_period``). The defaults describe the reference pool: EV chargers of 11 kW max
charging at ~7.5 kW typical, 2.5 kW heat
pumps with a 2 K comfort band, 5 kW / 10 kWh home batteries. Ranges are (low, high) tuples from
which each simulated device draws its own values, so a seeded pool is heterogeneous but
reproducible.

Invariants (checked when built): powers positive, ranges ordered, fractions within [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from cbp.errors import CbpError

__all__ = ["BatteryParams", "DeviceParams", "DeviceParamsError", "EvParams", "HeatPumpParams"]


class DeviceParamsError(CbpError, ValueError):
    """A simulator parameter is out of range."""


def _ordered(name: str, pair: tuple[float, float], low: float = 0.0) -> None:
    if not low <= pair[0] <= pair[1]:
        raise DeviceParamsError(f"{name} must be an ordered range >= {low}, got {pair}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvParams:
    rated_kw: float = 11.0
    # Per-session charge rate: mostly 7.5 kW ("typical while charging"), some 3.7 and 11 kW.
    charge_rates_kw: tuple[float, ...] = (3.7, 7.5, 11.0)
    charge_rate_weights: tuple[float, ...] = (0.1, 0.8, 0.1)
    # IEC 61851 chargers cannot draw less than 6 A (~1.4 kW single phase): below that, pause.
    min_charge_kw: float = 1.4
    capacity_kwh: tuple[float, float] = (40.0, 80.0)
    charge_efficiency: float = 0.92
    # Above this state of charge the car tapers linearly to 0 at a full battery (CV phase).
    taper_from_soc: float = 0.9
    arrival_soc: tuple[float, float] = (0.15, 0.6)
    target_soc: tuple[float, float] = (0.8, 1.0)
    plug_hours: tuple[float, float] = (4.0, 11.0)
    mean_gap_hours: float = 3.0
    # Share of chargers found plugged in when a pool is built (a workplace/depot-like pool).
    plugged_at_start: float = 0.85

    def __post_init__(self) -> None:
        if self.rated_kw <= 0 or not 0 <= self.min_charge_kw < self.rated_kw:
            raise DeviceParamsError("EV rated power must be positive and above the minimum")
        if len(self.charge_rates_kw) != len(self.charge_rate_weights) or not self.charge_rates_kw:
            raise DeviceParamsError("one weight per EV charge rate")
        if any(not 0 < r <= self.rated_kw for r in self.charge_rates_kw):
            raise DeviceParamsError("EV charge rates must lie in (0, rated]")
        for name in ("capacity_kwh", "plug_hours"):
            _ordered(name, getattr(self, name), 1e-9)
        for name in ("arrival_soc", "target_soc"):
            _ordered(name, getattr(self, name))
            if getattr(self, name)[1] > 1:
                raise DeviceParamsError(f"{name} must lie within [0, 1]")
        for name in ("charge_efficiency", "taper_from_soc", "plugged_at_start"):
            if not 0 <= getattr(self, name) <= 1:
                raise DeviceParamsError(f"{name} must lie within [0, 1]")
        if self.mean_gap_hours <= 0:
            raise DeviceParamsError("mean_gap_hours must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatPumpParams:
    rated_kw: float = 2.5
    cop: tuple[float, float] = (2.8, 3.6)
    # Building: heat loss coefficient (kW per K) and thermal capacity (kWh per K).
    loss_kw_per_k: tuple[float, float] = (0.12, 0.22)
    capacity_kwh_per_k: tuple[float, float] = (6.0, 14.0)
    outdoor_c: tuple[float, float] = (4.0, 9.0)
    comfort_setpoint_c: tuple[float, float] = (19.5, 21.5)
    comfort_half_band_k: float = 1.0
    # Natural control: heat loss plus this many kW (thermal) per K below the comfort setpoint.
    control_gain_kw_per_k: float = 4.0

    def __post_init__(self) -> None:
        if self.rated_kw <= 0 or self.comfort_half_band_k <= 0 or self.control_gain_kw_per_k < 0:
            raise DeviceParamsError("heat pump power, band and gain must be positive")
        for name in ("cop", "loss_kw_per_k", "capacity_kwh_per_k"):
            _ordered(name, getattr(self, name), 1e-9)
        _ordered("outdoor_c", self.outdoor_c, -50.0)
        _ordered("comfort_setpoint_c", self.comfort_setpoint_c, -50.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class BatteryParams:
    rated_kw: float = 5.0
    capacity_kwh: tuple[float, float] = (8.0, 13.5)
    soc_min: float = 0.10
    soc_max: float = 0.95
    # One-way efficiency, applied on charge (into the cells) and discharge (out of them).
    efficiency: float = 0.95
    initial_soc: tuple[float, float] = (0.4, 0.9)

    def __post_init__(self) -> None:
        if self.rated_kw <= 0:
            raise DeviceParamsError("battery rated power must be positive")
        _ordered("capacity_kwh", self.capacity_kwh, 1e-9)
        if not 0 <= self.soc_min < self.soc_max <= 1 or not 0 < self.efficiency <= 1:
            raise DeviceParamsError(
                "battery SoC limits and efficiency must be fractions, min < max")
        if not self.soc_min <= self.initial_soc[0] <= self.initial_soc[1] <= self.soc_max:
            raise DeviceParamsError("initial_soc must lie within the SoC limits")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceParams:
    sample_period: timedelta = timedelta(seconds=4)
    ev: EvParams = field(default_factory=EvParams)
    heat_pump: HeatPumpParams = field(default_factory=HeatPumpParams)
    battery: BatteryParams = field(default_factory=BatteryParams)

    def __post_init__(self) -> None:
        if self.sample_period <= timedelta(0):
            raise DeviceParamsError("sample_period must be positive")
