"""Which conformance cases fail against openleadr's VTN, and why: pinned here, so a change on
either side shows (tests/conformance/test_openleadr_vtn.py runs them; test_docs.py checks that
the conformance guide states the same list).

openleadr's ``OpenADRServer`` has API calls to queue and cancel events and nothing else an
operator step needs (modify an event, request or cancel a report, cancel a registration, request
re-registration): the operator refuses those steps, and the cases fail saying so.
"""

from __future__ import annotations

__all__ = ["EXPECTED_FAILURES"]

_NO_ECHO = "oadrResponse carries requestID ''"
_NO_OPT = "oadrCreateOpt to EiOpt: HTTP 404"
_NO_REPORT_REQUEST = "openleadr's VTN has no API to request_report"


# case -> a fragment of the reason the suite gives (request IDs in reasons are random)
EXPECTED_FAILURES = {
    "N1_0040_TH_VEN": "expected oadrCanceledPartyRegistration, got oadrResponse 200",
    "N1_0050_TH_VEN": "openleadr's VTN has no API to cancel_registration",
    "N1_0060_TH_VEN": "openleadr's VTN has no API to request_reregistration",
    "N1_0080_TH_VEN": "accepted it: oadrCreatedPartyRegistration 200",
    "E1_1010_TH_VEN": "expected oadrDistributeEvent, got oadrResponse 200",
    "E1_1020_TH_VEN": _NO_ECHO,
    "E1_1030_TH_VEN": _NO_ECHO,
    "E1_1040_TH_VEN": "openleadr's VTN has no API to modify_event",
    "E1_1050_TH_VEN": _NO_ECHO,
    "E1_1060_TH_VEN": _NO_ECHO,
    "E1_1070_TH_VEN": _NO_ECHO,
    "E1_1080_TH_VEN": _NO_ECHO,
    "R1_3020_TH_VEN": "the VTN never sent its oadrRegisterReport",
    "R1_3030_TH_VEN": _NO_REPORT_REQUEST,
    "R1_3040_TH_VEN": _NO_REPORT_REQUEST,
    "R1_3050_TH_VEN": _NO_REPORT_REQUEST,
    "R1_3060_TH_VEN": _NO_REPORT_REQUEST,
    "P1_2010_TH_VEN": _NO_OPT,
    "P1_2020_TH_VEN": _NO_OPT,
    "P1_2030_TH_VEN": _NO_OPT,
    "G1_4010_TH_VEN": "answered oadrRequestReregistration",
}
