"""A VTN reply larger than one TLS record, written in small pieces, is read whole by the VEN.

What was tried: a 300-event oadrDistributeEvent (~300 KB) streamed in 4 KB awaited writes
so the body reaches the VEN across many reads; and a reply over the VEN's cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from schemas import Codec, Service
from tests.kit.pki import Pki
from ven import VtnRefused
from ven._http import VtnLink

from .conftest import SERVICE_PATH
from .scripts import distribute, event

_BIG = Codec().encode(distribute(*(event(f"event-{n:04d}", 0) for n in range(300))))


@asynccontextmanager
async def trickling_vtn(pki: Pki) -> AsyncIterator[str]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        await request.read()
        reply = web.StreamResponse(headers={"Content-Type": "application/xml"})
        reply.content_length = len(_BIG)
        await reply.prepare(request)
        for start in range(0, len(_BIG), 4096):
            await reply.write(_BIG[start:start + 4096])
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post(SERVICE_PATH + "/{service}", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=pki.server_context()).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}{SERVICE_PATH}"
    finally:
        await runner.cleanup()


async def test_a_reply_in_many_pieces_is_read_whole(pki: Pki) -> None:
    assert len(_BIG) > 200_000
    async with trickling_vtn(pki) as url:
        link = VtnLink(url, pki.client_context(), Codec())
        try:
            reply = await link.post(Service.POLL, b"<poll/>")
        finally:
            await link.close()
    assert reply is not None
    assert [e.event_id for e in reply.events] == [f"event-{n:04d}" for n in range(300)]  # type: ignore[attr-defined]


async def test_a_reply_over_the_cap_is_refused(pki: Pki) -> None:
    async with trickling_vtn(pki) as url:
        link = VtnLink(url, pki.client_context(), Codec(), max_reply_bytes=100_000)
        try:
            with pytest.raises(VtnRefused, match="over 100000 bytes"):
                await link.post(Service.POLL, b"<poll/>")
        finally:
            await link.close()

