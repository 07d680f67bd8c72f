"""The CBP demo: a TSO, an aggregator and N simulated devices through every flow, on loopback.

Each node is a real aiohttp server or client on 127.0.0.1 (ephemeral ports) over mutual TLS with
its own certificate, on its own SQLite files under ``OUT``; the devices share one event loop and
one outbox (a "device fleet") but each has its own identity and keep-alive connection. Timing is
the compressed timing (:meth:`cbp.roles.CbpSettings.compressed`): one-minute ISPs.

Flows, in order: onboarding with consent (one extra device without consent is refused),
registration of the pool with the TSO, an offer for the next open ISP (plus a late one the TSO
refuses with its reason), award and activation (LOAD_DISPATCH, MW per 4-s sample), dispatch to
devices (kW), telemetry, baselines and per-device metering, TSO validation and settlement,
prosumer payouts; then the results folder and the privacy audit of the captured link.
The nodes up to the registered pool come from :func:`cbp.demo.nodes.start_nodes` (shared with
``python -m bench cbp``); :func:`bid_and_activate` runs bidding and operation up to every
device's acknowledgement. Nothing sleeps to synchronise: every step awaits a condition under
a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cbp.market import IspRef, ProsumerStatement, TsoStatement
from cbp.pool import offer_id_for
from cbp.roles import CbpSettings, DispatchedActivation, TsoNode
from cbp.roles.tso import Activation, ramp_setpoints
from privacy import AuditResult, audit_run, month_of

from .nodes import STEP_TIMEOUT_S, Nodes, demo_settings, start_nodes, stepper
from .results import write_results

__all__ = ["Operated", "PlatformSummary", "bid_and_activate", "run_platform"]


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
    #: the whole run, from the first step to the privacy audit and the results folder
    elapsed_s: float
    activation_to_dispatched_s: float
    #: from the TSO's activation to every device's oadrCreatedEvent for its setpoints
    activation_to_acked_s: float
    activation: Activation
    tso_db: Path


async def _until(check: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT_S,
                 every: float = 0.1, seen: Callable[[], str] | None = None) -> None:
    """Wait for a condition other tasks make true; a timeout names what never happened and,
    with ``seen``, how far it got."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(every)
    except TimeoutError:
        got = f"; {seen()}" if seen is not None else ""
        raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s{got}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Operated:
    """An activation as far as the devices: when it was dispatched and acknowledged."""

    activation: Activation
    dispatched: DispatchedActivation
    offer_mw: Decimal
    #: from the TSO's activation to the aggregator's dispatch to its devices
    dispatch_s: float
    #: from the TSO's activation to every dispatched device's oadrCreatedEvent
    acked_s: float


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
    settings = demo_settings(devices, settings)
    began = time.monotonic()
    step = stepper(say)
    step(f"market: one-minute ISPs, the grid shifted {settings.rules.isp_phase.seconds} s past "
         f"the minute so that a gate closure follows the pool's expected readiness")
    async with start_nodes(out, devices=devices, seed=seed, settings=settings,
                           step=step) as nodes:
        operated = await bid_and_activate(nodes)
        statement, prosumers = await _settle(nodes, operated)
    audit = audit_run(out, detector=nodes.aggregator.outbound.current_detector())
    nodes.vault.close()
    write_results(out, tso=nodes.tso, aggregator=nodes.aggregator,
                  activation=operated.activation, prosumers=prosumers, audit=audit)
    step(f"privacy audit: {len(audit.files)} captured messages, "
         f"{'PASSED' if audit.passed else 'FAILED'}")
    elapsed = time.monotonic() - began  # the whole run: nodes stopped, audited, results written
    return PlatformSummary(out_dir=out, devices=devices, registered=nodes.registered,
                           refused=nodes.refused, offer_mw=operated.offer_mw, statement=statement,
                           prosumers=prosumers, audit=audit, elapsed_s=elapsed,
                           activation_to_dispatched_s=operated.dispatch_s,
                           activation_to_acked_s=operated.acked_s,
                           activation=operated.activation, tso_db=out / "tso" / "tso.db")


async def bid_and_activate(nodes: Nodes) -> Operated:
    """Offer the pool's flex for the next open ISP (and a late one the TSO refuses), award and
    activate it at gate closure; return once every dispatched device acknowledged its setpoints."""
    tso, aggregator, settings, step = nodes.tso, nodes.aggregator, nodes.settings, nodes.step
    book = aggregator.book
    need = max(1, int(len(book.registered()) * 0.95))
    await _until(lambda: len(book.outlooks) >= need, "the devices' first telemetry batch",
                 timeout=STEP_TIMEOUT_S + 0.1 * need,
                 seen=lambda: f"{len(book.outlooks)} of the {need} devices needed sent one")
    isp = _target_isp(tso, settings, datetime.now(UTC))
    offer = aggregator.build_offer(isp)
    if offer is None:
        raise RuntimeError(f"the pool's flex ({book.flex_mw()} MW) is under the minimum offer")
    outcome = await aggregator.send_offer(offer)
    verdict = "accepted" if outcome.accepted else outcome.reason
    step(f"bidding: offer {offer.offer_id} {offer.mw} MW up at {offer.price_eur_per_mwh} EUR/MWh"
         f" (available {offer.available_mw} MW): {verdict}")
    running = tso.calendar.isp_at(datetime.now(UTC))
    late = replace(offer, offer_id=offer_id_for(settings.pool_id, running, offer.direction),
                   isp=running)
    step("bidding: the deliberate test of a late offer, for the running ISP: the TSO must refuse "
         "it (the aggregator's VEN logs the refusal as an error)")
    refused = await aggregator.send_offer(late)
    step(f"bidding: the late offer -> {refused.reason or 'accepted?!'}")
    closure = tso.calendar.isp_start(isp) - settings.rules.gate_closure
    await _until(lambda: datetime.now(UTC) >= closure, "gate closure", every=0.2)
    awards = tso.award(isp)
    if not awards:
        raise RuntimeError("the TSO awarded nothing")
    samples = settings.rules.samples_per_isp
    activation = await tso.activate(awards[0], start=tso.calendar.isp_start(isp),
                                    setpoints_mw=ramp_setpoints(awards[0].mw, samples))
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
                 "every device's acknowledgement of its setpoints",
                 seen=lambda: f"{len(dispatched.acked)} of {len(dispatched.device_events)} "
                 "devices acknowledged")
    assert dispatched.all_acked_at is not None
    acked_s = (dispatched.all_acked_at - activation.sent_at).total_seconds()
    step(f"operation: all {len(dispatched.acked)} device setpoint events acknowledged "
         f"{acked_s:.2f} s after the TSO's activation")
    return Operated(activation=activation, dispatched=dispatched, offer_mw=offer.mw,
                    dispatch_s=dispatch_s, acked_s=acked_s)


async def _settle(nodes: Nodes, operated: Operated) -> tuple[TsoStatement, ProsumerStatement]:
    """Wait for the activation's telemetry and metering to reach the TSO; settle both sides."""
    tso, aggregator, settings, step = nodes.tso, nodes.aggregator, nodes.settings, nodes.step
    activation = operated.activation

    end = tso.window(activation)[1]

    def done() -> bool:
        status = aggregator.status()
        return (status.closed_until is not None and status.closed_until >= end
                and activation.event_id in status.msp_sent)

    def seen() -> str:
        status = aggregator.status()
        return (f"closed until {status.closed_until} of {end}, metering sent for "
                f"{sorted(status.msp_sent)}")

    await _until(done, "the activation's telemetry and metering", every=0.5, seen=seen)
    await aggregator.flush_pool_rows()
    assert aggregator.upstream is not None
    await aggregator.upstream.flush_reports()
    status = aggregator.status()
    step(f"validation: {len(status.pool_rows)} pool rows, {status.baselines} "
         f"baselines, metering of {status.msp_sent[activation.event_id]} activated devices")
    statement = await tso.settle(activation.event_id)
    month = month_of(activation.setpoints[0].at, settings.rules.timezone)
    prosumers = aggregator.ledger.statement(month)
    step(f"settlement: requested {statement.requested_mwh} MWh, delivered "
         f"{statement.delivered_mwh} MWh, ratio {statement.ratio}, payment "
         f"EUR {statement.payment_eur}, penalty EUR {statement.penalty_eur}; "
         f"prosumers EUR {prosumers.total_eur}")
    return statement, prosumers
