"""The allow-list at the aggregator -> TSO boundary: what each element and attribute may hold.

Issue 11: a deny-list (look for EANs, postcodes, vault values) lets through whatever it does not
know to look for ("Tesla Model Y" in a groupName, a partyID that is a customer number). This
module says instead what *may* be in every text node and attribute the aggregator sends: each
element's local name maps to one rule, and a value passes only if its rule accepts it. An
element or attribute without a rule, carrying any text, is refused. The deny-list scans of
:mod:`privacy.detect` still run on top (:class:`privacy.OutboundFilter`).

The rules, by kind:
- protocol vocabulary: booleans, the 2.0b profile and transport names, OpenADR enumerations
  (reading and report types, SI scales, optIn/optOut, response codes), the unit names the
  profile uses;
- time: ``xcal:date-time``, ``createdDateTime`` and replay timestamps are UTC instants;
  durations are ISO 8601 durations;
- identifiers the aggregator makes: request and report ids are random (version 4) UUIDs;
  report specifier ids, report names, market contexts, the VEN name and pool ids come from
  :class:`OutboundPolicy`;
- identifiers the TSO made (venID, registrationID, eventID, its requestIDs and reportRequestIDs):
  only values that arrived from the TSO (:meth:`Echoes.learn`, fed by the upstream codec), so an
  echo carries back nothing the TSO did not already say;
- device data: ``rID``/``resourceID`` a pseudonym or a configured aggregate id, ``partyID`` a
  pseudonym, ``groupID`` a pool id, ``groupName`` ``class:``/``power:``/``zone:`` followed by an
  enumerated value or the generalised value (``OTHER``);
- numbers: a finite decimal (the grid of per-device values is checked by the filter, which
  knows which interval is about a device); an itemBase's ``hertz`` and ``voltage`` only the
  grid's nominal values;
- ``responseDescription``: the aggregator's own reply text to a TSO message ("OK" or an error
  reason): printable ASCII, at most 200 characters. It is the one free-text field the protocol
  needs; it never carries device data, and the deny-list scans cover it.

``ds:Signature`` content (keys, digests) is exempt here; the vault scan still covers it.

Invariants: no rule accepts arbitrary text except ``responseDescription`` (bounded as above);
the echo memory is bounded (oldest values forgotten first).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

from schemas import ReadingType, ReportType, SiScale

from .detect import mask
from .pseudonym import is_pseudonym

__all__ = ["ECHO_TAGS", "GENERALISED", "Echoes", "OutboundPolicy", "Rules"]

#: the value an attribute is generalised to when its group is under k
GENERALISED: Final = "OTHER"
#: elements whose values the TSO assigns; the aggregator may echo them back
ECHO_TAGS: Final = frozenset({"venID", "registrationID", "eventID", "requestID",
                              "reportRequestID", "vtnID"})
#: a random (version 4) UUID, as :func:`schemas.new_id` makes: a name-based one (version 3 or 5)
#: is an unkeyed hash of its name, which may be an identifier
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_INSTANT: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]00:00)",
                             re.ASCII)
_DURATION: Final = re.compile(
    r"-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?", re.ASCII)
_REPLY_TEXT: Final = re.compile(r"[ -~]{1,200}")
_SEQUENCE: Final = re.compile(r"[0-9]{1,5}")
_OFFER_ISP: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}:[0-9]{1,4}:(up|down)")
_COUNT: Final = re.compile(r"[0-9]{1,10}")  # xs:int, ASCII digits only
_UNITS: Final = frozenset({"RealPower", "W", "ApparentPower", "VA", "ReactivePower", "VAR",
                           "RealEnergy", "Wh"})
_BOOLEANS: Final = frozenset({"true", "false"})
_ECHO_MEMORY: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundPolicy:
    """What may cross to the TSO; every value here comes from configuration."""

    pool_ids: frozenset[str]
    device_classes: frozenset[str] = frozenset({"EV_CHARGER", "HEAT_PUMP", "HOME_BATTERY"})
    power_buckets: frozenset[str] = frozenset({"0-3.7kW", "3.7-7.4kW", "7.4-11kW", "11-22kW"})
    zones: frozenset[str] = frozenset({"NL"})
    #: non-device report/resource ids allowed in rID positions (pool rows, baselines, offers)
    aggregate_ids: frozenset[str] = frozenset()
    market_contexts: frozenset[str] = frozenset()
    report_names: frozenset[str] = frozenset()
    #: extension report types (``x-...``) beside the spec's ReportType values
    report_types: frozenset[str] = frozenset()
    report_specifier_ids: frozenset[str] = frozenset()
    ven_names: frozenset[str] = frozenset()
    data_qualities: frozenset[str] = frozenset()
    #: the grid's nominal frequency and voltage: the only values an itemBase's
    #: powerAttributes may carry (a number there is no measurement; any other would be a
    #: channel for one, e.g. a device's exact rating)
    grid_hertz: Decimal = Decimal(50)
    grid_voltage: Decimal = Decimal(230)
    #: per-device values are shares of the device's rated power (see
    #: :func:`privacy.device_share`): within [-1, 1], on this grid
    device_step: Decimal = Decimal("0.01")
    #: every combination of per-device attributes in a registration is shared by at least k
    #: devices, unless the whole registration is one fully generalised group
    k: int = 10

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be at least 1")
        if self.device_step <= 0:
            raise ValueError("device_step must be positive")

    def group_name_ok(self, value: str) -> bool:
        kind, _, named = value.partition(":")
        allowed = {"class": self.device_classes, "power": self.power_buckets,
                   "zone": self.zones}.get(kind)
        return allowed is not None and (named in allowed or named == GENERALISED)

    def uid_ok(self, value: str) -> bool:
        """An interval uid: a sequence number (at most 5 ASCII digits: a report holds at most
        10,000 points), an offer id ``<pool>:<ISP day>:<ISP index>:<up|down>``, or a pseudonym
        (an erasure notice names one per interval, cbp.roles.erasure). Nothing else: a free
        digit string would carry a phone or customer number, a free suffix any text."""
        if _SEQUENCE.fullmatch(value) or is_pseudonym(value):
            return True
        pool, _, rest = value.partition(":")
        return pool in self.pool_ids and _OFFER_ISP.fullmatch(rest) is not None


class Echoes:
    """Identifier values the TSO sent (bounded, oldest forgotten first)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()

    def learn(self, values: Iterable[str]) -> None:
        for value in values:
            self._seen[value] = None
            self._seen.move_to_end(value)
        while len(self._seen) > _ECHO_MEMORY:
            self._seen.popitem(last=False)

    def __contains__(self, value: object) -> bool:
        return value in self._seen


def _number(value: str) -> bool:
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False


def _equal(nominal: Decimal) -> Callable[[str], bool]:
    return lambda value: _number(value) and Decimal(value) == nominal


def _rules(policy: OutboundPolicy, echoes: Echoes) -> Mapping[str, Callable[[str], bool]]:
    def one_of(values: Iterable[str]) -> Callable[[str], bool]:
        allowed = frozenset(values)
        return allowed.__contains__

    def pattern(regex: re.Pattern[str]) -> Callable[[str], bool]:
        return lambda v: regex.fullmatch(v) is not None

    instant, duration, boolean = pattern(_INSTANT), pattern(_DURATION), one_of(_BOOLEANS)
    ids = frozenset(policy.pool_ids) | frozenset(policy.aggregate_ids)
    return {
        "schemaVersion": one_of({"2.0b"}),
        "oadrProfileName": one_of({"2.0b"}),
        "oadrTransportName": one_of({"simpleHttp"}),
        "oadrHttpPullModel": boolean, "oadrXmlSignature": boolean, "oadrReportOnly": boolean,
        "oadrOnChange": boolean, "ac": boolean,
        "hertz": _equal(policy.grid_hertz), "voltage": _equal(policy.grid_voltage),
        "value": _number,
        "modificationNumber": pattern(_COUNT), "responseCode": pattern(re.compile(r"[0-9]{3}")),
        "responseDescription": pattern(_REPLY_TEXT),
        "optType": one_of({"optIn", "optOut"}),
        "readingType": one_of(r.value for r in ReadingType),
        "reportType": one_of({*(r.value for r in ReportType), *policy.report_types}),
        "siScaleCode": one_of(s.value for s in SiScale),
        "itemDescription": one_of(_UNITS), "itemUnits": one_of(_UNITS),
        "oadrDataQuality": one_of(policy.data_qualities),
        "date-time": instant, "createdDateTime": instant, "timestamp": instant,
        "duration": duration, "oadrMinPeriod": duration, "oadrMaxPeriod": duration,
        "granularity": duration, "reportBackDuration": duration,
        "eiReportID": pattern(_UUID), "nonce": pattern(_UUID),
        "requestID": lambda v: _UUID.fullmatch(v) is not None or v in echoes,
        "reportRequestID": lambda v: v == "0" or _UUID.fullmatch(v) is not None or v in echoes,
        "venID": echoes.__contains__, "registrationID": echoes.__contains__,
        "eventID": echoes.__contains__, "vtnID": echoes.__contains__,
        "reportSpecifierID": one_of(policy.report_specifier_ids),
        "reportName": one_of(policy.report_names),
        "marketContext": one_of(policy.market_contexts),
        "oadrVenName": one_of(policy.ven_names),
        "rID": lambda v: is_pseudonym(v) or v in ids,
        "resourceID": lambda v: is_pseudonym(v) or v in ids,
        "partyID": is_pseudonym,
        "groupID": one_of(policy.pool_ids),
        "groupName": policy.group_name_ok,
        "text": policy.uid_ok,
    }


class Rules:
    """The rule table of one policy (built once per filter)."""

    __slots__ = ("_table",)

    def __init__(self, policy: OutboundPolicy, echoes: Echoes) -> None:
        self._table = _rules(policy, echoes)

    def findings(self, where: str, value: str) -> list[str]:
        name = where.rsplit("/@", 1)[-1]
        rule = self._table.get(name)
        if rule is None:
            return [f"{where}: not in the outbound allow-list"]
        if not rule(value.strip()):
            return [f"{where}: value {mask(value.strip())} is not allowed there"]
        return []

