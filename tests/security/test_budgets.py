"""Finding 7 of the second security review: budgets inside valid documents. Real VTN, real mutual
TLS on loopback, SQLite file.

What it tried: re-registering METADATA over and over (each time the VTN answered new report
requests and kept every superseded one: 71,100 orphans after 79 messages); documents holding
more reports, descriptions, points or identifier characters than any VEN needs; and a VEN sending
big valid documents as fast as its request rate allowed, which spent the VTN's CPU and disk.
Each case asserts the work or the refusal -- never a time -- and that an honest VEN is served.
Every case runs on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import (
    CreatedReport,
    EiResponse,
    Message,
    Poll,
    RegisteredReport,
    RegisterReport,
    Report,
    ReportDescription,
    ReportInterval,
    ReportName,
    ReportPayload,
    Response,
    SamplingRate,
    UpdatedReport,
    UpdateReport,
)
from tests.kit.vtn import RunningVtn, running_vtn
from tests.vtn.harness import CODEC, RawVen, code_of, raw_ven
from vtn.signing import SignatureSettings

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = (NOW - timedelta(hours=1), NOW + timedelta(days=1))


def _metadata(specifier: str, devices: int) -> Report:
    return Report(
        report_request_id="0", report_specifier_id=specifier, created_date_time=NOW,
        report_name=ReportName.METADATA_TELEMETRY_USAGE, duration=timedelta(0),
        descriptions=tuple(
            ReportDescription(r_id=f"{specifier}-device-{n}", report_type="usage",
                              reading_type="Direct Read",
                              sampling_rate=SamplingRate(min_period=timedelta(seconds=4),
                                                         max_period=timedelta(minutes=1)))
            for n in range(devices)))


def _register(ven_id: str, specifiers: list[str], devices: int = 1) -> RegisterReport:
    return RegisterReport(request_id="reg", ven_id=ven_id,
                          reports=tuple(_metadata(s, devices) for s in specifiers))


def _update(ven_id: str, points: int, *, r_id: str = "rid-1", first: int = 0) -> UpdateReport:
    report = Report(
        report_request_id="rr-1", report_specifier_id="spec-1", created_date_time=NOW,
        report_name=ReportName.TELEMETRY_USAGE, dtstart=NOW,
        intervals=tuple(ReportInterval(dtstart=NOW + timedelta(seconds=4 * i),
                                       duration=timedelta(seconds=4),
                                       payloads=(ReportPayload(r_id=r_id, value=float(i)),))
                        for i in range(first, first + points)))
    return UpdateReport(request_id="upd", reports=(report,), ven_id=ven_id)


@asynccontextmanager
async def _scene(pki: Any, storage_url: str, **config: Any
                 ) -> AsyncIterator[tuple[RunningVtn, RawVen, RawVen]]:
    async with running_vtn(pki, storage_url, **config) as vtn, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[2])) as attacker, \
            raw_ven(vtn.url, pki.client_context(ven=pki.vens[3])) as honest:
        for ven in (attacker, honest):
            await ven.register()
            await ven.drain()
        yield vtn, attacker, honest


async def _status(ven: RawVen, service: str, message: Message) -> tuple[int, bytes]:
    async with ven.session.post(f"{ven.url}/{service}", data=CODEC.encode(message),
                                headers={"Content-Type": "application/xml"}) as reply:
        return reply.status, await reply.read()


async def _honest_poll_answered(honest: RawVen) -> None:
    assert isinstance(await honest.poll(), Message)  # RawVen.post asserts HTTP 200


async def test_reregistering_metadata_leaves_no_orphan_report_requests(pki, storage_url):
    """Tried: 12 oadrRegisterReports of 30 METADATA reports, alternately under the same and fresh
    reportSpecifierIDs, half of them confirmed with oadrCreatedReport. Each was answered 30
    requests; afterwards the VTN holds exactly the last 30 (was: 360, every superseded one)."""
    async with _scene(pki, storage_url) as (vtn, attacker, honest):
        answered: tuple[str, ...] = ()
        for round_ in range(12):
            specifiers = [f"spec-{round_ if round_ % 2 else 0}-{n}" for n in range(30)]
            reply = await attacker.post("EiReport", _register(attacker.ven_id, specifiers))
            assert isinstance(reply, RegisteredReport) and len(reply.report_requests) == 30
            answered = tuple(r.report_request_id for r in reply.report_requests)
            if round_ % 3 == 0:
                assert code_of(await attacker.post("EiReport", CreatedReport(
                    response=EiResponse(request_id="reg"), pending_reports=answered,
                    ven_id=attacker.ven_id))) == 200
            stored = await vtn.ctx.storage.reports.requests(attacker.ven_id)
            assert sorted(r.report_request_id for r in stored) == sorted(answered)
        descriptions = await vtn.ctx.storage.reports.descriptions(attacker.ven_id)
        assert len(descriptions) == 30
        await _honest_poll_answered(honest)


async def test_documents_over_the_caps_are_454_and_store_nothing(pki, storage_url):
    """Tried: 11 METADATA reports, 41 descriptions, 51 points, a 65-character rID, each one over
    a cap set low for the test; each is refused with 454 and nothing of it is stored, while the
    same documents at the caps are accepted."""
    caps = {"max_metadata_reports": 10, "max_report_descriptions": 40,
            "max_report_points": 50, "max_id_chars": 64}
    async with _scene(pki, storage_url, **caps) as (vtn, attacker, honest):
        me, reports = attacker.ven_id, vtn.ctx.storage.reports
        over = [
            _register(me, [f"s{n}" for n in range(11)]),
            _register(me, ["s0", "s1"], devices=21),
            _update(me, 51),
            _update(me, 1, r_id="r" * 65),
        ]
        for message in over:
            reply = await attacker.post("EiReport", message)
            assert code_of(reply) == 454, message
            assert isinstance(reply, Response)
            assert "cap" in (reply.response.description or "")
        assert await reports.descriptions(me) == ()
        assert await reports.requests(me) == ()
        assert await reports.points(me, *WINDOW) == ()
        # at the caps: accepted
        assert isinstance(await attacker.post("EiReport", _register(
            me, [f"s{n}" for n in range(10)], devices=4)), RegisteredReport)
        assert isinstance(await attacker.post("EiReport", _update(me, 50, r_id="r" * 64)),
                          UpdatedReport)
        assert len(await reports.points(me, *WINDOW)) == 50
        await _honest_poll_answered(honest)


async def test_a_ven_over_its_byte_budget_gets_429_while_others_are_served(pki, storage_url):
    """Tried: 110-point reports (~35 KB each) against a 64 KB byte budget refilling 1 byte/s.
    The first two are stored (the second puts the VEN in debt); the third is refused with 429
    and a Retry-After before its body is read, and not stored; the honest VEN's poll and report
    are answered."""
    async with _scene(pki, storage_url, byte_budget_per_s=1.0, byte_budget_burst=64 * 1024,
                      rate_limit_per_s=None) as (vtn, attacker, honest):
        me, reports = attacker.ven_id, vtn.ctx.storage.reports
        sizes = []
        for batch in range(2):
            message = _update(me, 110, first=110 * batch)
            sizes.append(len(CODEC.encode(message)))
            assert isinstance(await attacker.post("EiReport", message), UpdatedReport)
        assert sum(sizes) > 64 * 1024 > sizes[0]
        status, body = await _status(attacker, "EiReport", _update(me, 110, first=220))
        assert status == 429, body
        assert len(await reports.points(me, *WINDOW)) == 220
        await _honest_poll_answered(honest)
        assert isinstance(await honest.post("EiReport", _update(honest.ven_id, 100)),
                          UpdatedReport)


async def test_a_ven_over_its_cpu_budget_gets_429_while_others_are_served(pki, storage_url):
    """Tried: a 2,000-description oadrRegisterReport (some 700 KB) against a CPU budget of
    5 ms refilling 1 us/s. Decoding it alone costs far more than 5 ms (about 23 ms here), so the
    VEN is in debt after it: its next request, even a poll, is refused 429 with Retry-After
    before its body is read, and its second registration never reaches storage; the honest VEN
    is served. (The burst leaves room for each VEN's registration and queue drain, which cost
    0.4-0.8 ms here on either engine: a 1-ms burst refused one of them in a CI rehearsal.)"""
    async with _scene(pki, storage_url, cpu_budget_per_s=1e-6, cpu_budget_burst_s=0.005,
                      max_report_descriptions=2_000,
                      rate_limit_per_s=None) as (vtn, attacker, honest):
        me = attacker.ven_id
        heavy = _register(me, [f"s{n}" for n in range(20)], devices=100)
        assert isinstance(await attacker.post("EiReport", heavy), RegisteredReport)
        assert len(await vtn.ctx.storage.reports.descriptions(me)) == 20
        status, _ = await _status(attacker, "EiReport", _register(me, ["other"]))
        assert status == 429
        async with attacker.session.post(f"{attacker.url}/OadrPoll", data=b"",
                                         headers={"Content-Type": "application/xml"}) as poll:
            assert poll.status == 429 and int(poll.headers["Retry-After"]) >= 1
        assert len(await vtn.ctx.storage.reports.descriptions(me)) == 20
        await _honest_poll_answered(honest)



@pytest.mark.parametrize("signatures", [False, True], ids=["plain", "signature-checking"])
async def test_decoding_is_charged_to_the_cpu_budget_with_and_without_signatures(
        pki, tmp_path: Path, signatures: bool):
    """Tried (red team of issue 14): a 2,500-point oadrUpdateReport (some 770 KB, tens of ms to
    decode, a small reply) against a CPU budget of 10 ms, on a plain VTN and on one with
    ``[signatures] trusted`` set, whose documents go through the signed intake
    (:class:`vtn.signing.SignedIntake`); the report is unsigned (signatures are not required).
    On both its decoding is charged, so the VEN's next request is 429 and the honest VEN is
    served (was, with signatures configured: the signed intake charged nothing, so the CPU
    budget counted only the replies and the next request was served)."""
    extra: dict[str, Any] = (
        {"signatures": SignatureSettings(trusted=(pki.ca_cert,))} if signatures else {})
    async with _scene(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                      cpu_budget_per_s=1e-6, cpu_budget_burst_s=0.01, rate_limit_per_s=None,
                      byte_budget_per_s=None, **extra) as (vtn, attacker, honest):
        me = attacker.ven_id
        assert isinstance(await attacker.post("EiReport", _update(me, 2_500)), UpdatedReport)
        status, _ = await _status(attacker, "OadrPoll", Poll(ven_id=me))
        assert status == 429
        assert len(await vtn.ctx.storage.reports.points(me, *WINDOW)) == 2_500
        await _honest_poll_answered(honest)
