"""OpenADR 2.0b registration payloads (EiRegisterParty service): query, create, cancel, reregister.

OpenADR 2.0b profile 8.1 (EiRegisterParty) and oadr_20b.xsd: a VEN asks what a VTN supports
(oadrQueryRegistration), registers (oadrCreatePartyRegistration), and either side cancels; a VTN may
ask the VEN to register again (oadrRequestReregistration). The VTN's answer carries its vtnID, the
profiles and transports it supports, how often a pull-mode VEN may poll, and service-specific info.

Invariants: IDs are ``str`` exactly as received (an empty ``<ei:venID/>`` decodes to ``""``, not
None: openleadr sends that shape when a VEN is not yet registered); every tuple the XSD requires to
be non-empty is checked when the object is built, so an illegal message is our bug, caught early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from ._base import Message
from ._errors import LocalProtocolError
from .parts import EiResponse

__all__ = [
    "CancelPartyRegistration",
    "CanceledPartyRegistration",
    "CreatePartyRegistration",
    "CreatedPartyRegistration",
    "Profile",
    "ProfileName",
    "QueryRegistration",
    "RegistrationExtension",
    "RequestReregistration",
    "ServiceInfo",
    "ServiceName",
    "TransportName",
]


class ProfileName(StrEnum):
    """oadr:oadrProfileType."""

    OADR_20A = "2.0a"
    OADR_20B = "2.0b"


class TransportName(StrEnum):
    """oadr:oadrTransportType."""

    SIMPLE_HTTP = "simpleHttp"
    XMPP = "xmpp"


class ServiceName(StrEnum):
    """oadr:oadrServiceNameType: the services a VTN may attach registration info to."""

    EI_EVENT = "EiEvent"
    EI_OPT = "EiOpt"
    EI_REPORT = "EiReport"
    EI_REGISTER_PARTY = "EiRegisterParty"
    OADR_POLL = "OadrPoll"


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """One oadrProfile: a profile name and the transports the VTN offers for it (at least one)."""

    profile_name: ProfileName
    transports: tuple[TransportName, ...]

    def __post_init__(self) -> None:
        if not self.transports:
            raise LocalProtocolError("oadrProfile needs at least one oadrTransport")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """One oadrService: key/value pairs (oadrInfo, at least one) for one service."""

    service_name: ServiceName
    info: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.info:
            raise LocalProtocolError("oadrService needs at least one oadrInfo")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationExtension:
    """One oadrExtension of oadrCreatedPartyRegistration: a name and any key/value pairs."""

    name: str
    info: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryRegistration(Message):
    """VEN -> VTN: which profiles and transports do you support? (no registration is made)"""

    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatePartyRegistration(Message):
    """VEN -> VTN: register, or re-register when ``registration_id`` is given.

    ``transport_address`` is the VEN's own root URL, needed only for push; ``http_pull_model`` says
    whether a simpleHttp VEN polls (None: not stated on the wire).
    """

    request_id: str
    registration_id: str | None = None
    ven_id: str | None = None
    profile_name: ProfileName = ProfileName.OADR_20B
    transport_name: TransportName = TransportName.SIMPLE_HTTP
    transport_address: str | None = None
    report_only: bool = False
    xml_signature: bool = False
    ven_name: str | None = None
    http_pull_model: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedPartyRegistration(Message):
    """VTN -> VEN: the answer to a query or a registration.

    ``registration_id`` and ``ven_id`` are present once the VEN is registered.
    ``requested_oadr_poll_freq``: a pull-mode VEN polls at most once per this duration.
    """

    response: EiResponse
    registration_id: str | None = None
    ven_id: str | None = None
    vtn_id: str
    profiles: tuple[Profile, ...]
    requested_oadr_poll_freq: timedelta | None = None
    service_specific_info: tuple[ServiceInfo, ...] = ()
    extensions: tuple[RegistrationExtension, ...] = ()

    def __post_init__(self) -> None:
        if not self.profiles:
            raise LocalProtocolError("oadrProfiles needs at least one oadrProfile")


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelPartyRegistration(Message):
    """Either party -> the other: end registration ``registration_id``."""

    request_id: str
    registration_id: str
    ven_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CanceledPartyRegistration(Message):
    """The acknowledgement of :class:`CancelPartyRegistration`."""

    response: EiResponse
    registration_id: str | None = None
    ven_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReregistration(Message):
    """VTN -> VEN: send oadrCreatePartyRegistration again (the VEN answers with oadrResponse)."""

    ven_id: str
