"""`crowdflex demo`: the Crowd Balancing Platform end to end on loopback, with a results folder."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from cbp.cli import SubCommands
from cbp.cli._process import configure_logging, run_node
from cbp.demo.platform import run_platform


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="run a TSO, an aggregator and N simulated devices through every CBP flow",
        description="Runs a TSO, an aggregator and N simulated devices as separate nodes on "
        "127.0.0.1 over mutual TLS with SQLite storage, in compressed time (one-minute ISPs): "
        "registration with consent, a flex offer, an activation, dispatch, telemetry, baselines, "
        "per-device metering, validation and settlement; then a results folder and the privacy "
        "audit of every message on the aggregator-TSO link.",
    )
    parser.add_argument("--devices", type=int, default=200,
                        help="simulated devices (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="simulation seed (default: %(default)s)")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="run folder: certificates, databases, captures/aggregator-tso/, results/ "
        "(default: runs/demo-<UTC timestamp>)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    configure_logging("WARNING")  # the nodes' warnings and errors, with their source named
    out: Path = args.out or Path("runs") / datetime.now(UTC).strftime("demo-%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    summary = run_node(run_platform(out, devices=args.devices, seed=args.seed))
    s = summary.statement
    print()
    print(f"crowdflex demo finished in {summary.elapsed_s:.0f} s")
    print(f"  devices: {summary.registered} registered, {summary.refused} refused without consent")
    print(f"  offer {summary.offer_mw} MW; ISP {s.isp}: requested {s.requested_mwh} MWh, "
          f"delivered {s.delivered_mwh} MWh, settled {s.settled_mwh} MWh, ratio {s.ratio}")
    print(f"  TSO pays EUR {s.payment_eur} (penalty EUR {s.penalty_eur}) at "
          f"{s.clearing_price_eur_per_mwh} EUR/MWh; prosumers receive EUR "
          f"{summary.prosumers.total_eur} over {len(summary.prosumers.lines)} devices")
    print(f"  activation -> every dispatched device's setpoint acknowledged: "
          f"{summary.activation_to_acked_s:.1f} s")
    print(f"  privacy audit of {len(summary.audit.files)} captured messages: "
          f"{'PASSED' if summary.audit.passed else 'FAILED'}")
    print(f"  results: {out / 'results'}")
    return 0 if summary.audit.passed else 1
