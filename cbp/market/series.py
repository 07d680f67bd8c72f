"""Sample series on the telemetry grid: re-alignment and gap handling
(docs/architecture.md#market-rules).

A ``Sample`` is one timestamped value (MW for pool series, kW for device series; the caller's
name for the series says which). ``regularise`` puts samples on the grid of ``sample_period``
anchored at the Unix epoch (so every whole minute is a grid point for 4-s samples):

- clock skew: each timestamp is shifted by the known device clock offset, if any, then snapped to
  the nearest grid point; every sample that moved is counted, so the caller can flag it;
- two samples snapping to the same point: the first is kept, the rest counted as collisions;
- gaps of up to ``max_interpolated_gap`` consecutive points with measured neighbours on both sides
  are filled by linear interpolation and marked ``estimated``; longer gaps, and points outside the
  measured span, stay ``missing`` (no value). Nothing is invented beyond that.

Invariants: grid points are consecutive, evenly spaced, aware UTC; a point's value is ``None``
exactly when its quality is ``missing``; measured values are never changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from .config import MarketRules

__all__ = [
    "Grid", "GridPoint", "Sample", "SampleQuality", "grid_index", "on_grid", "regularise", "snap",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SampleQuality(StrEnum):
    MEASURED = "measured"
    ESTIMATED = "estimated"
    MISSING = "missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    at: datetime
    value: Decimal

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"sample time {self.at.isoformat()} has no UTC offset")


@dataclass(frozen=True, slots=True, kw_only=True)
class GridPoint:
    at: datetime
    value: Decimal | None
    quality: SampleQuality


@dataclass(frozen=True, slots=True, kw_only=True)
class Grid:
    start: datetime
    period: timedelta
    points: tuple[GridPoint, ...]
    realigned: int = 0
    collisions: int = 0

    def at(self, instant: datetime) -> GridPoint:
        """The point at ``instant`` (a grid time); outside the grid it is ``missing``."""
        index, rest = divmod(instant - self.start, self.period)
        if rest or not 0 <= index < len(self.points):
            return GridPoint(at=instant, value=None, quality=SampleQuality.MISSING)
        return self.points[index]


def grid_index(instant: datetime, period: timedelta) -> int:
    """The number of the grid point at or before ``instant``: whole periods since the epoch
    (so a device's place in a cycle of N samples is ``grid_index(at, period) % N``)."""
    return (instant.astimezone(UTC) - _EPOCH) // period


def snap(instant: datetime, period: timedelta) -> datetime:
    """The grid point nearest ``instant`` (halfway rounds later)."""
    steps, rest = divmod(instant.astimezone(UTC) - _EPOCH, period)
    if rest * 2 >= period:
        steps += 1
    return _EPOCH + steps * period


def on_grid(instant: datetime, period: timedelta) -> bool:
    """Whether ``instant`` is a grid point (one :func:`snap` leaves where it is): one remainder,
    where snap takes five datetime operations."""
    return not (instant - _EPOCH) % period


def regularise(
    samples: Iterable[Sample],
    rules: MarketRules,
    *,
    span: tuple[datetime, datetime] | None = None,
    clock_offset: timedelta = timedelta(0),
) -> Grid:
    """Samples on the grid covering their own span and ``span`` (both ends inclusive).

    ``clock_offset`` is how far the sender's clock runs ahead of true time (e.g. +7 s); it is
    subtracted before snapping.
    """
    period = rules.sample_period
    placed: dict[datetime, Decimal] = {}
    realigned = collisions = 0
    for sample in samples:
        point = snap(sample.at - clock_offset, period)
        if point != sample.at:
            realigned += 1
        if point in placed:
            collisions += 1
            continue
        placed[point] = sample.value
    ends = [snap(t, period) for t in span] if span is not None else []
    ends.extend(placed)
    if not ends:
        raise ValueError("regularise needs samples or a span")
    start, stop = min(ends), max(ends)
    values = [placed.get(start + i * period) for i in range((stop - start) // period + 1)]
    points = _fill_gaps(values, start, period, rules.max_interpolated_gap)
    return Grid(
        start=start, period=period, points=points, realigned=realigned, collisions=collisions
    )


def _fill_gaps(
    values: list[Decimal | None], start: datetime, period: timedelta, max_gap: int
) -> tuple[GridPoint, ...]:
    quality = [SampleQuality.MEASURED if v is not None else SampleQuality.MISSING for v in values]
    filled = list(values)
    i = 0
    while i < len(values):
        if values[i] is not None:
            i += 1
            continue
        end = i
        while end < len(values) and values[end] is None:
            end += 1
        left = values[i - 1] if i > 0 else None
        right = values[end] if end < len(values) else None
        run = end - i
        # Interpolate only between two real measurements; a gap at the edge has one side unknown.
        if left is not None and right is not None and run <= max_gap:
            for j in range(run):
                filled[i + j] = left + (right - left) * (j + 1) / (run + 1)
                quality[i + j] = SampleQuality.ESTIMATED
        i = end
    return tuple(
        GridPoint(at=start + k * period, value=filled[k], quality=quality[k])
        for k in range(len(values))
    )
