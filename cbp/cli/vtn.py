"""`crowdflex vtn`: run a VTN -- the OpenADR 2.0b endpoints over mutual TLS, plus the admin API.

Reads a TOML file (``examples/vtn.toml`` documents every key); command-line options override the
few settings one changes per run. A relative SQLite ``storage_url`` lives in the state directory
(``--state-dir``), not next to the TOML file. Runs until interrupted (SIGINT/SIGTERM), then shuts
down cleanly: listeners closed, push task ended, database closed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import SubCommands
from ._process import (
    StatusFile,
    add_log_level,
    add_state_dir,
    configure_logging,
    run_node,
    state_key,
    state_storage_url,
    stop_on_signals,
)

if TYPE_CHECKING:
    from vtn.settings import VtnConfig

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(commands: SubCommands) -> None:
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
                        help="event loop to serve on (default: auto, uvloop when installed, whose "
                        "TLS and I/O are compiled, else asyncio's)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="serve with N processes sharing the port (SO_REUSEPORT); needs a "
                        "PostgreSQL storage_url. Worker i's admin API is on admin port + i "
                        "(default 1)")
    parser.add_argument("--reuse-port", action="store_true",
                        help="bind the OpenADR port with SO_REUSEPORT, so several crowdflex vtn "
                        "processes on one PostgreSQL database share it (--workers does this)")
    parser.add_argument("--status-file", type=Path, metavar="FILE",
                        help="keep a JSON status object here (bound port and admin port once "
                        "serving; \"state\": \"stopped\" after shutdown)")
    add_state_dir(parser, "the SQLite database")
    add_log_level(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from vtn.config import ConfigError, load_config

    configure_logging(args.log_level, args.log_format)
    try:  # every setting is checked here, before a database is opened or a port bound
        config = load_config(args.config, admin=not args.no_admin)
    except ConfigError as exc:
        print(f"crowdflex vtn: {exc}", file=sys.stderr)
        return 2
    storage: str | None = args.storage_url
    in_state = False  # a relative SQLite file of the TOML: it lives in the state directory
    if storage is None and (written := state_key(args.config, "storage_url")) is not None:
        storage = state_storage_url(written, args.state_dir)
        in_state = storage != written
    overrides = {"host": args.host, "port": args.port, "storage_url": storage,
                 "admin_port": args.admin_port}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if in_state:
        args.state_dir.mkdir(parents=True, exist_ok=True)
    refusal = _workers_refusal(args.workers, config)
    if refusal is not None:
        print(f"crowdflex vtn: {refusal}", file=sys.stderr)
        return 2
    status = StatusFile(args.status_file)
    try:
        if args.workers > 1:
            return _run_workers(args, config, status)
        run_node(_serve(config, status, reuse_port=args.reuse_port), loop=args.loop)
    except (ValueError, OSError) as exc:
        print(f"crowdflex vtn: {exc}", file=sys.stderr)
        return 1
    finally:
        status.stopped()
    return 0


def _workers_refusal(workers: int, config: VtnConfig) -> str | None:
    from sqlalchemy.engine import make_url

    if workers < 1:
        return f"--workers must be at least 1, not {workers}"
    if workers > 1 and config.xmpp is not None:
        return (f"--workers {workers} cannot serve [xmpp]: every worker would log in to the XMPP "
                "server as the VTN's one JID, and the server ends a session whenever another "
                "logs in with the same JID, so the workers would throw each other out for ever; "
                "serve XMPP from one process")
    if workers > 1 and make_url(config.storage_url).get_backend_name() == "sqlite":
        return (f"--workers {workers} needs a PostgreSQL storage_url: a SQLite file is served "
                "by one process (it admits one writer at a time, and the VTN keeps that file's "
                "poll index in its own memory, which other processes would not see); "
                "use storage_url = \"postgresql://user@host/db\", or one worker")
    return None


def _run_workers(args: argparse.Namespace, config: VtnConfig, status: StatusFile) -> int:
    from cbp.net import free_port

    from ._workers import WorkerPlan, reserve_port, supervise, worker_command

    command = ["vtn", "--config", str(args.config.resolve()), "--loop", args.loop,
               "--log-level", args.log_level, "--log-format", args.log_format]
    for option, value in (("--host", args.host), ("--storage-url", args.storage_url)):
        if value is not None:
            command += [option, value]
    if args.no_admin:
        command.append("--no-admin")
    with reserve_port(config.host, config.port) as reserved:
        admin_ports = tuple(
            None if not config.admin_enabled
            else config.admin_port + i if config.admin_port else free_port(config.admin_host)
            for i in range(args.workers))
        plan = WorkerPlan(command=worker_command(command), port=reserved.getsockname()[1],
                          admin_ports=admin_ports)
        return asyncio.run(supervise(plan, status))


async def _serve(config: VtnConfig, status: StatusFile, *, reuse_port: bool) -> None:
    from vtn.serve import serve_vtn

    async with serve_vtn(config, reuse_port=reuse_port) as served:
        loop_name = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        log.info("VTN %s serving on https://%s:%d (%s event loop)", config.vtn_id,
                 config.host, served.port, loop_name)
        if served.admin_port is not None:
            log.info("admin API on http://%s:%d (/health, /ready and /metrics without "
                     "the token)", config.admin_host, served.admin_port)
        status.write({"state": "serving", "port": served.port,
                      "admin_port": served.admin_port})
        await stop_on_signals().wait()
