"""``python -m bench soak [--vens 1000] [--minutes 10]``: VENs polling and reporting for minutes.

The VTN runs as deployed (``create_app`` + ``vtn.site.vtn_site``, SQLite file in a temporary
directory) in a child process, so its memory is measured alone (``VmRSS`` from ``/proc``). The
parent runs every VEN on one event loop: one keep-alive mutual-TLS connection each, a poll every
``--poll-s`` seconds (draining whatever is queued) and an oadrUpdateReport of ``--points`` fresh
points every ``--report-s`` seconds. Start times are spread over one interval so the load is even.

Printed: every ``--every-s`` seconds the VTN's RSS, requests and errors so far; at the end the RSS
trend after warm-up, request rate, errors, and the points check: points the VTN acknowledged
(oadrUpdatedReport 200) against rows in its database. Nothing decides pass or fail in CI.

Invariants: loopback only (127.0.0.1, port 0); certificates and the database live in a temporary
directory removed at the end; the run stops by itself after ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sqlite3
import ssl
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp

from devpki import CertificateAuthority, Role
from schemas import (
    Codec,
    CreatePartyRegistration,
    Poll,
    Report,
    ReportInterval,
    ReportName,
    ReportPayload,
    Response,
    UpdatedReport,
    UpdateReport,
)
from schemas.tls import client_context

__all__ = ["main"]

PREFIX = "/OpenADR2/Simple/2.0b"
_XML = {"Content-Type": "application/xml"}


# ------------------------------------------------------------------ the VTN (child process)

def _serve(directory: str, conn: Connection) -> None:
    asyncio.run(_serve_async(Path(directory), conn))


async def _serve_async(directory: Path, conn: Connection) -> None:
    from aiohttp import web

    from vtn.app import create_app
    from vtn.settings import VtnConfig
    from vtn.site import vtn_site

    config = VtnConfig(
        storage_url=f"sqlite:///{directory / 'vtn.db'}", tls_cert=directory / "vtn.pem",
        tls_key=directory / "vtn.key", tls_ca=directory / "ca.pem", port=0,
        offer_metadata=False, admin_enabled=False,
        # every VEN connects at once from one address: the per-address and overall handshake
        # caps are for the open internet and would shed the load generator itself
        max_pending_handshakes=None, max_pending_handshakes_per_address=None)
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    # as `crowdflex vtn` serves (handshake deadline, connection cap); all VENs connect at once
    site = vtn_site(runner, replace(config, host="127.0.0.1"), backlog=2048)
    await site.start()
    conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # the stop word
    await runner.cleanup()
    conn.send("stopped")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------ the VENs (this process)

@dataclass(slots=True)
class Tally:
    requests: int = 0
    errors: int = 0
    points_sent: int = 0
    points_acked: int = 0
    last_error: str = ""
    latencies: list[float] = field(default_factory=list)


@dataclass(slots=True)
class SoakVen:
    index: int
    session: aiohttp.ClientSession
    url: str
    ven_id: str = ""
    reports_sent: int = 0


async def _post(ven: SoakVen, service: str, body: bytes, tally: Tally) -> bytes | None:
    started = time.perf_counter()
    tally.requests += 1
    try:
        async with ven.session.post(f"{ven.url}/{service}", data=body, headers=_XML) as reply:
            data = await reply.read()
            if reply.status != 200:
                tally.errors += 1
                tally.last_error = f"HTTP {reply.status}: {data[:120]!r}"
                return None
    except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
        tally.errors += 1
        tally.last_error = repr(exc)
        return None
    if len(tally.latencies) < 200_000:
        tally.latencies.append(time.perf_counter() - started)
    return data


def _report(ven: SoakVen, points: int, codec: Codec) -> bytes:
    # Every report covers a new stretch of time, so every point is new to the VTN.
    start = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=ven.reports_sent)
    ven.reports_sent += 1
    report = Report(
        report_request_id="soak", report_specifier_id="soak-telemetry", created_date_time=start,
        report_name=ReportName.TELEMETRY_USAGE, dtstart=start,
        intervals=tuple(ReportInterval(dtstart=start + timedelta(seconds=4 * i),
                                       duration=timedelta(seconds=4),
                                       payloads=(ReportPayload(r_id="meter", value=float(i)),))
                        for i in range(points)))
    return codec.encode(UpdateReport(request_id=f"u{ven.reports_sent}", reports=(report,),
                                     ven_id=ven.ven_id))


async def _register(ven: SoakVen, codec: Codec, tally: Tally) -> None:
    body = codec.encode(CreatePartyRegistration(request_id="r", ven_name=f"soak-{ven.index}",
                                                http_pull_model=True))
    data = await _post(ven, "EiRegisterParty", body, tally)
    if data is not None:
        ven.ven_id = getattr(codec.decode(data), "ven_id", None) or ""


async def _run_ven(ven: SoakVen, args: argparse.Namespace, deadline: float, codec: Codec,
                   tally: Tally) -> None:
    poll = codec.encode(Poll(ven_id=ven.ven_id))
    next_report = time.monotonic() + random.uniform(0, args.report_s)
    await asyncio.sleep(random.uniform(0, args.poll_s))  # spread the fleet over one interval
    while time.monotonic() < deadline:
        for _ in range(20):  # drain: poll again at once while something was queued
            data = await _post(ven, "OadrPoll", poll, tally)
            if data is None or isinstance(codec.decode(data), Response):
                break
        if time.monotonic() >= next_report:
            next_report += args.report_s
            tally.points_sent += args.points
            data = await _post(ven, "EiReport", _report(ven, args.points, codec), tally)
            if data is not None:
                reply = codec.decode(data)
                if isinstance(reply, UpdatedReport) and reply.response.code == 200:
                    tally.points_acked += args.points
                else:
                    tally.errors += 1
                    tally.last_error = f"report refused: {reply!r}"[:200]
        await asyncio.sleep(min(args.poll_s, max(0.0, deadline - time.monotonic())))


# ------------------------------------------------------------------ orchestration

def _mint(directory: Path, count: int) -> list[tuple[Path, Path]]:
    authority = CertificateAuthority.create(common_name="soak CA")
    authority.write(directory)
    authority.issue("vtn", Role.VTN).write(directory)
    return [authority.issue(f"ven-{i}", Role.VEN).write(directory) for i in range(count)]


async def _fleet(args: argparse.Namespace, directory: Path, identities: list[tuple[Path, Path]],
                 port: int, pid: int) -> tuple[Tally, list[tuple[float, float]]]:
    codec = Codec()
    tally = Tally()
    url = f"https://127.0.0.1:{port}{PREFIX}"
    vens = []
    for index, (cert, key) in enumerate(identities):
        context = client_context(cert=cert, key=key, ca=directory / "ca.pem")
        connector = aiohttp.TCPConnector(ssl=context, limit=1)
        session = aiohttp.ClientSession(connector=connector,
                                        timeout=aiohttp.ClientTimeout(total=30))
        vens.append(SoakVen(index=index, session=session, url=url))
    started = time.monotonic()
    limit = asyncio.Semaphore(50)

    async def register(ven: SoakVen) -> None:
        async with limit:
            await _register(ven, codec, tally)

    await asyncio.gather(*(register(v) for v in vens))
    print(f"registered {sum(bool(v.ven_id) for v in vens)}/{len(vens)} VENs "
          f"in {time.monotonic() - started:.1f} s", flush=True)
    samples: list[tuple[float, float]] = []
    begin = time.monotonic()
    deadline = begin + args.minutes * 60

    async def sampler() -> None:
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - begin
            samples.append((elapsed, _rss_mib(pid)))
            print(f"t={elapsed:6.0f} s  VTN RSS {samples[-1][1]:7.1f} MiB  requests "
                  f"{tally.requests:8d}  errors {tally.errors:5d}  points {tally.points_acked:9d}",
                  flush=True)
            await asyncio.sleep(args.every_s)

    try:
        await asyncio.gather(sampler(), *(_run_ven(v, args, deadline, codec, tally)
                                          for v in vens if v.ven_id))
    finally:
        samples.append((time.monotonic() - begin, _rss_mib(pid)))
        await asyncio.gather(*(v.session.close() for v in vens))
    return tally, samples


def _summary(args: argparse.Namespace, tally: Tally, samples: list[tuple[float, float]],
             stored: int, integrity: str) -> None:
    seconds = samples[-1][0] if samples else 0.0
    warm = [rss for t, rss in samples if t >= min(60.0, seconds / 4)] or [s[1] for s in samples]
    latencies = sorted(tally.latencies) or [0.0]
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print("\n== soak summary ==")
    print(f"VENs {args.vens}, {seconds / 60:.1f} min, poll every {args.poll_s} s, report every "
          f"{args.report_s} s x {args.points} points")
    print(f"requests {tally.requests} ({tally.requests / max(seconds, 1e-9):.0f}/s), errors "
          f"{tally.errors}{' (last: ' + tally.last_error + ')' if tally.errors else ''}")
    print(f"latency ms: p50 {p(0.5):.1f}  p99 {p(0.99):.1f}  max {latencies[-1] * 1000:.1f}")
    print(f"VTN RSS MiB: start {samples[0][1]:.1f}, after warm-up {warm[0]:.1f} -> end "
          f"{warm[-1]:.1f} (max {max(s[1] for s in samples):.1f}); growth after warm-up "
          f"{warm[-1] - warm[0]:+.1f}")
    # acknowledged <= stored <= sent: more stored than acknowledged are reports whose reply the
    # VEN gave up on (its timeout) after the VTN had committed them; those are not lost either.
    lost = max(0, tally.points_acked - stored)
    print(f"points sent {tally.points_sent}, acknowledged {tally.points_acked}, stored {stored}, "
          f"lost {lost}; integrity_check {integrity}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak",
                                     description="VENs polling and reporting on loopback")
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--poll-s", type=float, default=10.0)
    parser.add_argument("--report-s", type=float, default=60.0)
    parser.add_argument("--points", type=int, default=15)
    parser.add_argument("--every-s", type=float, default=15.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crowdflex-soak-") as tmp:
        directory = Path(tmp)
        started = time.monotonic()
        identities = _mint(directory, args.vens)
        print(f"minted {args.vens} VEN certificates in {time.monotonic() - started:.1f} s",
              flush=True)
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(tmp, child), daemon=True)
        process.start()
        try:
            if not parent.poll(120):
                raise SystemExit("the VTN did not start within 120 s")
            port = parent.recv()
            assert process.pid is not None
            tally, samples = asyncio.run(_fleet(args, directory, identities, port, process.pid))
        finally:
            parent.send("stop")
            if parent.poll(60):
                parent.recv()
            process.join(30)
            if process.is_alive():
                process.kill()
        with sqlite3.connect(directory / "vtn.db") as db:
            stored = db.execute("SELECT count(*) FROM report_points").fetchone()[0]
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        _summary(args, tally, samples, stored, integrity)
    return 0 if tally.errors == 0 and stored == tally.points_acked else 1
