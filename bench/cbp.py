"""``python -m bench cbp [--devices 2000] [--steady-s 60] [--xmpp [--xmpp-sessions 4]] [--loop
auto] [--cprofile]``: one aggregator and its device fleet; with ``--xmpp`` the devices reach the
aggregator through an XMPP server (Prosody, started here) and get their setpoints over their one
connection instead of polling for them, sent by the aggregator's VTN over ``--xmpp-sessions``
sessions.

Starts the platform as ``crowdflex demo`` does (:func:`cbp.demo.nodes.start_nodes`: TSO and
aggregator VTNs in this process, the device fleet in a child process, mutual TLS on loopback,
SQLite files in a temporary directory, compressed timing), on the runtime ``crowdflex
aggregator`` and ``crowdflex demo`` serve on (:func:`cbp.cli._process.run_node`: uvloop when
installed and the serving process's GC tuning; ``--loop asyncio`` for the standard library's
loop), then prints two figures:

(b) steady telemetry: once every device has sent its first batch and one more batch period has
    passed, the CPU this process uses over ``--steady-s`` seconds, per device per minute. This
    process is the aggregator plus the TSO's VTN (which takes one pool report per batch and one
    baseline per baseline interval from it, whatever the fleet size); the fleet process's CPU is
    printed beside it. The figure counts the devices, not what they managed to send: on a
    loaded machine the fleet process falls behind its 4-s clock, fewer samples arrive and the
    figure would flatter the aggregator. So the samples received per second are printed against
    the fleet's nominal rate, with the same CPU per 15 samples received (one device-minute of
    4-s telemetry at full rate). Then each of this process's threads over the same window: its
    CPU and its voluntary context switches (each a time it slept and was woken again) per
    device-minute; with ``--cprofile``, the event-loop thread's cProfile over the window
    (:mod:`bench._cprofile`: own time by area, then the top functions).
(a) activation: an offer, its award at gate closure and the TSO's LOAD_DISPATCH, then the time
    from the TSO's activation to every dispatched device's setpoints delivered and acknowledged
    (oadrCreatedEvent), and to the aggregator's dispatch.

Phase lines carry wall time and this process's CPU. Nothing passes or fails.

Invariants: loopback only; everything lives in a temporary directory removed at the end (unless
``--keep DIR``); every node, the XMPP server and the fleet process are stopped on exit, also on
SIGTERM or SIGINT (``bench/__main__.py``; tests/bench/test_stop.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

from bench._cprofile import Profiler
from cbp.cli._process import run_node
from cbp.demo.nodes import (
    STEP_TIMEOUT_S,
    XMPP_SESSIONS,
    Nodes,
    demo_settings,
    start_nodes,
    stepper,
)
from cbp.demo.platform import bid_and_activate

__all__ = ["main"]


def _child_cpu_s(pid: int) -> float:
    """utime + stime of a live process, from /proc (Linux)."""
    return _cpu_s(Path(f"/proc/{pid}/stat"))


def _cpu_s(stat: Path) -> float:
    """utime + stime from a /proc ``stat`` file, of a process or of one of its threads."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads() -> dict[str, tuple[float, int]]:
    """This process's live threads, ``"name (tid)"`` -> (CPU seconds, voluntary context
    switches: each one a time the thread went to sleep and had to be woken again)."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
            switches = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            out[f"{name} ({task.name})"] = (_cpu_s(task / "stat"), switches)
    return out


def _thread_lines(before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]],
                  device_minutes: float) -> list[str]:
    """Per thread over the window: CPU and wake-ups per device-minute, the busiest first."""
    spent = sorted(((after[k][0] - v[0], after[k][1] - v[1], k) for k, v in before.items()
                    if k in after), reverse=True)
    return [f"    thread {name}: {1000 * cpu / device_minutes:.2f} ms CPU and "
            f"{woken / device_minutes:.1f} wake-ups per device-minute"
            for cpu, woken, name in spent if cpu > 0 or woken > 0]


def _relay_cpu_s(nodes: Nodes) -> float:
    """The XMPP server's CPU so far (0 without one)."""
    server = nodes.xmpp_server
    return 0.0 if server is None or server.pid is None else _child_cpu_s(server.pid)


def _relay_figure(nodes: Nodes, cpu_s: float, device_minutes: float) -> str:
    if nodes.xmpp_server is None:
        return ""
    return f"; XMPP server: {1000 * cpu_s / device_minutes:.2f} ms per device per minute"


async def _steady(nodes: Nodes, seconds: float, profiler: Profiler | None) -> None:
    book = nodes.aggregator.book
    need = max(1, int(nodes.registered * 0.95))
    deadline = STEP_TIMEOUT_S + 0.1 * nodes.registered
    try:
        async with asyncio.timeout(deadline):
            while len(book.outlooks) < need:
                await asyncio.sleep(0.2)  # re-check interval, bounded by the deadline
    except TimeoutError:
        raise TimeoutError(f"the first telemetry batch: {len(book.outlooks)} of the {need} "
                           f"devices needed sent one within {deadline:g} s") from None
    nodes.step(f"first telemetry batch from {len(book.outlooks)} devices")
    # past the first-batch burst: one whole batch period of the devices' staggered trickle
    await asyncio.sleep(nodes.settings.timing.telemetry_batch.total_seconds())
    pid = nodes.fleet.process.pid
    cpu0, child0, wall0 = time.process_time(), _child_cpu_s(pid), time.monotonic()
    relay0 = _relay_cpu_s(nodes)
    points0 = book.points_received
    threads0 = _threads()
    if profiler is not None:
        profiler.start()
    await asyncio.sleep(seconds)
    profiled = "" if profiler is None else profiler.stop()
    threads = _threads()
    cpu, child = time.process_time() - cpu0, _child_cpu_s(pid) - child0
    relay = _relay_cpu_s(nodes) - relay0
    wall = time.monotonic() - wall0
    minutes, devices = wall / 60, nodes.registered
    points = book.points_received - points0
    nodes.step(f"steady telemetry over {wall:.0f} s: {points / wall:.0f} samples/s received")
    period = nodes.settings.rules.sample_period.total_seconds()
    nominal = devices / period
    per_minute = 60 / period  # samples of one device-minute at full rate
    print(f"(b) aggregator CPU per device per minute of steady telemetry: "
          f"{1000 * cpu / devices / minutes:.2f} ms "
          f"({cpu:.1f} s CPU in {wall:.0f} s for {devices} devices = {100 * cpu / wall:.0f}% "
          f"of a core; device fleet process: {1000 * child / devices / minutes:.2f} ms per "
          f"device per minute{_relay_figure(nodes, relay, devices * minutes)})")
    print(f"    samples received: {points / wall:.0f}/s of the fleet's nominal {nominal:.0f}/s "
          f"({100 * points / wall / nominal:.0f}%); aggregator CPU per {per_minute:g} samples "
          f"received: {1000 * cpu * per_minute / max(points, 1):.2f} ms")
    print("\n".join(_thread_lines(threads0, threads, devices * minutes)))
    if profiled:
        print("cProfile of the window (the event-loop thread's CPU clock):\n" + profiled)


async def _run(out: Path, devices: int, steady_s: float, seed: int, xmpp: bool,
               xmpp_sessions: int, cprofile: bool) -> None:
    settings = demo_settings(devices)
    timing = settings.timing
    link = (f"over XMPP ({xmpp_sessions} VTN sessions)" if xmpp else
            f"over HTTP, poll every {timing.device_poll.total_seconds():g} s")
    print(f"bench cbp: {devices} devices {link}, "
          f"telemetry every {settings.rules.sample_period.total_seconds():g} s in batches of "
          f"{timing.telemetry_batch.total_seconds():g} s; event loop "
          f"{type(asyncio.get_running_loop()).__module__}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; run folder {out}")
    step = stepper(print)
    async with start_nodes(out, devices=devices, seed=seed, settings=settings,
                           step=step, xmpp=xmpp, xmpp_sessions=xmpp_sessions) as nodes:
        await _steady(nodes, steady_s, Profiler() if cprofile else None)
        operated = await bid_and_activate(nodes)
    print(f"(a) TSO activation -> all {len(operated.dispatched.acked)} dispatched devices' "
          f"setpoints delivered and acknowledged: {operated.acked_s:.2f} s "
          f"(aggregator dispatched after {operated.dispatch_s:.2f} s)")
    nodes.vault.close()
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cbp", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--steady-s", type=float, default=60.0,
                        help="seconds of steady telemetry to measure (default 60)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--xmpp", action="store_true",
                        help="the device link over XMPP (needs Debian's prosody)")
    parser.add_argument("--xmpp-sessions", type=int, default=XMPP_SESSIONS,
                        help="with --xmpp: the aggregator VTN's XMPP sessions ([xmpp] sessions, "
                             f"default {XMPP_SESSIONS})")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this folder and keep it (default: a temporary directory)")
    parser.add_argument("--loop", default="auto", choices=("auto", "uvloop", "asyncio"),
                        help="event loop of this process (default: auto, as crowdflex aggregator)")
    parser.add_argument("--cprofile", action="store_true",
                        help="print the cProfile of the steady window (event-loop thread)")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        run_node(_run(args.keep, args.devices, args.steady_s, args.seed, args.xmpp,
                      args.xmpp_sessions, args.cprofile),
                 loop=args.loop)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-cbp-") as tmp:
        run_node(_run(Path(tmp), args.devices, args.steady_s, args.seed, args.xmpp,
                      args.xmpp_sessions, args.cprofile),
                 loop=args.loop)
    return 0
