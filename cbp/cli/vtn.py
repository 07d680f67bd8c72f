"""`crowdflex vtn`: run a VTN -- the OpenADR 2.0b endpoints over mutual TLS, plus the admin API.

Reads a TOML file (``examples/vtn.toml`` documents every key); command-line options override the
few settings one changes per run. Runs until interrupted (SIGINT/SIGTERM), then shuts down
cleanly: listeners closed, push task ended, database closed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from ._process import add_log_level, configure_logging, run_node, stop_on_signals

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "vtn",
        help="run an OpenADR 2.0b VTN (server) with its admin API",
        description="Serve the five OpenADR 2.0b Simple HTTP services "
        "(/OpenADR2/Simple/2.0b/{EiRegisterParty,EiEvent,EiReport,EiOpt,OadrPoll}) over mutual "
        "TLS, and the admin JSON API on a separate port. See examples/vtn.toml for every "
        "setting and the README (\"Admin API\") for the admin endpoints.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML configuration file (keys as in examples/vtn.toml)")
    parser.add_argument("--host", help="address the OpenADR endpoint listens on "
                        "(overrides 'host')")
    parser.add_argument("--port", type=int, help="port of the OpenADR endpoint (overrides 'port')")
    parser.add_argument("--storage-url", help="database URL, e.g. sqlite:///vtn.db or "
                        "postgresql://user@host/db (overrides 'storage_url')")
    parser.add_argument("--admin-port", type=int, help="port of the admin API (overrides "
                        "[admin] port)")
    parser.add_argument("--no-admin", action="store_true",
                        help="do not start the admin API")
    parser.add_argument("--loop", default="auto", metavar="{auto,uvloop,asyncio}",
                        help="event loop to serve on (default auto: uvloop when installed, whose "
                        "TLS and I/O are compiled, else asyncio's)")
    add_log_level(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from vtn.config import ConfigError, load_config

    configure_logging(args.log_level)
    try:  # every setting is checked here, before a database is opened or a port bound
        config = load_config(args.config, admin=not args.no_admin)
    except ConfigError as exc:
        print(f"crowdflex vtn: {exc}", file=sys.stderr)
        return 2
    overrides = {"host": args.host, "port": args.port, "storage_url": args.storage_url,
                 "admin_port": args.admin_port}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    try:
        run_node(_serve(config), loop=args.loop)
    except (ValueError, OSError) as exc:
        print(f"crowdflex vtn: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: Any) -> None:
    from vtn.serve import serve_vtn

    async with serve_vtn(config) as served:
        loop_name = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        logging.info("VTN %s serving on https://%s:%d (%s event loop)", config.vtn_id,
                     config.host, served.port, loop_name)
        if served.admin_port is not None:
            logging.info("admin API on http://%s:%d (/health, /ready and /metrics without "
                         "the token)", config.admin_host, served.admin_port)
        await stop_on_signals().wait()
