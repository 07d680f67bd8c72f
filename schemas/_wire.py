"""XML primitives shared by every payload family: namespaces, reading helpers, time values.

Invariants: tags are Clark names built once here; times on the wire are UTC ``...Z`` (xcal
DateTimeType allows only ``Z`` or no zone; a zone-less time is read as UTC); durations are whole
seconds (xcal DurationType admits only integer fields). Calendar units (years, months) are refused:
their length depends on a start the duration does not carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from math import isfinite
from typing import Final, TypeVar

from lxml import etree

from ._errors import InvalidData, LocalProtocolError

OADR: Final = "http://openadr.org/oadr-2.0b/2012/07"
EI: Final = "http://docs.oasis-open.org/ns/energyinterop/201110"
PYLD: Final = "http://docs.oasis-open.org/ns/energyinterop/201110/payloads"
EMIX: Final = "http://docs.oasis-open.org/ns/emix/2011/06"
XCAL: Final = "urn:ietf:params:xml:ns:icalendar-2.0"
STRM: Final = "urn:ietf:params:xml:ns:icalendar-2.0:stream"
POWER: Final = "http://docs.oasis-open.org/ns/emix/2011/06/power"
SCALE: Final = "http://docs.oasis-open.org/ns/emix/2011/06/siscale"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
DSIG11: Final = "http://www.w3.org/2009/xmldsig11#"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
GML: Final = "http://www.opengis.net/gml/3.2"
ATOM: Final = "http://www.w3.org/2005/Atom"
GB: Final = "http://naesb.org/espi"

NSMAP: Final = {
    "oadr": OADR,
    "ei": EI,
    "pyld": PYLD,
    "emix": EMIX,
    "xcal": XCAL,
    "strm": STRM,
    "power": POWER,
    "scale": SCALE,
    "ds": DS,
    "dsig11": DSIG11,
    "xsi": XSI,
    "gml": GML,
    "atom": ATOM,
}

SCHEMA_VERSION: Final = "2.0b"


def q(namespace: str, local: str) -> str:
    """Clark name ``{namespace}local``."""
    return f"{{{namespace}}}{local}"


SCHEMA_VERSION_ATTR: Final = q(EI, "schemaVersion")
XSI_TYPE: Final = q(XSI, "type")


# A deep copy of an element and its subtree: lxml's __copy__ copies in C (as copy.deepcopy ends up
# doing) without deepcopy's memo bookkeeping. The stubs do not declare it, hence the lookup.
copy_tree: Final[Callable[[etree._Element], etree._Element]] = vars(etree._Element)["__copy__"]


# ---------------------------------------------------------------- reading


Children = dict[str, etree._Element]


def children(parent: Iterable[etree._Element]) -> Children:
    """``parent``'s children (or a list of elements) by tag, from one pass: each
    ``iterchildren(tag)`` sets up a matcher and rescans, so a decoder that reads several fields of
    one element looks them up here instead. For the children the XSD allows once (of a repeated
    tag the last one is kept; read repeated ones with ``iterchildren``). Reading ``.tag`` builds a
    string (~3 k instructions, many times a proxy or its text), so where the XSD fixes an
    element's position a decoder reads it by index and keeps this for the optional ones."""
    kids: Children = {}
    for element in parent:  # a loop, not a comprehension: Python 3.11 runs those as a call
        kids[element.tag] = element
    return kids


def first(parent: etree._Element, tag: str) -> etree._Element | None:
    """The first direct child ``tag``, or None (iterchildren is ~3x cheaper than find)."""
    return next(parent.iterchildren(tag), None)


def child(kids: Children, tag: str) -> etree._Element:
    """The required child ``tag``; the XSD guarantees it, so absence means a schema gap."""
    element = kids.get(tag)
    if element is None:
        raise InvalidData(f"lacks <{etree.QName(tag).localname}>")
    return element


def text(kids: Children, tag: str) -> str:
    """Text of the required child ``tag``, exactly as received (IDs stay strings: 000123)."""
    element = kids.get(tag)  # child(), inlined: every decoder reads most of its fields here
    if element is None:
        raise InvalidData(f"lacks <{etree.QName(tag).localname}>")
    return element.text or ""


def text_opt(kids: Children, tag: str) -> str | None:
    element = kids.get(tag)
    if element is None:
        return None
    return element.text or ""


def texts(parent: etree._Element, tag: str) -> tuple[str, ...]:
    return tuple(element.text or "" for element in parent.iterchildren(tag))


E = TypeVar("E", bound=Enum)


def enum_reader(kind: type[E]) -> Callable[[str], E]:
    """A reader of ``kind`` from its wire text (an xs:token enumeration): one dict lookup, where
    calling the Enum costs ~10x as much. A text not found as it stands (padded, or no member) goes
    to ``kind(text.strip())``, which maps it or raises ValueError exactly as before."""
    members: dict[str, E] = {member.value: member for member in kind}

    def read(value: str) -> E:
        member = members.get(value)
        return kind(value.strip()) if member is None else member

    return read


def parse_bool(value: str) -> bool:
    match value.strip():
        case "true" | "1":
            return True
        case "false" | "0":
            return False
        case other:
            raise InvalidData(f"not an xs:boolean: {other!r}")


def format_bool(value: bool) -> str:
    return "true" if value else "false"


def parse_int(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidData(f"not an integer: {value!r}") from None


def check_unsigned(name: str, value: int | None, most: int = 0xFFFFFFFF) -> None:
    """:class:`LocalProtocolError` unless ``value`` is None or an int in 0..``most`` (an
    xs:unsignedInt by default). A bool is an int to Python, but True would go out as "True",
    which no peer reads as a number."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 0 <= value <= most):
        raise LocalProtocolError(f"{name} {_digits(value)} is not an integer in 0..{most}")


def parse_float(value: str) -> float:
    """A finite number. xs:float admits NaN and INF (and 1e400 reads as INF), but no OpenADR
    quantity means anything as one and format_float cannot send it back: refuse it on the way in.
    """
    try:
        number = float(value)  # float() itself ignores the whitespace xs:float collapses
    except ValueError:
        raise InvalidData(f"not a number: {value!r}") from None
    if not isfinite(number):
        raise InvalidData(f"not a finite number: {value!r}")
    return number


def format_float(value: float) -> str:
    """Shortest text that reads back as the same float (repr), in xs:float/xs:decimal form;
    :class:`LocalProtocolError` for a non-finite number, an int beyond every float or a bool
    (an int to Python, which float() would send as "1.0")."""
    if isinstance(value, bool):
        raise LocalProtocolError(f"{value!r} is a bool, not a number; it cannot be sent as one")
    if value != value or value in (float("inf"), float("-inf")):
        raise LocalProtocolError(f"cannot send non-finite number {value!r}")
    try:
        shortest = repr(float(value))
    except OverflowError:
        raise LocalProtocolError(f"cannot send {_digits(value)}: too large for a float") from None
    if "e" in shortest:
        # xs:decimal (power:hertz, power:voltage) has no exponent form: spell the same shortest
        # digits out positionally (1e+26 -> 100...0, 1e-07 -> 0.0000001); xs:float reads it too.
        return format(Decimal(shortest), "f")
    return shortest


def _digits(value: object) -> str:
    """A number for an error message, its middle elided past 40 digits."""
    text = str(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-20:]} ({len(text)} digits)"


# ---------------------------------------------------------------- time


# Zero-padded 00..59, and a small cache of date texts: isoformat() formats through a printf-like
# path costing ~3x this, and telemetry times share their date. Bounded, so memory stays flat.
_TWO_DIGITS: Final = tuple(f"{n:02d}" for n in range(60))


@lru_cache(maxsize=64)
def _date_text(day: date) -> str:
    return day.isoformat()  # pads the year to four digits, as xcal (\d{4}) wants


def format_datetime(value: datetime) -> str:
    """xcal:date-time in UTC with ``Z``; refuses naive datetimes (a bug on our side)."""
    tzinfo = value.tzinfo
    if tzinfo is None:
        raise LocalProtocolError(f"naive datetime {value!r}: crowdflex sends only aware UTC times")
    utc = value if tzinfo is UTC else value.astimezone(UTC)
    # strftime("%Y") would give "1" for year 1 on glibc, which the xcal pattern (\d{4}) refuses.
    two = _TWO_DIGITS
    base = f"{_date_text(utc.date())}T{two[utc.hour]}:{two[utc.minute]}:{two[utc.second]}"
    if utc.microsecond:
        base += f".{utc.microsecond:06d}".rstrip("0")
    return base + "Z"


def parse_datetime(value: str) -> datetime:
    if value.endswith("Z"):  # the common form, read by fromisoformat directly (aware UTC)
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # e.g. 7+ fraction digits, which the XSD allows: take the general path
    raw = value.strip()
    try:
        parsed = datetime.fromisoformat(raw[:-1] if raw.endswith("Z") else raw)
    except ValueError:
        raise InvalidData(f"not an xcal date-time: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 lies past datetime.max in UTC
        raise InvalidData(f"date-time out of range: {value!r}") from None


_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<weeks>\d+)W|(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?)$"
)


@lru_cache(maxsize=256)  # few distinct durations recur (PT15M, PT1H...); bounded
def format_duration(value: timedelta) -> str:
    """xcal:duration with whole seconds, e.g. ``PT15M``, ``P1DT2H``, ``-PT5S``, ``PT0S``."""
    total = value.total_seconds()
    if total != int(total):
        raise LocalProtocolError(f"duration {value!r} has a fraction of a second; xcal has none")
    sign, seconds = ("-" if total < 0 else ""), abs(int(total))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    out = f"{sign}P" + (f"{days}D" if days else "")
    if clock:
        out += "T" + clock
    elif not days:
        out += "T0S"
    return out


# The longest duration a peer may send: the XSD sets no bound, but a duration beyond a century
# describes no schedule, and what the VTN adds it to (now, a dtstart) or stores it as (SQLite
# keeps an interval as 1970-01-01 plus it) must stay a representable date-time.
MAX_DURATION: Final = timedelta(days=36_525)


# Durations repeat (PT15M, PT1H, ...) and the regex costs ~15x a cache hit; bounded, so a peer
# sending ever new ones costs a miss each, never memory. Errors are raised, never cached.
@lru_cache(maxsize=256)
def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if match is None or value.strip() in ("P", "PT", "-P", "+P"):
        raise InvalidData(f"not an xcal duration: {value!r}")
    parts = match.groupdict()
    if parts["years"] or parts["months"]:
        raise InvalidData(f"duration {value!r} uses years or months, whose length is undefined")
    try:
        result = timedelta(
            weeks=int(parts["weeks"] or 0),
            days=int(parts["days"] or 0),
            hours=int(parts["hours"] or 0),
            minutes=int(parts["minutes"] or 0),
            seconds=float(parts["seconds"] or 0),
        )
    except OverflowError:  # timedelta spans at most 999,999,999 days; the XSD has no bound
        raise InvalidData(f"duration out of range: {value!r}") from None
    if result > MAX_DURATION:
        raise InvalidData(f"duration out of range: {value!r} is longer than "
                          f"{MAX_DURATION.days} days")
    return -result if parts["sign"] == "-" else result


def check_period(dtstart: datetime, duration: timedelta) -> None:
    """Refuse (454) a period whose end, ``dtstart + duration``, no date-time can hold (e.g.
    9999-12-31 plus P1D): every consumer of a decoded period may compute its end."""
    try:
        dtstart + duration
    except OverflowError:
        raise InvalidData(f"period out of range: {dtstart.isoformat()} plus {duration} ends "
                          "past what a date-time holds") from None


_DTSTART = q(XCAL, "dtstart")
_DURATION_TAG = q(XCAL, "duration")


def only_text(element: etree._Element) -> str:
    """The text of ``element``'s one child, for the elements whose XSD type is a sequence of one
    required element (xcal:dtstart/date-time, a DurationPropType's xcal:duration, xcal:uid/text,
    ei:payloadFloat/value, ei:eiMarketContext; oadrPoll, oadrRequestReregistration and
    oadrQueryRegistration): decoders see only XSD-valid trees without comments or PIs, so it is
    the first child, read without a tag lookup."""
    return element[0].text or ""


def read_dtstart(kids: Children) -> datetime | None:
    element = kids.get(_DTSTART)
    return None if element is None else parse_datetime(only_text(element))


def read_duration(kids: Children, tag: str = _DURATION_TAG) -> timedelta | None:
    element = kids.get(tag)
    return None if element is None else parse_duration(only_text(element))
