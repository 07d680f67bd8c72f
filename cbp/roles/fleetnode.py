"""A device-fleet node: N simulated device VENs in their own process, configured from TOML.

This is what ``crowdflex device --config FILE`` runs, and what ``crowdflex demo`` starts as a
child process so that the devices and the aggregator run on different cores and talk over real
sockets and mutual TLS. Configuration (every key documented in ``examples/device.toml``)::

    [aggregator]  url, ca                       the aggregator's VTN and the CA that signed it
    [fleet]       certs, names | count, seed,   device certificates (<name>.pem/.key per device),
                  outbox, register_concurrency, which devices, simulator seed, durable outbox
                  hold_after_registration       file; hold: wait for a line on stdin before
                                                polling and sending telemetry
    [profile]     name, <timing>_s              "standard" or "compressed" plus overrides
    [xmpp]        vtn_jid, host, port, domain   optional: reach the aggregator through this XMPP
                                                server instead of HTTP (docs/ven.md#xmpp)

Simulators are drawn with :func:`cbp.devices.build_pool` from ``seed`` in the order of ``names``:
the aggregator that onboarded the devices draws the same pool from the same seed, so device ids
agree without any identity crossing the process boundary.

Progress goes to ``progress`` as small dicts (the CLI prints them as JSON lines): ``registered``
once registration is done, then ``running``. With ``hold_after_registration`` the fleet reports
``holding`` after ``registered`` and starts only once a line arrives on stdin: a supervisor
(``crowdflex demo``) lets the aggregator register its pool with the TSO before two thousand
devices start polling and reporting to that same aggregator. Such a fleet stops when its stdin
ends, at any point: its supervisor is gone (killed, say), and a fleet left behind would poll a
dead aggregator for ever.

Invariants: a device's venID is its certificate fingerprint, read from the certificate file;
nothing here reads the identity vault.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cbp.devices import build_pool
from schemas.identity import fingerprint_from_pem
from tomlconfig import Table
from ven.config import VenXmpp, xmpp_from_table

from .device import DeviceFleet, DeviceIdentity
from .profile import CbpSettings, settings_from_table

__all__ = ["FleetConfig", "fleet_config_from_table", "load_identities", "run_fleet"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    """Where the aggregator is, which devices to run, and the shared profile."""

    aggregator_url: str
    ca: Path
    certs: Path
    names: tuple[str, ...]
    seed: int
    outbox: Path
    settings: CbpSettings
    register_concurrency: int = 32
    hold_after_registration: bool = False
    xmpp: VenXmpp | None = None  # the device link over XMPP instead of HTTP polling


def fleet_config_from_table(document: Table, *, state: Path | None = None) -> FleetConfig:
    """Build a :class:`FleetConfig` from a device TOML file read whole (:func:`tomlconfig.document`;
    a key left over is refused); relative certificate paths from the file's directory, a relative
    outbox from ``state`` (default: that directory too)."""
    aggregator, fleet = document.table("aggregator"), document.table("fleet")
    url = aggregator.string("url")
    if not url.startswith("https://"):
        raise aggregator.error("url", "an https:// URL", url)
    if not fleet.has("names") and not fleet.has("count"):
        raise fleet.error("names", "a list of certificate names, or count = N (N >= 1)")
    count = fleet.integer("count", low=1) if fleet.has("count") else 0
    # names, when given, are the fleet (a count beside them is checked, and not used)
    names = (fleet.strings("names") if fleet.has("names")
             else tuple(f"device-{i:05d}" for i in range(count)))
    outbox = Path(fleet.string("outbox") if fleet.has("outbox") else "devices-outbox.db")
    config = FleetConfig(
        aggregator_url=url, ca=aggregator.path("ca"), certs=fleet.path("certs"), names=names,
        seed=fleet.integer("seed", low=-(2**63)) if fleet.has("seed") else 1,
        outbox=outbox if outbox.is_absolute() else (state or document.base) / outbox,
        settings=settings_from_table(document.table("profile")),
        register_concurrency=(fleet.integer("register_concurrency", low=1)
                              if fleet.has("register_concurrency") else 32),
        hold_after_registration=(fleet.flag("hold_after_registration")
                                 if fleet.has("hold_after_registration") else False),
        xmpp=xmpp_from_table(document.table("xmpp")) if document.has("xmpp") else None)
    document.finish()
    return config


def load_identities(certs: Path, names: tuple[str, ...]) -> list[DeviceIdentity]:
    """Each device's certificate and key (``<name>.pem`` / ``<name>.key``, as ``crowdflex certs``
    writes them) and its venID."""
    identities = []
    for name in names:
        cert, key = certs / f"{name}.pem", certs / f"{name}.key"
        if not cert.is_file() or not key.is_file():
            raise FileNotFoundError(f"device {name}: need {cert} and {key}")
        identities.append(DeviceIdentity(name=name, cert=cert, key=key,
                                         fingerprint=fingerprint_from_pem(cert.read_bytes())))
    return identities


async def run_fleet(config: FleetConfig, stop: asyncio.Event,
                    progress: Callable[[dict[str, object]], None]) -> int:
    """Register every device, then sample, report and follow setpoints until ``stop`` is set.
    Returns how many devices registered."""
    identities = load_identities(config.certs, config.names)
    sims = build_pool(len(identities), config.seed, start=datetime.now(UTC)).devices
    async with DeviceFleet(config.aggregator_url, config.ca, config.settings,
                           outbox_path=config.outbox, xmpp=config.xmpp,
                           register_concurrency=config.register_concurrency) as fleet:
        for identity, sim in zip(identities, sims, strict=True):
            fleet.add_deferred(identity, sim)
        began = asyncio.get_running_loop().time()
        registered = await fleet.register_all()
        progress({"registered": registered, "refused": len(fleet.refused),
                  "seconds": round(asyncio.get_running_loop().time() - began, 2)})
        supervisor: asyncio.Task[None] | None = None
        transport: asyncio.BaseTransport | None = None
        try:
            if config.hold_after_registration:
                progress({"holding": registered})
                reader, transport = await _stdin_reader()
                if not await _first_of(_go(reader), stop.wait()):
                    return registered
                supervisor = asyncio.create_task(_set_at_end(reader, stop))
            fleet.start()
            progress({"running": registered})
            await stop.wait()
        finally:
            if supervisor is not None:
                supervisor.cancel()
            if transport is not None:
                transport.close()
        progress({"stopping": registered, "setpoint_events": sum(
            n.events_seen for n in fleet.nodes)})
    return registered


async def _stdin_reader() -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """stdin as a stream on the loop, without a thread blocked in read."""
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader, transport


async def _go(reader: asyncio.StreamReader) -> bool:
    """True for a line on stdin; False when it ends first (the supervisor is gone)."""
    return bool(await reader.readline())


async def _set_at_end(reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
    """Set ``stop`` once stdin ends."""
    await reader.read()
    stop.set()


async def _first_of(go: Coroutine[Any, Any, bool], stop: Coroutine[Any, Any, object]) -> bool:
    """``go``'s answer when it finished first, False when ``stop`` did; the other is cancelled."""
    tasks = [asyncio.ensure_future(go), asyncio.ensure_future(stop)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return tasks[0] in done and tasks[0].result() is True


def demo_fleet_toml(*, url: str, ca: Path, certs: Path, names: tuple[str, ...], seed: int,
                    outbox: Path, device_poll: timedelta, telemetry_batch: timedelta,
                    register_concurrency: int = 32, hold: bool = False,
                    xmpp: VenXmpp | None = None) -> str:
    """The device config ``crowdflex demo`` writes for its fleet process (compressed timing)."""
    listed = ", ".join(f'"{n}"' for n in names)
    link = ("" if xmpp is None else
            f'[xmpp]\nvtn_jid = "{xmpp.vtn_jid}"\nhost = "{xmpp.host}"\nport = {xmpp.port}\n'
            f'domain = "{xmpp.domain}"\n\n')
    return (link + f'[aggregator]\nurl = "{url}"\nca = "{ca}"\n\n'
            f'[fleet]\ncerts = "{certs}"\nseed = {seed}\noutbox = "{outbox}"\n'
            f'register_concurrency = {register_concurrency}\n'
            f'hold_after_registration = {"true" if hold else "false"}\n'
            f'names = [{listed}]\n\n'
            f'[profile]\nname = "compressed"\n'
            f'device_poll_s = {device_poll.total_seconds()}\n'
            f'telemetry_batch_s = {telemetry_batch.total_seconds()}\n')
