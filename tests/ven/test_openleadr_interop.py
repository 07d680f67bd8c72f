"""Our VEN against openleadr's VTN (an independent implementation) over real mutual TLS.

The acceptance line of the VTN/VEN issue: the VEN registers, answers an event openleadr adds with
optIn (openleadr's callback sees it), registers TELEMETRY_USAGE reports and sends data that
openleadr's report handler receives.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import (
    Event,
    EventStatus,
    OptType,
    ReportInterval,
    ReportPayload,
)
from tests.kit.net import free_port
from tests.kit.pki import Pki
from tests.kit.telemetry import telemetry_descriptions
from ven import Backoff, Connection, Hooks, VenClient, VenSettings

from .conftest import REGISTRATION_ID, VEN_ID, openleadr_vtn

FAST = Backoff(base=0.01, cap=0.05)


def _connection(pki: Pki, port: int) -> Connection:
    """To openleadr's VTN on ``port``: polled every 10 ms, retried fast."""
    return Connection(vtn_url=f"https://127.0.0.1:{port}", ssl_context=pki.client_context(),
                      poll_interval=0.01, backoff=FAST)


async def test_registers_and_opts_in_to_an_openleadr_event(pki: Pki) -> None:
    port = free_port()
    answered: asyncio.Future[tuple[str, str, str]] = asyncio.get_running_loop().create_future()
    seen: list[Event] = []

    def on_event(event: Event) -> OptType:
        seen.append(event)
        return OptType.OPT_IN

    def on_answer(ven_id: str, event_id: str, opt_type: str) -> None:
        answered.set_result((ven_id, event_id, opt_type))

    async with openleadr_vtn(pki, port) as server, VenClient(VenSettings(
        ven_name="ven-under-test", connection=_connection(pki, port),
        hooks=Hooks(on_event=on_event),
    )) as ven:
        registration = await ven.register()
        assert (registration.ven_id, registration.registration_id) == (VEN_ID, REGISTRATION_ID)
        assert registration.vtn_id == "openleadr-vtn"
        assert registration.poll_freq == timedelta(seconds=1)

        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        event_id = server.add_event(
            ven_id=VEN_ID, signal_name="LOAD_DISPATCH", signal_type="setpoint",
            intervals=[{"dtstart": start, "duration": timedelta(minutes=15),
                        "signal_payload": 2.5}],
            callback=on_answer, market_context="oadr://crowdflex/test",
        )
        ven.start_polling()
        async with asyncio.timeout(10):
            result = await answered

    assert result == (VEN_ID, event_id, "optIn")
    assert len(seen) == 1
    event = seen[0]
    assert event.event_id == event_id
    assert event.signals[0].signal_name == "LOAD_DISPATCH"
    assert event.signals[0].intervals[0].value == 2.5
    assert event.active_period.dtstart == start


async def test_cancelled_event_reaches_the_handler_once_per_modification(pki: Pki) -> None:
    port = free_port()
    versions: asyncio.Queue[Event] = asyncio.Queue()

    def on_event(event: Event) -> OptType:
        versions.put_nowait(event)
        return OptType.OPT_IN

    async with openleadr_vtn(pki, port) as server, VenClient(VenSettings(
        ven_name="ven-under-test", connection=_connection(pki, port),
        hooks=Hooks(on_event=on_event),
    )) as ven:
        await ven.register()
        start = datetime.now(UTC) + timedelta(hours=1)
        event_id = server.add_event(
            ven_id=VEN_ID, signal_name="SIMPLE", signal_type="level",
            intervals=[{"dtstart": start, "duration": timedelta(minutes=15),
                        "signal_payload": 1.0}],
            callback=lambda ven_id, event_id, opt_type: None,
        )
        ven.start_polling()
        async with asyncio.timeout(10):
            first = await versions.get()
            server.cancel_event(VEN_ID, event_id)
            second = await versions.get()
        # openleadr re-sends the event set on the next change; no third version was handled
        assert versions.empty()
    assert (first.modification_number, first.descriptor.event_status) == (0, EventStatus.FAR)
    assert (second.modification_number, second.descriptor.event_status) == (
        1, EventStatus.CANCELLED)


async def test_telemetry_reports_reach_openleadr(pki: Pki) -> None:
    port = free_port()
    received: asyncio.Queue[list[tuple[datetime, float]]] = asyncio.Queue()
    offered: list[dict[str, Any]] = []

    def on_values(values: list[tuple[datetime, float]]) -> None:
        received.put_nowait(values)

    def on_register_report(ven_id: str, resource_id: str, measurement: str, unit: str,
                           scale: str, min_sampling_interval: timedelta,
                           max_sampling_interval: timedelta) -> tuple[Any, timedelta]:
        offered.append({"ven_id": ven_id, "measurement": measurement, "unit": unit,
                        "scale": scale, "min": min_sampling_interval,
                        "max": max_sampling_interval})
        return (on_values, timedelta(seconds=4))

    async with openleadr_vtn(pki, port, on_register_report=on_register_report), VenClient(
        VenSettings(ven_name="ven-under-test", connection=_connection(pki, port)),
    ) as ven:
        await ven.register()
        requests = await ven.register_reports(telemetry_descriptions())
        assert len(requests) == 1
        request = requests[0]
        assert [p.r_id for p in request.report_specifier.specifier_payloads] == ["meter-1"]
        assert request.report_specifier.granularity == timedelta(seconds=4)

        sample_time = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        for index, value in enumerate((1.5, 2.5)):
            await ven.send_report(request.report_request_id, (ReportInterval(
                dtstart=sample_time + timedelta(seconds=4 * index),
                duration=timedelta(seconds=4),
                payloads=(ReportPayload(r_id="meter-1", value=value),),
            ),))
        async with asyncio.timeout(10):
            batches = [await received.get(), await received.get()]

    # our power:powerReal item base in kW, as openleadr reads it
    assert offered == [{"ven_id": VEN_ID, "measurement": "RealPower", "unit": "W", "scale": "k",
                        "min": timedelta(seconds=4), "max": timedelta(minutes=1)}]
    assert batches == [[(sample_time, 1.5)], [(sample_time + timedelta(seconds=4), 2.5)]]
