"""The admin JSON API against a running VTN: bearer token, VENs, events with per-VEN acks,
report subscriptions and data, opts, re-registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from schemas import (
    CreatedEvent,
    CreateReport,
    DistributeEvent,
    EiResponse,
    EventResponse,
    OptType,
    RequestReregistration,
)
from vtn.admin import create_admin_app
from vtn.app import SERVICES

from .harness import code_of, raw_ven, running_vtn

TOKEN = "test-admin-token-0123456789"


@asynccontextmanager
async def admin_client(vtn_app: web.Application, token: str = TOKEN
                       ) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner = web.AppRunner(create_admin_app(lambda: vtn_app[SERVICES], token=TOKEN))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            yield session, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_short_token_is_refused():
    with pytest.raises(ValueError):
        create_admin_app(lambda: None, token="short")  # type: ignore[arg-type,return-value]


async def test_wrong_token_is_401(pki, tmp_path):
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}") as vtn, \
            admin_client(vtn.app, token="not-the-token-at-all") as (http, base):
        async with http.get(f"{base}/vens") as reply:
            assert reply.status == 401
        async with http.get(f"{base}/vens", headers={"Authorization": ""}) as reply:
            assert reply.status == 401


async def test_admin_drives_events_reports_and_registration(pki, storage_url):
    async with running_vtn(pki, storage_url) as vtn, admin_client(vtn.app) as (http, base), \
            raw_ven(vtn.url, pki.client_context()) as ven:
        await ven.register("admin-ven")
        await ven.drain()
        async with http.get(f"{base}/vens") as reply:
            (listed,) = (await reply.json())["vens"]
        assert listed["ven_id"] == ven.ven_id and listed["ven_name"] == "admin-ven"

        async with http.put(f"{base}/vens/{ven.ven_id}/memberships",
                            json={"groups": ["pool-7"]}) as reply:
            assert reply.status == 200
        start = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        event = {"event_id": "adm-1", "market_context": "http://cbp.example/mc", "start": start,
                 "targets": {"group_ids": ["pool-7"]},
                 "signals": [{"name": "LOAD_DISPATCH", "type": "setpoint",
                              "intervals": [{"duration_s": 900, "value": 3.0}]}]}
        async with http.post(f"{base}/events", json=event) as reply:
            assert reply.status == 201
            assert (await reply.json())["targeted"] == [ven.ven_id]
        async with http.post(f"{base}/events", json=event) as reply:
            assert reply.status == 409
        async with http.post(f"{base}/events", json={**event, "event_id": "x",
                                                     "start": "2030-01-01T00:00:00"}) as reply:
            assert reply.status == 400  # naive time

        (sent,) = await ven.drain()
        assert isinstance(sent, DistributeEvent)
        assert sent.events[0].signals[0].intervals[0].value == 3.0
        ack = CreatedEvent(response=EiResponse(), ven_id=ven.ven_id, event_responses=(
            EventResponse(request_id=sent.request_id, event_id="adm-1", modification_number=0,
                          opt_type=OptType.OPT_OUT),))
        assert code_of(await ven.post("EiEvent", ack)) == 200
        async with http.get(f"{base}/events/adm-1") as reply:
            (delivery,) = (await reply.json())["deliveries"]
        assert delivery["opt_type"] == "optOut" and delivery["ack_modification_number"] == 0

        async with http.put(f"{base}/events/adm-1", json=event) as reply:
            assert (await reply.json())["modification_number"] == 1
        async with http.post(f"{base}/events/adm-1/cancel") as reply:
            body = await reply.json()
        assert body["status"] == "cancelled" and body["modification_number"] == 2
        async with http.post(f"{base}/events/nope/cancel") as reply:
            assert reply.status == 404

        async with http.post(f"{base}/vens/{ven.ven_id}/reports/subscriptions",
                             json={"report_specifier_id": "spec-9", "r_ids": ["a", "b"],
                                   "granularity_s": 60}) as reply:
            assert reply.status == 201
            rrid = (await reply.json())["report_request_id"]
        async with http.post(f"{base}/vens/{ven.ven_id}/reregister") as reply:
            assert reply.status == 202
        queued = await ven.drain()
        kinds = [type(m) for m in queued]
        assert kinds.count(CreateReport) == 1 and kinds[-1] is RequestReregistration
        async with http.get(f"{base}/vens/{ven.ven_id}/reports") as reply:
            (sub,) = (await reply.json())["subscriptions"]
        assert sub["report_request_id"] == rrid and sub["status"] == "pending"
        async with http.delete(f"{base}/vens/{ven.ven_id}/reports/subscriptions/{rrid}") as r:
            assert r.status == 200
        async with http.get(f"{base}/vens/{ven.ven_id}/reports/data") as reply:
            assert (await reply.json())["points"] == []
        async with http.get(f"{base}/vens/{ven.ven_id}/opts") as reply:
            assert (await reply.json())["opts"] == []
        async with http.get(f"{base}/vens/unknown/opts") as reply:
            assert reply.status == 404
