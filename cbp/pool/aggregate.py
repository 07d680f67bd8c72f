"""Telemetry aggregation: device readings -> device rows and the pool row; MSP windows.

docs/architecture.md#the-cbp-profile-on-openadr: devices report 4-s kW samples; the aggregator sends
the TSO one pool row per sample (MW) and, for per-device metering (MSP), rows only for the devices
activated in an event, from
5 min before its first to 5 min after its last setpoint sample. Idle devices send nothing.

- Device rows are rounded to ``MarketRules.device_resolution_kw`` (0.1 kW).
- The pool row is the sum of the device rows present, rounded to ``pool_resolution_mw`` (1 kW),
  so device rows add up to the pool row within rounding (``cbp.market.check_pool_coherence``).
- A device without a reading is listed as missing on the pool row: nothing is filled in here;
  interpolation and its ``estimated`` flag belong to validation (``cbp.market.regularise``).
- ``MspRecorder`` keeps recent device rows so the 5 min *before* an activation can be sent once
  the activated devices are known; it forgets rows no open window or margin still needs.

Invariants: row values are ``Decimal``; timestamps are the sample times given; a pool row's
``reporting + len(missing)`` equals the number of readings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from operator import attrgetter
from uuid import UUID

from cbp.market import MarketRules, Sample

from .config import PoolConfig

__all__ = ["MspData", "MspRecorder", "PoolRow", "aggregate_sample", "device_rows"]

_uuid_value = attrgetter("int")


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolRow:
    at: datetime
    mw: Decimal
    reporting: int
    missing: tuple[UUID, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def device_rows(readings: Mapping[UUID, float | None], rules: MarketRules) -> dict[UUID, Decimal]:
    """Readings rounded half-up to the device resolution; missing readings have no row."""
    step = rules.device_resolution_kw
    scale = float(1 / step)
    return {
        device_id: Decimal(round(kw * scale)) * step
        for device_id, kw in readings.items()
        if kw is not None
    }


def aggregate_sample(
    at: datetime, readings: Mapping[UUID, float | None], rules: MarketRules
) -> tuple[PoolRow, dict[UUID, Decimal]]:
    """The pool row and the device rows for one sample time. The missing devices are sorted by
    their 128-bit value: the order of ``UUID.__lt__``, without a Python call per comparison."""
    rows = device_rows(readings, rules)
    total_kw = sum(rows.values(), Decimal(0))
    mw = (total_kw / 1000).quantize(rules.pool_resolution_mw, rounding=ROUND_HALF_UP)
    missing = tuple(sorted((d for d, kw in readings.items() if kw is None), key=_uuid_value))
    return PoolRow(at=at, mw=mw, reporting=len(rows), missing=missing), rows


@dataclass(frozen=True, slots=True, kw_only=True)
class MspData:
    activation_id: str
    window_start: datetime
    window_end: datetime
    rows: Mapping[UUID, tuple[Sample, ...]]  # activated devices only, kW, missing samples absent


@dataclass(slots=True, kw_only=True)
class _Window:
    start: datetime  # activation start - msp_before
    end: datetime | None = None  # last activation sample + msp_after, once known
    devices: set[UUID] = field(default_factory=set)


class MspRecorder:
    """Per-device rows of activated devices over each activation's MSP window."""

    __slots__ = ("_config", "_history", "_windows")

    def __init__(self, config: PoolConfig | None = None) -> None:
        self._config = config if config is not None else PoolConfig()
        self._history: deque[tuple[datetime, Mapping[UUID, Decimal]]] = deque()
        self._windows: dict[str, _Window] = {}

    def begin(self, activation_id: str, start: datetime) -> None:
        """An activation starts at ``start`` (its first setpoint sample)."""
        if activation_id in self._windows:
            raise ValueError(f"activation {activation_id!r} already begun")
        self._windows[activation_id] = _Window(start=start - self._config.msp_before)

    def mark_activated(self, activation_id: str, device_ids: Iterable[UUID]) -> None:
        """Devices that received a setpoint in this activation (called as they are added)."""
        self._windows[activation_id].devices.update(device_ids)

    def end(self, activation_id: str, last_sample: datetime) -> None:
        """The activation's last setpoint sample; the window closes ``msp_after`` later."""
        self._windows[activation_id].end = last_sample + self._config.msp_after

    def record(self, at: datetime, rows: Mapping[UUID, Decimal]) -> None:
        """Keep one sample's device rows (as returned by ``aggregate_sample``)."""
        self._history.append((at, rows))
        horizon = at - self._config.msp_before
        keep_from = min([horizon, *(w.start for w in self._windows.values())])
        while self._history and self._history[0][0] < keep_from:
            self._history.popleft()

    def ready(self, now: datetime) -> tuple[str, ...]:
        """Activations whose window has closed by ``now`` (all their rows are recorded)."""
        return tuple(a for a, w in self._windows.items() if w.end is not None and w.end <= now)

    def take(self, activation_id: str) -> MspData:
        """The MSP rows of one activation (activated devices only); forgets the activation."""
        window = self._windows.pop(activation_id)
        if window.end is None:
            raise ValueError(f"activation {activation_id!r} has not ended")
        series: dict[UUID, list[Sample]] = {d: [] for d in sorted(window.devices)}
        for at, rows in self._history:
            if window.start <= at <= window.end:
                for device_id, samples in series.items():
                    value = rows.get(device_id)
                    if value is not None:
                        samples.append(Sample(at=at, value=value))
        return MspData(
            activation_id=activation_id,
            window_start=window.start,
            window_end=window.end,
            rows={d: tuple(s) for d, s in series.items()},
        )
