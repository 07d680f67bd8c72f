"""One load-generator process of ``python -m bench fleet``: a slice of the fleet's VENs.

:func:`generate` is the target of a ``spawn``-ed process. It owns its VENs' keep-alive mutual-TLS
links and answers commands from the benchmark process on its pipe, one at a time:

- ``("register", port, concurrency)`` -> ``(venIDs, seconds, retries)``: every VEN of the slice
  sends oadrCreatePartyRegistration to the VTN at ``port``, ``concurrency`` at a time (a VEN whose
  connection fails tries again after 0.5-2 s, up to five times, counted), then polls its
  queue empty (ours queues its METADATA request after a registration); links stay open;
- ``("run", start_at, warmup_s, window_s)`` -> a :class:`Tally`: the slice behaves as a fleet
  (polls, telemetry, acks, reconnects; see :mod:`bench.fleet`) from ``start_at``
  (``time.monotonic``, which every process of the machine shares) until the window ends,
  counting only inside it;
- ``("close",)`` -> None: every link closed (the VTN sees its VENs go);
- ``("stop",)`` -> None, and the process exits.

Invariants: loopback only; a VEN's failures are counted and the first three kept as text, never
raised, so one bad VEN cannot stop the slice; every wait ends with the window or a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import ssl
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import schemas
from bench._raw_http import RawLink
from bench._vtn_load import VenIdentity, response_code

__all__ = ["SAMPLE_S", "Tally", "generate"]

PREFIX: Final = "/OpenADR2/Simple/2.0b"
SAMPLE_S: Final = 4.0
_CODEC: Final = schemas.Codec()
_REQUEST_ID: Final = b"REQ-000000000000"  # fixed width: patched per report
_BASE: Final = datetime(2030, 1, 1, tzinfo=UTC)
_STAMP: Final = _BASE.strftime("%Y-%m-%dT%H:").encode()
_REGISTER_ATTEMPTS: Final = 5


@dataclass(slots=True)
class Tally:
    """What one slice saw inside the window (latencies and timer lateness in seconds)."""

    latencies: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    requests: int = 0
    bad: int = 0
    acks: int = 0
    acked_events: int = 0
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.latencies += other.latencies
        self.late += other.late
        self.requests += other.requests
        self.bad += other.bad
        self.acks += other.acks
        self.acked_events += other.acked_events
        self.reconnects += other.reconnects
        self.errors += other.errors[:max(0, 6 - len(self.errors))]


@dataclass(slots=True, kw_only=True)
class _Device:
    identity: VenIdentity
    context: ssl.SSLContext
    link: RawLink
    ven_id: str = ""
    templates: tuple[bytes, ...] = ()
    sent: int = 0


def _report(ven_id: str, samples: int, variant: int) -> bytes:
    """An oadrUpdateReport of ``samples`` 4-s TELEMETRY_USAGE points starting at _BASE, with
    a placeholder requestID; ``variant`` moves the values."""
    intervals = tuple(
        schemas.ReportInterval(dtstart=_BASE + timedelta(seconds=SAMPLE_S * k),
                               duration=timedelta(seconds=SAMPLE_S),
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


def _patched(template: bytes, n: int, request_id: bytes) -> bytes:
    # every report one hour further: all its points are new to the VTN
    stamp = (_BASE + timedelta(hours=n + 1)).strftime("%Y-%m-%dT%H:").encode()
    return template.replace(_STAMP, stamp).replace(_REQUEST_ID, request_id)


class _Slice:
    """This process's VENs and their behaviour as a fleet."""

    def __init__(self, identities: list[VenIdentity], ca: Path, args: argparse.Namespace,
                 first: int) -> None:
        self.args = args
        self.first = first  # index of this slice's first VEN in the fleet: unique requestIDs
        self.devices = []
        for identity in identities:
            context = ssl.create_default_context(cafile=str(ca))
            context.load_cert_chain(str(identity.cert), str(identity.key))
            self.devices.append(_Device(identity=identity, context=context,
                                        link=RawLink("127.0.0.1", 0, context, PREFIX)))
        self.tally = Tally()
        self.measuring = False
        self.stop = asyncio.Event()
        self._ids = itertools.count()

    async def _post(self, device: _Device, service: str, body: bytes) -> bytes:
        start = time.perf_counter()
        try:
            status, reply = await device.link.post(service, body)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            self._failed(f"{service}: {exc!r}")
            return b""
        if self.measuring:
            self.tally.latencies.append(time.perf_counter() - start)
            self.tally.requests += 1
        if status != 200 or response_code(reply) not in (0, 200):
            self._failed(f"{service}: HTTP {status}, {reply[:160]!r}")
        return reply

    def _failed(self, text: str) -> None:
        self.tally.bad += 1
        if len(self.tally.errors) < 3:
            self.tally.errors.append(text)

    def poll_body(self, device: _Device) -> bytes:
        if self.args.encoding == "openleadr":
            from openleadr.messaging import create_message

            return create_message("oadrPoll", ven_id=device.ven_id).encode()
        return _CODEC.encode(schemas.Poll(ven_id=device.ven_id))

    async def register(self, port: int, concurrency: int) -> tuple[list[str], float, int]:
        for device in self.devices:
            device.link = RawLink("127.0.0.1", port, device.context, PREFIX)
        gate = asyncio.Semaphore(concurrency)
        started = time.perf_counter()
        retries = 0

        async def post(device: _Device, service: str, body: bytes) -> bytes:
            """As a VEN does: a failed connection is tried again, a while later."""
            nonlocal retries
            for _ in range(_REGISTER_ATTEMPTS - 1):
                try:
                    async with gate:
                        return (await device.link.post(service, body))[1]
                except (ConnectionError, OSError, asyncio.IncompleteReadError):
                    retries += 1
                    await asyncio.sleep(random.uniform(0.5, 2.0))
            async with gate:
                return (await device.link.post(service, body))[1]

        async def one(n: int, device: _Device) -> None:
            body = _CODEC.encode(schemas.CreatePartyRegistration(
                request_id=f"reg-{self.first + n}", ven_name=device.identity.name,
                http_pull_model=True))
            message = _CODEC.decode(await post(device, "EiRegisterParty", body))
            if not isinstance(message, schemas.CreatedPartyRegistration) or not message.ven_id:
                raise RuntimeError(f"{device.identity.name} not registered: {message!r}")
            device.ven_id = message.ven_id

        async def drain(device: _Device) -> None:
            for _ in range(20):  # ours queues its METADATA request after a registration
                reply = await post(device, "OadrPoll", self.poll_body(device))
                if b"oadrResponse" in reply[:2000] and b"oadrRegisterReport" not in reply:
                    return

        await asyncio.gather(*(one(n, d) for n, d in enumerate(self.devices)))
        took = time.perf_counter() - started
        await asyncio.gather(*(drain(d) for d in self.devices))
        samples = 1 if self.args.telemetry == "sample" else int(60 / SAMPLE_S)
        for device in self.devices:
            ours = tuple(_report(device.ven_id, samples, v) for v in range(4))
            device.templates = (tuple(_openleadr_report(t) for t in ours)
                                if self.args.encoding == "openleadr" else ours)
        return [d.ven_id for d in self.devices], took, retries

    async def _every(self, period: float, action: Any) -> None:
        """``action()`` every ``period`` s on a random phase, until stopped."""
        next_at = time.monotonic() + random.uniform(0.0, period)
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await self.stop.wait()
                    return
                except TimeoutError:
                    pass
            if self.measuring:  # how late this firing is against its schedule
                self.tally.late.append(max(0.0, time.monotonic() - next_at))
            next_at += period
            await action()

    async def _poll(self, device: _Device) -> None:
        body = self.poll_body(device)
        while not self.stop.is_set():
            reply = await self._post(device, "OadrPoll", body)
            if b"oadrDistributeEvent" not in reply:
                return
            await self._ack(device, reply)

    async def _ack(self, device: _Device, reply: bytes) -> None:
        """One oadrCreatedEvent answering every event listed, as openleadr's VEN answers each
        listed event that asks for a response (the ones it already knew, optIn again)."""
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
        if self.measuring:
            self.tally.acks += 1
            self.tally.acked_events += len(answers)

    async def _report(self, device: _Device) -> None:
        n = device.sent
        device.sent += 1
        request_id = f"REQ-{self.first:06d}{next(self._ids):06d}".encode()
        body = _patched(device.templates[n % len(device.templates)], n, request_id)
        await self._post(device, "EiReport", body)

    async def _reconnects(self) -> None:
        """1 % of the slice per minute: a random VEN's connection closed; its next request
        makes a new mutual-TLS handshake."""
        per_minute = max(1, len(self.devices) // 100)

        async def one() -> None:
            await random.choice(self.devices).link.reconnect()
            if self.measuring:
                self.tally.reconnects += 1

        await self._every(60.0 / per_minute, one)

    async def run(self, start_at: float, warmup_s: float, window_s: float) -> Tally:
        self.tally, self.stop = Tally(), asyncio.Event()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        period = SAMPLE_S if self.args.telemetry == "sample" else 60.0
        tasks = [asyncio.create_task(self._every(self.args.poll_s, lambda d=d: self._poll(d)))
                 for d in self.devices]
        tasks += [asyncio.create_task(self._every(period, lambda d=d: self._report(d)))
                  for d in self.devices]
        tasks.append(asyncio.create_task(self._reconnects()))
        try:
            await asyncio.sleep(max(0.0, start_at + warmup_s - time.monotonic()))
            self.measuring = True
            await asyncio.sleep(max(0.0, start_at + warmup_s + window_s - time.monotonic()))
            self.measuring = False
        finally:
            self.stop.set()
            ended = await asyncio.gather(*tasks, return_exceptions=True)
        # A device whose loop raised stopped sending for the rest of the run: a failure to show,
        # not a quieter fleet.
        for outcome in ended:
            if isinstance(outcome, Exception):
                self._failed(f"a device's loop ended: {outcome!r}")
        return self.tally

    async def close(self) -> None:
        await asyncio.gather(*(d.link.close() for d in self.devices), return_exceptions=True)


async def _serve(piece: _Slice, conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        try:
            match command:
                case ("register", port, concurrency):
                    conn.send(("ok", await piece.register(port, concurrency)))
                case ("run", start_at, warmup_s, window_s):
                    conn.send(("ok", await piece.run(start_at, warmup_s, window_s)))
                case ("close",):
                    await piece.close()
                    conn.send(("ok", None))
                case ("stop",):
                    await piece.close()
                    conn.send(("ok", None))
                    return
                case _:
                    raise ValueError(f"unknown command {command!r}")
        except Exception as exc:  # reported to the benchmark process, which raises it
            conn.send(("error", repr(exc)))


def generate(identities: list[VenIdentity], ca: Path, args: argparse.Namespace, first: int,
             cpus: set[int] | None, conn: Connection) -> None:
    """Process entry point: serve commands for this slice of VENs until ``("stop",)``."""
    import os

    from vtn.site import raise_descriptor_limit

    warnings.simplefilter("ignore")
    if cpus:
        os.sched_setaffinity(0, cpus)
    raise_descriptor_limit(None)  # a descriptor per VEN, and spare: up to the hard limit
    try:
        import uvloop
        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        piece = runner.run(_make(identities, ca, args, first))
        runner.run(_serve(piece, conn))


async def _make(identities: list[VenIdentity], ca: Path, args: argparse.Namespace,
                first: int) -> _Slice:
    return _Slice(identities, ca, args, first)  # inside the loop: its Event binds there
