"""The TSO node: a VTN for aggregators running the CBP market
(docs/architecture.md#the-cbp-profile-on-openadr).

Composes :func:`vtn.app.create_app` with CBP hooks; keeps no state the VTN storage does not
hold except the market's working sets (registry, offer book, activations, acks, statements),
which live on the :class:`TsoNode` instance, never in module globals.

- Registry (:mod:`cbp.roles.registry`): each aggregator's pool registration
  (METADATA_TELEMETRY_USAGE) lists its devices by pseudonym, class, power bucket and zone, and
  the pool's GCP pseudonyms; a new one replaces the last (the aggregator sends one at every month
  boundary, under new pseudonyms). A GCP already registered by another aggregator is refused
  (454) and nothing of that registration is kept. The registry is rebuilt from the VTN storage
  when the app starts, so a restarted TSO knows every pool without the aggregators registering
  again.
- Bidding: an ``x-FLEX_OFFER`` report goes through :class:`cbp.market.OfferBook`; a refused offer
  is answered with 454 and the book's reason (``too_late: ...``) as the description. An offer
  for a pool the aggregator has not registered is refused (``unknown_pool``).
- Restart: only the registry is rebuilt. The offer book, awards, activations, acks, statements,
  ``reports_seen`` and ``late_samples`` live in memory and start empty.
- Operation: :meth:`TsoNode.activate` publishes a LOAD_DISPATCH setpoint event (MW per sample),
  :meth:`modify` and :meth:`cancel` raise its modificationNumber; acks are checked against the
  configured deadline (30 s) on the TSO's injected ``clock`` and recorded late otherwise (the
  activation's ``late`` flag, ``ack_late`` on its statement).
- Late telemetry: pool rows the aggregator could only send after a lost link carry
  ``oadrDataQuality`` ``x-late`` (:mod:`cbp.roles.tsolink`); they are stored like any row (with
  their quality) and their sample instants noted in :attr:`TsoNode.late_samples`.
- Validation and settlement: :meth:`settle` reads the stored pool telemetry and +5-min baseline
  points back from the VTN storage (what the aggregator actually sent) and runs
  :func:`cbp.market.validate_delivery` and :func:`cbp.market.settle_tso`; the statement goes to
  the aggregator as an ``x-SETTLEMENT`` oadrUpdateReport (:mod:`cbp.roles.statement`; the TSO
  offers that report with its own oadrRegisterReport when a pool registers).

Invariants: an activation's setpoints are the ones published; settlement never reads anything
the aggregator did not send over the link.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from cbp.errors import CbpError
from cbp.market import (
    Accepted,
    AckCheck,
    Award,
    Delivery,
    IspCalendar,
    IspRef,
    OfferBook,
    Refused,
    Sample,
    SubmitResult,
    TsoStatement,
    check_ack,
    settle_tso,
    validate_delivery,
)
from privacy import PrivacyConfig
from schemas import (
    EventResponse,
    InvalidData,
    Report,
    ReportRequest,
    ReportSpecifier,
    SpecifierPayload,
    Target,
    utc_now,
)
from schemas.logtext import escaped
from vtn.app import SERVICES, STORAGE, create_app
from vtn.capture import capture_middleware
from vtn.services import Handlers, ServiceContext
from vtn.services.events import cancel_event, get_event, modify_event, publish_event
from vtn.services.offered import live_requests, offer_reports, send_report
from vtn.settings import VtnConfig

from .erasure import ERASURE_REPORT, ErasureIntake
from .messages import OFFER_SUFFIX, PoolDevice, activation_event, event_setpoints, parse_offer
from .profile import BASELINE_RIDS, FLEX_OFFER_REPORT, LATE_QUALITY, CbpSettings
from .registry import PoolRegistry, stored_pool_reports
from .retention import RetentionTask, tso_rules
from .statement import SETTLEMENT_SUFFIX, settlement_metadata, statement_report

__all__ = ["Activation", "OfferRecord", "OfferRefused", "TsoNode", "ramp_setpoints"]

log = logging.getLogger(__name__)


class OfferRefused(CbpError, InvalidData):
    """An x-FLEX_OFFER the offer book refused; the reply's description names the reason. The
    platform's error, and the message layer's InvalidData, so the VEN is answered 454."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferRecord:
    ven_id: str
    received_at: datetime
    result: SubmitResult


@dataclass(slots=True, kw_only=True)
class Activation:
    event_id: str
    ven_id: str
    pool_id: str
    award: Award
    setpoints: tuple[Sample, ...]
    sent_at: datetime
    modification_number: int = 0
    cancelled: bool = False
    acks: list[AckCheck] = field(default_factory=list)
    statement: TsoStatement | None = None
    delivery: Delivery | None = None

    @property
    def late(self) -> bool:
        return any(a.late for a in self.acks)


def ramp_setpoints(mw: Decimal, samples: int, ramp: int = 3) -> tuple[Decimal, ...]:
    """Setpoints (MW) ramping up over ``ramp`` samples, holding, ramping down to zero at the end."""
    steps = max(1, min(ramp, samples // 3))
    shape = []
    for k in range(samples):
        rise = Decimal(min(k + 1, steps)) / steps
        fall = Decimal(min(samples - 1 - k, steps)) / steps
        shape.append((mw * min(rise, fall)).quantize(Decimal("0.001")))
    return tuple(shape)


class TsoNode:
    """The TSO's VTN application and its market state. Serve :attr:`app` over mutual TLS."""

    def __init__(self, config: VtnConfig, settings: CbpSettings, *,
                 capture_dir: Path | None = None, privacy: PrivacyConfig | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.config = config
        self.calendar = IspCalendar(settings.rules)
        self.book = OfferBook(settings.rules)
        self.registry = PoolRegistry()
        self.offers: list[OfferRecord] = []
        self.activations: dict[str, Activation] = {}
        self.reports_seen: dict[str, int] = {}
        self.late_samples: dict[str, set[datetime]] = {}  # ven -> pool-row instants sent late
        self.erasures = ErasureIntake(self)
        self.app: web.Application = create_app(config, handlers=Handlers(
            report_subscriptions=self._subscriptions, on_report_data=self._on_report,
            on_event_response=self._on_ack), clock=clock)
        self.app.on_startup.append(self._restore)  # after create_app opened the storage
        if capture_dir is not None:
            # the sweep is outer: it runs once the capture of the request is written
            self.app.middlewares.append(self.erasures.capture_sweep(capture_dir))
            self.app.middlewares.append(capture_middleware(capture_dir))
        self.retention = RetentionTask(
            tso_rules(privacy or PrivacyConfig(), lambda: self.app[STORAGE], capture_dir),
            clock=clock)
        self.app.cleanup_ctx.append(self.retention.lifetime)

    @property
    def ctx(self) -> ServiceContext:
        return self.app[SERVICES]

    def now(self) -> datetime:
        return self.ctx.clock()

    # ------------------------------------------------------------ registration

    @property
    def pools(self) -> dict[str, dict[str, tuple[PoolDevice, ...]]]:
        """venID -> pool id -> devices."""
        return self.registry.pools

    @property
    def gcp_owner(self) -> dict[str, str]:
        """GCP pseudonym -> the aggregator venID that registered it."""
        return self.registry.gcp_owner

    async def _restore(self, app: web.Application) -> None:
        """Rebuild the registry from the pool registrations the VTN stored."""
        for ven_id, reports in await stored_pool_reports(app[STORAGE], self.ctx.store_codec):
            try:
                pool_ids = self.registry.register(ven_id, reports)
            except InvalidData as exc:
                log.warning("stored registration of %s not restored: %s", ven_id, escaped(exc))
                continue
            for pool_id in pool_ids:
                log.info("pool %s of %s restored: %d devices", escaped(pool_id), ven_id,
                         len(self.devices(ven_id, pool_id)))

    async def _subscriptions(self, ven_id: str, reports: tuple[Report, ...]
                             ) -> list[ReportRequest]:
        """Register the VEN's pools (refusing GCPs another aggregator holds), offer each
        pool's x-SETTLEMENT report, and subscribe to every report."""
        for pool_id in self.registry.register(ven_id, reports):
            log.info("pool %s of %s: %d devices registered", escaped(pool_id), ven_id,
                     len(self.devices(ven_id, pool_id)))
        if ven_id in self.pools:  # one offer per VEN: each offer replaces the one before
            await offer_reports(self.ctx, ven_id, tuple(
                settlement_metadata(p, created=self.now()) for p in self.pools[ven_id]))
        period = self.settings.rules.sample_period
        back = self.settings.timing.telemetry_batch
        return [ReportRequest(
            report_request_id=f"{ven_id}:{r.report_specifier_id}",
            report_specifier=ReportSpecifier(
                report_specifier_id=r.report_specifier_id, granularity=period,
                report_back_duration=back,
                specifier_payloads=tuple(SpecifierPayload(r_id=d.r_id, reading_type=d.reading_type)
                                         for d in r.descriptions)))
            for r in reports if r.descriptions]

    def devices(self, ven_id: str, pool_id: str) -> tuple[PoolDevice, ...]:
        return self.registry.devices(ven_id, pool_id)

    # ------------------------------------------------------------ bidding

    def _on_report(self, ven_id: str, report: Report) -> Awaitable[None] | None:
        name = str(report.report_name or "")
        self.reports_seen[name] = self.reports_seen.get(name, 0) + 1
        if name == ERASURE_REPORT:
            return self.erasures.take(ven_id, report)  # awaited by the VTN before it replies
        if name == FLEX_OFFER_REPORT:
            self._on_offer(ven_id, report)
        late = {i.dtstart for i in report.intervals for p in i.payloads
                if i.dtstart is not None and p.data_quality == LATE_QUALITY}
        if late:
            self.late_samples.setdefault(ven_id, set()).update(late)
            log.info("%d sample(s) from %s arrived late", len(late), ven_id)
        return None

    def _on_offer(self, ven_id: str, report: Report) -> None:
        now = self.now()
        try:
            start = report.intervals[0].dtstart if report.intervals else None
            if start is None:
                raise ValueError("an offer's interval needs a dtstart (the ISP start)")
            isp = self.calendar.isp_at(start)
            offer = parse_offer(report, aggregator_id=ven_id, isp=isp)
        except ValueError as exc:
            raise InvalidData(f"unreadable offer: {exc}") from None
        pool_id = report.report_specifier_id.removesuffix(OFFER_SUFFIX)
        if not self.registry.knows(ven_id, pool_id):
            raise OfferRefused(f"offer {offer.offer_id} refused: unknown_pool: pool {pool_id} "
                               f"is not registered by {ven_id}")
        result = self.book.submit(offer, now)
        self.offers.append(OfferRecord(ven_id=ven_id, received_at=now, result=result))
        if isinstance(result, Refused):
            raise OfferRefused(f"offer {result.offer_id} refused: {result.reason}: "
                               f"{result.detail}")
        log.info("offer %s %s", escaped(offer.offer_id), escaped(result.message))

    def award(self, isp: IspRef) -> tuple[Award, ...]:
        """Award every offer for ``isp`` priced at or under the configured clearing price."""
        clearing = self.settings.clearing_price_eur_per_mwh
        awards = []
        for offer in self.book.offers_for(isp):
            if offer.price_eur_per_mwh <= clearing and not self.book.awards_for(isp):
                awards.append(self.book.award(offer.offer_id, offer.mw, clearing))
        return tuple(awards)

    # ------------------------------------------------------------ operation

    async def activate(self, award: Award, *, start: datetime,
                       setpoints_mw: tuple[Decimal, ...]) -> Activation:
        """Publish a LOAD_DISPATCH setpoint event for the award's aggregator."""
        offer = self.book.get(award.offer_id)
        assert offer is not None
        pool_id = award.offer_id.split(":", 1)[0]
        event = activation_event(
            event_id=f"act-{award.offer_id}", start=start,
            period=self.settings.rules.sample_period, values=[float(v) for v in setpoints_mw],
            target=Target(ven_ids=(offer.aggregator_id,)),
            market_context=self.settings.market_context, created=self.now())
        activation = Activation(event_id=event.event_id, ven_id=offer.aggregator_id,
                                pool_id=pool_id, award=award,
                                setpoints=event_setpoints(event, self.settings.rules.sample_period),
                                sent_at=self.now())
        self.activations[event.event_id] = activation
        await publish_event(self.ctx, event)
        return activation

    async def modify(self, event_id: str, setpoints_mw: tuple[Decimal, ...]) -> Activation:
        activation = self.activations[event_id]
        event = await get_event(self.ctx, event_id)
        assert event is not None
        fresh = activation_event(
            event_id=event_id, start=event.active_period.dtstart,
            period=self.settings.rules.sample_period, values=[float(v) for v in setpoints_mw],
            target=event.target, market_context=event.descriptor.market_context,
            created=event.descriptor.created_date_time)
        await modify_event(self.ctx, fresh)
        activation.setpoints = event_setpoints(fresh, self.settings.rules.sample_period)
        activation.modification_number += 1
        activation.sent_at = self.now()
        return activation

    async def cancel(self, event_id: str) -> Activation:
        activation = self.activations[event_id]
        if activation.cancelled:
            return activation  # a cancelled event is final: a second cancel sends nothing
        await cancel_event(self.ctx, event_id)
        activation.modification_number += 1
        activation.cancelled = True
        activation.sent_at = self.now()
        return activation

    def _on_ack(self, ven_id: str, response: EventResponse) -> None:
        activation = self.activations.get(response.event_id)
        if activation is None or activation.ven_id != ven_id:
            return
        check = check_ack(activation.sent_at, self.now(), self.settings.rules)
        activation.acks.append(check)
        if check.late:
            log.warning("late ack for %s from %s after %s", escaped(response.event_id), ven_id,
                        check.delay)

    # ------------------------------------------------------------ validation and settlement

    def window(self, activation: Activation) -> tuple[datetime, datetime]:
        """[start, end) of the samples settlement reads: fallback samples before the first
        setpoint up to L samples after the last."""
        rules = self.settings.rules
        first, last = activation.setpoints[0].at, activation.setpoints[-1].at
        return (first - rules.fallback_samples * rules.sample_period,
                last + (rules.tracking_lag_samples + 1) * rules.sample_period)

    async def measured(self, activation: Activation) -> tuple[Sample, ...]:
        start, end = self.window(activation)
        points = await self.app[STORAGE].reports.points(
            activation.ven_id, start, end, r_id=activation.pool_id)
        return tuple(Sample(at=p.dtstart, value=Decimal(str(p.value)))
                     for p in points if p.value is not None)

    async def baseline(self, activation: Activation) -> tuple[Sample, ...]:
        """The +5-min forecast per sample: the latest forecast whose target instant is at or
        before the sample, held for at most three baseline intervals (older is missing)."""
        rules, pool = self.settings.rules, self.settings.pool
        start, end = self.window(activation)
        hold = 3 * pool.baseline_interval
        rid = BASELINE_RIDS[self.settings.baseline_horizon_index]
        points = await self.app[STORAGE].reports.points(activation.ven_id, start - hold, end,
                                                        r_id=rid)
        forecast = sorted((p.dtstart, Decimal(str(p.value))) for p in points
                          if p.value is not None)
        samples, i, held = [], 0, None
        at = activation.setpoints[0].at
        while at < end:
            while i < len(forecast) and forecast[i][0] <= at:
                held = forecast[i]
                i += 1
            if held is not None and at - held[0] < hold:
                samples.append(Sample(at=at, value=held[1]))
            at += rules.sample_period
        return tuple(samples)

    async def settle(self, event_id: str) -> TsoStatement:
        """Validate the activation against the stored data and write its statement."""
        activation = self.activations[event_id]
        rules = self.settings.rules
        baseline = await self.baseline(activation)
        delivery = validate_delivery(activation.setpoints, await self.measured(activation),
                                     baseline or None, rules,
                                     direction=activation.award.direction)
        flags = ("ack_late",) if activation.late else ()
        statement = settle_tso(
            delivery, clearing_price=activation.award.clearing_price_eur_per_mwh,
            bid_price=activation.award.bid_price_eur_per_mwh, rules=rules,
            isp=activation.award.isp, aggregator_id=activation.ven_id, extra_flags=flags)
        activation.delivery = delivery
        activation.statement = statement
        await self._send_statement(activation, statement)
        return statement

    async def _send_statement(self, activation: Activation, statement: TsoStatement) -> None:
        """Queue the x-SETTLEMENT oadrUpdateReport for the aggregator's live request (once per
        activation: its requestID is the activation's)."""
        ven_id, spec = activation.ven_id, activation.pool_id + SETTLEMENT_SUFFIX
        requests = await live_requests(self.ctx, ven_id, report_specifier_id=spec)
        if not requests:
            log.warning("%s has not requested %s: statement of %s not sent", ven_id, escaped(spec),
                        activation.event_id)
            return
        report = statement_report(
            statement, report_request_id=requests[-1].report_request_id,
            pool_id=activation.pool_id, event_id=activation.event_id,
            isp_start=self.calendar.isp_start(activation.award.isp),
            isp_length=self.settings.rules.isp_length, created=self.now())
        await send_report(self.ctx, ven_id, report,
                          request_id=f"settlement:{activation.event_id}")

    def accepted_offers(self) -> tuple[Accepted, ...]:
        return tuple(r.result for r in self.offers if isinstance(r.result, Accepted))

