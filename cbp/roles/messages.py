"""The CBP profile's OpenADR 2.0b messages: building them from role data and reading them back
(docs/architecture.md#the-cbp-profile-on-openadr).

Pure functions from role data to ``schemas`` types and back; no I/O, no clock.

- Pool registration: one METADATA_TELEMETRY_USAGE report; the pool row (rID = pool id, MW,
  reportDataSource partyIDs = the pseudonyms of the pool's grid connection points, once each)
  and one description per device: rID = its pseudonym, reportDataSource resourceID = the
  pseudonym, reportSubject groupID = pool id and groupNames ``class:<c>``, ``power:<bucket>``,
  ``zone:<z>`` (``OTHER`` where the k-threshold generalised them), readingType Derived, no unit:
  a device's values are shares of its rated power (:func:`privacy.device_share`). Nothing else
  about a device is said: the GCPs are listed on the pool row, not per device, so the TSO can
  check that no connection point is offered by two aggregators without learning which devices
  share a household. The order of both lists is the caller's (the aggregator shuffles them).
- ``x-BASELINE``: one interval per horizon, dtstart = the instant forecast for, MW.
- ``x-FLEX_OFFER``: one report per offer, one interval = the ISP, xcal:uid = the offer id, with
  the offered MW (up/downRegulationCapacityAvailable), the forecast availability and the price.
- Activation: ``LOAD_DISPATCH``, signalType setpoint, one interval per run of equal setpoints
  (its duration the run's sample periods; MW to the TSO's aggregator, kW from the aggregator to a
  device), responseRequired always. Read back, an interval holds its value at every sample
  instant it covers, whoever wrote it (one interval per sample, or one for the whole activation).

Invariants: every message built here is XSD-valid (tests check it with the oracle); values
are floats on the wire, Decimal on our side, converted with ``str`` so no binary dust appears.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby
from typing import Final

from cbp.market import Direction, IspRef, Offer, Sample
from schemas import (
    ActivePeriod,
    Event,
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    ItemBase,
    ReadingType,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportPayload,
    ReportType,
    SamplingRate,
    SignalType,
    Target,
)
from schemas.logtext import escaped

from .profile import (
    BASELINE_REPORT,
    BASELINE_RIDS,
    FLEX_OFFER_REPORT,
    OFFER_AVAILABLE_RID,
    OFFER_DOWN_RID,
    OFFER_PRICE_RID,
    OFFER_UP_RID,
    SETPOINT_SIGNAL,
)

__all__ = [
    "LONGEST_ACTIVATION",
    "PoolDevice",
    "activation_event",
    "baseline_metadata",
    "event_setpoints",
    "flex_offer_metadata",
    "offer_intervals",
    "parse_offer",
    "parse_pool_devices",
    "pool_metadata",
    "sample_intervals",
]

log = logging.getLogger(__name__)

#: the longest span of setpoints an activation event is read for (a day: far beyond any
#: balancing activation, and a bound on the plan one short document can ask for)
LONGEST_ACTIVATION: Final = timedelta(days=1)

TELEMETRY_SUFFIX = ":telemetry"
BASELINE_SUFFIX = ":baseline"
OFFER_SUFFIX = ":offers"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolDevice:
    """What the TSO learns about one device: nothing but these four fields."""

    pseudonym: str
    device_class: str
    power_bucket: str
    zone: str


def _rate(period: timedelta) -> SamplingRate:
    return SamplingRate(min_period=period, max_period=period)


def pool_metadata(pool_id: str, devices: Sequence[PoolDevice], *, gcps: Sequence[str],
                  created: datetime, sample_period: timedelta, market_context: str) -> Report:
    """The pool registration report (one description per device, rID = pseudonym; the GCP
    pseudonyms on the pool row)."""
    pool_row = ReportDescription(
        r_id=pool_id, report_type=ReportType.USAGE, reading_type=ReadingType.DIRECT_READ,
        report_subject=Target(group_ids=(pool_id,)),
        report_data_source=Target(party_ids=tuple(gcps)) if gcps else None,
        item_base=ItemBase.megawatts(), market_context=market_context,
        sampling_rate=_rate(sample_period))
    rows = [pool_row]
    for d in devices:
        rows.append(ReportDescription(
            r_id=d.pseudonym, report_type=ReportType.USAGE, reading_type=ReadingType.DERIVED,
            report_subject=Target(group_ids=(pool_id,), group_names=(
                f"class:{d.device_class}", f"power:{d.power_bucket}", f"zone:{d.zone}")),
            report_data_source=Target(resource_ids=(d.pseudonym,)),
            market_context=market_context, sampling_rate=_rate(sample_period)))
    return Report(report_request_id="0", report_specifier_id=pool_id + TELEMETRY_SUFFIX,
                  created_date_time=created, report_name=ReportName.METADATA_TELEMETRY_USAGE,
                  duration=timedelta(0), descriptions=tuple(rows))


def parse_pool_devices(report: Report) -> tuple[str, tuple[PoolDevice, ...], tuple[str, ...]]:
    """(pool id, devices, GCP pseudonyms) from a pool registration report; the pool row is the
    one whose rID is the pool id."""
    pool_id = report.report_specifier_id.removesuffix(TELEMETRY_SUFFIX)
    devices = []
    gcps: tuple[str, ...] = ()
    for d in report.descriptions:
        if d.r_id == pool_id:
            gcps = d.report_data_source.party_ids if d.report_data_source else ()
            continue
        names = dict(n.split(":", 1) for n in (d.report_subject.group_names
                                                if d.report_subject else ()) if ":" in n)
        devices.append(PoolDevice(
            pseudonym=d.r_id, device_class=names.get("class", ""),
            power_bucket=names.get("power", ""), zone=names.get("zone", "")))
    return pool_id, tuple(devices), tuple(gcps)


def baseline_metadata(pool_id: str, *, created: datetime, interval: timedelta) -> Report:
    rows = tuple(
        ReportDescription(r_id=rid, report_type=ReportType.BASELINE,
                          reading_type=ReadingType.PROJECTED, item_base=ItemBase.megawatts(),
                          sampling_rate=_rate(interval))
        for rid in BASELINE_RIDS)
    return Report(report_request_id="0", report_specifier_id=pool_id + BASELINE_SUFFIX,
                  created_date_time=created, report_name=BASELINE_REPORT,
                  duration=timedelta(0), descriptions=rows)


def flex_offer_metadata(pool_id: str, *, created: datetime) -> Report:
    mw = ItemBase.megawatts()
    rows = (
        ReportDescription(r_id=OFFER_UP_RID, item_base=mw, reading_type=ReadingType.PROJECTED,
                          report_type=ReportType.UP_REGULATION_CAPACITY_AVAILABLE),
        ReportDescription(r_id=OFFER_DOWN_RID, item_base=mw, reading_type=ReadingType.PROJECTED,
                          report_type=ReportType.DOWN_REGULATION_CAPACITY_AVAILABLE),
        ReportDescription(r_id=OFFER_AVAILABLE_RID, item_base=mw,
                          reading_type=ReadingType.PROJECTED,
                          report_type=ReportType.UP_REGULATION_CAPACITY_AVAILABLE),
        ReportDescription(r_id=OFFER_PRICE_RID, report_type=ReportType.PRICE,
                          reading_type=ReadingType.X_NOT_APPLICABLE),
    )
    return Report(report_request_id="0", report_specifier_id=pool_id + OFFER_SUFFIX,
                  created_date_time=created, report_name=FLEX_OFFER_REPORT,
                  duration=timedelta(0), descriptions=rows)


def offer_intervals(offer: Offer, *, isp_start: datetime,
                    isp_length: timedelta) -> tuple[ReportInterval, ...]:
    """The x-FLEX_OFFER interval of one offer: the ISP, xcal:uid = the offer id."""
    volume = OFFER_UP_RID if offer.direction is Direction.UP else OFFER_DOWN_RID
    payloads = [ReportPayload(r_id=volume, value=float(offer.mw)),
                ReportPayload(r_id=OFFER_PRICE_RID, value=float(offer.price_eur_per_mwh))]
    if offer.available_mw is not None:
        payloads.append(ReportPayload(r_id=OFFER_AVAILABLE_RID, value=float(offer.available_mw)))
    return (ReportInterval(dtstart=isp_start, duration=isp_length, uid=offer.offer_id,
                           payloads=tuple(payloads)),)


def _dec(value: float | object) -> Decimal:
    return Decimal(str(value))


def parse_offer(report: Report, *, aggregator_id: str, isp: IspRef) -> Offer:
    """The offer an x-FLEX_OFFER report carries; ValueError when it is incomplete."""
    if len(report.intervals) != 1 or not report.intervals[0].uid:
        raise ValueError("an x-FLEX_OFFER report needs exactly one interval with an xcal:uid")
    values = {p.r_id: _dec(p.value) for p in report.intervals[0].payloads}
    if (OFFER_UP_RID in values) == (OFFER_DOWN_RID in values):
        raise ValueError("an offer names exactly one direction (up or down MW)")
    if OFFER_PRICE_RID not in values:
        raise ValueError("an offer needs a price")
    direction = Direction.UP if OFFER_UP_RID in values else Direction.DOWN
    return Offer(
        offer_id=str(report.intervals[0].uid), aggregator_id=aggregator_id, isp=isp,
        direction=direction,
        mw=values[OFFER_UP_RID if direction is Direction.UP else OFFER_DOWN_RID],
        price_eur_per_mwh=values[OFFER_PRICE_RID], available_mw=values.get(OFFER_AVAILABLE_RID))


def sample_intervals(samples: Iterable[tuple[datetime, Sequence[tuple[str, float]]]],
                     period: timedelta) -> tuple[ReportInterval, ...]:
    """Report intervals, one per sample time, each with its own dtstart (MSP needs that)."""
    return tuple(
        ReportInterval(dtstart=at, duration=period,
                       payloads=tuple(ReportPayload(r_id=r, value=v) for r, v in values))
        for at, values in samples)


def activation_event(*, event_id: str, start: datetime, period: timedelta,
                     values: Sequence[float], target: Target, market_context: str,
                     created: datetime, kilowatts: bool = False,
                     modification_number: int = 0) -> Event:
    """A LOAD_DISPATCH setpoint event of ``values``, one per sample period from ``start``: one
    interval per run of equal values (a device's setpoints mostly hold: a dispatch of 15 samples
    is a few intervals, and every push of it through an XMPP server costs per element)."""
    runs = [(value, sum(1 for _ in run)) for value, run in groupby(float(v) for v in values)]
    return Event(
        descriptor=EventDescriptor(
            event_id=event_id, modification_number=modification_number,
            market_context=market_context, created_date_time=created,
            event_status=EventStatus.FAR),
        active_period=ActivePeriod(dtstart=start, duration=period * len(values)),
        signals=(EventSignal(
            signal_name=SETPOINT_SIGNAL, signal_type=SignalType.SETPOINT, signal_id="setpoint",
            item_base=ItemBase.kilowatts() if kilowatts else ItemBase.megawatts(),
            intervals=tuple(EventInterval(uid=str(i), duration=period * n, values=(value,))
                            for i, (value, n) in enumerate(runs))),),
        target=target,
    )


def event_setpoints(event: Event, period: timedelta) -> tuple[Sample, ...]:
    """The setpoint at each sample instant (``period`` apart) of an event's LOAD_DISPATCH
    signal: an interval holds its value from its start through its duration (at least one
    sample). Empty, with a WARNING, for an event whose setpoints would span more than
    :data:`LONGEST_ACTIVATION`: one short document must not make a plan of millions of samples."""
    signal = next((s for s in event.signals if s.signal_name == SETPOINT_SIGNAL), None)
    if signal is None:
        return ()
    start = at = event.active_period.dtstart
    samples = []
    for interval in signal.intervals:
        value, end = _dec(interval.values[0]), at + (interval.duration or timedelta(0))
        if end - start > LONGEST_ACTIVATION:
            log.warning("LOAD_DISPATCH event %s ignored: its setpoints span more than %s",
                        escaped(event.event_id), LONGEST_ACTIVATION)
            return ()
        samples.append(Sample(at=at, value=value))
        while (at := at + period) < end:
            samples.append(Sample(at=at, value=value))
        at = end
    return tuple(samples)
