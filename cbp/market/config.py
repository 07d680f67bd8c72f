"""Market and validation rule parameters (docs/architecture.md#market-rules), all configuration.

``MarketRules`` owns every number the market core uses: the ISP length, gate closure, offer bounds,
the telemetry sample period, tracking lag, tolerance, penalty factor, baseline quality thresholds,
gap interpolation and the acknowledgement deadline. Nothing in ``cbp.market`` hard-codes one of
them, so a compressed timing (``MarketRules.compressed()``) can run an ISP in a minute.

Invariants (checked when built): the ISP length divides an hour (so 23/24/25-hour days hold whole
ISPs), the sample period divides the ISP length and the ISP phase (which is under one ISP),
thresholds are fractions in (0, 1], and the offer minimum and step are positive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from cbp.errors import CbpError

__all__ = ["MarketRules", "MarketRulesError"]


class MarketRulesError(CbpError, ValueError):
    """A rule parameter is out of range or of the wrong kind."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketRules:
    # Calendar (docs/architecture.md#market-rules: ISP 15 min, 96 a day, Europe/Amsterdam; gate
    # closure 25 min before).
    timezone: str = "Europe/Amsterdam"
    isp_length: timedelta = timedelta(minutes=15)
    #: how long after local midnight the market day, and so its ISP grid, begins: 0 on the real
    #: market; a compressed-time run may shift its grid (whole samples, under one ISP)
    isp_phase: timedelta = timedelta(0)
    gate_closure: timedelta = timedelta(minutes=25)
    # Offers: at least 1 MW in whole-MW steps, price within +-15,000 EUR/MWh.
    min_offer_mw: Decimal = Decimal("1")
    offer_step_mw: Decimal = Decimal("1")
    max_abs_price_eur_per_mwh: Decimal = Decimal("15000")
    # Telemetry and delivery: 4-s samples, the pool may lag L = 2 samples, tolerance 0.90.
    sample_period: timedelta = timedelta(seconds=4)
    tracking_lag_samples: int = 2
    tolerance_ratio: Decimal = Decimal("0.90")
    penalty_factor: Decimal = Decimal("1.25")
    max_interpolated_gap: int = 3
    # Baseline quality on idle ISPs: NMAE <= 10 %, |bias| <= 5 % over the last 4 idle ISPs;
    # the meter-before fallback averages 15 samples before the activation.
    max_baseline_nmae: Decimal = Decimal("0.10")
    max_baseline_bias: Decimal = Decimal("0.05")
    baseline_assessment_isps: int = 4
    fallback_samples: int = 15
    # Acknowledgement deadline for optIn/optOut; later ones are recorded as late.
    ack_deadline: timedelta = timedelta(seconds=30)
    # Pool coherence: device rows at 0.1 kW resolution, pool row at 1 kW (0.001 MW).
    device_resolution_kw: Decimal = Decimal("0.1")
    pool_resolution_mw: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        hour = timedelta(hours=1)
        if self.isp_length <= timedelta(0) or hour % self.isp_length:
            raise MarketRulesError("isp_length must divide one hour")
        if self.sample_period <= timedelta(0) or self.isp_length % self.sample_period:
            raise MarketRulesError("sample_period must divide isp_length")
        if (not timedelta(0) <= self.isp_phase < self.isp_length
                or self.isp_phase % self.sample_period):
            raise MarketRulesError("isp_phase must be whole samples, under one isp_length")
        if self.gate_closure < timedelta(0) or self.ack_deadline < timedelta(0):
            raise MarketRulesError("gate_closure and ack_deadline must not be negative")
        if self.min_offer_mw <= 0 or self.offer_step_mw <= 0 or self.max_abs_price_eur_per_mwh <= 0:
            raise MarketRulesError("offer minimum, step and price bound must be positive")
        for name in ("tolerance_ratio", "max_baseline_nmae", "max_baseline_bias"):
            if not Decimal(0) < getattr(self, name) <= Decimal(1):
                raise MarketRulesError(f"{name} must be a fraction in (0, 1]")
        if self.penalty_factor < 0:
            raise MarketRulesError("penalty_factor must not be negative")
        if self.tracking_lag_samples < 0 or self.max_interpolated_gap < 0:
            raise MarketRulesError("tracking lag and interpolated gap must not be negative")
        if self.baseline_assessment_isps < 1 or self.fallback_samples < 1:
            raise MarketRulesError("assessment ISPs and fallback samples must be at least 1")

    @property
    def samples_per_isp(self) -> int:
        return self.isp_length // self.sample_period

    @classmethod
    def compressed(cls) -> MarketRules:
        """A demo timing: one-minute ISPs (15 samples of 4 s), gate closure 100 s before.

        The gate closure keeps the default's ratio to the ISP length (25 min : 15 min); the
        acknowledgement deadline stays 30 s because network latency does not compress.
        """
        return cls(isp_length=timedelta(minutes=1), gate_closure=timedelta(seconds=100))

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> MarketRules:
        """Build from a config table (e.g. TOML ``[market]``): durations as ``<name>_s`` seconds,
        Decimals as strings or numbers. Unknown keys are refused so typos do not pass silently."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in table.items():
            name = key[:-2] if key.endswith("_s") and key[:-2] in known else key
            if name not in known:
                raise MarketRulesError(f"unknown market rule {key!r}")
            default = getattr(cls(), name)
            values[name] = _coerce(key, raw, default)
        return replace(cls(), **values)


def _coerce(key: str, raw: object, default: object) -> object:
    if isinstance(default, timedelta):
        if not key.endswith("_s") or isinstance(raw, bool) or not isinstance(raw, int | float):
            raise MarketRulesError(f"{key}: durations are given in seconds as <name>_s")
        return timedelta(seconds=raw)
    if isinstance(default, Decimal):
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise MarketRulesError(f"{key}: expected a decimal number")
        try:
            return Decimal(str(raw))
        except InvalidOperation as exc:
            raise MarketRulesError(f"{key}: {raw!r} is not a decimal number") from exc
    if isinstance(default, bool) or type(raw) is not type(default):
        raise MarketRulesError(f"{key}: expected {type(default).__name__}")
    return raw
