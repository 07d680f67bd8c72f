"""`crowdflex device`: run device VENs (simulated devices) against an aggregator from TOML.

One process runs every device listed in the config (``examples/device.toml`` documents each key):
each device has its own certificate, venID and keep-alive mutual-TLS connection; the simulators
stand in for the hardware. Runs until SIGINT/SIGTERM, then closes every connection and the
outbox. ``--json-progress`` prints one JSON object per line (``registered``, ``running``,
``stopping``) for a supervising process such as ``crowdflex demo``; the status file
(``--status-file``, default ``STATE_DIR/device.status.json``) keeps the latest of them merged into
one JSON object (``"state"``: ``registering``, ``holding`` (with ``hold_after_registration``),
``running``, ``stopped``). A relative outbox path lives in the state directory (``--state-dir``);
``--aggregator-url`` overrides ``[aggregator] url``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import tomlconfig

from . import SubCommands
from ._process import (
    StatusFile,
    add_log_level,
    add_state_options,
    configure_logging,
    require_files,
    run_node,
    status_path,
    stop_on_signals,
)

if TYPE_CHECKING:
    from cbp.roles.fleetnode import FleetConfig

__all__ = ["register"]


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "device",
        help="run simulated device VENs against an aggregator (CBP device node)",
        description="Registers every device of the config with the aggregator's VTN over mutual "
        "TLS (venID = certificate fingerprint), then samples its simulator on the 4-s grid, "
        "sends telemetry in batches and follows LOAD_DISPATCH setpoints. See "
        "examples/device.toml.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML configuration file (keys as in examples/device.toml)")
    parser.add_argument("--aggregator-url", metavar="URL",
                        help="root URL of the aggregator's VTN (overrides [aggregator] url)")
    parser.add_argument("--json-progress", action="store_true",
                        help="print progress as JSON lines on stdout")
    add_state_options(parser, "device")
    add_log_level(parser, "WARNING")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cbp.roles.fleetnode import fleet_config_from_table

    configure_logging(args.log_level, args.log_format)
    try:
        config = fleet_config_from_table(tomlconfig.document(args.config),
                                         state=args.state_dir.resolve())
        require_files({"aggregator.ca": config.ca})
        if args.aggregator_url is not None:
            config = dataclasses.replace(config, aggregator_url=args.aggregator_url)
        args.state_dir.mkdir(parents=True, exist_ok=True)
    except tomlconfig.ConfigError as exc:  # it names the file and the key itself
        print(f"crowdflex device: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"crowdflex device: {args.config}: {exc}", file=sys.stderr)
        return 2

    status = StatusFile(status_path(args, "device"))
    state: dict[str, object] = {"role": "device", "state": "registering",
                                "devices": len(config.names)}
    status.write(state)

    def progress(item: dict[str, object]) -> None:
        phase = next((k for k in ("holding", "running") if k in item), state["state"])
        state.update(item, state=phase)
        status.write(state)
        if args.json_progress:
            print(json.dumps(item), flush=True)
        else:
            print(", ".join(f"{k}: {v}" for k, v in item.items()), flush=True)

    try:
        registered = run_node(_serve(config, progress))
    except (OSError, ValueError) as exc:
        print(f"crowdflex device: {exc}", file=sys.stderr)
        return 1
    finally:
        status.write({**state, "state": "stopped"})
    return 0 if registered else 1


async def _serve(config: FleetConfig, progress: Callable[[dict[str, object]], None]) -> int:
    from cbp.roles.fleetnode import run_fleet

    stop = stop_on_signals()
    registered: int = await run_fleet(config, stop, progress)
    return registered
