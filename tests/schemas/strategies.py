"""Hypothesis strategies shared by the payload families' property tests, and a fixed CBP activation
event (:func:`cbp_activation`) for the tests that need one exact event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

import schemas
from schemas import (
    ActivePeriod,
    Event,
    EventBaseline,
    EventDescriptor,
    EventInterval,
    EventSignal,
    EventStatus,
    ResponseRequired,
    SignalType,
    Target,
)
from schemas.units import ItemBase, ItemKind

# IDs: printable text incl. markup characters and digit-only strings with leading zeros; XML 1.0
# cannot carry control characters or lone surrogates, and lxml normalises \r, so leave those out.
_ID_ALPHABET = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\r"
)
ids = st.one_of(
    st.text(_ID_ALPHABET, min_size=1, max_size=40).filter(lambda s: s.strip() == s and s != ""),
    st.from_regex(r"\A0[0-9]{1,8}\Z"),
)
short_text = st.text(_ID_ALPHABET, max_size=30).filter(lambda s: s.strip() == s)

datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=7 * 86400).map(lambda s: timedelta(seconds=s))
finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=32).map(float)

targets = st.builds(
    schemas.Target,
    group_ids=st.lists(ids, max_size=2).map(tuple),
    group_names=st.lists(ids, max_size=2).map(tuple),
    resource_ids=st.lists(ids, max_size=2).map(tuple),
    ven_ids=st.lists(ids, max_size=2).map(tuple),
    party_ids=st.lists(ids, max_size=2).map(tuple),
)
ei_responses = st.builds(
    schemas.EiResponse,
    code=st.sampled_from([200, 400, 450, 451, 452, 453, 454, 459, 460, 461, 462, 463, 469]),
    description=st.one_of(st.none(), short_text),
    request_id=ids,
)

# ---------------------------------------------------------------- appended: registration / opt

# emix:marketContext and other xs:anyURI values: plain http(s) URLs.
uris = st.from_regex(
    r"\Ahttps?://[a-z][a-z0-9-]{0,15}(\.[a-z]{2,6})?(/[A-Za-z0-9_.~-]{1,12}){0,3}\Z"
)
# ei:EiExtensionTokenType (x-\S.*) as an xs:token: no leading, trailing or doubled whitespace.
_TOKEN_WORD = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=8
)
extension_tokens = st.lists(_TOKEN_WORD, min_size=1, max_size=3).map(lambda w: "x-" + " ".join(w))


unsigned = st.integers(min_value=0, max_value=2**32 - 1)


optional_durations = st.one_of(st.none(), durations)


optional_text = st.one_of(st.none(), short_text)


item_bases = st.one_of(
    st.none(),
    st.sampled_from([
        ItemBase.megawatts(),
        ItemBase.kilowatts(),
        ItemBase.of(ItemKind.ENERGY_REAL, scale=schemas.units.SiScale.KILO),
        ItemBase.of(ItemKind.VOLTAGE),
        ItemBase.of(ItemKind.CURRENCY_PER_KWH, units="EUR"),
        ItemBase.of(ItemKind.PULSE_COUNT),
    ]),
)


signal_names = st.one_of(
    st.sampled_from(sorted(schemas.SPEC_SIGNAL_NAMES)), extension_tokens
)


intervals = st.builds(
    EventInterval,
    values=st.lists(finite_floats, min_size=1, max_size=2).map(tuple),
    duration=optional_durations,
    uid=st.one_of(st.none(), ids),
    dtstart=st.one_of(st.none(), datetimes),
)


interval_tuples = st.lists(intervals, min_size=1, max_size=3).map(tuple)


signals = st.builds(
    EventSignal,
    intervals=interval_tuples,
    signal_name=signal_names,
    signal_type=st.sampled_from(SignalType),
    signal_id=ids,
    target=st.one_of(st.none(), targets),
    item_base=item_bases,
    current_value=st.one_of(st.none(), finite_floats),
)


baselines = st.builds(
    EventBaseline,
    dtstart=datetimes,
    duration=durations,
    intervals=interval_tuples,
    baseline_id=ids,
    baseline_name=short_text,
    resource_ids=st.lists(ids, max_size=2).map(tuple),
    item_base=item_bases,
)


descriptors = st.builds(
    EventDescriptor,
    event_id=ids,
    modification_number=unsigned,
    market_context=uris,
    created_date_time=datetimes,
    event_status=st.sampled_from(EventStatus),
    modification_date_time=st.one_of(st.none(), datetimes),
    modification_reason=optional_text,
    priority=st.one_of(st.none(), unsigned),
    test_event=st.one_of(st.none(), st.sampled_from(["true", "false"]), short_text),
    vtn_comment=optional_text,
)


active_periods = st.builds(
    ActivePeriod,
    dtstart=datetimes,
    duration=durations,
    start_after=optional_durations,
    notification=optional_durations,
    ramp_up=optional_durations,
    recovery=optional_durations,
)


events = st.builds(
    Event,
    descriptor=descriptors,
    active_period=active_periods,
    signals=st.lists(signals, min_size=1, max_size=2).map(tuple),
    target=targets,
    baseline=st.one_of(st.none(), baselines),
    response_required=st.sampled_from(ResponseRequired),
)


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def cbp_activation(*setpoints: float, modification_number: int = 0) -> Event:
    """A CBP activation: LOAD_DISPATCH setpoints in MW, one per 15-minute ISP."""
    isp = timedelta(minutes=15)
    return Event(
        descriptor=EventDescriptor(
            event_id="000123",
            modification_number=modification_number,
            market_context="https://tso.example/afrr",
            created_date_time=T0,
            event_status=EventStatus.NEAR,
        ),
        active_period=ActivePeriod(dtstart=T0, duration=isp * len(setpoints)),
        signals=(
            EventSignal(
                intervals=tuple(
                    EventInterval(values=(mw,), duration=isp, uid=str(i))
                    for i, mw in enumerate(setpoints)
                ),
                signal_name="LOAD_DISPATCH",
                signal_type=SignalType.SETPOINT,
                signal_id="0001",
                item_base=ItemBase.megawatts(),
            ),
        ),
        target=Target(ven_ids=("0042",)),
    )
