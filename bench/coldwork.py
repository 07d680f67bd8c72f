"""The same work back to back and after a pause: what this host charges for work that finds its
core gone cold, with no server, socket, timer or thread in the way.

One unit of work is the codec's part of a fleet device's requests: ``schemas.decode`` then
``schemas.encode`` of an oadrPoll, an oadrUpdateReport, an oadrDistributeEvent and an
oadrCreatedEvent (openleadr's bytes, ``bench._codec_messages``). Each round times ``--units``
units three ways, alternately: back to back; each after ``time.sleep`` of ``--pause-ms`` (the
core idles or runs another process, as a VTN's does between a fleet's requests); each after a
busy wait of as long (the core stays with this process). A unit's figure is its thread CPU
(``time.thread_time_ns``); printed per way: the median unit of each round, and their range; a
last row takes only the units after a busy wait in which no other process took the core (no
involuntary context switch of this thread).
``bench fleetkinds --spacing-ms`` measures the same effect on the VTN's whole request.
"""

from __future__ import annotations

import argparse
import functools
import resource
import statistics
import time
import warnings
from collections.abc import Callable

import schemas
from bench._codec_messages import openleadr_message

KINDS = ("oadrPoll", "oadrUpdateReport", "oadrDistributeEvent", "oadrCreatedEvent")


def _sleep(pause_s: float) -> None:
    time.sleep(pause_s)


def _spin(pause_s: float) -> None:
    end = time.perf_counter() + pause_s
    while time.perf_counter() < end:
        pass


def _none(pause_s: float) -> None:
    del pause_s


WAYS: dict[str, Callable[[float], None]] = {
    "back to back": _none, "after a sleep": _sleep, "after a busy wait": _spin}
#: the units after a busy wait in which no other process took the core
BUSY_KEPT = "after a busy wait, core kept"


def _units(bodies: list[bytes], units: int, pause: Callable[[], None]
           ) -> list[tuple[int, bool]]:
    """Per unit, each after ``pause()``: (its thread CPU, ns; whether another process took the
    core during the pause, an involuntary context switch of this thread)."""
    taken = []
    for _ in range(units):
        switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
        pause()
        preempted = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw > switches
        started = time.thread_time_ns()
        for body in bodies:
            schemas.encode(schemas.decode(body))
        taken.append((time.thread_time_ns() - started, preempted))
    return taken


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench coldwork", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=800, help="units per way and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each taking every way")
    parser.add_argument("--pause-ms", type=float, default=5.0, help="pause before a unit")
    args = parser.parse_args(argv)
    if min(args.units, args.rounds) < 1 or args.pause_ms <= 0:
        parser.error("counts and the pause must be positive")
    warnings.simplefilter("ignore")
    bodies = [openleadr_message(kind) for kind in KINDS]
    pause_s = args.pause_ms / 1e3
    _units(bodies, args.units, lambda: None)  # warm: imports, caches, compiled schemas
    rows: dict[str, list[float]] = {way: [] for way in (*WAYS, BUSY_KEPT)}
    for _ in range(args.rounds):
        for way, wait in WAYS.items():
            units = _units(bodies, args.units, functools.partial(wait, pause_s))
            rows[way].append(statistics.median(ns for ns, _ in units) / 1e3)
            kept = [ns for ns, preempted in units if not preempted]
            if wait is _spin and kept:
                rows[BUSY_KEPT].append(statistics.median(kept) / 1e3)
    print(f"coldwork: decode+encode of {', '.join(KINDS)} per unit, {args.units} units per way "
          f"and round, {args.rounds} rounds, pause {args.pause_ms:g} ms")
    back_to_back = statistics.median(rows["back to back"])
    for way, figures in rows.items():
        if figures:
            median = statistics.median(figures)
            print(f"{way:<34} {median:8.1f} us per unit ({min(figures):.1f}-{max(figures):.1f})"
                  f"  {median / back_to_back:.2f}x")
    return 0
