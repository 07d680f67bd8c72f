"""docs/conformance-live.md says what the suites are; these tests keep it true.

Its case and rule tables (both sides) list exactly what the code runs, its openleadr results
exactly what ``test_openleadr`` pins, and the defaults it states
are the commands'.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from cbp.cli import build_parser
from cbp.conformance import (
    RULES,
    VEN_CASES,
    VEN_PUSH_CASES,
    VEN_RULES,
    VTN_CASES,
    VTN_PUSH_CASES,
    CaseFailed,
    CommandOperator,
    CrowdflexVen,
    Exchange,
)
from cbp.conformance._checks import refused
from cbp.conformance.cases_signatures import SIGNATURE_CASES
from cbp.conformance.cases_ven_signatures import VEN_SIGNATURE_CASES
from schemas import EiResponse, Response

from .openleadr_peers import EXPECTED_FAILURES, EXPECTED_VEN_FAILURES

DOC = Path(__file__).parents[2] / "docs" / "conformance-live.md"


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _rows(text: str, pattern: str) -> list[tuple[str, str]]:
    return re.findall(rf"^\| ({pattern}) \| (.+?) \|$", text, re.MULTILINE)


def test_the_case_table_is_the_catalogue():
    assert _rows(_section("Cases"), r"[NERPG]1_\d{4}_TH_VEN") == [
        (c.case_id, c.purpose) for c in VTN_CASES]
    assert _rows(_section("Cases"), r"[NERPG]0_\d{4}_TH_VEN") == [
        (c.case_id, c.purpose) for c in VTN_PUSH_CASES]


def test_the_signed_table_is_the_catalogue():
    assert _rows(_section("Signed mode"), r"G1_\d{4}_TH_VEN") == [
        (c.case_id, c.purpose) for c in SIGNATURE_CASES]


def test_the_rule_table_lists_every_rule():
    assert [rule_id for rule_id, _ in _rows(_section("Passive rules"), r"PR\d\d")] == [
        r.rule_id for r in RULES]


def test_the_openleadr_count_is_what_the_test_pins():
    assert f"fails {len(EXPECTED_FAILURES)} cases" in _section("Results")


def test_the_ven_side_tables_are_the_catalogue():
    text = _section("The VEN side")
    assert _rows(text, r"[NERP]1_\d{4}_TH_VTN") == [(c.case_id, c.purpose) for c in VEN_CASES]
    assert _rows(text, r"G1_\d{4}_TH_VTN") == [
        (c.case_id, c.purpose) for c in VEN_SIGNATURE_CASES]
    assert _rows(text, r"[NERPG]0_\d{4}_TH_VTN") == [
        (c.case_id, c.purpose) for c in VEN_PUSH_CASES]
    assert _rows(text, r"VR\d\d") == [(r.rule_id, r.requirement) for r in VEN_RULES]


def test_the_ven_side_results_are_what_the_tests_pin():
    text = _section("The VEN side")
    assert "openleadr's VEN** (0.5, `OpenADRClient` from the test dependencies), which has no " \
        "push mode,\n  its opts sent and cancelled through its client's `create_opt` and " \
        "`cancel_opt`, passes every\n  pull case but P1_2030: its oadrCancelOpt carries an " \
        "empty requestID" in text
    assert EXPECTED_VEN_FAILURES == {"P1_2030_TH_VTN": "its requestID is empty"}


def test_the_stated_defaults():
    args = build_parser().parse_args(["conformance", "vtn"])
    assert (args.operator, args.wait, args.admin_url, args.admin_token_env, args.tls_profile) == (
        "prompt", 30.0, "http://127.0.0.1:8081", "CROWDFLEX_ADMIN_TOKEN", "openadr-tls1.2+tls1.3")
    assert (args.transport, args.xmpp_server, args.xmpp_domain) == (
        "simpleHttp", "127.0.0.1:5222", "localhost")
    assert CommandOperator("true").timeout_s == 120
    ven = build_parser().parse_args(["conformance", "ven"])
    assert (ven.starter, ven.poll_freq, ven.report_back, ven.wait) == ("prompt", 5, 5, 60.0)
    assert CrowdflexVen(cert=Path("c"), key=Path("k"), ca=Path("a")).timeout_s == 30


def _exchange(status: int | None, code: int | None = None) -> Exchange:
    received = None if code is None else Response(response=EiResponse(code=code))
    return Exchange(service="EiEvent", request=b"", sent=None, status=status,
                    received=received, error=None if received else "none")


def test_what_counts_as_a_refusal():
    assert refused(_exchange(400)) == "HTTP 400"
    assert refused(_exchange(200, 463)).startswith("oadrResponse 463")
    for accepted_or_broken in (_exchange(200, 200), _exchange(500), _exchange(None)):
        with pytest.raises(CaseFailed):
            refused(accepted_or_broken)
    with pytest.raises(CaseFailed, match="not 452"):
        refused(_exchange(200, 454), codes=frozenset({452}))
    xmpp_error = replace(_exchange(None), refusal="XMPP error not-acceptable")
    assert refused(xmpp_error) == "XMPP error not-acceptable"
