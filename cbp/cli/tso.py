"""`crowdflex tso`: run the TSO node (a VTN for aggregators) from a TOML file.

``examples/tso.toml`` documents every key: the VTN table (``[vtn]``, the same keys as
``examples/vtn.toml``; ``port = 0`` takes a free port, reported in the status file; ``--port``
overrides it), the CBP profile (``[profile]``), where to keep the captured aggregator messages
(``capture_dir``) and the drill switch ``[operation] activate_awards``. The database and the
captures live in the state directory (``--state-dir``) when their paths are relative. The node
takes pool registrations and offers, awards every offer at or under the configured clearing price
when an ISP's gate closes, and records acks. With ``activate_awards`` it also activates each
award in full for its ISP (ramped LOAD_DISPATCH setpoints) right after gate closure and settles
the activation once its window and the settlement delay have passed, sending the x-SETTLEMENT
statement to the aggregator.

Runs until SIGINT/SIGTERM, then stops the market loop, closes the listener and the database
(a SQLite file is left closed and consistent) and marks its last status ``"state": "stopped"``
in the status file. Invariant: every task the node starts is owned by one TaskGroup and ends
before exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlconfig
from schemas.logtext import escaped

from . import SubCommands
from ._process import (
    StatusFile,
    add_log_level,
    add_one_process,
    add_state_options,
    bound_port,
    configure_logging,
    one_process_refusal,
    publish_status,
    require_files,
    run_node,
    state_path,
    state_storage_url,
    status_path,
    stop_on_signals,
    vtn_files,
    wait_or_stop,
)

if TYPE_CHECKING:
    from cbp.market import IspRef
    from cbp.roles import CbpSettings, TsoNode
    from cbp.roles.tso import Activation
    from privacy import PrivacyConfig
    from vtn.settings import VtnConfig

__all__ = ["ONE_PROCESS", "register"]

log = logging.getLogger(__name__)

#: why the TSO is one process (cbp/roles/tso.py): what a second one would get wrong
ONE_PROCESS = ("its market lives in that process's memory: the offer book, the awards, the "
               "activations with their acks and the settlements, and one gate-closure loop "
               "awards each ISP; a second process would award the same ISP again, and an ack "
               "or offer reaching one process would be missing from the other's book")


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "tso", help="run the CBP TSO node (VTN for aggregators) from a TOML config",
        description="Serves the TSO's OpenADR 2.0b VTN over mutual TLS: pool registry, offer "
        "book with the market rules, awards at gate closure, activations, acks, settlement. "
        "See examples/tso.toml.")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML configuration file (keys as in examples/tso.toml)")
    parser.add_argument("--port", type=int, help="port of the TSO's VTN (overrides [vtn] port; "
                        "0 takes a free one, the status file says which)")
    add_one_process(parser, ONE_PROCESS)
    add_state_options(parser, "tso")
    add_log_level(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from cbp.roles.profile import settings_from_table
    from privacy import PrivacyConfigError, config_from_table
    from vtn.config import ConfigError, parse_config

    configure_logging(args.log_level, args.log_format)
    if (refusal := one_process_refusal("TSO", args.workers, ONE_PROCESS)) is not None:
        print(f"crowdflex tso: {refusal}", file=sys.stderr)
        return 2
    try:
        document = tomlconfig.document(args.config)
        state: Path = args.state_dir
        vtn = document.mapping("vtn")
        if "storage_url" in vtn:
            vtn["storage_url"] = state_storage_url(str(vtn["storage_url"]), state)
        if args.port is not None:
            vtn["port"] = args.port
        config = parse_config(vtn, base=args.config.parent, source=str(args.config),
                              section="vtn")
        require_files(vtn_files(config, "vtn.tls"))
        settings = settings_from_table(document.table("profile"))
        privacy = config_from_table(document.table("privacy"))
        capture_dir = (state_path(document.string("capture_dir"), state)
                       if document.has("capture_dir") else None)
        operation = document.table("operation")
        activate = operation.flag("activate_awards") if operation.has("activate_awards") else False
        document.finish()
    except ConfigError as exc:  # it names the file and the key itself
        print(f"crowdflex tso: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, PrivacyConfigError) as exc:
        print(f"crowdflex tso: {args.config}: {exc}", file=sys.stderr)
        return 2
    state.mkdir(parents=True, exist_ok=True)
    status = StatusFile(status_path(args, "tso"))
    try:
        run_node(_serve(config, settings, privacy, capture_dir, activate, status))
    except (OSError, ValueError) as exc:
        print(f"crowdflex tso: {exc}", file=sys.stderr)
        return 1
    finally:
        status.stopped(role="tso")
    return 0


async def _serve(config: VtnConfig, settings: CbpSettings, privacy: PrivacyConfig,
                 capture_dir: Path | None,
                 activate: bool, status: StatusFile) -> None:
    from aiohttp import web

    from cbp.roles import TsoNode
    from vtn.site import vtn_site

    tso = TsoNode(config, settings, capture_dir=capture_dir, privacy=privacy)
    runner = web.AppRunner(tso.app, access_log=None)
    await runner.setup()
    stop = stop_on_signals()
    try:
        await vtn_site(runner, config).start()
        port = bound_port(runner)
        log.info("TSO %s serving on https://%s:%d", config.vtn_id, config.host, port)
        served = {"role": "tso", "state": "serving", "vtn_id": config.vtn_id, "port": port,
                  "url": f"https://{config.host}:{port}"}
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publish_status(status, lambda: {**served, **_status(tso)}, stop))
            await _market(tso, stop, activate, tasks)
    finally:
        await runner.cleanup()


def _next_closure(tso: TsoNode, now: datetime) -> tuple[IspRef, datetime]:
    """The first ISP whose gate has not closed yet, and when it closes."""
    rules = tso.settings.rules
    isp = tso.calendar.isp_at(now)
    while tso.calendar.isp_start(isp) - rules.gate_closure <= now:
        isp = tso.calendar.isp_at(tso.calendar.isp_end(isp))
    return isp, tso.calendar.isp_start(isp) - rules.gate_closure


async def _market(tso: TsoNode, stop: asyncio.Event, activate: bool,
                  tasks: asyncio.TaskGroup) -> None:
    """At each gate closure award the ISP's offers (and, as a drill, activate the awards)."""
    from cbp.roles.tso import ramp_setpoints

    while True:
        isp, closure = _next_closure(tso, datetime.now(UTC))
        if await wait_or_stop(stop, (closure - datetime.now(UTC)).total_seconds()):
            return
        awards = tso.award(isp)
        if not awards:
            log.info("gate closed for ISP %s: no offer at or under %s EUR/MWh to award", isp,
                     tso.settings.clearing_price_eur_per_mwh)
        for award in awards:
            log.info("awarded %s: %s MW at %s EUR/MWh", escaped(award.offer_id), award.mw,
                     award.clearing_price_eur_per_mwh)
            if not activate:
                continue
            samples = tso.settings.rules.samples_per_isp
            activation = await tso.activate(award, start=tso.calendar.isp_start(isp),
                                            setpoints_mw=ramp_setpoints(award.mw, samples))
            log.info("activation %s published: %d setpoints up to %s MW",
                     activation.event_id, samples, award.mw)
            tasks.create_task(_settle_later(tso, activation, stop))


async def _settle_later(tso: TsoNode, activation: Activation, stop: asyncio.Event) -> None:
    """Settle once the activation's window plus the settlement delay has passed."""
    due = tso.window(activation)[1] + tso.settings.timing.settlement_delay
    if await wait_or_stop(stop, (due - datetime.now(UTC)).total_seconds()):
        return
    statement = await tso.settle(activation.event_id)
    log.info("settled %s: delivered %s of %s MWh, payment EUR %s, penalty EUR %s",
             activation.event_id, statement.delivered_mwh, statement.requested_mwh,
             statement.payment_eur, statement.penalty_eur)


def _status(tso: TsoNode) -> dict[str, Any]:
    from cbp.market import Refused

    refused = sum(isinstance(o.result, Refused) for o in tso.offers)
    return {
        "pools": {ven: {pool: len(devices) for pool, devices in pools.items()}
                  for ven, pools in tso.pools.items()},
        "offers": {"accepted": len(tso.offers) - refused, "refused": refused},
        "activations": {
            a.event_id: {"ven_id": a.ven_id, "mw": str(a.award.mw), "acks": len(a.acks),
                         "late": a.late, "cancelled": a.cancelled,
                         "settled": a.statement is not None,
                         "ratio": None if a.statement is None else str(a.statement.ratio)}
            for a in tso.activations.values()},
    }
