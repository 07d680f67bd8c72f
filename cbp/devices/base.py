"""What every simulated device shares: its class, rated power, power bucket and online state.

A simulator is a small state machine stepped once per telemetry sample
(docs/architecture.md#market-rules: 4 s). ``step(now, setpoint_kw)`` simulates the sample period
ending at ``now`` and returns the measured
mean power in kW (positive = consumption, negative = export), or ``None`` when the device is
offline: a missing sample is missing, never fabricated. ``setpoint_kw`` is a target consumption in
kW (the per-device setpoint the aggregator dispatches); ``None`` means no instruction, and the
device follows its own natural behaviour.

Invariants: measured power never exceeds the rated power in either direction; an offline device
neither reports nor hears setpoints, and falls back to its natural behaviour (its physics keep
running; ``true_kw`` holds the simulator's ground truth for tests, it is not telemetry).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol
from uuid import UUID

__all__ = ["Device", "DeviceClass", "OnlineState", "power_bucket", "step_all"]


class DeviceClass(StrEnum):
    """Device classes as registered with the TSO (docs/architecture.md#the-cbp-profile-on-openadr,
    pool registration)."""

    EV_CHARGER = "ev_charger"
    HEAT_PUMP = "heat_pump"
    BATTERY = "battery"


# Rated-power buckets sent to the TSO instead of exact ratings (docs/architecture.md#privacy-design,
# minimisation).
_BUCKETS: tuple[tuple[float, str], ...] = ((3.0, "0-3kW"), (7.0, "3-7kW"), (11.0, "7-11kW"))


def power_bucket(rated_kw: float) -> str:
    """The bucket label for a rated power: [0, 3) -> "0-3kW", [3, 7) -> "3-7kW",
    [7, 11] -> "7-11kW", above 11 kW -> "11kW+"."""
    if rated_kw < 0:
        raise ValueError("rated power must not be negative")
    for upper, label in _BUCKETS:
        if rated_kw < upper:
            return label
    return "7-11kW" if rated_kw == _BUCKETS[-1][0] else "11kW+"


class OnlineState:
    """Whether a simulator reports, and what it really draws: the part all simulators share.

    Subclasses set ``_online`` (True) and ``_true_kw`` (0.0) when built and update ``_true_kw``
    each step.
    """

    __slots__ = ("_online", "_true_kw")

    _online: bool
    _true_kw: float

    @property
    def online(self) -> bool:
        return self._online

    @property
    def true_kw(self) -> float:
        return self._true_kw

    def set_online(self, online: bool) -> None:
        self._online = online


class Device(Protocol):
    """The face a simulator shows the aggregator's dispatch, forecast and aggregation."""

    @property
    def device_id(self) -> UUID: ...
    @property
    def device_class(self) -> DeviceClass: ...
    @property
    def rated_kw(self) -> float: ...
    @property
    def power_bucket(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def true_kw(self) -> float: ...

    def set_online(self, online: bool) -> None: ...

    def step(self, now: datetime, setpoint_kw: float | None) -> float | None: ...

    def natural_kw(self, now: datetime) -> float:
        """Consumption the device would have right now without an instruction."""
        ...

    def available_flex_kw(
        self, now: datetime, horizon: timedelta, *, at: datetime | None = None
    ) -> float:
        """Upward flex (consumption reduction, kW) it can hold from ``at`` (default ``now``)
        for ``horizon``, projected from its state at ``now`` under natural behaviour."""
        ...

    def forecast_kw(self, now: datetime, at: datetime) -> float:
        """Projected natural consumption at ``at`` from what the device knows at ``now``."""
        ...


def step_all(
    devices: Iterable[Device], now: datetime, setpoints_kw: dict[UUID, float]
) -> dict[UUID, float | None]:
    """Step every device for the sample at ``now``; devices absent from ``setpoints_kw`` run
    free. Returns one reading per device (``None`` when offline)."""
    get = setpoints_kw.get
    return {d.device_id: d.step(now, get(d.device_id)) for d in devices}
