"""What a run leaves behind: the case list, a console summary, JUnit XML and an HTML page.

The HTML page is one self-contained file (no scripts, no external styles) with every exchange
of every case, request and reply bodies included; every text in it, bodies above all, is
escaped, so a hostile VTN's reply is shown, never rendered. JUnit XML is written by
:func:`schemas.conformance.junit_document` (lxml; characters XML cannot hold become ``\\xNN``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Final, TextIO

from schemas import TransportName
from schemas.conformance import JunitCase, JunitFailure, junit_document

from ._model import AnyCase, AnyRule, CaseResult, Exchange
from .rules import RULES

__all__ = ["html_page", "junit_xml", "print_cases", "print_result", "print_summary"]


def print_cases(cases: Sequence[AnyCase], out: TextIO, *, rules: Sequence[AnyRule] = RULES,
                checked: str = "reply", transport: TransportName | None = None) -> None:
    """The case list and the passive rules; with ``transport``, each rule about another
    transport says it is skipped."""
    for case in cases:
        print(f"{case.case_id}  {case.purpose}", file=out)
    over = f" over {transport}" if transport is not None else ""
    print(f"{len(cases)} cases{over}; passive rules on every {checked}:", file=out)
    for rule in rules:
        skipped = (f" [skipped over {transport}: {rule.transport} only]"
                   if transport is not None and not rule.applies(transport) else "")
        print(f"  {rule.rule_id}  {rule.requirement}{skipped}", file=out)


def print_result(result: CaseResult, out: TextIO) -> None:
    print(f"{result.verdict.value.upper():4}  {result.case.case_id}  {result.case.purpose}",
          file=out)
    print(f"      {result.reason}", file=out, flush=True)


def print_summary(results: Sequence[CaseResult], out: TextIO) -> None:
    failed = [r.case.case_id for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", file=out)
    if failed:
        print(f"failed: {' '.join(failed)}", file=out)


def _exchange_line(exchange: Exchange) -> str:
    return (f"{exchange.service}: {exchange.sent_name} -> {exchange.received_name} "
            f"({exchange.status_text})")


def junit_xml(results: Sequence[CaseResult], *, suite: str = "crowdflex.conformance.vtn"
              ) -> bytes:
    """One ``<testcase>`` per case; a failure carries its reason, system-out its exchanges."""
    return junit_document(suite, [JunitCase(
        classname=f"{suite}.{result.case.service}", name=result.case.case_id,
        failure=None if result.passed else JunitFailure(message=result.reason[:1000],
                                                        text=result.reason),
        system_out="\n".join([result.case.purpose, result.reason,
                              *map(_exchange_line, result.exchanges)]))
        for result in results])


_STYLE: Final = """
body{font-family:sans-serif;margin:2em;max-width:80em}
.pass{color:#176d1f}.fail{color:#a4161a}
section{border-top:1px solid #ccc;margin-top:1.5em}
pre{background:#f5f5f5;padding:.5em;overflow-x:auto;white-space:pre-wrap}
td,th{text-align:left;padding:.2em .6em}
"""


def _body(data: bytes) -> str:
    return html.escape(data.decode("utf-8", errors="replace")) if data else "(empty)"


def _exchange_html(number: int, exchange: Exchange) -> str:
    violations = "".join(f"<li class=fail>{html.escape(str(v))}</li>"
                         for v in exchange.violations)
    error = (f"<p>{html.escape(exchange.error)}</p>" if exchange.error else "")
    return (f"<h4>{number}. {html.escape(_exchange_line(exchange))}</h4>{error}"
            f"<ul>{violations}</ul>"
            f"<details><summary>request</summary><pre>{_body(exchange.request)}</pre></details>"
            f"<details><summary>reply ({html.escape(exchange.content_type or 'no type')})"
            f"</summary><pre>{_body(exchange.reply)}</pre></details>")


def _case_html(result: CaseResult) -> str:
    case = result.case
    verdict = result.verdict.value
    steps = "".join(f"<li>{html.escape(s.instruction)}<pre>"
                    f"{html.escape(json.dumps(dict(s.params), indent=2))}</pre></li>"
                    for s in result.steps)
    exchanges = "".join(_exchange_html(n, e) for n, e in enumerate(result.exchanges, 1))
    return (f"<section id={html.escape(case.case_id, quote=True)}>"
            f"<h2 class={verdict}>{html.escape(case.case_id)}: {verdict.upper()}</h2>"
            f"<p><b>{html.escape(case.purpose)}</b></p>"
            f"<p>Requirement: {html.escape(case.requirement)}</p>"
            f"<p>Verdict: {html.escape(result.reason)}</p>"
            f"<p>Messages: {html.escape(', '.join(case.messages))}</p>"
            + (f"<h3>Operator steps</h3><ol>{steps}</ol>" if steps else "")
            + f"<h3>Exchanges</h3>{exchanges}</section>")


def html_page(results: Sequence[CaseResult], *, target: str, side: str = "vtn",
              rules: Sequence[AnyRule] = RULES) -> str:
    """The whole run as one HTML page: a summary table, then each case with its exchanges.
    ``side`` is the node under test (``vtn`` or ``ven``), ``rules`` the passive rules it ran."""
    checked = "reply" if side == "vtn" else "request"
    failed = sum(1 for r in results if not r.passed)
    rows = "".join(
        f"<tr><td><a href=#{html.escape(r.case.case_id, quote=True)}>"
        f"{html.escape(r.case.case_id)}</a></td><td class={r.verdict.value}>"
        f"{r.verdict.value}</td><td>{html.escape(r.case.purpose)}</td></tr>" for r in results)
    listed = "".join(f"<li>{html.escape(r.rule_id)}: {html.escape(r.requirement)}</li>"
                    for r in rules)
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>crowdflex conformance {side}: {html.escape(target)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>crowdflex conformance {side}</h1>"
        f"<p>{side.upper()} under test: {html.escape(target)}</p>"
        f"<p>{len(results) - failed} passed, {failed} failed</p>"
        f"<table><tr><th>case</th><th>verdict</th><th>purpose</th></tr>{rows}</table>"
        f"<h3>Passive rules checked on every {checked}</h3><ul>{listed}</ul>"
        + "".join(_case_html(r) for r in results) + "</body></html>")
