"""The demo's nodes up to a registered pool: PKI, TSO, aggregator, onboarding, the device fleet.

:func:`start_nodes` mints the certificates, serves the TSO's and the aggregator's VTNs on
127.0.0.1 (ephemeral ports, mutual TLS, SQLite under ``OUT``), onboards every device with its
owner's consent (plus one device whose owner gives none), starts the device fleet process, waits
for its registration, registers the aggregator and its pool with the TSO, and only then lets the
fleet poll and report. ``crowdflex demo`` and ``python -m bench cbp`` both start here.

Order matters at scale: the fleet holds after registering (``hold_after_registration``) so the
pool METADATA (one description per device) is built, filtered and sent while the aggregator is
not also taking every device's first telemetry batch at once.

Invariants: every server and the fleet process are stopped when the context exits, however it
exits; the vault is closed by the caller (it is still needed for the privacy audit).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from cbp.devices import Device, build_pool
from cbp.roles import AggregatorNode, CbpSettings, DeviceIdentity, TsoNode
from cbp.roles.device import next_grid
from cbp.roles.fleetnode import demo_fleet_toml
from devpki import CertificateAuthority, Role
from privacy import (
    ONBOARDING_PURPOSE,
    VALIDATION_PURPOSE,
    ConsentMissing,
    FileKeyProvider,
    IdentityVault,
)
from privacy.keys import new_key_line
from ven.config import VenXmpp
from ven.tls import client_context
from vtn.app import XMPP
from vtn.settings import VtnConfig, XmppSettings
from vtn.site import vtn_site

from .child import FleetProcess
from .prosody import XmppServer

__all__ = ["Nodes", "demo_settings", "start_nodes"]

STEP_TIMEOUT_S = 120.0
#: beyond the expected readiness, before the planned gate closure: a slower start still bids
#: for the planned ISP (past it, the demo waits for the next one, an ISP later)
_READY_SLACK = timedelta(seconds=16)
#: devices registering at once: enough to keep the aggregator busy while each waits on its
#: four round trips (query, create, register report, created report)
_REGISTER_CONCURRENCY = 64
# the aggregator VTN's XMPP sessions for the device link: the server reads each connection in
# turn, and a dispatch's IQs on one connection queued there (bench/README.md)
XMPP_SESSIONS = 4


@dataclass(slots=True, kw_only=True)
class Nodes:
    """The running platform: what a scenario drives once the pool is registered."""

    out: Path
    settings: CbpSettings
    tso: TsoNode
    aggregator: AggregatorNode
    vault: IdentityVault
    fleet: FleetProcess
    registered: int
    refused: int
    step: Callable[[str], None]
    xmpp_server: XmppServer | None = None  # the device link's server, with ``xmpp``


def demo_settings(devices: int, settings: CbpSettings | None = None, *,
                  started: datetime | None = None) -> CbpSettings:
    """The compressed timing for a run of ``devices`` started at ``started`` (now by default).

    Past 500 devices each polls every 8 s, so the aggregator's poll load stays flat as the fleet
    grows. The ISP grid is shifted (``MarketRules.isp_phase``) so that a gate closure falls
    when the pool should be ready to bid: on the wall-clock minute the demo waited anything up
    to a whole ISP for the next one, which decided whether 2,000 devices finished in 3 minutes.
    """
    settings = settings or CbpSettings.compressed()
    if devices > 500:
        settings = replace(settings, timing=replace(
            settings.timing, device_poll=timedelta(seconds=8)))
    rules = settings.rules
    ready = (started or datetime.now(UTC)) + expected_ready(devices) + _READY_SLACK
    first_start = next_grid(ready + rules.gate_closure, rules.sample_period)
    local = first_start.astimezone(ZoneInfo(rules.timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return replace(settings, rules=replace(rules, isp_phase=(local - midnight) % rules.isp_length))


def expected_ready(devices: int) -> timedelta:
    """How long this 2-core machine takes from the demo's start until the pool can bid: every
    device registered, the pool registered with the TSO, and the devices' first telemetry in
    (measured on a quiet machine: about 9 s for 200 devices, 41-56 s for 2,000; 51 s for 2,000
    with other work on the machine)."""
    return timedelta(seconds=11 + 0.0175 * devices)


def stepper(say: Callable[[str], None]) -> Callable[[str], None]:
    """Progress lines stamped with wall time and this process's CPU (TSO + aggregator): on a
    shared machine the second says where the work is when other load stretches the first."""
    began, cpu0 = time.monotonic(), time.process_time()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - began:6.1f}s cpu {time.process_time() - cpu0:6.1f}s] {text}")

    return step


def _mint(out: Path, devices: int) -> tuple[dict[str, tuple[Path, Path]], list[DeviceIdentity]]:
    folder = out / "certs"
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(common_name="crowdflex CBP demo CA")
    files = {"ca": ca.write(folder, force=True)}
    for name, role in (("tso", Role.VTN), ("aggregator-vtn", Role.VTN), ("aggregator", Role.VEN)):
        files[name] = ca.issue(name, role).write(folder, force=True)
    # the XMPP server of the device link, when there is one (its domain is "localhost")
    files["xmpp"] = ca.issue("xmpp", Role.VTN, hosts=("localhost",)).write(folder, force=True)
    identities = []
    dev = folder / "devices"
    dev.mkdir(exist_ok=True)
    for i in range(devices):
        issued = ca.issue(f"device-{i:05d}", Role.VEN)
        cert, key = issued.write(dev, force=True)
        identities.append(DeviceIdentity(name=issued.name, cert=cert, key=key,
                                         fingerprint=issued.fingerprint))
    return files, identities


async def _serve(app: web.Application, config: VtnConfig) -> tuple[web.AppRunner, str]:
    """``app`` on the listener ``crowdflex vtn`` serves on (vtn.site), at 127.0.0.1, any port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await vtn_site(runner, replace(config, host="127.0.0.1", port=0)).start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}"


def _vtn_config(out: Path, name: str, pki: dict[str, tuple[Path, Path]], cert: str,
                poll: timedelta) -> VtnConfig:
    (out / name).mkdir(parents=True, exist_ok=True)
    return VtnConfig(vtn_id=name.upper(), storage_url=f"sqlite:///{out / name / (name + '.db')}",
                     tls_cert=pki[cert][0], tls_key=pki[cert][1], tls_ca=pki["ca"][0],
                     poll_frequency=poll, admin_enabled=False, offer_metadata=False,
                     # every device connects at once from one address: the handshake caps are
                     # for the open internet and would shed the demo's own fleet
                     max_pending_handshakes=None, max_pending_handshakes_per_address=None)


def _onboard(vault: IdentityVault, aggregator: AggregatorNode, sims: Sequence[Device],
             identities: list[DeviceIdentity], seed: int) -> None:
    """Prosumers, consent and devices into the vault; the last device's owner never consents."""
    rng = random.Random(seed)
    for i, (sim, identity) in enumerate(zip(sims, identities, strict=True)):
        prosumer = f"P{i:05d}"
        vault.prosumers.add(prosumer_id=prosumer, name=f"Prosumer {i}",
                            postcode=f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJK')}"
                                    f"{rng.choice('LMNPRTVWXZ')}",
                           ean="871" + "".join(str(rng.randint(0, 9)) for _ in range(15)),
                           contract_id=f"C-{i:05d}")
        consenting = i < len(sims) - 1
        if consenting:
            vault.consents.grant(prosumer, ONBOARDING_PURPOSE)
            vault.consents.grant(prosumer, VALIDATION_PURPOSE)
        try:
            vault.devices.onboard(prosumer_id=prosumer, serial=f"SN-{rng.getrandbits(40):010X}",
                                  device_class=sim.device_class.value,
                                  rated_kw=Decimal(str(sim.rated_kw)),
                                  zone="NL", device_uuid=sim.device_id)
        except ConsentMissing:
            continue
        aggregator.onboard(ven_id=identity.fingerprint, device_uuid=sim.device_id,
                           prosumer_id=prosumer, device_class=sim.device_class.value,
                           power_bucket=sim.power_bucket,
                           rated_kw=Decimal(str(sim.rated_kw)))


def _vault(out: Path) -> IdentityVault:
    (out / "keys").mkdir(parents=True, exist_ok=True)
    key_file = out / "keys" / "vault-master.key"
    key_file.write_text(new_key_line(1))
    key_file.chmod(0o600)
    (out / "aggregator").mkdir(parents=True, exist_ok=True)
    # Bulk onboarding: WAL without an fsync per record, as the VTN storage does.
    return IdentityVault(out / "aggregator" / "vault.db", FileKeyProvider(key_file),
                         synchronous="normal", keyring=out / "keys" / "vault.keyring")


@asynccontextmanager
async def start_nodes(out: Path, *, devices: int, seed: int, settings: CbpSettings,
                      step: Callable[[str], None], xmpp: bool = False,
                      xmpp_sessions: int = XMPP_SESSIONS) -> AsyncIterator[Nodes]:
    """TSO, aggregator and ``devices`` (+1 refused) device VENs with the pool registered; with
    ``xmpp`` the devices reach the aggregator through a Prosody of their own
    (:mod:`cbp.demo.prosody`) instead of polling it over HTTP, the aggregator's VTN over
    ``xmpp_sessions`` sessions (``[xmpp] sessions``)."""
    total = devices + 1  # one more device whose owner gives no consent
    pki, identities = _mint(out, total)
    step(f"PKI: CA, TSO, aggregator and {total} device certificates in {out / 'certs'}")
    async with contextlib.AsyncExitStack() as stack:
        server: XmppServer | None = None
        if xmpp:
            server = XmppServer(cert=pki["xmpp"][0], key=pki["xmpp"][1], ca=pki["ca"][0])
            await server.start()
            stack.push_async_callback(server.stop)
            step(f"XMPP server (Prosody) on 127.0.0.1:{server.port} for the device link")
        async with _started(out, pki, identities, seed=seed, settings=settings, step=step,
                            server=server, xmpp_sessions=xmpp_sessions) as nodes:
            yield nodes


@asynccontextmanager
async def _started(out: Path, pki: dict[str, tuple[Path, Path]],
                   identities: list[DeviceIdentity], *, seed: int, settings: CbpSettings,
                   step: Callable[[str], None], server: XmppServer | None,
                   xmpp_sessions: int) -> AsyncIterator[Nodes]:
    total = len(identities)
    vault = _vault(out)
    # One aggregator sends the whole pool's registration and metering: megabyte documents, so
    # its budgets and caps are sized for a pool, not for one device.
    tso_cfg = replace(_vtn_config(out, "tso", pki, "tso", timedelta(seconds=1)),
                      max_body_bytes=32 * 1024 * 1024, byte_budget_per_s=8 * 1024 * 1024,
                      byte_budget_burst=128 * 1024 * 1024, cpu_budget_per_s=1.0,
                      cpu_budget_burst_s=60.0, max_report_descriptions=100_000,
                      max_report_points=1_000_000)
    link = (None if server is None else XmppSettings(
        host="127.0.0.1", port=server.port, domain=server.domain,
        sessions=xmpp_sessions))
    agg_cfg = replace(_vtn_config(out, "aggregator", pki, "aggregator-vtn",
                                  settings.timing.device_poll),
                      auto_subscribe_reports=("TELEMETRY_USAGE",), xmpp=link)
    tso = TsoNode(tso_cfg, settings, capture_dir=out / "captures" / "aggregator-tso")
    tso_runner, tso_url = await _serve(tso.app, tso_cfg)
    upstream_tls = client_context(cert=pki["aggregator"][0], key=pki["aggregator"][1],
                                  ca=pki["ca"][0])
    aggregator = AggregatorNode(settings=settings, downstream=agg_cfg, vault=vault,
                                tso_url=tso_url, upstream_tls=upstream_tls,
                                outbox_path=out / "aggregator" / "outbox.db")
    agg_runner, agg_url = await _serve(aggregator.app, agg_cfg)
    step(f"TSO VTN on {tso_url}, aggregator VTN on {agg_url} (mutual TLS, SQLite)")
    sims = list(build_pool(total, seed, start=datetime.now(UTC)).devices)
    _onboard(vault, aggregator, sims, identities, seed)
    step(f"onboarding: {len(aggregator.book.by_ven)} devices with consent in the identity vault,"
         f" 1 prosumer without consent, on purpose: the aggregator must refuse that device"
         f" (it logs a warning naming it)")
    fleet_toml = out / "devices.toml"
    fleet_toml.write_text(demo_fleet_toml(
        url=agg_url, ca=pki["ca"][0].resolve(), certs=(out / "certs" / "devices").resolve(),
        names=tuple(i.name for i in identities), seed=seed,
        outbox=(out / "devices-outbox.db").resolve(),
        device_poll=settings.timing.device_poll, telemetry_batch=settings.timing.telemetry_batch,
        register_concurrency=_REGISTER_CONCURRENCY, hold=True,
        xmpp=None if server is None else VenXmpp(
            vtn_jid=aggregator.app[XMPP].jid, port=server.port, domain=server.domain)))
    fleet = await FleetProcess.start(fleet_toml, out / "devices.log")
    try:
        # registration runs at ~15 devices/s on a loaded 2-core machine: scale the patience
        done = await fleet.wait_for("registered", STEP_TIMEOUT_S + 0.2 * total)
        registered, refused = int(str(done["registered"])), int(str(done["refused"]))
        step(f"registration: {registered} device VENs (own process, mutual TLS) registered with "
             f"the aggregator in {done['seconds']} s; {refused} refused (no consent)")
        ven_id = await aggregator.connect()
        step(f"pool registration: aggregator {ven_id} registered "
             f"{len(tso.devices(ven_id, settings.pool_id))} pseudonymous devices at the TSO")
        await fleet.release()
        await fleet.wait_for("running", STEP_TIMEOUT_S)
        yield Nodes(out=out, settings=settings, tso=tso, aggregator=aggregator, vault=vault,
                    fleet=fleet, registered=registered, refused=refused, step=step,
                    xmpp_server=server)
    finally:
        await aggregator.close()
        await fleet.stop()
        await agg_runner.cleanup()
        await tso_runner.cleanup()
