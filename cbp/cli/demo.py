"""`crowdflex demo`: run crowdflex nodes end to end on loopback and print what happened."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cbp.demo import run_exchange


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo",
        help="run a VTN and a VEN end to end over mutual TLS on loopback (SQLite)",
        description="Runs a VTN and a VEN on 127.0.0.1 over real mutual TLS with SQLite storage: "
        "registration, an event with its acknowledgement, and telemetry reports.",
    )
    parser.add_argument(
        "--out", type=Path, default=None,
        help="folder for certificates, databases and message captures "
        "(default: runs/demo-<UTC timestamp>)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    out: Path = args.out or Path("runs") / datetime.now(UTC).strftime("demo-%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(run_exchange(out))
    print()
    print("crowdflex demo finished")
    print(f"  VEN {summary.ven_id} answered event {summary.event_id} with {summary.ack}")
    print(f"  VTN stored {summary.telemetry_points} telemetry samples")
    print(f"  {summary.captured_messages} messages captured in {out / 'captures'}")
    return 0
