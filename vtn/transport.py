"""The VTN's HTTP face: the five OpenADR 2.0b Simple HTTP endpoints (profile section 8).

A request's life (docs/architecture.md#a-messages-life): content type (415) and size (413) checks ->
the peer's identity from its TLS client certificate -> hardened decode with the codec -> the
application's
dispatcher (which checks the payload belongs to the service) -> the encoded reply. A VEN's
repeated unsigned request bytes and repeated replies skip the XML work (:mod:`vtn.repeats`).
Every protocol failure leaves as an oadrResponse carrying its OpenADR code with HTTP 200;
transport failures are clean 4xx; nothing here answers 500. The dispatcher owns "reply only
after the state is committed".
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import unquote

from aiohttp import web

from schemas import (
    Codec,
    EiResponse,
    Message,
    NotRecognized,
    NotRegistered,
    OtherError,
    RemoteProtocolError,
    Response,
)
from schemas.identity import certificate_fingerprint, fingerprint_from_pem
from schemas.signature import Verification
from vtn.repeats import Repeats

__all__ = [
    "SERVICE_PREFIX", "Dispatcher", "Peer", "PeerIdentity", "Service", "TransportSettings",
    "add_routes",
]

log = logging.getLogger(__name__)

SERVICE_PREFIX: Final = "/OpenADR2/Simple/2.0b"
_XML_TYPES: Final = frozenset({"application/xml", "text/xml"})


class Service(StrEnum):
    REGISTER_PARTY = "EiRegisterParty"
    EVENT = "EiEvent"
    REPORT = "EiReport"
    OPT = "EiOpt"
    POLL = "OadrPoll"


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end: the OpenADR fingerprint of the verified client certificate."""

    fingerprint: str


class PeerIdentity:
    """Who is calling: the fingerprint of the verified TLS client certificate or, behind a
    TLS-terminating proxy, of the certificate in the one trusted header (None: direct TLS).

    Direct TLS answers are remembered per connection: renegotiation is off
    (:func:`schemas.tls.apply_profile`), so a connection's certificate never changes.
    """

    __slots__ = ("_by_connection", "trusted_cert_header")

    def __init__(self, trusted_cert_header: str | None = None) -> None:
        self.trusted_cert_header = trusted_cert_header
        self._by_connection: weakref.WeakKeyDictionary[ssl.SSLObject, str] = (
            weakref.WeakKeyDictionary())

    def __call__(self, request: web.Request) -> Peer:
        """The peer, or :class:`NotRegistered` when the request carries no usable certificate."""
        if self.trusted_cert_header is not None:
            header = request.headers.get(self.trusted_cert_header)
            if not header:
                raise NotRegistered(f"no client certificate in {self.trusted_cert_header}")
            try:
                return Peer(fingerprint_from_pem(unquote(header)))
            except ValueError as exc:
                raise NotRegistered(f"client certificate header unreadable: {exc}") from None
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_object is None:
            raise NotRegistered("no verified TLS client certificate")
        fingerprint = self._by_connection.get(ssl_object)
        if fingerprint is None:
            der = ssl_object.getpeercert(binary_form=True)
            if not der:
                raise NotRegistered("no verified TLS client certificate")
            fingerprint = self._by_connection[ssl_object] = certificate_fingerprint(der)
        return Peer(fingerprint)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    """``identify`` names the peer (behind a TLS-terminating proxy: :class:`PeerIdentity` with
    the one header carrying the client certificate, URL-encoded PEM as nginx's
    ``$ssl_client_escaped_cert``)."""

    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    identify: PeerIdentity = field(default_factory=PeerIdentity)
    # awaited for every payload whose signature verified, before dispatch (vtn.signing.NonceCheck)
    check_signed: Callable[[Peer, Verification], Awaitable[None]] | None = None
    # replaces the codec's decode_signed when set (vtn.signing.SignedIntake.decode)
    decode: Callable[[Peer, bytes], Awaitable[tuple[Message, Verification | None]]] | None = None
    # told of every request answered with an OpenADR error code (vtn.metrics.VtnMetrics.refused)
    on_refused: Callable[[Service, RemoteProtocolError], None] | None = None


Dispatcher = Callable[[Service, Peer, Message], Awaitable[Message]]


def _error_reply(error: RemoteProtocolError) -> Response:
    status = EiResponse(code=error.response_code, description=error.reason[:500], request_id="")
    return Response(response=status)


def add_routes(app: web.Application, codec: Codec, dispatch: Dispatcher,
               settings: TransportSettings | None = None) -> None:
    """Mount the five service endpoints on ``app``."""
    settings = settings or TransportSettings()

    repeats = Repeats()
    reuse_replies = codec.signer is None  # a signed reply needs a fresh ReplayProtect

    async def endpoint(request: web.Request) -> web.Response:
        try:
            service = Service(request.match_info["service"])
        except ValueError:
            raise web.HTTPNotFound(text="no such OpenADR 2.0b service") from None
        if request.content_type not in _XML_TYPES:
            raise web.HTTPUnsupportedMediaType(text="send application/xml")
        if (request.content_length or 0) > settings.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=settings.max_body_bytes, actual_size=request.content_length or 0
            )
        body = await _body(request)
        peer, reply = await _answer(service, request, body)
        data = repeats.reply(peer.fingerprint, reply) if peer is not None else None
        if data is None:
            data = codec.encode(reply)
            if peer is not None and reuse_replies:
                repeats.remember_reply(peer.fingerprint, reply, data)
        return web.Response(body=data, content_type="application/xml")

    async def _body(request: web.Request) -> bytes:
        if request.content.is_eof():  # all of it arrived with the headers: nothing to wait for
            return await request.read()
        try:
            async with asyncio.timeout(settings.body_timeout_s):
                return await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="request body too slow") from None

    async def _answer(service: Service, request: web.Request,
                      body: bytes) -> tuple[Peer | None, Message]:
        peer: Peer | None = None
        try:
            peer = settings.identify(request)
            message = repeats.request(peer.fingerprint, body)
            if message is None:
                message, verification = (codec.decode_signed(body) if settings.decode is None
                                         else await settings.decode(peer, body))
                if verification is None:
                    repeats.remember_request(peer.fingerprint, body, message)
                elif settings.check_signed is not None:
                    await settings.check_signed(peer, verification)
            return peer, await dispatch(service, peer, message)
        except RemoteProtocolError as error:
            log.info("refused on %s: %s", service, error)
            if settings.on_refused is not None:
                settings.on_refused(service, error)
            return peer, _error_reply(error)
        except web.HTTPException:
            raise  # a deliberate HTTP answer (e.g. 503 while the database is away)
        except Exception:
            log.exception("unexpected failure on %s", service)
            return peer, _error_reply(OtherError("internal error; the request was not applied"))

    app.router.add_post(SERVICE_PREFIX + "/{service}", endpoint)


def wrong_service(service: Service, message: Message) -> NotRecognized:
    """The error for a valid payload posted to a service that does not take it."""
    return NotRecognized(f"{type(message).__name__} is not handled by {service}")
