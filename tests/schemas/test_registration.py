"""Registration payloads: decode(encode(m)) == m, every encoding is XSD-valid, and the edges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schemas
from schemas import (
    CanceledPartyRegistration,
    CancelPartyRegistration,
    CreatedPartyRegistration,
    CreatePartyRegistration,
    Profile,
    ProfileName,
    QueryRegistration,
    RegistrationExtension,
    RequestReregistration,
    ServiceInfo,
    ServiceName,
    TransportName,
)

from .strategies import durations, ei_responses, ids, short_text
from .xsd_oracle import assert_xsd_valid

optional_ids = st.one_of(st.none(), ids)
optional_text = st.one_of(st.none(), short_text)
key_values = st.lists(st.tuples(short_text, short_text), max_size=3).map(tuple)

profiles = st.builds(
    Profile,
    profile_name=st.sampled_from(ProfileName),
    transports=st.lists(st.sampled_from(TransportName), min_size=1, max_size=3).map(tuple),
)
service_infos = st.builds(
    ServiceInfo,
    service_name=st.sampled_from(ServiceName),
    info=st.lists(st.tuples(short_text, short_text), min_size=1, max_size=3).map(tuple),
)
extensions = st.builds(RegistrationExtension, name=short_text, info=key_values)

STRATEGIES: dict[type[schemas.Message], st.SearchStrategy[schemas.Message]] = {
    QueryRegistration: st.builds(QueryRegistration, request_id=ids),
    CreatePartyRegistration: st.builds(
        CreatePartyRegistration,
        request_id=ids,
        registration_id=optional_ids,
        ven_id=optional_ids,
        profile_name=st.sampled_from(ProfileName),
        transport_name=st.sampled_from(TransportName),
        transport_address=optional_text,
        report_only=st.booleans(),
        xml_signature=st.booleans(),
        ven_name=optional_text,
        http_pull_model=st.one_of(st.none(), st.booleans()),
    ),
    CreatedPartyRegistration: st.builds(
        CreatedPartyRegistration,
        response=ei_responses,
        registration_id=optional_ids,
        ven_id=optional_ids,
        vtn_id=ids,
        profiles=st.lists(profiles, min_size=1, max_size=3).map(tuple),
        requested_oadr_poll_freq=st.one_of(st.none(), durations),
        service_specific_info=st.lists(service_infos, max_size=3).map(tuple),
        extensions=st.lists(extensions, max_size=2).map(tuple),
    ),
    CancelPartyRegistration: st.builds(
        CancelPartyRegistration, request_id=ids, registration_id=ids, ven_id=optional_ids
    ),
    CanceledPartyRegistration: st.builds(
        CanceledPartyRegistration,
        response=ei_responses,
        registration_id=optional_ids,
        ven_id=optional_ids,
    ),
    RequestReregistration: st.builds(RequestReregistration, ven_id=ids),
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


def test_minimal_create_is_a_pull_mode_20b_registration() -> None:
    wire = schemas.encode(CreatePartyRegistration(request_id="000123"))
    assert_xsd_valid(wire)
    decoded = schemas.decode(wire)
    assert isinstance(decoded, CreatePartyRegistration)
    assert decoded.request_id == "000123"
    assert decoded.profile_name is ProfileName.OADR_20B
    assert decoded.transport_name is TransportName.SIMPLE_HTTP
    assert decoded.http_pull_model is None
    assert b"oadrHttpPullModel" not in wire and b"oadrTransportAddress" not in wire


def test_poll_frequency_is_a_timedelta_on_the_wire_as_xcal_duration() -> None:
    message = CreatedPartyRegistration(
        response=schemas.EiResponse(request_id="r1"),
        vtn_id="vtn",
        profiles=(Profile(profile_name=ProfileName.OADR_20B,
                          transports=(TransportName.SIMPLE_HTTP,)),),
        requested_oadr_poll_freq=timedelta(seconds=10),
    )
    wire = schemas.encode(message)
    assert b"<xcal:duration>PT10S</xcal:duration>" in wire
    decoded = schemas.decode(wire)
    assert isinstance(decoded, CreatedPartyRegistration)
    assert decoded.requested_oadr_poll_freq == timedelta(seconds=10)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Profile(profile_name=ProfileName.OADR_20B, transports=()),
        lambda: ServiceInfo(service_name=ServiceName.EI_EVENT, info=()),
        lambda: CreatedPartyRegistration(
            response=schemas.EiResponse(), vtn_id="vtn", profiles=()
        ),
    ],
)
def test_empty_required_sequences_are_refused_when_built(build: object) -> None:
    with pytest.raises(schemas.LocalProtocolError):
        build()  # type: ignore[operator]


def _payload(inner: str) -> bytes:
    return (
        '<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07" '
        'xmlns:ei="http://docs.oasis-open.org/ns/energyinterop/201110" '
        'xmlns:pyld="http://docs.oasis-open.org/ns/energyinterop/201110/payloads">'
        f"<oadr:oadrSignedObject>{inner}</oadr:oadrSignedObject></oadr:oadrPayload>"
    ).encode()


def test_token_values_with_surrounding_whitespace_decode() -> None:
    # oadrProfileName and oadrTransportName are xs:token: the XSD accepts the padded form.
    wire = _payload(
        "<oadr:oadrCreatePartyRegistration><pyld:requestID>7</pyld:requestID>"
        "<oadr:oadrProfileName> 2.0b </oadr:oadrProfileName>"
        "<oadr:oadrTransportName>\n simpleHttp\n</oadr:oadrTransportName>"
        "<oadr:oadrReportOnly>0</oadr:oadrReportOnly>"
        "<oadr:oadrXmlSignature>1</oadr:oadrXmlSignature>"
        "</oadr:oadrCreatePartyRegistration>"
    )
    decoded = schemas.decode(wire)
    assert decoded == CreatePartyRegistration(
        request_id="7", report_only=False, xml_signature=True
    )


def test_unknown_transport_is_a_schema_violation() -> None:
    wire = _payload(
        "<oadr:oadrCreatePartyRegistration><pyld:requestID>7</pyld:requestID>"
        "<oadr:oadrProfileName>2.0b</oadr:oadrProfileName>"
        "<oadr:oadrTransportName>carrierPigeon</oadr:oadrTransportName>"
        "<oadr:oadrReportOnly>false</oadr:oadrReportOnly>"
        "<oadr:oadrXmlSignature>false</oadr:oadrXmlSignature>"
        "</oadr:oadrCreatePartyRegistration>"
    )
    with pytest.raises(schemas.RemoteProtocolError):
        schemas.decode(wire)


def test_markup_in_ids_stays_data() -> None:
    message = CancelPartyRegistration(
        request_id="<x/>&amp;", registration_id="000123", ven_id="a<b"
    )
    wire = schemas.encode(message)
    assert_xsd_valid(wire)
    assert schemas.decode(wire) == message
