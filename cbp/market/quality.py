"""Data-quality checks around validation: baseline quality, pool coherence, acknowledgement time.

docs/architecture.md#market-rules, reference scenarios 5 and 8:
- baseline quality on ISPs without activation: NMAE = sum|F5 - M| / (N * P_offered) <= 10 % and
  bias = sum(F5 - M) / (N * P_offered) within +-5 %, pooled over the last 4 idle ISPs
  (``BaselineMonitor``); outside either bound the aggregator is flagged, and validation uses the
  meter-before fallback (``validate_delivery(..., baseline_flagged=True)``);
- pool coherence: at each time the device rows (kW, 0.1 kW resolution) add up to the pool row (MW,
  1 kW resolution) within rounding, i.e. n * 0.05 kW + 0.5 kW;
- acknowledgements (oadrCreatedEvent) later than 30 s after the event was sent are late.

Invariants: only timestamps present in both series are compared (nothing is interpolated here);
all ratios are exact ``Decimal``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from .config import MarketRules
from .isp import IspRef
from .series import Sample

__all__ = [
    "AckCheck",
    "BaselineMonitor",
    "BaselineQuality",
    "Coherence",
    "assess_baseline",
    "check_ack",
    "check_pool_coherence",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineQuality:
    samples: int
    nmae: Decimal
    bias: Decimal
    acceptable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _IspErrors:
    isp: IspRef | None
    samples: int
    abs_sum: Decimal
    signed_sum: Decimal
    offered_mw: Decimal


def _errors(
    isp: IspRef | None, forecast: Sequence[Sample], measured: Sequence[Sample], offered_mw: Decimal
) -> _IspErrors:
    if offered_mw <= 0:
        raise ValueError("offered MW must be positive to normalise the baseline error")
    meter = {s.at: s.value for s in measured}
    pairs = [(f.value, meter[f.at]) for f in forecast if f.at in meter]
    return _IspErrors(
        isp=isp,
        samples=len(pairs),
        abs_sum=sum((abs(f - m) for f, m in pairs), Decimal(0)),
        signed_sum=sum((f - m for f, m in pairs), Decimal(0)),
        offered_mw=offered_mw,
    )


def _pooled(parts: Sequence[_IspErrors], rules: MarketRules) -> BaselineQuality:
    samples = sum(p.samples for p in parts)
    scale = sum((p.samples * p.offered_mw for p in parts), Decimal(0))
    if not scale:
        raise ValueError("no paired forecast and measured samples to assess")
    nmae = sum((p.abs_sum for p in parts), Decimal(0)) / scale
    bias = sum((p.signed_sum for p in parts), Decimal(0)) / scale
    ok = nmae <= rules.max_baseline_nmae and abs(bias) <= rules.max_baseline_bias
    return BaselineQuality(samples=samples, nmae=nmae, bias=bias, acceptable=ok)


def assess_baseline(
    forecast: Sequence[Sample],
    measured: Sequence[Sample],
    offered_mw: Decimal,
    rules: MarketRules,
) -> BaselineQuality:
    """NMAE and bias of one idle period's +5-min forecast against the meter."""
    return _pooled((_errors(None, forecast, measured, offered_mw),), rules)


class BaselineMonitor:
    """Per aggregator: the last ``baseline_assessment_isps`` idle ISPs, pooled."""

    __slots__ = ("_recent", "_rules")

    def __init__(self, rules: MarketRules) -> None:
        self._rules = rules
        self._recent: deque[_IspErrors] = deque(maxlen=rules.baseline_assessment_isps)

    def record_idle_isp(
        self,
        isp: IspRef,
        forecast: Sequence[Sample],
        measured: Sequence[Sample],
        offered_mw: Decimal,
    ) -> BaselineQuality:
        """Add an ISP without activation and return the pooled quality after it; recording the
        same ISP again replaces its earlier entry (late data), it does not count twice."""
        kept = [e for e in self._recent if e.isp != isp]
        self._recent.clear()
        self._recent.extend(kept)
        self._recent.append(_errors(isp, forecast, measured, offered_mw))
        return _pooled(tuple(self._recent), self._rules)

    @property
    def flagged(self) -> bool:
        """True when the pooled recent ISPs breach NMAE or bias; validation then falls back."""
        if not self._recent:
            return False
        return not _pooled(tuple(self._recent), self._rules).acceptable


@dataclass(frozen=True, slots=True, kw_only=True)
class Coherence:
    checked: int
    tolerance_mw: Decimal
    max_deviation_mw: Decimal
    incoherent: tuple[datetime, ...]

    @property
    def coherent(self) -> bool:
        return not self.incoherent


def check_pool_coherence(
    pool_mw: Sequence[Sample],
    devices_kw: Mapping[str, Sequence[Sample]],
    rules: MarketRules,
) -> Coherence:
    """Compare the pool row with the sum of device rows at every pool timestamp.

    A device without a row at that time contributes nothing (it may be idle and silent)."""
    device_maps = [{s.at: s.value for s in rows} for rows in devices_kw.values()]
    half = Decimal("0.5")
    tolerance = (
        len(device_maps) * rules.device_resolution_kw * half / 1000
        + rules.pool_resolution_mw * half
    )
    worst = Decimal(0)
    bad: list[datetime] = []
    for row in pool_mw:
        total_kw = sum((m.get(row.at, Decimal(0)) for m in device_maps), Decimal(0))
        deviation = abs(total_kw / 1000 - row.value)
        worst = max(worst, deviation)
        if deviation > tolerance:
            bad.append(row.at)
    return Coherence(
        checked=len(pool_mw), tolerance_mw=tolerance, max_deviation_mw=worst,
        incoherent=tuple(bad),
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class AckCheck:
    delay: timedelta
    late: bool


def check_ack(sent_at: datetime, acked_at: datetime, rules: MarketRules) -> AckCheck:
    """An acknowledgement exactly at the deadline is on time; one later is recorded late."""
    delay = acked_at - sent_at
    return AckCheck(delay=delay, late=delay > rules.ack_deadline)
