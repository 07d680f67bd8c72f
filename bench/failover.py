"""``python -m bench failover``: SIGKILL one of three ``crowdflex vtn`` workers in the middle of
an event fan-out to 1,000 VENs and of their steady telemetry; how long until the fleet is whole.

The VTN is the real command, ``crowdflex vtn --workers 3`` on a fresh PostgreSQL database of
its own (created on ``$CROWDFLEX_TEST_POSTGRES_URL``'s server, dropped after), one port shared
through SO_REUSEPORT. The VENs are light (:class:`~bench._raw_http.RawLink`: one keep-alive
mutual-TLS connection each, pre-encoded bodies) so 1,000 fit beside three workers and PostgreSQL
on a 2-core machine. Each VEN polls every ``--poll-s`` and sends a 10-point TELEMETRY_USAGE
report every ``--report-s`` (random phases); it acknowledges an event it gets, and sends a report
again until it is acknowledged (as a VEN's outbox does). A request that fails on a dead
connection is retried once on a new one, which the kernel hands to a live worker. A VEN that
lost an exchange (no answer within a minute, not HTTP 200, its ack refused, or an answer lost
with its worker and the request retried) asks for its events with oadrRequestEvent a second
later, and again a second after each further loss, until it has acknowledged the event: the
VTN marks an event delivered when it answers the poll, so an answer lost with its worker, or an
ack the VTN never stored, is not sent again by itself (a retried poll is answered with nothing).

Timeline, every step waiting on what the VENs saw, not on a clock: registration; one report
from every VEN; one event published to all of them through worker 0's admin API; once a third of
the VENs have it, SIGKILL the worker holding most VEN connections (the parent restarts it); run
until every VEN has the event acknowledged and a report acknowledged after the kill. "Whole"
is the time from the kill until the last VEN got there. Each step has a deadline: one missed
raises with how many VENs were where, and a VEN's task that fails stops the run with its error.

Then the database is read: every VEN's acknowledgement of the event is stored, and every report
a VEN saw acknowledged is stored once (each of its points exactly once), and nothing a VEN saw
acknowledged is missing. :func:`run` returns those counts (``tests/cbp/test_vtn_failover.py``
asserts them); ``main`` prints them with the timings. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg  # type: ignore[import-untyped]

import schemas
from bench._vtn_group import DEFAULT_SERVER, VtnGroup, fresh_database, libpq_dsn, vtn_group
from bench._vtn_load import (
    Ven,
    _acknowledge,
    _report_template,
    _stamp,
    close_vens,
    open_vens,
    poll_body,
    register_all,
    response_code,
)
from vtn.site import raise_descriptor_limit

__all__ = ["Outcome", "main", "run"]

EVENT_ID: Final = "failover-1"
_ASK_AFTER_S: Final = 1.0  # after a lost exchange, oadrRequestEvent this soon
_STEP_POLLS: Final = 10  # each step of the timeline has ten poll intervals ...
_STEP_SPARE_S: Final = 120.0  # ... and two minutes
_SPARE_DESCRIPTORS: Final = 200  # beside a connection per VEN: database, admin, files
_STAMP_BASE: Final = datetime(2025, 3, 18, 14, tzinfo=UTC)  # bench._vtn_load's report hour


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    vens: int
    killed_held: int  # VEN connections the killed worker held
    events_acked: int  # VENs whose acknowledgement of the event is stored
    reports_acked: int  # reports the VENs saw acknowledged
    reports_missing: int  # of those, with a point not stored
    points_duplicated: int  # stored points beyond one per acknowledged point (should be 0)
    whole_s: float  # kill -> every VEN has the event acked and a report acked after the kill
    restarted: bool  # the parent had started the killed worker again by then
    failed_requests: int  # exchanges lost (no answer on the old and a new connection, or not
    # HTTP 200, or a refused ack): sent again at the VEN's next tick
    asked: int  # oadrRequestEvent a VEN sent after a lost exchange, to have its events again
    fanout_s: float  # publish -> every VEN's ack, kill included


@dataclass(slots=True)
class _Device:
    """One VEN's side of the run: what it sent, what it saw acknowledged."""

    ven: Ven
    poll: bytes
    template: bytes
    reports: int = 0  # reports acknowledged: seq 0 .. reports-1
    event_acked_at: float | None = None
    report_after_kill: bool = False
    failed: int = 0  # exchanges lost (no answer, or not 200): each is sent again
    lost: bool = False  # an exchange was lost since the VEN last had its events
    asked: int = 0  # oadrRequestEvent sent after a lost exchange

    @property
    def event_acked(self) -> bool:
        return self.event_acked_at is not None


@dataclass(slots=True)
class _Fleet:
    devices: list[_Device]
    step_s: float  # deadline of each step of the timeline
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    killed_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    lives: list[asyncio.Task[None]] = field(default_factory=list)

    def moved(self) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool], step: str) -> None:
        """Once ``condition()`` holds; a VEN task's error is raised, and so is a step that
        outlasts ``step_s``, with a count of where the VENs were."""
        try:
            async with asyncio.timeout(self.step_s):
                while not condition():
                    self._raise_failed()
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise RuntimeError(f"{step}: not reached within {self.step_s:.0f} s; "
                               f"{self._census()}") from None

    def _raise_failed(self) -> None:
        for life in self.lives:
            if life.done() and not life.cancelled() and life.exception() is not None:
                raise RuntimeError(f"a VEN's task failed; {self._census()}") \
                    from life.exception()

    def _census(self) -> str:
        devices = self.devices
        return (f"of {len(devices)} VENs: {sum(d.reports > 0 for d in devices)} had a report "
                f"acknowledged, {sum(d.event_acked for d in devices)} the event, "
                f"{sum(d.report_after_kill for d in devices)} a report after the kill; "
                f"{sum(d.lost for d in devices)} had lost an exchange, "
                f"{sum(d.failed for d in devices)} exchanges failed, "
                f"{sum(d.asked for d in devices)} oadrRequestEvent sent")


async def _report(fleet: _Fleet, device: _Device) -> None:
    hour = _stamp(-1)
    body = device.template.replace(hour, _stamp(device.reports))
    status, reply = await _post(device, "EiReport", body)
    if status == 200 and response_code(reply) == 200:
        device.reports += 1
        if fleet.killed_at is not None:
            device.report_after_kill = True
        fleet.moved()
    else:  # refused (503 while a worker is swamped, say): the same report again next tick
        device.failed += 1


async def _poll(fleet: _Fleet, device: _Device) -> None:
    """One poll tick: after a lost exchange first ask for every event (oadrRequestEvent: an
    answer lost with its worker, or an ack that failed, is not sent again by the VTN), then
    poll until nothing waits, acknowledging each event list."""
    if device.lost and not device.event_acked:
        device.asked += 1
        ask = device.ven.encode(schemas.RequestEvent(request_id=f"ask-{device.asked}",
                                                     ven_id=device.ven.ven_id))
        status, reply = await _post(device, "EiEvent", ask)
        if status != 200:
            device.failed += 1
            return
        await _answer(fleet, device, reply, every=True)
        if device.lost:
            return
    device.lost = False
    while True:
        status, reply = await _post(device, "OadrPoll", device.poll)
        if status != 200:
            device.failed += 1
            device.lost = True
            return
        if b"oadrDistributeEvent" not in reply:
            return
        await _answer(fleet, device, reply)


async def _answer(fleet: _Fleet, device: _Device, reply: bytes, *, every: bool = False) -> None:
    """Acknowledge an oadrDistributeEvent (``every``: the answer to oadrRequestEvent, with all
    of the VEN's events); a failed ack marks the exchange lost."""
    if b"oadrDistributeEvent" not in reply:
        return
    errors = len(device.ven.errors)
    await _acknowledge(device.ven, reply)  # a retried ack that was answered 200 is stored
    if len(device.ven.errors) != errors:
        device.failed += 1
        device.lost = True
        return
    if every or EVENT_ID.encode() in reply:  # nothing a lost answer carried is missing now
        device.lost = False
    if EVENT_ID.encode() in reply and device.event_acked_at is None:
        device.event_acked_at = time.perf_counter()
        fleet.moved()


async def _post(device: _Device, service: str, body: bytes) -> tuple[int, bytes]:
    """One exchange (under RawLink's deadline); a retried one marks the VEN as having lost an
    exchange (its first try may have been answered by a worker that died before the answer
    left)."""
    retries = device.ven.raw.retries
    answer = await device.ven.raw.post(service, body)
    if device.ven.raw.retries != retries:
        device.lost = True
    return answer


async def _life(fleet: _Fleet, device: _Device, poll_s: float, report_s: float) -> None:
    """Poll and report on fixed grids (random phases) until stopped; a failed exchange (its
    worker died and the retry on a new connection failed too, or no answer in time) is tried
    again at the next tick; after a lost exchange the VEN asks for its events a second later."""
    now = time.perf_counter()
    next_poll, next_report = now + random.uniform(0, poll_s), now + random.uniform(0, report_s)
    while not fleet.stop.is_set():
        due = min(next_poll, next_report)
        try:
            async with asyncio.timeout(max(0.0, due - time.perf_counter())):
                await fleet.stop.wait()
            return
        except TimeoutError:
            pass
        try:
            if next_report <= next_poll:
                next_report += report_s
                await _report(fleet, device)
            else:
                next_poll += poll_s
                await _poll(fleet, device)
        except (OSError, asyncio.IncompleteReadError):  # TimeoutError is an OSError
            device.failed += 1
            device.lost = True
            await _close(device.ven)
        if device.lost and not device.event_acked:  # ask for the events soon, not a poll later
            next_poll = min(next_poll, time.perf_counter() + _ASK_AFTER_S)


async def _stored(storage_url: str, devices: list[_Device], points_per_report: int
                  ) -> tuple[int, int, int]:
    """(VENs whose event ack is stored, acknowledged reports with a point missing, points
    stored twice for an acknowledged report)."""
    conn = await asyncpg.connect(libpq_dsn(storage_url), timeout=10)
    try:
        acked = await conn.fetchval(
            "SELECT count(*) FROM event_deliveries WHERE event_id = $1 "
            "AND ack_modification_number IS NOT NULL", EVENT_ID)
        rows = await conn.fetch("SELECT ven_id, dtstart FROM report_points")
    finally:
        await conn.close()
    per_report: Counter[tuple[str, int]] = Counter()
    for row in rows:
        seq = int((row["dtstart"] - _STAMP_BASE) / timedelta(hours=1)) - 1
        per_report[row["ven_id"], seq] += 1
    missing = duplicated = 0
    for device in devices:
        for seq in range(device.reports):
            stored = per_report[device.ven.ven_id, seq]
            missing += stored < points_per_report
            duplicated += max(0, stored - points_per_report)
    return int(acked), missing, duplicated


async def run(storage_url: str, directory: Path, *, vens: int = 1000, poll_s: float = 30.0,
              report_s: float = 60.0, workers: int = 3) -> Outcome:
    """The whole scenario on an empty PostgreSQL database at ``storage_url``."""
    from bench.vtn import mint

    raise_descriptor_limit(vens + _SPARE_DESCRIPTORS)  # a connection per VEN in this process
    pki = mint(directory, vens=vens, rsa_vens=0)
    async with vtn_group(storage_url, directory, pki, workers=workers, poll_s=poll_s) as group, \
            aiohttp.ClientSession() as http:
        opened = open_vens(list(pki.vens), pki.ca, group.port)
        try:
            await register_all(opened, concurrency=25)
            await _drain(opened, concurrency=25)
            devices = [_Device(ven=v, poll=poll_body(v), template=_report_template(v))
                       for v in opened]
            fleet = _Fleet(devices, step_s=_STEP_POLLS * poll_s + _STEP_SPARE_S)
            timings = await _scenario(fleet, group, http, poll_s, report_s)
        finally:
            await close_vens(opened)
    acked, missing, duplicated = await _stored(storage_url, devices, _points(devices[0]))
    return Outcome(
        vens=vens, killed_held=timings["held"], events_acked=acked,
        reports_acked=sum(d.reports for d in devices), reports_missing=missing,
        points_duplicated=duplicated, whole_s=timings["whole"],
        restarted=timings["restarted"],
        failed_requests=sum(d.failed for d in devices), asked=sum(d.asked for d in devices),
        fanout_s=timings["fanout"])


async def _scenario(fleet: _Fleet, group: VtnGroup, http: aiohttp.ClientSession,
                    poll_s: float, report_s: float) -> dict[str, Any]:
    """Steady telemetry, the event, the kill mid fan-out, until whole; the figures."""
    devices = fleet.devices
    fleet.lives = [asyncio.create_task(_life(fleet, d, poll_s, report_s)) for d in devices]
    try:
        await fleet.until(lambda: all(d.reports for d in devices), "a report from every VEN")
        published = time.perf_counter()
        await group.publish(http, EVENT_ID, [d.ven.ven_id for d in devices])
        await fleet.until(lambda: sum(d.event_acked for d in devices) * 3 >= len(devices),
                          "the event acknowledged by a third of the VENs")
        held = [await group.gauge(http, i, "crowdflex_vtn_vens_connected")
                for i in range(len(group.workers))]
        index = held.index(max(held))
        victim = group.workers[index]["pid"]
        fleet.killed_at = killed = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        await fleet.until(lambda: all(d.event_acked and d.report_after_kill for d in devices),
                          "every VEN whole after the kill")
        whole = time.perf_counter()
    finally:
        fleet.stop.set()
        await asyncio.gather(*fleet.lives, return_exceptions=True)
    status = json.loads(group.status_file.read_text())
    return {"held": int(max(held)), "whole": whole - killed,
            "restarted": status["workers"][index]["pid"] != victim,
            "fanout": max(d.event_acked_at or 0.0 for d in devices) - published}


async def _close(ven: Ven) -> None:
    """Drop a VEN's connection after a failure; a socket already broken may fail closing."""
    with contextlib.suppress(OSError):
        await ven.raw.close()


async def _drain(vens: list[Ven], *, concurrency: int) -> None:
    """Poll each VEN's queue empty (registration queued a report request), ``concurrency`` at a
    time: a thousand TLS handshakes at once overrun the workers' handshake deadline on a busy
    machine. A failed exchange is tried again."""
    gate = asyncio.Semaphore(concurrency)

    async def one(ven: Ven) -> None:
        async with gate:
            for _ in range(50):
                try:
                    status, reply = await ven.raw.post("OadrPoll", poll_body(ven))
                except (OSError, asyncio.IncompleteReadError):  # TimeoutError is an OSError
                    await _close(ven)
                    continue
                if status == 200 and b"oadrResponse" in reply[:2000] \
                        and b"oadrRegisterReport" not in reply:
                    return
            raise RuntimeError(f"{ven.identity.name}: queue not drained")

    await asyncio.gather(*(one(v) for v in vens))


def _points(device: _Device) -> int:
    """Points in one of the device's reports."""
    return sum(len(i.payloads) for r in _decoded(device.template).reports for i in r.intervals)


def _decoded(body: bytes) -> schemas.UpdateReport:
    message = schemas.Codec().decode(body)
    assert isinstance(message, schemas.UpdateReport)
    return message


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vens", type=int, default=1000)
    parser.add_argument("--poll-s", type=float, default=30.0, help="poll interval (default 30)")
    parser.add_argument("--report-s", type=float, default=60.0,
                        help="telemetry interval (default 60)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--server", default=os.environ.get("CROWDFLEX_TEST_POSTGRES_URL",
                                                           DEFAULT_SERVER),
                        help="PostgreSQL server to make the run's database on")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    for n in range(args.runs):
        outcome = asyncio.run(_one(args))
        print(f"run {n + 1}: {outcome.vens} VENs, killed worker held {outcome.killed_held}; "
              f"fleet whole {outcome.whole_s:.2f} s after the kill (publish -> all acks "
              f"{outcome.fanout_s:.2f} s; killed worker restarted by then: "
              f"{'yes' if outcome.restarted else 'no'}); "
              f"events acked {outcome.events_acked}/{outcome.vens}; "
              f"reports acked {outcome.reports_acked}, missing {outcome.reports_missing}, "
              f"points stored twice {outcome.points_duplicated}; exchanges lost and sent again "
              f"{outcome.failed_requests}, oadrRequestEvent after a loss {outcome.asked}")
    print(f"load average after: {os.getloadavg()}")
    return 0


async def _one(args: argparse.Namespace) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-failover-") as tmp:
        async with fresh_database(args.server) as url:
            return await run(url, Path(tmp), vens=args.vens, poll_s=args.poll_s,
                             report_s=args.report_s)
