"""The tables ``python -m bench vtn`` prints: per setup, both VTNs' median and range per figure,
and the median and range of the per-run ratio.

Ratios are written so that higher means crowdflex is better (rates: ours / openleadr; times and
CPU: openleadr / ours); the i-th run of one VTN is paired with the i-th of the other, which ran
right before or after it (ABBA). A missing side prints as ``-``.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.vtn import RunResult

__all__ = ["render"]


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    match unit:
        case "s":
            return f"{value:.2f} s"
        case "ms":
            return f"{value * 1000:.3f} ms"
        case "%":
            return f"{value * 100:.0f} %"
        case _:
            return f"{value:,.0f} {unit}"


def _spread(values: Sequence[float], unit: str) -> str:
    good = [v for v in values if not math.isnan(v)]
    if not good:
        return "-"
    median = statistics.median(good)
    if len(good) == 1:
        return _fmt(median, unit)
    return f"{_fmt(median, unit)} ({_fmt(min(good), unit)}-{_fmt(max(good), unit)})"


def _ratios(ours: Sequence[float], theirs: Sequence[float], higher: bool) -> str:
    pairs = [(a, b) for a, b in zip(ours, theirs, strict=False)
             if a and b and not math.isnan(a) and not math.isnan(b)]
    if not pairs:
        return "-"
    ratios = [a / b if higher else b / a for a, b in pairs]
    median = statistics.median(ratios)
    if len(ratios) == 1:
        return f"{median:.2f}x"
    return f"{median:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def _values(results: Sequence[RunResult], kind: str, metric: str) -> list[float]:
    return [r.figures[metric] for r in results if r.kind == kind and metric in r.figures]


_STORAGE = {"sqlite": "SQLite (file)",
            "postgresql": "PostgreSQL (the CPU of its backends included)"}


def render(args: argparse.Namespace, results: dict[str, list[RunResult]], *, pinned: bool,
           load_before: tuple[float, float, float], load_after: tuple[float, float, float],
           key_loading_s: float | None, handshake_s: dict[str, list[float]] | None) -> str:
    from bench.vtn import METRICS

    lines = [
        f"VTN benchmark: mutual TLS on 127.0.0.1; ours on {_STORAGE[args.storage]},"
        " openleadr in memory;"
        f" VTN and load {'pinned to separate cores' if pinned else 'not pinned'};"
        f" {args.vens} VENs, {args.poll_vens} polling, {args.report_vens} reporting;"
        f" our repeat cache {'OFF' if args.no_repeat_cache else 'on'}",
        "load average (1/5/15 min) before: " + " ".join(f"{x:.2f}" for x in load_before)
        + ", after: " + " ".join(f"{x:.2f}" for x in load_after),
        "each figure: median (min-max) over the runs; ratio: per-run pairs, higher = crowdflex"
        " better",
    ]
    for setup, runs in results.items():
        count = len(_values(runs, "ours", "registrations/s")) or len(
            _values(runs, "ours", "signed poll: CPU per poll, signed"))
        head = f"{'figure':<44} {'crowdflex':>28} {'openleadr':>28} {'ratio':>20}"
        runtime = ("uvloop + serving tuning" if setup == "tuned"
                   else "asyncio loop, interpreter defaults")
        lines += ["", f"setup: {setup} ({runtime} for both VTNs; {count} runs)", head,
                  "-" * len(head)]
        for metric, (unit, higher) in METRICS.items():
            ours, theirs = _values(runs, "ours", metric), _values(runs, "openleadr", metric)
            if ours or theirs:
                lines.append(f"{metric:<44} {_spread(ours, unit):>28} {_spread(theirs, unit):>28}"
                             f" {_ratios(ours, theirs, higher):>20}")
        for metric in ("repeat cache: requests served", "repeat cache: replies served"):
            served = _values(runs, "ours", metric)
            if served:
                lines.append(f"{metric:<44} {_spread(served, '%'):>28}")
        lines += [f"{r.kind}: {e}" for r in runs for e in r.errors[:3]][:12]
        cprofiles = [r.cprofile for r in runs if r.cprofile]
        if cprofiles:
            lines += ["", "cProfile of our VTN during the poll and report loads of its first run"
                      " (by own time, event-loop thread only):", cprofiles[0]]
    if handshake_s is not None:
        from bench._handshake import median_ms

        lines += ["", "a bare mutual-TLS handshake (memory BIOs, no socket, no HTTP), server CPU,"
                  f" {len(handshake_s['ours'])} samples each: on our server context (no session"
                  f" tickets) {median_ms(handshake_s['ours'])}, on openleadr's (two TLS 1.3"
                  f" tickets) {median_ms(handshake_s['openleadr'])}: the floor under each VTN's"
                  " CPU per registration"]
    if key_loading_s is not None:
        lines += ["", f"openleadr loads the PEM signing key twice per signed message:"
                  f" {key_loading_s * 1000:.1f} ms of each signed reply's CPU, measured alone"]
    return "\n".join(lines)
