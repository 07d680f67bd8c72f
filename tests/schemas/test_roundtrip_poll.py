"""Property tests for oadrPoll and oadrResponse: decode(encode(m)) == m, and the XSD accepts it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import schemas

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
