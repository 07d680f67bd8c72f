"""docs/conformance-live.md says what the suite is; these tests keep it true.

Its case and rule tables list exactly what the code runs, its openleadr table exactly the
failures ``test_openleadr_vtn`` pins, and the defaults it states are the command's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cbp.cli import build_parser
from cbp.conformance import RULES, VTN_CASES, CaseFailed, CommandOperator, Exchange
from cbp.conformance._checks import refused
from schemas import EiResponse, Response
from tests.conformance.openleadr_gaps import EXPECTED_FAILURES

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


def test_the_rule_table_lists_every_rule():
    assert [rule_id for rule_id, _ in _rows(_section("Passive rules"), r"PR\d\d")] == [
        r.rule_id for r in RULES]


def test_the_openleadr_table_is_what_the_test_pins():
    text = _section("Results")
    assert sorted(case for case, _ in _rows(text, r"[NERPG]1_\d{4}_TH_VEN")) == sorted(
        EXPECTED_FAILURES)
    assert f"fails {len(EXPECTED_FAILURES)} cases" in text


def test_the_stated_defaults():
    args = build_parser().parse_args(["conformance", "vtn"])
    assert (args.operator, args.wait, args.admin_url, args.admin_token_env, args.tls_profile) == (
        "prompt", 30.0, "http://127.0.0.1:8081", "CROWDFLEX_ADMIN_TOKEN", "openadr-tls1.2+tls1.3")
    assert CommandOperator("true").timeout_s == 120


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
