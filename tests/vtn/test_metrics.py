"""/metrics, /health and /ready on the admin port of a VTN served as ``crowdflex vtn`` serves it
(:func:`vtn.serve.serve_vtn`: real mutual TLS on 127.0.0.1 port 0, SQLite file or PostgreSQL).

The test tallies every answer its VENs receive and checks that the scraped counters moved by
exactly that much; figures read from the database (VENs registered, queue depth, oldest item's age
on an injected clock) are exact too. On PostgreSQL every transaction counts one wait for a pooled
connection, and each scrape measures a notification's lag with a probe. /ready follows the
database: 503 while its schema is not at the head revision or while PostgreSQL refuses connections,
200 again once it is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from schemas import CreatePartyRegistration, Message, Poll, RegisteredReport, Response, Service
from tests.kit.admin import offer
from tests.kit.clock import Clock
from tests.kit.polling import drain_polls
from tests.kit.signed import signed_ven
from tests.kit.vtn import vtn_config
from vtn.app import STORAGE
from vtn.metrics import CLIENT_GONE, VtnMetrics
from vtn.ops import DATABASE_DEADLINE_S
from vtn.serve import Served, serve_vtn
from vtn.signing import SignatureSettings
from vtn.transport import SERVICE_PREFIX

from .harness import CODEC, LOOPBACK_PUSH, push_receiver, push_ven_tls, raw_ven

TOKEN = "metrics-test-admin-token-0123"
BURST = 40  # the flooding VEN's 41st request is over its limit (refill: 1 token in 1,000 s)
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@dataclass
class Tally:
    """What the VENs saw: (service, HTTP status) and (service, OpenADR error code) counts."""

    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)

    def saw(self, service: str, status: int, reply: Message | None) -> None:
        self.answers[service, str(status)] += 1
        if isinstance(reply, Response) and reply.response.code != 200:
            self.refusals[service, str(reply.response.code)] += 1


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text)
                        for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.samples
                 if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(found)


@asynccontextmanager
async def served(pki: Any, storage_url: str, clock: Clock,
                 **overrides: Any) -> AsyncIterator[Served]:
    config = vtn_config(pki, storage_url, host="127.0.0.1", admin_port=0, admin_token=TOKEN,
                        rate_limit_per_s=0.001, rate_limit_burst=BURST, **overrides)
    async with serve_vtn(config, clock=clock) as running:
        listener = running.app[STORAGE].listener
        if listener is not None:  # PostgreSQL: polls are answered from memory once it listens
            await listener.until(lambda: listener.connections >= 1)
        yield running


class Admin:
    """The admin port: the open endpoints, and the token for the rest."""

    def __init__(self, session: aiohttp.ClientSession, running: Served) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{running.admin_port}"

    async def get(self, path: str, *, token: bool = False) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
        async with self.session.get(self.base + path, headers=headers) as reply:
            return reply.status, await reply.text()

    async def scrape(self) -> Scrape:
        async with self.session.get(self.base + "/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return Scrape(await reply.text())

    async def publish(self, ven_id: str, event_id: str) -> None:
        start = (T0 + timedelta(minutes=10)).isoformat()
        body = {"event_id": event_id, "market_context": "http://cbp.example/mc",
                "start": start, "targets": {"ven_ids": [ven_id]},
                "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                             "intervals": [{"duration_s": 900, "value": 2.0}]}]}
        async with self.session.post(self.base + "/events", json=body,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
            assert reply.status == 201, await reply.text()


async def _post(session: aiohttp.ClientSession, url: str, service: str, message: Message,
                tally: Tally) -> Message | None:
    async with session.post(f"{url}/{service}", data=CODEC.encode(message),
                            headers={"Content-Type": "application/xml"}) as reply:
        body = await reply.read()
        decoded = CODEC.decode(body) if reply.status == 200 else None
        tally.saw(service, reply.status, decoded)
        return decoded


def _url(running: Served) -> str:
    return f"https://127.0.0.1:{running.port}{SERVICE_PREFIX}"


def _moved(before: Scrape, after: Scrape) -> Callable[..., float]:
    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)
    return delta


async def test_counters_move_with_the_traffic(pki, storage_url):
    clock, tally = Clock(T0), Tally()
    async with served(pki, storage_url, clock) as running, \
            aiohttp.ClientSession() as http, \
            raw_ven(_url(running), pki.client_context()) as ven, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                ssl=pki.client_context(ven=pki.vens[1]))) as flood:
        admin = Admin(http, running)
        assert await admin.get("/health") == (200, "alive\n")
        assert await admin.get("/ready") == (200, "ready\n")
        assert (await admin.get("/vens"))[0] == 401  # the rest still needs the token
        assert (await admin.get("/vens", token=True))[0] == 200
        before = await admin.scrape()

        url = _url(running)
        registered = await _post(ven.session, url, "EiRegisterParty",
                                 _registration(), tally)
        ven.ven_id = getattr(registered, "ven_id", "")
        assert ven.ven_id
        await drain_polls(  # what registration queued (report requests)
            lambda: _post(ven.session, url, "OadrPoll", Poll(ven_id=ven.ven_id), tally),
            ven.ven_id)
        assert isinstance(await _post(ven.session, url, "EiReport",
                                      offer("spec-1", "a"), tally), RegisteredReport)
        wrong = await _post(ven.session, url, "OadrPoll", Poll(ven_id="not-this-ven"), tally)
        assert isinstance(wrong, Response) and wrong.response.code != 200
        for _ in range(BURST + 1):  # an unregistered VEN: refused, then over its rate limit
            await _post(flood, url, "OadrPoll", Poll(ven_id="stranger"), tally)
        assert tally.answers["OadrPoll", "429"] == 1

        clock.now = T0
        await admin.publish(ven.ven_id, "ev-queued")
        clock.now = T0 + timedelta(seconds=42)
        after = await admin.scrape()

    # README: /health, /ready and /metrics, open without the token, "show counts, never a VEN
    # or an event"
    for secret in (ven.ven_id, ven.ven_id.replace(":", ""), "metrics-ven", "ev-queued",
                   "stranger", "not-this-ven", "spec-1"):
        assert secret.lower() not in after.text.lower()
    moved = _moved(before, after)
    for (service, status), count in tally.answers.items():
        assert moved("crowdflex_vtn_requests_total", service=service, status=status) == count
    assert moved("crowdflex_vtn_requests_total") == sum(tally.answers.values())
    for (service, code), count in tally.refusals.items():
        assert moved("crowdflex_vtn_refusals_total", service=service, code=code) == count
    assert moved("crowdflex_vtn_refusals_total") == sum(tally.refusals.values())
    for service in {s for s, _ in tally.answers}:
        answered = sum(n for (s, _), n in tally.answers.items() if s == service)
        assert moved("crowdflex_vtn_request_duration_seconds_count", service=service) == answered
    assert moved("crowdflex_vtn_db_transaction_duration_seconds_count", kind="read") > 0
    assert moved("crowdflex_vtn_db_transaction_duration_seconds_count", kind="write") > 0
    assert moved("crowdflex_vtn_signature_refusals_total") == 0
    assert after.value("crowdflex_vtn_vens_registered") == 1
    # two client certificates connected, but the flooding one's 429 closed its connection
    assert after.value("crowdflex_vtn_vens_connected") == 1
    assert after.value("crowdflex_vtn_connections_open") >= 1
    assert after.value("crowdflex_vtn_queue_depth") == 1  # the event, not yet polled
    assert after.value("crowdflex_vtn_queue_oldest_age_seconds") == 42
    assert after.value("crowdflex_vtn_database_up") == 1
    assert after.value("crowdflex_vtn_poll_index_live") == 1  # SQLite, or heard on PostgreSQL
    transactions = moved("crowdflex_vtn_db_transaction_duration_seconds_count")
    if _sqlite_path(storage_url) is None:  # PostgreSQL: each transaction took a pooled one
        # (give or take one: the push task's read after an enqueue may be mid-way, counted
        # as a wait but not yet as a transaction, at either scrape)
        assert transactions > 0
        assert abs(moved("crowdflex_vtn_db_pool_wait_seconds_count") - transactions) <= 1
        # each scrape's probe notification went to PostgreSQL and back to this worker
        assert before.value("crowdflex_vtn_notification_lag_seconds") > 0
        assert after.value("crowdflex_vtn_notification_lag_seconds") > 0
    else:  # SQLite's transactions queue for its threads, not a pool; nothing to notify
        assert after.value("crowdflex_vtn_db_pool_wait_seconds_count") == 0
        assert after.value("crowdflex_vtn_notification_lag_seconds") == 0


def _registration() -> Message:
    return CreatePartyRegistration(request_id="r1", ven_name="metrics-ven", http_pull_model=True)


def _sqlite_path(storage_url: str) -> Path | None:
    url = make_url(storage_url)
    return Path(url.database or "") if url.get_backend_name() == "sqlite" else None


async def test_ready_only_at_the_head_revision(pki, storage_url):
    """A database whose schema is not the one this VTN migrates to is not ready."""
    async with served(pki, storage_url, Clock(T0)) as running, aiohttp.ClientSession() as http:
        admin = Admin(http, running)
        assert (await admin.get("/ready"))[0] == 200
        (head,) = await _alembic_version(storage_url, None)
        await _alembic_version(storage_url, "0000older")
        status, text = await admin.get("/ready")
        assert status == 503
        assert "0000older" in text and head in text and "migrations" in text
        await _alembic_version(storage_url, head)
        assert (await admin.get("/ready"))[0] == 200


async def _alembic_version(storage_url: str, new: str | None) -> tuple[str, ...]:
    """The stored revision(s); with ``new``, first replace it."""
    path = _sqlite_path(storage_url)
    if path is not None:
        with sqlite3.connect(path) as conn:
            if new is not None:
                conn.execute("UPDATE alembic_version SET version_num = ?", (new,))
            return tuple(r[0] for r in conn.execute("SELECT version_num FROM alembic_version"))
    conn = await asyncpg.connect(_dsn(storage_url))
    try:
        if new is not None:
            await conn.execute("UPDATE alembic_version SET version_num = $1", new)
        return tuple(r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version"))
    finally:
        await conn.close()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_ready_and_requests_follow_a_database_that_goes_away(pki, storage_url):
    """PostgreSQL refusing connections: /ready and the VEN port answer 503 (counted), /metrics
    still answers and says the database is down; all is well again once it is back."""
    clock, tally = Clock(T0), Tally()
    database = make_url(storage_url).database
    async with served(pki, storage_url, clock) as running, aiohttp.ClientSession() as http, \
            raw_ven(_url(running), pki.client_context()) as ven:
        admin = Admin(http, running)
        await ven.register()
        await ven.drain()
        before = await admin.scrape()
        owner = await asyncpg.connect(_dsn(storage_url).rsplit("/", 1)[0] + "/postgres")
        try:
            await owner.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await owner.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1", database)
            listener = running.app[STORAGE].listener
            assert listener is not None
            await listener.until(lambda: listener.losses >= 1)
            status, text = await admin.get("/ready")
            # the kind only: asyncpg's words name the database; they go to the log
            assert (status, text) == (503, "not ready: database unavailable\n"), text
            await _post(ven.session, _url(running), "OadrPoll", Poll(ven_id=ven.ven_id), tally)
            assert tally.answers == Counter({("OadrPoll", "503"): 1})
            down = await admin.scrape()
            assert down.value("crowdflex_vtn_database_up") == 0
            assert down.value("crowdflex_vtn_poll_index_live") == 0  # its listener is gone too
            assert _moved(before, down)("crowdflex_vtn_requests_total",
                                        service="OadrPoll", status="503") == 1
        finally:
            await owner.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await owner.close()
        assert await admin.get("/ready") == (200, "ready\n")
        assert isinstance(await ven.poll(), Response)
        assert (await admin.scrape()).value("crowdflex_vtn_database_up") == 1


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_a_database_that_hangs_is_not_ready_within_the_deadline(pki, storage_url):
    """docs/deploy.md: /ready is 503 when the database does not answer within 5 s, and /metrics
    answers without the database figures; neither probe hangs. Another session holds exclusive
    locks on the tables both read, so their queries wait (the probes are awaited, not timed)."""
    async with served(pki, storage_url, Clock(T0)) as running, aiohttp.ClientSession() as http:
        admin = Admin(http, running)
        assert await admin.get("/ready") == (200, "ready\n")
        assert (await admin.scrape()).value("crowdflex_vtn_database_up") == 1
        blocker = await asyncpg.connect(_dsn(storage_url))
        locks = blocker.transaction()
        await locks.start()
        try:
            await blocker.execute("LOCK TABLE alembic_version, vens, outbox IN ACCESS EXCLUSIVE "
                                  "MODE")
            async with asyncio.timeout(6 * DATABASE_DEADLINE_S):  # bounds a failure, never met
                status, text = await admin.get("/ready")
                scraped = await admin.scrape()
            assert status == 503
            assert f"did not answer within {DATABASE_DEADLINE_S} s" in text
            assert scraped.value("crowdflex_vtn_database_up") == 0
        finally:
            await locks.rollback()
            await blocker.close()
        assert await admin.get("/ready") == (200, "ready\n")
        assert (await admin.scrape()).value("crowdflex_vtn_database_up") == 1


async def test_push_retries_are_counted(pki, tmp_path):
    """A push VEN that answers 503: every failed push is a retry (counted before the next)."""
    hits: list[int] = []
    third = asyncio.Event()

    async def refuse(_request: web.Request) -> web.Response:
        hits.append(1)
        if len(hits) == 3:
            third.set()
        return web.Response(status=503)

    tls = push_ven_tls(pki, tmp_path)
    async with push_receiver(tls.server, refuse) as address, \
            served(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}", Clock(T0), push_retry_s=0.01,
                   push_allow_private_targets=LOOPBACK_PUSH) as running, \
            aiohttp.ClientSession() as http, raw_ven(_url(running), tls.client) as ven:
        admin = Admin(http, running)
        before = await admin.scrape()
        await ven.register("push-ven", http_pull_model=False, transport_address=address)
        async with asyncio.timeout(10):
            await third.wait()  # two failures were counted before the third attempt
        after = await admin.scrape()
    assert _moved(before, after)("crowdflex_vtn_push_retries_total") >= 2


async def test_signature_and_replay_refusals_are_counted(pki, tmp_path):
    signatures = SignatureSettings(trusted=(pki.ca_cert,), require=True)
    now = Clock(datetime.now(UTC))  # certificates and ReplayProtect are checked on it
    async with served(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}", now,
                      signatures=signatures) as running, aiohttp.ClientSession() as http, \
            signed_ven(_url(running), pki, pki.ven) as ven:
        admin = Admin(http, running)
        before = await admin.scrape()
        await ven.register()
        unsigned = await ven.send("OadrPoll", CODEC.encode(Poll(ven_id=ven.ven_id)))
        assert isinstance(unsigned, Response) and unsigned.response.code == 459
        body = ven.poll_body()
        assert isinstance(await ven.send("OadrPoll", body), Message)
        replayed = await ven.send("OadrPoll", body)
        assert isinstance(replayed, Response) and replayed.response.code == 459
        after = await admin.scrape()
    moved = _moved(before, after)
    assert moved("crowdflex_vtn_signature_refusals_total", reason="signature") == 1
    assert moved("crowdflex_vtn_signature_refusals_total", reason="replay") == 1
    assert moved("crowdflex_vtn_refusals_total", service="OadrPoll", code="459") == 2


@pytest.mark.parametrize("created", [True, False], ids=["created series", "no created series"])
def test_requests_and_latency_are_exposed_as_prometheus_client_exposes_them(
        monkeypatch: pytest.MonkeyPatch, created: bool) -> None:
    """The request counter and latency histogram, kept as plain numbers, read at a scrape exactly
    as a prometheus_client ``Counter`` and ``Histogram`` given the same requests would: the same
    text, byte for byte (``_created`` included, or left out as PROMETHEUS_DISABLE_CREATED_SERIES
    asks)."""
    monkeypatch.setattr(time, "time", lambda: 1_796_659_339.25)  # the _created samples' clock
    monkeypatch.setattr(prometheus_metrics, "_use_created", created)
    services = sorted(s.value for s in Service)
    metrics = VtnMetrics()
    reference = CollectorRegistry()
    requests = PromCounter("crowdflex_vtn_requests",
                           "VEN-facing requests answered, by service and HTTP status",
                           ("service", "status"), registry=reference)
    latency = Histogram("crowdflex_vtn_request_duration_seconds",
                        "Time to answer a VEN-facing request", ("service",),
                        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1.0, 2.5, 5.0, 10.0), registry=reference)
    known = {s: latency.labels(s) for s in (*{s.value for s in Service}, "none")}
    answers = [("OadrPoll", 200, 0.0002), ("EiReport", 200, 0.0005), ("nothing", 404, 0.001),
               ("OadrPoll", 429, 12.5), ("EiEvent", 503, 0.0), ("OadrPoll", 200, 0.00051),
               ("EiOpt", CLIENT_GONE, 10.0), ("OadrPoll", 200, 1e-7)]
    for service, status, seconds in answers:
        metrics.answered(service, status, seconds)
        counted = service if service in services else "none"
        known[counted].observe(seconds)
        requests.labels(counted, str(status)).inc()
    ours = [line for line in metrics.exposition().decode().splitlines()
            if "crowdflex_vtn_request_duration_seconds" in line
            or "crowdflex_vtn_requests_" in line]
    assert ours == generate_latest(reference).decode().splitlines()
