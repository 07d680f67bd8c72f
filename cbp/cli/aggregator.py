"""`crowdflex aggregator`: run the aggregator node (VTN for devices, VEN to the TSO) from TOML.

``examples/aggregator.toml`` documents every key: the downstream VTN (``[vtn]``, keys as in
``examples/vtn.toml``), the TSO link (``[tso]`` url, cert, key, ca), the identity vault
(``[vault]`` path, key_file), the onboarded devices (``[devices]`` csv: ven_id, device_uuid,
prosumer_id, device_class, power_bucket -- each device must already be in the vault with
consent) and the CBP profile (``[profile]``). It registers the pool with the TSO, then offers
its forecast flex for the next open ISP once per ISP, follows activations and sends telemetry,
baselines and metering. Runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any
from uuid import UUID

from ._process import add_log_level, configure_logging, stop_on_signals

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "aggregator", help="run the CBP aggregator node from a TOML config",
        description="Serves the aggregator's VTN for its devices (consent checked in the "
        "identity vault) and connects to the TSO as a VEN behind the privacy filter. See "
        "examples/aggregator.toml.")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE")
    add_log_level(parser)
    parser.set_defaults(run=_run)


def _file(table: dict[str, Any], key: str, base: Path, section: str) -> Path:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"[{section}] {key} is required")
    return (base / value).resolve()


def _run(args: argparse.Namespace) -> int:
    from cbp.roles.profile import settings_from_mapping
    from vtn.config import ConfigError, parse_config

    configure_logging(args.log_level)
    try:
        data = tomllib.loads(args.config.read_text())
        base = args.config.parent
        tso, vault, devices = data.get("tso", {}), data.get("vault", {}), data.get("devices", {})
        spec = {
            "vtn": parse_config(data.get("vtn", {}), base=base),
            "settings": settings_from_mapping(data.get("profile", {})),
            "tso_url": str(tso.get("url", "")),
            "tls": tuple(_file(tso, k, base, "tso") for k in ("cert", "key", "ca")),
            "vault": _file(vault, "path", base, "vault"),
            "key_file": _file(vault, "key_file", base, "vault"),
            "devices": _file(devices, "csv", base, "devices"),
            "outbox": (base / str(tso.get("outbox", "aggregator-outbox.db"))).resolve(),
        }
    except (OSError, ValueError, ConfigError, tomllib.TOMLDecodeError) as exc:
        print(f"crowdflex aggregator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(spec))
    except (OSError, ValueError) as exc:
        print(f"crowdflex aggregator: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(spec: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from aiohttp import web

    from cbp.roles import AggregatorNode
    from privacy import FileKeyProvider, IdentityVault
    from ven.tls import client_context
    from vtn.app import server_ssl_context

    config, settings = spec["vtn"], spec["settings"]
    cert, key, ca = spec["tls"]
    vault = IdentityVault(spec["vault"], FileKeyProvider(spec["key_file"]))
    node = AggregatorNode(settings=settings, downstream=config, vault=vault,
                          tso_url=spec["tso_url"], outbox_path=spec["outbox"],
                          upstream_tls=client_context(cert=cert, key=key, ca=ca))
    with spec["devices"].open(newline="") as rows:
        for row in csv.DictReader(rows):
            node.onboard(ven_id=row["ven_id"], device_uuid=UUID(row["device_uuid"]),
                         prosumer_id=row["prosumer_id"], device_class=row["device_class"],
                         power_bucket=row["power_bucket"])
    runner = web.AppRunner(node.app, access_log=None)
    await runner.setup()
    stop = stop_on_signals()
    try:
        await web.TCPSite(runner, config.host, config.port,
                          ssl_context=server_ssl_context(config)).start()
        logging.info("aggregator VTN on https://%s:%d", config.host, config.port)
        logging.info("registered with the TSO as %s", await node.connect())
        while not stop.is_set():
            isp = node.calendar.isp_at(datetime.now(UTC))
            nxt = node.calendar.isp_at(node.calendar.isp_end(isp))
            offer = node.build_offer(nxt) if len(node.book.outlooks) else None
            if offer is not None:
                outcome = await node.send_offer(offer)
                logging.info("offer %s %s MW: %s", offer.offer_id, offer.mw,
                             "accepted" if outcome.accepted else outcome.reason)
            wait = (node.calendar.isp_end(isp) - datetime.now(UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(1.0, wait))
    finally:
        await node.close()
        await runner.cleanup()
        vault.close()
