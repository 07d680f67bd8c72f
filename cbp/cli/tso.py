"""`crowdflex tso`: run the TSO node (a VTN for aggregators) from a TOML file.

``examples/tso.toml`` documents every key: the VTN table (``[vtn]``, the same keys as
``examples/vtn.toml``), the CBP profile (``[profile]``) and where to keep the captured
aggregator messages (``capture_dir``). The node takes pool registrations and offers, awards every
offer at or under the configured clearing price when an ISP's gate closes, and records acks.
Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any

from ._process import add_log_level, configure_logging, stop_on_signals

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "tso", help="run the CBP TSO node (VTN for aggregators) from a TOML config",
        description="Serves the TSO's OpenADR 2.0b VTN over mutual TLS: pool registry, offer "
        "book with the market rules, awards at gate closure, activations, acks, settlement. "
        "See examples/tso.toml.")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE")
    add_log_level(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cbp.roles.profile import settings_from_mapping
    from vtn.config import ConfigError, parse_config

    configure_logging(args.log_level)
    try:
        data = tomllib.loads(args.config.read_text())
        base = args.config.parent
        config = parse_config(data.get("vtn", {}), base=base)
        settings = settings_from_mapping(data.get("profile", {}))
        capture = data.get("capture_dir")
        capture_dir = (base / str(capture)).resolve() if capture else None
    except (OSError, ValueError, ConfigError, tomllib.TOMLDecodeError) as exc:
        print(f"crowdflex tso: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config, settings, capture_dir))
    except (OSError, ValueError) as exc:
        print(f"crowdflex tso: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: Any, settings: Any, capture_dir: Path | None) -> None:
    from datetime import UTC, datetime

    from aiohttp import web

    from cbp.roles import TsoNode
    from vtn.app import server_ssl_context

    tso = TsoNode(config, settings, capture_dir=capture_dir)
    runner = web.AppRunner(tso.app, access_log=None)
    await runner.setup()
    stop = stop_on_signals()
    try:
        await web.TCPSite(runner, config.host, config.port,
                          ssl_context=server_ssl_context(config)).start()
        logging.info("TSO %s serving on https://%s:%d", config.vtn_id, config.host, config.port)
        while not stop.is_set():
            now = datetime.now(UTC)
            isp = tso.calendar.isp_at(now)
            nxt = tso.calendar.isp_at(tso.calendar.isp_end(isp))
            closure = tso.calendar.isp_start(nxt) - settings.rules.gate_closure
            if closure <= now:
                nxt = tso.calendar.isp_at(tso.calendar.isp_end(nxt))
                closure = tso.calendar.isp_start(nxt) - settings.rules.gate_closure
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), (closure - now).total_seconds())
            if not stop.is_set():
                for award in tso.award(nxt):
                    logging.info("awarded %s: %s MW at %s EUR/MWh", award.offer_id, award.mw,
                                 award.clearing_price_eur_per_mwh)
    finally:
        await runner.cleanup()
