"""`crowdflex aggregator`: run the aggregator node (VTN for devices, VEN to the TSO) from TOML.

``examples/aggregator.toml`` documents every key: the downstream VTN (``[vtn]``, keys as in
``examples/vtn.toml``; ``port = 0`` takes a free port, reported in the status file; ``--port``
overrides it), the TSO link (``[tso]`` url, overridden by ``--tso-url``; cert, key, ca, outbox),
the identity vault (``[vault]`` path, key_file and optionally keyring), the onboarded devices
(``[devices]`` csv: ven_id, device_uuid, prosumer_id, device_class, power_bucket) and the CBP
profile (``[profile]``). The runtime files -- database, outbox, vault, devices file -- live in
the state directory (``--state-dir``) when their paths are relative; certificates, the vault's
key file and its keyring are read relative to the TOML file.

``--onboard FILE`` imports the back office's onboarding records (:mod:`cbp.cli._onboard`) into
the vault and the devices file, then exits. Otherwise the node serves its devices (a device may
register only if it is in the devices file and its owner's consent is live in the vault),
registers with the TSO (waiting for it, with back-off, while it is unreachable), and keeps the
TSO's pool registration current: it is re-sent once the set of registered devices changed and
then held still for a sample period (devices registered before a restart count from the VTN
database). It offers its forecast flex for the next ISP whose gate is still open, retrying each
telemetry batch until it has devices' forecasts, follows activations and sends telemetry,
baselines and metering. Whenever it cannot offer it logs why, once per ISP and reason (no
registered device yet, no forecast yet, or the flex under the market's minimum offer). Erasures
``crowdflex privacy erase`` queued in the vault are delivered to the TSO at the next sample tick
(:mod:`cbp.roles.erasure`), and the erased devices' rows leave the devices file.

Runs until SIGINT/SIGTERM, then stops its loops, closes the TSO link and the outbox, the
listener and database, and the vault, and marks its last status ``"state": "stopped"`` in the
status file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

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
    from cbp.market import IspRef, Offer
    from cbp.roles import AggregatorNode, CbpSettings
    from privacy import PrivacyConfig
    from vtn.settings import VtnConfig

__all__ = ["ONE_PROCESS", "register"]

log = logging.getLogger(__name__)
#: why the aggregator is one process (cbp/roles/aggregator.py): what a second one would get wrong
ONE_PROCESS = ("it is one VEN towards the TSO (one registration, one outbox file) and its pool "
               "lives in that process's memory: the device book fed by the devices' telemetry, "
               "the dispatch of activations, the metering and the payouts; a second process "
               "would offer the pool to the TSO twice and dispatch from a book that misses the "
               "devices connected to the other")
_CONNECT_BACKOFF_S = (1.0, 30.0)  # first and longest wait between attempts to reach the TSO


def register(commands: SubCommands) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "aggregator", help="run the CBP aggregator node from a TOML config",
        description="Serves the aggregator's VTN for its devices (consent checked in the "
        "identity vault) and connects to the TSO as a VEN behind the privacy filter. See "
        "examples/aggregator.toml.")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML configuration file (keys as in examples/aggregator.toml)")
    parser.add_argument("--onboard", type=Path, metavar="CSV",
                        help="import onboarding records (ven_id, prosumer_id, name, postcode, "
                        "ean, contract_id, serial, device_class, rated_kw, consent) into the "
                        "vault and the devices file, then exit")
    parser.add_argument("--port", type=int, help="port of the aggregator's VTN for its devices "
                        "(overrides [vtn] port; 0 takes a free one, the status file says which)")
    parser.add_argument("--tso-url", metavar="URL",
                        help="root URL of the TSO's VTN (overrides [tso] url)")
    add_one_process(parser, ONE_PROCESS)
    add_state_options(parser, "aggregator")
    add_log_level(parser)
    parser.set_defaults(run=_run)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Spec:
    """What the aggregator's TOML file and options say, paths resolved."""

    vtn: VtnConfig | None  # None with --onboard: the VTN's certificates need not exist yet
    settings: CbpSettings
    privacy: PrivacyConfig
    tso_url: str
    tls: tuple[Path, Path, Path]  # [tso] cert, key, ca
    vault: Path
    key_file: Path
    keyring: Path | None
    devices: Path
    outbox: Path


def _spec(args: argparse.Namespace) -> _Spec:
    from cbp.roles.profile import settings_from_table
    from privacy import config_from_table
    from vtn.config import parse_config

    path: Path = args.config
    document = tomlconfig.document(path)
    state = args.state_dir
    tso, vault, devices = document.table("tso"), document.table("vault"), document.table("devices")
    vtn = document.mapping("vtn")
    if "storage_url" in vtn:
        vtn["storage_url"] = state_storage_url(str(vtn["storage_url"]), state)
    if args.port is not None:
        vtn["port"] = args.port
    url = tso.string("url") if tso.has("url") else ""
    spec = _Spec(
        vtn=None if args.onboard is not None else parse_config(
            vtn, base=path.parent, source=str(path), section="vtn"),
        settings=settings_from_table(document.table("profile")),
        privacy=config_from_table(document.table("privacy")),
        tso_url=args.tso_url or url,
        tls=(tso.path("cert"), tso.path("key"), tso.path("ca")),
        vault=state_path(vault.string("path"), state),
        key_file=vault.path("key_file"),
        keyring=vault.path("keyring") if vault.has("keyring") else None,
        devices=state_path(devices.string("csv"), state),
        outbox=state_path(tso.string("outbox") if tso.has("outbox")
                          else "aggregator-outbox.db", state),
    )
    document.finish()
    return spec


def _needed_files(spec: _Spec) -> dict[str, Path | None]:
    """The files the run needs, by TOML key: onboarding (no VTN) opens only the vault."""
    vault: dict[str, Path | None] = {"vault.key_file": spec.key_file}
    if spec.vtn is None:
        return vault
    tso = dict(zip(("tso.cert", "tso.key", "tso.ca"), spec.tls, strict=True))
    return {**vtn_files(spec.vtn, "vtn.tls"), **tso, **vault}


def _run(args: argparse.Namespace) -> int:
    from privacy import PrivacyConfigError, PrivacyError
    from ven import VenError
    from vtn.config import ConfigError

    configure_logging(args.log_level, args.log_format)
    if (refusal := one_process_refusal("aggregator", args.workers, ONE_PROCESS)) is not None:
        print(f"crowdflex aggregator: {refusal}", file=sys.stderr)
        return 2
    try:
        spec = _spec(args)
        require_files(_needed_files(spec))
        args.state_dir.mkdir(parents=True, exist_ok=True)
    except ConfigError as exc:  # it names the file and the key itself
        print(f"crowdflex aggregator: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, PrivacyConfigError) as exc:
        print(f"crowdflex aggregator: {args.config}: {exc}", file=sys.stderr)
        return 2
    if spec.vtn is None:  # --onboard
        try:
            return _onboard(spec, args.onboard)
        except (OSError, ValueError, PrivacyError) as exc:
            print(f"crowdflex aggregator: --onboard {args.onboard}: {exc}", file=sys.stderr)
            return 2
    status = StatusFile(status_path(args, "aggregator"))
    try:
        run_node(_serve(spec, spec.vtn, status))
    except (OSError, ValueError, VenError, PrivacyError) as exc:
        print(f"crowdflex aggregator: {exc}", file=sys.stderr)
        return 1
    finally:
        status.stopped(role="aggregator")
    return 0


def _onboard(spec: _Spec, source: Path) -> int:
    from privacy import FileKeyProvider, IdentityVault

    from ._onboard import import_onboarding

    with IdentityVault(spec.vault, FileKeyProvider(spec.key_file),
                       keyring=spec.keyring) as vault:
        done = import_onboarding(source, vault, spec.devices, zone=spec.settings.zone)
    print(f"onboarded {done.added} device(s); {done.known} already known; "
          f"{done.without_consent} refused (no consent)")
    return 0


async def _serve(spec: _Spec, config: VtnConfig, status: StatusFile) -> None:
    from aiohttp import web

    from cbp.roles import AggregatorNode
    from privacy import FileKeyProvider, IdentityVault
    from ven.tls import client_context
    from vtn.site import vtn_site

    from ._onboard import read_devices, remove_devices

    cert, key, ca = spec.tls
    vault = IdentityVault(spec.vault, FileKeyProvider(spec.key_file), keyring=spec.keyring)
    node = AggregatorNode(settings=spec.settings, downstream=config, vault=vault,
                          tso_url=spec.tso_url, outbox_path=spec.outbox, privacy=spec.privacy,
                          upstream_tls=client_context(cert=cert, key=key, ca=ca))
    node.erasures.on_unlinked = lambda ven_ids: log.info(
        "erasure: %d device row(s) removed from the devices file",
        remove_devices(spec.devices, ven_ids))
    for row in read_devices(spec.devices):
        node.onboard(ven_id=row["ven_id"], device_uuid=UUID(row["device_uuid"]),
                     prosumer_id=row["prosumer_id"], device_class=row["device_class"],
                     power_bucket=row["power_bucket"], rated_kw=Decimal(row["rated_kw"]))
    runner = web.AppRunner(node.app, access_log=None)
    await runner.setup()  # opens and migrates the VTN database
    stop = stop_on_signals()
    try:
        await _restore_registered(node)
        await vtn_site(runner, config).start()
        port = bound_port(runner)
        log.info("aggregator VTN on https://%s:%d", config.host, port)
        served = {"role": "aggregator", "state": "serving", "port": port,
                  "url": f"https://{config.host}:{port}"}
        work = _Work(node)
        ven_id = await _connect(node, stop)
        if ven_id is None:
            return
        log.info("registered with the TSO as %s", escaped(ven_id))
        work.pool_registered()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publish_status(
                status, lambda: {**served, "ven_id": ven_id, **work.status()}, stop))
            tasks.create_task(work.keep_pool_registered(stop))
            await work.offer_loop(stop)
    finally:
        await node.close()
        await runner.cleanup()
        vault.close()


async def _connect(node: AggregatorNode, stop: asyncio.Event) -> str | None:
    """Register with the TSO, waiting for it while it is unreachable (backing off); None if
    stopped first. A refusal is not retried: the same request would be refused again."""
    from ven import VtnUnavailable

    delay, longest = _CONNECT_BACKOFF_S
    while True:
        try:
            return await node.connect()
        except VtnUnavailable as exc:
            log.warning("the TSO is unreachable (%s); trying again in %.0f s", escaped(exc), delay)
            await node.close()  # the attempt's client and outbox; connect opens new ones
        if await wait_or_stop(stop, delay):
            return None
        delay = min(2 * delay, longest)


async def _restore_registered(node: AggregatorNode) -> None:
    """Devices whose registration the VTN database still holds count as registered after a
    restart (they poll on and need not register again); consent is checked again when the pool
    is registered."""
    from vtn.app import STORAGE

    for registration in await node.app[STORAGE].vens.active():
        entry = node.book.by_ven.get(registration.fingerprint)
        if entry is not None:
            entry.registered = True


class _Work:
    """The aggregator's two loops and what they have done, for the status file."""

    def __init__(self, node: AggregatorNode) -> None:
        self.node = node
        self.pool_devices = 0
        self.pool_sent: frozenset[str] | None = None
        self.offers: dict[str, dict[str, Any]] = {}

    def pool_registered(self) -> None:
        """Note the pool :meth:`AggregatorNode.connect` registered (consent checked there)."""
        self.pool_sent = frozenset(e.ven_id for e in self.node.book.registered())
        self.pool_devices = len(self.pool_sent)
        log.info("pool registered with the TSO: %d devices", self.pool_devices)

    async def keep_pool_registered(self, stop: asyncio.Event) -> None:
        """Re-send the pool registration once the registered devices changed and then stayed
        the same for a sample period: a fleet registering device by device costs one METADATA
        report (one description per device), not one per check."""
        every = self.node.settings.rules.sample_period.total_seconds()
        before: frozenset[str] | None = None
        while True:
            now = frozenset(e.ven_id for e in self.node.book.registered())
            if now != self.pool_sent and now == before:
                self.pool_devices = await self.node.register_pool()
                self.pool_sent = now
                log.info("pool registered with the TSO: %d devices", self.pool_devices)
            before = now
            if await wait_or_stop(stop, every):
                return

    def _target(self, now: datetime) -> tuple[IspRef, datetime]:
        """The first ISP whose gate closes at least one sample period from now."""
        calendar, rules = self.node.calendar, self.node.settings.rules
        isp = calendar.isp_at(now)
        while calendar.isp_start(isp) - rules.gate_closure < now + rules.sample_period:
            isp = calendar.isp_at(calendar.isp_end(isp))
        return isp, calendar.isp_start(isp) - rules.gate_closure

    async def offer_loop(self, stop: asyncio.Event) -> None:
        """Offer once per ISP; until the devices' forecasts are in (or the flex is under the
        minimum offer), try again each telemetry batch, saying why once per ISP and reason."""
        node, retry = self.node, self.node.settings.timing.telemetry_batch.total_seconds()
        offered: IspRef | None = None
        said: tuple[IspRef, str] | None = None
        while True:
            isp, closure = self._target(datetime.now(UTC))
            if isp != offered:
                offer = node.build_offer(isp) if node.book.outlooks else None
                if offer is not None:
                    await self._offer(offer)
                    offered = isp
                elif said != (isp, kind := self._no_offer_kind()):
                    said = (isp, kind)
                    log.info("no offer for ISP %s: %s", isp, self._no_offer_reason(kind))
            wait = (closure - datetime.now(UTC)).total_seconds()
            if await wait_or_stop(stop, wait if isp == offered else min(retry, wait)):
                return

    def _no_offer_kind(self) -> str:
        book = self.node.book
        if not book.registered():
            return "no-devices"
        return "no-forecasts" if not book.outlooks else "under-minimum"

    def _no_offer_reason(self, kind: str) -> str:
        """Why the pool cannot offer now, in words, with the figures behind it."""
        book, settings = self.node.book, self.node.settings
        if kind == "no-devices":
            return f"no device has registered yet ({len(book.by_ven)} onboarded)"
        if kind == "no-forecasts":
            return (f"no forecast yet from the {len(book.registered())} registered device(s) "
                    "(they send one with each telemetry batch)")
        usable = book.flex_mw() * (1 - settings.pool.offer_margin)
        return (f"{book.flex_mw()} MW available ({usable.normalize():f} MW after the "
                f"{settings.pool.offer_margin:%} margin) < {settings.rules.min_offer_mw} MW "
                f"minimum, from {len(book.registered())} registered device(s)")

    async def _offer(self, offer: Offer) -> None:
        """Send one offer; the TSO holding this ISP's offer from before a restart (same id,
        other content) is no failure: that offer stands."""
        from cbp.market import RefusalReason

        outcome = await self.node.send_offer(offer)
        standing = RefusalReason.DUPLICATE_CONFLICT.value in outcome.reason
        self.offers[offer.offer_id] = {"mw": str(offer.mw), "accepted": outcome.accepted,
                                       "earlier_offer_stands": standing,
                                       "reason": outcome.reason}
        if outcome.accepted or standing:
            log.info("offer %s %s MW: %s", offer.offer_id, offer.mw, "accepted" if
                     outcome.accepted else "the offer sent before a restart stands")
        else:
            log.warning("offer %s %s MW refused: %s", offer.offer_id, offer.mw,
                        escaped(outcome.reason))

    def status(self) -> dict[str, Any]:
        node = self.node
        return {
            "devices": {"onboarded": len(node.book.by_ven),
                        "registered": len(node.book.registered())},
            "pool": {"pool_id": node.settings.pool_id, "registered_devices": self.pool_devices},
            "offers": self.offers,
            "activations": {
                a.event_id: {"devices": len(a.device_events), "acked": len(a.acked),
                             "dispatched": a.dispatched_at is not None,
                             "all_acked": a.all_acked_at is not None,
                             "cancelled": a.cancelled}
                for a in node.activations.values()},
            "statements": {e: {"payment_eur": str(s.payment_eur),
                               "penalty_eur": str(s.penalty_eur)}
                           for e, s in node.status().statements.items()},
        }
