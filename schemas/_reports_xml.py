"""Wire form of :mod:`schemas.reports`: the eight EiReport payloads.

Each payload's children follow its complexType in oadr_20b.xsd ("REPORT PAYLOADS"); the parts
(oadrReport, oadrReportRequest) are in ``_report_parts_xml``. An oadrCancelReport nested in an
oadrUpdatedReport is written without the schemaVersion attribute, which only payload roots carry.
"""

from __future__ import annotations

from typing import Final

from lxml import etree

from ._report_parts_xml import (
    decode_report,
    decode_report_request,
    encode_report,
    encode_report_request,
)
from ._wire import (
    EI,
    OADR,
    PYLD,
    children,
    format_bool,
    parse_bool,
    q,
    text_opt,
)
from ._writer import Node, leaf, leaf_value, payload_root, sub
from .parts import EiResponse, decode_response, encode_response
from .reports import (
    CanceledReport,
    CancelReport,
    CreatedReport,
    CreateReport,
    RegisteredReport,
    RegisterReport,
    Report,
    UpdatedReport,
    UpdateReport,
)

_REGISTER: Final = q(OADR, "oadrRegisterReport")
_REGISTERED: Final = q(OADR, "oadrRegisteredReport")
_CREATE: Final = q(OADR, "oadrCreateReport")
_CREATED: Final = q(OADR, "oadrCreatedReport")
_UPDATE: Final = q(OADR, "oadrUpdateReport")
_UPDATED: Final = q(OADR, "oadrUpdatedReport")
_CANCEL: Final = q(OADR, "oadrCancelReport")
_CANCELED: Final = q(OADR, "oadrCanceledReport")

_REQUEST_ID: Final = q(PYLD, "requestID")
_REPORT_TO_FOLLOW: Final = q(PYLD, "reportToFollow")
_VEN_ID: Final = q(EI, "venID")
_EI_RESPONSE: Final = q(EI, "eiResponse")
_REPORT_REQUEST_ID: Final = q(EI, "reportRequestID")
_REPORT: Final = q(OADR, "oadrReport")
_REPORT_REQUEST: Final = q(OADR, "oadrReportRequest")
_PENDING: Final = q(OADR, "oadrPendingReports")


def _sub_ven_id(element: Node, ven_id: str | None) -> None:
    if ven_id is not None:
        leaf(element, _VEN_ID, ven_id)


def _response(element: etree._Element) -> EiResponse:
    # eiResponse is the first child of every acknowledgement payload (XSD sequence).
    return decode_response(element[0])


# ---------------------------------------------------------------- register / registered


def encode_register_report(parent: Node, message: RegisterReport) -> None:
    element = payload_root(_REGISTER, parent)
    leaf(element, _REQUEST_ID, message.request_id)
    for report in message.reports:
        encode_report(element, report)
    _sub_ven_id(element, message.ven_id)
    if message.report_request_id is not None:
        leaf(element, _REPORT_REQUEST_ID, message.report_request_id)


def decode_register_report(element: etree._Element) -> RegisterReport:
    request_id, reports, ven_id = _decode_report_list(element)
    return RegisterReport(
        request_id=request_id,
        reports=reports,
        ven_id=ven_id,
        report_request_id=text_opt(children(element), _REPORT_REQUEST_ID),
    )


def encode_registered_report(parent: Node, message: RegisteredReport) -> None:
    element = payload_root(_REGISTERED, parent)
    encode_response(element, message.response)
    for request in message.report_requests:
        encode_report_request(element, request)
    _sub_ven_id(element, message.ven_id)


def decode_registered_report(element: etree._Element) -> RegisteredReport:
    return RegisteredReport(
        response=_response(element),
        report_requests=tuple(
            decode_report_request(request) for request in element.iterchildren(_REPORT_REQUEST)
        ),
        ven_id=text_opt(children(element), _VEN_ID),
    )


# ---------------------------------------------------------------- create / created


def encode_create_report(parent: Node, message: CreateReport) -> None:
    element = payload_root(_CREATE, parent)
    leaf(element, _REQUEST_ID, message.request_id)
    for request in message.report_requests:
        encode_report_request(element, request)
    _sub_ven_id(element, message.ven_id)


def decode_create_report(element: etree._Element) -> CreateReport:
    kids = children(element)
    return CreateReport(
        request_id=text_opt(kids, _REQUEST_ID) or "",
        report_requests=tuple(
            decode_report_request(request) for request in element.iterchildren(_REPORT_REQUEST)
        ),
        ven_id=text_opt(kids, _VEN_ID),
    )


def _encode_pending(element: Node, pending: tuple[str, ...]) -> None:
    holder = sub(element, _PENDING)
    for report_request_id in pending:
        leaf(holder, _REPORT_REQUEST_ID, report_request_id)


def _pending(holder: etree._Element) -> tuple[str, ...]:
    # oadrPendingReports holds ei:reportRequestID elements only (XSD)
    return tuple([item.text or "" for item in holder])


def encode_created_report(parent: Node, message: CreatedReport) -> None:
    element = payload_root(_CREATED, parent)
    encode_response(element, message.response)
    _encode_pending(element, message.pending_reports)
    _sub_ven_id(element, message.ven_id)


def decode_created_report(element: etree._Element) -> CreatedReport:
    # XSD sequence: ei:eiResponse, oadr:oadrPendingReports, ei:venID?
    return CreatedReport(
        response=_response(element),
        pending_reports=_pending(element[1]),
        ven_id=element[2].text or "" if len(element) == 3 else None,
    )


# ---------------------------------------------------------------- update / updated


def encode_update_report(parent: Node, message: UpdateReport) -> None:
    element = payload_root(_UPDATE, parent)
    leaf(element, _REQUEST_ID, message.request_id)
    for report in message.reports:
        encode_report(element, report)
    _sub_ven_id(element, message.ven_id)


def _decode_report_list(element: etree._Element) -> tuple[str, tuple[Report, ...], str | None]:
    """requestID, oadrReport*, venID: the body shared by oadrUpdateReport and oadrRegisterReport,
    read in one pass (the hot path of telemetry)."""
    request_id = ""
    reports: list[Report] = []
    ven_id: str | None = None
    for part in element:
        tag = part.tag
        if tag == _REPORT:
            reports.append(decode_report(part))
        elif tag == _REQUEST_ID:
            request_id = part.text or ""
        elif tag == _VEN_ID:
            ven_id = part.text or ""
    return request_id, tuple(reports), ven_id


def decode_update_report(element: etree._Element) -> UpdateReport:
    request_id, reports, ven_id = _decode_report_list(element)
    return UpdateReport(request_id=request_id, reports=reports, ven_id=ven_id)


def encode_updated_report(parent: Node, message: UpdatedReport) -> None:
    element = payload_root(_UPDATED, parent)
    encode_response(element, message.response)
    if message.cancel_report is not None:
        _encode_cancel_body(sub(element, _CANCEL), message.cancel_report)
    _sub_ven_id(element, message.ven_id)


def decode_updated_report(element: etree._Element) -> UpdatedReport:
    kids = children(element)
    cancel = kids.get(_CANCEL)
    return UpdatedReport(
        response=_response(element),
        cancel_report=None if cancel is None else decode_cancel_report(cancel),
        ven_id=text_opt(kids, _VEN_ID),
    )


# ---------------------------------------------------------------- cancel / canceled


def _encode_cancel_body(element: Node, message: CancelReport) -> None:
    leaf(element, _REQUEST_ID, message.request_id)
    for report_request_id in message.report_request_ids:
        leaf(element, _REPORT_REQUEST_ID, report_request_id)
    leaf_value(element, _REPORT_TO_FOLLOW, format_bool(message.report_to_follow))
    _sub_ven_id(element, message.ven_id)


def encode_cancel_report(parent: Node, message: CancelReport) -> None:
    _encode_cancel_body(payload_root(_CANCEL, parent), message)


def decode_cancel_report(element: etree._Element) -> CancelReport:
    # XSD sequence: pyld:requestID, ei:reportRequestID+, pyld:reportToFollow, ei:venID?: read by
    # position, one tag looked at (the last child's, where the optional venID may stand)
    kids = list(element)
    with_ven = kids[-1].tag == _VEN_ID
    follow = len(kids) - 2 if with_ven else len(kids) - 1
    return CancelReport(
        request_id=kids[0].text or "",
        report_request_ids=tuple(item.text or "" for item in kids[1:follow]),
        report_to_follow=parse_bool(kids[follow].text or ""),
        ven_id=kids[-1].text or "" if with_ven else None,
    )


def encode_canceled_report(parent: Node, message: CanceledReport) -> None:
    element = payload_root(_CANCELED, parent)
    encode_response(element, message.response)
    _encode_pending(element, message.pending_reports)
    _sub_ven_id(element, message.ven_id)


def decode_canceled_report(element: etree._Element) -> CanceledReport:
    # XSD sequence: ei:eiResponse, oadr:oadrPendingReports, ei:venID?
    return CanceledReport(
        response=_response(element),
        pending_reports=_pending(element[1]),
        ven_id=element[2].text or "" if len(element) == 3 else None,
    )


ENCODERS = {
    RegisterReport: encode_register_report,
    RegisteredReport: encode_registered_report,
    CreateReport: encode_create_report,
    CreatedReport: encode_created_report,
    UpdateReport: encode_update_report,
    UpdatedReport: encode_updated_report,
    CancelReport: encode_cancel_report,
    CanceledReport: encode_canceled_report,
}
DECODERS = {
    _REGISTER: decode_register_report,
    _REGISTERED: decode_registered_report,
    _CREATE: decode_create_report,
    _CREATED: decode_created_report,
    _UPDATE: decode_update_report,
    _UPDATED: decode_updated_report,
    _CANCEL: decode_cancel_report,
    _CANCELED: decode_canceled_report,
}
