"""The device node: a VEN an OEM would embed, and a fleet of simulated ones on one event loop.

A :class:`DeviceNode` is one device VEN towards its aggregator: its own certificate (venID = the
certificate fingerprint), its own keep-alive mutual-TLS connection (:class:`ven.VenClient`), one
TELEMETRY_USAGE METADATA report, and a simulator from :mod:`cbp.devices` standing in for the
hardware. Setpoints arrive as LOAD_DISPATCH events (kW per sample interval); the node opts in and
applies, at every sample instant, the setpoint of the live event interval covering it (cancelled
or dropped events stop applying at once because the client's event set is read each sample).

A :class:`DeviceFleet` runs many nodes in one process: one sample clock, one durable outbox
shared by all (each node keys its own items), and per-node polling. Samples are taken on the
grid of ``MarketRules.sample_period`` (UTC epoch multiples, the same grid the aggregator and the
TSO use) and sent in batches of ``CbpTiming.telemetry_batch``: per sample the measured power
(kW, absent when the device is offline: missing, never fabricated) and the natural power it would
draw without instruction; with the last sample, its upward flex and its natural-consumption
forecast for each configured horizon.

Invariants: a device never reports a sample for an instant it was offline; every task is owned
by the fleet and cancelled on :meth:`DeviceFleet.close`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cbp.devices import Device
from cbp.market import grid_index, snap
from schemas import (
    Codec,
    Event,
    EventStatus,
    ItemBase,
    OptType,
    ReadingType,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportType,
    SamplingRate,
)
from schemas.logtext import escaped
from ven import Connection, Hooks, Outbox, VenClient, VenSettings
from ven.config import VenXmpp
from ven.tls import client_context

from .messages import event_setpoints
from .profile import (
    DEVICE_FLEX_RID,
    DEVICE_FORECAST_RIDS,
    DEVICE_NATURAL_RID,
    DEVICE_POWER_RID,
    CbpSettings,
)

__all__ = ["DeviceFleet", "DeviceIdentity", "DeviceNode", "next_grid", "telemetry_metadata"]

log = logging.getLogger(__name__)
#: slices a sample instant's telemetry is queued in, spread over half a sample period
_FLUSH_SLICES = 8


def next_grid(now: datetime, period: timedelta) -> datetime:
    """The first sample instant strictly after ``now`` on the grid (:func:`cbp.market.snap`'s:
    the nearest point, or the one after it when that is not later than ``now``)."""
    point = snap(now, period)
    return point if point > now else point + period


def telemetry_metadata(settings: CbpSettings) -> tuple[ReportDescription, ...]:
    period = settings.rules.sample_period
    rate = SamplingRate(min_period=period, max_period=period)
    kw = ItemBase.kilowatts()
    rows = [
        ReportDescription(r_id=DEVICE_POWER_RID, report_type=ReportType.USAGE,
                          reading_type=ReadingType.DIRECT_READ, item_base=kw, sampling_rate=rate),
        ReportDescription(r_id=DEVICE_NATURAL_RID, report_type=ReportType.BASELINE,
                          reading_type=ReadingType.ESTIMATED, item_base=kw, sampling_rate=rate),
        ReportDescription(r_id=DEVICE_FLEX_RID, item_base=kw, sampling_rate=rate,
                          report_type=ReportType.UP_REGULATION_CAPACITY_AVAILABLE,
                          reading_type=ReadingType.PROJECTED),
    ]
    rows += [ReportDescription(r_id=rid, report_type=ReportType.BASELINE, item_base=kw,
                               reading_type=ReadingType.PROJECTED, sampling_rate=rate)
             for rid in DEVICE_FORECAST_RIDS[:len(settings.pool.forecast_horizons)]]
    return tuple(rows)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceIdentity:
    """Where a device's certificate lives; its fingerprint is its venID."""

    name: str
    cert: Path
    key: Path
    fingerprint: str


class DeviceNode:
    """One device VEN and its simulator."""

    def __init__(self, identity: DeviceIdentity, sim: Device, client: VenClient,
                 settings: CbpSettings) -> None:
        self.identity = identity
        self.sim = sim
        self.client = client
        self.settings = settings
        self.request_id: str | None = None
        self.batch: list[ReportInterval] = []
        self.events_seen = 0
        self._plans: dict[tuple[str, int], dict[datetime, float]] = {}

    def on_event(self, event: Event) -> OptType:
        self.events_seen += 1
        return OptType.OPT_IN

    def setpoint(self, at: datetime) -> float | None:
        """The kW setpoint of the live event covering ``at``, if any."""
        for event in self.client.events.values():
            if event.descriptor.event_status is EventStatus.CANCELLED:
                continue
            key = (event.event_id, event.modification_number)
            plan = self._plans.get(key)
            if plan is None:
                plan = {s.at: float(s.value)
                        for s in event_setpoints(event, self.settings.rules.sample_period)}
                self._plans = {k: v for k, v in self._plans.items() if k[0] != event.event_id}
                self._plans[key] = plan
            value = plan.get(at)
            if value is not None:
                return value
        return None

    def sample(self, at: datetime) -> None:
        """Step the simulator for the sample at ``at`` and keep its reading for the batch."""
        reading = self.sim.step(at, self.setpoint(at))
        if reading is None:
            return
        period = self.settings.rules.sample_period
        self.batch.append(ReportInterval(dtstart=at, duration=period, payloads=(
            ReportPayload(r_id=DEVICE_POWER_RID, value=round(reading, 3)),
            ReportPayload(r_id=DEVICE_NATURAL_RID, value=round(self.sim.natural_kw(at), 3)))))

    def _outlook(self, at: datetime) -> tuple[ReportPayload, ...]:
        pool = self.settings.pool
        flex = self.sim.available_flex_kw(at, self.settings.rules.isp_length)
        payloads = [ReportPayload(r_id=DEVICE_FLEX_RID, value=round(flex, 3))]
        payloads += [ReportPayload(r_id=rid, value=round(self.sim.forecast_kw(at, at + h), 3))
                     for rid, h in zip(DEVICE_FORECAST_RIDS, pool.forecast_horizons, strict=False)]
        return tuple(payloads)

    async def flush(self) -> bool:
        """Queue the batch as one oadrUpdateReport (durable outbox); False if nothing to send."""
        if not self.batch or self.request_id is None:
            return False
        last = self.batch[-1]
        assert last.dtstart is not None
        intervals = (*self.batch[:-1], ReportInterval(
            dtstart=last.dtstart, duration=last.duration,
            payloads=(*last.payloads, *self._outlook(last.dtstart))))
        self.batch = []
        await self.client.send_report(self.request_id, intervals)
        return True


class DeviceFleet:
    """Many device VENs on one event loop, one sample clock, one shared outbox."""

    def __init__(self, vtn_url: str, ca: Path, settings: CbpSettings, *, outbox_path: Path,
                 register_concurrency: int = 32, xmpp: VenXmpp | None = None) -> None:
        self.vtn_url = vtn_url
        self.xmpp = xmpp  # reach the aggregator through this XMPP server (no polling)
        self.ca = ca
        self.settings = settings
        self.outbox_path = outbox_path
        self.nodes: list[DeviceNode] = []
        self.refused: list[str] = []
        self._outbox: Outbox | None = None
        self._concurrency = register_concurrency
        self._tasks: list[asyncio.Task[None]] = []
        self._deferred: list[tuple[DeviceIdentity, Device]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        # One codec (one compiled XSD set) for every node: the nodes share one event loop and
        # the codec neither signs nor keeps replay state, so sharing is safe.
        self.codec = Codec()

    async def __aenter__(self) -> DeviceFleet:
        self._outbox = await Outbox.open(self.outbox_path)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def add(self, identity: DeviceIdentity, sim: Device) -> DeviceNode:
        """Add a device now: its TLS context and client are built here."""
        assert self._outbox is not None, "use the fleet as an async context manager"
        return self._add(identity, sim, self._tls(identity))

    def add_deferred(self, identity: DeviceIdentity, sim: Device) -> None:
        """Add a device whose TLS context and client are built by :meth:`register_all`, just
        before it registers: a context costs ~2.5 ms of CPU (key, certificate and CA parsed), so
        for thousands of devices this overlaps the registrations in flight instead of delaying
        the first one by seconds."""
        assert self._outbox is not None, "use the fleet as an async context manager"
        self._deferred.append((identity, sim))

    def _tls(self, identity: DeviceIdentity) -> ssl.SSLContext:
        return client_context(cert=identity.cert, key=identity.key, ca=self.ca)

    def _add(self, identity: DeviceIdentity, sim: Device, tls: ssl.SSLContext) -> DeviceNode:
        poll = self.settings.timing.device_poll.total_seconds()
        holder: list[DeviceNode] = []
        link = None if self.xmpp is None else self.xmpp.link(
            fingerprint=identity.fingerprint, ssl_context=tls, codec=self.codec,
            request_timeout_s=30)
        client = VenClient(VenSettings(
            ven_name=identity.name, outbox_key=identity.fingerprint,
            connection=Connection(vtn_url=self.vtn_url, ssl_context=tls, codec=self.codec,
                                  link=link, request_timeout=30, poll_interval=poll),
            hooks=Hooks(on_event=lambda event: holder[0].on_event(event))), outbox=self._outbox)
        if link is not None:
            link.serve(client)
        node = DeviceNode(identity, sim, client, self.settings)
        holder.append(node)
        self.nodes.append(node)
        return node

    async def register_all(self, on_progress: object = None) -> int:
        """Register every node and its telemetry report; nodes the aggregator refuses (no
        consent) are set aside in :attr:`refused`. Returns how many registered."""
        gate = asyncio.Semaphore(self._concurrency)
        metadata = telemetry_metadata(self.settings)
        done = 0
        waiting: list[DeviceNode | tuple[DeviceIdentity, Device]] = [*self.nodes, *self._deferred]
        self._deferred = []

        async def one(item: DeviceNode | tuple[DeviceIdentity, Device]) -> None:
            nonlocal done
            async with gate:
                node = item if isinstance(item, DeviceNode) else self._add(
                    item[0], item[1], self._tls(item[0]))
                await node.client.start()
                try:
                    await node.client.register()
                except Exception as exc:  # refused registrations are expected (no consent)
                    log.warning("device %s (venID %s) not registered: %s", node.identity.name,
                                node.identity.fingerprint, escaped(exc))
                    self.refused.append(node.identity.fingerprint)
                    return
                requests = await node.client.register_reports(metadata)
                node.request_id = requests[0].report_request_id if requests else None
                done += 1
                if callable(on_progress):
                    on_progress(done)

        await asyncio.gather(*(one(n) for n in waiting))
        return done

    @property
    def registered(self) -> tuple[DeviceNode, ...]:
        return tuple(n for n in self.nodes if n.client.registration is not None)

    def start(self) -> None:
        """Start polling (staggered over one poll interval) and the sample clock."""
        nodes = self.registered
        poll = self.settings.timing.device_poll.total_seconds()
        loop = asyncio.get_running_loop()
        for i, node in enumerate(nodes):
            delay = poll * i / max(1, len(nodes))
            loop.call_later(delay, node.client.start_polling)
        self._tasks.append(loop.create_task(self._clock(nodes)))

    async def _clock(self, nodes: Sequence[DeviceNode]) -> None:
        period = self.settings.rules.sample_period
        batch = self.settings.timing.telemetry_batch
        per_batch = max(1, batch // period)
        first = True
        while True:
            at = next_grid(datetime.now(UTC), period)
            await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
            k = grid_index(at, period)
            for node in nodes:
                node.sample(at)
            # Each device sends its batch at its own offset in the batch period, so the
            # aggregator sees a steady trickle instead of every device at once; the first
            # sample goes out from every device at once (spread over half a period below), so
            # the aggregator knows its pool's flex one sample after the fleet starts, not a
            # whole batch later.
            due = [node for i, node in enumerate(nodes)
                   if node.batch and (first or (k + i) % per_batch == 0)]
            first = False
            # Queued off the clock: awaited one by one, a thousand outbox writes (each its own
            # round trip to the outbox's one database thread) outlasted a sample period, and the
            # clock skipped samples, which the aggregator counts missing.
            task = asyncio.get_running_loop().create_task(
                self._flush(due, at, spread=period.total_seconds() / 2))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self, nodes: Sequence[DeviceNode], at: datetime, *, spread: float) -> None:
        """Queue the batches of ``nodes`` in slices over ``spread`` seconds: all at once, 2,000
        devices' requests outran the aggregator's 30-s answer deadline under load and were sent
        again (thousands of timeouts and 503s), a collapse of repeated work."""
        slices = min(len(nodes), _FLUSH_SLICES)
        failed: list[BaseException] = []
        for j in range(slices):
            if j:
                await asyncio.sleep(spread / slices)
            part = nodes[j::slices]
            results = await asyncio.gather(*(n.flush() for n in part), return_exceptions=True)
            failed += [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.error("telemetry of %d device(s) at %s not queued: %s", len(failed),
                      at.isoformat(), failed[0])

    async def close(self) -> None:
        tasks = [*self._tasks, *self._flushes]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._flushes.clear()
        await asyncio.gather(*(n.client.close() for n in self.nodes), return_exceptions=True)
        if self._outbox is not None:
            await self._outbox.close()
            self._outbox = None
