"""The aggregator's view of its devices: who they are (by venID), what they last reported.

Owns the mapping venID (device certificate fingerprint) -> device_uuid and registration facts
(class, power bucket, rated power, pseudonyms for the current month), the per-sample readings
received from device telemetry (measured and natural kW), and each device's latest outlook
(upward flex and natural-consumption forecasts per horizon). Closing a sample turns the readings
of every registered device into a pool row (:func:`cbp.pool.aggregate_sample`): a device with no
reading for that instant is listed missing, never filled in.

A reading is filed only at an instant a device can have sampled: on the epoch-aligned grid of
``MarketRules.sample_period`` (where :func:`cbp.roles.device.next_grid` takes samples), no more
than :data:`MAX_AGE_SAMPLES` periods before the aggregator's clock (a device's backlog after an
outage) and no more than :data:`MAX_LEAD_SAMPLES` after it (a clock running ahead). Any other
instant is refused and tallied (``refused_points``; a WARNING names the device once): filed,
it would open a sample of its own, which the aggregator's closing walk along the grid never
closes (kept for good), or, as the first sample after a start, would set where that walk begins
(a year-old instant: a walk of millions of samples; an instant off the grid: no sample of the
other devices ever closed), and its row would be a pool row of one device.

Invariants: readings are keyed by the sample instant they were taken at; a sample is closed once
and its readings are then dropped; a reading for an instant already closed arrives too late to
count and is only tallied (``late_points``), though it still shows its device is alive
(:meth:`heard_after`); a refused reading counts for nothing, not even that; pseudonyms are
recomputed from the vault (never stored in a reverse table) when the month changes.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

from cbp.market import MarketRules, on_grid
from cbp.pool import FlexState, PoolConfig, PoolRow, aggregate_sample
from schemas import Report

from .profile import DEVICE_FLEX_RID, DEVICE_FORECAST_RIDS, DEVICE_NATURAL_RID, DEVICE_POWER_RID

__all__ = ["MAX_AGE_SAMPLES", "MAX_LEAD_SAMPLES", "DeviceBook", "DeviceEntry", "Outlook"]

log = logging.getLogger(__name__)

#: how many sample periods before the aggregator's clock a reading may be (an hour at 4 s)
MAX_AGE_SAMPLES: Final = 900
#: how many sample periods after it (a minute at 4 s: a device's clock running ahead)
MAX_LEAD_SAMPLES: Final = 15


@dataclass(slots=True, kw_only=True)
class DeviceEntry:
    ven_id: str
    device_uuid: UUID
    prosumer_id: str
    device_class: str
    power_bucket: str
    #: what per-device values to the TSO are a share of (:func:`privacy.device_share`)
    rated_kw: Decimal
    pseudonym: str = ""
    gcp_pseudonym: str = ""
    registered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Outlook:
    at: datetime
    flex_kw: float
    forecasts_kw: tuple[float, ...]


@dataclass(slots=True)
class _Sample:
    power: dict[UUID, float] = field(default_factory=dict)
    natural: dict[UUID, float] = field(default_factory=dict)


class DeviceBook:
    """Devices by venID plus the telemetry not yet closed into pool rows."""

    def __init__(self, rules: MarketRules, pool: PoolConfig) -> None:
        self.rules = rules
        self.pool = pool
        self.by_ven: dict[str, DeviceEntry] = {}
        self.by_uuid: dict[UUID, DeviceEntry] = {}
        self.outlooks: dict[UUID, Outlook] = {}
        self.natural_last: dict[UUID, float] = {}
        self._open: dict[datetime, _Sample] = {}
        self._closed_through: datetime | None = None
        self._latest: dict[UUID, datetime] = {}  # device -> latest sample instant received
        self.points_received = 0
        self.late_points = 0
        self.refused_points = 0
        self._refused_from: set[str] = set()  # venIDs already warned about

    def add(self, entry: DeviceEntry) -> None:
        self.by_ven[entry.ven_id] = entry
        self.by_uuid[entry.device_uuid] = entry

    def forget(self, device: UUID) -> DeviceEntry | None:
        """Drop everything the book holds about a device (its owner was erased)."""
        entry = self.by_uuid.pop(device, None)
        if entry is not None:
            self.by_ven.pop(entry.ven_id, None)
            self._refused_from.discard(entry.ven_id)
        for table in (self.outlooks, self.natural_last, self._latest):
            table.pop(device, None)
        for sample in self._open.values():
            sample.power.pop(device, None)
            sample.natural.pop(device, None)
        return entry

    def registered(self) -> tuple[DeviceEntry, ...]:
        return tuple(e for e in self.by_ven.values() if e.registered)

    def take_report(self, ven_id: str, report: Report, *, now: datetime) -> None:
        """File a device's TELEMETRY_USAGE batch; ``now``: the aggregator's clock."""
        entry = self.by_ven.get(ven_id)
        if entry is None:
            return
        uid = entry.device_uuid
        closed = self._closed_through
        known = latest = self._latest.get(uid)
        natural_last: float | None = None
        period = self.rules.sample_period
        earliest, last = now - MAX_AGE_SAMPLES * period, now + MAX_LEAD_SAMPLES * period
        for interval in report.intervals:
            at = interval.dtstart
            if at is None:
                continue
            if not earliest <= at <= last or not on_grid(at, period):
                self._refuse(ven_id, at)
                continue
            if latest is None or at > latest:
                latest = at
            values = {p.r_id: p.value for p in interval.payloads
                      if isinstance(p.value, float | int)}
            if closed is not None and at <= closed:
                self.late_points += DEVICE_POWER_RID in values
                continue
            sample = self._open.get(at)
            if sample is None:
                sample = self._open[at] = _Sample()
            power = values.get(DEVICE_POWER_RID)
            if power is not None:
                sample.power[uid] = float(power)
                self.points_received += 1
            natural = values.get(DEVICE_NATURAL_RID)
            if natural is not None:
                sample.natural[uid] = natural_last = float(natural)
            if DEVICE_FLEX_RID in values:
                self.outlooks[uid] = Outlook(at=at, flex_kw=float(values[DEVICE_FLEX_RID]),
                                             forecasts_kw=tuple(float(values.get(r, 0.0))
                                                                for r in DEVICE_FORECAST_RIDS))
        if latest is not None and latest is not known:
            self._latest[uid] = latest
        if natural_last is not None:  # the batch's last natural reading
            self.natural_last[uid] = natural_last

    def _refuse(self, ven_id: str, at: datetime) -> None:
        self.refused_points += 1
        if ven_id not in self._refused_from:
            self._refused_from.add(ven_id)
            log.warning("telemetry of venID %s refused: sample instant %s is off the %g-s grid, "
                        "more than %d samples before this aggregator's clock or more than %d "
                        "after it (the device's clock?); said once per device", ven_id,
                        at.isoformat(), self.rules.sample_period.total_seconds(),
                        MAX_AGE_SAMPLES, MAX_LEAD_SAMPLES)

    def close(self, at: datetime) -> tuple[PoolRow, dict[UUID, Decimal], _Sample]:
        """The pool row and device rows of sample ``at`` over every registered device."""
        sample = self._open.pop(at, _Sample())
        self._closed_through = at
        readings: dict[UUID, float | None] = {
            e.device_uuid: sample.power.get(e.device_uuid) for e in self.registered()}
        row, rows = aggregate_sample(at, readings, self.rules)
        return row, rows, sample

    def heard_after(self, device: UUID, at: datetime) -> bool:
        """Whether the device has reported a sample taken after ``at``."""
        latest = self._latest.get(device)
        return latest is not None and latest > at

    def pending_before(self, limit: datetime) -> tuple[datetime, ...]:
        return tuple(sorted(t for t in self._open if t <= limit))

    def flex(self, only: Collection[UUID] | None = None) -> dict[UUID, FlexState]:
        """The dispatcher's view: natural kW now and the reduction each device can hold (of
        the devices in ``only``, when given)."""
        states = {}
        for entry in self.registered():
            if only is not None and entry.device_uuid not in only:
                continue
            outlook = self.outlooks.get(entry.device_uuid)
            if outlook is None:
                continue
            natural = self.natural_last.get(entry.device_uuid, 0.0)
            states[entry.device_uuid] = FlexState(
                natural_kw=natural, up_kw=min(outlook.flex_kw, natural),
                rank=self._rank(entry.device_class))
        return states

    def _rank(self, device_class: str) -> int:
        names = [c.value for c in self.pool.class_priority]
        return names.index(device_class) if device_class in names else len(names)

    def flex_mw(self, only: Collection[UUID] | None = None) -> Decimal:
        kw = sum(s.up_kw for s in self.flex(only).values())
        return (Decimal(repr(kw)) / 1000).quantize(self.rules.pool_resolution_mw,
                                                   rounding="ROUND_DOWN")

    def forecast_mw(self) -> tuple[Decimal, ...]:
        """The pool's natural consumption per configured horizon (sum of device forecasts)."""
        count = len(self.pool.forecast_horizons)
        totals = [0.0] * count
        for entry in self.registered():
            outlook = self.outlooks.get(entry.device_uuid)
            if outlook is not None:
                for i in range(count):
                    totals[i] += outlook.forecasts_kw[i]
        return tuple((Decimal(repr(kw)) / 1000).quantize(self.rules.pool_resolution_mw)
                     for kw in totals)

    def pseudonyms(self) -> Mapping[UUID, str]:
        return {u: e.pseudonym for u, e in self.by_uuid.items()}
