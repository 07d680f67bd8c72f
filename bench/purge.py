"""Report writes during a retention purge on SQLite: how long each waited, and the purge's time.

Fills a SQLite file with ``--vens`` x ``2 * --instants`` report points, then purges the older
two thirds (``ReportRepository.purge_points``, as the aggregator's retention does) while one VEN
keeps writing 10-point reports, one after another. A purge that is one DELETE holds the single
writer for its whole run, so the writes sent meanwhile wait that long; a purge in batches lets
them in between its batches. Prints the purge's seconds and rows, how many writes committed while
it ran, and their latencies (median and max); ``--alone`` times the purge with no writes. A/B:
run it on two checkouts in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter

from vtn.storage import ReportData, Storage, VenRegistration, open_storage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=4)


def _report(ven_id: str, first: int, instants: int) -> list[ReportData]:
    """``instants`` 4-s intervals from ``first``, two rIDs each (a TELEMETRY_USAGE report)."""
    rows = tuple((f"psn1_{k}", T0 + STEP * i, STEP, 1.0, None, None, None)
                 for i in range(first, first + instants) for k in (0, 1))
    return [ReportData(ven_id=ven_id, report_request_id="rr-1",
                       report_specifier_id="TELEMETRY_USAGE", received_at=T0, rows=rows)]


async def _fill(storage: Storage, vens: int, instants: int) -> list[str]:
    ids = []
    for n in range(vens):
        ven_id = (await storage.vens.register(VenRegistration(
            ven_id=f"ven-{n}", registration_id=f"reg-{n}", fingerprint=f"fp:{n}",
            ven_name=f"ven {n}", created_at=T0))).ven_id
        await storage.reports.store_update(ven_id, _report(ven_id, 0, instants), ())
        ids.append(ven_id)
    return ids


async def _run(path: Path, vens: int, instants: int, *, alone: bool) -> None:
    storage = await open_storage(f"sqlite:///{path}")
    try:
        ids = await _fill(storage, vens, instants)
        cutoff = T0 + STEP * (2 * instants // 3)
        purge = asyncio.ensure_future(storage.reports.purge_points(cutoff))
        started, waits = perf_counter(), []
        k = instants
        while not alone and not purge.done():
            sent = perf_counter()
            await storage.reports.store_update(ids[0], _report(ids[0], k, 5), ())
            waits.append(perf_counter() - sent)
            k += 5
        deleted, seconds = await purge, perf_counter() - started
        print(f"purge: {deleted} rows in {seconds:.3f} s")
        if waits:
            print(f"writes committed meanwhile: {len(waits)}, median"
                  f" {statistics.median(waits) * 1e3:.1f} ms, max {max(waits) * 1e3:.1f} ms")
    finally:
        await storage.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench purge", description=__doc__)
    parser.add_argument("--vens", type=int, default=100)
    parser.add_argument("--instants", type=int, default=1500,
                        help="4-s intervals per VEN, two points each (default 1500)")
    parser.add_argument("--alone", action="store_true",
                        help="no writes during the purge: the purge's own time")
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="crowdflex-purge-") as folder:
        asyncio.run(_run(Path(folder) / "vtn.db", args.vens, args.instants,
                         alone=args.alone))
    print(f"load after: {os.getloadavg()}")
    return 0
