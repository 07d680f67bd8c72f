"""``python -m bench workers``: does a second ``crowdflex vtn`` worker cost CPU per request?

The fleet workload of ``bench.fleet`` (each VEN polls every ``--poll-s``, sends a report per 4-s
sample, acknowledges the event published to all once a minute; 1 % reconnect per minute) runs
against the real ``crowdflex vtn --workers N`` on a fresh PostgreSQL database, for N = 1 and
N = 2 in alternating order (ABBA, ``--runs`` of each). The CPU counted is the VTN's and the
database's: every process of the command (the parent and its workers) and every PostgreSQL
backend serving the run's database, read from /proc (a backend is sampled every
``_SAMPLE_S``; one that exits counts up to its last sample, so PostgreSQL's share is a slight
underestimate). Per request it is that CPU over the requests the VENs had answered in the
window; the overhead of two workers is their CPU per request over one worker's, minus one.

Nothing here passes or fails; the load average before and after is printed because on a shared
machine the figures swing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from bench._vtn_group import (
    DEFAULT_SERVER,
    VtnGroup,
    fresh_database,
    libpq_dsn,
    process_cpu_s,
    vtn_group,
)
from bench.fleet import Generators, drive

__all__ = ["main"]

_SAMPLE_S: Final = 0.5


class GroupCpu:
    """CPU seconds of the command's processes and of the database's backends since start."""

    def __init__(self, group: VtnGroup, database: asyncpg.Connection) -> None:
        self._group, self._database = group, database
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._one_at_a_time = asyncio.Lock()  # one query at a time on the connection

    async def _pids(self) -> tuple[set[int], set[int]]:
        rows = await self._database.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")
        vtn = {self._group.process.pid, *(w["pid"] for w in self._group.workers)}
        return vtn, {r["pid"] for r in rows}

    async def sample(self) -> tuple[float, float]:
        """(VTN seconds, PostgreSQL seconds) used since the first sample."""
        async with self._one_at_a_time:
            vtn, backends = await self._pids()
        totals = [0.0, 0.0]
        for pid in vtn | backends:
            cpu = process_cpu_s(pid)
            if cpu is not None:
                self._first.setdefault(pid, cpu)  # new since: counted from when first seen
                self._last[pid] = cpu
        for pid, last in self._last.items():
            totals[0 if pid in vtn else 1] += last - self._first[pid]
        return totals[0], totals[1]

    async def sampling(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            try:
                async with asyncio.timeout(_SAMPLE_S):
                    await stop.wait()
            except TimeoutError:
                pass


class GroupControl:
    """What :func:`bench.fleet.drive` asks of its VTN (``clock``, ``publish``), for a group."""

    def __init__(self, group: VtnGroup, http: aiohttp.ClientSession, cpu: GroupCpu) -> None:
        self._group, self._http, self._cpu = group, http, cpu
        self.split: list[tuple[float, float]] = []  # each cpu reading: (VTN, PostgreSQL)
        self._events = itertools.count()

    async def call(self, *command: Any) -> Any:
        match command:
            case ("clock",):
                reading = await self._cpu.sample()
                self.split.append(reading)
                return sum(reading), time.monotonic()
            case ("publish", list() as ven_ids, str() as suffix):
                await self._group.publish(self._http, f"ev{suffix}-{next(self._events)}",
                                          ven_ids)
                return None
        raise ValueError(f"unknown command {command!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    workers: int
    vens: int
    requests: int
    window_s: float
    vtn_cpu_s: float
    database_cpu_s: float
    bad: int

    @property
    def per_request_ms(self) -> float:
        return 1000.0 * (self.vtn_cpu_s + self.database_cpu_s) / max(1, self.requests)

    @property
    def per_device_minute_ms(self) -> float:
        """VTN and database CPU per device and minute of this fleet."""
        minutes = self.window_s / 60.0
        return 1000.0 * (self.vtn_cpu_s + self.database_cpu_s) / (self.vens * minutes)


async def one_run(server: str, tmp: Path, pki: Any, args: argparse.Namespace,
                  workers: int) -> Run:
    async with fresh_database(server) as url, \
            vtn_group(url, tmp, pki, workers=workers, poll_s=args.poll_s) as group, \
            aiohttp.ClientSession() as http:
        database = await asyncpg.connect(libpq_dsn(url), timeout=10)
        stop = asyncio.Event()
        try:
            cpu = GroupCpu(group, database)
            control = GroupControl(group, http, cpu)
            sampler = asyncio.create_task(cpu.sampling(stop))
            try:
                with Generators(list(pki.vens), pki.ca, args, args.generators,
                                None) as generators:
                    ven_ids, _, _ = await generators.register(group.port, args.concurrency)
                    tally, _, window, _ = await drive(control, generators, ven_ids, args)
            finally:
                stop.set()
                await sampler
        finally:
            await database.close()
    (vtn_a, db_a), (vtn_b, db_b) = control.split[-2:]
    return Run(workers=workers, vens=len(pki.vens), requests=tally.requests, window_s=window,
               vtn_cpu_s=vtn_b - vtn_a, database_cpu_s=db_b - db_a, bad=tally.bad)


def _spread(values: list[float], unit: str = "ms", digits: int = 3) -> str:
    if not values:
        return "-"
    return (f"{statistics.median(values):.{digits}f} {unit} "
            f"({min(values):.{digits}f}-{max(values):.{digits}f})")


def render(args: argparse.Namespace, runs: list[Run], load: tuple[Any, Any]) -> str:
    lines = [f"workers: {args.vens} VENs, polls every {args.poll_s:g} s, one report per 4-s "
             f"sample, an event to all every minute; {args.minutes:g} min measured after "
             f"{args.warmup_s:g} s; {args.runs} runs of each (ABBA) on PostgreSQL",
             "load average before: " + " ".join(f"{x:.2f}" for x in load[0])
             + ", after: " + " ".join(f"{x:.2f}" for x in load[1])]
    for n in (1, 2):
        mine = [r for r in runs if r.workers == n]
        lines.append(
            f"--workers {n}: CPU per request {_spread([r.per_request_ms for r in mine])}"
            f" = VTN {_spread([1000 * r.vtn_cpu_s / max(1, r.requests) for r in mine])}"
            f" + PostgreSQL {_spread([1000 * r.database_cpu_s / max(1, r.requests) for r in mine])}"
            f"; requests/s {_spread([r.requests / r.window_s for r in mine], '/s', 0)}"
            f"; failed {sum(r.bad for r in mine)}")
        per_minute = [r.per_device_minute_ms for r in mine]
        lines.append(
            f"--workers {n}: CPU per device-minute {_spread(per_minute)}"
            f", so {_spread([60_000 / m for m in per_minute if m > 0], 'devices', 0)}"
            " per core (VTN and PostgreSQL together)")
    ones = [r.per_request_ms for r in runs if r.workers == 1]
    twos = [r.per_request_ms for r in runs if r.workers == 2]
    pairs = [b / a - 1.0 for a, b in zip(ones, twos, strict=False) if a]
    if pairs:
        lines.append(f"two workers' CPU per request over one's: "
                     f"{100 * statistics.median(pairs):+.1f} % "
                     f"({100 * min(pairs):+.1f} to {100 * max(pairs):+.1f} %, per run pair)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vens", type=int, default=300, help="VENs (devices) in the fleet")
    parser.add_argument("--poll-s", type=float, default=10.0, help="poll interval of each VEN")
    parser.add_argument("--minutes", type=float, default=1.0, help="measured window")
    parser.add_argument("--warmup-s", type=float, default=15.0, help="fleet running before it")
    parser.add_argument("--runs", type=int, default=2, help="runs of each worker count (ABBA)")
    parser.add_argument("--concurrency", type=int, default=25, help="registrations in flight")
    parser.add_argument("--generators", type=int, default=1,
                        help="load-generator processes (bench fleet's)")
    parser.add_argument("--server", default=os.environ.get("CROWDFLEX_TEST_POSTGRES_URL",
                                                           DEFAULT_SERVER),
                        help="PostgreSQL server to make each run's database on")
    args = parser.parse_args(argv)
    args.telemetry, args.encoding = "sample", "ours"  # what bench.fleet's generators read
    if min(args.vens, args.runs) < 1 or args.poll_s <= 0 or args.minutes <= 0:
        parser.error("counts and durations must be positive")
    warnings.simplefilter("ignore")
    from bench.vtn import mint

    before = os.getloadavg()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="crowdflex-bench-workers-") as name:
        tmp = Path(name)
        pki = mint(tmp, vens=args.vens, rsa_vens=0)
        for run in range(args.runs):
            order = (1, 2) if (run + 1) // 2 % 2 == 0 else (2, 1)
            for workers in order:
                runs.append(asyncio.run(one_run(args.server, tmp, pki, args, workers)))
    print(render(args, runs, (before, os.getloadavg())))
    return 0
