"""Property tests for oadrPoll and oadrResponse: decode(encode(m)) == m, and the XSD accepts it;
the one-field payloads' decoder builder against the class call."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from schemas._base import builder

from .strategies import ei_responses, ids
from .xsd_oracle import assert_xsd_valid


@given(st.builds(schemas.Poll, ven_id=ids))
def test_poll_roundtrip(message: schemas.Poll) -> None:
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message


@given(st.builds(schemas.Response, response=ei_responses, ven_id=st.one_of(st.none(), ids)))
def test_response_roundtrip(message: schemas.Response) -> None:
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message


@pytest.mark.parametrize(("kind", "field"), [(schemas.Poll, "ven_id"),
                                             (schemas.QueryRegistration, "request_id"),
                                             (schemas.RequestReregistration, "ven_id")])
@given(value=ids)
def test_the_one_field_payloads_builder_builds_what_the_class_call_does(
        kind: type[schemas.Message], field: str, value: str) -> None:
    built, called = builder(kind)(**{field: value}), kind(**{field: value})  # type: ignore[call-arg]
    assert type(built) is kind
    assert built == called and hash(built) == hash(called) and repr(built) == repr(called)
    assert built.signature is called.signature is schemas.SignatureState.ABSENT
    with pytest.raises(FrozenInstanceError):
        setattr(built, field, "other")
