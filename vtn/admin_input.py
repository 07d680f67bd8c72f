"""What the admin API accepts: its JSON bodies and query parameters, read field by field.

Every body is a JSON object read by a small typed parser per endpoint (:func:`event_of`,
:func:`memberships_of`, :func:`subscription_of`); each field is checked for its type, range and
length, and anything wrong is a :class:`BadInput` that names the field and what is expected, which
the admin app answers with 400. Nothing here looks at storage: an unknown ID is the handlers'
business (404).

Invariants:
- JSON is strict: ``NaN``/``Infinity`` and documents nested too deeply for the parser are
  refused before anything is read; a field the endpoint does not know is refused (a typo must not
  silently fall back to a default).
- Numbers are JSON numbers, never strings or booleans; an ID is a non-empty printable string of at
  most :data:`MAX_ID_CHARS` characters; a list is a JSON array (a string is not a list of its
  characters) of at most :data:`MAX_ITEMS` members.
- Durations are positive and at most :data:`MAX_SPAN`; an event starts within
  :data:`MAX_START_OFFSET` of now, so its end is always a representable time.
- Signal values fit an ``xs:float`` (the XSD type of ``payloadFloat/value``); a market context
  is an ``xs:anyURI`` as libxml2 reads one (what every VEN's validator applies).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from lxml import etree

from schemas import (
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    ReadingType,
    ReportRequest,
    ReportSpecifier,
    ResponseRequired,
    SignalType,
    SpecifierPayload,
    Target,
)
from schemas.events import ActivePeriod, Event
from vtn.errors import VtnError
from vtn.storage import TargetKind, TargetRef

__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_ID_CHARS",
    "MAX_ITEMS",
    "MAX_SPAN",
    "MAX_START_OFFSET",
    "BadInput",
    "event_of",
    "id_of",
    "json_object",
    "memberships_of",
    "new_event_id",
    "subscription_of",
    "time_of",
]

MAX_ID_CHARS: Final = 128
MAX_TEXT_CHARS: Final = 1024  # a market context URI
MAX_ITEMS: Final = 1000
MAX_SPAN: Final = timedelta(days=366)
MAX_START_OFFSET: Final = timedelta(days=100 * 366)
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
_XS_FLOAT_MAX: Final = 3.4028234663852886e38
_ANY_URI_SCHEMA: Final = (b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
                          b'<xs:element name="uri" type="xs:anyURI"/></xs:schema>')
_UNSIGNED_INT_MAX: Final = 2**32 - 1

_E = TypeVar("_E", bound=StrEnum)


class BadInput(VtnError, ValueError):
    """Admin input the API cannot take; the message names the field and what it expects."""


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, strictly (see the module's invariants)."""

    def refuse(constant: str) -> float:
        raise BadInput(f"the body holds {constant}, which is not a JSON number")

    try:
        body = json.loads(raw, parse_constant=refuse)
    except BadInput:
        raise
    except RecursionError:
        raise BadInput("the body is nested too deeply to be read") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise BadInput(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


def id_of(text: str, name: str) -> str:
    """An ID given in a URL path or query: the same rules as one in a body."""
    return _text(text, name, MAX_ID_CHARS)


def time_of(text: str, name: str) -> datetime:
    """An ISO 8601 time with a UTC offset, as UTC, from :data:`EARLIEST` to :data:`LATEST`
    (so a window of a year around it is a representable time)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{name} must be an ISO 8601 time with an offset, not {text!r:.80}"
                       ) from None
    if value.tzinfo is None:
        raise BadInput(f"{name}: time {text!r} needs a UTC offset")
    if not EARLIEST <= value <= LATEST:
        raise BadInput(f"{name} must lie from {EARLIEST.date()} to {LATEST.date()}")
    return value.astimezone(UTC)


class _Fields:
    """One JSON object being read; ``path`` names it in errors (``signals[0]``)."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise BadInput(f"{path or 'the body'} must be a JSON object")
        self._data: Mapping[str, object] = data
        self._path = path
        self._read: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def has(self, key: str) -> bool:
        """Whether ``key`` is given; ``null`` counts as left out (and is no unknown field)."""
        if key in self._data:
            self._read.add(key)
        return self._data.get(key) is not None

    def _get(self, key: str) -> object:
        self._read.add(key)
        value = self._data.get(key)
        if value is None:
            raise BadInput(f"{self.name(key)} is required")
        return value

    def text(self, key: str, *, limit: int = MAX_ID_CHARS) -> str:
        return _text(self._get(key), self.name(key), limit)

    def number(self, key: str, *, bound: float) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{self.name(key)} must be a number, not {value!r:.40}")
        if not -bound <= value <= bound:  # an int of any size compares exactly
            raise BadInput(f"{self.name(key)} must be a number between {-bound:g} and {bound:g}")
        return float(value)

    def seconds(self, key: str) -> timedelta:
        value = self._get(key)
        top = MAX_SPAN.total_seconds()
        # timedelta keeps microseconds: 1e-7 s would become a duration of zero
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not 0 < value <= top or timedelta(seconds=value) <= timedelta(0):
            raise BadInput(f"{self.name(key)} must be a number of seconds of at least a "
                           f"microsecond and at most {top:.0f} ({MAX_SPAN.days} days), not "
                           f"{value!r:.40}")
        return timedelta(seconds=value)

    def integer(self, key: str, *, high: int) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise BadInput(f"{self.name(key)} must be a whole number from 0 to {high}, "
                           f"not {value!r:.40}")
        return value

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise BadInput(f"{self.name(key)} must be true or false, not {value!r:.40}")
        return value

    def choice(self, key: str, kind: type[_E]) -> _E:
        value = self._get(key)
        if isinstance(value, str):  # a StrEnum takes nothing else
            with contextlib.suppress(ValueError):
                return kind(value)
        allowed = ", ".join(repr(member.value) for member in kind)
        raise BadInput(f"{self.name(key)} must be one of {allowed}")

    def texts(self, key: str) -> tuple[str, ...]:
        return tuple(_text(item, f"{self.name(key)}[{n}]", MAX_ID_CHARS)
                     for n, item in enumerate(self._list(key)))

    def objects(self, key: str) -> Iterator[_Fields]:
        for n, item in enumerate(self._list(key)):
            yield _Fields(item, f"{self.name(key)}[{n}]")

    def table(self, key: str) -> _Fields:
        return _Fields(self._get(key), self.name(key))

    def _list(self, key: str) -> list[object]:
        value = self._get(key)
        if not isinstance(value, list):
            raise BadInput(f"{self.name(key)} must be a JSON array, not {value!r:.40}")
        if len(value) > MAX_ITEMS:
            raise BadInput(f"{self.name(key)} has {len(value)} members; at most {MAX_ITEMS}")
        return value

    def done(self) -> None:
        """Refuse the fields nobody read: unknown to this endpoint."""
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise BadInput(f"unknown field {self.name(unknown[0])!r:.80}")


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{name} must be a string, not {value!r:.40}")
    if not value or len(value) > limit:
        raise BadInput(f"{name} must have 1 to {limit} characters, not {len(value)}")
    if not value.isprintable():
        raise BadInput(f"{name} must hold printable characters only")
    return value


def _uri(value: str, name: str) -> str:
    """``value`` when the XSD's ``xs:anyURI`` takes it (libxml2 refuses e.g. ``%%%``, ``[::1``):
    an event a VEN's validator refuses would be stored and counted delivered, yet reach nobody."""
    element = etree.Element("uri")
    element.text = value
    if not etree.XMLSchema(etree.fromstring(_ANY_URI_SCHEMA)).validate(element):
        raise BadInput(f"{name} must be a URI (xs:anyURI), not {value!r:.80}")
    return value


# ---------------------------------------------------------------- events
def event_of(body: dict[str, Any], event_id: str, now: datetime) -> Event:
    """The body of ``POST /events`` or ``PUT /events/{id}`` as modification 0 of ``event_id``
    (events.modify_event numbers a modification); an ``event_id`` in the body must be it."""
    fields = _Fields(body, "")
    if fields.has("event_id") and fields.text("event_id") != event_id:
        raise BadInput(f"event_id {body['event_id']!r} differs from the event's {event_id!r}")
    signals = tuple(_signal(s, index) for index, s in enumerate(fields.objects("signals")))
    if not signals:
        raise BadInput("signals must name at least one signal")
    start = time_of(fields.text("start", limit=64), "start")
    if abs(start - now) > MAX_START_OFFSET:
        raise BadInput(f"start must be within {MAX_START_OFFSET.days} days of now")
    first = sum((i.duration or timedelta() for i in signals[0].intervals), timedelta())
    duration = fields.seconds("duration_s") if fields.has("duration_s") else first
    if duration > MAX_SPAN:
        raise BadInput(f"the intervals of signals[0] last {duration}; at most {MAX_SPAN.days} "
                       "days (or give duration_s)")
    descriptor = EventDescriptor(
        event_id=event_id, modification_number=0,
        market_context=_uri(fields.text("market_context", limit=MAX_TEXT_CHARS),
                            fields.name("market_context")),
        created_date_time=now, event_status=EventStatus.FAR,
        priority=fields.integer("priority", high=_UNSIGNED_INT_MAX)
        if fields.has("priority") else None,
        test_event="true" if fields.has("test_event") and fields.flag("test_event") else None)
    required = (fields.choice("response_required", ResponseRequired)
                if fields.has("response_required") else ResponseRequired.ALWAYS)
    target = _target(fields.table("targets"))
    fields.done()
    return Event(descriptor=descriptor, active_period=ActivePeriod(dtstart=start,
                                                                   duration=duration),
                 signals=signals, target=target, response_required=required)


def new_event_id(body: dict[str, Any]) -> str | None:
    """The ``event_id`` a ``POST /events`` body names, checked; None when it names none."""
    fields = _Fields(body, "")
    return fields.text("event_id") if fields.has("event_id") else None


def _signal(fields: _Fields, index: int) -> EventSignal:
    parts = tuple(fields.objects("intervals"))
    intervals = tuple(
        EventInterval(values=(i.number("value", bound=_XS_FLOAT_MAX),), uid=str(n),
                      duration=i.seconds("duration_s"))
        for n, i in enumerate(parts))
    for part in parts:
        part.done()
    if not intervals:
        raise BadInput(f"{fields.name('intervals')} must hold at least one interval")
    signal = EventSignal(
        signal_name=fields.text("name"),
        signal_type=fields.choice("type", SignalType) if fields.has("type") else SignalType.LEVEL,
        signal_id=fields.text("id") if fields.has("id") else str(index),
        intervals=intervals)
    fields.done()
    return signal


_TARGET_KEYS: Final = ("ven_ids", "group_ids", "resource_ids", "party_ids")


def _target(fields: _Fields) -> Target:
    target = Target(**{key: fields.texts(key) if fields.has(key) else ()
                       for key in _TARGET_KEYS})
    fields.done()
    if not (target.ven_ids or target.group_ids or target.resource_ids or target.party_ids):
        raise BadInput("targets must name at least one venID, group, resource or party")
    return target


# ---------------------------------------------------------------- VENs and reports
_MEMBERSHIPS: Final = {"groups": TargetKind.GROUP, "resources": TargetKind.RESOURCE,
                       "parties": TargetKind.PARTY}


def memberships_of(body: dict[str, Any]) -> tuple[TargetRef, ...]:
    """The body of ``PUT /vens/{id}/memberships``: every membership the VEN has from now on."""
    fields = _Fields(body, "")
    members = tuple(TargetRef(kind=kind, value=value) for key, kind in _MEMBERSHIPS.items()
                    if fields.has(key) for value in fields.texts(key))
    fields.done()
    return members


def subscription_of(body: dict[str, Any], *, default_granularity: timedelta,
                    request_id: str) -> ReportRequest:
    """The body of ``POST /vens/{id}/reports/subscriptions``; ``request_id`` unless it names
    its own ``report_request_id``."""
    fields = _Fields(body, "")
    granularity = (fields.seconds("granularity_s") if fields.has("granularity_s")
                   else default_granularity)
    back = (fields.seconds("report_back_duration_s") if fields.has("report_back_duration_s")
            else granularity)
    reading = (fields.choice("reading_type", ReadingType) if fields.has("reading_type")
               else ReadingType.X_NOT_APPLICABLE)
    r_ids = fields.texts("r_ids")
    if not r_ids:
        raise BadInput("r_ids must name at least one rID")
    request = ReportRequest(
        report_request_id=(fields.text("report_request_id")
                           if fields.has("report_request_id") else request_id),
        report_specifier=ReportSpecifier(
            report_specifier_id=fields.text("report_specifier_id"),
            granularity=granularity, report_back_duration=back,
            specifier_payloads=tuple(SpecifierPayload(r_id=r, reading_type=reading)
                                     for r in r_ids)))
    fields.done()
    return request
