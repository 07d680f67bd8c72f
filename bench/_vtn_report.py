"""The table ``python -m bench vtn`` prints: both VTNs' figures, the ratio, and the targets beside.

Ratios are written so that higher means crowdflex is better (rates: ours / openleadr; times and
CPU: openleadr / ours). A missing side (``--only``) prints as ``-``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench._vtn_load import LoadResult
    from bench.vtn import KindResult

    # (load, VTN CPU s per poll, VTN CPU s per hostile request when measured)
    SignedResult = tuple[LoadResult, float, float | None]

__all__ = ["render"]

SIGNED_TARGET_S = 0.002
RATE_TARGET = 3.0
FANOUT_TARGET = 1.2


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    match unit:
        case "s":
            return f"{value:.2f} s"
        case "ms":
            return f"{value * 1000:.3f} ms"
        case _:
            return f"{value:,.0f} {unit}"


def _row(label: str, ours: float | None, theirs: float | None, unit: str,
         higher_is_better: bool) -> str:
    r = math.nan
    if ours and theirs and not math.isnan(ours) and not math.isnan(theirs):
        r = ours / theirs if higher_is_better else theirs / ours
    shown = "-" if math.isnan(r) else f"{r:.1f}x"
    return f"{label:<44} {_fmt(ours, unit):>14} {_fmt(theirs, unit):>14} {shown:>8}"


def _get(results: dict[str, KindResult], kind: str,
         pick: Callable[[KindResult], float]) -> float | None:
    return pick(results[kind]) if kind in results else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def render(args: argparse.Namespace, results: dict[str, KindResult],
           signed: dict[tuple[str, bool], SignedResult], *, pinned: bool) -> str:
    head = f"{'workload':<44} {'crowdflex':>14} {'openleadr':>14} {'ratio':>8}"
    lines = [
        f"VTN benchmark: mutual TLS on 127.0.0.1; ours on SQLite (file), openleadr in memory;"
        f" VTN and load {'pinned to separate cores' if pinned else 'not pinned'}",
        "ratio: higher = crowdflex better", head, "-" * len(head)]

    def add(label: str, pick: Callable[[KindResult], float], unit: str, higher: bool) -> None:
        lines.append(_row(label, _get(results, "ours", pick), _get(results, "openleadr", pick),
                          unit, higher))

    add(f"1. register {args.vens} VENs (wall)", lambda r: r.registration_s, "s", False)
    add("   registrations/s", lambda r: r.registered / r.registration_s, "/s", True)
    add(f"2. oadrPoll, {args.poll_vens} VENs keep-alive", lambda r: r.polls.rate, "polls/s", True)
    add("   VTN CPU per poll", lambda r: r.poll_cpu_s / max(r.polls.count, 1), "ms", False)
    add(f"3. oadrUpdateReport 10 points, {args.report_vens} VENs", lambda r: r.reports.rate,
        "reports/s", True)
    add("   VTN CPU per report", lambda r: r.report_cpu_s / max(r.reports.count, 1), "ms", False)
    add(f"4. fan-out to {args.vens} VENs, publish -> all acks", lambda r: r.fanout_all_acks_s,
        "s", False)
    add("   of which the publish call", lambda r: r.fanout_publish_s, "s", False)
    add("   VTN CPU beyond empty polls, per VEN", lambda r: r.fanout_cpu_s / args.vens, "ms",
        False)
    for kind, (unsigned, sign) in ((k, (signed.get((k, False)), signed.get((k, True))))
                                   for k in ("ours", "openleadr")):
        if unsigned and sign:
            lines.append(f"5. {kind}: VTN CPU per poll, {args.signed_vens} RSA-2048 VENs:"
                         f" unsigned {_fmt(unsigned[1], 'ms')}, signed {_fmt(sign[1], 'ms')}"
                         f" ({unsigned[0].rate:,.0f} / {sign[0].rate:,.0f} polls/s,"
                         f" errors {unsigned[0].errors}/{sign[0].errors})")
        if sign and sign[2] is not None:
            lines.append(f"   {kind}: VTN CPU per hostile signed request (663 KB, 1,000"
                         f" references to one 400 KB element; refused 459): {_fmt(sign[2], 'ms')}"
                         " (security review 2 before the fix: ~3,400 ms)")
    lines.append("")
    lines += _targets(args, results, signed)
    lines += _problems(results)
    if "ours" in results and results["ours"].profile:
        lines += ["", "cProfile of our VTN during loads 2 and 3"
                  " (by own time, event-loop thread only):", results["ours"].profile]
    return "\n".join(lines)


def _targets(args: argparse.Namespace, results: dict[str, KindResult],
             signed: dict[tuple[str, bool], SignedResult]) -> list[str]:
    out = ["targets:"]
    if "ours" in results and "openleadr" in results:
        ours, theirs = results["ours"], results["openleadr"]
        for label, a, b in (("polls/s", ours.polls.rate, theirs.polls.rate),
                            ("reports/s", ours.reports.rate, theirs.reports.rate)):
            r = a / b if b else math.nan
            out.append(f"  {label} >= {RATE_TARGET:.0f}x openleadr: {r:.2f}x"
                       f" ({_verdict(r >= RATE_TARGET)})")
    for kind, result in results.items():
        bound = FANOUT_TARGET * args.interval
        took = result.fanout_all_acks_s
        out.append(f"  {kind} fan-out within {FANOUT_TARGET}x the {args.interval:g} s poll"
                   f" interval ({bound:.2f} s): {_fmt(took, 's')} = {took / args.interval:.2f}x"
                   f" ({_verdict(not math.isnan(took) and took <= bound)};"
                   f" {result.fanout_acks}/{args.vens} acks)")
    if ("ours", True) in signed:
        per = signed["ours", True][1]
        out.append(f"  ours signed poll < {SIGNED_TARGET_S * 1000:.0f} ms VTN CPU:"
                   f" {_fmt(per, 'ms')} ({_verdict(per < SIGNED_TARGET_S)})")
    return out


def _problems(results: dict[str, KindResult]) -> list[str]:
    out = []
    for kind, result in results.items():
        if result.errors:
            out.append(f"{kind}: request errors (first few): {'; '.join(result.errors)}")
        bad = result.polls.errors + result.reports.errors
        if bad:
            out.append(f"{kind}: {bad} replies with a responseCode other than 200")
        if result.reports.count and result.points_seen < 10 * result.reports.count:
            out.append(f"{kind}: handlers saw {result.points_seen} points for"
                       f" {result.reports.count} reports of 10")
    return out
