"""Scheduled reports from oadrCreateReport, the push receiver, one outbox shared by two VTNs, and
the back-off arithmetic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from schemas import (
    CanceledReport,
    CancelReport,
    Codec,
    CreatedEvent,
    CreatedReport,
    CreateReport,
    Message,
    ReadingType,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportRequest,
    ReportType,
    Response,
    UpdateReport,
)
from tests.kit.pki import Pki
from tests.ven.scripts import registered
from ven import Backoff, Connection, Hooks, Outbox, PushReceiver, TimeSource, VenClient, VenSettings

from .conftest import VEN_ID, scripted_vtn
from .scripts import T0, default_script, distribute, event, report_request

DESCRIPTIONS = (ReportDescription(r_id="meter-1", report_type=ReportType.USAGE,
                                  reading_type=ReadingType.DIRECT_READ),)
FAST = Backoff(base=0.001, cap=0.004)


async def test_create_report_schedules_sends_until_cancelled(pki: Pki) -> None:
    queue: list[Message] = []
    updates: asyncio.Queue[UpdateReport] = asyncio.Queue()
    ticks: asyncio.Queue[float] = asyncio.Queue()
    windows: list[tuple[str, datetime, datetime]] = []

    async def tick(seconds: float) -> None:  # the test decides when a report period has passed
        await ticks.get()

    def provider(request: ReportRequest, since: datetime, until: datetime) -> list[ReportInterval]:
        windows.append((request.report_request_id, since, until))
        return [ReportInterval(dtstart=since, payloads=(
            ReportPayload(r_id="meter-1", value=float(len(windows))),))]

    def collect(service: str, message: Message) -> None:
        if isinstance(message, UpdateReport):
            updates.put_nowait(message)

    async with scripted_vtn(pki.server_context(),
                            default_script(queue, request_reports=False, extra=collect)) as vtn, \
            VenClient(VenSettings(
                ven_name="v",
                connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context(),
                                      poll_interval=0.01, backoff=FAST),
                hooks=Hooks(report_provider=provider),
                time=TimeSource(report_sleep=tick, clock=lambda: T0))) as ven:
        await ven.register()
        assert await ven.register_reports(DESCRIPTIONS, report_specifier_id="spec-1") == ()
        queue.append(CreateReport(request_id="cr-1", report_requests=(
            report_request("spec-1"), report_request("never-offered")), ven_id=VEN_ID))
        ven.start_polling()
        async with asyncio.timeout(10):
            for _ in range(3):
                ticks.put_nowait(4.0)
            received = [await updates.get() for _ in range(3)]
            queue.append(CancelReport(request_id="cancel-1", report_request_ids=("rr-spec-1",),
                                      ven_id=VEN_ID))
            while not any(isinstance(m, CanceledReport) for _, m in vtn.received):
                await ven.poll_once()  # drive the queue ourselves: deterministic, no sleeping
        assert ven.desk.accepted == {}

    created = next(m for _, m in vtn.received if isinstance(m, CreatedReport))
    assert created.pending_reports == ("rr-spec-1",)  # the unknown request was not taken
    assert created.response.request_id == "cr-1"
    values = [u.reports[0].intervals[0].payloads[0].value for u in received]
    assert values == [1.0, 2.0, 3.0]
    assert {u.reports[0].report_specifier_id for u in received} == {"spec-1"}
    assert {u.reports[0].report_name for u in received} == {"TELEMETRY_USAGE"}
    canceled = next(m for _, m in vtn.received if isinstance(m, CanceledReport))
    assert canceled.pending_reports == () and canceled.response.request_id == "cancel-1"


async def test_push_receiver_answers_on_the_http_reply(pki: Pki) -> None:
    codec = Codec()
    async with VenClient(VenSettings(
            ven_name="v", connection=Connection(vtn_url="https://127.0.0.1:9", ssl_context=None),
            hooks=Hooks(on_event=lambda e: "optIn"))) as ven:
        registered(ven)
        pusher_tls = pki.client_context(ven=pki.vens[1])  # any CA-issued client cert will do
        async with PushReceiver(ven, pki.server_context(),
                                allowed_fingerprints=frozenset({pki.vens[1].fingerprint})) as rx, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pusher_tls)) as http:
            url = f"{rx.url}/OpenADR2/Simple/2.0b/EiEvent"
            body = codec.encode(distribute(event("push-1", 4)))
            headers = {"Content-Type": "application/xml"}
            async with http.post(url, data=body, headers=headers) as reply:
                answer = codec.decode(await reply.read())
            async with http.post(url, data=body, headers=headers) as reply:
                repeat = codec.decode(await reply.read())
            async with http.post(url, data=b"<oops", headers=headers) as reply:
                broken = codec.decode(await reply.read())

        stranger_tls = pki.client_context(ven=pki.vens[2])
        async with PushReceiver(ven, pki.server_context(),
                                allowed_fingerprints=frozenset({pki.vens[1].fingerprint})) as rx, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=stranger_tls)) as http:
            reply = await http.post(f"{rx.url}/OpenADR2/Simple/2.0b/EiEvent", data=body,
                                    headers=headers)
            assert reply.status == 403
            reply.release()

    assert isinstance(answer, CreatedEvent)
    assert [(r.event_id, r.modification_number) for r in answer.event_responses] == [
        ("push-1", 4)]
    assert isinstance(repeat, Response) and repeat.response.code == 200
    assert isinstance(broken, Response) and broken.response.code == 454


async def test_two_vtns_share_one_outbox_file(pki: Pki, tmp_path: Path) -> None:
    arrived: dict[str, asyncio.Queue[UpdateReport]] = {"a": asyncio.Queue(), "b": asyncio.Queue()}

    def collector(name: str) -> Callable[[str, Message], None]:
        def collect(service: str, message: Message) -> None:
            if isinstance(message, UpdateReport):
                arrived[name].put_nowait(message)
        return collect

    async with await Outbox.open(tmp_path / "shared.sqlite") as outbox, \
            scripted_vtn(pki.server_context(), default_script(extra=collector("a"))) as vtn_a, \
            scripted_vtn(pki.server_context(), default_script(extra=collector("b"))) as vtn_b, \
            VenClient(VenSettings(ven_name="v", connection=Connection(
                vtn_url=vtn_a.url, ssl_context=pki.client_context())), outbox=outbox) as ven_a, \
            VenClient(VenSettings(ven_name="v", connection=Connection(
                vtn_url=vtn_b.url, ssl_context=pki.client_context())), outbox=outbox) as ven_b:
        results = {}
        for name, ven in (("a", ven_a), ("b", ven_b)):
            await ven.register()
            (request,) = await ven.register_reports(DESCRIPTIONS)
            await ven.send_report(request.report_request_id, (ReportInterval(payloads=(
                ReportPayload(r_id="meter-1", value=1.0 if name == "a" else 2.0),)),))
        async with asyncio.timeout(10):
            for name in ("a", "b"):
                results[name] = await arrived[name].get()
        assert await ven_a.flush_reports() == 0 and await ven_b.flush_reports() == 0
        assert arrived["a"].empty() and arrived["b"].empty()
    assert results["a"].reports[0].intervals[0].payloads[0].value == 1.0
    assert results["b"].reports[0].intervals[0].payloads[0].value == 2.0


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=8.0, jitter=0.5, random=lambda: 0.0)
    assert [backoff.delay(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.delay(10_000) == 8.0  # a very long outage does not overflow


def test_backoff_is_jittered_by_the_injected_random() -> None:
    draws = iter([0.0, 1.0, 0.5, 0.25])
    backoff = Backoff(base=2.0, factor=3.0, cap=100.0, jitter=0.5, random=lambda: next(draws))
    assert backoff.delay(2) == 18.0  # ceiling 2 * 3**2, the top of the band at 0.0
    assert backoff.delay(2) == 9.0  # the lowest point of the band: 18 * (1 - 0.5)
    assert backoff.delay(2) == 13.5
    assert backoff.delay(0) == 1.75


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
    assert Backoff(base=1, cap=10).ceiling(3) == 8.0
    assert timedelta(seconds=Backoff().delay(0)) <= timedelta(seconds=1)
