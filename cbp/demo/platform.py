"""The CBP demo: a TSO, an aggregator and N simulated devices through every flow, on loopback.

Each node is a real aiohttp server or client on 127.0.0.1 (ephemeral ports) over mutual TLS with
its own certificate, on its own SQLite files under ``OUT``; the devices share one event loop and
one outbox (a "device fleet") but each has its own identity and keep-alive connection. Timing is
the compressed profile (:meth:`cbp.roles.CbpSettings.compressed`): one-minute ISPs.

Flows, in order: onboarding with consent (one extra device without consent is refused),
registration of the pool with the TSO, an offer for the next open ISP (plus a late one the TSO
refuses with its reason), award and activation (LOAD_DISPATCH, MW per 4-s sample), dispatch to
devices (kW), telemetry, baselines and per-device metering, TSO validation and settlement,
prosumer payouts; then the report folder and the privacy audit of the captured link.
Nothing sleeps to synchronise: every step awaits a condition under a timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from cbp.devices import build_pool
from cbp.market import IspRef, ProsumerStatement, TsoStatement
from cbp.pki import CertificateAuthority, Role
from cbp.roles import AggregatorNode, CbpSettings, DeviceIdentity, TsoNode
from cbp.roles.fleetnode import demo_fleet_toml
from cbp.roles.tso import Activation, ramp_profile
from privacy import (
    ONBOARDING_PURPOSE,
    AuditResult,
    ConsentMissing,
    FileKeyProvider,
    IdentityVault,
    audit_run,
    month_of,
)
from privacy.keys import new_key_line
from ven.tls import client_context
from vtn.app import VtnConfig, server_ssl_context

from .child import FleetProcess
from .report import write_report

__all__ = ["PlatformSummary", "run_platform"]

_STEP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformSummary:
    out_dir: Path
    devices: int
    registered: int
    refused: int
    offer_mw: Decimal
    statement: TsoStatement
    prosumers: ProsumerStatement
    audit: AuditResult
    elapsed_s: float
    activation_to_dispatched_s: float
    #: from the TSO's activation to every device's oadrCreatedEvent for its setpoints
    activation_to_acked_s: float
    activation: Activation
    tso_db: Path


async def _until(check: Callable[[], bool], what: str, timeout: float = _STEP_TIMEOUT_S,
                 every: float = 0.1) -> None:
    """Wait for a condition other tasks make true; a timeout names what never happened."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(every)
    except TimeoutError:
        raise TimeoutError(f"gave up waiting for {what}") from None


def _mint(out: Path, devices: int) -> tuple[dict[str, tuple[Path, Path]], list[DeviceIdentity]]:
    folder = out / "certs"
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create(common_name="crowdflex CBP demo CA")
    files = {"ca": ca.write(folder, force=True)}
    for name, role in (("tso", Role.VTN), ("aggregator-vtn", Role.VTN), ("aggregator", Role.VEN)):
        files[name] = ca.issue(name, role).write(folder, force=True)
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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(config))
    await site.start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}"


def _vtn_config(out: Path, name: str, pki: dict[str, tuple[Path, Path]], cert: str,
                poll: timedelta, **extra: object) -> VtnConfig:
    (out / name).mkdir(parents=True, exist_ok=True)
    return VtnConfig(vtn_id=name.upper(), storage_url=f"sqlite:///{out / name / (name + '.db')}",
                     tls_cert=pki[cert][0], tls_key=pki[cert][1], tls_ca=pki["ca"][0],
                     poll_frequency=poll, admin_enabled=False, offer_metadata=False,
                     **extra)  # type: ignore[arg-type]


def _onboard(vault: IdentityVault, aggregator: AggregatorNode, sims: Sequence[object],
             identities: list[DeviceIdentity], seed: int) -> None:
    """Prosumers, consent and devices into the vault; the last device's owner never consents."""
    rng = random.Random(seed)
    for i, (sim, identity) in enumerate(zip(sims, identities, strict=True)):
        prosumer = f"P{i:05d}"
        vault.add_prosumer(prosumer_id=prosumer, name=f"Prosumer {i}",
                           postcode=f"{rng.randint(1000, 9999)} {rng.choice('ABCDEFGHJK')}"
                                    f"{rng.choice('LMNPRTVWXZ')}",
                           ean="871" + "".join(str(rng.randint(0, 9)) for _ in range(15)),
                           contract_id=f"C-{i:05d}")
        consenting = i < len(sims) - 1
        if consenting:
            vault.grant_consent(prosumer, ONBOARDING_PURPOSE)
        try:
            vault.onboard_device(prosumer_id=prosumer, serial=f"SN-{rng.getrandbits(40):010X}",
                                 device_class=sim.device_class.value,  # type: ignore[attr-defined]
                                 rated_kw=Decimal(str(sim.rated_kw)),  # type: ignore[attr-defined]
                                 zone="NL", device_uuid=sim.device_id)  # type: ignore[attr-defined]
        except ConsentMissing:
            continue
        aggregator.onboard(ven_id=identity.fingerprint, device_uuid=sim.device_id,  # type: ignore[attr-defined]
                           prosumer_id=prosumer, device_class=sim.device_class.value,  # type: ignore[attr-defined]
                           power_bucket=sim.power_bucket)  # type: ignore[attr-defined]


def _target_isp(tso: TsoNode, settings: CbpSettings, ready: datetime) -> IspRef:
    """The first ISP whose gate closes at least 4 s after ``ready``."""
    isp = tso.calendar.isp_at(ready)
    while tso.calendar.isp_start(isp) - settings.rules.gate_closure < ready + timedelta(seconds=4):
        isp = tso.calendar.isp_at(tso.calendar.isp_end(isp))
    return isp


async def run_platform(out: Path, *, devices: int = 200, seed: int = 1,
                       settings: CbpSettings | None = None,
                       say: Callable[[str], None] = print) -> PlatformSummary:
    """Run the whole demo into ``out``; return what it settled."""
    settings = settings or CbpSettings.compressed()
    if devices > 500:  # keep the aggregator's poll load flat as the fleet grows
        settings = replace(settings, timing=replace(
            settings.timing, device_poll=timedelta(seconds=8)))
    began = time.monotonic()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - began:6.1f}s] {text}")

    total = devices + 1  # one more device whose owner gives no consent
    pki, identities = _mint(out, total)
    step(f"PKI: CA, TSO, aggregator and {total} device certificates in {out / 'certs'}")
    (out / "keys").mkdir(parents=True, exist_ok=True)
    key_file = out / "keys" / "vault-master.key"
    key_file.write_text(new_key_line(1))
    key_file.chmod(0o600)
    (out / "aggregator").mkdir(parents=True, exist_ok=True)
    # Bulk onboarding: WAL without an fsync per record, as the VTN storage does.
    vault = IdentityVault(out / "aggregator" / "vault.db", FileKeyProvider(key_file),
                          synchronous="normal")
    tso_cfg = _vtn_config(out, "tso", pki, "tso", timedelta(seconds=1),
                          max_body_bytes=32 * 1024 * 1024)
    agg_cfg = _vtn_config(out, "aggregator", pki, "aggregator-vtn", settings.timing.device_poll,
                          auto_subscribe_reports=("TELEMETRY_USAGE",))
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
         f" 1 prosumer without consent")
    fleet_toml = out / "devices.toml"
    fleet_toml.write_text(demo_fleet_toml(
        url=agg_url, ca=pki["ca"][0].resolve(), certs=(out / "certs" / "devices").resolve(),
        names=tuple(i.name for i in identities), seed=seed,
        outbox=(out / "devices-outbox.db").resolve(),
        device_poll=settings.timing.device_poll, telemetry_batch=settings.timing.telemetry_batch))
    fleet = await FleetProcess.start(fleet_toml, out / "devices.log")
    try:
        # registration runs at ~15 devices/s on a loaded 2-core machine: scale the patience
        done = await fleet.wait_for("registered", _STEP_TIMEOUT_S + 0.2 * total)
        registered, refused = int(str(done["registered"])), int(str(done["refused"]))
        step(f"registration: {registered} device VENs (own process, mutual TLS) registered with "
             f"the aggregator in {done['seconds']} s; {refused} refused (no consent)")
        ven_id = await aggregator.connect()
        step(f"pool registration: aggregator {ven_id} registered "
             f"{len(tso.devices(ven_id, settings.pool_id))} pseudonymous devices at the TSO")
        await fleet.wait_for("running", _STEP_TIMEOUT_S)
        summary = await _market(tso, aggregator, settings, step)
        elapsed = time.monotonic() - began
        await aggregator.close()
    finally:
        await fleet.stop()
        await agg_runner.cleanup()
        await tso_runner.cleanup()
    statement, prosumers, activation, offer_mw, (dispatch_s, acked_s) = summary
    audit = audit_run(out, vault.identity_values())
    vault.close()
    write_report(out, tso=tso, aggregator=aggregator, activation=activation,
                 prosumers=prosumers, audit=audit)
    step(f"privacy audit: {len(audit.files)} captured messages, "
         f"{'PASSED' if audit.passed else 'FAILED'}")
    return PlatformSummary(out_dir=out, devices=devices, registered=registered,
                           refused=refused, offer_mw=offer_mw, statement=statement,
                           prosumers=prosumers, audit=audit, elapsed_s=elapsed,
                           activation_to_dispatched_s=dispatch_s, activation_to_acked_s=acked_s,
                           activation=activation,
                           tso_db=out / "tso" / "tso.db")


async def _market(tso: TsoNode, aggregator: AggregatorNode, settings: CbpSettings,
                  step: Callable[[str], None],
                  ) -> tuple[TsoStatement, ProsumerStatement, Activation, Decimal,
                             tuple[float, float]]:
    book = aggregator.book
    need = max(1, int(len(book.registered()) * 0.95))
    await _until(lambda: len(book.outlooks) >= need, "the devices' first telemetry batch")
    isp = _target_isp(tso, settings, datetime.now(UTC))
    offer = aggregator.build_offer(isp)
    if offer is None:
        raise RuntimeError(f"the pool's flex ({book.flex_mw()} MW) is under the minimum offer")
    outcome = await aggregator.send_offer(offer)
    verdict = "accepted" if outcome.accepted else outcome.reason
    step(f"bidding: offer {offer.offer_id} {offer.mw} MW up at {offer.price_eur_per_mwh} EUR/MWh"
         f" (available {offer.available_mw} MW): {verdict}")
    late = replace(offer, offer_id=offer.offer_id + ":late", isp=tso.calendar.isp_at(
        datetime.now(UTC)))
    refused = await aggregator.send_offer(late)
    step(f"bidding: a late offer for the running ISP -> {refused.reason or 'accepted?!'}")
    closure = tso.calendar.isp_start(isp) - settings.rules.gate_closure
    await _until(lambda: datetime.now(UTC) >= closure, "gate closure", every=0.2)
    awards = tso.award(isp)
    if not awards:
        raise RuntimeError("the TSO awarded nothing")
    samples = settings.rules.samples_per_isp
    activation = await tso.activate(awards[0], start=tso.calendar.isp_start(isp),
                                    setpoints_mw=ramp_profile(awards[0].mw, samples))
    step(f"operation: award {awards[0].mw} MW at {awards[0].clearing_price_eur_per_mwh} EUR/MWh;"
         f" LOAD_DISPATCH {activation.event_id} published ({samples} setpoints)")
    await _until(lambda: activation.acks != [], "the aggregator's acknowledgement")
    await _until(lambda: (aggregator.activations.get(activation.event_id) is not None
                          and aggregator.activations[activation.event_id].dispatched_at
                          is not None), "dispatch to the devices")
    dispatched = aggregator.activations[activation.event_id]
    assert dispatched.dispatched_at is not None
    dispatch_s = (dispatched.dispatched_at - activation.sent_at).total_seconds()
    step(f"operation: ack optIn after {activation.acks[0].delay.total_seconds():.2f} s "
         f"({'late' if activation.late else 'on time'}); "
         f"{len(dispatched.device_events)} devices dispatched after {dispatch_s:.2f} s")
    await _until(lambda: dispatched.all_acked_at is not None,
                 "every device's acknowledgement of its setpoints")
    assert dispatched.all_acked_at is not None
    acked_s = (dispatched.all_acked_at - activation.sent_at).total_seconds()
    step(f"operation: all {len(dispatched.acked)} device setpoint events acknowledged "
         f"{acked_s:.2f} s after the TSO's activation")
    end = tso.window(activation)[1]

    def done() -> bool:
        return (aggregator.closed_until is not None and aggregator.closed_until >= end
                and activation.event_id in aggregator.msp_sent)

    await _until(done, "the activation's telemetry and metering", every=0.5)
    await aggregator.flush_pool_rows()
    assert aggregator.upstream is not None
    await aggregator.upstream.flush_reports()
    step(f"validation: {len(aggregator.pool_rows)} pool rows, {len(aggregator.baselines)} "
         f"baselines, metering of {aggregator.msp_sent[activation.event_id]} activated devices")
    statement = await tso.settle(activation.event_id)
    month = month_of(activation.setpoints[0].at, settings.rules.timezone)
    prosumers = aggregator.ledger.statement(month)
    step(f"settlement: requested {statement.requested_mwh} MWh, delivered "
         f"{statement.delivered_mwh} MWh, ratio {statement.ratio}, payment "
         f"EUR {statement.payment_eur}, penalty EUR {statement.penalty_eur}; "
         f"prosumers EUR {prosumers.total_eur}")
    return statement, prosumers, activation, offer.mw, (dispatch_s, acked_s)
