"""The demo's report folder: statements, offers, a self-contained chart, the audit result.

Writes into ``OUT/report/``: ``tso-statement.csv`` and ``.json`` (cbp.market exports),
``prosumer-statements.csv``, ``offers.csv`` (every offer the TSO's book saw, with its verdict),
``pool-power.html`` (inline SVG: setpoint, +5-min baseline and measured pool power, no scripts, no
external resources) and ``privacy-audit.txt``. Prosumer statements are the aggregator's own
records (prosumer ids); none of this folder crosses the aggregator -> TSO link.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from cbp.market import (
    Accepted,
    ProsumerStatement,
    prosumer_statement_csv,
    tso_statements_csv,
    tso_statements_json,
)
from cbp.roles import AggregatorNode, TsoNode
from cbp.roles.tso import Activation
from privacy import AuditResult

__all__ = ["svg_chart", "write_report"]

_W, _H, _PAD = 900, 360, 50
_SERIES = (("setpoint (response requested)", "#d62728"), ("baseline +5 min", "#1f77b4"),
           ("measured", "#2ca02c"))


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


def svg_chart(series: Sequence[Sequence[tuple[datetime, Decimal]]], title: str) -> str:
    """Line chart of up to three (time, MW) series as one inline SVG element."""
    points = [p for s in series for p in s]
    if not points:
        return "<p>no data</p>"
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    lo = min(float(p[1]) for p in points)
    hi = max(float(p[1]) for p in points)
    span_t = max((t1 - t0).total_seconds(), 1.0)
    span_v = max(hi - lo, 1e-6)

    def xy(at: datetime, mw: Decimal) -> str:
        x = _PAD + (at - t0).total_seconds() / span_t * (_W - 2 * _PAD)
        y = _H - _PAD - (float(mw) - lo) / span_v * (_H - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
             f'<text x="{_PAD}" y="20">{html.escape(title)}</text>',
             f'<text x="4" y="{_PAD}">{hi:.3f} MW</text>',
             f'<text x="4" y="{_H - _PAD}">{lo:.3f} MW</text>',
             f'<text x="{_PAD}" y="{_H - 15}">{t0:%H:%M:%S} UTC</text>',
             f'<text x="{_W - _PAD - 80}" y="{_H - 15}">{t1:%H:%M:%S} UTC</text>']
    for n, (data, (label, colour)) in enumerate(zip(series, _SERIES, strict=False)):
        if data:
            path = " ".join(xy(at, mw) for at, mw in sorted(data))
            lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{path}"/>')
        lines.append(f'<text x="{_W - 260}" y="{20 + 15 * n}" fill="{colour}">'
                     f'{html.escape(label)}</text>')
    lines.append("</svg>")
    return "\n".join(lines)


def _chart(tso: TsoNode, activation: Activation) -> str:
    delivery = activation.delivery
    rows = delivery.rows if delivery is not None else ()
    base = [(r.at, r.baseline_mw) for r in rows if r.baseline_mw is not None]
    measured = [(r.at, r.measured_mw) for r in rows if r.measured_mw is not None]
    # the setpoint is a reduction: drawn as baseline minus setpoint, where the pool should be
    wanted = [(r.at, r.baseline_mw - r.setpoint_mw) for r in rows if r.baseline_mw is not None]
    svg = svg_chart((wanted, base, measured), f"Pool power, activation {activation.event_id}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>crowdflex demo</title>"
            "</head><body><h1>crowdflex CBP demo: pool power</h1>"
            "<p>Red: baseline minus the TSO setpoint (where the pool was asked to be); blue: the "
            "aggregator's +5-min baseline; green: measured pool consumption.</p>"
            f"{svg}</body></html>\n")


def write_report(out: Path, *, tso: TsoNode, aggregator: AggregatorNode, activation: Activation,
                 prosumers: ProsumerStatement, audit: AuditResult) -> Path:
    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    statements = [activation.statement] if activation.statement is not None else []
    (folder / "tso-statement.csv").write_text(tso_statements_csv(statements))
    (folder / "tso-statement.json").write_text(tso_statements_json(statements))
    (folder / "prosumer-statements.csv").write_text(prosumer_statement_csv(prosumers))
    (folder / "offers.csv").write_text(_offers_csv(tso))
    (folder / "pool-power.html").write_text(_chart(tso, activation))
    (folder / "privacy-audit.txt").write_text(audit.summary() + "\n")
    _ = aggregator
    return folder
