"""The VTN's HTTP face: the five OpenADR 2.0b Simple HTTP endpoints (profile section 8).

A request's life (docs/architecture.md#a-messages-life): content type (415) and size (413)
checks -> the peer's identity from its TLS client certificate -> hardened decode with the codec ->
the application's router (which checks the payload belongs to the service) -> the encoded
reply. A VEN's
repeated unsigned request bytes and repeated replies skip the XML work (:mod:`vtn.repeats`); the
CPU the XML work does cost is told to the VEN's budget (``charge_cpu``, :mod:`vtn.limits`).
Every protocol failure leaves as an oadrResponse carrying its OpenADR code with HTTP 200;
transport failures are clean 4xx; nothing here answers 500. The router owns "reply only
after the state is committed".
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Final
from urllib.parse import unquote

from aiohttp import web

from schemas import (
    SERVICE_PREFIX,
    Codec,
    EiResponse,
    Message,
    NotRecognized,
    NotRegistered,
    OtherError,
    RemoteProtocolError,
    Response,
    Service,
)
from schemas.identity import certificate_fingerprint
from schemas.logtext import escaped
from schemas.parts import echoed_request_id
from schemas.signature import Verification
from vtn.certpath import CertificatePath, CertificateRejected
from vtn.repeats import Repeats

__all__ = [
    "REPEATS", "XML_TYPES", "Exchange", "Peer", "PeerIdentity", "ProxyTrust", "Router",
    "TransportSettings", "add_routes", "error_reply", "identified", "service_named",
]

log = logging.getLogger(__name__)

XML_TYPES: Final = frozenset({"application/xml", "text/xml"})
_SERVICES: Final = {service.value: service for service in Service}  # a dict get, not Enum()
_HEADERS_REMEMBERED: Final = 4096  # proxy-forwarded certificates whose check is remembered
# the endpoints' memory of repeated requests and replies (its hit counts; off for benchmarks)
REPEATS: Final = web.AppKey("crowdflex.vtn.repeats", Repeats)


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end: the OpenADR fingerprint of the verified client certificate, and
    on XMPP the full JID the server stamped on its stanza (where the VTN sends to it)."""

    fingerprint: str
    address: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyTrust:
    """A TLS-terminating proxy whose ``header`` (the client certificate as URL-encoded PEM, e.g.
    nginx's ``$ssl_client_escaped_cert``) names the VEN: honoured only on connections from the
    proxy itself, known by its own client certificate (``fingerprints``) or, for a proxy that
    talks plain TCP to the VTN, by its source address (``networks``); a request carrying the
    header more than once names nobody. ``certificates`` checks the
    forwarded certificate as the TLS layer would (:class:`vtn.certpath.CertificatePath`)."""

    header: str
    certificates: CertificatePath
    fingerprints: frozenset[str] = frozenset()
    networks: tuple[IPv4Network | IPv6Network, ...] = ()

    def __post_init__(self) -> None:
        if not self.fingerprints and not self.networks:
            raise ValueError("trusted_cert_header needs trusted_proxy_fingerprints or "
                             "trusted_proxy_addresses: the header is honoured only from the proxy")

    def is_proxy(self, fingerprint: str | None, address: str | None) -> bool:
        if fingerprint is not None and fingerprint.upper() in self.fingerprints:
            return True
        if address is None or not self.networks:
            return False
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


class PeerIdentity:
    """Who is calling: the fingerprint of the verified TLS client certificate or, on a connection
    from a trusted proxy (:class:`ProxyTrust`), of the certificate in its header once that passed
    the same checks as a TLS client certificate. On any other connection the header is ignored.

    Answers are remembered: per connection for TLS (renegotiation is off,
    :func:`schemas.tls.apply_profile`, so a connection's certificate never changes), per header
    text for the proxy until the certificate expires, the CRL's next update is due or the CRL file
    changes (bounded table).
    """

    __slots__ = ("_by_connection", "_by_header", "proxy")

    def __init__(self, proxy: ProxyTrust | None = None) -> None:
        self.proxy = proxy
        self._by_connection: weakref.WeakKeyDictionary[ssl.SSLObject, str] = (
            weakref.WeakKeyDictionary())
        self._by_header: OrderedDict[str, tuple[str, datetime, int]] = OrderedDict()

    def __call__(self, request: web.Request) -> Peer:
        """The peer, or :class:`NotRegistered` when the request carries no usable certificate."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if self.proxy is not None:
            fingerprint = self._tls_fingerprint(ssl_object) if ssl_object is not None else None
            if self.proxy.is_proxy(fingerprint, request.remote):
                return Peer(self._forwarded(self.proxy, request))
        return self.of_connection(ssl_object)

    def of_connection(self, ssl_object: ssl.SSLObject | None) -> Peer:
        """The peer a connection's own TLS client certificate names (no proxy header read), or
        :class:`NotRegistered`."""
        fingerprint = self._tls_fingerprint(ssl_object) if ssl_object is not None else None
        if fingerprint is None:
            raise NotRegistered("no verified TLS client certificate")
        return Peer(fingerprint)

    def _tls_fingerprint(self, ssl_object: ssl.SSLObject) -> str | None:
        fingerprint = self._by_connection.get(ssl_object)
        if fingerprint is None:
            der = ssl_object.getpeercert(binary_form=True)
            if not der:
                return None
            fingerprint = self._by_connection[ssl_object] = certificate_fingerprint(der)
        return fingerprint

    def _forwarded(self, proxy: ProxyTrust, request: web.Request) -> str:
        given = request.headers.getall(proxy.header, [])
        if len(given) > 1:  # one of them is not the proxy's: a VEN sent it, to be believed
            raise NotRegistered(f"{proxy.header} given {len(given)} times; it names nobody")
        header = given[0] if given else ""
        if not header:
            raise NotRegistered(f"no client certificate in {proxy.header}")
        paths = proxy.certificates
        paths.refresh()
        known = self._by_header.get(header)
        if known is not None:
            fingerprint, expires, generation = known
            if generation == paths.generation and paths.now() <= expires:
                self._by_header.move_to_end(header)
                return fingerprint
            del self._by_header[header]
        try:
            fingerprint, expires = paths.verify(unquote(header))
        except CertificateRejected as exc:
            raise NotRegistered(f"forwarded client certificate refused: {exc}") from None
        self._by_header[header] = (fingerprint, expires, paths.generation)
        if len(self._by_header) > _HEADERS_REMEMBERED:
            self._by_header.popitem(last=False)
        return fingerprint


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    """``identify`` names the peer (behind a TLS-terminating proxy: :class:`PeerIdentity` with
    a :class:`ProxyTrust`)."""

    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    identify: PeerIdentity = field(default_factory=PeerIdentity)
    # awaited for every payload whose signature verified, before routing (vtn.signing.NonceCheck)
    check_signed: Callable[[Peer, Verification], Awaitable[None]] | None = None
    # replaces the codec's decode_signed when set (vtn.signing.SignedIntake.decode)
    decode: Callable[[Peer, bytes], Awaitable[tuple[Message, Verification | None]]] | None = None
    # told the event-loop CPU seconds spent decoding each peer's document and encoding the reply
    # (vtn.limits.VenBudgets.charge_cpu), keyed by fingerprint
    charge_cpu: Callable[[str, float], None] | None = None
    # told of every request answered with an OpenADR error code (vtn.metrics.VtnMetrics.refused)
    on_refused: Callable[[Service, RemoteProtocolError], None] | None = None


Router = Callable[[Service, Peer, Message], Awaitable[Message]]


def error_reply(error: RemoteProtocolError, message: Message | None = None) -> Response:
    """The refusal; it echoes the requestID of a payload that decoded (profile: an eiResponse
    names the request it answers) or that the refusal read, and is "" for one that did not."""
    request_id = error.request_id if message is None else echoed_request_id(message)
    status = EiResponse(code=error.response_code, description=error.reason[:500],
                        request_id=request_id)
    return Response(response=status)


class Exchange:
    """From a request body to the reply's bytes, for a peer already named (or refused with
    :class:`NotRegistered`): decode, route, encode, with the repeat memory and the CPU charged to
    the peer's budget. The aiohttp endpoint and the VTN's own HTTP/1.1 path (:mod:`vtn.fastpath`)
    both answer through it."""

    __slots__ = ("_charge_cpu", "_codec", "_reuse_replies", "_route", "_settings", "repeats")

    def __init__(self, codec: Codec, route: Router, settings: TransportSettings) -> None:
        self._codec = codec
        self._route = route
        self._settings = settings
        self.repeats = Repeats()
        self._reuse_replies = codec.signer is None  # a signed reply needs a fresh ReplayProtect
        self._charge_cpu = settings.charge_cpu or (lambda _fingerprint, _seconds: None)

    async def reply(self, service: Service, peer: Peer | NotRegistered, body: bytes) -> bytes:
        """The encoded reply; raises only a deliberate HTTP answer (``web.HTTPException``: the
        503 of a database away)."""
        reply = await self._answer(service, peer, body)
        data = self.repeats.reply(reply)
        if data is None:
            started = time.thread_time()
            data = self._codec.encode(reply)
            if isinstance(peer, Peer):
                self._charge_cpu(peer.fingerprint, time.thread_time() - started)
            if self._reuse_replies:
                self.repeats.remember_reply(reply, data)
        return data

    async def _answer(self, service: Service, peer: Peer | NotRegistered, body: bytes) -> Message:
        settings, repeats = self._settings, self.repeats
        message: Message | None = None
        try:
            if not isinstance(peer, Peer):
                raise peer
            message = repeats.request(peer.fingerprint, body)
            if message is None:
                if settings.decode is not None:  # signed intake: budgeted by vtn.signing
                    message, verification = await settings.decode(peer, body)
                else:
                    started = time.thread_time()
                    try:
                        message, verification = self._codec.decode_signed(body)
                    finally:
                        self._charge_cpu(peer.fingerprint, time.thread_time() - started)
                if verification is None:
                    repeats.remember_request(peer.fingerprint, body, message)
                elif settings.check_signed is not None:
                    await settings.check_signed(peer, verification)
            return await self._route(service, peer, message)
        except RemoteProtocolError as error:
            log.info("refused on %s: %s", service, escaped(error))
            if settings.on_refused is not None:
                settings.on_refused(service, error)
            return error_reply(error, message)
        except web.HTTPException:
            raise  # a deliberate HTTP answer (e.g. 503 while the database is away)
        except Exception:
            log.exception("unexpected failure on %s", service)
            return error_reply(OtherError("internal error; the request was not applied"), message)


def service_named(name: str) -> Service | None:
    """The service a path's last segment names, None for no OpenADR 2.0b service."""
    return _SERVICES.get(name)


def identified(identify: PeerIdentity, request: web.Request) -> Peer | NotRegistered:
    """The request's peer, or the refusal naming why it has none."""
    try:
        return identify(request)
    except NotRegistered as refusal:
        return refusal


def add_routes(app: web.Application, codec: Codec, route: Router,
               settings: TransportSettings | None = None) -> Exchange:
    """Mount the five service endpoints on ``app``; returns their :class:`Exchange`."""
    settings = settings or TransportSettings()
    exchange = Exchange(codec, route, settings)
    app[REPEATS] = exchange.repeats

    async def endpoint(request: web.Request) -> web.Response:
        service = _SERVICES.get(request.match_info["service"])
        if service is None:
            raise web.HTTPNotFound(text="no such OpenADR 2.0b service")
        if request.content_type not in XML_TYPES:
            raise web.HTTPUnsupportedMediaType(text="send application/xml")
        if (request.content_length or 0) > settings.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=settings.max_body_bytes, actual_size=request.content_length or 0
            )
        body = await _body(request)
        data = await exchange.reply(service, identified(settings.identify, request), body)
        return _Reply(body=data, content_type="application/xml")

    async def _body(request: web.Request) -> bytes:
        try:
            if request.content.is_eof():  # all of it arrived with the headers: no wait
                return await _read(request, settings.max_body_bytes)
            async with asyncio.timeout(settings.body_timeout_s):
                return await _read(request, settings.max_body_bytes)
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="request body too slow") from None
        except web.RequestPayloadError as exc:
            # e.g. a body that is no gzip under Content-Encoding: gzip; the peer's fault, so one
            # INFO line and a 400, not an ERROR traceback and a 500
            log.info("refused a body not readable in its Content-Encoding (%s): %s",
                     escaped(request.headers.get("Content-Encoding", "identity")),
                     escaped(exc.__cause__ or exc))
            raise web.HTTPBadRequest(
                text="request body does not decode in its Content-Encoding") from None

    app.router.add_post(SERVICE_PREFIX + "/{service}", endpoint)
    return exchange


class _Reply(web.Response):
    """A reply that lets go of its body and headers once written: aiohttp's keep-alive loop holds
    a connection's last response until the next request arrives, so every idle VEN would keep
    its last reply's bytes and headers for as long as it stays connected. (Middleware sees both:
    it runs before the reply is written.)"""

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self.body = None
        self.headers.clear()


async def _read(request: web.Request, cap: int) -> bytes:
    """The whole body, 413 beyond ``cap`` bytes. Read from the stream, not with
    ``request.read()``, which keeps the body on the request: aiohttp's keep-alive loop holds a
    connection's last request until the next one arrives, so every idle VEN would keep its last
    body (a minute of telemetry is kilobytes) for as long as it stays connected."""
    if request.content.at_eof():  # read already, by a middleware (vtn.capture) or none sent
        return await request.read()  # the bytes that read kept on the request, or b""
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > cap:
            raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=len(body))
    return bytes(body)


def wrong_service(service: Service, message: Message) -> NotRecognized:
    """The error for a valid payload posted to a service that does not take it."""
    return NotRecognized(f"{type(message).__name__} is not handled by {service}")
