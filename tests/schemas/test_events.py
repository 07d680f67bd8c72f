"""Event payloads: decode(encode(m)) == m, every encoding is XSD-valid, and the edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import (
    ActivePeriod,
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    Event,
    EventBaseline,
    EventDescriptor,
    EventInterval,
    EventResponse,
    EventSignal,
    EventStatus,
    OptType,
    RequestEvent,
    ResponseRequired,
    SignalType,
    Target,
)
from schemas.units import ItemBase, ItemKind

from .strategies import (
    datetimes,
    durations,
    ei_responses,
    extension_tokens,
    finite_floats,
    ids,
    short_text,
    targets,
    uris,
)
from .xsd_oracle import assert_xsd_valid

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
event_responses = st.builds(
    EventResponse,
    request_id=ids,
    event_id=ids,
    modification_number=unsigned,
    opt_type=st.sampled_from(OptType),
    code=st.sampled_from([200, 400, 450, 454, 460, 462, 463]),
    description=optional_text,
)

STRATEGIES: dict[type[schemas.Message], st.SearchStrategy[schemas.Message]] = {
    RequestEvent: st.builds(
        RequestEvent, request_id=ids, ven_id=ids, reply_limit=st.one_of(st.none(), unsigned)
    ),
    DistributeEvent: st.builds(
        DistributeEvent,
        request_id=ids,
        vtn_id=ids,
        events=st.lists(events, max_size=2).map(tuple),
        response=st.one_of(st.none(), ei_responses),
    ),
    CreatedEvent: st.builds(
        CreatedEvent,
        response=ei_responses,
        ven_id=ids,
        event_responses=st.lists(event_responses, max_size=3).map(tuple),
    ),
}


# Whole event trees are large: fewer examples keep the suite fast. No deadline: the first example
# compiles the XSD set, and these cores are shared.
_EXAMPLES = {DistributeEvent: 40}


@pytest.mark.parametrize("kind", list(STRATEGIES), ids=lambda k: k.__name__)
def test_roundtrip_and_xsd_valid(kind: type[schemas.Message]) -> None:
    @settings(deadline=None, max_examples=_EXAMPLES.get(kind, 100))
    @given(STRATEGIES[kind])
    def check(message: schemas.Message) -> None:
        wire = schemas.encode(message)
        assert_xsd_valid(wire)
        assert schemas.decode(wire) == message

    check()


# ---------------------------------------------------------------- examples and edges

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _activation(*setpoints: float, modification_number: int = 0) -> Event:
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


def test_cbp_activation_keeps_values_ids_and_unit() -> None:
    message = DistributeEvent(request_id="0007", vtn_id="tso", events=(_activation(3.0, 5.5),))
    decoded = schemas.decode(schemas.encode(message))
    assert isinstance(decoded, DistributeEvent)
    (event,) = decoded.events
    assert event.event_id == "000123"
    assert event.response_required is ResponseRequired.ALWAYS
    assert [i.value for i in event.signals[0].intervals] == [3.0, 5.5]
    assert event.signals[0].item_base == ItemBase.megawatts()
    assert event.target.ven_ids == ("0042",)


def test_empty_distribution_and_empty_event_responses_round_trip() -> None:
    for message in (
        DistributeEvent(request_id="1", vtn_id="v"),
        CreatedEvent(response=EiResponse(request_id=""), ven_id="0042"),
    ):
        wire = schemas.encode(message)
        assert_xsd_valid(wire)
        assert schemas.decode(wire) == message


def test_markup_in_ids_is_data() -> None:
    message = RequestEvent(request_id="<a>&amp;</a>", ven_id="]]>")
    wire = schemas.encode(message)
    assert b"<a>" not in wire
    assert schemas.decode(wire) == message


@pytest.mark.parametrize(
    "build",
    [
        lambda: EventInterval(values=()),
        lambda: EventSignal(intervals=(), signal_name="SIMPLE", signal_type=SignalType.LEVEL,
                            signal_id="s"),
        lambda: EventSignal(intervals=(EventInterval(values=(1.0,)),), signal_name="FOO",
                            signal_type=SignalType.LEVEL, signal_id="s"),
        lambda: EventSignal(intervals=(EventInterval(values=(1.0,)),), signal_name="x-a ",
                            signal_type=SignalType.LEVEL, signal_id="s"),
        lambda: EventDescriptor(event_id="e", modification_number=-1, market_context="http://m",
                                created_date_time=T0, event_status=EventStatus.FAR),
        lambda: RequestEvent(request_id="r", ven_id="v", reply_limit=2**32),
        lambda: EventResponse(request_id="r", event_id="e", modification_number=0,
                              opt_type=OptType.OPT_IN, code=1000),
        lambda: _activation(),
    ],
)
def test_illegal_messages_are_refused_when_built(build: object) -> None:
    with pytest.raises(schemas.LocalProtocolError):
        build()  # type: ignore[operator]


def test_test_event_reading_follows_the_xsd_note() -> None:
    base = _activation(1.0).descriptor
    assert not base.is_test
    assert not EventDescriptor(**{**_fields(base), "test_event": "false"}).is_test
    assert EventDescriptor(**{**_fields(base), "test_event": "true"}).is_test
    assert EventDescriptor(**{**_fields(base), "test_event": ""}).is_test


def _fields(descriptor: EventDescriptor) -> dict[str, object]:
    return {name: getattr(descriptor, name) for name in EventDescriptor.__dataclass_fields__}


def _swap(wire: bytes, old: bytes, new: bytes) -> bytes:
    assert old in wire
    return wire.replace(old, new)


def test_non_float_payload_in_an_event_is_invalid_data() -> None:
    wire = schemas.encode(DistributeEvent(request_id="1", vtn_id="v", events=(_activation(2.0),)))
    status = (
        b"<oadr:oadrPayloadResourceStatus><oadr:oadrOnline>true</oadr:oadrOnline>"
        b"<oadr:oadrManualOverride>false</oadr:oadrManualOverride>"
        b"</oadr:oadrPayloadResourceStatus>"
    )
    hostile = _swap(
        wire, b"<ei:payloadFloat><ei:value>2.0</ei:value></ei:payloadFloat>", status
    )
    assert_xsd_valid(hostile)  # legal XML for the schema, meaningless in an event
    with pytest.raises(schemas.InvalidData):
        schemas.decode(hostile)


def test_peer_whitespace_in_tokens_and_zoneless_times_are_accepted() -> None:
    wire = schemas.encode(DistributeEvent(request_id="1", vtn_id="v", events=(_activation(2.0),)))
    wire = _swap(wire, b">setpoint<", b"> setpoint\n<")
    wire = _swap(wire, b">LOAD_DISPATCH<", b">\tLOAD_DISPATCH <")
    wire = _swap(wire, b"<ei:createdDateTime>2024-05-01T12:00:00Z",
                 b"<ei:createdDateTime>2024-05-01T12:00:00")
    decoded = schemas.decode(wire)
    assert isinstance(decoded, DistributeEvent)
    signal = decoded.events[0].signals[0]
    assert (signal.signal_type, signal.signal_name) == (SignalType.SETPOINT, "LOAD_DISPATCH")
    assert decoded.events[0].descriptor.created_date_time == T0


def test_present_but_empty_optional_containers_decode_as_absent() -> None:
    created = schemas.encode(CreatedEvent(response=EiResponse(request_id="1"), ven_id="v"))
    created = _swap(created, b"<ei:venID>", b"<ei:eventResponses/><ei:venID>")
    assert_xsd_valid(created)
    assert schemas.decode(created) == CreatedEvent(response=EiResponse(request_id="1"), ven_id="v")
    event = _activation(1.0)
    wire = schemas.encode(DistributeEvent(request_id="1", vtn_id="v", events=(event,)))
    wire = _swap(wire, b"</xcal:duration></xcal:properties>",
                 b"</xcal:duration><xcal:tolerance><xcal:tolerate/></xcal:tolerance>"
                 b"</xcal:properties>")
    assert_xsd_valid(wire)
    decoded = schemas.decode(wire)
    assert isinstance(decoded, DistributeEvent)
    assert decoded.events == (event,)
