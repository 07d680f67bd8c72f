"""The load side of ``python -m bench vtn``: raw aiohttp VENs, one client certificate each.

The client side is the same for both VTNs and kept cheap: every VEN is one
``aiohttp.ClientSession``, used for its registration only (a new mutual-TLS connection), plus a
:class:`~bench._raw_http.RawLink` for everything after it: the drain, the throughput loops and the
fan-out's pollers and acks (aiohttp's client costs more CPU per request than a VTN spends
answering it, so a load built on it measures itself: in the fan-out its 500 pollers used
0.8 s of the load's core per burst and their timers fired a median ~200 ms late; on RawLink
0.3-0.5 s and under 60 ms, on a loaded machine). Hot-loop bodies are
encoded before the clock starts (oadrPoll) or patched from one encoded template per VEN
(oadrUpdateReport: only the timestamps change, so every report's points are new to the VTN).
Replies are checked by their responseCode with a byte search, not decoded, except where the VEN
must act on them (registration, an oadrDistributeEvent to acknowledge).

Invariants: loopback only; every loop ends by a deadline or a count; a VTN that fails a request
shows up as an error count beside the figure, never as a silently faster one.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import aiohttp

import schemas
from bench._raw_http import RawLink
from schemas.conformance import corpus_dir

__all__ = ["ENCODINGS", "Control", "Ven", "VenIdentity", "fanout", "open_vens", "poll_load",
           "register_all", "report_load", "signed_poll_load"]

# whose encoder made the bodies the load sends: ours (schemas) or openleadr's create_message
ENCODINGS: Final = ("ours", "openleadr")

PREFIX: Final = "/OpenADR2/Simple/2.0b"
_CODE = re.compile(rb"responseCode>\s*(\d+)\s*<")
_XML: Final = {"Content-Type": "application/xml"}
_CODEC: Final = schemas.Codec()
_STAMP_BASE: Final = datetime(2025, 3, 18, 14, tzinfo=UTC)  # the corpus report's hour


@dataclass(frozen=True, slots=True, kw_only=True)
class VenIdentity:
    name: str
    cert: Path
    key: Path


def response_code(body: bytes) -> int:
    """The first responseCode in a reply (the payload's own eiResponse); 0 when there is none."""
    found = _CODE.search(body)
    return int(found.group(1)) if found else 0


@dataclass(slots=True, kw_only=True)
class Ven:
    """One VEN: its identity, its session (one keep-alive connection) and its venID once known."""

    identity: VenIdentity
    base_url: str
    session: aiohttp.ClientSession
    raw: RawLink
    ven_id: str = ""
    signer: schemas.Codec | None = None
    errors: list[str] = field(default_factory=list)

    async def post(self, service: str, body: bytes) -> bytes:
        url = f"{self.base_url}/{service}"
        for attempt in (1, 2):  # a keep-alive connection the server closed while idle: retry once
            try:
                async with self.session.post(url, data=body, headers=_XML) as reply:
                    data = await reply.read()
                    if reply.status != 200:
                        self.errors.append(f"HTTP {reply.status}: {data[:200]!r}")
                    return data
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def encode(self, message: schemas.Message) -> bytes:
        return (self.signer or _CODEC).encode(message)


def _context(ca: Path, identity: VenIdentity) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(identity.cert), str(identity.key))
    return context


def open_vens(identities: list[VenIdentity], ca: Path, port: int, *,
              sign: bool = False) -> list[Ven]:
    """One session per VEN; no connection is made until its first request."""
    vens = []
    for identity in identities:
        connector = aiohttp.TCPConnector(ssl=_context(ca, identity), limit=1,
                                         keepalive_timeout=600)
        signer = (schemas.Codec(signer=schemas.Signer(identity.key.read_bytes(),
                                                      identity.cert.read_bytes()))
                  if sign else None)
        context = _context(ca, identity)
        vens.append(Ven(identity=identity, base_url=f"https://127.0.0.1:{port}{PREFIX}",
                        session=aiohttp.ClientSession(connector=connector), signer=signer,
                        raw=RawLink("127.0.0.1", port, context, PREFIX)))
    return vens


async def close_vens(vens: list[Ven]) -> None:
    await asyncio.gather(*(v.session.close() for v in vens), *(v.raw.close() for v in vens))


class Control:
    """The benchmark's end of the VTN process's control pipe."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        #: more CPU seconds to add to every ``("cpu",)`` reading (the PostgreSQL backends')
        self.more_cpu: Callable[[], Awaitable[float]] | None = None
        self._one_at_a_time = asyncio.Lock()  # one pipe: a reply must meet its own command

    def _receive(self, timeout_s: float) -> Any:
        if not self._conn.poll(timeout_s):
            raise TimeoutError("the VTN process did not answer")
        status, value = self._conn.recv()
        if status == "error":
            raise RuntimeError(f"VTN process: {value}")
        return value

    async def call(self, *command: Any, timeout_s: float = 60.0) -> Any:
        async with self._one_at_a_time:
            self._conn.send(command)
            found = await asyncio.get_running_loop().run_in_executor(None, self._receive,
                                                                     timeout_s)
        if command == ("cpu",) and self.more_cpu is not None:
            found += await self.more_cpu()
        return found

    def wait_ready(self, timeout_s: float = 60.0) -> int:
        if not self._conn.poll(timeout_s):
            raise TimeoutError("the VTN process did not start")
        status, port = self._conn.recv()
        if status != "ready":
            raise RuntimeError(f"VTN process: {status} {port}")
        return int(port)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._conn.send(("stop",))
        self._receive(timeout_s)


async def _register(ven: Ven, n: int) -> None:
    body = ven.encode(schemas.CreatePartyRegistration(
        request_id=f"reg-{n}", ven_name=ven.identity.name, http_pull_model=True))
    reply = _CODEC.decode(await ven.post("EiRegisterParty", body))
    if not isinstance(reply, schemas.CreatedPartyRegistration) or not reply.ven_id:
        raise RuntimeError(f"{ven.identity.name} not registered: {reply!r}")
    ven.ven_id = reply.ven_id


async def register_all(vens: list[Ven], concurrency: int) -> float:
    """Register every VEN (a new mutual-TLS connection each), ``concurrency`` at a time; seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int, ven: Ven) -> None:
        async with gate:
            await _register(ven, n)

    start = time.perf_counter()
    await asyncio.gather(*(one(n, v) for n, v in enumerate(vens)))
    return time.perf_counter() - start


def poll_body(ven: Ven, encoding: str = "ours") -> bytes:
    if encoding == "openleadr":
        from openleadr.messaging import create_message

        return create_message("oadrPoll", ven_id=ven.ven_id).encode()
    return ven.encode(schemas.Poll(ven_id=ven.ven_id))


async def drain(vens: list[Ven], *, limit: int = 20) -> None:
    """Poll each VEN until its queue is empty (ours queues its METADATA after registration);
    this also opens every VEN's raw link before any clock starts."""
    async def one(ven: Ven) -> None:
        for _ in range(limit):
            _, reply = await ven.raw.post("OadrPoll", poll_body(ven))
            if b"oadrResponse" in reply[:2000] and b"oadrRegisterReport" not in reply:
                return

    await asyncio.gather(*(one(v) for v in vens))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    count: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


async def _hammer(vens: list[Ven], service: str, bodies: Any, seconds: float,
                  max_per_ven: int) -> LoadResult:
    """Every VEN posts ``bodies(ven, i)`` back to back on its raw link until the deadline or
    ``max_per_ven``."""
    done = [0]
    bad = [0]

    async def one(ven: Ven) -> None:
        for i in range(max_per_ven):
            if time.perf_counter() >= deadline:
                return
            status, reply = await ven.raw.post(service, bodies(ven, i))
            if status != 200 or response_code(reply) != 200:
                bad[0] += 1
                if len(ven.errors) < 3:
                    ven.errors.append(f"{service}: HTTP {status}, {reply[:200]!r}")
            done[0] += 1

    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(one(v) for v in vens))
    return LoadResult(count=done[0], seconds=time.perf_counter() - start, errors=bad[0])


async def poll_load(vens: list[Ven], seconds: float, encoding: str = "ours") -> LoadResult:
    """Keep-alive oadrPoll throughput with pre-encoded bodies (empty queues: oadrResponse 200)."""
    bodies = {id(v): poll_body(v, encoding) for v in vens}
    return await _hammer(vens, "OadrPoll", lambda v, _i: bodies[id(v)], seconds, 10**9)


def _report_template(ven: Ven, encoding: str = "ours") -> bytes:
    """The corpus TELEMETRY_USAGE oadrUpdateReport (10 intervals of 4 s) as this VEN's."""
    message = _CODEC.decode((corpus_dir() / "valid" / "oadrUpdateReport.xml").read_bytes())
    assert isinstance(message, schemas.UpdateReport)
    reports = tuple(replace(r, report_request_id=f"rr-{ven.identity.name}")
                    for r in message.reports)
    ours = _CODEC.encode(replace(message, ven_id=ven.ven_id, reports=reports))
    if encoding != "openleadr":
        return ours
    from openleadr.messaging import create_message, parse_message

    kind, payload = parse_message(ours)
    return create_message(kind, **payload).encode()


def _stamp(i: int) -> bytes:
    # One hour further per report: all ten points of every report land on new timestamps.
    return (_STAMP_BASE + timedelta(hours=i + 1)).strftime("%Y-%m-%dT%H:").encode()


async def report_load(vens: list[Ven], seconds: float, encoding: str = "ours",
                      max_per_ven: int = 5000) -> LoadResult:
    """oadrUpdateReport throughput, each report 10 new points."""
    templates = {id(v): _report_template(v, encoding) for v in vens}
    hour = _stamp(-1)
    stamps = [_stamp(i) for i in range(max_per_ven)]
    return await _hammer(vens, "EiReport",
                         lambda v, i: templates[id(v)].replace(hour, stamps[i]),
                         seconds, max_per_ven)


async def signed_poll_load(vens: list[Ven], polls: int) -> LoadResult:
    """``polls`` oadrPoll in all, each a distinct encoding (signed, with its own nonce and
    timestamp, when the VEN signs) made just before it is sent, so that every body is fresh
    for a replay window of a few seconds (openleadr's is 5 s). Signing costs the load's core
    ~0.3 ms per body: far under what a signed poll costs either VTN, so the VTN stays busy."""
    per_ven = max(1, polls // len(vens))
    return await _hammer(vens, "OadrPoll", lambda v, _i: poll_body(v), 3600.0, per_ven)


async def _acknowledge(ven: Ven, reply: bytes) -> None:
    message = _CODEC.decode(reply)
    if not isinstance(message, schemas.DistributeEvent):
        return
    request_id = message.request_id
    answers = tuple(
        schemas.EventResponse(request_id=request_id, event_id=e.event_id,
                              modification_number=e.modification_number,
                              opt_type=schemas.OptType.OPT_IN)
        for e in message.events)
    ack = schemas.CreatedEvent(response=schemas.EiResponse(request_id=request_id),
                               ven_id=ven.ven_id, event_responses=answers)
    status, answer = await ven.raw.post("EiEvent", ven.encode(ack))
    if status != 200 or response_code(answer) != 200:
        ven.errors.append(f"oadrCreatedEvent: HTTP {status}, {answer[:200]!r}")


async def _poll_every(ven: Ven, interval: float, stop: asyncio.Event) -> None:
    """Poll on a fixed grid (random phase); after a non-empty reply act on it and poll again."""
    body = poll_body(ven)
    next_at = time.perf_counter() + random.uniform(0.0, interval)
    while not stop.is_set():
        delay = next_at - time.perf_counter()
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
                return
            except TimeoutError:
                pass
        next_at += interval
        while not stop.is_set():
            status, reply = await ven.raw.post("OadrPoll", body)
            if status != 200:
                ven.errors.append(f"OadrPoll: HTTP {status}, {reply[:200]!r}")
            if b"oadrDistributeEvent" not in reply:
                break
            await _acknowledge(ven, reply)


async def fanout(vens: list[Ven], control: Control, interval: float,
                 settle_s: float) -> tuple[float, float, int, float]:
    """Publish one event to every VEN while they poll each ``interval``; the VTN process times
    publish -> all acks stored. Returns (publish_s, all_acks_s, acks, cpu_s): ``cpu_s`` is the
    VTN's CPU from just before the publish until all acks were stored, less what the empty polls
    cost over as long (their CPU rate in the last ``interval`` of the settling): the fan-out's
    own cost, steadier than its wall time on a busy machine."""
    stop = asyncio.Event()
    pollers = [asyncio.create_task(_poll_every(v, interval, stop)) for v in vens]
    try:
        await asyncio.sleep(settle_s - interval)  # steady state: every VEN on its own phase
        idle_from, idle_cpu = time.perf_counter(), await control.call("cpu")
        await asyncio.sleep(interval)
        started, cpu_before = time.perf_counter(), await control.call("cpu")
        idle_rate = (cpu_before - idle_cpu) / (started - idle_from)
        await control.call("publish", [v.ven_id for v in vens])
        result = await control.call("fanout", 10 * interval + 20, timeout_s=10 * interval + 40)
        cpu_s = await control.call("cpu") - cpu_before - idle_rate * (time.perf_counter() - started)
    finally:
        stop.set()
        await asyncio.gather(*pollers, return_exceptions=True)
    publish_s, all_acks_s, acks = result
    return float(publish_s), float(all_acks_s), int(acks), float(cpu_s)
