"""A TSO node, an aggregator node and a few device VENs on loopback, driven sample by sample.

Everything is real: both VTNs are aiohttp servers on 127.0.0.1 (port 0) over mutual TLS with the
session PKI, on SQLite files in the test's folder; the aggregator's upstream client and each
device's client are :class:`ven.VenClient` s. Only time is driven: one :class:`Clock` is the TSO's
and the aggregator's "now", and :meth:`Rig.step` does at one sample instant what the background
loops would (devices poll, sample and send; the aggregator polls the TSO, closes samples and
sends its rows), so a test can jump over a minute of outage without waiting for it.

The devices are :class:`SteadyLoad` s: a constant natural draw that follows its setpoint exactly,
so every expected number is plain arithmetic.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from cbp.devices import DeviceClass, power_bucket
from cbp.devices.base import OnlineState
from cbp.market import IspRef
from cbp.roles import AggregatorNode, CbpSettings, DeviceFleet, DeviceIdentity, DeviceNode, TsoNode
from cbp.roles.device import next_grid
from cbp.roles.messages import TELEMETRY_SUFFIX, sample_intervals
from cbp.roles.tso import Activation
from devpki import Role
from privacy import (
    ONBOARDING_PURPOSE,
    VALIDATION_PURPOSE,
    ActivationWindow,
    FileKeyProvider,
    IdentityVault,
    PrivacyConfig,
)
from privacy.keys import new_key_line
from schemas import Event
from tests.kit.clock import Clock
from tests.kit.pki import Pki
from tests.kit.vtn import LoopbackVtn
from tests.kit.vtn import vtn_config as test_vtn_config
from ven import VenClient, VtnUnavailable
from vtn.services.events import get_event
from vtn.settings import VtnConfig

NATURAL_KW = 20.0
WAIT_S = 60.0  # liveness bound on a loaded 2-core machine, not a timing assertion


class SteadyLoad(OnlineState):
    """A device drawing ``natural`` kW unless told a lower consumption target."""

    __slots__ = ("device_class", "device_id", "natural", "power_bucket", "rated_kw")

    def __init__(self, natural: float = NATURAL_KW, *, rated_kw: float = 22.0,
                 device_class: DeviceClass = DeviceClass.EV_CHARGER) -> None:
        self.device_id = uuid4()
        self.device_class = device_class
        self.natural = natural
        self.rated_kw = rated_kw
        self.power_bucket = power_bucket(self.rated_kw)
        self._online = True
        self._true_kw = natural

    def step(self, now: datetime, setpoint_kw: float | None) -> float | None:
        self._true_kw = self.natural if setpoint_kw is None else min(max(setpoint_kw, 0.0),
                                                                      self.natural)
        return self._true_kw if self._online else None

    def natural_kw(self, now: datetime) -> float:
        return self.natural

    def available_flex_kw(self, now: datetime, horizon: timedelta, *,
                          at: datetime | None = None) -> float:
        return self.natural

    def forecast_kw(self, now: datetime, at: datetime) -> float:
        return self.natural


def vtn_config(folder: Path, name: str, pki: Pki, **extra: Any) -> VtnConfig:
    """A role's VTN: named ``name`` upper-cased, its SQLite file in ``folder``, no admin API, no
    offer metadata and no rate limit (the test drives every request)."""
    return test_vtn_config(pki, f"sqlite:///{folder / (name + '.db')}", vtn_id=name.upper(),
                           admin_enabled=False, offer_metadata=False, rate_limit_per_s=None,
                           **extra)


async def drain(client: VenClient) -> None:
    """Poll until the VTN has nothing more queued (what the poll loop does between pauses)."""
    while await client.poll_once():
        pass


async def until(event: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT_S):
        await event.wait()
    event.clear()


@dataclass(slots=True, kw_only=True)
class Rig:
    settings: CbpSettings
    clock: Clock
    tso: TsoNode
    tso_served: LoopbackVtn
    aggregator: AggregatorNode
    agg_served: LoopbackVtn
    fleet: DeviceFleet
    vault: IdentityVault
    captures: Path
    tso_up: bool = True
    sims: dict[str, SteadyLoad] = field(default_factory=dict)  # device venID -> sim

    @property
    def nodes(self) -> tuple[DeviceNode, ...]:
        return self.fleet.registered

    @property
    def period(self) -> timedelta:
        return self.settings.rules.sample_period

    async def step(self, at: datetime) -> None:
        """One sample instant, as the background loops would run it."""
        self.clock.now = at
        upstream = self.aggregator.upstream
        assert upstream is not None
        if self.tso_up:
            await drain(upstream)
        for node in self.nodes:
            await drain(node.client)
            node.sample(at)
            if await node.flush():
                await node.client.flush_reports()
        await self.aggregator.tick(at)
        if self.tso_up:
            await upstream.flush_reports()

    async def run_until(self, end: datetime, start: datetime | None = None) -> datetime:
        at = start or self.clock.now + self.period
        while at <= end:
            await self.step(at)
            at += self.period
        return at

    async def tso_down(self) -> None:
        self.tso_up = False
        await self.tso_served.refuse()

    async def tso_back(self) -> None:
        await self.tso_served.resume()
        self.tso_up = True

    async def activation(self, setpoints_mw: tuple[Decimal, ...], *,
                         lead: timedelta = timedelta(seconds=12)) -> Activation:
        """Offer, award and activate an ISP whose first setpoint is ``lead`` after now."""
        tso, agg = self.tso, self.aggregator
        isp = _open_isp(tso, self.settings, self.clock.now)
        offer = agg.build_offer(isp)
        assert offer is not None, f"pool flex {agg.book.flex_mw()} MW is under the minimum"
        outcome = await agg.send_offer(offer)
        assert outcome.accepted, outcome.reason
        awards = tso.award(isp)
        assert awards
        start = next_grid(self.clock.now + lead, self.period)
        return await tso.activate(awards[0], start=start, setpoints_mw=setpoints_mw)

    async def dispatched(self, activation: Activation) -> None:
        """Let the aggregator take the TSO's event and publish the device events."""
        upstream = self.aggregator.upstream
        assert upstream is not None
        await drain(upstream)
        await until(self.aggregator.operation.handled)

    async def device_event(self, event_id: str) -> Event | None:
        return await get_event(self.aggregator.ctx, event_id)

    async def close(self) -> None:
        await self.fleet.close()
        await self.aggregator.close()
        await self.agg_served.close()
        await self.tso_served.close()
        self.vault.close()


async def poll_through(rig: Rig) -> None:
    """The aggregator's next poll gets through to the TSO (a pooled connection the TSO dropped
    may fail once, as it would for the poll loop, which simply polls again)."""
    upstream = rig.aggregator.upstream
    assert upstream is not None
    for _ in range(3):
        try:
            await upstream.poll_once()
            return
        except VtnUnavailable:
            continue
    raise AssertionError("the aggregator never reached the TSO again")


def _open_isp(tso: TsoNode, settings: CbpSettings, now: datetime) -> IspRef:
    """The next ISP whose gate is still open at ``now``."""
    isp = tso.calendar.isp_at(now)
    while tso.calendar.isp_start(isp) - settings.rules.gate_closure <= now:
        isp = tso.calendar.isp_at(tso.calendar.isp_end(isp))
    return isp


async def build_rig(tmp_path: Path, pki: Pki, *, devices: int = 6,
                    settings: CbpSettings | None = None,
                    loads: Callable[[int], SteadyLoad] | None = None,
                    start: datetime | None = None, order: random.Random | None = None,
                    privacy: PrivacyConfig | None = None) -> Rig:
    """Both nodes served, ``devices`` devices onboarded and registered, the pool registered at
    the TSO and every device's first telemetry (its flex) known to the aggregator.

    ``loads(i)`` makes the i-th device's simulator (a default :class:`SteadyLoad` otherwise);
    ``start`` is the clock's first instant (now otherwise); ``order`` and ``privacy`` go to the
    aggregator (its shuffles and tie-breaks; k)."""
    settings = settings or CbpSettings.compressed()
    clock = Clock(next_grid(start or datetime.now(UTC), settings.rules.sample_period))
    tso_cfg = vtn_config(tmp_path, "tso", pki, poll_frequency=timedelta(seconds=1))
    tso = TsoNode(tso_cfg, settings, capture_dir=tmp_path / "captures", clock=clock)
    tso_served = await LoopbackVtn.start(tso.app, tso_cfg)
    key_file = tmp_path / "vault.key"
    key_file.write_text(new_key_line(1))
    key_file.chmod(0o600)
    vault = IdentityVault(tmp_path / "vault.db", FileKeyProvider(key_file))
    agg_cfg = vtn_config(tmp_path, "aggregator", pki, poll_frequency=settings.timing.device_poll,
                         auto_subscribe_reports=("TELEMETRY_USAGE",))
    aggregator = AggregatorNode(settings=settings, downstream=agg_cfg, vault=vault,
                                tso_url=tso_served.url, upstream_tls=pki.client_context(),
                                outbox_path=tmp_path / "aggregator-outbox.db", clock=clock,
                                order=order, privacy=privacy)
    agg_served = await LoopbackVtn.start(aggregator.app, agg_cfg)
    fleet = DeviceFleet(agg_served.url, pki.ca_cert, settings,
                        outbox_path=tmp_path / "devices-outbox.db")
    await fleet.__aenter__()
    rig = Rig(settings=settings, clock=clock, tso=tso, tso_served=tso_served,
              aggregator=aggregator, agg_served=agg_served, fleet=fleet, vault=vault,
              captures=tmp_path / "captures")
    certs = tmp_path / "devices"
    certs.mkdir()
    for i in range(devices):
        issued = pki.authority.issue(f"device-{i}", Role.VEN)
        cert, key = issued.write(certs)
        identity = DeviceIdentity(name=issued.name, cert=cert, key=key,
                                  fingerprint=issued.fingerprint)
        sim = loads(i) if loads is not None else SteadyLoad()
        _onboard(vault, aggregator, sim, identity, i)
        fleet.add(identity, sim)
        rig.sims[identity.fingerprint] = sim
    assert await fleet.register_all() == devices
    await aggregator.connect(background=False)
    await rig.step(clock.now)  # every device's first batch carries its flex
    assert len(aggregator.book.outlooks) == devices
    return rig


def _onboard(vault: IdentityVault, aggregator: AggregatorNode, sim: SteadyLoad,
             identity: DeviceIdentity, i: int) -> None:
    prosumer = f"P{i:05d}"
    vault.prosumers.add(prosumer_id=prosumer, name=f"Prosumer {i}", postcode="1234 AB",
                        ean=f"871{i:015d}", contract_id=f"C-{i:05d}")
    vault.consents.grant(prosumer, ONBOARDING_PURPOSE)
    vault.consents.grant(prosumer, VALIDATION_PURPOSE)
    vault.devices.onboard(prosumer_id=prosumer, serial=f"SN-{i:08d}",
                          device_class=sim.device_class.value,
                          rated_kw=Decimal(str(sim.rated_kw)), zone="NL",
                          device_uuid=sim.device_id)
    aggregator.onboard(ven_id=identity.fingerprint, device_uuid=sim.device_id,
                       prosumer_id=prosumer, device_class=sim.device_class.value,
                       power_bucket=sim.power_bucket, rated_kw=Decimal(str(sim.rated_kw)))


def sim_of(rig: Rig, device: UUID) -> SteadyLoad:
    return next(s for s in rig.sims.values() if s.device_id == device)


def next_month_start(at: datetime, zone: str) -> datetime:
    local = at.astimezone(ZoneInfo(zone))
    first = (local.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0)
    return first.astimezone(at.tzinfo) + timedelta(minutes=5)


async def send_device_rows(rig: Rig) -> None:
    """One per-device row for every registered device at the current instant, inside a window."""
    agg = rig.aggregator
    upstream = agg.upstream
    assert upstream is not None
    at = rig.clock.now
    agg.windows.append(ActivationWindow(start=at - rig.period, end=at + rig.period))
    rows = [(e.pseudonym, 0.5) for e in agg.book.registered()]  # shares of rated power
    specifier = rig.settings.pool_id + TELEMETRY_SUFFIX
    await upstream.send_report(agg.requests[specifier], sample_intervals([(at, rows)], rig.period),
                               report_specifier_id=specifier)
    assert await upstream.flush_reports() == 1


def db_cells(path: Path) -> bytes:
    """Every cell of every table of a SQLite file, as bytes (what a query can reach)."""
    db = sqlite3.connect(path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    found = bytearray()
    for table in tables:
        for row in db.execute(f'SELECT * FROM "{table}"'):
            for cell in row:
                found += cell if isinstance(cell, bytes) else str(cell).encode()
                found += b"\n"
    db.close()
    return bytes(found)
