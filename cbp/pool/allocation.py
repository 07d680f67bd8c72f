"""Pool allocation: split a pool setpoint (MW of upward regulation) into per-device kW setpoints,
which the aggregator then dispatches (one LOAD_DISPATCH event per device).

docs/architecture.md#the-cbp-profile-on-openadr (dispatch, per-device setpoints in kW) and the
exceptions of docs/architecture.md#reference-scenarios (a share of devices goes offline
mid-activation: detected after 3 missed samples, re-dispatched to reserves).

Each sample the caller passes the pool setpoint and a ``FlexState`` per device (its natural
consumption now and the reduction it can hold); the :class:`Allocator` keeps the assignment, a
reduction r_i in kW per active device, and answers with consumption targets natural_i - r_i.

- Greedy and sticky: devices already active keep their share (clipped to what they can still
  hold); new need goes first to active devices with headroom, then to new devices ranked by class
  priority, then by larger available flex (fewer devices to instruct), then by a tie-break
  keyed by the caller's ``tie_key`` (a keyed hash of the device id: the aggregator draws a fresh
  key per activation, so equal devices do not rank the same way every time, issue 11, yet a
  re-dispatch of the same activation ranks them as before); without a key, by id.
- Falling setpoints release the most recently activated devices first (LIFO).
- ``observe`` counts consecutive missed samples; at the configured count (3) a device is lost:
  its share leaves the assignment and is re-dispatched to healthy devices on the next call. Until
  then it is not fabricated as delivering: its share simply is not there.
- The reserve is the healthy flex left unassigned; below ``reserve_share`` of the request the plan
  says so, so the aggregator can refuse or warn before it is needed.

Invariants: sum of assigned reductions <= requested (up to float dust); 0 <= r_i <= up_kw_i; lost
devices and devices that missed their last sample get no new share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from cbp.devices import Device

from .config import PoolConfig

__all__ = ["AllocationPlan", "Allocator", "FlexState", "flex_snapshot"]

_DUST_KW = 1e-6


@dataclass(frozen=True, slots=True, kw_only=True)
class FlexState:
    natural_kw: float  # consumption without instruction now (kW)
    up_kw: float  # consumption reduction it can hold over the dispatch horizon (kW)
    rank: int = 0  # class priority: lower is dispatched first


def flex_snapshot(
    devices: Iterable[Device],
    now: datetime,
    config: PoolConfig,
    *,
    horizon: timedelta | None = None,
) -> dict[UUID, FlexState]:
    """What each device says it can do now (the aggregator's view of its reported flex)."""
    span = config.dispatch_horizon if horizon is None else horizon
    return {
        d.device_id: FlexState(
            natural_kw=d.natural_kw(now),
            up_kw=d.available_flex_kw(now, span),
            rank=config.rank(d.device_class),
        )
        for d in devices
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationPlan:
    at: datetime
    requested_kw: float
    assigned_kw: float
    reserve_kw: float
    setpoints_kw: Mapping[UUID, float]  # consumption targets of the active devices
    released: tuple[UUID, ...]  # back to natural behaviour from this sample
    lost: tuple[UUID, ...]  # newly declared lost; their share was re-dispatched here

    @property
    def shortfall_kw(self) -> float:
        return max(0.0, self.requested_kw - self.assigned_kw)

    def reserve_ok(self, reserve_share: float) -> bool:
        return self.reserve_kw + _DUST_KW >= reserve_share * self.requested_kw


class Allocator:
    """Stateful, pure: no clock, no I/O; one ``allocate`` and one ``observe`` per sample."""

    __slots__ = ("_assigned", "_config", "_lost", "_missed", "_newly_lost", "_tie_key", "_ties")

    def __init__(self, config: PoolConfig | None = None, *, tie_key: bytes = b"") -> None:
        self._config = config if config is not None else PoolConfig()
        self._tie_key = tie_key
        self._ties: dict[UUID, int] = {}  # device -> its tie-break under the key
        self._assigned: dict[UUID, float] = {}  # insertion order = activation order
        self._missed: dict[UUID, int] = {}
        self._lost: set[UUID] = set()
        self._newly_lost: list[UUID] = []

    @property
    def assigned_kw(self) -> Mapping[UUID, float]:
        return dict(self._assigned)

    @property
    def lost(self) -> frozenset[UUID]:
        return frozenset(self._lost)

    def observe(self, now: datetime, readings: Mapping[UUID, float | None]) -> None:
        """Record which devices reported the sample at ``now`` (``None`` = missed)."""
        limit = self._config.missed_samples_to_drop
        missed = self._missed
        # Iterate without hashing every id: only the silent ones and the known-missing are looked
        # up (uuid.UUID hashes in Python, and this runs for every device every sample).
        silent = [device_id for device_id, value in readings.items() if value is None]
        for device_id in silent:
            count = missed.get(device_id, 0) + 1
            missed[device_id] = count
            if count == limit:
                self._lost.add(device_id)
                self._newly_lost.append(device_id)
        if len(missed) > len(silent):
            still = set(silent)
            for device_id in [d for d in missed if d not in still and d in readings]:
                del missed[device_id]
                self._lost.discard(device_id)

    def allocate(
        self, now: datetime, setpoint_mw: float, flex: Mapping[UUID, FlexState]
    ) -> AllocationPlan:
        """Assign ``setpoint_mw`` (upward regulation, >= 0) across the devices in ``flex``."""
        requested = max(0.0, setpoint_mw * 1000.0)
        before = set(self._assigned)
        lost = tuple(self._newly_lost)
        self._newly_lost.clear()
        total = self._clip(flex)
        need = requested - total
        if need > _DUST_KW:
            need = self._top_up(need, flex)
        elif need < -_DUST_KW:
            self._release(-need)
        assigned = self._assigned
        released = tuple(d for d in before if d not in assigned)
        return AllocationPlan(
            at=now,
            requested_kw=requested,
            assigned_kw=sum(assigned.values()),
            reserve_kw=self._reserve(flex),
            setpoints_kw={d: flex[d].natural_kw - r for d, r in assigned.items()},
            released=tuple(sorted(released)),
            lost=lost,
        )

    def _clip(self, flex: Mapping[UUID, FlexState]) -> float:
        """Drop lost or unknown devices; clip each share to what the device can still hold."""
        total = 0.0
        for device_id, share in list(self._assigned.items()):
            state = flex.get(device_id)
            cap = 0.0 if state is None or device_id in self._lost else state.up_kw
            if cap <= _DUST_KW:
                del self._assigned[device_id]
                continue
            if share > cap:
                share = self._assigned[device_id] = cap
            total += share
        return total

    def _healthy(self, device_id: UUID) -> bool:
        return device_id not in self._missed

    def _top_up(self, need: float, flex: Mapping[UUID, FlexState]) -> float:
        assigned = self._assigned
        for device_id, share in assigned.items():
            headroom = flex[device_id].up_kw - share
            if headroom > _DUST_KW and self._healthy(device_id):
                take = min(headroom, need)
                assigned[device_id] = share + take
                need -= take
                if need <= _DUST_KW:
                    return 0.0
        missed = self._missed
        candidates = sorted(
            (s.rank, -s.up_kw, self._tie(d), d)
            for d, s in flex.items()
            if s.up_kw > _DUST_KW and d not in assigned and not (missed and d in missed)
        )
        for _, negative_up, _, device_id in candidates:
            take = min(-negative_up, need)
            assigned[device_id] = take
            need -= take
            if need <= _DUST_KW:
                return 0.0
        return need

    def _tie(self, device_id: UUID) -> int:
        if not self._tie_key:
            return 0  # then the id decides
        tie = self._ties.get(device_id)
        if tie is None:
            digest = hashlib.blake2b(device_id.bytes, key=self._tie_key, digest_size=8).digest()
            tie = self._ties[device_id] = int.from_bytes(digest, "big")
        return tie

    def _release(self, excess: float) -> None:
        assigned = self._assigned
        for device_id in reversed(list(assigned)):
            share = assigned[device_id]
            if share <= excess + _DUST_KW:
                del assigned[device_id]
                excess -= share
            else:
                assigned[device_id] = share - excess
                excess = 0.0
            if excess <= _DUST_KW:
                return

    def _reserve(self, flex: Mapping[UUID, FlexState]) -> float:
        """Healthy flex not yet assigned (kW)."""
        spare = sum(s.up_kw for s in flex.values()) - sum(self._assigned.values())
        for device_id in self._missed:
            state = flex.get(device_id)
            if state is not None:
                spare -= state.up_kw - self._assigned.get(device_id, 0.0)
        return spare
