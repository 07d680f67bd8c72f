"""Both live suites against openleadr's VTN and VEN: the failures are the pinned ones, with the
pinned reasons, and docs/conformance-openleadr.md is exactly what this run writes."""

from __future__ import annotations

import logging

from .openleadr_peers import (
    EXPECTED_FAILURES,
    EXPECTED_VEN_FAILURES,
    REPORT,
    render,
    run_both,
)


def _unexpected(results, expected):
    failures = {r.case.case_id: r.reason for r in results if not r.passed}
    assert sorted(failures) == sorted(expected), failures
    return {case_id: reason for case_id, reason in failures.items()
            if expected[case_id] not in reason}


async def test_openleadr_fails_exactly_the_pinned_cases_and_the_report_says_so(tmp_path, caplog):
    caplog.set_level(logging.CRITICAL, logger="openleadr")
    vtn_results, ven_results = await run_both(tmp_path)
    assert _unexpected(vtn_results, EXPECTED_FAILURES) == {}
    assert _unexpected(ven_results, EXPECTED_VEN_FAILURES) == {}
    assert REPORT.read_text(encoding="utf-8") == render(vtn_results, ven_results), (
        "regenerate with: .venv/bin/python -m tests.conformance.openleadr_peers")
