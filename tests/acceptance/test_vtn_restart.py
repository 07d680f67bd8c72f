"""Acceptance (issue 3): the VTN process is killed with SIGKILL while 50 VENs are mid-exchange and
restarted on the same database; no registration, queued event, ack or received report is lost or
duplicated, and the VENs carry on without manual action.

At the kill: 40 VENs are polling, acking a just-published event and flushing reports from their
outboxes; 10 more are registering. During the outage the 40 queue more reports. After the restart
a second event goes to all 50. The VENs' own loops (back-off, re-registration, oadrRequestEvent
resync, outbox flusher) do the rest; the test only waits and then reads the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas import Event, ReportInterval, ReportPayload, ReportRequest
from tests.kit.pki import CertFiles, Pki
from tests.kit.telemetry import telemetry_descriptions
from ven import Backoff, Connection, Hooks, Outbox, VenClient, VenSettings
from vtn.storage import OptType, open_storage

from . import VtnProcess, mint_vens

EARLY, LATE = 40, 10
REPORTS_BEFORE, REPORTS_DURING = 3, 3
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
FAST = Backoff(base=0.2, cap=2.0)


def _event_body(event_id: str, ven_ids: list[str]) -> dict[str, object]:
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    return {"event_id": event_id, "market_context": "http://cbp.example/afrr",
            "start": start.isoformat(), "targets": {"ven_ids": ven_ids},
            "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                         "intervals": [{"duration_s": 900, "value": 4.0}]}],
            "response_required": "always"}


def _interval(index: int) -> tuple[ReportInterval, ...]:
    return (ReportInterval(dtstart=T0 + timedelta(seconds=4 * index),
                           duration=timedelta(seconds=4),
                           payloads=(ReportPayload(r_id="meter-1", value=float(index)),)),)


class Fleet:
    """50 VenClients in this process, one certificate each, one shared durable outbox."""

    def __init__(self, pki: Pki, certs: tuple[CertFiles, ...], url: str, outbox: Outbox) -> None:
        self.seen: Counter[tuple[str, str, int]] = Counter()
        self.clients = [
            VenClient(VenSettings(
                ven_name=cert.name, outbox_key=cert.name,
                connection=Connection(vtn_url=url, ssl_context=pki.client_context(ven=cert),
                                      poll_interval=0.5, backoff=FAST, request_timeout=30.0),
                hooks=Hooks(on_event=self._handler(cert.fingerprint))), outbox=outbox)
            for cert in certs]

    def _handler(self, ven_id: str):  # type: ignore[no-untyped-def]
        def on_event(event: Event) -> str:
            self.seen[(ven_id, event.event_id, event.modification_number)] += 1
            return "optIn"
        return on_event


async def _acks(storage_url: str, event_id: str) -> dict[str, OptType | None]:
    async with await open_storage(storage_url, migrate=False) as storage:
        return {d.ven_id: d.ack_opt_type for d in await storage.events.deliveries(event_id)}


async def _wait_for(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.1)  # re-check interval, bounded by the timeout
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_sigkill_with_50_vens_mid_exchange_loses_and_duplicates_nothing(
    pki: Pki, tmp_path: Path
) -> None:
    # SQLite only: on two cores the run takes about a minute; PostgreSQL crash-safety is covered
    # by the outbox acceptance test and the storage tests.
    storage_url = f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}"
    certs = mint_vens(pki, tmp_path, EARLY + LATE, "fleet")
    ids = [c.fingerprint for c in certs]
    early, late = ids[:EARLY], ids[EARLY:]
    vtn = VtnProcess(pki, storage_url, tmp_path)
    try:
        await vtn.start()
        async with await Outbox.open(tmp_path / "outbox.sqlite") as outbox:
            fleet = Fleet(pki, certs, vtn.url, outbox)
            for client in fleet.clients:
                await client.start()
            try:
                requests = await _before_the_kill(fleet, vtn)
                await vtn.kill()
                for index, client in enumerate(fleet.clients[:EARLY]):
                    for k in range(REPORTS_BEFORE, REPORTS_BEFORE + REPORTS_DURING):
                        await client.send_report(requests[index].report_request_id, _interval(k))
                await vtn.start()
                await _after_the_restart(fleet, vtn, storage_url, early, ids)
            finally:
                for client in fleet.clients:
                    await client.close()
    finally:
        await vtn.stop()

    async with await open_storage(storage_url) as storage:
        active = await storage.vens.active()
        assert sorted(v.ven_id for v in active) == sorted(ids)  # each once, none lost
        for index, ven_id in enumerate(early):
            points = await storage.reports.points(ven_id, T0, T0 + timedelta(hours=1))
            assert [p.value for p in points] == [
                float(k) for k in range(REPORTS_BEFORE + REPORTS_DURING)], ven_id
            assert {p.report_request_id for p in points} == {requests[index].report_request_id}
        for ven_id in late:
            assert await storage.reports.points(ven_id, T0, T0 + timedelta(hours=1)) == ()
    assert await _acks(storage_url, "before-kill") == dict.fromkeys(early, OptType.OPT_IN)
    assert await _acks(storage_url, "after-restart") == dict.fromkeys(ids, OptType.OPT_IN)
    # every VEN's application saw each event version exactly once
    assert fleet.seen == Counter({(v, "before-kill", 0): 1 for v in early}) + Counter(
        {(v, "after-restart", 0): 1 for v in ids})


async def _before_the_kill(fleet: Fleet, vtn: VtnProcess) -> list[ReportRequest]:
    """Register the first 40 with a report each, start them all, publish an event, queue reports;
    returns the 40 accepted report requests. The kill follows at once."""
    first = fleet.clients[:EARLY]
    await asyncio.gather(*(c.register() for c in first))
    offered = await asyncio.gather(*(c.register_reports(telemetry_descriptions()) for c in first))
    requests = [only for (only,) in offered]
    for client in first:
        client.start_polling()
    status, body = await vtn.admin("POST", "/events", _event_body(
        "before-kill", [c.registration.ven_id for c in first if c.registration]))
    assert status == 201, body
    for client in fleet.clients[EARLY:]:
        client.start_polling()  # these register while the VTN dies
    for index, client in enumerate(first):
        for k in range(REPORTS_BEFORE):
            await client.send_report(requests[index].report_request_id, _interval(k))
    return requests


async def _after_the_restart(fleet: Fleet, vtn: VtnProcess, storage_url: str,
                             early: list[str], ids: list[str]) -> None:
    async def all_registered() -> bool:
        return all(c.registration is not None for c in fleet.clients)

    await _wait_for(all_registered, "all 50 VENs to be registered again")
    status, body = await vtn.admin("POST", "/events", _event_body("after-restart", ids))
    assert status == 201, body

    async def all_acked() -> bool:
        before, after = (await _acks(storage_url, "before-kill"),
                         await _acks(storage_url, "after-restart"))
        return (sum(v is not None for v in before.values()) == len(early)
                and sum(v is not None for v in after.values()) == len(ids))

    await _wait_for(all_acked, "every ack of both events")
    for client in fleet.clients:
        await client.flush_reports()  # the flusher's lock: nothing left in flight afterwards
