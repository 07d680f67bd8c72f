"""Push mode: a small HTTPS receiver that takes the VTN's POSTs on the 2.0b service paths.

OpenADR 2.0b profile 9.1 (simpleHttp push): the VTN POSTs payloads to the VEN's transport address
(``https://ven-host:port``, announced in oadrCreatePartyRegistration) under the same service
paths the VTN serves. Each payload goes through the same :meth:`VenClient.receive` as a pulled
one; the reply it owes travels back as the HTTP response body, and follow-up work (such as
re-registering) runs afterwards as a task the client owns.

Invariants: only ``application/xml`` bodies under ``max_body_bytes`` are read; with
``allowed_fingerprints`` set, a peer whose TLS client certificate is not listed is refused before
its body is parsed; a protocol error becomes an oadrResponse carrying its OpenADR code, never an
HTTP 500.
"""

from __future__ import annotations

import logging
import ssl
from typing import Final

from aiohttp import web

from schemas import (
    SERVICE_PREFIX,
    DistributeEvent,
    EiResponse,
    Message,
    NotRecognized,
    RemoteProtocolError,
    Response,
    Service,
)
from schemas.identity import certificate_fingerprint
from schemas.logtext import escaped

from .client import VenClient

__all__ = ["PushReceiver", "answer_pushed"]

log = logging.getLogger(__name__)

_XML_TYPES: Final = frozenset({"application/xml", "text/xml"})


class PushReceiver:
    """Serve push deliveries for ``client`` on ``host:port`` (0: any free port; see :attr:`url`)."""

    def __init__(
        self,
        client: VenClient,
        ssl_context: ssl.SSLContext | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allowed_fingerprints: frozenset[str] | None = None,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self._client = client
        self._ssl = ssl_context
        self._host = host
        self._port = port
        self._allowed = allowed_fingerprints
        self._max_body = max_body_bytes
        self._runner: web.AppRunner | None = None
        self.url = ""

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body)
        app.router.add_post(SERVICE_PREFIX + "/{service}", self._endpoint)
        return app

    async def __aenter__(self) -> PushReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application())
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl)
        await site.start()
        port = self._runner.addresses[0][1]
        scheme = "https" if self._ssl is not None else "http"
        self.url = f"{scheme}://{self._host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _peer_allowed(self, request: web.Request) -> bool:
        if self._allowed is None:
            return True
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return False
        return certificate_fingerprint(der) in self._allowed

    async def _endpoint(self, request: web.Request) -> web.Response:
        try:
            service = Service(request.match_info["service"])
        except ValueError:
            raise web.HTTPNotFound(text="no such OpenADR 2.0b service") from None
        if request.content_type not in _XML_TYPES:
            raise web.HTTPUnsupportedMediaType(text="send application/xml")
        if not self._peer_allowed(request):
            raise web.HTTPForbidden(text="this VEN takes pushes from its VTN only")
        reply = await answer_pushed(self._client, await request.read(), str(service))
        return web.Response(body=self._client.codec.encode(reply), content_type="application/xml")


async def answer_pushed(client: VenClient, body: bytes, where: str) -> Message:
    """The answer to one payload the VTN sent (HTTP push or XMPP): decoded and handed to
    :meth:`VenClient.receive`; its follow-up work becomes a task of the client. A protocol
    error becomes an oadrResponse carrying its OpenADR code."""
    try:
        message = client.codec.decode(body)
        outcome = await client.receive(message)
    except RemoteProtocolError as error:
        log.info("refused a push on %s: %s", where, escaped(error))
        return Response(response=EiResponse(
            code=error.response_code, description=error.reason[:500]))
    if outcome.after is not None:
        client.spawn(outcome.after())
    if outcome.reply is None:
        if not isinstance(message, DistributeEvent):
            refusal = NotRecognized(f"{type(message).__name__} is not pushed to a VEN")
            return Response(response=EiResponse(
                code=refusal.response_code, description=refusal.reason))
        return Response(response=EiResponse())
    return outcome.reply
