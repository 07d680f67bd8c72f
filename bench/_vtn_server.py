"""The server side of the VTN benchmarks: one VTN (ours or openleadr's) or the floor, own process.

:func:`serve` is the target of a ``spawn``-ed process. It starts the VTN on 127.0.0.1, port 0,
with mutual TLS, sends ``("ready", port)`` up the control pipe, then answers commands from the
benchmark process until told to stop:

- ``("cpu",)`` -> ``time.process_time()`` of this process (all threads: the SQLite worker too);
- ``("split",)`` -> ``(time.process_time(), time.thread_time())``: the process's CPU and the
  event-loop thread's (the command runs there), read together; their difference is what the
  other threads (the SQLite writer and readers) spent;
- ``("clock",)`` -> ``(time.process_time(), time.monotonic())`` read together, so a window's CPU
  and length are both the VTN's, however late the command reached it;
- ``("publish", ven_ids[, tag])`` -> one LOAD_DISPATCH event for those VENs (``tag`` makes its
  eventID new, for a publish every minute); the clock starts here;
- ``("rss",)`` -> this process's resident set size, bytes;
- ``("heap", True)`` -> starts ``tracemalloc`` and keeps a snapshot; ``("heap", n)`` -> the
  top ``n`` allocation sites grown since that snapshot, as text (bytes, blocks, where);
- ``("fanout", timeout_s)`` -> ``(publish_s, all_acks_s, acks)``: seconds the publish call took,
  seconds from its start until every VEN's ack was stored (NaN on timeout), acks counted;
- ``("counts",)`` -> ``{"reports": ..., "points": ..., "acks": ...}`` seen by the handlers;
- ``("cprofile", True|False)`` -> start/stop cProfile; stopping returns the top functions as text;
- ``("repeats",)`` -> ours: ``(requests served from memory, decoded, replies served from memory,
  encoded)`` of the endpoints' repeat cache (``vtn.repeats``); openleadr: None;
- ``("store", ven_ids, points, seconds)`` -> ``(points stored, seconds)``: ours only, straight
  to storage (no HTTP): each of ``ven_ids`` stores ``points``-point reports back to back, every
  point new, all VENs at once, for ``seconds``;
- ``("stop",)`` -> ``None``, then the VTN shuts down and the process exits.

The runtime is the same for both VTNs (``ServerSpec.setup``): ``"tuned"`` serves either on uvloop
with ``vtn.runtime.tune_serving_process`` (as ``crowdflex vtn`` serves), ``"plain"`` on asyncio's
loop with the interpreter's defaults.

Invariants: loopback only; every wait has a timeout; all state lives in this process (openleadr's
server keeps its own in module-level class attributes, which is one reason it gets a process).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from bench._cprofile import Profiler

__all__ = ["FLOORS", "SETUPS", "ServerSpec", "serve"]

_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """What to run: ``kind`` is ``"ours"``, ``"openleadr"`` or one of ``FLOORS`` (no VTN: fixed
    bytes answered by aiohttp's application, its low-level server or a bare protocol, the
    per-request cost under both VTNs); ``sign_cert``/``sign_key`` turn
    signing on: ours ``Codec(signer=VTN RSA key, verifier=CA)``, openleadr signing with the same
    key and verifying VEN signatures; ``storage_url`` is our database; ``setup`` the runtime of both
    (``"tuned"`` or ``"plain"``); ``repeat_cache`` False turns ours off (``vtn.repeats``)."""

    kind: str
    cert: Path
    key: Path
    ca: Path
    storage_url: str
    poll_frequency_s: float = 10.0
    sign_cert: Path | None = None
    sign_key: Path | None = None
    setup: str = "tuned"
    repeat_cache: bool = True


@dataclass(slots=True)
class _Tally:
    """What the VTN's application hooks saw; the fan-out clock runs on ``perf_counter``."""

    acks: set[str]
    reports: int = 0
    points: int = 0
    publish_started: float = math.nan
    publish_s: float = math.nan
    all_acked: float = math.nan
    expected: int = 0
    done: asyncio.Event | None = None
    repeats: Any = None  # ours: the endpoints' vtn.repeats.Repeats
    storage: Any = None  # ours: the app's vtn.storage.Storage

    def ack(self, ven_id: str) -> None:
        self.acks.add(ven_id)
        if self.expected and len(self.acks) >= self.expected and math.isnan(self.all_acked):
            self.all_acked = time.perf_counter()
            if self.done is not None:
                self.done.set()


def _event_window() -> tuple[datetime, timedelta]:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5), timedelta(minutes=30)


async def _start_ours(spec: ServerSpec, tally: _Tally) -> tuple[int, Any, Callable[..., Any]]:
    from aiohttp import web

    import schemas
    from vtn.app import SERVICES, STORAGE, create_app
    from vtn.services import Handlers
    from vtn.services.events import publish_event
    from vtn.settings import VtnConfig
    from vtn.site import vtn_site
    from vtn.transport import REPEATS

    def on_report_data(_ven_id: str, report: schemas.Report) -> None:
        tally.reports += 1
        tally.points += sum(len(i.payloads) for i in report.intervals)

    config = VtnConfig(storage_url=spec.storage_url, tls_cert=spec.cert,
                       tls_key=spec.key, tls_ca=spec.ca, port=0, admin_enabled=False,
                       poll_frequency=timedelta(seconds=spec.poll_frequency_s),
                       # limits stay on (their cost is measured) but must not bite a load test
                       rate_limit_per_s=1e6, rate_limit_burst=10**6, max_in_flight=10**5,
                       # every VEN connects from one address, many at once (over the overall
                       # cap of pending handshakes they wait their turn: vtn/site.py)
                       max_pending_handshakes_per_address=None,
                       # a 10,000-VEN fleet whose reconnecting VENs briefly hold two
                       max_connections=12_000)
    codec = None
    if spec.sign_cert is not None and spec.sign_key is not None:
        codec = schemas.Codec(
            signer=schemas.Signer(spec.sign_key.read_bytes(), spec.sign_cert.read_bytes()),
            verifier=schemas.Verifier(spec.ca.read_bytes()))
    handlers = Handlers(on_event_response=lambda ven_id, _answer: tally.ack(ven_id),
                        on_report_data=on_report_data)
    app = create_app(config, handlers=handlers, codec=codec)
    app[REPEATS].enabled = spec.repeat_cache
    tally.repeats = app[REPEATS]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tally.storage = app[STORAGE]
    site = vtn_site(runner, replace(config, host=_HOST, port=0))  # as `crowdflex vtn` serves
    await site.start()
    port = runner.addresses[0][1]

    async def publish(ven_ids: tuple[str, ...], tag: str = "") -> None:
        start, length = _event_window()
        event = schemas.Event(
            descriptor=schemas.EventDescriptor(
                event_id=f"bench-fanout{tag}", modification_number=0,
                market_context="http://bench.example/mc", created_date_time=datetime.now(UTC),
                event_status=schemas.EventStatus.FAR),
            active_period=schemas.ActivePeriod(dtstart=start, duration=length),
            signals=(schemas.EventSignal(
                intervals=(schemas.EventInterval(values=(1.0,), duration=length, uid="0"),),
                signal_name="LOAD_DISPATCH", signal_type=schemas.SignalType.SETPOINT,
                signal_id="s1"),),
            target=schemas.Target(ven_ids=ven_ids),
        )
        await publish_event(app[SERVICES], event)

    return port, runner, publish


async def _start_openleadr(spec: ServerSpec, tally: _Tally) -> tuple[int, Any, Callable[..., Any]]:
    from openleadr import OpenADRServer

    signing = spec.sign_cert is not None and spec.sign_key is not None
    registry: dict[str, dict[str, str]] = {}

    def on_create_party_registration(info: dict[str, Any]) -> tuple[str, str]:
        ven_id = str(info["fingerprint"])  # as ours: the venID is the certificate's fingerprint
        registry[ven_id] = {"ven_id": ven_id, "ven_name": str(info.get("ven_name", "")),
                            "fingerprint": ven_id, "registration_id": f"reg-{ven_id}"}
        return ven_id, registry[ven_id]["registration_id"]

    def ven_lookup(ven_id: str) -> dict[str, str] | None:
        return registry.get(ven_id)

    def on_update_report(report: dict[str, Any]) -> None:
        tally.reports += 1
        tally.points += len(report.get("intervals", ()))

    server = OpenADRServer(
        vtn_id="BENCH-VTN", http_host=_HOST, http_port=0, http_cert=str(spec.cert),
        http_key=str(spec.key), http_ca_file=str(spec.ca), ven_lookup=ven_lookup,
        # signed run: it signs with the same RSA-2048 key ours does and verifies every VEN
        # signature against the certificate ven_lookup names, as ours does against the CA
        cert=str(spec.sign_cert) if signing else None, key=str(spec.sign_key) if signing else None,
        verify_message_signatures=signing, show_fingerprint=False,
        requested_poll_freq=timedelta(seconds=spec.poll_frequency_s))
    server.add_handler("on_create_party_registration", on_create_party_registration)
    server.add_handler("on_update_report", on_update_report)
    with contextlib.redirect_stdout(io.StringIO()):  # its banner would bury the table
        await server.run()
    port = server.app_runner.addresses[0][1]

    def on_ack(ven_id: str, event_id: str, opt_type: str) -> None:
        tally.ack(ven_id)

    async def publish(ven_ids: tuple[str, ...], tag: str = "") -> None:
        # openleadr queues events per VEN and keys ack callbacks by eventID: one event per VEN.
        start, length = _event_window()
        for n, ven_id in enumerate(ven_ids):
            server.add_event(ven_id=ven_id, signal_name="LOAD_DISPATCH", signal_type="setpoint",
                             intervals=[{"dtstart": start, "duration": length,
                                         "signal_payload": 1.0}],
                             callback=on_ack, event_id=f"bench-fanout{tag}-{n}",
                             market_context="http://bench.example/mc")

    return port, server.app_runner, publish


async def _store(storage: Any, ven_ids: list[str], points: int,
                 seconds: float) -> tuple[int, float]:
    from vtn.storage import ReportData

    start = datetime(2030, 1, 1, tzinfo=UTC)
    step = timedelta(seconds=4)
    started = time.perf_counter()
    deadline = started + seconds

    async def one(ven_id: str) -> int:
        stored = n = 0
        while time.perf_counter() < deadline:
            rows = tuple((f"r{i}", start + step * n, step, float(i), None, None, None)
                         for i in range(points))
            n += 1
            data = ReportData(ven_id=ven_id, report_request_id="bench-store",
                              report_specifier_id="bench-store",
                              received_at=datetime.now(UTC), rows=rows)
            found = await storage.reports.store_update(ven_id, (data,), ())
            stored += found[0]
        return stored

    counts = await asyncio.gather(*(one(v) for v in ven_ids))
    return sum(counts), time.perf_counter() - started


# an oadrResponse's size: what the floors answer every request with
_FLOOR_REPLY = b"<oadrPayload>" + b"x" * 700 + b"</oadrPayload>"
_FLOOR_PATH = "/OpenADR2/Simple/2.0b/{service}"


async def _start_floor(spec: ServerSpec, tally: _Tally) -> tuple[int, Any, Callable[..., Any]]:
    """Not a VTN: aiohttp answering every POST to a service path with fixed bytes, on our
    server TLS context and the same runtime: what any aiohttp VTN pays per request before
    doing anything (read the body, answer). ``floor`` is an ``Application`` with its router (as
    both VTNs serve), ``floor-server`` aiohttp's low-level ``web.Server`` (its protocol and
    request objects, no application, router or middleware chain)."""
    from aiohttp import web

    async def answer(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.Response(body=_FLOOR_REPLY, content_type="application/xml")

    runner: web.BaseRunner
    if spec.kind == "floor-server":
        runner = web.ServerRunner(web.Server(answer, access_log=None))
    else:
        app = web.Application()
        app.router.add_post(_FLOOR_PATH, answer)
        runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, _HOST, 0, ssl_context=_floor_context(spec)).start()
    return runner.addresses[0][1], runner, _no_events


async def _start_lean(spec: ServerSpec, tally: _Tally) -> tuple[int, Any, Callable[..., Any]]:
    """Not a VTN, and no HTTP framework: an ``asyncio.Protocol`` on the same TLS context and
    runtime that finds each request's end (headers, then ``Content-Length`` bytes) and writes
    fixed bytes back -- what a request costs below any framework (the TLS records, the loop's
    wake-ups, one read and one write), the least a lean HTTP layer of our own could pay."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_LeanProtocol, _HOST, 0, ssl=_floor_context(spec))
    return server.sockets[0].getsockname()[1], _LeanRunner(server), _no_events


class _LeanProtocol(asyncio.Protocol):
    _REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: "
              + str(len(_FLOOR_REPLY)).encode() + b"\r\n\r\n" + _FLOOR_REPLY)

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length:]
            assert self._transport is not None
            self._transport.write(self._REPLY)
        self._buffer = buffer


class _LeanRunner:
    def __init__(self, server: asyncio.AbstractServer) -> None:
        self._server = server

    async def cleanup(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def _floor_context(spec: ServerSpec) -> Any:
    from vtn.app import server_ssl_context
    from vtn.settings import VtnConfig

    return server_ssl_context(VtnConfig(tls_cert=spec.cert, tls_key=spec.key, tls_ca=spec.ca))


async def _no_events(ven_ids: tuple[str, ...], tag: str = "") -> None:
    raise ValueError("the floors serve no events")


FLOORS = ("floor", "floor-server", "floor-lean")


def _rss_bytes() -> int:
    """This process's resident set size (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Heap:
    """tracemalloc from a first snapshot: what grew since, by allocation site."""

    def __init__(self) -> None:
        self._first: Any = None

    def command(self, arg: Any) -> str | None:
        import tracemalloc

        if arg is True:
            tracemalloc.start(4)
            self._first = tracemalloc.take_snapshot()
            return None
        if self._first is None:
            return ""
        grown = tracemalloc.take_snapshot().compare_to(self._first, "traceback")
        tracemalloc.stop()
        self._first = None
        out = []
        for stat in grown[:int(arg)]:
            frames = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}"
                                 for f in stat.traceback)
            out.append(f"{stat.size_diff:>12,} B {stat.count_diff:>8,} blocks  {frames}")
        return "\n".join(out)


async def _command(command: tuple[Any, ...], tally: _Tally, publish: Callable[..., Any],
                   profiler: Profiler, heap: _Heap) -> Any:
    match command:
        case ("cpu",):
            return time.process_time()
        case ("clock",):
            return time.process_time(), time.monotonic()
        case ("split",):
            return time.process_time(), time.thread_time()
        case ("counts",):
            return {"reports": tally.reports, "points": tally.points, "acks": len(tally.acks)}
        case ("publish", ven_ids, *tag):
            tally.acks.clear()
            tally.expected, tally.all_acked = len(ven_ids), math.nan
            tally.done = asyncio.Event()
            tally.publish_started = time.perf_counter()
            await publish(tuple(ven_ids), *tag)
            tally.publish_s = time.perf_counter() - tally.publish_started
            return tally.publish_s
        case ("fanout", timeout_s):
            if tally.done is not None:
                try:
                    async with asyncio.timeout(timeout_s):
                        await tally.done.wait()
                except TimeoutError:
                    pass
            return tally.publish_s, tally.all_acked - tally.publish_started, len(tally.acks)
        case ("cprofile", on):
            if on:
                profiler.start()
                return None
            return profiler.stop()
        case ("rss",):
            return _rss_bytes()
        case ("store", ven_ids, points, seconds):
            return await _store(tally.storage, ven_ids, points, seconds)
        case ("heap", arg):
            return heap.command(arg)
        case ("repeats",):
            if tally.repeats is None:
                return None
            return (*tally.repeats.requests, *tally.repeats.replies)
    raise ValueError(f"unknown command {command!r}")


async def _serve(spec: ServerSpec, conn: Connection) -> None:
    tally = _Tally(acks=set())
    start = {"ours": _start_ours, "openleadr": _start_openleadr, "floor": _start_floor,
             "floor-server": _start_floor, "floor-lean": _start_lean}[spec.kind]
    port, runner, publish = await start(spec, tally)
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    profiler, heap = Profiler(), _Heap()
    tasks: set[asyncio.Task[None]] = set()

    async def run(command: tuple[Any, ...]) -> None:
        try:
            conn.send(("ok", await _command(command, tally, publish, profiler, heap)))
        except Exception as exc:  # reported to the benchmark process, which prints it
            conn.send(("error", repr(exc)))

    def readable() -> None:
        if not conn.poll():  # a wake-up with nothing to read
            return
        try:
            command = conn.recv()
        except EOFError:
            stopped.set()
            return
        if command == ("stop",):
            stopped.set()
            return
        task = loop.create_task(run(command))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_reader(conn.fileno(), readable)
    # uvloop's add_reader leaves the descriptor non-blocking: a recv woken without a whole message
    # there raised BlockingIOError and the VTN process died mid-benchmark (seen on a quiet
    # machine), and a partial read would lose the message's framing; blocking I/O keeps each
    # message whole, and ``poll`` skips a wake-up with nothing to read
    os.set_blocking(conn.fileno(), True)
    conn.send(("ready", port))
    try:
        await stopped.wait()
    finally:
        loop.remove_reader(conn.fileno())
        for task in tasks:
            task.cancel()
        await runner.cleanup()
        conn.send(("ok", None))


SETUPS = ("tuned", "plain")


def serve(spec: ServerSpec, conn: Connection) -> None:
    """Process entry point: run the VTN described by ``spec`` until ``("stop",)``."""
    from vtn.runtime import serving_loop_factory, tune_serving_process

    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    if spec.setup not in SETUPS:
        raise ValueError(f"setup {spec.setup!r}: one of {SETUPS}")
    # the same runtime for either VTN: uvloop and the serving process tuning, or neither
    loop_factory = serving_loop_factory("uvloop" if spec.setup == "tuned" else "asyncio")
    if spec.kind == "openleadr":
        import openleadr  # noqa: F401  (its imports happen before the heap is frozen, as ours)

        # after the import: openleadr.client sets its logger to INFO when imported, which had
        # it write a line per message to stderr in every benchmark (CPU ours did not spend)
        logging.getLogger("openleadr").setLevel(logging.ERROR)
    else:
        import vtn.services  # noqa: F401
    if spec.setup == "tuned":
        tune_serving_process()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(spec, conn))
