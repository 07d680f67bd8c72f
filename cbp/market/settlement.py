"""Settlement: the TSO statement per ISP and the prosumer payout per device (DESIGN.md 4).

TSO -> aggregator, pay-as-cleared: payment = E_set * clearing price. If rho < 0.90 the penalty is
(0.9 E_req - E_del) * 1.25 * max(clearing price, bid price). Statements round half-up: money to
the cent, energies to 6 decimals (MWh), the ratio to 4; the decisions (penalty or not) and the
amounts are computed from the exact energies, then rounded once.

Aggregator -> prosumer: each device earns delivered kWh * tariff, accrued exactly as ``Decimal``
and rounded half-up to the cent once per device on the monthly statement; the statement total is
the sum of those rounded lines (what is actually paid). The month is the local month in the
rules' timezone.

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


def round_money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def round_energy(value: Decimal) -> Decimal:
    return value.quantize(_ENERGY, rounding=ROUND_HALF_UP)


def round_ratio(value: Decimal) -> Decimal:
    return value.quantize(_RATIO, rounding=ROUND_HALF_UP)


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
            "clearing_price_eur_per_mwh": str(self.clearing_price_eur_per_mwh),
            "bid_price_eur_per_mwh": str(self.bid_price_eur_per_mwh),
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
    device_id: str
    delivered_kwh: Decimal  # exact
    accrued_eur: Decimal  # exact
    amount_eur: Decimal  # rounded half-up to the cent


@dataclass(frozen=True, slots=True, kw_only=True)
class ProsumerStatement:
    month: str  # YYYY-MM, local
    lines: tuple[PayoutLine, ...]

    @property
    def total_eur(self) -> Decimal:
        return sum((line.amount_eur for line in self.lines), Decimal("0.00"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "total_eur": str(self.total_eur),
            "lines": [
                {"device_id": ln.device_id, "delivered_kwh": str(ln.delivered_kwh),
                 "accrued_eur": str(ln.accrued_eur), "amount_eur": str(ln.amount_eur)}
                for ln in self.lines
            ],
        }  # fmt: skip


class PayoutLedger:
    """Exact per-device accruals by local month; statements round once per device."""

    __slots__ = ("_accrued", "_zone")

    def __init__(self, rules: MarketRules) -> None:
        self._zone = ZoneInfo(rules.timezone)
        # (month, device_id) -> [delivered kWh, accrued EUR], both exact.
        self._accrued: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}

    def accrue(
        self, device_id: str, at: datetime, delivered_kwh: Decimal, tariff_eur_per_kwh: Decimal
    ) -> None:
        if delivered_kwh < 0:
            raise ValueError("delivered kWh must not be negative")
        month = at.astimezone(self._zone).strftime("%Y-%m")
        kwh, eur = self._accrued.get((month, device_id), (Decimal(0), Decimal(0)))
        self._accrued[(month, device_id)] = (
            kwh + delivered_kwh,
            eur + delivered_kwh * tariff_eur_per_kwh,
        )

    def statement(self, month: str) -> ProsumerStatement:
        lines = tuple(
            PayoutLine(device_id=device, delivered_kwh=kwh, accrued_eur=eur,
                       amount_eur=round_money(eur))
            for (m, device), (kwh, eur) in sorted(self._accrued.items())
            if m == month
        )  # fmt: skip
        return ProsumerStatement(month=month, lines=lines)


def prosumer_statement_json(statement: ProsumerStatement) -> str:
    return json.dumps(statement.as_dict(), indent=2)


def prosumer_statement_csv(statement: ProsumerStatement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("month", "device_id", "delivered_kwh", "accrued_eur", "amount_eur"))
    for ln in statement.lines:
        writer.writerow(
            (statement.month, ln.device_id, ln.delivered_kwh, ln.accrued_eur, ln.amount_eur)
        )
    return out.getvalue()


def aggregator_margin(
    tso: Sequence[TsoStatement], prosumer_payouts: Sequence[ProsumerStatement]
) -> Decimal:
    """What the aggregator keeps: TSO payments less penalties less prosumer payouts."""
    earned = sum((s.net_eur for s in tso), Decimal("0.00"))
    return earned - sum((p.total_eur for p in prosumer_payouts), Decimal("0.00"))
