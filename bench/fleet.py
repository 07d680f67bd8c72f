"""Fleet benchmark: what a VTN costs per device of a real fleet, crowdflex against openleadr.

``--vens`` VENs (each one device, or one small site) register, then behave as a fleet does, on
random phases: each polls every ``--poll-s`` (10 s); sends its 4-s TELEMETRY_USAGE samples either
one oadrUpdateReport per sample (``--telemetry sample``) or batched per minute, 15 points a report
(``--telemetry minute``), every point new and values and requestIDs varying; acknowledges the
event published to all of them once a minute (optIn, on the poll that brings it); and 1 % of the
VENs per minute drop their connection and come back with a new mutual-TLS handshake.

Figures per VTN, after ``--warmup-s`` of the fleet running, over ``--minutes``:

- VTN CPU per device-minute (``time.process_time`` of the VTN process, every thread of it, over
  the window, per VEN and minute), and how many devices that lets one core carry;
- request latency seen by the VENs, p50 / p99 / p99.9 (the load generator's own delays count
  in it: its timer lateness is printed, p99, so a late generator shows);
- VTN RSS per connected VEN: (RSS with the fleet connected and registered - RSS at start) / VENs.

Each VTN runs in a fresh process per run (``bench._vtn_server``, same runtime for both:
``--setup``), ``--runs`` runs in ABBA order; the table gives median and range. The load generator
is ``--generators`` spawned processes (:mod:`bench._fleet_generator`), the VENs dealt out among
them, on every core but the VTN's (uvloop, raw HTTP/1.1 on keep-alive mutual TLS, bodies patched
from templates made before the clock). When it cannot keep up, the offered rate it reached is
printed beside the intended one and the run is marked: read its figures as that load's, not the
intended one's.

How many events each VEN holds is ``--live-events N``: N-1 events are published to the whole fleet
before the warm-up (the VENs get them on their first poll and acknowledge them, as the others), so
the VENs hold N-1 when the window opens and the event poll that brings the minute's event lists N
(N+1 after a second minute's, in a window of two minutes or more). The minute's event is published
``EVENT_INTO_WINDOW_S`` (5 s) after the window opens and every minute after, so a window of whole
minutes takes one whole fan-out per minute, every run alike (a window shorter than a minute takes
one all the same). Both VTNs answer the poll that brings a new event with every live event of the
VEN (OpenADR 2.0b: an oadrDistributeEvent is the VEN's whole list), and the VEN acknowledges each of
them, as openleadr's VEN does (it answers every listed event that asks for a response, optIn again
for one it already knew); so an event poll and its ack cost more per listed event. The default, 2,
is what a VEN of a TSO's balancing product holds: one activation per 15-min imbalance settlement
period, lasting the period, announced some minutes before it starts (mFRR: 7.5), so the running
activation and the next announced one. ``--live-events 1`` is this benchmark as it ran before the
option (no event before the warm-up). The minute's event itself is a stress of the event path (15
times a TSO's rate); a fleet that kept every one of them (each starts 5 min after it is published
and lasts 30) would hold 35, an upper bound: ``--live-events 35``. The warm-up must be longer than a
poll interval for every VEN to have taken its list before the window (15 s against 10 s by default).

``--cprofile`` prints our VTN's cProfile over the measured window (CPU time of its event-loop
thread); ``python -m bench fleetkinds`` takes the mix apart by request kind.

``--restart`` then stops the VTN process and starts a new one on the same database: every VEN
registers again at once, each on a new connection; printed are the seconds until the last one is
registered and the new VTN's CPU meanwhile. ``--capacity`` first runs openleadr alone with
``--vens`` VENs and takes its capacity on this workload as the devices that would keep its core
fully busy (VENs / the share of the core they kept busy; printed with the run it came from),
then runs both VTNs at 50 % and 80 % of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import math
import multiprocessing
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench._fleet_generator import Tally, generate
from bench._vtn_load import VenIdentity
from bench._vtn_server import SETUPS, ServerSpec
from bench.vtn import KINDS, VtnProcess, _cores, abba

__all__ = ["FleetResult", "Generators", "main"]

#: the minute's event is first published this long after the window opens: its fan-out (one
#: poll interval) ends inside a one-minute window, and the next one falls after it
EVENT_INTO_WINDOW_S: Final = 5.0


class Generators:
    """The load generator: ``count`` spawned processes, the fleet's VENs dealt out in slices
    (:mod:`bench._fleet_generator`), all on ``cpus``; a context manager."""

    def __init__(self, identities: list[VenIdentity], ca: Path, args: argparse.Namespace,
                 count: int, cpus: set[int] | None) -> None:
        context = multiprocessing.get_context("spawn")
        size = math.ceil(len(identities) / count)
        self._pipes, self._processes = [], []
        for first in range(0, len(identities), size):
            mine, theirs = context.Pipe()
            self._pipes.append(mine)
            self._processes.append(context.Process(
                target=generate, args=(identities[first:first + size], ca, args, first, cpus,
                                       theirs), name=f"bench-fleet-load-{first}", daemon=True))

    def __len__(self) -> int:
        return len(self._processes)

    def __enter__(self) -> Generators:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()  # our own child, by handle
                process.join(timeout=5)

    async def call(self, *command: Any, timeout_s: float = 1800.0) -> list[Any]:
        """Send ``command`` to every generator; their answers, in slice order."""
        def receive(pipe: Any) -> Any:
            if not pipe.poll(timeout_s):
                raise TimeoutError("a load generator did not answer")
            status, value = pipe.recv()
            if status == "error":
                raise RuntimeError(f"load generator: {value}")
            return value

        for pipe in self._pipes:
            pipe.send(command)
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(None, receive, pipe)
                                           for pipe in self._pipes)))

    async def register(self, port: int, concurrency: int) -> tuple[list[str], float, int]:
        """Every VEN registered at ``port`` (and its queue drained); (venIDs, seconds the
        slowest slice took to register, draining excluded, retries after failed connections)."""
        per = max(1, concurrency // len(self))
        answers = await self.call("register", port, per)
        return ([v for ids, _, _ in answers for v in ids], max(a[1] for a in answers),
                sum(a[2] for a in answers))


async def _events(control: Any, ven_ids: list[str], stop: asyncio.Event, first_at: float) -> None:
    """An event published to the whole fleet every minute from ``first_at`` (monotonic)."""
    tags = itertools.count()
    next_at = first_at
    while True:
        try:
            async with asyncio.timeout(max(0.0, next_at - time.monotonic())):
                await stop.wait()
            return
        except TimeoutError:
            pass
        next_at += 60.0
        await control.call("publish", ven_ids, f"-{next(tags)}")


async def drive(control: Any, generators: Generators, ven_ids: list[str],
                args: argparse.Namespace, *, cprofile: bool = False, live_events: int = 1
                ) -> tuple[Tally, float, float, str]:
    """The fleet for warm-up plus the window: (merged tally, VTN CPU seconds, window seconds,
    with ``cprofile`` the VTN's cProfile over the window). ``live_events - 1`` events are
    published to the fleet before the warm-up (``--live-events``)."""
    for n in range(live_events - 1):  # the events a running fleet already holds
        await control.call("publish", ven_ids, f"-live{n}")
    start_at = time.monotonic() + 1.0
    window = args.minutes * 60.0
    running = asyncio.ensure_future(generators.call("run", start_at, args.warmup_s, window))
    stop = asyncio.Event()
    events = asyncio.create_task(_events(control, ven_ids, stop,
                                         start_at + args.warmup_s + EVENT_INTO_WINDOW_S))
    try:
        await asyncio.sleep(max(0.0, start_at + args.warmup_s - time.monotonic()))
        if cprofile:
            await control.call("cprofile", True)
        cpu_before, started = await control.call("clock")
        await asyncio.sleep(max(0.0, start_at + args.warmup_s + window - time.monotonic()))
        cpu_after, ended = await control.call("clock")
        cpu, measured = cpu_after - cpu_before, ended - started
        cprofiled = await control.call("cprofile", False) if cprofile else ""
    finally:
        stop.set()
        await events
    tally = Tally()
    for part in await running:
        tally.merge(part)
    return tally, float(cpu), measured, cprofiled


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetResult:
    kind: str
    vens: int
    cpu_per_device_minute_s: float
    busy: float  # VTN CPU over the window / the window: the share of its core it used
    p50_s: float
    p99_s: float
    p999_s: float
    rss_per_ven_bytes: float
    requests_per_s: float
    intended_per_s: float
    late_p99_s: float
    acks: int
    acked_events: int  # events the window's acks answered, all acks together
    reconnects: int
    bad: int
    errors: tuple[str, ...]
    rereg_s: float = math.nan  # --restart: every VEN registered again with the new VTN process
    rereg_cpu_s: float = math.nan  # ... and that VTN's CPU meanwhile
    retries: int = 0  # registrations tried again after a failed connection
    rereg_retries: int = 0  # ... after the restart
    cprofile: str = ""  # --cprofile: our VTN's cProfile over the window

    @property
    def keeps_up(self) -> bool:
        """The fleet was served as intended: 95 % of the intended requests answered."""
        return self.requests_per_s >= 0.95 * self.intended_per_s


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _spec(kind: str, pki: Any, args: argparse.Namespace, db: Path) -> ServerSpec:
    return ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      storage_url=f"sqlite:///{db}",
                      poll_frequency_s=args.poll_s, setup=args.setup,
                      repeat_cache=not args.no_repeat_cache)


async def _restart(kind: str, pki: Any, args: argparse.Namespace, cpu: int | None, db: Path,
                   generators: Generators) -> tuple[float, float, int]:
    """The VTN process gone and a new one started on the same database: every VEN registers
    again at once (``--restart-concurrency`` in flight), each on a new connection. (seconds
    until the last is registered, the new VTN's CPU seconds meanwhile, retries)."""
    await generators.call("close")
    with VtnProcess(_spec(kind, pki, args, db), cpu) as vtn:
        before = await vtn.control.call("cpu")
        _, took, retries = await generators.register(vtn.port, args.restart_concurrency)
        return took, await vtn.control.call("cpu") - before, retries


async def run_fleet(kind: str, pki: Any, args: argparse.Namespace, cpus: tuple[int | None,
                    set[int] | None], tmp: Path, run: int) -> FleetResult:
    vtn_cpu, load_cpus = cpus
    db = tmp / f"fleet-{kind}-{args.setup}-{run}.db"
    vens = len(pki.vens)
    with Generators(list(pki.vens), pki.ca, args, args.generators, load_cpus) as generators:
        with VtnProcess(_spec(kind, pki, args, db), vtn_cpu) as vtn:
            rss_start = await vtn.control.call("rss")
            ven_ids, _, retries = await generators.register(vtn.port, args.concurrency)
            rss_connected = await vtn.control.call("rss")
            tally, cpu_s, window, cprofiled = await drive(
                vtn.control, generators, ven_ids, args,
                cprofile=args.cprofile and kind == "ours", live_events=args.live_events)
        rereg_s = rereg_cpu_s = math.nan
        rereg_retries = 0
        if args.restart:
            rereg_s, rereg_cpu_s, rereg_retries = await _restart(kind, pki, args, vtn_cpu, db,
                                                                 generators)
    minutes = window / 60.0
    per_device_min = 60.0 / args.poll_s + (15.0 if args.telemetry == "sample" else 1.0)
    return FleetResult(
        kind=kind, vens=vens, cpu_per_device_minute_s=cpu_s / (vens * minutes),
        busy=cpu_s / window,
        p50_s=_percentile(tally.latencies, 0.50), p99_s=_percentile(tally.latencies, 0.99),
        p999_s=_percentile(tally.latencies, 0.999),
        rss_per_ven_bytes=(rss_connected - rss_start) / vens,
        # the generators count over their own window, the shared monotonic clock's; the VTN's
        # window (CPU) may start late behind a publish on the control pipe
        requests_per_s=tally.requests / (args.minutes * 60.0),
        intended_per_s=vens * per_device_min / 60.0,
        late_p99_s=_percentile(tally.late, 0.99), acks=tally.acks,
        acked_events=tally.acked_events, reconnects=tally.reconnects,
        bad=tally.bad, errors=tuple(tally.errors[:6]), rereg_s=rereg_s, rereg_cpu_s=rereg_cpu_s,
        retries=retries, rereg_retries=rereg_retries, cprofile=cprofiled)


def _spread(values: list[float], scale: float, unit: str, digits: int = 2) -> str:
    good = [v * scale for v in values if not math.isnan(v)]
    if not good:
        return "-"
    median = statistics.median(good)
    if len(good) == 1:
        return f"{median:,.{digits}f} {unit}"
    return f"{median:,.{digits}f} {unit} ({min(good):,.{digits}f}-{max(good):,.{digits}f})"


def render(args: argparse.Namespace, vens: int, results: list[FleetResult],
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    def of(kind: str, pick: Any) -> list[float]:
        return [pick(r) for r in results if r.kind == kind]

    head = f"{'figure':<34} {'crowdflex':>32} {'openleadr':>32}"
    lines = [
        f"fleet: {vens:,} VENs, polls every {args.poll_s:g} s, 4-s telemetry"
        f" {'one report per sample' if args.telemetry == 'sample' else 'batched per minute'},"
        f" {args.encoding} bodies, an event to all every minute, {args.live_events - 1} before"
        f" the warm-up, 1 %/min reconnecting;"
        f" setup {args.setup}; {args.minutes:g} min measured after {args.warmup_s:g} s;"
        f" repeat cache {'OFF' if args.no_repeat_cache else 'on'};"
        f" {args.generators} load generator process(es)",
        "load average before: " + " ".join(f"{x:.2f}" for x in load[0])
        + ", after: " + " ".join(f"{x:.2f}" for x in load[1]),
        head, "-" * len(head)]
    rows = (
        ("VTN CPU per device-minute", lambda r: r.cpu_per_device_minute_s, 1000.0, "ms", 3),
        ("devices per core at 100 %", lambda r: 60.0 / r.cpu_per_device_minute_s
         if r.cpu_per_device_minute_s else math.nan, 1.0, "", 0),
        ("VTN core busy", lambda r: r.busy, 100.0, "%", 0),
        ("latency p50", lambda r: r.p50_s, 1000.0, "ms", 1),
        ("latency p99", lambda r: r.p99_s, 1000.0, "ms", 1),
        ("latency p99.9", lambda r: r.p999_s, 1000.0, "ms", 1),
        ("RSS per connected VEN", lambda r: r.rss_per_ven_bytes, 1 / 1024, "KiB", 1),
        ("requests/s reached (intended)", lambda r: r.requests_per_s, 1.0, "/s", 0),
        ("load generator lateness p99", lambda r: r.late_p99_s, 1000.0, "ms", 1),
    ) + ((
        ("restart: all VENs registered again", lambda r: r.rereg_s, 1.0, "s", 1),
        ("restart: VTN CPU meanwhile", lambda r: r.rereg_cpu_s, 1.0, "s", 1),
        ("restart: VTN CPU per registration", lambda r: r.rereg_cpu_s / r.vens, 1000.0, "ms", 2),
    ) if args.restart else ())
    for label, pick, scale, unit, digits in rows:
        lines.append(f"{label:<34} {_spread(of('ours', pick), scale, unit, digits):>32}"
                     f" {_spread(of('openleadr', pick), scale, unit, digits):>32}")
    pairs = list(zip(of("ours", lambda r: r.cpu_per_device_minute_s),
                     of("openleadr", lambda r: r.cpu_per_device_minute_s), strict=False))
    ratios = [b / a for a, b in pairs if a and b]
    if ratios:
        lines.append(f"{'CPU per device-minute, ratio':<34} {statistics.median(ratios):>29.2f}x"
                     f" ({min(ratios):.2f}-{max(ratios):.2f}; higher = crowdflex better)")
    if results:
        lines.append(f"intended: {results[0].intended_per_s:,.0f} requests/s")
    for r in results:
        each = f" ({r.acked_events / r.acks:.1f} events each)" if r.acks else ""
        lines.append(f"{r.kind}: {r.acks} acks{each}, {r.reconnects} reconnects, {r.bad} failed,"
                     f" registrations retried {r.retries}"
                     + (f" (after the restart {r.rereg_retries})" if args.restart else "")
                     + ("" if r.keeps_up else "; the load generator did NOT keep up")
                     + (f"; {'; '.join(r.errors[:2])}" if r.errors else ""))
    return "\n".join(lines)


def capacity(probe: FleetResult) -> tuple[int, str]:
    """openleadr's capacity on this workload from a run of it, and how it was found: the devices
    at which its core is fully busy, from the share of the core ``probe.vens`` kept busy (the
    cost per device-minute is flat in the fleet's size while the VTN keeps up)."""
    devices = round(probe.vens / probe.busy) if probe.busy > 0 else 0
    how = (f"openleadr capacity ~ {devices:,} devices: at {probe.vens:,} VENs its core was"
           f" {probe.busy:.0%} busy and served {probe.requests_per_s:,.0f} of"
           f" {probe.intended_per_s:,.0f} intended requests/s"
           f" ({'kept up' if probe.keeps_up else 'did NOT keep up: a lower bound only'});"
           f" capacity = VENs / busy share")
    return devices, how


def _runs(args: argparse.Namespace, pki: Any, tmp: Path, kinds: tuple[str, ...],
          loop_factory: Any) -> list[FleetResult]:
    vtn_cpu, _ = _cores()
    # the generators get every core but the VTN's
    load_cpus = None if vtn_cpu is None else set(os.sched_getaffinity(0)) - {vtn_cpu}
    results = []
    for run, order in enumerate(abba(args.runs)):
        for kind in order:
            if kind in kinds:
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    results.append(runner.run(run_fleet(kind, pki, args,
                                                        (vtn_cpu, load_cpus), tmp, run)))
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vens", type=int, default=1000, help="VENs (devices) in the fleet")
    parser.add_argument("--poll-s", type=float, default=10.0, help="poll interval of each VEN")
    parser.add_argument("--telemetry", choices=("sample", "minute"), default="minute",
                        help="one report per 4-s sample, or batched per minute")
    parser.add_argument("--encoding", choices=("ours", "openleadr"), default="ours",
                        help="whose encoder made the VENs' bodies")
    parser.add_argument("--minutes", type=float, default=1.0, help="measured window")
    parser.add_argument("--warmup-s", type=float, default=15.0, help="fleet running before it")
    parser.add_argument("--live-events", type=int, default=2,
                        help="events each VEN holds: N-1 published before the warm-up (1: none,"
                             " as before the option; 35: every minute's event kept)")
    parser.add_argument("--runs", type=int, default=1, help="runs per VTN (ABBA)")
    parser.add_argument("--setup", choices=SETUPS, default="tuned", help="runtime of both VTNs")
    parser.add_argument("--only", choices=KINDS, help="one VTN only")
    parser.add_argument("--no-repeat-cache", action="store_true", help="our repeat cache off")
    parser.add_argument("--concurrency", type=int, default=50, help="registrations in flight")
    parser.add_argument("--cprofile", action="store_true",
                        help="cProfile our VTN over the measured window and print it")
    parser.add_argument("--generators", type=int, default=1,
                        help="load generator processes the VENs are spread over")
    parser.add_argument("--restart", action="store_true",
                        help="then restart the VTN: every VEN registers again at once")
    parser.add_argument("--restart-concurrency", type=int, default=10_000,
                        help="re-registrations in flight after the restart")
    parser.add_argument("--capacity", action="store_true",
                        help="find openleadr's capacity with --vens VENs, then run both VTNs at"
                             " 50 %% and 80 %% of it")
    args = parser.parse_args(argv)
    if min(args.vens, args.runs, args.generators, args.restart_concurrency,
           args.live_events) < 1 \
            or args.poll_s <= 0 or args.minutes <= 0:
        parser.error("counts and durations must be positive")
    warnings.simplefilter("ignore")
    from bench.vtn import mint

    try:
        import uvloop
        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    kinds = KINDS if args.only is None else (args.only,)
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-fleet-") as name:
        tmp = Path(name)
        before = os.getloadavg()
        pki = mint(tmp, vens=args.vens, rsa_vens=0)
        if not args.capacity:
            results = _runs(args, pki, tmp, kinds, loop_factory)
            print(render(args, args.vens, results, (before, os.getloadavg())))
            for result in (r for r in results if r.cprofile):
                print("\nour VTN over the measured window (cProfile, its overhead included):\n"
                      + result.cprofile)
            return 0
        probe_args = argparse.Namespace(**{**vars(args), "runs": 1, "restart": False})
        (probe,) = _runs(probe_args, pki, tmp, ("openleadr",), loop_factory)
        devices, how = capacity(probe)
        print(how)
        for share in (0.5, 0.8):
            vens = max(1, round(share * devices))
            before = os.getloadavg()
            sized = mint(tmp / f"at-{share}", vens=vens, rsa_vens=0) if vens > args.vens \
                else dataclasses.replace(pki, vens=pki.vens[:vens])
            results = _runs(args, sized, tmp, kinds, loop_factory)
            print(f"\nat {share:.0%} of openleadr's capacity:")
            print(render(args, vens, results, (before, os.getloadavg())))
    return 0
