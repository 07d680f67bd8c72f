"""A simulated pool of devices, its seeded builder, and the fault injector.

``build_pool(n_devices, seed)`` reproduces the reference mix
(docs/architecture.md#reference-scenarios): 60 % EV chargers, 30 % heat pumps, the rest home
batteries (2,000 = 1,200 / 600 / 200). Every device gets a random
``uuid.UUID`` (version 4) and its own ``random.Random``, both drawn from one seeded generator, so
the same seed and start give the same pool and, stepped with the same setpoints, the same run.

``FaultInjector`` takes devices offline for a time window: they stop reporting (their readings
are ``None``) and stop hearing setpoints, falling back to natural behaviour.

Invariants: device ids are unique within a pool; the injector only changes online state at the
window edges it was given.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from uuid import UUID

from .base import Device, DeviceClass
from .battery import HomeBattery
from .config import DeviceParams
from .ev import EvCharger
from .heatpump import HeatPump

__all__ = ["SCENARIO_START", "FaultInjector", "SimPool", "build_pool"]

# The reference day (docs/architecture.md#reference-scenarios): Friday 2025-03-14, 13:50
# Europe/Amsterdam (12:50 UTC), before ISP 57.
SCENARIO_START = datetime(2025, 3, 14, 12, 50, tzinfo=UTC)

_MIX = ((DeviceClass.EV_CHARGER, 0.6), (DeviceClass.HEAT_PUMP, 0.3))


class SimPool:
    """Devices in a fixed order with lookup by id; ``step`` runs one telemetry sample."""

    __slots__ = ("by_id", "devices")

    def __init__(self, devices: Iterable[Device]) -> None:
        self.devices: tuple[Device, ...] = tuple(devices)
        self.by_id: dict[UUID, Device] = {d.device_id: d for d in self.devices}
        if len(self.by_id) != len(self.devices):
            raise ValueError("device ids must be unique within a pool")

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def of_class(self, device_class: DeviceClass) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.device_class is device_class)

    def step(self, now: datetime, setpoints_kw: Mapping[UUID, float]) -> dict[UUID, float | None]:
        """One reading per device for the sample at ``now`` (``None`` = offline, no sample)."""
        get = setpoints_kw.get
        return {d.device_id: d.step(now, get(d.device_id)) for d in self.devices}

    def true_total_kw(self) -> float:
        """Ground truth of the last step, offline devices included (for tests, not telemetry)."""
        return sum(d.true_kw for d in self.devices)


def _new_uuid(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


def build_pool(
    n_devices: int,
    seed: int,
    *,
    start: datetime = SCENARIO_START,
    params: DeviceParams | None = None,
) -> SimPool:
    """A pool of ``n_devices`` in the reference mix, its state drawn for ``start``."""
    if n_devices < 0:
        raise ValueError("n_devices must not be negative")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    params = params if params is not None else DeviceParams()
    rng = random.Random(seed)
    counts = {cls: round(n_devices * share) for cls, share in _MIX}
    counts[DeviceClass.BATTERY] = n_devices - sum(counts.values())
    period = params.sample_period
    devices: list[Device] = []
    for _ in range(counts[DeviceClass.EV_CHARGER]):
        own = random.Random(rng.getrandbits(64))
        devices.append(EvCharger(device_id=_new_uuid(rng), params=params.ev,
                                 sample_period=period, rng=own, start=start))  # fmt: skip
    for _ in range(counts[DeviceClass.HEAT_PUMP]):
        own = random.Random(rng.getrandbits(64))
        devices.append(HeatPump(device_id=_new_uuid(rng), params=params.heat_pump,
                                sample_period=period, rng=own))  # fmt: skip
    for _ in range(counts[DeviceClass.BATTERY]):
        own = random.Random(rng.getrandbits(64))
        devices.append(HomeBattery(device_id=_new_uuid(rng), params=params.battery,
                                   sample_period=period, rng=own))  # fmt: skip
    return SimPool(devices)


class FaultInjector:
    """Offline windows [start, end) per device, applied as time passes."""

    __slots__ = ("_edges", "_seq")

    def __init__(self) -> None:
        # (time, seq, online-after, device); seq keeps heap order stable and deterministic.
        self._edges: list[tuple[datetime, int, bool, UUID]] = []
        self._seq = 0

    def offline(self, device_ids: Iterable[UUID], start: datetime, end: datetime | None) -> None:
        """Take ``device_ids`` offline from ``start`` until ``end`` (``None`` = for good)."""
        for device_id in device_ids:
            heapq.heappush(self._edges, (start, self._seq, False, device_id))
            self._seq += 1
            if end is not None:
                heapq.heappush(self._edges, (end, self._seq, True, device_id))
                self._seq += 1

    def apply(self, now: datetime, pool: SimPool) -> None:
        """Bring every device's online state up to ``now`` (call before stepping)."""
        edges = self._edges
        while edges and edges[0][0] <= now:
            _, _, online, device_id = heapq.heappop(edges)
            pool.by_id[device_id].set_online(online)
