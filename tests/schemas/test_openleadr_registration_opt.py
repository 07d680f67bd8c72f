"""Interop with an independent peer: openleadr 0.5.36 builds registration and opt payloads with its
own templates (openleadr.messaging.create_message); our decoder must read them field by field.

The field sets mirror what openleadr's client and server pass (client.create_party_registration,
client.create_opt, the registration and opt services). IDs are digit strings with leading zeros on
purpose: they must come back as the same strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openleadr.messaging import create_message, parse_message

import schemas
from schemas import (
    Availability,
    CanceledOpt,
    CanceledPartyRegistration,
    CancelOpt,
    CancelPartyRegistration,
    CreatedOpt,
    CreatedPartyRegistration,
    CreateOpt,
    CreatePartyRegistration,
    OptReason,
    OptType,
    Profile,
    ProfileName,
    QualifiedEventId,
    QueryRegistration,
    RequestReregistration,
    TransportName,
)

OK = {"response_code": 200, "response_description": "OK", "request_id": "000123"}
EXPECTED_OK = schemas.EiResponse(code=200, description="OK", request_id="000123")


def from_openleadr(message_type: str, **fields: Any) -> schemas.Message:
    return schemas.decode(create_message(message_type, **fields).encode("utf-8"))


# ---------------------------------------------------------------- registration


def test_query_registration() -> None:
    assert from_openleadr("oadrQueryRegistration", request_id="000123") == QueryRegistration(
        request_id="000123"
    )


def test_create_party_registration_as_a_registered_ven_sends_it() -> None:
    decoded = from_openleadr(
        "oadrCreatePartyRegistration",
        request_id="000123",
        registration_id="000789",
        ven_id="000456",
        ven_name="ven-01",
        http_pull_model=True,
        xml_signature=False,
        report_only=False,
        profile_name="2.0b",
        transport_name="simpleHttp",
        transport_address="https://ven.example:8081/OpenADR2/Simple/2.0b",
    )
    assert decoded == CreatePartyRegistration(
        request_id="000123",
        registration_id="000789",
        ven_id="000456",
        profile_name=ProfileName.OADR_20B,
        transport_name=TransportName.SIMPLE_HTTP,
        transport_address="https://ven.example:8081/OpenADR2/Simple/2.0b",
        report_only=False,
        xml_signature=False,
        ven_name="ven-01",
        http_pull_model=True,
    )


def test_create_party_registration_of_a_new_pull_ven_keeps_openleadrs_literal_none() -> None:
    # openleadr's client passes transport_address=None and its template renders it as the text
    # "None"; we hand that on exactly as received rather than guessing what the peer meant.
    decoded = from_openleadr(
        "oadrCreatePartyRegistration",
        request_id="000123",
        registration_id=None,
        ven_id=None,
        ven_name="device-7",
        http_pull_model=True,
        xml_signature=True,
        report_only=True,
        profile_name="2.0b",
        transport_name="simpleHttp",
        transport_address=None,
    )
    assert isinstance(decoded, CreatePartyRegistration)
    assert decoded.registration_id is None and decoded.ven_id is None
    assert decoded.transport_address == "None"
    assert (decoded.report_only, decoded.xml_signature, decoded.http_pull_model) == (
        True,
        True,
        True,
    )
    assert decoded.ven_name == "device-7"


def test_created_party_registration_with_ids_and_poll_frequency() -> None:
    decoded = from_openleadr(
        "oadrCreatedPartyRegistration",
        response=OK,
        registration_id="000789",
        ven_id="000456",
        vtn_id="000001",
        profiles=[
            {"profile_name": "2.0a", "transports": [{"transport_name": "simpleHttp"}]},
            {
                "profile_name": "2.0b",
                "transports": [{"transport_name": "simpleHttp"}, {"transport_name": "xmpp"}],
            },
        ],
        requested_oadr_poll_freq=timedelta(seconds=10),
    )
    assert decoded == CreatedPartyRegistration(
        response=EXPECTED_OK,
        registration_id="000789",
        ven_id="000456",
        vtn_id="000001",
        profiles=(
            Profile(profile_name=ProfileName.OADR_20A, transports=(TransportName.SIMPLE_HTTP,)),
            Profile(
                profile_name=ProfileName.OADR_20B,
                transports=(TransportName.SIMPLE_HTTP, TransportName.XMPP),
            ),
        ),
        requested_oadr_poll_freq=timedelta(seconds=10),
    )


def test_created_party_registration_answering_a_query_has_empty_ids() -> None:
    # openleadr answers a query with <ei:registrationID/> and <ei:venID/>: present but empty.
    decoded = from_openleadr(
        "oadrCreatedPartyRegistration",
        response=OK,
        registration_id=None,
        ven_id=None,
        vtn_id="vtn-1",
        profiles=[{"profile_name": "2.0b", "transports": [{"transport_name": "simpleHttp"}]}],
        requested_oadr_poll_freq=None,
    )
    assert isinstance(decoded, CreatedPartyRegistration)
    assert (decoded.registration_id, decoded.ven_id) == ("", "")
    assert decoded.vtn_id == "vtn-1"
    assert decoded.requested_oadr_poll_freq is None


def test_cancel_and_canceled_party_registration() -> None:
    assert from_openleadr(
        "oadrCancelPartyRegistration",
        request_id="000123",
        registration_id="000789",
        ven_id="000456",
    ) == CancelPartyRegistration(request_id="000123", registration_id="000789", ven_id="000456")
    assert from_openleadr(
        "oadrCanceledPartyRegistration",
        response=OK,
        registration_id="000789",
        ven_id="000456",
    ) == CanceledPartyRegistration(
        response=EXPECTED_OK, registration_id="000789", ven_id="000456"
    )


def test_request_reregistration() -> None:
    decoded = from_openleadr("oadrRequestReregistration", ven_id="000456")
    assert decoded == RequestReregistration(ven_id="000456")


# ---------------------------------------------------------------- opt


def test_create_opt_with_schedule_event_target_and_device_class() -> None:
    decoded = from_openleadr(
        "oadrCreateOpt",
        opt_id="000321",
        opt_type="optOut",
        opt_reason="participating",
        market_context="http://market.example/cbp",
        ven_id="000456",
        vavailability={
            "components": [
                {"dtstart": datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
                 "duration": timedelta(minutes=15)},
                {"dtstart": datetime(2024, 3, 31, 2, 0, tzinfo=UTC),
                 "duration": timedelta(hours=2)},
            ]
        },
        created_date_time=datetime(2024, 3, 30, 23, 59, 30, tzinfo=UTC),
        request_id="000123",
        event_id="000042",
        modification_number=3,
        targets=[{"resource_id": "000999"}],
        signal_target_mrid="Energy_Management_System",
    )
    assert decoded == CreateOpt(
        opt_id="000321",
        opt_type=OptType.OPT_OUT,
        opt_reason=OptReason.PARTICIPATING,
        market_context="http://market.example/cbp",
        ven_id="000456",
        vavailability=(
            Availability(dtstart=datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
                         duration=timedelta(minutes=15)),
            Availability(dtstart=datetime(2024, 3, 31, 2, 0, tzinfo=UTC),
                         duration=timedelta(hours=2)),
        ),
        created_date_time=datetime(2024, 3, 30, 23, 59, 30, tzinfo=UTC),
        request_id="000123",
        qualified_event_id=QualifiedEventId(event_id="000042", modification_number=3),
        target=schemas.Target(resource_ids=("000999",)),
        device_class=("Energy_Management_System",),
    )


def test_minimal_create_opt_has_an_empty_target() -> None:
    decoded = from_openleadr(
        "oadrCreateOpt",
        opt_id="1",
        opt_type="optIn",
        opt_reason="x-schedule",
        ven_id="000456",
        created_date_time=datetime(2024, 1, 1, tzinfo=UTC),
        request_id="2",
    )
    assert isinstance(decoded, CreateOpt)
    assert decoded.opt_type is OptType.OPT_IN
    assert decoded.opt_reason is OptReason.X_SCHEDULE
    assert decoded.target == schemas.Target()
    assert decoded.vavailability is None and decoded.qualified_event_id is None
    assert decoded.market_context is None and decoded.device_class == ()


def test_opt_acknowledgements_and_cancel() -> None:
    assert from_openleadr("oadrCreatedOpt", response=OK, opt_id="000321") == CreatedOpt(
        response=EXPECTED_OK, opt_id="000321"
    )
    assert from_openleadr(
        "oadrCancelOpt", request_id="000123", opt_id="000321", ven_id="000456"
    ) == CancelOpt(request_id="000123", opt_id="000321", ven_id="000456")
    assert from_openleadr("oadrCanceledOpt", response=OK, opt_id="000321") == CanceledOpt(
        response=EXPECTED_OK, opt_id="000321"
    )


# ---------------------------------------------------------------- hostile and reverse direction


def test_markup_that_openleadrs_templates_leave_unescaped_is_refused_not_crashed() -> None:
    # openleadr renders ven_name into XML without escaping; the result is not well-formed.
    wire = create_message(
        "oadrCreatePartyRegistration",
        request_id="1",
        ven_name="ven<1>",
        http_pull_model=True,
        xml_signature=False,
        report_only=False,
        profile_name="2.0b",
        transport_name="simpleHttp",
        transport_address=None,
    ).encode("utf-8")
    with pytest.raises(schemas.RemoteProtocolError):
        schemas.decode(wire)


def test_openleadr_reads_what_we_send() -> None:
    # Non-numeric IDs: openleadr's own parser turns digit strings like "000123" into ints.
    message = CreatedPartyRegistration(
        response=schemas.EiResponse(request_id="req-a"),
        registration_id="reg-a",
        ven_id="ven-a",
        vtn_id="vtn-a",
        profiles=(Profile(profile_name=ProfileName.OADR_20B,
                          transports=(TransportName.SIMPLE_HTTP,)),),
        requested_oadr_poll_freq=timedelta(seconds=30),
    )
    kind, payload = parse_message(schemas.encode(message))
    assert kind == "oadrCreatedPartyRegistration"
    assert payload["registration_id"] == "reg-a" and payload["ven_id"] == "ven-a"
    assert payload["vtn_id"] == "vtn-a"
    assert payload["requested_oadr_poll_freq"] == timedelta(seconds=30)
    assert payload["profiles"][0]["transports"][0]["transport_name"] == "simpleHttp"

    kind, payload = parse_message(
        schemas.encode(CanceledOpt(response=schemas.EiResponse(request_id="req-b"), opt_id="o-1"))
    )
    assert kind == "oadrCanceledOpt" and payload["opt_id"] == "o-1"
