"""The live conformance suite: crowdflex plays one side of OpenADR 2.0b against a node under test.

``crowdflex conformance vtn`` plays a VEN over Simple HTTP, pull or push, or over XMPP
(:mod:`.harness_xmpp`, push cases), against a VTN (mutual TLS, RSA or ECC certificates):
registration (N1), events (E1), reports (R1), opt (P1) and general (G1) cases with IDs in the
OpenADR Alliance numbering scheme, written by us from the 2.0b specification; passive rules
(:mod:`.rules`) check every reply. Cases that need the VTN to act go through an
:class:`Operator`. ``crowdflex conformance ven`` plays a VTN
(:class:`HarnessVtn`, over Simple HTTP or XMPP) for a VEN under test, started by a
:class:`VenUnderTest` with the harness's :class:`VtnAddress`: registration, events, reports and
opts (``_TH_VTN`` cases; the VEN's operator makes it send and cancel opts), its passive rules
(:mod:`.ven_rules`) on every request.
Push mode runs the same checks as push cases (``VTN_PUSH_CASES``, ``VEN_PUSH_CASES``); signed
mode (XML signatures, profile 10, Simple HTTP only) adds signature cases on either side
(:func:`vtn_catalogue`, :func:`ven_catalogue`). Not covered yet: signatures over XMPP.

>>> from cbp.conformance import VTN_CASES
>>> VTN_CASES[0].case_id
'N1_0010_TH_VEN'
"""

from __future__ import annotations

from ._model import (
    Case,
    CaseFailed,
    CaseResult,
    ConformanceError,
    Exchange,
    OperatorError,
    Rule,
    Verdict,
    Violation,
)
from .harness_vtn import HarnessVtn, VenHarnessSettings
from .operators import (
    AdminApiOperator,
    CommandOperator,
    Operator,
    PromptOperator,
    Step,
    StepKind,
)
from .output import html_page, junit_xml, print_cases, print_result, print_summary
from .rules import RULES
from .runner import (
    VEN_CASES,
    VEN_PUSH_CASES,
    VTN_CASES,
    VTN_PUSH_CASES,
    run_cases,
    run_ven_cases,
    select,
    ven_catalogue,
    vtn_catalogue,
)
from .session import HarnessSettings, HarnessVen
from .ven_rules import VEN_RULES
from .ven_starters import CommandVen, CrowdflexVen, PromptVen, VenUnderTest
from .vtn_address import HttpAddress, VtnAddress, XmppAddress

__all__ = [
    "RULES",
    "VEN_CASES",
    "VEN_PUSH_CASES",
    "VEN_RULES",
    "VTN_CASES",
    "VTN_PUSH_CASES",
    "AdminApiOperator",
    "Case",
    "CaseFailed",
    "CaseResult",
    "CommandOperator",
    "CommandVen",
    "ConformanceError",
    "CrowdflexVen",
    "Exchange",
    "HarnessSettings",
    "HarnessVen",
    "HarnessVtn",
    "HttpAddress",
    "Operator",
    "OperatorError",
    "PromptOperator",
    "PromptVen",
    "Rule",
    "Step",
    "StepKind",
    "VenHarnessSettings",
    "VenUnderTest",
    "Verdict",
    "Violation",
    "VtnAddress",
    "XmppAddress",
    "html_page",
    "junit_xml",
    "print_cases",
    "print_result",
    "print_summary",
    "run_cases",
    "run_ven_cases",
    "select",
    "ven_catalogue",
    "vtn_catalogue",
]
