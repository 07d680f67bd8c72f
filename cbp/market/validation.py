"""Delivery validation: requested, delivered and settled energy of one activation.

docs/architecture.md#market-rules, with S the TSO setpoint, B the +5-min baseline forecast and M the
measured pool power on the 4-s grid (dt = sample period):

    dP_k  = B_k - M_k                       (upward; downward uses M_k - B_k)
    E_req = sum S_k dt
    E_del = sum max(0, dP_k) dt
    C_k   = max(S_k, S_(k-1), ..., S_(k-L))  the cap: the largest of the last L+1 setpoints
    E_set = min(sum min(max(dP_k, 0), C_k) dt, E_req)   delivery above the cap is not paid
    rho   = E_del / E_req

Any delivery between the current and the L-samples-old setpoint is paid: a pool that follows at
once is paid in full, and so is one that follows L samples late; a pool later than L loses what
it delivers above the cap. Because C_k looks back L samples, the capped sum can exceed what was
requested on a falling setpoint; E_set is bounded by E_req, since the lag allowance shifts when
energy counts, not how much. The window runs from the first setpoint sample to L samples past
the last one, so a pool that follows L samples late is not cut short. Setpoints are TSO data and
must lie on the grid; a grid time inside the activation without a setpoint sample requests
nothing.

Data quality: measurement and baseline gaps of up to 3 samples are interpolated and counted as
estimated; a sample with no measured or estimated B and M delivers zero. If the baseline is
absent or its aggregator is flagged (see ``quality``), B falls back to meter-before: the mean of
the measured samples in the 15 sample periods before the activation.

Invariants: energies are exact ``Decimal`` (rounding happens on statements only); 0 <= E_set <=
min(E_del, E_req); no row carries a value that was neither measured nor interpolated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from cbp.errors import CbpError

from .config import MarketRules
from .isp import IspCalendar, IspRef
from .offers import Direction
from .series import Grid, GridPoint, Sample, SampleQuality, regularise, snap

__all__ = [
    "Delivery",
    "DeliveryRow",
    "Flag",
    "ValidationError",
    "energy_mwh",
    "meter_before",
    "split_by_isp",
    "validate_delivery",
]

_HOUR_S = Decimal(3600)


class ValidationError(CbpError, ValueError):
    """The inputs cannot be validated (no setpoints, off-grid setpoints, no meter data)."""


class Flag(StrEnum):
    ESTIMATED = "estimated"
    MISSING_COUNTED_ZERO = "missing_counted_zero"
    CLOCK_REALIGNED = "clock_realigned"
    DUPLICATE_SAMPLES_DROPPED = "duplicate_samples_dropped"
    BASELINE_FALLBACK = "baseline_fallback"
    BASELINE_FALLBACK_SHORT = "baseline_fallback_short"
    ACK_LATE = "ack_late"
    POOL_INCOHERENT = "pool_incoherent"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRow:
    at: datetime
    setpoint_mw: Decimal
    cap_mw: Decimal  # C_k: the largest setpoint of the last L + 1 samples
    baseline_mw: Decimal | None
    measured_mw: Decimal | None
    delivered_mw: Decimal
    settled_mw: Decimal
    quality: SampleQuality


def energy_mwh(mw_samples_sum: Decimal, period: timedelta) -> Decimal:
    """MWh of a sum of MW samples: sum * dt / 3600, dividing once to keep precision."""
    return mw_samples_sum * Decimal(period.total_seconds()) / _HOUR_S


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    rows: tuple[DeliveryRow, ...]
    period: timedelta
    direction: Direction = Direction.UP
    lag: timedelta = timedelta(0)  # the tracking lag L * dt the settled cap used
    extra_flags: frozenset[Flag] = frozenset()
    realigned_samples: int = 0

    @property
    def requested_mwh(self) -> Decimal:
        return energy_mwh(sum((r.setpoint_mw for r in self.rows), Decimal(0)), self.period)

    @property
    def delivered_mwh(self) -> Decimal:
        return energy_mwh(sum((r.delivered_mw for r in self.rows), Decimal(0)), self.period)

    @property
    def settled_mwh(self) -> Decimal:
        """E_set: the capped rows, never more than was requested."""
        capped = energy_mwh(sum((r.settled_mw for r in self.rows), Decimal(0)), self.period)
        return min(capped, self.requested_mwh)

    @property
    def ratio(self) -> Decimal | None:
        """rho = E_del / E_req; ``None`` when nothing was requested."""
        requested = self.requested_mwh
        return self.delivered_mwh / requested if requested else None

    def count(self, quality: SampleQuality) -> int:
        return sum(1 for r in self.rows if r.quality is quality)

    @property
    def flags(self) -> tuple[Flag, ...]:
        flags = set(self.extra_flags)
        if self.count(SampleQuality.ESTIMATED):
            flags.add(Flag.ESTIMATED)
        if self.count(SampleQuality.MISSING):
            flags.add(Flag.MISSING_COUNTED_ZERO)
        return tuple(sorted(flags))


def meter_before(measured: Grid, start: datetime, rules: MarketRules) -> tuple[Decimal, int]:
    """Mean of the usable samples in the ``fallback_samples`` periods before ``start``, and how
    many there were."""
    times = (start - i * rules.sample_period for i in range(1, rules.fallback_samples + 1))
    values = [p.value for p in (measured.at(t) for t in times) if p.value is not None]
    if not values:
        raise ValidationError(
            f"no meter data in the {rules.fallback_samples} samples before "
            f"{start.isoformat()} for the meter-before baseline"
        )
    return sum(values, Decimal(0)) / len(values), len(values)


def _setpoint_map(setpoints: Iterable[Sample], rules: MarketRules) -> dict[datetime, Decimal]:
    mapped: dict[datetime, Decimal] = {}
    for sample in setpoints:
        point = snap(sample.at, rules.sample_period)
        if point != sample.at:
            raise ValidationError(
                f"setpoint at {sample.at.isoformat()} is off the "
                f"{rules.sample_period.total_seconds():g}-s grid"
            )
        if point in mapped:
            raise ValidationError(f"two setpoints at {sample.at.isoformat()}")
        mapped[point] = sample.value
    if not mapped:
        raise ValidationError("no setpoint samples")
    return mapped


def validate_delivery(
    setpoints: Sequence[Sample],
    measured: Sequence[Sample],
    baseline: Sequence[Sample] | None,
    rules: MarketRules,
    *,
    direction: Direction = Direction.UP,
    baseline_flagged: bool = False,
    clock_offset: timedelta = timedelta(0),
) -> Delivery:
    """Validate one activation. ``clock_offset`` is the measuring clock's known lead over true
    time; ``baseline_flagged`` (or no baseline) selects the meter-before fallback."""
    period, lag = rules.sample_period, rules.tracking_lag_samples
    wanted = _setpoint_map(setpoints, rules)
    first, last = min(wanted), max(wanted)
    window = [first + i * period for i in range((last - first) // period + lag + 1)]
    span = (first - rules.fallback_samples * period, window[-1])
    meter = regularise(measured, rules, span=span, clock_offset=clock_offset)
    flags: set[Flag] = set()
    if meter.realigned:
        flags.add(Flag.CLOCK_REALIGNED)
    if meter.collisions:
        flags.add(Flag.DUPLICATE_SAMPLES_DROPPED)
    if baseline is None or baseline_flagged:
        level, used = meter_before(meter, first, rules)
        flags.add(Flag.BASELINE_FALLBACK)
        if used < rules.fallback_samples:
            flags.add(Flag.BASELINE_FALLBACK_SHORT)
        base = Grid(start=first, period=period, points=tuple(
            _flat(t, level) for t in window))  # fmt: skip
    else:
        base = regularise(baseline, rules, span=(first, window[-1]))
    rows = tuple(_row(t, wanted, base, meter, period, lag, direction) for t in window)
    return Delivery(
        rows=rows, period=period, direction=direction, lag=period * lag,
        extra_flags=frozenset(flags), realigned_samples=meter.realigned,
    )  # fmt: skip


def _flat(at: datetime, level: Decimal) -> GridPoint:
    return GridPoint(at=at, value=level, quality=SampleQuality.MEASURED)


def _row(
    at: datetime,
    wanted: dict[datetime, Decimal],
    base: Grid,
    meter: Grid,
    period: timedelta,
    lag: int,
    direction: Direction,
) -> DeliveryRow:
    s_now = wanted.get(at, Decimal(0))
    recent = (wanted.get(at - i * period, Decimal(0)) for i in range(lag + 1))
    cap = max(Decimal(0), *recent)
    b, m = base.at(at), meter.at(at)
    if b.value is None or m.value is None:
        delivered = settled = Decimal(0)
        quality = SampleQuality.MISSING
    else:
        d_p = b.value - m.value if direction is Direction.UP else m.value - b.value
        delivered = max(Decimal(0), d_p)
        settled = min(delivered, cap)
        estimated = SampleQuality.ESTIMATED in (b.quality, m.quality)
        quality = SampleQuality.ESTIMATED if estimated else SampleQuality.MEASURED
    return DeliveryRow(
        at=at, setpoint_mw=s_now, cap_mw=cap, baseline_mw=b.value,
        measured_mw=m.value, delivered_mw=delivered, settled_mw=settled, quality=quality,
    )  # fmt: skip


def split_by_isp(delivery: Delivery, calendar: IspCalendar) -> dict[IspRef, Delivery]:
    """One ``Delivery`` per ISP, for per-ISP statements of an activation crossing a boundary.

    A row's request belongs to the ISP of its own time; its response (delivered, settled) to the
    ISP of the setpoint it answers, L samples earlier, so a pool following the allowed lag is not
    short in the first ISP and over in the next. A row whose two halves fall in different ISPs
    is split in two."""
    parts: dict[IspRef, list[DeliveryRow]] = {}
    zero = Decimal(0)
    for row in delivery.rows:
        own, answered = calendar.isp_at(row.at), calendar.isp_at(row.at - delivery.lag)
        if own == answered:
            parts.setdefault(own, []).append(row)
            continue
        parts.setdefault(own, []).append(replace(
            row, baseline_mw=None, measured_mw=None, delivered_mw=zero, settled_mw=zero,
            quality=SampleQuality.MEASURED))  # fmt: skip
        parts.setdefault(answered, []).append(replace(row, setpoint_mw=zero))
    return {
        isp: replace(delivery, rows=tuple(sorted(rows, key=lambda r: r.at)))
        for isp, rows in sorted(parts.items())
    }
