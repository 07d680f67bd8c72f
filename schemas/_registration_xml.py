"""Wire form of :mod:`schemas.registration`, in the element order of oadr_20b.xsd.

Enumerated values are xs:token in the XSD, so the schema accepts surrounding whitespace; the
decoders strip it before looking the value up.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from ._base import builder
from ._wire import (
    EI,
    OADR,
    PYLD,
    XCAL,
    Children,
    child,
    children,
    format_bool,
    format_duration,
    only_text,
    parse_bool,
    parse_duration,
    q,
    text,
    text_opt,
)
from ._writer import Node, leaf, leaf_opt, leaf_value, payload_root, sub
from .parts import decode_response, encode_response
from .registration import (
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

_QUERY = q(OADR, "oadrQueryRegistration")
_CREATE = q(OADR, "oadrCreatePartyRegistration")
_CREATED = q(OADR, "oadrCreatedPartyRegistration")
_CANCEL = q(OADR, "oadrCancelPartyRegistration")
_CANCELED = q(OADR, "oadrCanceledPartyRegistration")
_REREGISTER = q(OADR, "oadrRequestReregistration")

_REQUEST_ID = q(PYLD, "requestID")
_EI_RESPONSE = q(EI, "eiResponse")
_REGISTRATION_ID = q(EI, "registrationID")
_VEN_ID = q(EI, "venID")
_VTN_ID = q(EI, "vtnID")
_PROFILE_NAME = q(OADR, "oadrProfileName")
_TRANSPORT_NAME = q(OADR, "oadrTransportName")
_TRANSPORT_ADDRESS = q(OADR, "oadrTransportAddress")
_REPORT_ONLY = q(OADR, "oadrReportOnly")
_XML_SIGNATURE = q(OADR, "oadrXmlSignature")
_VEN_NAME = q(OADR, "oadrVenName")
_HTTP_PULL_MODEL = q(OADR, "oadrHttpPullModel")
_PROFILES = q(OADR, "oadrProfiles")
_PROFILE = q(OADR, "oadrProfile")
_TRANSPORTS = q(OADR, "oadrTransports")
_TRANSPORT = q(OADR, "oadrTransport")
_POLL_FREQ = q(OADR, "oadrRequestedOadrPollFreq")
_DURATION = q(XCAL, "duration")
_SERVICE_INFO = q(OADR, "oadrServiceSpecificInfo")
_SERVICE = q(OADR, "oadrService")
_SERVICE_NAME = q(OADR, "oadrServiceName")
_INFO = q(OADR, "oadrInfo")
_KEY = q(OADR, "oadrKey")
_VALUE = q(OADR, "oadrValue")
# oadrExtensions and its children are local declarations; oadr_20b.xsd has
# elementFormDefault="qualified", so they are in the oadr namespace all the same.
_EXTENSIONS = q(OADR, "oadrExtensions")
_EXTENSION = q(OADR, "oadrExtension")
_EXTENSION_NAME = q(OADR, "oadrExtensionName")

_new_query = builder(QueryRegistration)
_new_reregister = builder(RequestReregistration)


def _token(kids: Children, tag: str) -> str:
    return text(kids, tag).strip()


# ---------------------------------------------------------------- query / create


def encode_query(parent: Node, message: QueryRegistration) -> None:
    leaf(payload_root(_QUERY, parent), _REQUEST_ID, message.request_id)


def decode_query(element: etree._Element) -> QueryRegistration:
    return _new_query(request_id=only_text(element))  # the XSD's one child


def encode_create(parent: Node, message: CreatePartyRegistration) -> None:
    element = payload_root(_CREATE, parent)
    leaf(element, _REQUEST_ID, message.request_id)
    leaf_opt(element, _REGISTRATION_ID, message.registration_id)
    leaf_opt(element, _VEN_ID, message.ven_id)
    leaf(element, _PROFILE_NAME, message.profile_name.value)
    leaf(element, _TRANSPORT_NAME, message.transport_name.value)
    leaf_opt(element, _TRANSPORT_ADDRESS, message.transport_address)
    leaf_value(element, _REPORT_ONLY, format_bool(message.report_only))
    leaf_value(element, _XML_SIGNATURE, format_bool(message.xml_signature))
    leaf_opt(element, _VEN_NAME, message.ven_name)
    if message.http_pull_model is not None:
        leaf_value(element, _HTTP_PULL_MODEL, format_bool(message.http_pull_model))


def decode_create(element: etree._Element) -> CreatePartyRegistration:
    kids = children(element)
    pull = text_opt(kids, _HTTP_PULL_MODEL)
    return CreatePartyRegistration(
        request_id=text(kids, _REQUEST_ID),
        registration_id=text_opt(kids, _REGISTRATION_ID),
        ven_id=text_opt(kids, _VEN_ID),
        profile_name=ProfileName(_token(kids, _PROFILE_NAME)),
        transport_name=TransportName(_token(kids, _TRANSPORT_NAME)),
        transport_address=text_opt(kids, _TRANSPORT_ADDRESS),
        report_only=parse_bool(text(kids, _REPORT_ONLY)),
        xml_signature=parse_bool(text(kids, _XML_SIGNATURE)),
        ven_name=text_opt(kids, _VEN_NAME),
        http_pull_model=None if pull is None else parse_bool(pull),
    )


# ---------------------------------------------------------------- created


def _encode_info(parent: Node, pairs: Iterable[tuple[str, str]]) -> None:
    for key, value in pairs:
        info = sub(parent, _INFO)
        leaf(info, _KEY, key)
        leaf(info, _VALUE, value)


def _decode_info(parent: etree._Element) -> tuple[tuple[str, str], ...]:
    pairs = (children(info) for info in parent.iterchildren(_INFO))
    return tuple((text(pair, _KEY), text(pair, _VALUE)) for pair in pairs)


def _encode_profiles(parent: Node, profiles: Iterable[Profile]) -> None:
    profiles_element = sub(parent, _PROFILES)
    for profile in profiles:
        element = sub(profiles_element, _PROFILE)
        leaf(element, _PROFILE_NAME, profile.profile_name.value)
        transports = sub(element, _TRANSPORTS)
        for transport in profile.transports:
            leaf(sub(transports, _TRANSPORT), _TRANSPORT_NAME, transport.value)


def _decode_profile(element: etree._Element) -> Profile:
    kids = children(element)
    transports = child(kids, _TRANSPORTS).iterchildren(_TRANSPORT)
    return Profile(
        profile_name=ProfileName(_token(kids, _PROFILE_NAME)),
        transports=tuple(TransportName(_token(children(t), _TRANSPORT_NAME))
                         for t in transports),
    )


def _encode_services(parent: Node, services: tuple[ServiceInfo, ...]) -> None:
    if not services:
        return
    element = sub(parent, _SERVICE_INFO)
    for service in services:
        service_element = sub(element, _SERVICE)
        leaf(service_element, _SERVICE_NAME, service.service_name.value)
        _encode_info(service_element, service.info)


def _decode_services(kids: Children) -> tuple[ServiceInfo, ...]:
    element = kids.get(_SERVICE_INFO)
    if element is None:
        return ()
    return tuple(
        ServiceInfo(service_name=ServiceName(_token(children(s), _SERVICE_NAME)),
                    info=_decode_info(s))
        for s in element.iterchildren(_SERVICE)
    )


def _encode_extensions(
    parent: Node, extensions: tuple[RegistrationExtension, ...]
) -> None:
    if not extensions:
        return
    element = sub(parent, _EXTENSIONS)
    for extension in extensions:
        extension_element = sub(element, _EXTENSION)
        leaf(extension_element, _EXTENSION_NAME, extension.name)
        _encode_info(extension_element, extension.info)


def _decode_extensions(kids: Children) -> tuple[RegistrationExtension, ...]:
    element = kids.get(_EXTENSIONS)
    if element is None:
        return ()
    return tuple(
        RegistrationExtension(name=text(children(e), _EXTENSION_NAME), info=_decode_info(e))
        for e in element.iterchildren(_EXTENSION)
    )


def encode_created(parent: Node, message: CreatedPartyRegistration) -> None:
    element = payload_root(_CREATED, parent)
    encode_response(element, message.response)
    leaf_opt(element, _REGISTRATION_ID, message.registration_id)
    leaf_opt(element, _VEN_ID, message.ven_id)
    leaf(element, _VTN_ID, message.vtn_id)
    _encode_profiles(element, message.profiles)
    if message.requested_oadr_poll_freq is not None:
        freq = sub(element, _POLL_FREQ)
        leaf_value(freq, _DURATION, format_duration(message.requested_oadr_poll_freq))
    _encode_services(element, message.service_specific_info)
    _encode_extensions(element, message.extensions)


def decode_created(element: etree._Element) -> CreatedPartyRegistration:
    kids = children(element)
    freq = kids.get(_POLL_FREQ)
    return CreatedPartyRegistration(
        response=decode_response(child(kids, _EI_RESPONSE)),
        registration_id=text_opt(kids, _REGISTRATION_ID),
        ven_id=text_opt(kids, _VEN_ID),
        vtn_id=text(kids, _VTN_ID),
        profiles=tuple(
            _decode_profile(p) for p in child(kids, _PROFILES).iterchildren(_PROFILE)
        ),
        requested_oadr_poll_freq=(None if freq is None
                                  else parse_duration(text(children(freq), _DURATION))),
        service_specific_info=_decode_services(kids),
        extensions=_decode_extensions(kids),
    )


# ---------------------------------------------------------------- cancel / reregister


def encode_cancel(parent: Node, message: CancelPartyRegistration) -> None:
    element = payload_root(_CANCEL, parent)
    leaf(element, _REQUEST_ID, message.request_id)
    leaf(element, _REGISTRATION_ID, message.registration_id)
    leaf_opt(element, _VEN_ID, message.ven_id)


def decode_cancel(element: etree._Element) -> CancelPartyRegistration:
    kids = children(element)
    return CancelPartyRegistration(
        request_id=text(kids, _REQUEST_ID),
        registration_id=text(kids, _REGISTRATION_ID),
        ven_id=text_opt(kids, _VEN_ID),
    )


def encode_canceled(parent: Node, message: CanceledPartyRegistration) -> None:
    element = payload_root(_CANCELED, parent)
    encode_response(element, message.response)
    leaf_opt(element, _REGISTRATION_ID, message.registration_id)
    leaf_opt(element, _VEN_ID, message.ven_id)


def decode_canceled(element: etree._Element) -> CanceledPartyRegistration:
    kids = children(element)
    return CanceledPartyRegistration(
        response=decode_response(child(kids, _EI_RESPONSE)),
        registration_id=text_opt(kids, _REGISTRATION_ID),
        ven_id=text_opt(kids, _VEN_ID),
    )


def encode_reregister(parent: Node, message: RequestReregistration) -> None:
    leaf(payload_root(_REREGISTER, parent), _VEN_ID, message.ven_id)


def decode_reregister(element: etree._Element) -> RequestReregistration:
    return _new_reregister(ven_id=only_text(element))  # the XSD's one child


ENCODERS = {
    QueryRegistration: encode_query,
    CreatePartyRegistration: encode_create,
    CreatedPartyRegistration: encode_created,
    CancelPartyRegistration: encode_cancel,
    CanceledPartyRegistration: encode_canceled,
    RequestReregistration: encode_reregister,
}
DECODERS = {
    _QUERY: decode_query,
    _CREATE: decode_create,
    _CREATED: decode_created,
    _CANCEL: decode_cancel,
    _CANCELED: decode_canceled,
    _REREGISTER: decode_reregister,
}
