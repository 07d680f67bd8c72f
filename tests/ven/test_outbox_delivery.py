"""Reports made while the VTN is away wait in the durable outbox and arrive later, in order, once.

The VTN is openleadr's: it is stopped after registration, the VEN keeps producing reports, then a
fresh openleadr VTN comes up on the same port (it has no report callbacks, so its
``on_update_report`` handler receives every oadrReport whole).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import ReportInterval, ReportPayload
from tests.kit.net import free_port
from tests.kit.pki import Pki
from tests.kit.telemetry import telemetry_descriptions
from ven import (
    Backoff,
    Connection,
    Hooks,
    Outbox,
    VenClient,
    VenError,
    VenSettings,
    VtnUnavailable,
)

from .conftest import openleadr_vtn

FAST = Backoff(base=0.01, cap=0.05)


def _interval(index: int) -> ReportInterval:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=4 * index)
    return ReportInterval(dtstart=start, duration=timedelta(seconds=4),
                          payloads=(ReportPayload(r_id="meter-1", value=float(index)),))


async def test_reports_made_while_the_vtn_is_down_arrive_in_order_exactly_once(
    pki: Pki, tmp_path: Path
) -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    failures: asyncio.Queue[VenError] = asyncio.Queue()
    arrived: list[Any] = []
    all_arrived = asyncio.Event()
    count = 6

    def on_update_report(report: dict[str, Any]) -> None:
        arrived.append(report)
        if len(arrived) >= count:
            all_arrived.set()

    def on_register_report(**offer: Any) -> tuple[Any, timedelta]:
        return (lambda values: None, timedelta(seconds=4))

    async with await Outbox.open(tmp_path / "outbox.sqlite") as outbox, VenClient(VenSettings(
        ven_name="ven-under-test",
        connection=Connection(vtn_url=url, ssl_context=pki.client_context(), backoff=FAST),
        hooks=Hooks(on_error=failures.put_nowait)), outbox=outbox,
    ) as ven:
        async with openleadr_vtn(pki, port, on_register_report=lambda ven_id, resource_id,
                                 measurement, unit, scale, min_sampling_interval,
                                 max_sampling_interval: on_register_report()):
            await ven.register()
            (request,) = await ven.register_reports(telemetry_descriptions())
        # The VTN is gone now: reports queue up and the flusher keeps failing.
        for index in range(count):
            await ven.send_report(request.report_request_id, (_interval(index),))
        async with asyncio.timeout(10):
            failure = await failures.get()
        assert isinstance(failure, VtnUnavailable)
        assert await outbox.count(ven.outbox_key) == count

        async with openleadr_vtn(pki, port, on_update_report=on_update_report):
            async with asyncio.timeout(10):
                await all_arrived.wait()
            # the flusher's lock: this waits for any send in flight, then finds nothing left
            assert await ven.flush_reports() == 0
        assert await outbox.count(ven.outbox_key) == 0

    values = [report["intervals"][0]["report_payload"]["value"] for report in arrived]
    assert values == [float(index) for index in range(count)]
    assert {report["report_request_id"] for report in arrived} == {request.report_request_id}
    assert {report["report_name"] for report in arrived} == {"TELEMETRY_USAGE"}


async def test_outbox_survives_a_restart_of_the_ven(pki: Pki, tmp_path: Path) -> None:
    """Items written by one process are sent by the next one that opens the same file."""
    path = tmp_path / "outbox.sqlite"
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    settings = VenSettings(ven_name="ven-under-test", connection=Connection(
        vtn_url=url, ssl_context=pki.client_context(), backoff=FAST))
    async with await Outbox.open(path) as outbox, VenClient(settings, outbox=outbox) as ven:
        async with openleadr_vtn(
            pki, port, on_register_report=lambda ven_id, resource_id, measurement, unit, scale,
            min_sampling_interval, max_sampling_interval: (lambda values: None,
                                                           timedelta(seconds=4)),
        ):
            await ven.register()
            (request,) = await ven.register_reports(telemetry_descriptions())
        await ven.send_report(request.report_request_id, (_interval(7),))

    arrived: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    async with await Outbox.open(path) as outbox:
        assert await outbox.count(url) == 1
        async with openleadr_vtn(pki, port, on_update_report=arrived.set_result), VenClient(
            settings, outbox=outbox) as restarted:
            async with asyncio.timeout(10):
                report = await arrived
            assert await restarted.flush_reports() == 0  # waits out the send in flight
        assert await outbox.count(url) == 0
    assert report["intervals"][0]["report_payload"]["value"] == 7.0
