"""Acceptance (issue 3): a VEN keeps producing 4-s telemetry while the VTN is down for 60 s;
after the VTN returns it holds every sample exactly once, with its original timestamps.

The VTN is a real ``crowdflex vtn`` process, killed with SIGKILL. The VEN's report schedule runs on
an injected clock and sleep: each "4 s" passes when the test says so, so fifteen intervals spanning
60 s are produced in milliseconds. The VEN itself is restarted during the outage too (a new client
on the same outbox file), so the samples cross a process boundary on the VEN side as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import ReportInterval, ReportPayload, ReportRequest
from tests.kit.pki import Pki
from tests.kit.telemetry import telemetry_descriptions
from ven import (
    Backoff,
    Connection,
    Hooks,
    Outbox,
    TimeSource,
    VenClient,
    VenError,
    VenSettings,
    VtnUnavailable,
)
from vtn.storage import open_storage

from . import VtnProcess

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PERIOD = timedelta(seconds=4)
SAMPLES = 15  # 60 s of 4-s telemetry
FAST = Backoff(base=0.02, cap=0.2)


class DrivenSchedule:
    """The VEN's clock and report sleep, advanced one report period per :meth:`tick`."""

    def __init__(self) -> None:
        self.now = T0
        self._ticks: asyncio.Queue[None] = asyncio.Queue()
        self.waiting: asyncio.Queue[None] = asyncio.Queue()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waiting.put_nowait(None)  # the schedule finished its last sample and waits
        await self._ticks.get()
        self.now += timedelta(seconds=seconds)

    async def tick(self) -> None:
        await self.waiting.get()
        self._ticks.put_nowait(None)


def provider(request: ReportRequest, since: datetime, until: datetime) -> Sequence[ReportInterval]:
    value = (since - T0).total_seconds()  # a value that names its own interval
    return (ReportInterval(dtstart=since, duration=until - since,
                           payloads=(ReportPayload(r_id="meter-1", value=value),)),)


async def test_telemetry_made_during_a_60_s_outage_arrives_exactly_once(
    pki: Pki, storage_url: str, tmp_path: Path
) -> None:
    vtn = VtnProcess(pki, storage_url, tmp_path)
    schedule = DrivenSchedule()
    failures: list[VenError] = []
    outbox_path = tmp_path / "ven-outbox.sqlite"
    connection = Connection(vtn_url=vtn.url, ssl_context=pki.client_context(), backoff=FAST)
    try:
        await vtn.start()
        async with await Outbox.open(outbox_path) as outbox, VenClient(VenSettings(
            ven_name="telemetry-ven", connection=connection,
            hooks=Hooks(report_provider=provider, on_error=failures.append),
            time=TimeSource(clock=schedule.clock, report_sleep=schedule.sleep),
        ), outbox=outbox) as ven:
            registration = await ven.register()
            (request,) = await ven.register_reports(telemetry_descriptions())
            assert ven.desk.accepted[request.report_request_id].period == PERIOD
            await vtn.kill()
            ticked = 0
            try:
                async with asyncio.timeout(60):  # each tick waits for the schedule to wait
                    while ticked < SAMPLES:
                        await schedule.tick()
                        ticked += 1
                    await schedule.waiting.get()  # the 15th sample is in the outbox
            except TimeoutError:
                pytest.fail(f"the VEN's report schedule did not come back for its next tick "
                            f"after {ticked} of {SAMPLES}; failures: {failures}")
            assert schedule.now - T0 == SAMPLES * PERIOD  # 60 s of VEN time went by
            assert await outbox.count(ven.outbox_key) == SAMPLES
        assert any(isinstance(f, VtnUnavailable) for f in failures)

        # The VEN process restarts during the outage, then the VTN returns on the same database.
        await vtn.start()
        async with await Outbox.open(outbox_path) as outbox, VenClient(VenSettings(
            ven_name="telemetry-ven", connection=connection), outbox=outbox) as ven:
            async with asyncio.timeout(20):
                await ven.flush_reports()  # takes the flusher's lock: nothing is in flight after
            assert await outbox.count(ven.outbox_key) == 0
    finally:
        await vtn.stop()

    async with await open_storage(storage_url) as storage:
        points = await storage.reports.points(registration.ven_id, T0 - timedelta(hours=1),
                                              T0 + timedelta(hours=1))
    assert [p.dtstart for p in points] == [T0 + i * PERIOD for i in range(SAMPLES)]
    assert [p.value for p in points] == [float(4 * i) for i in range(SAMPLES)]
    assert {p.duration for p in points} == {PERIOD}
    assert {p.report_request_id for p in points} == {request.report_request_id}
