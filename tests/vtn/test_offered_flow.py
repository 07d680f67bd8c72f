"""Reports the VTN offers, end to end: our VEN client against our VTN over real mutual TLS, on
SQLite and PostgreSQL, pulled and pushed (vtn.services.offered, ven.offered).

The VTN offers METADATA, the VEN requests it (in oadrRegisteredReport or oadrCreateReport), the
VTN sends data (oadrUpdateReport), the VEN's handler gets it and its oadrUpdatedReport is
recorded on the send; the VEN's cancel stops further data. Another certificate naming this VEN
is refused with 463, a request for a report never offered with 461.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import (
    SERVICE_PREFIX,
    CreateReport,
    EiResponse,
    ReadingType,
    Report,
    ReportDescription,
    ReportInterval,
    ReportPayload,
    ReportRequest,
    ReportSpecifier,
    ReportType,
    SpecifierPayload,
    UpdatedReport,
    utc_now,
)
from tests.kit.net import free_port
from tests.kit.vtn import running_vtn
from ven import Connection, Hooks, PushReceiver, VenClient, VenSettings, VtnRefused
from vtn.services import offered

from .harness import LOOPBACK_PUSH, code_of, push_ven_tls, raw_ven

SPEC = "pool-1:settlement"


def metadata(spec: str = SPEC) -> Report:
    return Report(report_request_id="0", report_specifier_id=spec, created_date_time=utc_now(),
                  report_name="x-SETTLEMENT", duration=timedelta(0), descriptions=(
                      ReportDescription(r_id="payment", report_type=ReportType.PRICE,
                                        reading_type=ReadingType.SUMMED),
                      ReportDescription(r_id="penalty", report_type=ReportType.PRICE,
                                        reading_type=ReadingType.SUMMED)))


def chooser(request_id: str) -> Callable[[tuple[Report, ...]], list[ReportRequest]]:
    def choose(reports: tuple[Report, ...]) -> list[ReportRequest]:
        return [ReportRequest(report_request_id=request_id, report_specifier=ReportSpecifier(
            report_specifier_id=r.report_specifier_id, granularity=timedelta(0),
            report_back_duration=timedelta(0), specifier_payloads=tuple(
                SpecifierPayload(r_id=d.r_id, reading_type=d.reading_type)
                for d in r.descriptions))) for r in reports]
    return choose


def interval(payment: float) -> ReportInterval:
    return ReportInterval(dtstart=utc_now(), duration=timedelta(minutes=15),
                          payloads=(ReportPayload(r_id="payment", value=payment),))


async def drain(ven: VenClient) -> None:
    while await ven.poll_once():
        pass


async def test_pulled_offer_request_data_answer_and_cancel(pki: Any, storage_url: str) -> None:
    received: list[Report] = []
    async with running_vtn(pki, storage_url) as vtn, VenClient(VenSettings(
            ven_name="agg",
            connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context()),
            hooks=Hooks(on_report_data=received.append, request_vtn_reports=chooser("q-1")))
            ) as ven:
        ven_id = (await ven.register()).ven_id
        with pytest.raises(LookupError):  # nothing requested yet
            await offered.send_report_data(vtn.ctx, ven_id, "q-1", (interval(1.0),))
        await offered.offer_reports(vtn.ctx, ven_id, (metadata(),))
        await drain(ven)  # METADATA -> oadrRegisteredReport(q-1); oadrCreatedReport -> ok
        assert [r.report_specifier_id for r in ven.vtn.metadata] == [SPEC]
        assert list(ven.vtn.requests) == ["q-1"]
        (live,) = await offered.live_requests(vtn.ctx, ven_id)
        assert (live.report_specifier_id, live.r_ids) == (SPEC, ("payment", "penalty"))

        sent = await offered.send_report_data(vtn.ctx, ven_id, "q-1", (interval(1250.5),),
                                              report_id="settlement:e1", request_id="stmt-e1")
        assert sent == "stmt-e1"
        # the same requestID again queues nothing; data of another report is refused
        assert await offered.send_report_data(vtn.ctx, ven_id, "q-1", (interval(1.0),),
                                              request_id="stmt-e1") is None
        with pytest.raises(ValueError):
            await offered.send_report(vtn.ctx, ven_id, Report(
                report_request_id="q-1", report_specifier_id="other",
                created_date_time=utc_now(), intervals=(interval(1.0),)))
        await drain(ven)
        (report,) = received
        assert (report.report_request_id, report.report_specifier_id, report.report_id) == (
            "q-1", SPEC, "settlement:e1")
        assert str(report.report_name) == "x-SETTLEMENT"
        assert report.intervals[0].payloads[0].value == 1250.5
        (send,) = await vtn.ctx.storage.offered.sends(ven_id)
        assert (send.request_id, send.response_code) == (sent, 200)
        assert send.answered_at is not None

        assert await ven.vtn.cancel(["q-1"]) == ()
        assert await offered.live_requests(vtn.ctx, ven_id) == ()
        with pytest.raises(LookupError):
            await offered.send_report_data(vtn.ctx, ven_id, "q-1", (interval(2.0),))


async def test_requested_later_with_create_report_and_refusals(pki: Any,
                                                                storage_url: str) -> None:
    async with running_vtn(pki, storage_url) as vtn, VenClient(VenSettings(
            ven_name="agg",
            connection=Connection(vtn_url=vtn.url, ssl_context=pki.client_context()))) as ven:
        ven_id = (await ven.register()).ven_id
        await offered.offer_reports(vtn.ctx, ven_id, (metadata(), metadata("other")))
        await drain(ven)
        assert ven.vtn.requests == {}  # no chooser: nothing requested at once
        request = await ven.vtn.request_report(SPEC, r_ids=("penalty",),
                                               report_request_id="q-2")
        assert request.report_specifier.specifier_payloads[0].r_id == "penalty"
        (live,) = await offered.live_requests(vtn.ctx, ven_id)
        assert (live.report_request_id, live.r_ids) == ("q-2", ("penalty",))

        # a report never offered to this VEN: 461, and nothing stored
        stray = CreateReport(request_id="c9", ven_id=ven_id, report_requests=(
            chooser("q-9")((metadata("never-offered"),))[0],))
        with pytest.raises(VtnRefused) as refused:
            await ven._link.exchange("EiReport", stray, UpdatedReport)  # type: ignore[arg-type]
        assert refused.value.code == 461
        assert [r.report_request_id for r in await offered.live_requests(vtn.ctx, ven_id)] == [
            "q-2"]

        # another VEN's certificate naming this venID: 463, the send stays unanswered
        sent = await offered.send_report_data(vtn.ctx, ven_id, "q-2", (interval(3.0),))
        async with raw_ven(vtn.url, pki.client_context(ven=pki.vens[1])) as intruder:
            await intruder.register("intruder")
            reply = await intruder.post("EiReport", UpdatedReport(
                response=EiResponse(request_id=sent), ven_id=ven_id))
        assert code_of(reply) == 463
        (send,) = await vtn.ctx.storage.offered.sends(ven_id)
        assert send.answered_at is None


async def test_pushed_offer_request_and_data(pki: Any, storage_url: str, tmp_path: Path) -> None:
    data: asyncio.Queue[Report] = asyncio.Queue()
    confirmed, answered = asyncio.Event(), asyncio.Event()
    tls = push_ven_tls(pki, tmp_path)  # the receiver serves with the VEN's own certificate
    async with running_vtn(pki, storage_url, push_allow_private_targets=LOOPBACK_PUSH) as vtn:
        port = free_port()
        ven = VenClient(VenSettings(
            ven_name="pushed",
            connection=Connection(vtn_url=vtn.url, ssl_context=tls.client,
                                  push_url=f"https://127.0.0.1:{port}{SERVICE_PREFIX}"),
            hooks=Hooks(on_report_data=data.put_nowait, request_vtn_reports=chooser("q-p"))))
        async with ven, PushReceiver(ven, tls.server, port=port,
                                     allowed_fingerprints=frozenset({pki.vtn.fingerprint})):
            on_created = ven.vtn.on_created_report

            def created_seen(message: Any) -> Any:
                reply = on_created(message)
                confirmed.set()
                return reply

            ven.vtn.on_created_report = created_seen  # type: ignore[method-assign]
            record = vtn.ctx.storage.offered.record_answer

            async def record_seen(*args: Any, **kwargs: Any) -> bool:
                done = await record(*args, **kwargs)
                answered.set()
                return done

            vtn.ctx.storage.offered.record_answer = record_seen  # type: ignore[method-assign]
            ven_id = (await ven.register()).ven_id
            await offered.offer_reports(vtn.ctx, ven_id, (metadata(),))
            async with asyncio.timeout(20):
                await confirmed.wait()
                sent = await offered.send_report_data(vtn.ctx, ven_id, "q-p", (interval(7.0),))
                report = await data.get()
                await answered.wait()
        assert report.report_request_id == "q-p"
        (send,) = await vtn.ctx.storage.offered.sends(ven_id)
        assert (send.request_id, send.response_code) == (sent, 200)

