"""Settlement: the TSO statement per ISP and the prosumer payout per device
(docs/architecture.md#market-rules).

TSO -> aggregator, pay-as-cleared: payment = E_set * clearing price. If rho < 0.90 the penalty is
(0.9 E_req - E_del) * 1.25 * max(clearing price, bid price). Statements round half-up: money to
the cent, energies to 6 decimals (MWh), the ratio to 4; the decisions (penalty or not) and the
amounts are computed from the exact energies, then rounded once.

Aggregator -> prosumer: a prosumer earns the delivered kWh of each of their devices * tariff,
accrued as ``Decimal`` without rounding, and their month is rounded half-up to the cent once on
the monthly statement; the statement total is the sum of those rounded lines (what is actually
paid), so it can differ from the accrued sum by up to half a cent per prosumer. The month is the
local month in the rules' timezone. The CSV statement is for people: kWh to 3 decimals, money to
the cent; the JSON keeps the accruals unrounded for audit.

Invariants: payment >= 0, penalty >= 0; a statement's figures come from one ``Delivery``; the
ledger never rounds an accrual.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from .config import MarketRules
from .isp import IspRef
from .offers import Direction
from .validation import Delivery

__all__ = [
    "PayoutLedger",
    "PayoutLine",
    "ProsumerStatement",
    "TsoStatement",
    "aggregator_margin",
    "explain_statement",
    "price_text",
    "prosumer_statement_csv",
    "prosumer_statement_json",
    "round_energy",
    "round_money",
    "round_ratio",
    "settle_tso",
    "tso_statements_csv",
    "tso_statements_json",
]

_CENT = Decimal("0.01")
_ENERGY = Decimal("0.000001")
_RATIO = Decimal("0.0001")
_KWH = Decimal("0.001")


def round_money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def round_energy(value: Decimal) -> Decimal:
    return value.quantize(_ENERGY, rounding=ROUND_HALF_UP)


def round_ratio(value: Decimal) -> Decimal:
    return value.quantize(_RATIO, rounding=ROUND_HALF_UP)


def price_text(value: Decimal) -> str:
    """A price as written on statements: at least to the cent (``180`` -> ``180.00``), never
    rounded (``180.125`` stays)."""
    return str(value) if value != value.quantize(_CENT) else str(value.quantize(_CENT))


@dataclass(frozen=True, slots=True, kw_only=True)
class TsoStatement:
    aggregator_id: str
    isp: IspRef | None
    direction: Direction
    requested_mwh: Decimal
    delivered_mwh: Decimal
    settled_mwh: Decimal
    ratio: Decimal | None
    clearing_price_eur_per_mwh: Decimal
    bid_price_eur_per_mwh: Decimal
    payment_eur: Decimal
    penalty_eur: Decimal
    flags: tuple[str, ...] = ()

    @property
    def net_eur(self) -> Decimal:
        return self.payment_eur - self.penalty_eur

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings so trailing zeros and exactness survive."""
        return {
            "aggregator_id": self.aggregator_id,
            "isp": None if self.isp is None else {
                "day": self.isp.day.isoformat(), "index": self.isp.index},
            "direction": self.direction.value,
            "requested_mwh": str(self.requested_mwh),
            "delivered_mwh": str(self.delivered_mwh),
            "settled_mwh": str(self.settled_mwh),
            "ratio": None if self.ratio is None else str(self.ratio),
            "clearing_price_eur_per_mwh": price_text(self.clearing_price_eur_per_mwh),
            "bid_price_eur_per_mwh": price_text(self.bid_price_eur_per_mwh),
            "payment_eur": str(self.payment_eur),
            "penalty_eur": str(self.penalty_eur),
            "net_eur": str(self.net_eur),
            "flags": list(self.flags),
        }  # fmt: skip


def settle_tso(
    delivery: Delivery,
    *,
    clearing_price: Decimal,
    bid_price: Decimal,
    rules: MarketRules,
    isp: IspRef | None = None,
    aggregator_id: str = "",
    extra_flags: Sequence[str] = (),
) -> TsoStatement:
    requested, delivered = delivery.requested_mwh, delivery.delivered_mwh
    settled = delivery.settled_mwh
    ratio = delivery.ratio
    payment = round_money(settled * clearing_price)
    penalty = Decimal("0.00")
    if ratio is not None and ratio < rules.tolerance_ratio:
        shortfall = rules.tolerance_ratio * requested - delivered
        penalty = round_money(shortfall * rules.penalty_factor * max(clearing_price, bid_price))
    return TsoStatement(
        aggregator_id=aggregator_id,
        isp=isp,
        direction=delivery.direction,
        requested_mwh=round_energy(requested),
        delivered_mwh=round_energy(delivered),
        settled_mwh=round_energy(settled),
        ratio=None if ratio is None else round_ratio(ratio),
        clearing_price_eur_per_mwh=clearing_price,
        bid_price_eur_per_mwh=bid_price,
        payment_eur=payment,
        penalty_eur=penalty,
        flags=tuple(sorted({*(f.value for f in delivery.flags), *extra_flags})),
    )


_FLAG_MEANINGS = {
    "estimated": "some samples were missing and interpolated",
    "missing_counted_zero": "a gap of more than the interpolated limit counted as zero delivery",
    "clock_realigned": "samples were moved onto the 4-s grid",
    "duplicate_samples_dropped": "two samples fell on one grid time; the first was kept",
    "baseline_fallback": "the baseline was replaced by the mean meter reading before the start",
    "baseline_fallback_short": "the meter-before mean had fewer samples than configured",
    "ack_late": "the acknowledgement came after the deadline",
    "pool_incoherent": "device rows did not add up to the pool row",
}


def explain_statement(statement: TsoStatement, rules: MarketRules) -> tuple[str, ...]:
    """One line per figure of ``statement`` saying what it is and how it was reached."""
    s, lag, tol = statement, rules.tracking_lag_samples, rules.tolerance_ratio
    sample = f"{rules.sample_period.total_seconds():g}-s"
    clearing, bid = price_text(s.clearing_price_eur_per_mwh), price_text(s.bid_price_eur_per_mwh)
    unpaid = s.delivered_mwh - s.settled_mwh
    lines = [
        f"requested {s.requested_mwh} MWh: the TSO's setpoints (MW), each held one {sample} "
        "sample, summed",
        f"delivered {s.delivered_mwh} MWh: baseline minus measured pool power where positive, "
        f"from the first setpoint to {lag} samples past the last",
        f"settled {s.settled_mwh} MWh: the delivered power of each sample up to the largest of "
        f"the last {lag + 1} setpoints (the pool may follow up to {lag} samples late), in all at "
        f"most the request; {unpaid} MWh was delivered above that and is not paid",
        f"ratio {s.ratio}: delivered / requested; a penalty applies below {tol}"
        if s.ratio is not None else "ratio none: nothing was requested",
        f"payment EUR {s.payment_eur}: settled {s.settled_mwh} MWh x clearing price {clearing} "
        "EUR/MWh",
        f"penalty EUR {s.penalty_eur}: ({tol} x requested - delivered) x {rules.penalty_factor} "
        f"x the higher of clearing {clearing} and bid {bid} EUR/MWh, as the ratio is below {tol}"
        if s.penalty_eur else f"penalty EUR {s.penalty_eur}: none, the ratio is not below {tol}",
        f"net EUR {s.net_eur}: payment minus penalty",
    ]
    lines += [f"flag {f}: {_FLAG_MEANINGS.get(f, 'recorded by the TSO')}" for f in s.flags]
    return tuple(lines)


_TSO_COLUMNS = (
    "aggregator_id", "isp_day", "isp_index", "direction", "requested_mwh", "delivered_mwh",
    "settled_mwh", "ratio", "clearing_price_eur_per_mwh", "bid_price_eur_per_mwh",
    "payment_eur", "penalty_eur", "net_eur", "flags",
)  # fmt: skip


def tso_statements_json(statements: Sequence[TsoStatement]) -> str:
    return json.dumps([s.as_dict() for s in statements], indent=2)


def tso_statements_csv(statements: Sequence[TsoStatement]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_TSO_COLUMNS)
    for s in statements:
        row = s.as_dict()
        isp = row.pop("isp") or {"day": "", "index": ""}
        row |= {"isp_day": isp["day"], "isp_index": isp["index"], "flags": ";".join(s.flags)}
        writer.writerow(["" if row[c] is None else row[c] for c in _TSO_COLUMNS])
    return out.getvalue()


@dataclass(frozen=True, slots=True, kw_only=True)
class PayoutLine:
    """One prosumer's month: what all their devices delivered and earned."""

    prosumer_id: str
    delivered_kwh: Decimal  # unrounded
    accrued_eur: Decimal  # unrounded
    amount_eur: Decimal  # rounded half-up to the cent, once


@dataclass(frozen=True, slots=True, kw_only=True)
class ProsumerStatement:
    month: str  # YYYY-MM, local
    lines: tuple[PayoutLine, ...]

    @property
    def total_eur(self) -> Decimal:
        """What is paid: the sum of the rounded lines."""
        return sum((line.amount_eur for line in self.lines), Decimal("0.00"))

    @property
    def accrued_eur(self) -> Decimal:
        """The unrounded sum of the accruals."""
        return sum((line.accrued_eur for line in self.lines), Decimal(0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "total_eur": str(self.total_eur),
            "lines": [
                {"prosumer_id": ln.prosumer_id, "delivered_kwh": str(ln.delivered_kwh),
                 "accrued_eur": str(ln.accrued_eur), "amount_eur": str(ln.amount_eur)}
                for ln in self.lines
            ],
        }  # fmt: skip


class PayoutLedger:
    """Unrounded accruals per prosumer and local month; statements round once per prosumer."""

    __slots__ = ("_accrued", "_zone")

    def __init__(self, rules: MarketRules) -> None:
        self._zone = ZoneInfo(rules.timezone)
        # (month, prosumer_id) -> [delivered kWh, accrued EUR], both unrounded.
        self._accrued: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}

    def accrue(
        self, prosumer_id: str, at: datetime, delivered_kwh: Decimal, tariff_eur_per_kwh: Decimal
    ) -> None:
        """Add what one of ``prosumer_id``'s devices delivered at ``at``."""
        if delivered_kwh < 0:
            raise ValueError("delivered kWh must not be negative")
        month = at.astimezone(self._zone).strftime("%Y-%m")
        kwh, eur = self._accrued.get((month, prosumer_id), (Decimal(0), Decimal(0)))
        self._accrued[(month, prosumer_id)] = (
            kwh + delivered_kwh,
            eur + delivered_kwh * tariff_eur_per_kwh,
        )

    def statement(self, month: str) -> ProsumerStatement:
        lines = tuple(
            PayoutLine(prosumer_id=prosumer, delivered_kwh=kwh, accrued_eur=eur,
                       amount_eur=round_money(eur))
            for (m, prosumer), (kwh, eur) in sorted(self._accrued.items())
            if m == month
        )  # fmt: skip
        return ProsumerStatement(month=month, lines=lines)


def prosumer_statement_json(statement: ProsumerStatement) -> str:
    return json.dumps(statement.as_dict(), indent=2)


def prosumer_statement_csv(statement: ProsumerStatement) -> str:
    """One row per prosumer: kWh to 3 decimals (half-up), the amount paid to the cent."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("month", "prosumer_id", "delivered_kwh", "amount_eur"))
    for ln in statement.lines:
        kwh = ln.delivered_kwh.quantize(_KWH, rounding=ROUND_HALF_UP)
        writer.writerow((statement.month, ln.prosumer_id, kwh, ln.amount_eur))
    return out.getvalue()


def aggregator_margin(
    tso: Sequence[TsoStatement], prosumer_payouts: Sequence[ProsumerStatement]
) -> Decimal:
    """What the aggregator keeps: TSO payments less penalties less prosumer payouts."""
    earned = sum((s.net_eur for s in tso), Decimal("0.00"))
    return earned - sum((p.total_eur for p in prosumer_payouts), Decimal("0.00"))
