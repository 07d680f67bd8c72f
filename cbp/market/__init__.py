"""The Crowd Balancing Platform market core (docs/architecture.md#the-cbp-profile-on-openadr), pure
and I/O-free.

ISP calendar, offer book and awards, delivery validation with baselines and data quality,
TSO settlement and prosumer payouts. Every rule number lives in ``MarketRules``; every function
that needs "now" takes it as an argument. Money and energy are ``Decimal``; times aware UTC.

    MarketRules ─ IspCalendar ─ OfferBook (Offer -> Accepted | Refused, Award)
         └─ series.regularise -> validation.validate_delivery -> Delivery
                                     └─ settlement.settle_tso -> TsoStatement
    quality: BaselineMonitor / assess_baseline, check_pool_coherence, check_ack
    settlement: PayoutLedger -> ProsumerStatement; aggregator_margin
"""

from __future__ import annotations

from .config import MarketRules, MarketRulesError
from .isp import IspCalendar, IspRef, NoSuchIsp
from .offers import (
    Accepted,
    Award,
    AwardError,
    Direction,
    Offer,
    OfferBook,
    RefusalReason,
    Refused,
    SubmitResult,
)
from .quality import (
    AckCheck,
    BaselineMonitor,
    BaselineQuality,
    Coherence,
    assess_baseline,
    check_ack,
    check_pool_coherence,
)
from .series import (
    Grid,
    GridPoint,
    Sample,
    SampleQuality,
    grid_index,
    on_grid,
    regularise,
    snap,
)
from .settlement import (
    PayoutLedger,
    PayoutLine,
    ProsumerStatement,
    TsoStatement,
    aggregator_margin,
    explain_statement,
    price_text,
    prosumer_statement_csv,
    prosumer_statement_json,
    round_energy,
    round_money,
    round_ratio,
    settle_tso,
    tso_statements_csv,
    tso_statements_json,
)
from .validation import (
    Delivery,
    DeliveryRow,
    Flag,
    ValidationError,
    energy_mwh,
    meter_before,
    split_by_isp,
    validate_delivery,
)

__all__ = [
    "Accepted", "AckCheck", "Award", "AwardError", "BaselineMonitor", "BaselineQuality",
    "Coherence", "Delivery", "DeliveryRow", "Direction", "Flag", "Grid", "GridPoint",
    "IspCalendar", "IspRef", "MarketRules", "MarketRulesError", "NoSuchIsp", "Offer",
    "OfferBook", "PayoutLedger", "PayoutLine", "ProsumerStatement", "RefusalReason", "Refused",
    "Sample", "SampleQuality", "SubmitResult", "TsoStatement", "ValidationError",
    "aggregator_margin", "assess_baseline", "check_ack", "check_pool_coherence", "energy_mwh",
    "explain_statement", "grid_index", "meter_before", "on_grid", "price_text",
    "prosumer_statement_csv", "prosumer_statement_json", "regularise", "round_energy",
    "round_money", "round_ratio", "settle_tso", "snap", "split_by_isp", "tso_statements_csv",
    "tso_statements_json", "validate_delivery",
]  # fmt: skip
