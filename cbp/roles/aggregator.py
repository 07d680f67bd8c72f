"""The aggregator node: a VTN for its devices and a VEN towards the TSO, in one process.

Downstream (``app``, a :func:`vtn.app.create_app` VTN): a device VEN may register only if its
certificate fingerprint was onboarded and its owner's consent is live in the identity vault
(:meth:`AggregatorNode._admit`, refused with 463 otherwise); its TELEMETRY_USAGE batches feed the
:class:`~cbp.roles.devicebook.DeviceBook`.

Upstream (``upstream``, a :class:`ven.VenClient`): every message is encoded by a
:class:`~cbp.roles.outbound.FilteredCodec`, so it passes the :class:`privacy.OutboundFilter` (an
allow-list of what each element may hold) or is not sent. The flows, in order
(docs/architecture.md#the-cbp-profile-on-openadr):
- pool registration: METADATA with one description per device (pseudonym, class, power bucket,
  zone, each combination generalised until k devices share it: :func:`privacy.generalise`) and
  the GCP pseudonyms once each on the pool row, both lists shuffled per message; plus the
  x-BASELINE and x-FLEX_OFFER METADATA. It is sent again at every month boundary (in
  ``PrivacyConfig.month_timezone``, Europe/Amsterdam by default) whether or not the devices
  changed, so every pseudonym rotates; the TSO takes it in place of the previous one;
- bidding: :meth:`offer` builds an offer from the reported flex of the devices whose owner
  consents to the flexibility service (safety margin and rounding in
  :func:`cbp.pool.build_offer`) and learns the TSO's verdict;
- operation: a LOAD_DISPATCH event is acknowledged (optIn) by the client at once and handed to
  :class:`~cbp.roles.operation.Operation` (dispatch over devices, modification, cancel, re-dispatch
  when devices drop out, release); a stale copy of an older event version is refused with 450
  (:class:`~cbp.roles.upstream.UpstreamClient`);
- the link: :class:`~cbp.roles.tsolink.LinkWatch` tracks contact with the TSO; while the link is
  down pool rows are held in a :class:`~cbp.roles.tsolink.PoolRowBuffer` and go out marked late
  (``oadrDataQuality`` ``x-late``) once it is back; after ``link_release`` of silence every running
  activation is released (pool to 0);
- validation: pool rows (MW) per sample, batched; the +1/+5/+10 forecasts every baseline interval;
  per-device rows (shares of rated power, :func:`privacy.device_share`, under pseudonyms) of
  activated devices only, over the MSP window, in chunks whose membership and order are shuffled
  per message;
- prosumer settlement: per device, delivered kWh (natural - measured, 0.1 kW rows, during the
  activation plus the tracking lag) times the tariff, accrued exactly in a PayoutLedger;
- TSO settlement: each x-SETTLEMENT statement the TSO sends is kept in :attr:`statements` by
  the TSO's eventID.

"Now" is the injected ``clock`` everywhere (sample closing, link watch, stamps); only
:meth:`AggregatorNode._tick_forever` sleeps, and tests drive :meth:`tick` themselves instead.

Consent (:meth:`AggregatorNode._consenting`, the one place it is read for sending): onboarding
and dispatch need the flexibility-service consent, per-device rows the balancing-validation one
(``CbpSettings.msp_purpose``); each is asked at every message or activation, so a withdrawal
counts from the next one on.

Randomness: one injected ``random.Random`` (``order``) draws every shuffle and every dispatch
tie-break key, so tests can replay a run; by default a ``random.SystemRandom`` (the operating
system's CSPRNG): the TSO sees every shuffle, and enough outputs of a seeded Mersenne Twister give
away its state, hence the next shuffles and tie-break keys, and with them the order they hide.

Invariants: samples are closed in time order, once; nothing is sent in a new month before the
pool is registered under that month's pseudonyms; nothing of the vault is ever passed to the
upstream client.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID

from aiohttp import web

from cbp.market import IspCalendar, IspRef, Offer, PayoutLedger, snap
from cbp.pool import MspData, MspRecorder, PoolRow, build_offer
from privacy import (
    GCP_PURPOSE,
    ONBOARDING_PURPOSE,
    ActivationWindow,
    IdentityVault,
    OutboundFilter,
    PrivacyConfig,
    device_share,
    generalise,
    month_of,
)
from schemas import (
    Event,
    EventResponse,
    OptType,
    ReportInterval,
    ReportPayload,
    utc_now,
)
from schemas.logtext import escaped
from ven import (
    Backoff,
    Connection,
    Hooks,
    Outbox,
    TimeSource,
    VenError,
    VenSettings,
    VtnUnavailable,
)
from vtn.app import SERVICES, STORAGE, create_app
from vtn.services import Handlers, ServiceContext
from vtn.settings import VtnConfig
from vtn.storage import VenRegistration

from .device import next_grid
from .devicebook import DeviceBook, DeviceEntry
from .erasure import ErasureDesk, erasure_metadata
from .messages import (
    BASELINE_SUFFIX,
    OFFER_SUFFIX,
    TELEMETRY_SUFFIX,
    PoolDevice,
    baseline_metadata,
    flex_offer_metadata,
    offer_intervals,
    pool_metadata,
    sample_intervals,
)
from .operation import DispatchedActivation, Operation
from .outbound import FilteredCodec, outbound_policy
from .profile import (
    BASELINE_REPORT,
    BASELINE_RIDS,
    CbpSettings,
)
from .retention import RetentionTask, aggregator_rules
from .statement import ReceivedStatement
from .status import AggregatorStatus
from .tsolink import LinkWatch, PoolRowBuffer
from .upstream import UpstreamClient

__all__ = ["AggregatorNode", "DispatchedActivation", "OfferOutcome"]

log = logging.getLogger(__name__)
_REGISTRATION = {"requested_by": "aggregator", "reason": "pool registration at the TSO"}
_MSP_CHUNK = 100  # devices per MSP message: keeps each message well under the body cap
#: attribute positions of (class, power bucket, zone), in the order k gives them up
_GENERALISE_ORDER = (1, 0, 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferOutcome:
    offer: Offer
    accepted: bool
    reason: str = ""


class AggregatorNode:
    """One aggregator with one pool. Serve :attr:`app`; then :meth:`connect` to the TSO."""

    def __init__(self, *, settings: CbpSettings, downstream: VtnConfig, vault: IdentityVault,
                 tso_url: str, upstream_tls: ssl.SSLContext | None, outbox_path: Path,
                 name: str = "aggregator", clock: Callable[[], datetime] = utc_now,
                 privacy: PrivacyConfig | None = None,
                 order: random.Random | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.vault = vault
        self.privacy = privacy or PrivacyConfig()
        self._order = order or random.SystemRandom()
        self.book = DeviceBook(settings.rules, settings.pool)
        self.calendar = IspCalendar(settings.rules)
        self.outbound = OutboundFilter(
            outbound_policy(settings, ven_name=name, k=self.privacy.k_threshold), vault=vault)
        self.windows: list[ActivationWindow] = []
        timing = settings.timing
        self.link = LinkWatch(clock=clock, timeout=timing.link_timeout,
                              release_after=timing.link_release)
        self.codec = FilteredCodec(self.outbound, windows=lambda: tuple(self.windows),
                                   on_decoded=self.link.contact)
        self.app: web.Application = create_app(downstream, handlers=Handlers(
            on_register=self._admit, on_report_data=self._on_device_report,
            on_event_response=self._on_device_ack))
        self.retention = RetentionTask(
            aggregator_rules(privacy or PrivacyConfig(), lambda: self.app[STORAGE]), clock=clock)
        self.app.cleanup_ctx.append(self.retention.lifetime)
        self._tso_url, self._tls, self._outbox_path, self._name = (
            tso_url, upstream_tls, outbox_path, name)
        self.upstream: UpstreamClient | None = None
        self._outbox: Outbox | None = None
        self.requests: dict[str, str] = {}  # reportSpecifierID -> reportRequestID
        self.errors: list[VenError] = []
        self.msp = MspRecorder(settings.pool)
        self.ledger = PayoutLedger(settings.rules)
        self.operation = Operation(settings=settings, book=self.book, msp=self.msp,
                                   windows=self.windows, ctx=lambda: self.ctx, clock=clock,
                                   consenting=lambda d: self._consenting(d, ONBOARDING_PURPOSE),
                                   order=self._order)
        self.pool_rows: list[PoolRow] = []
        self.baselines: list[tuple[datetime, tuple[Decimal, ...]]] = []
        self.msp_sent: dict[str, int] = {}
        self.unsent = PoolRowBuffer()
        self.statements: dict[str, ReceivedStatement] = {}  # TSO eventID -> statement
        self.closed_until: datetime | None = None
        self.erasures = ErasureDesk(self)
        #: the month (YYYY-MM) whose pseudonyms the TSO last registered
        self.registered_month: str | None = None

    @property
    def activations(self) -> dict[str, DispatchedActivation]:
        return self.operation.activations

    @property
    def activated(self) -> asyncio.Event:
        return self.operation.activated

    def status(self) -> AggregatorStatus:
        """What the node has done so far, as a frozen snapshot (:mod:`cbp.roles.status`)."""
        return AggregatorStatus.of(self)

    @property
    def ctx(self) -> ServiceContext:
        return self.app[SERVICES]

    # ------------------------------------------------------------ devices

    def onboard(self, *, ven_id: str, device_uuid: UUID, prosumer_id: str, device_class: str,
                power_bucket: str, rated_kw: Decimal) -> None:
        """Record which certificate belongs to a device already in the vault (with consent)."""
        self.book.add(DeviceEntry(ven_id=ven_id, device_uuid=device_uuid, prosumer_id=prosumer_id,
                                  device_class=device_class, power_bucket=power_bucket,
                                  rated_kw=rated_kw))

    def _consenting(self, devices: Collection[UUID], purpose: str) -> frozenset[UUID]:
        """The devices whose owner consents to ``purpose`` now. The one place consent is read:
        asked before every message or activation that would use a device's data."""
        kept = self.vault.consents.consenting(devices, purpose)
        for device in devices:
            if device not in kept:
                log.info("left out (%s): device %s: no live consent", purpose, device)
        return kept

    def _admit(self, candidate: VenRegistration) -> bool:
        entry = self.book.by_ven.get(candidate.fingerprint)
        if entry is None:
            log.warning("device registration refused: venID %s is not onboarded (an unknown "
                        "certificate, or its owner never consented)", candidate.fingerprint)
            return False
        if not self._consenting((entry.device_uuid,), ONBOARDING_PURPOSE):
            log.warning("device registration refused: venID %s: its owner's %s consent is not "
                        "live", candidate.fingerprint, ONBOARDING_PURPOSE)
            return False
        entry.registered = True
        return True

    def _on_device_ack(self, ven_id: str, response: EventResponse) -> None:
        self.operation.on_device_ack(response)

    def _on_device_report(self, ven_id: str, report: object) -> None:
        self.book.take_report(ven_id, report, now=self.clock())  # type: ignore[arg-type]

    # ------------------------------------------------------------ the TSO link

    def _upstream_error(self, error: VenError) -> None:
        self.errors.append(error)
        if isinstance(error, VtnUnavailable):
            self.link.failure()

    async def connect(self, *, background: bool = True) -> str:
        """Open the upstream client, register with the TSO, register the pool; start working
        (polling the TSO and the sample clock) unless ``background`` is False, in which case the
        caller polls (``upstream.poll_once``) and calls :meth:`tick` itself."""
        self._outbox = await Outbox.open(self._outbox_path)
        timing = self.settings.timing
        # Retries towards the TSO are capped at link_timeout, so a TSO back after an outage
        # is heard within that (not after a back-off grown past link_release).
        poll = timing.upstream_poll.total_seconds()
        retry = Backoff(base=poll, cap=max(poll, timing.link_timeout.total_seconds()))
        self.upstream = UpstreamClient(VenSettings(
            ven_name=self._name,
            connection=Connection(vtn_url=self._tso_url, ssl_context=self._tls, codec=self.codec,
                                  poll_interval=poll, backoff=retry),
            hooks=Hooks(on_event=self._on_tso_event, on_error=self._upstream_error),
            time=TimeSource(clock=self.clock)),
            outbox=self._outbox, stale=self.operation.stale, on_statement=self._on_statement)
        await self.upstream.start()
        registration = await self.upstream.register()
        await self.register_pool()
        if background:
            self.upstream.start_polling()
            self.upstream.spawn(self._tick_forever())
        return registration.ven_id

    def _on_statement(self, statement: ReceivedStatement) -> None:
        self.statements[statement.event_id] = statement
        log.info("x-SETTLEMENT for %s: payment EUR %s, penalty EUR %s", escaped(statement.event_id),
                 statement.payment_eur, statement.penalty_eur)

    def _month(self, now: datetime) -> str:
        return month_of(now, self.privacy.month_timezone)

    def _pool_devices(self, month: str) -> tuple[tuple[PoolDevice, ...], tuple[str, ...]]:
        """The devices to register (consenting now, attributes generalised to k, shuffled) and
        their GCP pseudonyms (once each, shuffled), under ``month``'s pseudonyms."""
        s = self.settings
        entries = self.book.registered()
        consenting = self._consenting(tuple(e.device_uuid for e in entries), ONBOARDING_PURPOSE)
        for entry in entries:
            entry.registered = entry.device_uuid in consenting
        kept = [e for e in entries if e.registered]
        shown = generalise({e.device_uuid: (e.device_class, e.power_bucket, s.zone) for e in kept},
                           k=self.privacy.k_threshold, order=_GENERALISE_ORDER)
        devices = []
        for entry in kept:
            entry.pseudonym = self.vault.pseudonyms.of(entry.device_uuid, s.tso_recipient,
                                                       s.msp_purpose, month, **_REGISTRATION)
            entry.gcp_pseudonym = self.vault.pseudonyms.of(entry.device_uuid, s.tso_recipient,
                                                           GCP_PURPOSE, month, **_REGISTRATION)
            device_class, bucket, zone = shown[entry.device_uuid]
            devices.append(PoolDevice(pseudonym=entry.pseudonym, device_class=device_class,
                                      power_bucket=bucket, zone=zone))
        gcps = sorted({e.gcp_pseudonym for e in kept})
        self._order.shuffle(devices)
        self._order.shuffle(gcps)
        return tuple(devices), tuple(gcps)

    async def register_pool(self) -> int:
        """(Re-)send the pool registration under this month's pseudonyms; returns how many
        devices it lists."""
        assert self.upstream is not None
        now = self.clock()
        s = self.settings
        month = self._month(now)
        devices, gcps = self._pool_devices(month)
        reports = (
            pool_metadata(s.pool_id, devices, gcps=gcps, created=now,
                          sample_period=s.rules.sample_period, market_context=s.market_context),
            baseline_metadata(s.pool_id, created=now, interval=s.pool.baseline_interval),
            flex_offer_metadata(s.pool_id, created=now),
            erasure_metadata(s.pool_id, created=now),
        )
        accepted = await self.upstream.register_metadata(reports)
        self.requests = {r.report_specifier.report_specifier_id: r.report_request_id
                         for r in accepted}
        self.registered_month = month
        return len(devices)

    def _request(self, suffix: str) -> tuple[str, str]:
        specifier = self.settings.pool_id + suffix
        return self.requests[specifier], specifier

    # ------------------------------------------------------------ bidding

    def build_offer(self, isp: IspRef) -> Offer | None:
        s = self.settings
        assert self.upstream is not None and self.upstream.registration is not None
        serving = self._consenting(tuple(self.book.by_uuid), ONBOARDING_PURPOSE)
        return build_offer(pool_id=s.pool_id, aggregator_id=self.upstream.registration.ven_id,
                           isp=isp, forecast_mw=self.book.flex_mw(serving),
                           price_eur_per_mwh=s.bid_price_eur_per_mwh, rules=s.rules,
                           config=s.pool)

    async def send_offer(self, offer: Offer) -> OfferOutcome:
        """Send one x-FLEX_OFFER and wait for the TSO's verdict (454 + reason when refused)."""
        assert self.upstream is not None
        request_id, specifier = self._request(OFFER_SUFFIX)
        start = self.calendar.isp_start(offer.isp)
        length = self.settings.rules.isp_length
        seen = len(self.errors)
        await self.upstream.send_report(
            request_id, offer_intervals(offer, isp_start=start, isp_length=length),
            dtstart=start, duration=length, report_specifier_id=specifier)
        await self.upstream.flush_reports()
        refusals = [str(e) for e in self.errors[seen:] if offer.offer_id in str(e)]
        return OfferOutcome(offer=offer, accepted=not refusals,
                            reason=refusals[0] if refusals else "")

    # ------------------------------------------------------------ operation

    def _on_tso_event(self, event: Event) -> OptType:
        assert self.upstream is not None
        self.upstream.spawn(self.operation.handle(event))
        return OptType.OPT_IN

    # ------------------------------------------------------------ validation data

    async def _tick_forever(self) -> None:
        period = self.settings.rules.sample_period
        while True:
            at = next_grid(self.clock(), period)
            await asyncio.sleep(max(0.0, (at - self.clock()).total_seconds()))
            try:
                await self.tick(at)
            except Exception:
                log.exception("aggregator tick at %s failed", at.isoformat())

    async def tick(self, at: datetime) -> None:
        """One sample instant: rotate the pseudonyms at a month boundary, close complete
        samples, watch the link, send what is due."""
        s = self.settings
        if (self.upstream is not None and self.registered_month is not None
                and self._month(self.clock()) != self.registered_month):
            count = await self.register_pool()
            log.info("new month %s: pool re-registered under new pseudonyms (%d devices)",
                     self.registered_month, count)
        for closed in self._close_until(at - s.timing.telemetry_batch - s.timing.telemetry_grace):
            await self.operation.observe(*closed)
        now = self.clock()
        if self.link.release_due(now):
            released = await self.operation.release_all()
            log.warning("no contact with the TSO for %s: %d activation(s) released",
                        self.link.silence(now), released)
        if snap(at, s.pool.baseline_interval) == at:
            await self._send_baseline(at)
        if (snap(at, s.timing.telemetry_batch) == at
                or (self.unsent.late and not self.link.down(now))):
            await self.flush_pool_rows()
        if self.closed_until is not None:
            # a window is complete once its last sample is closed (recorded), not one before
            for activation_id in self.msp.ready(self.closed_until):
                await self._send_msp(self.msp.take(activation_id))
        await self.erasures.deliver_pending()  # unlinks at once, delivers when the TSO is up

    def _close_until(self, limit: datetime) -> list[tuple[datetime, dict[UUID, Decimal]]]:
        """Close every sample up to ``limit``; the device rows of each, in time order."""
        period = self.settings.rules.sample_period
        pending = self.book.pending_before(limit)
        closed: list[tuple[datetime, dict[UUID, Decimal]]] = []
        if self.closed_until is None:
            if not pending:
                return closed
            self.closed_until = pending[0] - period
        while self.closed_until + period <= limit:
            at = self.closed_until + period
            row, rows, sample = self.book.close(at)
            self.closed_until = at
            self.msp.record(at, rows)
            if row.reporting:
                self.pool_rows.append(row)
                self.unsent.add(row)
            self._accrue(at, rows, sample.natural)
            closed.append((at, rows))
        return closed

    def _accrue(self, at: datetime, rows: dict[UUID, Decimal], natural: dict[UUID, float]) -> None:
        rules = self.settings.rules
        lag = rules.sample_period * rules.tracking_lag_samples
        hours = Decimal(int(rules.sample_period.total_seconds())) / 3600
        step = rules.device_resolution_kw
        for activation in self.activations.values():
            first, last = activation.accrual
            if not first <= at <= last + lag:
                continue
            for device in activation.device_events:
                measured, free = rows.get(device), natural.get(device)
                if measured is None or free is None:
                    continue
                base = (Decimal(repr(free)) / step).quantize(Decimal(1)) * step
                delivered = max(Decimal(0), base - measured)
                entry = self.book.by_uuid[device]
                self.ledger.accrue(entry.prosumer_id, at, delivered * hours,
                                   self.settings.tariff_eur_per_kwh)

    async def flush_pool_rows(self) -> int:
        """Send the closed pool rows not sent yet (one TELEMETRY_USAGE report); while the TSO
        link is down, hold them instead (they go out marked late once it is back)."""
        if not self.unsent.rows or self.upstream is None:
            return 0
        if self.link.down(self.clock()):
            self.unsent.hold()
            return 0
        request_id, specifier = self._request(TELEMETRY_SUFFIX)
        intervals = self.unsent.take(self.settings.pool_id, self.settings.rules.sample_period)
        await self.upstream.send_report(request_id, intervals, report_specifier_id=specifier)
        return len(intervals)

    async def _send_baseline(self, at: datetime) -> None:
        if self.upstream is None or not self.book.outlooks:
            return
        s = self.settings
        forecasts = self.book.forecast_mw()
        self.baselines.append((at, forecasts))
        request_id, specifier = self._request(BASELINE_SUFFIX)
        intervals = tuple(
            ReportInterval(dtstart=at + h, duration=s.pool.baseline_interval,
                           payloads=(ReportPayload(r_id=BASELINE_RIDS[i], value=float(mw)),))
            for i, (h, mw) in enumerate(zip(s.pool.forecast_horizons, forecasts, strict=False)))
        await self.upstream.desk.send(request_id, intervals, report_specifier_id=specifier,
                                      report_name=BASELINE_REPORT)

    async def _send_msp(self, data: MspData) -> None:
        """Per-device rows of activated devices, under pseudonyms, inside the MSP window: as
        shares of rated power, in shuffled chunks, only for devices whose owner consents to
        balancing validation when the chunk's message is built."""
        assert self.upstream is not None
        request_id, specifier = self._request(TELEMETRY_SUFFIX)
        devices = list(data.rows)
        self._order.shuffle(devices)
        step = self.outbound.policy.device_step
        sent = 0
        for i in range(0, len(devices), _MSP_CHUNK):
            chunk = devices[i:i + _MSP_CHUNK]
            allowed = self._consenting(chunk, self.settings.msp_purpose)
            by_time: dict[datetime, list[tuple[str, float]]] = {}
            for device in (d for d in chunk if d in allowed):
                entry = self.book.by_uuid[device]
                for sample in data.rows[device]:
                    share = device_share(sample.value, entry.rated_kw, step=step)
                    by_time.setdefault(sample.at, []).append((entry.pseudonym, float(share)))
            if by_time:
                await self.upstream.send_report(
                    request_id, sample_intervals(sorted(by_time.items()),
                                                 self.settings.rules.sample_period),
                    report_specifier_id=specifier)
                sent += len(allowed)
        self.msp_sent[data.activation_id] = sent

    async def scrub_stores(self) -> None:
        """After an erasure: no deleted row left readable in the VTN database's WAL or the
        outbox's (their connections zero deleted content; this truncates the WALs)."""
        done = await self.app[STORAGE].scrub()
        if self._outbox is not None:
            done = await self._outbox.scrub() and done
        if not done:
            log.warning("erasure: old copies of deleted rows stay until the next checkpoint (a "
                        "reader held a WAL) or VACUUM (PostgreSQL)")

    # ------------------------------------------------------------ shutdown

    async def close(self) -> None:
        if self.upstream is not None:
            await self.upstream.close()
        if self._outbox is not None:
            await self._outbox.close()
            self._outbox = None
