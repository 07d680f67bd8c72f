"""The aggregator's operation: from the TSO's LOAD_DISPATCH event to device setpoint events.

docs/architecture.md#the-cbp-profile-on-openadr (activation, dispatch), exceptions:
- activation: a new event version is planned over the reported flex of the devices whose owner
  consents to the flexibility service at that moment (``consenting``, asked at every planning,
  so a withdrawal counts from the next activation or re-dispatch on) with ties broken under a
  key drawn from ``order`` once per activation (:class:`cbp.pool.Allocator`, one kW
  consumption target per device and sample) and published as one LOAD_DISPATCH event per
  device on the aggregator's own VTN;
- modification (modificationNumber rises): the device events are cancelled and the new version
  dispatched; cancel (status cancelled): every device event is cancelled, so each device falls
  back to its natural consumption at once: the pool's regulation ramps to 0;
- stale copies: :meth:`Operation.stale` says whether an event version is older than one already
  handled (the upstream client refuses such a message with 450, and nothing here changes);
- devices dropping out: :meth:`Operation.observe` counts each dispatched device's missed samples
  (the counting is :meth:`cbp.pool.Allocator.observe`; a device that already reported a later
  sample has not missed it); at ``missed_samples_to_drop`` (3) the device is lost and the rest
  of the activation is re-dispatched over the live devices only;
- link loss: :meth:`Operation.release_all` cancels the device events of every running
  activation (called by the aggregator after ``CbpTiming.link_release`` without the TSO).

Invariants: device event IDs are ``<TSO eventID>-<version>-<n>``, versions rising per activation,
so a device never sees an ID twice; a lost device gets no new setpoint; the highest
modificationNumber handled per TSO eventID is remembered even after the TSO stops listing it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from cbp.market import Sample
from cbp.pool import Allocator, FlexState, MspRecorder
from privacy import ActivationWindow
from schemas import Event, EventResponse, EventStatus, Target
from schemas.logtext import escaped
from vtn.services import ServiceContext
from vtn.services.events import cancel_events, publish_events

from .devicebook import DeviceBook
from .messages import activation_event, event_setpoints
from .profile import CbpSettings

__all__ = ["DispatchedActivation", "Operation"]

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class DispatchedActivation:
    event_id: str
    setpoints: tuple[Sample, ...]
    device_events: dict[UUID, str] = field(default_factory=dict)
    received_at: datetime
    dispatched_at: datetime | None = None
    #: the dispatched devices that acknowledged the event they were last sent (a re-dispatch
    #: sends new events, so it starts the count again), and when the last of them did
    acked: set[UUID] = field(default_factory=set)
    all_acked_at: datetime | None = None
    cancelled: bool = False
    #: set when the TSO link was silent too long and the device events were released
    released_at: datetime | None = None
    #: devices declared lost (missed samples) and how often the rest was re-dispatched
    lost: set[UUID] = field(default_factory=set)
    redispatches: int = 0
    version: int = 0
    watch: Allocator | None = None
    #: the allocator's tie-break key: drawn per activation, kept over its versions
    tie_key: bytes = b""

    @property
    def accrual(self) -> tuple[datetime, datetime]:
        return self.setpoints[0].at, self.setpoints[-1].at

    @property
    def live(self) -> bool:
        return not self.cancelled and self.released_at is None


class Operation:
    """Activations of one aggregator, published on its downstream VTN (``ctx``)."""

    def __init__(self, *, settings: CbpSettings, book: DeviceBook, msp: MspRecorder,
                 windows: list[ActivationWindow], ctx: Callable[[], ServiceContext],
                 clock: Callable[[], datetime],
                 consenting: Callable[[Collection[UUID]], frozenset[UUID]],
                 order: random.Random) -> None:
        self.settings = settings
        self._consenting = consenting
        self._order = order
        self.book = book
        self.msp = msp
        self.windows = windows
        self._ctx = ctx
        self._clock = clock
        self.activations: dict[str, DispatchedActivation] = {}
        self.versions: dict[str, int] = {}  # TSO eventID -> highest modificationNumber handled
        #: set after each dispatched activation, each handled event version, each re-dispatch
        self.activated = asyncio.Event()
        self.handled = asyncio.Event()
        self.redispatched = asyncio.Event()

    # ------------------------------------------------------------ TSO events

    def stale(self, event: Event) -> bool:
        """An older version of an event already handled (profile 8.2: out of sequence)."""
        known = self.versions.get(event.event_id)
        return known is not None and event.modification_number < known

    async def handle(self, event: Event) -> None:
        """A new version of a TSO event: dispatch, re-dispatch or cancel."""
        self.versions[event.event_id] = max(event.modification_number,
                                            self.versions.get(event.event_id, 0))
        try:
            await self._handle(event)
        finally:
            self.handled.set()

    async def _handle(self, event: Event) -> None:
        if event.descriptor.event_status is EventStatus.CANCELLED:
            await self.cancel(event.event_id)
            return
        setpoints = event_setpoints(event, self.settings.rules.sample_period)
        if not setpoints:
            return
        previous = self.activations.get(event.event_id)
        if previous is not None:
            await self.cancel(event.event_id)
        activation = DispatchedActivation(
            event_id=event.event_id, setpoints=setpoints, received_at=self._clock(),
            version=previous.version + 1 if previous is not None else 0,
            watch=Allocator(self.settings.pool),
            tie_key=previous.tie_key if previous is not None else self._order.randbytes(16))
        self.activations[event.event_id] = activation
        if previous is None:
            self._open_window(activation)
        await self._publish(activation, activation.setpoints)
        activation.dispatched_at = self._clock()
        if len(activation.acked) >= len(activation.device_events):
            activation.all_acked_at = activation.dispatched_at
        self.activated.set()

    def _open_window(self, activation: DispatchedActivation) -> None:
        rules, pool = self.settings.rules, self.settings.pool
        first, last = activation.accrual
        lag = rules.sample_period * rules.tracking_lag_samples
        self.msp.begin(activation.event_id, first)
        self.msp.end(activation.event_id, last + lag)
        self.windows.append(ActivationWindow(start=first - pool.msp_before,
                                             end=last + lag + pool.msp_after))

    async def cancel(self, event_id: str) -> None:
        activation = self.activations.get(event_id)
        if activation is None:
            return
        activation.cancelled = True
        await self._cancel_devices(activation)

    async def release_all(self) -> int:
        """Release every running activation (TSO link lost); how many were released."""
        released = 0
        for activation in self.activations.values():
            if activation.live and activation.setpoints[-1].at >= self._clock():
                activation.released_at = self._clock()
                await self._cancel_devices(activation)
                released += 1
        return released

    async def _cancel_devices(self, activation: DispatchedActivation) -> None:
        await cancel_events(self._ctx(), tuple(activation.device_events.values()))

    def on_device_ack(self, response: EventResponse) -> None:
        """Note a device's oadrCreatedEvent; stamp the activation once every device acked."""
        for activation in self.activations.values():
            device = next((d for d, e in activation.device_events.items()
                           if e == response.event_id), None)
            if device is not None:
                activation.acked.add(device)
                if (activation.dispatched_at is not None and activation.all_acked_at is None
                        and len(activation.acked) >= len(activation.device_events)):
                    activation.all_acked_at = self._clock()
                return

    # ------------------------------------------------------------ devices dropping out

    async def observe(self, at: datetime, rows: Mapping[UUID, Decimal]) -> None:
        """The closed sample ``at``: count misses of dispatched devices, re-dispatch if lost."""
        for activation in self.activations.values():
            first, last = activation.accrual
            if not activation.live or activation.watch is None or not first <= at <= last:
                continue
            watch = activation.watch
            # a device that already reported a later sample is alive: its row for ``at`` came
            # late (a busy aggregator) or not at all, but it has not dropped out
            watch.observe(at, {d: (None if rows.get(d) is None
                                   and not self.book.heard_after(d, at) else 0.0)
                               for d in activation.device_events})
            newly = watch.lost - activation.lost
            if not newly:
                continue
            activation.lost |= newly
            rest = tuple(s for s in activation.setpoints if s.at > at)
            log.warning("activation %s: %d device(s) lost at %s; re-dispatching %d samples",
                        escaped(activation.event_id), len(newly), at.isoformat(), len(rest))
            if rest:
                await self._cancel_devices(activation)
                activation.version += 1
                activation.redispatches += 1
                await self._publish(activation, rest)
                self.redispatched.set()

    # ------------------------------------------------------------ planning and publishing

    def _plan(self, setpoints: Sequence[Sample], flex: Mapping[UUID, FlexState],
              tie_key: bytes) -> dict[UUID, list[float]]:
        allocator = Allocator(self.settings.pool, tie_key=tie_key)
        plan: dict[UUID, list[float]] = {}
        for i, s in enumerate(setpoints):
            step = allocator.allocate(s.at, float(s.value), flex)
            for device, target in step.setpoints_kw.items():
                row = plan.setdefault(device, [flex[device].natural_kw] * len(setpoints))
                row[i] = max(0.0, round(target, 3))
        return plan

    async def _publish(self, activation: DispatchedActivation,
                       setpoints: Sequence[Sample]) -> None:
        rules = self.settings.rules
        flex = {d: s for d, s in self.book.flex().items() if d not in activation.lost}
        allowed = self._consenting(tuple(flex))
        plan = self._plan(setpoints, {d: s for d, s in flex.items() if d in allowed},
                          activation.tie_key)
        self.msp.mark_activated(activation.event_id, plan)
        created = self._clock()
        activation.device_events = {}
        activation.acked = set()
        events = []
        for n, (device, values) in enumerate(sorted(plan.items())):
            entry = self.book.by_uuid[device]
            event_id = f"{activation.event_id}-{activation.version}-{n}"
            activation.device_events[device] = event_id
            events.append(activation_event(
                event_id=event_id, start=setpoints[0].at, period=rules.sample_period,
                values=values, target=Target(ven_ids=(entry.ven_id,)),
                market_context=self.settings.market_context, created=created, kilowatts=True))
        await publish_events(self._ctx(), events)
        log.info("activation %s (version %d) dispatched over %d devices",
                 escaped(activation.event_id), activation.version, len(plan))

