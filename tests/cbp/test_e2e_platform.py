"""End to end: a TSO, an aggregator and 200 device VENs through every CBP flow on loopback.

The devices run in their own process (``crowdflex device``), the aggregator and the TSO are real
mutual-TLS servers; nothing is mocked. The test then checks, independently of the platform code:
- the TSO statement against a settlement recomputed here from the measurements and +5-min
  baselines read straight out of the TSO's SQLite file (docs/architecture.md#market-rules, written
  out below, not by calling cbp.market);
- every message captured on the aggregator-TSO link against the 2.0b XSD (xmlschema oracle);
- that the privacy audit of the run folder passes and the one device without consent was refused.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from cbp.demo.platform import PlatformSummary, run_platform
from cbp.roles import CbpSettings
from tests.schemas.xsd_oracle import assert_xsd_valid

DEVICES = 200
SIX = Decimal("0.000001")
CENT = Decimal("0.01")


def _when(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _points(db: Path, r_id: str) -> dict[datetime, Decimal]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT dtstart, value FROM report_points WHERE r_id = ?",
                            (r_id,)).fetchall()
    return {_when(t): Decimal(str(v)) for t, v in rows if v is not None}


def _recompute(summary: PlatformSummary, settings: CbpSettings) -> dict[str, Decimal]:
    """docs/architecture.md#market-rules, written out: dP = B - M, E_req = sum S dt, E_del = sum
    max(0, dP) dt,
    E_set = min(sum min(max(dP, 0), max(S(k), ..., S(k - L))) dt, E_req) over the setpoints and L
    samples past the last."""
    rules, pool = settings.rules, settings.pool
    period, lag = rules.sample_period, rules.tracking_lag_samples
    dt_h = Decimal(int(period.total_seconds())) / Decimal(3600)
    setpoint = {s.at: s.value for s in summary.activation.setpoints}
    first, last = min(setpoint), max(setpoint)
    measured = _points(summary.tso_db, settings.pool_id)
    forecasts = sorted(_points(summary.tso_db, "baseline-h2").items())
    hold = 3 * pool.baseline_interval
    e_req = e_del = e_set = Decimal(0)
    at = first
    while at <= last + lag * period:
        held = [(t, v) for t, v in forecasts if t <= at]
        assert held and at - held[-1][0] < hold, f"no +5-min baseline for {at}"
        assert at in measured, f"no pool measurement for {at}"
        d_p = held[-1][1] - measured[at]
        e_req += setpoint.get(at, Decimal(0)) * dt_h
        e_del += max(Decimal(0), d_p) * dt_h
        cap = max(Decimal(0), *(setpoint.get(at - i * period, Decimal(0)) for i in range(lag + 1)))
        e_set += min(max(d_p, Decimal(0)), cap) * dt_h
        at += period
    return {"requested": e_req, "delivered": e_del, "settled": min(e_set, e_req)}


def test_two_hundred_devices_every_flow_settles_as_recomputed(tmp_path: Path) -> None:
    settings = CbpSettings.compressed()
    lines: list[str] = []
    summary = asyncio.run(run_platform(tmp_path, devices=DEVICES, seed=7, settings=settings,
                                       say=lines.append))

    # registration: every consenting device in, the one without consent refused
    assert (summary.registered, summary.refused) == (DEVICES, 1)
    assert summary.offer_mw > 0
    assert summary.activation.acks and not summary.activation.late
    # the late offer the demo sends on purpose is announced as such before its refusal shows
    assert any("the deliberate test of a late offer" in line for line in lines)

    # settlement against an independent calculation from the TSO's stored measurements
    mine = _recompute(summary, settings)
    s = summary.statement
    assert s.requested_mwh == mine["requested"].quantize(SIX, ROUND_HALF_UP)
    assert abs(s.delivered_mwh - mine["delivered"]) <= SIX
    assert abs(s.settled_mwh - mine["settled"]) <= SIX
    assert s.delivered_mwh > 0, "the pool delivered nothing"
    clearing = summary.activation.award.clearing_price_eur_per_mwh
    bid = summary.activation.award.bid_price_eur_per_mwh
    assert s.payment_eur == (mine["settled"] * clearing).quantize(CENT, ROUND_HALF_UP)
    ratio = mine["delivered"] / mine["requested"]
    assert s.ratio is not None and abs(s.ratio - ratio) <= Decimal("0.0001")
    shortfall = Decimal("0.9") * mine["requested"] - mine["delivered"]
    penalty = (shortfall * Decimal("1.25") * max(clearing, bid)) if ratio < Decimal("0.9") \
        else Decimal(0)
    assert abs(s.penalty_eur - penalty.quantize(CENT, ROUND_HALF_UP)) <= CENT

    # prosumers: only dispatched devices are paid, and the payout adds up
    assert 0 < len(summary.prosumers.lines) <= DEVICES
    assert summary.prosumers.total_eur > 0

    # every message on the aggregator-TSO link is XSD-valid; the privacy audit passes
    captured = sorted((tmp_path / "captures" / "aggregator-tso").rglob("*.xml"))
    assert len(captured) >= 20
    for path in captured:
        assert_xsd_valid(path.read_bytes())
    assert summary.audit.passed and len(summary.audit.files) == len(captured)
    # the run's total time counts the nodes' shutdown and the audit: it is not less than the
    # audit line's own stamp (printed to a tenth of a second, so compared at that precision)
    (audited,) = [line for line in lines if "privacy audit:" in line]
    stamp = re.match(r"\[\s*([0-9.]+)s ", audited)
    assert stamp is not None and round(summary.elapsed_s, 1) >= float(stamp.group(1)), audited
    results = tmp_path / "results"
    explained = (results / "tso-statement.txt").read_text().splitlines()
    assert explained[0].startswith(f"requested {s.requested_mwh} MWh: ")
    assert explained[2].startswith(f"settled {s.settled_mwh} MWh: ")
    prosumer_rows = (results / "prosumer-statements.csv").read_text().splitlines()
    assert prosumer_rows[0] == "month,prosumer_id,delivered_kwh,amount_eur"
    assert len(prosumer_rows) == 1 + len(summary.prosumers.lines)
    assert 'id="series-setpoint"' in (results / "pool-power.html").read_text()
    # the device fleet's process (its own interpreter, as under `make demo`) warned of nothing
    fleet_log = (tmp_path / "devices.log").read_text()
    assert not re.search(r"Traceback|\w+Warning:", fleet_log), fleet_log
