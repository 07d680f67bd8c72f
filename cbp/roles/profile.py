"""The CBP profile's names and every time length the three roles use
(docs/architecture.md#the-cbp-profile-on-openadr).

``CbpTiming`` owns the role-level time lengths (telemetry batching, baseline cadence and horizons,
MSP margins, poll intervals, how long before its ISP an activation is announced); the market's own
numbers (ISP length, gate closure, sample period, ack deadline) stay in ``cbp.market.MarketRules``
and the pool brains' numbers in ``cbp.pool.PoolConfig``. ``CbpSettings.compressed()`` is the
demo timing: one-minute ISPs, so a whole ISP with its activation runs in about a minute.

Wire names: the aggregator registers three METADATA reports with the TSO, told apart by their
reportSpecifierID suffix: pool telemetry (pool row + one description per device pseudonym), the
``x-BASELINE`` forecasts and the ``x-FLEX_OFFER`` bids. Devices register one TELEMETRY_USAGE
METADATA report with the aggregator. The TSO offers one report of its own, ``x-SETTLEMENT``
(:mod:`cbp.roles.statement`), and marks nothing; the aggregator marks a pool row it could only
send after a lost TSO link with ``oadrDataQuality`` :data:`LATE_QUALITY` (:mod:`cbp.roles.tsolink`).

Invariants: every duration is positive; the baseline horizons are distinct; nothing here reads a
clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from decimal import Decimal
from typing import Final

from cbp.market import MarketRules
from cbp.pool import PoolConfig
from privacy import DEVICE_SHARE_STEP, VALIDATION_PURPOSE, MeteringScope
from tomlconfig import Table

__all__ = [
    "BASELINE_REPORT",
    "BASELINE_RIDS",
    "DEVICE_FLEX_RID",
    "DEVICE_FORECAST_RIDS",
    "DEVICE_NATURAL_RID",
    "DEVICE_POWER_RID",
    "FLEX_OFFER_REPORT",
    "LATE_QUALITY",
    "OFFER_AVAILABLE_RID",
    "OFFER_DOWN_RID",
    "OFFER_PRICE_RID",
    "OFFER_UP_RID",
    "SETPOINT_SIGNAL",
    "SETTLEMENT_REPORT",
    "SETTLEMENT_RIDS",
    "CbpSettings",
    "CbpTiming",
    "baseline_rid",
    "metering_scope",
    "settings_from_table",
]

SETPOINT_SIGNAL: Final = "LOAD_DISPATCH"
BASELINE_REPORT: Final = "x-BASELINE"
FLEX_OFFER_REPORT: Final = "x-FLEX_OFFER"
OFFER_UP_RID: Final = "offer-up-mw"
OFFER_DOWN_RID: Final = "offer-down-mw"
OFFER_AVAILABLE_RID: Final = "offer-available-mw"
OFFER_PRICE_RID: Final = "offer-price"
BASELINE_RIDS: Final = ("baseline-h1", "baseline-h2", "baseline-h3")
DEVICE_POWER_RID: Final = "power"
DEVICE_NATURAL_RID: Final = "natural"
DEVICE_FLEX_RID: Final = "flex-up"
DEVICE_FORECAST_RIDS: Final = ("forecast-h1", "forecast-h2", "forecast-h3")
SETTLEMENT_REPORT: Final = "x-SETTLEMENT"
#: statement field -> rID of its data point in an x-SETTLEMENT interval
#: (docs/architecture.md#the-cbp-profile-on-openadr, last row)
SETTLEMENT_RIDS: Final = {
    "requested_mwh": "settlement-requested-mwh",
    "delivered_mwh": "settlement-delivered-mwh",
    "settled_mwh": "settlement-capped-mwh",
    "ratio": "settlement-ratio",
    "clearing_price_eur_per_mwh": "settlement-clearing-price",
    "bid_price_eur_per_mwh": "settlement-bid-price",
    "payment_eur": "settlement-payment-eur",
    "penalty_eur": "settlement-penalty-eur",
}
#: oadrDataQuality of a value sent after the TSO link came back (an x- extension token, which
#: oadr:oadrDataQualityType allows): the value itself is as measured; only its delivery was late
LATE_QUALITY: Final = "x-late"


def baseline_rid(index: int) -> str:
    """rID of the ``index``-th configured forecast horizon (0: +1 min, 1: +5 min, 2: +10 min)."""
    return BASELINE_RIDS[index]


@dataclass(frozen=True, slots=True, kw_only=True)
class CbpTiming:
    """Role-level time lengths; defaults are the real-time profile of
    docs/architecture.md#the-cbp-profile-on-openadr."""

    #: devices and the pool send their 4-s samples in batches of this length
    telemetry_batch: timedelta = timedelta(minutes=1)
    #: how long after a sample the aggregator waits for device batches before closing its row
    telemetry_grace: timedelta = timedelta(seconds=20)
    #: device VENs poll the aggregator this often; the aggregator polls the TSO this often
    device_poll: timedelta = timedelta(seconds=10)
    upstream_poll: timedelta = timedelta(seconds=1)
    #: an activation is published this long before its first setpoint
    activation_lead: timedelta = timedelta(minutes=2)
    #: the TSO settles an activation this long after its window closed (data still arriving)
    settlement_delay: timedelta = timedelta(minutes=3)
    #: no reply from the TSO for this long: the link is down, pool rows are held back (and
    #: marked late when they finally go)
    link_timeout: timedelta = timedelta(seconds=5)
    #: no reply from the TSO for this long: every running activation is released (pool to 0)
    link_release: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        for name in ("telemetry_batch", "device_poll", "upstream_poll", "activation_lead",
                     "settlement_delay", "link_timeout", "link_release"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.telemetry_grace < timedelta(0):
            raise ValueError("telemetry_grace must not be negative")
        if self.link_release <= self.link_timeout:
            raise ValueError("link_release must be longer than link_timeout")


@dataclass(frozen=True, slots=True, kw_only=True)
class CbpSettings:
    """Everything the three roles share: market rules, pool brains, timing, names, tariffs."""

    rules: MarketRules = field(default_factory=MarketRules)
    pool: PoolConfig = field(default_factory=PoolConfig)
    timing: CbpTiming = field(default_factory=CbpTiming)
    pool_id: str = "VDB-AFRR-01"
    zone: str = "NL"
    market_context: str = "http://cbp.example/afrr/NL"
    tso_recipient: str = "TSO:TENNET-NL"
    msp_purpose: str = VALIDATION_PURPOSE
    tariff_eur_per_kwh: Decimal = Decimal("0.15")
    bid_price_eur_per_mwh: Decimal = Decimal("180")
    clearing_price_eur_per_mwh: Decimal = Decimal("212.40")

    @classmethod
    def compressed(cls) -> CbpSettings:
        """The demo timing: an ISP in a minute, everything else scaled to fit around it.

        Offers go in 0.1 MW steps from 0.1 MW so that a pool of 200 home devices can bid at all
        (the 1 MW minimum is a market rule, kept as the default profile)."""
        rules = replace(MarketRules.compressed(), gate_closure=timedelta(seconds=10),
                        min_offer_mw=Decimal("0.1"), offer_step_mw=Decimal("0.1"))
        pool = replace(
            PoolConfig(), baseline_interval=timedelta(seconds=4),
            forecast_horizons=(timedelta(seconds=4), timedelta(seconds=20),
                               timedelta(seconds=40)),
            msp_before=timedelta(seconds=8), msp_after=timedelta(seconds=8),
            dispatch_horizon=timedelta(minutes=1),
        )
        timing = CbpTiming(
            telemetry_batch=timedelta(seconds=12), telemetry_grace=timedelta(seconds=2),
            device_poll=timedelta(seconds=4), upstream_poll=timedelta(seconds=0.5),
            activation_lead=timedelta(seconds=8), settlement_delay=timedelta(seconds=30),
        )
        return cls(rules=rules, pool=pool, timing=timing)

    @property
    def baseline_horizon_index(self) -> int:
        """Which configured horizon the TSO validates against: the middle one (+5 min)."""
        return min(1, len(self.pool.forecast_horizons) - 1)


def metering_scope(settings: CbpSettings) -> MeteringScope:
    """What per-device metering these settings send, for the DPIA."""
    rules, pool = settings.rules, settings.pool
    return MeteringScope(sample_period=rules.sample_period, before=pool.msp_before,
                         after=pool.msp_after,
                         tracking_lag=rules.sample_period * rules.tracking_lag_samples,
                         share_step=DEVICE_SHARE_STEP)


_TEXT_KEYS: Final = ("pool_id", "zone", "market_context", "tso_recipient", "msp_purpose")
_MONEY_KEYS: Final = ("tariff_eur_per_kwh", "bid_price_eur_per_mwh", "clearing_price_eur_per_mwh")


def settings_from_table(table: Table) -> CbpSettings:
    """Settings from a TOML ``[profile]`` table.

    ``name`` picks the base profile (``"standard"``, the default, or ``"compressed"``); any
    :class:`CbpTiming` field may be overridden as ``<field>_s`` (seconds); the names and prices
    of :class:`CbpSettings` by their own key (prices as strings, read as ``Decimal``). A key
    left over is refused by the file's :meth:`~tomlconfig.Table.finish`, so that a typo does not
    silently keep a default.
    """
    name = table.string("name") if table.has("name") else "standard"
    if name not in ("standard", "compressed"):
        raise table.error("name", "'standard' or 'compressed'", name)
    settings = CbpSettings.compressed() if name == "compressed" else CbpSettings()
    timing = {f.name: timedelta(seconds=table.number(f"{f.name}_s"))
              for f in fields(CbpTiming) if table.has(f"{f.name}_s")}
    other: dict[str, object] = {key: table.string(key) for key in _TEXT_KEYS if table.has(key)}
    other |= {key: table.decimal(key) for key in _MONEY_KEYS if table.has(key)}
    return replace(settings, timing=replace(settings.timing, **timing), **other)  # type: ignore[arg-type]
