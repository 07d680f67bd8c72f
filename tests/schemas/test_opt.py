"""Opt payloads: decode(encode(m)) == m, every encoding is XSD-valid, and the opt-reason rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import (
    Availability,
    CanceledOpt,
    CancelOpt,
    CreatedOpt,
    CreateOpt,
    OptReason,
    OptType,
    QualifiedEventId,
)

from .strategies import (
    datetimes,
    durations,
    ei_responses,
    extension_tokens,
    ids,
    targets,
    uris,
)
from .xsd_oracle import assert_xsd_valid

opt_reasons = st.one_of(st.sampled_from(OptReason), extension_tokens.map(OptReason))
availabilities = st.builds(Availability, dtstart=datetimes, duration=durations)
qualified_event_ids = st.builds(
    QualifiedEventId,
    event_id=ids,
    modification_number=st.integers(min_value=0, max_value=2**32 - 1),
)

STRATEGIES: dict[type[schemas.Message], st.SearchStrategy[schemas.Message]] = {
    CreateOpt: st.builds(
        CreateOpt,
        opt_id=ids,
        opt_type=st.sampled_from(OptType),
        opt_reason=opt_reasons,
        market_context=st.one_of(st.none(), uris),
        ven_id=ids,
        vavailability=st.one_of(st.none(), st.lists(availabilities, max_size=3).map(tuple)),
        created_date_time=datetimes,
        request_id=ids,
        qualified_event_id=st.one_of(st.none(), qualified_event_ids),
        target=targets,
        device_class=st.lists(ids, max_size=2).map(tuple),
    ),
    CreatedOpt: st.builds(CreatedOpt, response=ei_responses, opt_id=ids),
    CancelOpt: st.builds(CancelOpt, request_id=ids, opt_id=ids, ven_id=ids),
    CanceledOpt: st.builds(
        CanceledOpt, response=ei_responses, opt_id=st.one_of(st.none(), ids)
    ),
}


@pytest.mark.parametrize("kind", list(STRATEGIES), ids=lambda kind: kind.__name__)
# No deadline: the first example pays for compiling the XSD set, and CI machines are shared.
@settings(deadline=None)
@given(data=st.data())
def test_roundtrip_and_xsd_valid(kind: type[schemas.Message], data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[kind])
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message


# ---------------------------------------------------------------- opt reasons


def test_spec_reasons_are_the_enum_members() -> None:
    assert OptReason("economic") is OptReason.ECONOMIC
    assert OptReason("x-schedule") is OptReason.X_SCHEDULE
    assert not OptReason.MUST_RUN.is_extension


@given(extension_tokens)
def test_extension_reasons_are_opt_reasons_equal_by_value(token: str) -> None:
    reason = OptReason(token)
    assert isinstance(reason, OptReason)
    assert reason == OptReason(token) == token
    assert reason.value == token
    assert reason.is_extension


@pytest.mark.parametrize("bad", ["", "bogus", "Economic", "x-", "x- a", "x-a ", "x-a  b", "x-a\nb"])
def test_other_reasons_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        OptReason(bad)


def _create_opt(**overrides: object) -> CreateOpt:
    fields: dict[str, object] = {
        "opt_id": "opt-1",
        "opt_type": OptType.OPT_OUT,
        "opt_reason": OptReason("x-crowdBalancing"),
        "ven_id": "000123",
        "created_date_time": datetime(2024, 3, 31, 0, 30, tzinfo=UTC),
        "request_id": "req-1",
    }
    fields.update(overrides)
    return CreateOpt(**fields)  # type: ignore[arg-type]


def test_extension_reason_survives_the_wire() -> None:
    decoded = schemas.decode(schemas.encode(_create_opt()))
    assert isinstance(decoded, CreateOpt)
    assert decoded.opt_reason == "x-crowdBalancing"
    assert isinstance(decoded.opt_reason, OptReason)


# ---------------------------------------------------------------- shape on the wire


def test_absent_and_empty_schedules_are_different_messages() -> None:
    absent = schemas.encode(_create_opt())
    empty = schemas.encode(_create_opt(vavailability=()))
    assert b"vavailability" not in absent
    assert b"<xcal:vavailability><xcal:components/></xcal:vavailability>" in empty
    assert_xsd_valid(empty)
    decoded = schemas.decode(empty)
    assert isinstance(decoded, CreateOpt) and decoded.vavailability == ()


def test_an_empty_target_is_still_sent_because_the_xsd_requires_it() -> None:
    wire = schemas.encode(_create_opt())
    assert b"<ei:eiTarget/>" in wire
    assert_xsd_valid(wire)


def test_availability_and_event_reference_decode_to_typed_values() -> None:
    message = _create_opt(
        vavailability=(
            Availability(dtstart=datetime(2024, 6, 1, 12, tzinfo=UTC),
                         duration=timedelta(minutes=15)),
        ),
        qualified_event_id=QualifiedEventId(event_id="000042", modification_number=7),
        device_class=("Energy_Management_System",),
    )
    wire = schemas.encode(message)
    assert b"<xcal:duration>PT15M</xcal:duration>" in wire
    assert b"<power:mrid>Energy_Management_System</power:mrid>" in wire
    decoded = schemas.decode(wire)
    assert isinstance(decoded, CreateOpt)
    assert decoded.vavailability == message.vavailability
    assert decoded.qualified_event_id == QualifiedEventId(event_id="000042", modification_number=7)
    assert decoded.device_class == ("Energy_Management_System",)


@pytest.mark.parametrize("number", [-1, 2**32, True, 1.0])
def test_modification_number_must_be_unsigned_int(number: int) -> None:
    with pytest.raises(schemas.LocalProtocolError):
        QualifiedEventId(event_id="e", modification_number=number)
