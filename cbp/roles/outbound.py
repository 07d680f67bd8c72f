"""The aggregator's upstream codec: every byte it encodes for the TSO passes the OutboundFilter.

docs/architecture.md#privacy-design / issue 4: the aggregator -> TSO link must physically be unable
to carry vault data. The aggregator's upstream :class:`ven.VenClient` (registration, polls, acks,
reports through
the durable outbox) and its direct offer link all encode through one :class:`FilteredCodec`, so no
message type can slip past the filter: :meth:`FilteredCodec.encode` returns the filter's verdict
or raises :class:`privacy.OutboundRefused` (logged by the filter; nothing is queued or sent).

:func:`outbound_policy` is the aggregator's allow-list vocabulary, all from its settings: the
pool id and the aggregate rIDs (pool row, baselines, offers, settlement, erasure notices), the
device classes and
power buckets of :mod:`cbp.devices`, the zone, market context, report names and specifier ids
of the profile, the VEN name, the ``x-late`` quality, and k.

Invariants: the activation windows the filter checks per-device rows against are read at encode
time from ``windows`` (the aggregator adds one per activation, with the MSP margins applied).
Every message decoded from the TSO is reported to ``on_decoded`` (the aggregator's link watch
counts it as contact, :mod:`cbp.roles.tsolink`), and its identifiers (venID, eventID, requestIDs)
are taught to the filter, which lets the aggregator echo those and no other foreign ids
(:meth:`privacy.OutboundFilter.learn`); decoding is otherwise the plain codec's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cbp.devices import DeviceClass
from privacy import ActivationWindow, OutboundFilter, OutboundPolicy
from schemas import Codec, Message, ReportName

from .erasure import ERASE_RID, ERASURE_REPORT, ERASURE_REPORT_TYPE, ERASURE_SUFFIX
from .messages import BASELINE_SUFFIX, OFFER_SUFFIX, TELEMETRY_SUFFIX
from .profile import (
    BASELINE_REPORT,
    BASELINE_RIDS,
    FLEX_OFFER_REPORT,
    LATE_QUALITY,
    OFFER_AVAILABLE_RID,
    OFFER_DOWN_RID,
    OFFER_PRICE_RID,
    OFFER_UP_RID,
    SETTLEMENT_RIDS,
    CbpSettings,
)
from .statement import SETTLEMENT_SUFFIX

__all__ = ["FilteredCodec", "outbound_policy"]

_POWER_BUCKETS = frozenset({"0-3kW", "3-7kW", "7-11kW", "11kW+"})  # cbp.devices.power_bucket


def outbound_policy(settings: CbpSettings, *, ven_name: str, k: int) -> OutboundPolicy:
    """What the aggregator named ``ven_name`` may say to the TSO, element by element."""
    pool = settings.pool_id
    return OutboundPolicy(
        pool_ids=frozenset({pool}),
        device_classes=frozenset(c.value for c in DeviceClass),
        power_buckets=_POWER_BUCKETS, zones=frozenset({settings.zone}),
        aggregate_ids=frozenset({*BASELINE_RIDS, OFFER_UP_RID, OFFER_DOWN_RID,
                                 OFFER_AVAILABLE_RID, OFFER_PRICE_RID, ERASE_RID,
                                 *SETTLEMENT_RIDS.values()}),
        market_contexts=frozenset({settings.market_context}),
        report_names=frozenset({ReportName.METADATA_TELEMETRY_USAGE.value,
                                ReportName.TELEMETRY_USAGE.value, BASELINE_REPORT,
                                FLEX_OFFER_REPORT, ERASURE_REPORT}),
        report_types=frozenset({ERASURE_REPORT_TYPE}),
        report_specifier_ids=frozenset(pool + suffix for suffix in (
            TELEMETRY_SUFFIX, BASELINE_SUFFIX, OFFER_SUFFIX, SETTLEMENT_SUFFIX, ERASURE_SUFFIX)),
        ven_names=frozenset({ven_name}), data_qualities=frozenset({LATE_QUALITY}), k=k)


class FilteredCodec(Codec):
    """A :class:`schemas.Codec` whose output must pass ``outbound.admit_xml``."""

    def __init__(self, outbound: OutboundFilter,
                 windows: Callable[[], Sequence[ActivationWindow]] = tuple,
                 on_decoded: Callable[[], None] | None = None, **codec: object) -> None:
        super().__init__(**codec)  # type: ignore[arg-type]
        self.outbound = outbound
        self._windows = windows
        self._on_decoded = on_decoded
        self.refused = 0  # how many messages the filter stopped

    def decode(self, data: bytes) -> Message:
        message = super().decode(data)
        self.outbound.learn(data)
        if self._on_decoded is not None:
            self._on_decoded()
        return message

    def encode(self, message: Message) -> bytes:
        data = super().encode(message)
        try:
            return self.outbound.admit_xml(data, windows=self._windows())
        except Exception:
            self.refused += 1
            raise
