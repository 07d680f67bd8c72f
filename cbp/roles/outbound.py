"""The aggregator's upstream codec: every byte it encodes for the TSO passes the OutboundFilter.

DESIGN.md section 5 / issue 4: the aggregator -> TSO link must physically be unable to carry vault
data. The aggregator's upstream :class:`ven.VenClient` (registration, polls, acks, reports through
the durable outbox) and its direct offer link all encode through one :class:`FilteredCodec`, so no
message type can slip past the filter: :meth:`FilteredCodec.encode` returns the filter's verdict
or raises :class:`privacy.OutboundRefused` (logged by the filter; nothing is queued or sent).

Invariants: the activation windows the filter checks per-device rows against are read at encode
time from ``windows`` (the aggregator adds one per activation, with the MSP margins applied).
Every message decoded from the TSO is reported to ``on_decoded`` (the aggregator's link watch
counts it as contact, :mod:`cbp.roles.tsolink`), and its identifiers (venID, eventID, requestIDs)
are taught to the filter, which lets the aggregator echo those and no other foreign ids
(:meth:`privacy.OutboundFilter.learn`); decoding is otherwise the plain codec's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from privacy import ActivationWindow, OutboundFilter
from schemas import Codec, Message

__all__ = ["FilteredCodec"]


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
