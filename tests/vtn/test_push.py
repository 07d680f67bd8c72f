"""HTTP push: a VEN registered with a transport address and httpPullModel=false gets queued
payloads POSTed to it over mutual TLS; its reply (oadrCreatedEvent) is processed like a post."""

from __future__ import annotations

import asyncio

from aiohttp import web

from schemas import (
    CreatedEvent,
    DistributeEvent,
    EiResponse,
    EventResponse,
    OptType,
    RegisteredReport,
    RegisterReport,
    Target,
)
from vtn.services import Handlers, events
from vtn.storage import OptType as StoredOpt

from .harness import CODEC, raw_ven, running_vtn, sample_event


async def test_events_are_pushed_and_the_reply_ack_is_stored(pki, storage_url):
    received: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    acked = asyncio.Event()
    ven_id = pki.ven.fingerprint

    async def endpoint(request: web.Request) -> web.Response:
        message = CODEC.decode(await request.read())
        await received.put((request.match_info["service"], message))
        if isinstance(message, DistributeEvent):
            reply: object = CreatedEvent(
                response=EiResponse(request_id=message.request_id), ven_id=ven_id,
                event_responses=tuple(EventResponse(
                    request_id=message.request_id, event_id=e.event_id,
                    modification_number=e.modification_number, opt_type=OptType.OPT_IN)
                    for e in message.events))
        else:
            reply = RegisteredReport(response=EiResponse(), ven_id=ven_id)
        return web.Response(body=CODEC.encode(reply), content_type="application/xml")

    ven_app = web.Application()
    ven_app.router.add_post("/push/{service}", endpoint)
    runner = web.AppRunner(ven_app)
    await runner.setup()
    # the push VEN serves with a certificate for 127.0.0.1 and demands the VTN's client cert
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.server_context())
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        handlers = Handlers(on_event_response=lambda v, r: acked.set())
        async with running_vtn(pki, storage_url, handlers=handlers) as vtn, \
                raw_ven(vtn.url, pki.client_context()) as ven:
            await ven.register("push-ven", http_pull_model=False,
                               transport_address=f"https://127.0.0.1:{port}/push")
            async with asyncio.timeout(10):
                service, first = await received.get()
            assert (service, type(first)) == ("EiReport", RegisterReport)

            await events.publish_event(vtn.ctx, sample_event("push-1", Target(ven_ids=(ven_id,))))
            async with asyncio.timeout(10):
                service, pushed = await received.get()
                await acked.wait()
            assert service == "EiEvent" and isinstance(pushed, DistributeEvent)
            assert [e.event_id for e in pushed.events] == ["push-1"]
            (delivery,) = await vtn.ctx.storage.events.deliveries("push-1")
            assert delivery.ack_opt_type is StoredOpt.OPT_IN
            assert await vtn.ctx.storage.outbox.pending_count(ven_id) == 0
    finally:
        await runner.cleanup()
