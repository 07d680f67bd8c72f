"""Where a fleet device's minute goes: the fleet's requests one kind at a time, one in flight.

``python -m bench fleet`` gives one figure, VTN CPU per device-minute, for the mix. This benchmark
takes the mix apart: ``--vens`` VENs register, then each in turn (one request in flight, as a fleet
spread over its poll interval mostly is) sends, ``--rounds`` times per kind:

- ``poll``: an oadrPoll with nothing waiting (our repeat cache serves it from the second on);
- ``report``: a 15-point TELEMETRY_USAGE oadrUpdateReport, every point new (a minute batched);
- ``event poll``: the oadrPoll that brings the event published to all (once per round);
- ``ack``: the oadrCreatedEvent answering it (optIn);
- ``reconnect``: an oadrPoll on a new mutual-TLS connection (the handshake included).

Per kind: VTN CPU per request (``time.process_time`` of the VTN process across the kind's
requests; every thread, none of the load) and the part of it spent off the event-loop thread
(the SQLite threads), and the publish's CPU per VEN. The last rows weigh
them as one device's minute of ``bench fleet`` (10-s polls, telemetry batched per minute, one
event, 1 % reconnecting), which can be set against what ``bench fleet`` measures for the mix.
Same runtime for both VTNs (``--setup``), ``--runs`` fresh processes each in ABBA order, median
and range; the load average is printed. ``--floor`` adds, after each run's pair, what a request
costs with nothing but fixed bytes answered, on the same TLS context and runtime, three ways:
aiohttp's ``Application`` with its router (the part no VTN built as both are can take away),
aiohttp's low-level ``web.Server``, and a bare ``asyncio.Protocol`` (no HTTP framework).

``--spacing-ms`` pauses that long after each measured reply before the next request (the
floors' too), as a fleet's requests reach the VTN apart (1,000 VENs, nine requests each a
minute: one every 6.7 ms) rather than back to back; a server that idles between requests pays
more CPU for each (bench/README.md, "The fleet's mix against its kinds").
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import schemas
from bench._fleet_generator import _openleadr_report, _patched, _report
from bench._vtn_load import VenIdentity, response_code
from bench._vtn_server import FLOORS, SETUPS, ServerSpec
from bench.vtn import KINDS, VtnProcess, _cores, abba, mint

__all__ = ["main"]

_CODEC: Final = schemas.Codec()
_PREFIX: Final = "/OpenADR2/Simple/2.0b"


@dataclass(slots=True, kw_only=True)
class Device:
    """One VEN, sending one request at a time on its keep-alive connection."""

    identity: VenIdentity
    link: Any  # bench._raw_http.RawLink
    ven_id: str = ""
    templates: tuple[bytes, ...] = ()  # its reports, numbered on as they are sent
    sent: int = 0
    errors: list[str] = field(default_factory=list)


def _devices(identities: list[VenIdentity], ca: Path, port: int) -> list[Device]:
    import ssl

    from bench._raw_http import RawLink

    out = []
    for identity in identities:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(identity.cert), str(identity.key))
        out.append(Device(identity=identity, link=RawLink("127.0.0.1", port, context, _PREFIX)))
    return out


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
# one device's minute in bench fleet: 6 polls (one of them brings the event, and the VEN polls
# again after its ack), one batched report, one ack, 1 % of a reconnect
_MINUTE: Final = (("poll", 6.0), ("report", 1.0), ("event poll", 1.0), ("ack", 1.0),
                  ("reconnect", 0.01), ("publish", 1.0))
_ROWS: Final = ("poll", "report", "event poll", "ack", "reconnect", "publish")


async def _each(devices: list[Device], send: Callable[[Device], Awaitable[bytes]],
                errors: list[str], spacing_s: float = 0.0) -> None:
    """``send`` for each device in turn, one in flight, pausing ``spacing_s`` after each reply."""
    for device in devices:
        reply = await send(device)
        if response_code(reply) not in (0, 200) and len(errors) < 3:
            errors.append(reply[:160].decode(errors="replace"))
        if spacing_s:
            await asyncio.sleep(spacing_s)


async def _measure(control: Any, work: Awaitable[None], count: int,
                   cprofile: list[str] | None = None) -> tuple[float, float]:
    """VTN CPU per request of ``work`` (``count`` requests), and the part of it spent off the
    event-loop thread; with ``cprofile`` the VTN's cProfile of it is appended there."""
    if cprofile is not None:
        await control.call("cprofile", True)
    process, loop = await control.call("split")
    await work
    process_after, loop_after = await control.call("split")
    if cprofile is not None:
        cprofile.append(await control.call("cprofile", False))
    cpu = float(process_after - process) / count
    # the two clocks tick apart: a kind the loop thread did alone may come out a hair below 0
    return cpu, max(0.0, cpu - float(loop_after - loop) / count)


async def run_kinds(kind: str, setup: str, pki: Any, args: argparse.Namespace,
                    cpu: int | None, tmp: Path, run: int, cprofiles: list[str]
                    ) -> tuple[dict[str, tuple[float, float]], list[str]]:
    spec = ServerSpec(kind=kind, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      storage_url=f"sqlite:///{tmp / f'kinds-{kind}-{run}.db'}", setup=setup)
    errors: list[str] = []
    per: dict[str, list[tuple[float, float]]] = {name: [] for name in _ROWS}
    ids = itertools.count()
    with VtnProcess(spec, cpu) as vtn:
        devices = _devices(list(pki.vens), pki.ca, vtn.port)
        try:
            await _register(devices, 50)
            for device in devices:
                ours = tuple(_report(device.ven_id, 15, v) for v in range(4))
                device.templates = (tuple(_openleadr_report(t) for t in ours)
                                    if args.encoding == "openleadr" else ours)
            polls = {d.ven_id: _CODEC.encode(schemas.Poll(ven_id=d.ven_id)) for d in devices}
            for _ in range(3):  # drain: ours queues its METADATA request after registration
                await _each(devices, lambda d: _post(d, "OadrPoll", polls[d.ven_id]), [])
            control, count = vtn.control, len(devices)
            acks: dict[str, bytes] = {}

            async def poll(d: Device) -> bytes:
                return await _post(d, "OadrPoll", polls[d.ven_id])

            async def report(d: Device) -> bytes:
                n, d.sent = d.sent, d.sent + 1
                body = _patched(d.templates[n % len(d.templates)], n,
                                f"REQ-{next(ids):012d}".encode())
                return await _post(d, "EiReport", body)

            async def event_poll(d: Device) -> bytes:
                reply = await poll(d)
                acks[d.ven_id] = _ack(d, reply)
                return reply

            async def ack(d: Device) -> bytes:
                return await _post(d, "EiEvent", acks.pop(d.ven_id))

            async def reconnect(d: Device) -> bytes:
                await d.link.close()
                return await poll(d)

            def sends(row: str, send: Callable[[Device], Awaitable[bytes]]
                      ) -> Awaitable[tuple[float, float]]:
                cprofile = cprofiles if kind == "ours" and args.cprofile == row else None
                return _measure(control, _each(devices, send, errors, args.spacing_ms / 1000),
                                count, cprofile)

            for round_ in range(args.rounds):
                per["poll"].append(await sends("poll", poll))
                per["report"].append(await sends("report", report))
                per["publish"].append(await _measure(control, control.call(
                    "publish", [d.ven_id for d in devices], f"-{round_}"), count))
                per["event poll"].append(await sends("event poll", event_poll))
                per["ack"].append(await sends("ack", ack))
                await _each(devices, poll, errors)  # the poll after the ack: nothing left
                per["reconnect"].append(await sends("reconnect", reconnect))
        finally:
            await asyncio.gather(*(d.link.close() for d in devices), return_exceptions=True)
    return {name: (statistics.median(v[0] for v in values),
                   statistics.median(v[1] for v in values))
            for name, values in per.items()}, errors


async def _post(device: Device, service: str, body: bytes) -> bytes:
    status, reply = await device.link.post(service, body)
    return reply if status == 200 else f"HTTP {status}".encode()


async def run_floor(floor: str, pki: Any, args: argparse.Namespace, cpu: int | None,
                    tmp: Path) -> float:
    """Server CPU per request of ``floor`` (``bench._vtn_server.FLOORS``: fixed bytes answered
    on our TLS context and runtime), the same devices posting polls one in flight."""
    spec = ServerSpec(kind=floor, cert=pki.vtn_cert, key=pki.vtn_key, ca=pki.ca,
                      storage_url=f"sqlite:///{tmp / 'floor.db'}", setup=args.setup)
    body = _CODEC.encode(schemas.Poll(ven_id="floor"))
    errors: list[str] = []
    with VtnProcess(spec, cpu) as server:
        devices = _devices(list(pki.vens), pki.ca, server.port)

        async def poll(d: Device) -> bytes:
            return await _post(d, "OadrPoll", body)

        try:
            await _each(devices, poll, errors)  # every connection made before the clock
            values = [(await _measure(
                server.control, _each(devices, poll, errors, args.spacing_ms / 1000),
                len(devices)))[0] for _ in range(args.rounds)]
        finally:
            await asyncio.gather(*(d.link.close() for d in devices), return_exceptions=True)
    if errors:
        raise RuntimeError(f"the floor failed a request: {errors[0]}")
    return statistics.median(values)


def _ack(device: Device, reply: bytes) -> bytes:
    message = _CODEC.decode(reply)
    if not isinstance(message, schemas.DistributeEvent) or not message.events:
        raise RuntimeError(f"{device.ven_id}: no event in the reply to its poll: {reply[:200]!r}")
    answers = tuple(schemas.EventResponse(
        request_id=message.request_id, event_id=e.event_id,
        modification_number=e.modification_number, opt_type=schemas.OptType.OPT_IN)
        for e in message.events)
    return _CODEC.encode(schemas.CreatedEvent(
        response=schemas.EiResponse(request_id=message.request_id), ven_id=device.ven_id,
        event_responses=answers))


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    ms = [v * 1000.0 for v in values]
    middle = statistics.median(ms)
    return f"{middle:.3f} ms" if len(ms) == 1 else f"{middle:.3f} ms ({min(ms):.3f}-{max(ms):.3f})"


_FLOOR_LABELS: Final = {"floor": "aiohttp Application + router", "floor-server":
                        "aiohttp low-level web.Server", "floor-lean": "bare asyncio.Protocol"}


def render(args: argparse.Namespace, results: list[tuple[str, dict[str, tuple[float, float]]]],
           load: tuple[tuple[float, ...], tuple[float, ...]],
           floors: dict[str, list[float]]) -> str:
    def of(kind: str, row: str, part: int = 0) -> list[float]:
        return [figures[row][part] for k, figures in results if k == kind]

    def minute(figures: dict[str, tuple[float, float]]) -> float:
        return sum(figures[row][0] * weight for row, weight in _MINUTE)

    head = (f"{'VTN CPU per request':<28} {'crowdflex':>30} {'of it off the loop':>20}"
            f" {'openleadr':>30} {'ratio':>8}")
    spaced = f" {args.spacing_ms:g} ms apart" if args.spacing_ms else ""
    lines = [f"fleet kinds: {args.vens} VENs, one request in flight{spaced}, {args.rounds} rounds,"
             f" {args.encoding} bodies, setup {args.setup}, {args.runs} runs (ABBA)",
             "load average before: " + " ".join(f"{x:.2f}" for x in load[0])
             + ", after: " + " ".join(f"{x:.2f}" for x in load[1]), head, "-" * len(head)]
    for row in _ROWS:
        ours, theirs = of("ours", row), of("openleadr", row)
        ratio = (f"{statistics.median(theirs) / statistics.median(ours):.2f}x"
                 if ours and theirs and statistics.median(ours) > 0 else "-")
        label = "publish, per VEN" if row == "publish" else row
        off = of("ours", row, 1)
        off_cell = f"{1000 * statistics.median(off):.3f} ms" if off else "-"
        lines.append(f"{label:<28} {_cell(ours):>30} {off_cell:>20} {_cell(theirs):>30}"
                     f" {ratio:>8}")
    ours_min = [minute(f) for k, f in results if k == "ours"]
    theirs_min = [minute(f) for k, f in results if k == "openleadr"]
    label = "one device-minute, weighed"
    lines.append(f"{label:<28} {_cell(ours_min):>30} {'':>20} {_cell(theirs_min):>30}")
    lines.append("weights: " + ", ".join(f"{w:g} x {row}" for row, w in _MINUTE))
    requests = sum(w for row, w in _MINUTE if row != "publish")
    for floor, values in floors.items():
        if values:
            lines.append(f"floor, {_FLOOR_LABELS[floor]}, fixed reply: {_cell(values)} per"
                         f" request; x {requests:g} requests ="
                         f" {1000 * statistics.median(values) * requests:.3f} ms per"
                         " device-minute before any VTN work")
    if ours_min:  # the share of each kind in our minute, from the medians
        medians = {row: statistics.median(of("ours", row)) for row in _ROWS}
        total = sum(medians[row] * w for row, w in _MINUTE)
        lines.append("crowdflex's minute: " + ", ".join(
            f"{row} {100 * medians[row] * w / total:.0f} %" for row, w in _MINUTE))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fleetkinds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vens", type=int, default=200, help="VENs registered")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every kind per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per VTN (ABBA)")
    parser.add_argument("--encoding", choices=("ours", "openleadr"), default="ours",
                        help="whose encoder made the reports")
    parser.add_argument("--setup", choices=SETUPS, default="tuned", help="runtime of both VTNs")
    parser.add_argument("--only", choices=KINDS, help="one VTN only")
    parser.add_argument("--floor", action="store_true",
                        help="also measure fixed bytes answered by aiohttp's application, its"
                             " low-level server and a bare protocol (same TLS, runtime)")
    parser.add_argument("--spacing-ms", type=float, default=0.0,
                        help="pause after each measured reply before the next request (a fleet"
                             " of 1,000 VENs sends one every ~6.7 ms)")
    parser.add_argument("--cprofile", choices=_ROWS[:-1],
                        help="cProfile our VTN across this kind's requests and print it")
    args = parser.parse_args(argv)
    if min(args.vens, args.rounds, args.runs) < 1:
        parser.error("counts must be positive")
    if args.spacing_ms < 0:
        parser.error("--spacing-ms must not be negative")
    warnings.simplefilter("ignore")
    try:
        import uvloop
        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    vtn_cpu, load_cpu = _cores()
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    before = os.getloadavg()
    results: list[tuple[str, dict[str, float]]] = []
    failures: list[str] = []
    cprofiles: list[str] = []
    floors: dict[str, list[float]] = {floor: [] for floor in FLOORS}
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-kinds-") as name:
        tmp = Path(name)
        pki = mint(tmp, vens=args.vens, rsa_vens=0)
        for run, order in enumerate(abba(args.runs)):
            for kind in order:
                if args.only in (None, kind):
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        figures, errors = runner.run(run_kinds(kind, args.setup, pki, args,
                                                               vtn_cpu, tmp, run, cprofiles))
                    results.append((kind, figures))
                    failures += [f"{kind}: {e}" for e in errors]
            if args.floor:
                for floor, values in floors.items():
                    with asyncio.Runner(loop_factory=loop_factory) as runner:
                        values.append(runner.run(run_floor(floor, pki, args, vtn_cpu, tmp)))
    print(render(args, results, (before, os.getloadavg()), floors))
    for failure in failures[:6]:
        print("failed:", failure)
    if cprofiles:  # the last round's: warm
        print(f"\nour VTN across {args.cprofile} requests (cProfile, its overhead included):\n"
              + cprofiles[-1])
    return 0
