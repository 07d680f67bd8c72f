"""Passive rules: checks the harness runs on every reply of every case.

Each :class:`Rule` has an ID, the requirement it checks and a check over one :class:`Seen` reply
plus the :class:`Memory` of what the node said before (its vtnID, the events it distributed). A
finding is a :class:`~cbp.conformance.Violation`; any violation fails the case with the rule's ID.

Rules judge the node under test only; the harness's own requests are XSD-valid by construction.
A rule about one transport names it (``Rule.transport``: PR03 and PR15 Simple HTTP, PR16 XMPP)
and is skipped over the other, as ``--list`` says.
The signal table (PR08, PR09) follows the EiEvent section of the OpenADR 2.0b profile: where the
profile allows several types or units for a signal name, all of them are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from lxml import etree

from schemas import (
    CreatedPartyRegistration,
    DistributeEvent,
    Event,
    EventSignal,
    EventStatus,
    ItemKind,
    Message,
    RegisterReport,
    RequestEvent,
    SignalType,
    TransportName,
)
from schemas.parts import echoed_request_id

from ._checks import carries_schema_location
from ._model import Exchange, Rule

__all__ = ["RULES", "Memory", "Seen"]

@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    """One reply as the rules see it: the exchange, its XML tree (None when not XML) and the
    XSD's complaint (None when valid or not XML)."""

    exchange: Exchange
    tree: etree._Element | None
    schema_error: str | None


class Memory:
    """What the node under test said earlier in the run, for the rules that compare.

    ``live`` maps each event the VEN was sent and that is neither cancelled nor completed to the
    end of its active period; :meth:`forget_events` empties it when the registration ends.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.ven_id: str | None = None
        self.vtn_id: str | None = None
        self.live: dict[str, datetime] = {}
        self.modification: dict[str, int] = {}

    def forget_events(self) -> None:
        self.live.clear()

    def learn(self, message: Message) -> None:
        match message:
            case CreatedPartyRegistration():
                self.vtn_id = self.vtn_id or message.vtn_id
                self.ven_id = message.ven_id or self.ven_id
            case DistributeEvent():
                for event in message.events:
                    eid = event.event_id
                    self.modification[eid] = max(self.modification.get(eid, 0),
                                                 event.modification_number)
                    if event.descriptor.event_status in _OVER:
                        self.live.pop(eid, None)
                    else:
                        period = event.active_period
                        self.live[eid] = period.dtstart + period.duration
            case _:
                pass


_OVER: Final = frozenset({EventStatus.CANCELLED, EventStatus.COMPLETED})

def _xsd(seen: Seen, memory: Memory) -> Iterator[str]:
    if seen.schema_error is not None:
        yield f"reply is not valid against oadr_20b.xsd: {seen.schema_error}"


def _no_schema_location(seen: Seen, memory: Memory) -> Iterator[str]:
    if carries_schema_location(seen.tree):
        yield "reply carries an xsi:schemaLocation attribute"


def _content_type(seen: Seen, memory: Memory) -> Iterator[str]:
    exchange = seen.exchange
    if exchange.status == 200 and exchange.reply and exchange.content_type != "application/xml":
        yield f"Content-Type is {exchange.content_type!r}, not 'application/xml'"


def _echo(seen: Seen, memory: Memory) -> Iterator[str]:
    exchange = seen.exchange
    if exchange.sent is None or exchange.received is None:
        return
    expected = echoed_request_id(exchange.sent)
    response = getattr(exchange.received, "response", None)
    if not expected or response is None:
        return
    if isinstance(exchange.received, DistributeEvent) and not isinstance(exchange.sent,
                                                                           RequestEvent):
        return
    if response.request_id != expected:
        yield (f"{exchange.received_name} carries requestID {response.request_id!r}, "
               f"not the request's {expected!r}")


def _iq_payload(seen: Seen, memory: Memory) -> Iterator[str]:
    exchange = seen.exchange
    if exchange.status == 200 and not exchange.reply:
        yield f"the IQ result answering {exchange.sent_name} carries no oadrPayload"


def _ven_id(seen: Seen, memory: Memory) -> Iterator[str]:
    received = seen.exchange.received
    given = getattr(received, "ven_id", None)
    if given and memory.ven_id and given != memory.ven_id:
        yield f"{seen.exchange.received_name} names venID {given!r}, not {memory.ven_id!r}"


def _vtn_id(seen: Seen, memory: Memory) -> Iterator[str]:
    received = seen.exchange.received
    if isinstance(received, DistributeEvent | CreatedPartyRegistration) and memory.vtn_id \
            and received.vtn_id != memory.vtn_id:
        yield f"vtnID {received.vtn_id!r} differs from the registration's {memory.vtn_id!r}"


def _previous_events(seen: Seen, memory: Memory) -> Iterator[str]:
    received = seen.exchange.received
    if not isinstance(received, DistributeEvent):
        return
    present = {event.event_id for event in received.events}
    now = memory.clock()
    for event_id, ends in memory.live.items():
        if event_id not in present and ends > now:
            yield f"event {event_id!r}, not completed nor cancelled, is missing"


_TYPES: Final[dict[str, frozenset[SignalType]]] = {
    "SIMPLE": frozenset({SignalType.LEVEL}),
    "ELECTRICITY_PRICE": frozenset({SignalType.PRICE, SignalType.PRICE_RELATIVE,
                                    SignalType.PRICE_MULTIPLIER}),
    "ENERGY_PRICE": frozenset({SignalType.PRICE, SignalType.PRICE_RELATIVE,
                               SignalType.PRICE_MULTIPLIER}),
    "DEMAND_CHARGE": frozenset({SignalType.PRICE, SignalType.PRICE_RELATIVE,
                                SignalType.PRICE_MULTIPLIER}),
    "BID_PRICE": frozenset({SignalType.PRICE}),
    "BID_LOAD": frozenset({SignalType.SETPOINT}),
    "BID_ENERGY": frozenset({SignalType.SETPOINT}),
    "CHARGE_STATE": frozenset({SignalType.SETPOINT, SignalType.DELTA, SignalType.LEVEL}),
    "LOAD_DISPATCH": frozenset({SignalType.SETPOINT, SignalType.DELTA}),
    "LOAD_CONTROL": frozenset({SignalType.X_LOAD_CONTROL_CAPACITY,
                               SignalType.X_LOAD_CONTROL_LEVEL_OFFSET,
                               SignalType.X_LOAD_CONTROL_PERCENT_OFFSET,
                               SignalType.X_LOAD_CONTROL_SETPOINT}),
}
_TYPES["simple"] = _TYPES["SIMPLE"]
_PRICES: Final = frozenset({ItemKind.CURRENCY, ItemKind.CURRENCY_PER_KWH, ItemKind.CURRENCY_PER_KW,
                            ItemKind.CURRENCY_PER_THM})
_UNITS: Final[dict[str, frozenset[ItemKind]]] = {
    "ELECTRICITY_PRICE": _PRICES,
    "ENERGY_PRICE": frozenset({ItemKind.CURRENCY_PER_KWH, ItemKind.CURRENCY_PER_THM}),
    "DEMAND_CHARGE": frozenset({ItemKind.CURRENCY_PER_KW}),
    "BID_PRICE": _PRICES,
    "BID_LOAD": frozenset({ItemKind.POWER_REAL}),
    "BID_ENERGY": frozenset({ItemKind.ENERGY_REAL}),
    "CHARGE_STATE": frozenset({ItemKind.ENERGY_REAL, ItemKind.CUSTOM}),
    "LOAD_DISPATCH": frozenset({ItemKind.POWER_REAL}),
}


def _signals(seen: Seen) -> Iterator[tuple[Event, EventSignal]]:
    """Each (event, signal) of an oadrDistributeEvent the harness received; none otherwise."""
    received = seen.exchange.received
    if isinstance(received, DistributeEvent):
        for event in received.events:
            for signal in event.signals:
                yield event, signal


def _signal_types(seen: Seen, memory: Memory) -> Iterator[str]:
    for event, signal in _signals(seen):
        allowed = _TYPES.get(signal.signal_name)
        if allowed is not None and signal.signal_type not in allowed:
            yield (f"event {event.event_id!r}: signalType {signal.signal_type.value!r} is "
                   f"not one of {', '.join(sorted(allowed))} for {signal.signal_name}")


def _signal_units(seen: Seen, memory: Memory) -> Iterator[str]:
    for event, signal in _signals(seen):
        name, unit = signal.signal_name, signal.item_base
        if unit is None:
            continue
        if name.upper() == "SIMPLE":
            yield f"event {event.event_id!r}: a SIMPLE signal carries units ({unit.kind})"
        elif name in _UNITS and unit.kind not in _UNITS[name]:
            yield (f"event {event.event_id!r}: units {unit.kind.value!r} do not fit {name} "
                   f"({', '.join(sorted(_UNITS[name]))})")


def _interval_uids(seen: Seen, memory: Memory) -> Iterator[str]:
    for event, signal in _signals(seen):
        uids = [interval.uid for interval in signal.intervals]
        if uids != [str(n) for n in range(len(uids))]:
            yield (f"event {event.event_id!r} signal {signal.signal_id!r}: interval uids "
                   f"{uids} are not 0, 1, 2, ...")


def _simple_levels(seen: Seen, memory: Memory) -> Iterator[str]:
    for event, signal in _signals(seen):
        if signal.signal_name.upper() != "SIMPLE":
            continue
        bad = [v for i in signal.intervals for v in i.values if v not in (0, 1, 2, 3)]
        if bad:
            yield f"event {event.event_id!r}: SIMPLE payload values {bad} are not 0..3"


def _modification_rises(seen: Seen, memory: Memory) -> Iterator[str]:
    received = seen.exchange.received
    if not isinstance(received, DistributeEvent):
        return
    for event in received.events:
        before = memory.modification.get(event.event_id)
        if before is not None and event.modification_number < before:
            yield (f"event {event.event_id!r}: modificationNumber fell from {before} to "
                   f"{event.modification_number}")


def _register_report_zero(seen: Seen, memory: Memory) -> Iterator[str]:
    received = seen.exchange.received
    if isinstance(received, RegisterReport):
        for report in received.reports:
            if report.report_request_id != "0":
                yield (f"oadrRegisterReport report {report.report_specifier_id!r} has "
                       f"reportRequestID {report.report_request_id!r}, not 0")


def _success_is_200(seen: Seen, memory: Memory) -> Iterator[str]:
    response = getattr(seen.exchange.received, "response", None)
    if response is not None and 200 <= response.code < 300 and response.code != 200:
        yield f"success responseCode is {response.code}, not 200"


def _poll_freq(seen: Seen, memory: Memory) -> Iterator[str]:
    received = seen.exchange.received
    if isinstance(received, CreatedPartyRegistration) and received.registration_id \
            and received.requested_oadr_poll_freq is None:
        yield "oadrCreatedPartyRegistration for a pull VEN lacks oadrRequestedOadrPollFreq"


RULES: Final[tuple[Rule[Seen, Memory], ...]] = (
    Rule(rule_id="PR01", requirement="every payload is valid against the 2.0b schema "
         "(oadr_20b.xsd and its imports)", check=_xsd),
    Rule(rule_id="PR02", requirement="no xsi:schemaLocation attribute in a payload",
         check=_no_schema_location),
    Rule(rule_id="PR03", requirement="Simple HTTP replies carry Content-Type application/xml "
         "(the profile's Simple HTTP transport)", check=_content_type,
         transport=TransportName.SIMPLE_HTTP),
    Rule(rule_id="PR04", requirement="a reply's eiResponse echoes the requestID of the request "
         "it answers", check=_echo),
    Rule(rule_id="PR05", requirement="a venID in a reply is the VEN's own (Conformance Rule 21)",
         check=_ven_id),
    Rule(rule_id="PR06", requirement="the vtnID never changes (Conformance Rule 21)",
         check=_vtn_id),
    Rule(rule_id="PR07", requirement="every oadrDistributeEvent holds every earlier event until "
         "it is completed or cancelled (profile 8.2: the list is complete)",
         check=_previous_events),
    Rule(rule_id="PR08", requirement="signalType is one the profile allows for the signalName",
         check=_signal_types),
    Rule(rule_id="PR09", requirement="signal units, when given, fit the signalName",
         check=_signal_units),
    Rule(rule_id="PR10", requirement="interval uids count 0, 1, 2, ... within each signal "
         "(Conformance Rule 2)", check=_interval_uids),
    Rule(rule_id="PR11", requirement="SIMPLE signal payloads are levels 0..3 (Conformance Rule 9)",
         check=_simple_levels),
    Rule(rule_id="PR12", requirement="an event's modificationNumber never decreases",
         check=_modification_rises),
    Rule(rule_id="PR13", requirement="reports in oadrRegisterReport carry reportRequestID 0",
         check=_register_report_zero),
    Rule(rule_id="PR14", requirement="a successful eiResponse carries responseCode 200",
         check=_success_is_200),
    Rule(rule_id="PR15", requirement="oadrCreatedPartyRegistration for a pull VEN carries "
         "oadrRequestedOadrPollFreq (Simple HTTP's pull model)", check=_poll_freq,
         transport=TransportName.SIMPLE_HTTP),
    Rule(rule_id="PR16", requirement="over XMPP, the IQ result answering a payload carries the "
         "answer as its oadrPayload child (profile 9.3.3: every service exchange is a request "
         "and its answer)", check=_iq_payload, transport=TransportName.XMPP),
)
