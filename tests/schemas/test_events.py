"""Event payloads: decode(encode(m)) == m, every encoding is XSD-valid, and the edges."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import (
    CreatedEvent,
    DistributeEvent,
    EiResponse,
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
from schemas._wire import enum_reader
from schemas.units import ItemBase, ItemKind, PowerAttributes, SiScale

from .strategies import (
    T0,
    cbp_activation,
    ei_responses,
    events,
    ids,
    optional_text,
    unsigned,
)
from .xsd_oracle import assert_xsd_valid

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
_EXAMPLES: dict[type[schemas.Message], int] = {DistributeEvent: 40}


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


def test_cbp_activation_keeps_values_ids_and_unit() -> None:
    message = DistributeEvent(request_id="0007", vtn_id="tso", events=(cbp_activation(3.0, 5.5),))
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


def test_a_peers_empty_event_responses_decode_as_none() -> None:
    # we never write an empty ei:eventResponses; the XSD lets a peer send one
    message = CreatedEvent(response=EiResponse(request_id="1"), ven_id="0042")
    wire = schemas.encode(message).replace(b"<ei:venID>", b"<ei:eventResponses/><ei:venID>")
    assert b"<ei:eventResponses/>" in wire
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
        # a bool is an int to Python; it would go out as "True"
        lambda: EventDescriptor(event_id="e", modification_number=True, market_context="http://m",
                                created_date_time=T0, event_status=EventStatus.FAR),
        lambda: EventDescriptor(event_id="e", modification_number=0, market_context="http://m",
                                created_date_time=T0, event_status=EventStatus.FAR, priority=True),
        lambda: RequestEvent(request_id="r", ven_id="v", reply_limit=False),
        lambda: EventResponse(request_id="r", event_id="e", modification_number=True,
                              opt_type=OptType.OPT_IN),
        lambda: EventResponse(request_id="r", event_id="e", modification_number=0,
                              opt_type=OptType.OPT_IN, code=1000),
        lambda: cbp_activation(),
    ],
)
def test_illegal_messages_are_refused_when_built(build: object) -> None:
    with pytest.raises(schemas.LocalProtocolError):
        build()  # type: ignore[operator]


def test_an_int_beyond_every_float_is_refused_when_sent() -> None:
    message = DistributeEvent(request_id="r", vtn_id="v", events=(cbp_activation(1.0, 10**400),))
    with pytest.raises(schemas.LocalProtocolError, match="too large for a float"):
        schemas.encode(message)


def test_a_bool_given_for_a_signal_value_is_refused_when_sent() -> None:
    message = DistributeEvent(request_id="r", vtn_id="v", events=(cbp_activation(1.0, True),))
    with pytest.raises(schemas.LocalProtocolError, match="True is a bool, not a number"):
        schemas.encode(message)
    current = replace(cbp_activation(1.0), signals=(replace(
        cbp_activation(1.0).signals[0], current_value=False),))
    with pytest.raises(schemas.LocalProtocolError, match="False is a bool, not a number"):
        schemas.encode(DistributeEvent(request_id="r", vtn_id="v", events=(current,)))


def test_test_event_reading_follows_the_xsd_note() -> None:
    base = cbp_activation(1.0).descriptor
    assert not base.is_test
    assert not replace(base, test_event="false").is_test
    assert replace(base, test_event="true").is_test
    assert replace(base, test_event="").is_test


def _swap(wire: bytes, old: bytes, new: bytes) -> bytes:
    assert old in wire
    return wire.replace(old, new)


def test_non_float_payload_in_an_event_is_invalid_data() -> None:
    activation = DistributeEvent(request_id="1", vtn_id="v", events=(cbp_activation(2.0),))
    wire = schemas.encode(activation)
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
    activation = DistributeEvent(request_id="1", vtn_id="v", events=(cbp_activation(2.0),))
    wire = schemas.encode(activation)
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
    event = cbp_activation(1.0)
    wire = schemas.encode(DistributeEvent(request_id="1", vtn_id="v", events=(event,)))
    wire = _swap(wire, b"</xcal:duration></xcal:properties>",
                 b"</xcal:duration><xcal:tolerance><xcal:tolerate/></xcal:tolerance>"
                 b"</xcal:properties>")
    assert_xsd_valid(wire)
    decoded = schemas.decode(wire)
    assert isinstance(decoded, DistributeEvent)
    assert decoded.events == (event,)


@pytest.mark.parametrize("kind", [EventStatus, SignalType, ResponseRequired, OptType, SiScale])
def test_enum_reader_gives_what_the_enum_gives(kind: type[StrEnum]) -> None:
    # the decoders read tokens through a dict; padded texts and unknown ones take the Enum's path
    read = enum_reader(kind)
    for member in kind:
        assert read(member.value) is member
        assert read(f" \n{member.value}\t") is member
    with pytest.raises(ValueError):
        read("no-such-token")


@pytest.mark.parametrize("kind", list(ItemKind))
def test_every_item_base_kind_round_trips_in_a_signal(kind: ItemKind) -> None:
    # the item base decoder reads itemDescription and itemUnits by position, the rest by tag;
    # ItemBase.of's default description must be one the XSD allows (currencyPerThm's was not)
    try:
        item = ItemBase.of(kind, scale=SiScale.KILO)
    except ValueError:  # units the XSD leaves open
        units = "celsius" if kind is ItemKind.TEMPERATURE else "EUR"
        item = ItemBase.of(kind, scale=SiScale.KILO, units=units)
    if item.power_attributes is not None:
        item = replace(item, power_attributes=PowerAttributes(hertz=60, voltage=230.5, ac=False))
    activation = cbp_activation(2.0)
    signal = replace(activation.signals[0], item_base=item)
    message = DistributeEvent(request_id="1", vtn_id="v",
                              events=(replace(activation, signals=(signal,)),))
    data = schemas.encode(message)
    assert_xsd_valid(data)
    assert schemas.decode(data) == message


def test_a_currency_description_the_xsd_does_not_allow_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match=r"currencyPerKWh.*'currencyPerThm'"):
        ItemBase.of(ItemKind.CURRENCY_PER_THM, units="EUR", description="currencyPerThm")


_OPTIONAL_DESCRIPTOR_FIELDS: tuple[Callable[[EventDescriptor], EventDescriptor], ...] = (
    lambda d: replace(d, modification_date_time=T0),
    lambda d: replace(d, modification_reason="re-dispatch"),
    lambda d: replace(d, priority=3),
    lambda d: replace(d, test_event="false"),
    lambda d: replace(d, vtn_comment="ISP 57"),
)


@pytest.mark.parametrize("present", range(32))
@pytest.mark.parametrize("signal_extras", ["none", "target", "item", "current", "all"])
def test_every_mix_of_optional_descriptor_and_signal_fields_round_trips(
        present: int, signal_extras: str) -> None:
    # the descriptor and signal decoders read required children by position and tell the
    # optional ones apart by tag or child count: every subset must land in its own field
    activation = cbp_activation(2.0, 4.5)
    descriptor = activation.descriptor
    for bit, fill in enumerate(_OPTIONAL_DESCRIPTOR_FIELDS):
        if present >> bit & 1:
            descriptor = fill(descriptor)
    signal = replace(
        activation.signals[0],
        target=Target(resource_ids=("r1",)) if signal_extras in ("target", "all") else None,
        item_base=ItemBase.megawatts() if signal_extras in ("item", "all") else None,
        current_value=1.5 if signal_extras in ("current", "all") else None,
    )
    event = replace(activation, descriptor=descriptor,
                    signals=(signal,))
    message = DistributeEvent(request_id="1", vtn_id="v", events=(event,))
    assert schemas.decode(schemas.encode(message)) == message
