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
is one process on its own core (uvloop, raw HTTP/1.1 on keep-alive mutual TLS, bodies patched from
templates made before the clock). When it cannot keep up, the offered rate it reached is printed
beside the intended one: read the figures as that load's, not the intended one's.

``--profile`` prints our VTN's cProfile over the measured window (CPU time of its event-loop
thread); ``python -m bench fleetkinds`` takes the mix apart by request kind.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import schemas
from bench._vtn_load import VenIdentity, response_code
from bench._vtn_server import SETUPS, ServerSpec
from bench.vtn import KINDS, VtnProcess, _cores, abba

PREFIX: Final = "/OpenADR2/Simple/2.0b"
_CODEC: Final = schemas.Codec()
_SAMPLE_S: Final = 4.0
_REQUEST_ID: Final = b"REQ-000000000000"  # fixed width: patched per report
_BASE: Final = datetime(2030, 1, 1, tzinfo=UTC)

__all__ = ["Fleet", "FleetResult", "main"]


@dataclass(slots=True, kw_only=True)
class Device:
    """One VEN of the fleet and what it has sent."""

    identity: VenIdentity
    link: Any  # bench._raw_http.RawLink
    ven_id: str = ""
    templates: tuple[bytes, ...] = ()
    sent: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)  # timer lateness of scheduled sends, s
    requests: int = 0
    bad: int = 0
    acks: int = 0
    reconnects: int = 0
    measuring: bool = False


def _report(ven_id: str, samples: int, variant: int) -> bytes:
    """An oadrUpdateReport of ``samples`` 4-s TELEMETRY_USAGE points starting at _BASE, with
    a placeholder requestID; ``variant`` moves the values."""
    intervals = tuple(
        schemas.ReportInterval(dtstart=_BASE + timedelta(seconds=_SAMPLE_S * k),
                               duration=timedelta(seconds=_SAMPLE_S),
                               payloads=(schemas.ReportPayload(
                                   r_id="power", value=round(1.0 + 0.37 * variant + 0.01 * k, 2)),))
        for k in range(samples))
    report = schemas.Report(report_request_id="telemetry", report_specifier_id="TELEMETRY-1",
                            report_name="TELEMETRY_USAGE", created_date_time=_BASE,
                            intervals=intervals)
    return _CODEC.encode(schemas.UpdateReport(request_id=_REQUEST_ID.decode(), reports=(report,),
                                              ven_id=ven_id))


def _openleadr_report(ours: bytes) -> bytes:
    from openleadr.messaging import create_message, parse_message

    kind, payload = parse_message(ours)
    written = create_message(kind, **payload)
    return written.encode() if isinstance(written, str) else written


_STAMP: Final = _BASE.strftime("%Y-%m-%dT%H:").encode()


def _patched(template: bytes, n: int, request_id: bytes) -> bytes:
    # every report one hour further: all its points are new to the VTN
    stamp = (_BASE + timedelta(hours=n + 1)).strftime("%Y-%m-%dT%H:").encode()
    return template.replace(_STAMP, stamp).replace(_REQUEST_ID, request_id)


class Fleet:
    """The fleet's behaviour against one VTN at ``port``."""

    def __init__(self, devices: list[Device], args: argparse.Namespace, control: Any, *,
                 profile: bool = False) -> None:
        self.devices, self.args, self.control = devices, args, control
        self.profiling = profile
        self.tally = Tally()
        self.stop = asyncio.Event()
        self._ids = itertools.count()
        self.profile = ""  # the VTN's cProfile over the window, with --profile

    async def _post(self, device: Device, service: str, body: bytes) -> bytes:
        start = time.perf_counter()
        try:
            status, reply = await device.link.post(service, body)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            self.tally.bad += 1
            if len(device.errors) < 3:
                device.errors.append(f"{service}: {exc!r}")
            return b""
        if self.tally.measuring:
            self.tally.latencies.append(time.perf_counter() - start)
            self.tally.requests += 1
        if status != 200 or response_code(reply) not in (0, 200):
            self.tally.bad += 1
            if len(device.errors) < 3:
                device.errors.append(f"{service}: HTTP {status}, {reply[:160]!r}")
        return reply

    async def _every(self, period: float, action: Any) -> None:
        """``action()`` every ``period`` s on a random phase, until stopped."""
        next_at = time.perf_counter() + random.uniform(0.0, period)
        while not self.stop.is_set():
            delay = next_at - time.perf_counter()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self.stop.wait()
                    return
                except TimeoutError:
                    pass
            if self.tally.measuring:  # how late this firing is against its schedule
                self.tally.late.append(max(0.0, time.perf_counter() - next_at))
            next_at += period
            await action()

    async def _poll(self, device: Device) -> None:
        body = self._poll_body(device)
        while not self.stop.is_set():
            reply = await self._post(device, "OadrPoll", body)
            if b"oadrDistributeEvent" not in reply:
                return
            await self._ack(device, reply)

    def _poll_body(self, device: Device) -> bytes:
        if self.args.encoding == "openleadr":
            from openleadr.messaging import create_message

            return create_message("oadrPoll", ven_id=device.ven_id).encode()
        return _CODEC.encode(schemas.Poll(ven_id=device.ven_id))

    async def _ack(self, device: Device, reply: bytes) -> None:
        message = _CODEC.decode(reply)
        if not isinstance(message, schemas.DistributeEvent):
            return
        answers = tuple(schemas.EventResponse(
            request_id=message.request_id, event_id=e.event_id,
            modification_number=e.modification_number, opt_type=schemas.OptType.OPT_IN)
            for e in message.events)
        ack = schemas.CreatedEvent(response=schemas.EiResponse(request_id=message.request_id),
                                   ven_id=device.ven_id, event_responses=answers)
        await self._post(device, "EiEvent", _CODEC.encode(ack))
        self.tally.acks += 1

    async def _report(self, device: Device) -> None:
        n = device.sent
        device.sent += 1
        request_id = f"REQ-{next(self._ids):012d}".encode()
        body = _patched(device.templates[n % len(device.templates)], n, request_id)
        await self._post(device, "EiReport", body)

    async def _reconnects(self) -> None:
        """1 % of the fleet per minute: a random VEN's connection closed; its next request
        makes a new mutual-TLS handshake."""
        per_minute = max(1, len(self.devices) // 100)

        async def one() -> None:
            await random.choice(self.devices).link.close()
            self.tally.reconnects += 1

        await self._every(60.0 / per_minute, one)

    async def _events(self) -> None:
        tags = itertools.count()

        async def publish() -> None:
            await self.control.call("publish", [d.ven_id for d in self.devices],
                                    f"-{next(tags)}")

        await self._every(60.0, publish)

    async def run(self) -> tuple[float, float]:
        """The fleet for warm-up plus the window; (VTN CPU seconds, window seconds)."""
        period = _SAMPLE_S if self.args.telemetry == "sample" else 60.0
        tasks = [asyncio.create_task(self._every(self.args.poll_s, lambda d=d: self._poll(d)))
                 for d in self.devices]
        tasks += [asyncio.create_task(self._every(period, lambda d=d: self._report(d)))
                  for d in self.devices]
        tasks += [asyncio.create_task(self._reconnects()), asyncio.create_task(self._events())]
        try:
            await asyncio.sleep(self.args.warmup_s)
            self.tally.measuring = True
            if self.profiling:
                await self.control.call("profile", True)
            started, cpu_before = time.perf_counter(), await self.control.call("cpu")
            await asyncio.sleep(self.args.minutes * 60.0)
            cpu = await self.control.call("cpu") - cpu_before
            if self.profiling:
                self.profile = await self.control.call("profile", False)
            window = time.perf_counter() - started
            self.tally.measuring = False
        finally:
            self.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        return float(cpu), window


async def _register(devices: list[Device], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int, device: Device) -> None:
        body = _CODEC.encode(schemas.CreatePartyRegistration(
            request_id=f"reg-{n}", ven_name=device.identity.name, http_pull_model=True))
        async with gate:
            _, reply = await device.link.post("EiRegisterParty", body)
        message = _CODEC.decode(reply)
        if not isinstance(message, schemas.CreatedPartyRegistration) or not message.ven_id:
            raise RuntimeError(f"{device.identity.name} not registered: {message!r}")
        device.ven_id = message.ven_id

    await asyncio.gather(*(one(n, d) for n, d in enumerate(devices)))


async def _drain(fleet: Fleet) -> None:
    """Empty every VEN's queue (ours queues its METADATA request after registration)."""
    async def one(device: Device) -> None:
        for _ in range(20):
            _, reply = await device.link.post("OadrPoll", fleet._poll_body(device))
            if b"oadrResponse" in reply[:2000] and b"oadrRegisterReport" not in reply:
                return

    await asyncio.gather(*(one(d) for d in fleet.devices))


def _devices(identities: list[VenIdentity], ca: Path, port: int) -> list[Device]:
    import ssl

    from bench._raw_http import RawLink

    out = []
    for identity in identities:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(identity.cert), str(identity.key))
        out.append(Device(identity=identity, link=RawLink("127.0.0.1", port, context, PREFIX)))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetResult:
    kind: str
    cpu_per_device_minute_s: float
    p50_s: float
    p99_s: float
    p999_s: float
    rss_per_ven_bytes: float
    requests_per_s: float
    intended_per_s: float
    late_p99_s: float
    acks: int
    reconnects: int
    bad: int
    errors: tuple[str, ...]
    profile: str = ""


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_fleet(kind: str, setup: str, pki: Any, args: argparse.Namespace,
                    cpu: int | None, tmp: Path, run: int) -> FleetResult:
    spec = ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      db=tmp / f"fleet-{kind}-{setup}-{run}.db", poll_frequency_s=args.poll_s,
                      setup=setup, repeat_cache=not args.no_repeat_cache)
    with VtnProcess(spec, cpu) as vtn:
        rss_start = await vtn.control.call("rss")
        devices = _devices(list(pki.vens), pki.ca, vtn.port)
        fleet = Fleet(devices, args, vtn.control, profile=args.profile and kind == "ours")
        try:
            await _register(devices, args.concurrency)
            samples = 1 if args.telemetry == "sample" else int(60 / _SAMPLE_S)
            for device in devices:
                ours = tuple(_report(device.ven_id, samples, v) for v in range(4))
                device.templates = (tuple(_openleadr_report(t) for t in ours)
                                    if args.encoding == "openleadr" else ours)
            await _drain(fleet)
            rss_connected = await vtn.control.call("rss")
            cpu_s, window = await fleet.run()
        finally:
            await asyncio.gather(*(d.link.close() for d in devices), return_exceptions=True)
    tally = fleet.tally
    minutes = window / 60.0
    per_device_min = 60.0 / args.poll_s + (15.0 if args.telemetry == "sample" else 1.0)
    return FleetResult(
        kind=kind, cpu_per_device_minute_s=cpu_s / (len(devices) * minutes),
        p50_s=_percentile(tally.latencies, 0.50), p99_s=_percentile(tally.latencies, 0.99),
        p999_s=_percentile(tally.latencies, 0.999),
        rss_per_ven_bytes=(rss_connected - rss_start) / len(devices),
        requests_per_s=tally.requests / window,
        intended_per_s=len(devices) * per_device_min / 60.0,
        late_p99_s=_percentile(tally.late, 0.99), acks=tally.acks, reconnects=tally.reconnects,
        bad=tally.bad, errors=tuple(e for d in devices for e in d.errors)[:6],
        profile=fleet.profile)


def _spread(values: list[float], scale: float, unit: str, digits: int = 2) -> str:
    good = [v * scale for v in values if not math.isnan(v)]
    if not good:
        return "-"
    median = statistics.median(good)
    if len(good) == 1:
        return f"{median:,.{digits}f} {unit}"
    return f"{median:,.{digits}f} {unit} ({min(good):,.{digits}f}-{max(good):,.{digits}f})"


def render(args: argparse.Namespace, setup: str, results: list[FleetResult],
           load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    def of(kind: str, pick: Any) -> list[float]:
        return [pick(r) for r in results if r.kind == kind]

    head = f"{'figure':<34} {'crowdflex':>32} {'openleadr':>32}"
    lines = [
        f"fleet: {args.vens} VENs, polls every {args.poll_s:g} s, 4-s telemetry"
        f" {'one report per sample' if args.telemetry == 'sample' else 'batched per minute'},"
        f" {args.encoding} bodies, an event to all every minute, 1 %/min reconnecting;"
        f" setup {setup}; {args.minutes:g} min measured after {args.warmup_s:g} s;"
        f" repeat cache {'OFF' if args.no_repeat_cache else 'on'}",
        "load average before: " + " ".join(f"{x:.2f}" for x in load[0])
        + ", after: " + " ".join(f"{x:.2f}" for x in load[1]),
        head, "-" * len(head)]
    rows = (
        ("VTN CPU per device-minute", lambda r: r.cpu_per_device_minute_s, 1000.0, "ms", 3),
        ("devices per core at 100 %", lambda r: 60.0 / r.cpu_per_device_minute_s
         if r.cpu_per_device_minute_s else math.nan, 1.0, "", 0),
        ("latency p50", lambda r: r.p50_s, 1000.0, "ms", 1),
        ("latency p99", lambda r: r.p99_s, 1000.0, "ms", 1),
        ("latency p99.9", lambda r: r.p999_s, 1000.0, "ms", 1),
        ("RSS per connected VEN", lambda r: r.rss_per_ven_bytes, 1 / 1024, "KiB", 1),
        ("requests/s reached (intended)", lambda r: r.requests_per_s, 1.0, "/s", 0),
        ("load generator lateness p99", lambda r: r.late_p99_s, 1000.0, "ms", 1),
    )
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
        lines.append(f"{r.kind}: {r.acks} acks, {r.reconnects} reconnects, {r.bad} failed"
                     + (f"; {'; '.join(r.errors[:2])}" if r.errors else ""))
    return "\n".join(lines)


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
    parser.add_argument("--runs", type=int, default=1, help="runs per VTN (ABBA)")
    parser.add_argument("--setup", choices=SETUPS, default="tuned", help="runtime of both VTNs")
    parser.add_argument("--only", choices=KINDS, help="one VTN only")
    parser.add_argument("--no-repeat-cache", action="store_true", help="our repeat cache off")
    parser.add_argument("--concurrency", type=int, default=50, help="registrations in flight")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile our VTN over the measured window and print it")
    args = parser.parse_args(argv)
    if min(args.vens, args.runs) < 1 or args.poll_s <= 0 or args.minutes <= 0:
        parser.error("counts and durations must be positive")
    warnings.simplefilter("ignore")
    from bench.vtn import mint

    try:
        import uvloop
        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    vtn_cpu, load_cpu = _cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    before = os.getloadavg()
    results: list[FleetResult] = []
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-fleet-") as name:
        tmp = Path(name)
        pki = mint(tmp, vens=args.vens, rsa_vens=0)
        for run, order in enumerate(abba(args.runs)):
            for kind in order:
                if args.only in (None, kind):
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        results.append(runner.run(run_fleet(kind, args.setup, pki, args,
                                                            vtn_cpu, tmp, run)))
    print(render(args, args.setup, results, (before, os.getloadavg())))
    for result in (r for r in results if r.profile):
        print("\nour VTN over the measured window (cProfile, its overhead included):\n"
              + result.profile)
    return 0


