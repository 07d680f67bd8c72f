"""VEN test helpers: free loopback ports, an openleadr VTN with real mutual TLS, a scripted VTN.

openleadr's ``OpenADRServer`` keeps some settings on its service base class (``ven_lookup``,
signature verification), so every server here is built through :func:`openleadr_vtn`, which
always sets them the same way.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from openleadr import OpenADRServer

from schemas import Codec, Message, Response
from tests.kit.pki import Pki

VEN_ID = "ven-000123"
REGISTRATION_ID = "reg-000456"
SERVICE_PATH = "/OpenADR2/Simple/2.0b"


@asynccontextmanager
async def openleadr_vtn(pki: Pki, port: int, **handlers: Any) -> AsyncIterator[OpenADRServer]:
    """openleadr's VTN on 127.0.0.1:port, requiring client certificates from the session CA.

    It knows one VEN: ``VEN_ID``, bound to ``pki.ven``'s fingerprint, so openleadr checks that
    every request after registration comes over a TLS connection with that certificate.
    """

    def ven_lookup(ven_id: str) -> dict[str, str]:
        if ven_id != VEN_ID:
            return {}
        return {"ven_id": VEN_ID, "ven_name": "ven-under-test", "fingerprint": pki.ven.fingerprint,
                "registration_id": REGISTRATION_ID}

    server = OpenADRServer(
        vtn_id="openleadr-vtn", http_host="127.0.0.1", http_port=port,
        http_cert=str(pki.vtn.cert), http_key=str(pki.vtn.key), http_ca_file=str(pki.ca_cert),
        ven_lookup=ven_lookup, verify_message_signatures=False,
        requested_poll_freq=timedelta(seconds=1),
    )
    server.add_handler("on_create_party_registration",
                       lambda payload: (VEN_ID, REGISTRATION_ID))
    for name, handler in handlers.items():
        server.add_handler(name, handler)
    await server.run()
    try:
        yield server
    finally:
        await server.stop()


Script = Callable[[str, Message], Awaitable[Message | web.StreamResponse]]


@dataclass
class ScriptedVtn:
    """A tiny VTN made of our own codec and a script: (service, message) -> reply."""

    url: str
    received: list[tuple[str, Message]] = field(default_factory=list)


@asynccontextmanager
async def scripted_vtn(ssl_context: ssl.SSLContext, script: Script) -> AsyncIterator[ScriptedVtn]:
    codec = Codec()
    app = web.Application()
    state = ScriptedVtn(url="")

    async def endpoint(request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        message = codec.decode(await request.read())
        state.received.append((service, message))
        reply = await script(service, message)
        if isinstance(reply, web.StreamResponse):
            return reply
        return web.Response(body=codec.encode(reply), content_type="application/xml")

    app.router.add_post(SERVICE_PATH + "/{service}", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    state.url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


def ok(ven_id: str | None = VEN_ID) -> Response:
    from schemas import EiResponse

    return Response(response=EiResponse(), ven_id=ven_id)
