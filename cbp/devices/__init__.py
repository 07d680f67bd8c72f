"""Device simulators for the Crowd Balancing Platform (pure, seeded, stepped per 4-s sample).

    DeviceParams (EvParams, HeatPumpParams, BatteryParams)
    EvCharger / HeatPump / HomeBattery  -- each a ``Device``: step(now, setpoint_kw) -> kW | None
    build_pool(n, seed) -> SimPool; FaultInjector takes devices offline (missing, not invented)

Units: kW for power (positive = consumption), kWh for energy, deg C for temperature. Time is
passed in as aware UTC ``datetime``; randomness comes from a seeded ``random.Random``.
"""

from __future__ import annotations

from .base import Device, DeviceClass, power_bucket, step_all
from .battery import HomeBattery
from .config import BatteryParams, DeviceParams, DeviceParamsError, EvParams, HeatPumpParams
from .ev import EvCharger
from .heatpump import HeatPump
from .simpool import SCENARIO_START, FaultInjector, SimPool, build_pool

__all__ = [
    "SCENARIO_START", "BatteryParams", "Device", "DeviceClass", "DeviceParams", "DeviceParamsError",
    "EvCharger", "EvParams", "FaultInjector", "HeatPump", "HeatPumpParams", "HomeBattery",
    "SimPool", "build_pool", "power_bucket", "step_all",
]  # fmt: skip
