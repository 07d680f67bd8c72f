"""The demo's results folder: statements, offers, a self-contained chart, the audit result.

Writes into ``OUT/results/``: ``tso-statement.csv`` and ``.json`` (cbp.market exports),
``tso-statement.txt`` (each figure of the statement in a line: what it is, how it was reached),
``prosumer-statements.csv``, ``offers.csv`` (every offer the TSO's book saw, with its verdict),
``pool-power.html`` (the chart of :mod:`cbp.demo.chart` above the explained statement; no
scripts, no external resources) and ``privacy-audit.txt``. Prosumer statements are the
aggregator's own records (prosumer ids); none of this folder crosses the aggregator -> TSO link.
"""

from __future__ import annotations

import csv
import html
import io
from decimal import Decimal
from pathlib import Path

from cbp.market import (
    Accepted,
    Direction,
    IspCalendar,
    MarketRules,
    ProsumerStatement,
    explain_statement,
    prosumer_statement_csv,
    round_money,
    tso_statements_csv,
    tso_statements_json,
)
from cbp.roles import AggregatorNode, TsoNode
from cbp.roles.tso import Activation
from privacy import AuditResult

from .chart import PowerSeries, Series, pool_power_svg

__all__ = ["pool_power_html", "power_series", "statement_text", "write_results"]

_MICRO_EUR = Decimal("0.000001")


def _offers_csv(tso: TsoNode) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("received_at", "aggregator", "offer_id", "verdict", "reason", "detail"))
    for record in tso.offers:
        result = record.result
        if isinstance(result, Accepted):
            writer.writerow((record.received_at.isoformat(), record.ven_id, result.offer.offer_id,
                             result.message, "", ""))
        else:
            writer.writerow((record.received_at.isoformat(), record.ven_id, result.offer_id,
                             "refused", result.reason.value, result.detail))
    return out.getvalue()


def power_series(activation: Activation, calendar: IspCalendar, rules: MarketRules) -> PowerSeries:
    """The chart's content from one settled activation: its validated rows and its award."""
    delivery = activation.delivery
    rows = delivery.rows if delivery is not None else ()
    lag = rules.sample_period * rules.tracking_lag_samples
    first, last = activation.setpoints[0].at, activation.setpoints[-1].at
    isp = activation.award.isp
    award_span = (calendar.isp_start(isp), calendar.isp_end(isp))
    starts, at = [], calendar.isp_start(calendar.isp_at(first - rules.isp_length))
    while at <= last + lag + rules.isp_length:
        starts.append((at, f"ISP {calendar.isp_at(at).index}"))
        at += rules.isp_length
    mw, up = activation.award.mw, activation.award.direction is Direction.UP
    delivered = "baseline - measured" if up else "measured - baseline"
    return PowerSeries(
        title=f"Activation {activation.event_id}: awarded {mw} MW in ISP {isp.index} "
              f"of {isp.day.isoformat()}",
        response_title="Response: upward = less consumption (MW)" if up
        else "Response: downward = more consumption (MW)",
        consumption=(
            Series(key="baseline", label="baseline (+5-min forecast)", colour="#1f77b4",
                   width=3, step=True, points=tuple((r.at, r.baseline_mw) for r in rows
                                         if r.baseline_mw is not None)),
            Series(key="measured", label="measured pool consumption", colour="#2ca02c",
                   width=3, step=True, points=tuple((r.at, r.measured_mw) for r in rows
                                         if r.measured_mw is not None)),
        ),
        response=(
            Series(key="setpoint", label="TSO setpoint (response asked)", colour="#d62728",
                   width=9, step=True,
                   points=tuple((s.at, s.value) for s in activation.setpoints)),
            Series(key="delivered", label=f"delivered = {delivered}, >= 0", colour="#6a3d9a",
                   width=3, step=True, points=tuple((r.at, r.delivered_mw) for r in rows
                                         if r.measured_mw is not None)),
            Series(key="awarded", label=f"awarded {mw} MW", colour="#ff7f0e", width=2,
                   dash="10 6", points=((award_span[0], mw), (award_span[1], mw))),
        ),
        window=(first, last + lag + rules.sample_period),
        isp_starts=tuple(starts),
        sample_period=rules.sample_period,
    )  # fmt: skip


def statement_text(activation: Activation, prosumers: ProsumerStatement,
                   rules: MarketRules) -> tuple[str, ...]:  # fmt: skip
    """The TSO statement explained line by line, then what the prosumers are paid."""
    lines = list(explain_statement(activation.statement, rules)) if activation.statement else [
        "no TSO statement: the activation was not settled"]  # fmt: skip
    paid, accrued = prosumers.total_eur, prosumers.accrued_eur
    lines.append(
        f"prosumers EUR {paid}: {len(prosumers.lines)} prosumer line(s), each prosumer's month "
        f"rounded half-up to the cent once; they accrued EUR {accrued.quantize(_MICRO_EUR)} "
        f"before rounding, so rounding adds EUR {round_money(paid - accrued)}"
    )
    return tuple(lines)


def pool_power_html(chart: PowerSeries, explained: tuple[str, ...]) -> str:
    """The results page: the chart, then the statement in words. One file, nothing external."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in explained)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>crowdflex demo: pool power"
            "</title><style>body{margin:8px;font-family:sans-serif}h1{font-size:20px;"
            "margin:0 0 6px}li{margin:3px 0}</style></head><body>"
            "<h1>crowdflex CBP demo: pool power and delivery</h1>"
            f"{pool_power_svg(chart)}<h2>The TSO statement, figure by figure</h2>"
            f"<ul id='statement'>{items}</ul></body></html>\n")  # fmt: skip


def write_results(out: Path, *, tso: TsoNode, aggregator: AggregatorNode, activation: Activation,
                  prosumers: ProsumerStatement, audit: AuditResult) -> Path:
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    statements = [activation.statement] if activation.statement is not None else []
    (folder / "tso-statement.csv").write_text(tso_statements_csv(statements))
    (folder / "tso-statement.json").write_text(tso_statements_json(statements))
    (folder / "prosumer-statements.csv").write_text(prosumer_statement_csv(prosumers))
    (folder / "offers.csv").write_text(_offers_csv(tso))
    rules = tso.settings.rules
    explained = statement_text(activation, prosumers, rules)
    (folder / "tso-statement.txt").write_text("\n".join(explained) + "\n")
    chart = power_series(activation, tso.calendar, rules)
    (folder / "pool-power.html").write_text(pool_power_html(chart, explained))
    (folder / "privacy-audit.txt").write_text(audit.summary() + "\n")
    _ = aggregator
    return folder
