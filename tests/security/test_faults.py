"""Faults around a running VTN: the database goes away, the disk fills, the VTN restarts in the
middle of a fan-out, and a VEN's clock is off. Each case states what the VEN sees and proves that
the VTN comes back by itself with nothing lost, corrupted or delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from devpki import Role
from schemas import (
    Codec,
    DistributeEvent,
    Message,
    Poll,
    Report,
    ReportInterval,
    ReportName,
    ReportPayload,
    Response,
    Signer,
    Target,
    UpdatedReport,
    UpdateReport,
)
from tests.kit.databases import fresh_postgres_database, postgres_url
from tests.kit.pki import Pki, cert_files
from tests.kit.telemetry import telemetry_data
from tests.kit.vtn import served_vtn, vtn_config
from tests.vtn.harness import RawVen, raw_ven, sample_event
from vtn.app import PUSH, STORAGE
from vtn.services import events
from vtn.signing import SignatureSettings

_XML = {"Content-Type": "application/xml"}


async def _post(ven: RawVen, service: str, message: Message) -> tuple[int, dict[str, str], bytes]:
    async with ven.session.post(f"{ven.url}/{service}", data=Codec().encode(message),
                                headers=_XML) as reply:
        return reply.status, dict(reply.headers), await reply.read()


class TcpGate:
    """A loopback TCP relay in front of PostgreSQL that the test can shut (refusing new connections
    and cutting open ones) and open again on the same port: a database outage on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in tuple(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}


@pytest.fixture
async def gated_postgres() -> AsyncIterator[tuple[str, TcpGate]]:
    """A fresh PostgreSQL database reached through a :class:`TcpGate` (skipped without a server)."""
    base = make_url(postgres_url())
    gate = TcpGate(base.host or "127.0.0.1", base.port or 5432)
    await gate.open()
    async for url in fresh_postgres_database():
        try:
            yield make_url(url).set(host="127.0.0.1", port=gate.port).render_as_string(
                hide_password=False), gate
        finally:
            with contextlib.suppress(AssertionError):
                await gate.shut()


def _log_event(logger: str, text: str) -> asyncio.Event:
    """An event set when ``logger`` logs a message containing ``text``."""
    happened = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                happened.set()

    logging.getLogger(logger).addHandler(Watch())
    return happened


def _push_task() -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "crowdflex-vtn-push"]
    return task


async def test_database_outage_answers_503_with_retry_after_and_recovers_alone(
        pki: Pki, gated_postgres: tuple[str, TcpGate]) -> None:
    url, gate = gated_postgres
    async with served_vtn(vtn_config(pki, url, retry_after_s=3, offer_metadata=False,
                                     push_retry_s=0.05)) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("through-the-outage")
        assert (await _post(ven, "OadrPoll", Poll(ven_id=ven.ven_id)))[0] == 200

        await gate.shut()
        paused = _log_event("vtn.push", "push delivery paused")
        vtn.app[PUSH].wake((ven.ven_id,))  # the push task meets the outage too
        async with asyncio.timeout(10):
            await paused.wait()
        assert not _push_task().done(), "push delivery died with the database"
        for message, service in ((Poll(ven_id=ven.ven_id), "OadrPoll"),
                                 (telemetry_data(ven.ven_id, "rr-1"), "EiReport")):
            status, headers, body = await _post(ven, service, message)
            assert status == 503, body
            assert headers["Retry-After"] == "3"
            # the kind only: the driver's words (host, port, user, file) stay in the log
            assert body in (b"database unreachable; nothing was applied, retry after 3 s",
                            b"database unavailable; nothing was applied, retry after 3 s"), body

        await gate.open()  # the same port: the VTN is not told, nor restarted
        status, _, body = await _post(ven, "OadrPoll", Poll(ven_id=ven.ven_id))
        assert status == 200, body
        status, _, body = await _post(ven, "EiReport", telemetry_data(ven.ven_id, "rr-1"))
        assert status == 200 and isinstance(Codec().decode(body), UpdatedReport)
        stored = await vtn.app[STORAGE].reports.points(
            ven.ven_id, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        assert len(stored) == 3  # the report refused during the outage was not half-stored
        assert not _push_task().done()


def _limit_pages(engine: Any, pages: int) -> None:
    @event.listens_for(engine, "connect")
    def _cap(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()


async def test_disk_full_is_a_clear_503_without_corruption(pki: Pki, tmp_path: Path) -> None:
    db = tmp_path / "vtn.db"
    config = vtn_config(pki, f"sqlite:///{db}", offer_metadata=False, retry_after_s=30)
    accepted = 0
    async with served_vtn(config) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("fills-the-disk")
        engine = vtn.app[STORAGE].engine
        with sqlite3.connect(db) as probe:
            pages = probe.execute("PRAGMA page_count").fetchone()[0]
        # SQLITE_FULL as a full disk raises it: the file may grow by 64 pages only.
        # Both engines: the repositories' hot paths run on the synchronous one.
        hot = vtn.app[STORAGE].sqlite_engine
        assert hot is not None
        for sync_engine in (engine.sync_engine, hot):
            _limit_pages(sync_engine, pages + 64)
        await engine.dispose()
        hot.dispose()
        status, headers, body = 200, {}, b""
        for batch in range(200):
            status, headers, body = await _post(ven, "EiReport", _big_report(ven.ven_id, batch))
            if status != 200:
                break
            accepted += 1
        assert status == 503, body
        assert headers["Retry-After"] == "30"
        assert body == b"database storage is full; nothing was applied, retry after 30 s", body
        assert accepted > 0
        status, _, _ = await _post(ven, "OadrPoll", Poll(ven_id=ven.ven_id))
        assert status == 200  # reading still works while writes are refused

    with sqlite3.connect(db) as probe:
        assert probe.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = probe.execute("SELECT count(*) FROM report_points").fetchone()[0]
    assert stored == accepted * _POINTS  # every accepted batch whole, the refused one not at all

    async with served_vtn(config) as vtn, raw_ven(vtn.url, pki.client_context()) as ven:
        ven.ven_id = (await vtn.app[STORAGE].vens.active())[0].ven_id
        status, _, _ = await _post(ven, "EiReport", _big_report(ven.ven_id, 999))
        assert status == 200  # room again (a fresh engine has no page cap): accepted


_POINTS = 60


def _big_report(ven_id: str, batch: int) -> Message:
    start = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=batch)
    report = Report(
        report_request_id="rr", report_specifier_id="spec-1", created_date_time=start,
        report_name=ReportName.TELEMETRY_USAGE, dtstart=start,
        intervals=tuple(ReportInterval(dtstart=start + timedelta(seconds=4 * i),
                                       duration=timedelta(seconds=4),
                                       payloads=(ReportPayload(r_id="meter-with-a-long-name",
                                                               value=float(i)),))
                        for i in range(_POINTS)),
    )
    return UpdateReport(request_id=f"u{batch}", reports=(report,), ven_id=ven_id)


async def _events_seen(ven: RawVen) -> list[str]:
    seen = []
    for message in await ven.drain():
        if isinstance(message, DistributeEvent):
            seen.extend(e.descriptor.event_id for e in message.events)
    return seen


async def test_restart_during_fan_out_delivers_to_every_ven_exactly_once(
        pki: Pki, tmp_path: Path) -> None:
    extra = tuple(
        cert_files(pki.authority.issue(f"fanout-{i}", Role.VEN), tmp_path) for i in range(4)
    )
    identities = (*pki.vens, *extra)
    now = [datetime.now(UTC)]
    config = vtn_config(pki, f"sqlite:///{tmp_path / 'vtn.db'}", offer_metadata=False)
    ven_ids: list[str] = []
    async with served_vtn(config, clock=lambda: now[0]) as vtn:
        for i, identity in enumerate(identities):
            async with raw_ven(vtn.url, pki.client_context(ven=identity)) as ven:
                await ven.register(f"fan-{i}")
                ven_ids.append(ven.ven_id)
        await events.publish_event(vtn.ctx, sample_event("ev-fan", Target(ven_ids=tuple(ven_ids))))
        first_half = len(identities) // 2
        for identity, ven_id in zip(identities[:first_half], ven_ids, strict=False):
            async with raw_ven(vtn.url, pki.client_context(ven=identity)) as ven:
                ven.ven_id = ven_id
                assert await _events_seen(ven) == ["ev-fan"]
        # A worker claimed the next VEN's item and died before its reply left (no mark).
        claimed = await vtn.ctx.storage.outbox.next_for(ven_ids[first_half], now=now[0])
        assert claimed is not None

    now[0] += timedelta(minutes=1)  # past the claim's lease
    async with served_vtn(config, clock=lambda: now[0]) as vtn:
        for identity, ven_id in zip(identities, ven_ids, strict=True):
            async with raw_ven(vtn.url, pki.client_context(ven=identity)) as ven:
                ven.ven_id = ven_id
                got = await _events_seen(ven)
                expected = [] if identities.index(identity) < first_half else ["ev-fan"]
                assert got == expected, (identity.name, got)
        for ven_id in ven_ids:
            assert await vtn.ctx.storage.outbox.pending_count(ven_id) == 0


async def test_clock_skew_beyond_the_window_is_refused_naming_the_skew(
        pki: Pki, tmp_path: Path) -> None:
    settings = SignatureSettings(trusted=(pki.ca_cert,), require=True,
                                 replay_max_future=timedelta(seconds=30))
    vtn_clock_ahead = timedelta(minutes=7)  # the VTN's clock runs 7 minutes fast
    config = vtn_config(pki, f"sqlite:///{tmp_path / 'vtn.db'}", signatures=settings)
    signer = Signer.from_files(pki.ven.key, pki.ven.cert)
    true_now = datetime.now(UTC)  # both clocks frozen: the skew is exact
    async with served_vtn(config, clock=lambda: true_now + vtn_clock_ahead) as vtn, \
            raw_ven(vtn.url, pki.client_context()) as ven:
        behind = Codec(signer=signer, clock=lambda: true_now)
        status, _, body = await _post_bytes(ven, behind.encode(Poll(ven_id="x")))
        reply = Codec().decode(body)
        assert status == 200 and isinstance(reply, Response)
        assert reply.response.code == 459
        assert "420 s old" in (reply.response.description or ""), reply.response.description

        ahead = Codec(signer=signer, clock=lambda: true_now + 2 * vtn_clock_ahead)
        _, _, body = await _post_bytes(ven, ahead.encode(Poll(ven_id="x")))
        reply = Codec().decode(body)
        assert isinstance(reply, Response) and reply.response.code == 459
        assert "420 s in the future" in (reply.response.description or "")


async def _post_bytes(ven: RawVen, body: bytes) -> tuple[int, dict[str, str], bytes]:
    async with ven.session.post(f"{ven.url}/OadrPoll", data=body, headers=_XML) as reply:
        return reply.status, dict(reply.headers), await reply.read()
