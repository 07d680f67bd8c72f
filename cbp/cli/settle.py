"""`crowdflex settle`: validate one activation from CSV files and print its TSO statement as JSON.

Each input file has the header ``timestamp,mw`` and one row per 4-s sample; timestamps are ISO 8601
with a UTC offset. The JSON carries requested_mwh, delivered_mwh, settled_mwh (6 decimals), ratio
(4 decimals), payment_eur and penalty_eur (cents) as strings so no digit is lost, plus the data
quality flags and sample counts. Exit codes: 0 settled, 2 the inputs could not be read or
validated (the message names the file and line).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cbp.cli import SubCommands
from cbp.errors import CbpError
from cbp.market import (
    Direction,
    Flag,
    IspCalendar,
    MarketRules,
    Sample,
    SampleQuality,
    ValidationError,
    check_ack,
    settle_tso,
    validate_delivery,
)


class SettleInputError(CbpError, ValueError):
    pass


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SettleInputError(f"{what} {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise SettleInputError(f"{what} {text!r} is not a finite number")
    return value


def read_series(path: Path) -> tuple[Sample, ...]:
    """Samples from a ``timestamp,mw`` CSV file; errors name the file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SettleInputError(f"{path}: cannot read: {exc}") from None
    if not rows or [c.strip().lower() for c in rows[0]] != ["timestamp", "mw"]:
        raise SettleInputError(f"{path}:1: expected the header 'timestamp,mw'")
    samples: list[Sample] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise SettleInputError(f"{path}:{line}: expected 2 columns, found {len(row)}")
        try:
            at = datetime.fromisoformat(row[0].strip())
        except ValueError:
            raise SettleInputError(
                f"{path}:{line}: {row[0]!r} is not an ISO 8601 timestamp") from None
        if at.tzinfo is None:
            raise SettleInputError(f"{path}:{line}: timestamp {row[0]!r} has no UTC offset")
        try:
            samples.append(Sample(at=at, value=_decimal(row[1], "mw")))
        except SettleInputError as exc:
            raise SettleInputError(f"{path}:{line}: {exc}") from None
    if not samples:
        raise SettleInputError(f"{path}: no samples")
    return tuple(samples)


def _run(args: argparse.Namespace) -> int:
    rules = MarketRules()
    try:
        clearing = _decimal(args.clearing_price, "--clearing-price")
        bid = _decimal(args.bid_price, "--bid-price")
        setpoints = read_series(args.setpoints)
        measured = read_series(args.measured)
        baseline = read_series(args.baseline) if args.baseline is not None else None
        delivery = validate_delivery(
            setpoints, measured, baseline, rules,
            direction=Direction(args.direction), baseline_flagged=args.baseline_flagged,
            clock_offset=timedelta(seconds=args.clock_offset_s),
        )  # fmt: skip
    except (SettleInputError, ValidationError) as exc:
        print(f"crowdflex settle: {exc}", file=sys.stderr)
        return 2
    calendar = IspCalendar(rules)
    isps = {calendar.isp_at(s.at) for s in setpoints}
    isp = isps.pop() if len(isps) == 1 else None
    late = False
    if args.ack_delay_s is not None:
        sent = setpoints[0].at  # only the delay matters; anchor it at the activation start
        late = check_ack(sent, sent + timedelta(seconds=args.ack_delay_s), rules).late
    statement = settle_tso(
        delivery, clearing_price=clearing, bid_price=bid, rules=rules, isp=isp,
        aggregator_id=args.aggregator, extra_flags=(Flag.ACK_LATE.value,) if late else (),
    )  # fmt: skip
    report = statement.as_dict()
    report["samples"] = {q.value: delivery.count(q) for q in SampleQuality}
    report["realigned_samples"] = delivery.realigned_samples
    print(json.dumps(report, indent=2))
    return 0


def register(commands: SubCommands) -> None:
    parser = commands.add_parser(
        "settle", help="validate an activation from CSV files and print its settlement as JSON",
        description="Validate one activation and print the TSO's settlement statement as JSON "
        "(requested, delivered and settled MWh, ratio, payment and penalty in EUR, as strings; "
        "data quality flags and sample counts). Each CSV file has the header 'timestamp,mw' "
        "and one row per 4-s sample, e.g. '2030-01-01T12:00:04+00:00,0.25'; timestamps are "
        "ISO 8601 with a UTC offset. Exit codes: 0 settled, 2 an input could not be read or "
        "validated (the message names the file and line).")
    parser.add_argument("--setpoints", type=Path, required=True, metavar="CSV",
                        help="the TSO's setpoints (timestamp,mw)")
    parser.add_argument("--measured", type=Path, required=True, metavar="CSV",
                        help="the measured pool power (timestamp,mw)")
    parser.add_argument(
        "--baseline", type=Path, metavar="CSV",
        help="the aggregator's +5-min baseline (timestamp,mw); without it, meter-before is used"
    )
    parser.add_argument("--clearing-price", required=True, metavar="EUR_PER_MWH",
                        help="the clearing price (pay-as-cleared), EUR/MWh")
    parser.add_argument("--bid-price", required=True, metavar="EUR_PER_MWH",
                        help="the aggregator's bid price, EUR/MWh")
    parser.add_argument("--direction", choices=[d.value for d in Direction], default="up",
                        help="up: less consumption or more generation, down: the opposite "
                        "(default: %(default)s)")
    parser.add_argument("--aggregator", default="", help="aggregator id for the statement")
    parser.add_argument(
        "--baseline-flagged", action="store_true",
        help="the aggregator's baseline failed its quality check: use meter-before instead",
    )  # fmt: skip
    parser.add_argument(
        "--clock-offset-s", type=float, default=0.0,
        help="seconds the measuring clock runs ahead of true time (samples are re-aligned)",
    )  # fmt: skip
    parser.add_argument(
        "--ack-delay-s", type=float,
        help="seconds between the event and its acknowledgement; over the deadline flags ack_late",
    )  # fmt: skip
    parser.set_defaults(run=_run)
