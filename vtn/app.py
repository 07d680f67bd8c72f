"""The VTN application factory: composes transport, services, storage and push into one aiohttp app.

>>> app = create_app(VtnConfig(storage_url="sqlite:///vtn.db"))       # doctest: +SKIP
>>> web.run_app(app, ssl_context=server_context(...))                  # doctest: +SKIP

Invariants:
- The :class:`~vtn.storage.Storage` is owned by the app's ``cleanup_ctx``: opened (and migrated)
  at startup, closed at shutdown; so is the push delivery task. Nothing lives in module globals,
  so several VTNs run side by side in one process.
- The request body cap is ``client_max_size`` and the transport's 413 check, both from
  ``max_body_bytes``.
- Connection limits travel with the app (``handler_args``), so every runner serving it -- the
  ``crowdflex vtn`` command, the demo, tests -- gets them: aiohttp closes a connection that sits
  idle, *or has not finished sending its request headers*, ``keepalive_timeout_s`` after it opened
  or after its last reply (trickled header bytes do not extend that deadline; aiohttp has no
  separate header timeout), and refuses over-long request lines and header fields with 400. The
  VTN's own HTTP/1.1 path for plain requests (``FAST_PATH``, :mod:`vtn.fastpath`; off with
  signatures or a trusted proxy header) keeps the same deadline and leaves such requests to
  aiohttp.
- With a CRL configured, a task owned by the same ``cleanup_ctx`` looks at the file every
  ``crl_check_interval_s`` and closes the open connections (``CONNECTIONS``, filled by
  :mod:`vtn.site`) whose certificate a changed list revokes.
- State is reached through typed :class:`web.AppKey` s (``STORAGE``, ``SERVICES``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from ipaddress import ip_network

from aiohttp import web

from schemas import (
    Codec,
    IntakeLimits,
    Message,
    Service,
    TransportName,
    Verification,
    utc_now,
)
from schemas.identity import fingerprint_from_pem
from vtn.certpath import CertificatePath
from vtn.connections import Connections
from vtn.fastpath import FastPath, HeadLimits
from vtn.faults import storage_guarded
from vtn.httplog import http_logger
from vtn.limits import DocumentCaps, LimitSettings, RateLimiter, VenBudgets, install_limits
from vtn.metrics import VtnMetrics
from vtn.push import PushDelivery
from vtn.pushtargets import PushTargets
from vtn.revocation import reloading_server_context
from vtn.services import Handlers, RegistrationPolicy, ServiceContext, make_router
from vtn.settings import VtnConfig
from vtn.signing import NonceCheck, SignedIntake, signing_codec
from vtn.storage import Storage, open_storage
from vtn.tls import push_client_context, server_context
from vtn.transport import (
    Peer,
    PeerIdentity,
    ProxyTrust,
    Router,
    TransportSettings,
    add_routes,
)
from vtn.xmpp import ServiceResponder, XmppTransport

__all__ = [
    "CODEC",
    "CONFIG",
    "CONNECTIONS",
    "FAST_PATH",
    "METRICS",
    "PUSH",
    "SERVICES",
    "STORAGE",
    "XMPP",
    "create_app",
    "server_ssl_context",
]


CONFIG = web.AppKey("crowdflex.vtn.config", VtnConfig)
CONNECTIONS = web.AppKey("crowdflex.vtn.connections", Connections)
CODEC = web.AppKey("crowdflex.vtn.codec", Codec)
STORAGE = web.AppKey("crowdflex.vtn.storage", Storage)
SERVICES = web.AppKey("crowdflex.vtn.services", ServiceContext)
PUSH = web.AppKey("crowdflex.vtn.push", PushDelivery)
METRICS = web.AppKey("crowdflex.vtn.metrics", VtnMetrics)
XMPP = web.AppKey("crowdflex.vtn.xmpp", XmppTransport)
FAST_PATH = web.AppKey("crowdflex.vtn.fast_path", FastPath)


_log = logging.getLogger(__name__)

def server_ssl_context(config: VtnConfig) -> ssl.SSLContext:
    """The mutual-TLS server context for ``config`` (cert, key and CA are required)."""
    if config.tls_cert is None or config.tls_key is None or config.tls_ca is None:
        raise ValueError("tls_cert, tls_key and tls_ca are required to serve OpenADR")
    if config.tls_crl is not None:  # re-read when the file changes, no restart needed
        return reloading_server_context(cert=config.tls_cert, key=config.tls_key,
                                        ca=config.tls_ca, crl=config.tls_crl,
                                        profile=config.tls_profile)
    return server_context(cert=config.tls_cert, key=config.tls_key, ca=config.tls_ca,
                          profile=config.tls_profile, crl=config.tls_crl)


def create_app(
    config: VtnConfig,
    *,
    handlers: Handlers | None = None,
    codec: Codec | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> web.Application:
    """A VTN application serving the five OpenADR 2.0b endpoints under ``/OpenADR2/Simple/2.0b``.

    ``handlers`` are the application's hooks (:class:`vtn.services.Handlers`); ``codec`` sets
    signing/verification and limits (default: a plain :class:`schemas.Codec`).
    """
    app = web.Application(client_max_size=config.max_body_bytes, handler_args={
        "keepalive_timeout": config.keepalive_timeout_s, "max_line_size": config.max_line_size,
        "max_field_size": config.max_field_size, "max_headers": config.max_headers,
        "logger": http_logger()})  # a peer's malformed HTTP: one INFO line (vtn/httplog.py)
    codec = codec or signing_codec(config.signatures, cert=config.tls_cert, key=config.tls_key,
                                   clock=clock, crl=config.tls_crl,
                                   limits=IntakeLimits(max_id_chars=config.max_id_chars))
    if config.xmpp is not None and (codec.verifier is not None or codec.signer is not None):
        raise ValueError("[xmpp] cannot carry signed payloads (the XMPP library re-serialises "
                         "them): serve XMPP without [signatures]")
    app[CONFIG] = config
    app[CODEC] = codec
    metrics = app[METRICS] = VtnMetrics()
    app.middlewares.append(metrics.middleware())  # first: it sees the limits' answers too

    routers: list[Router] = []  # built once, at startup (it needs the storage)

    async def route(service: Service, peer: Peer, message: Message) -> Message:
        return await routers[0](service, peer, message)

    async def guarded_route(service: Service, peer: Peer, message: Message) -> Message:
        return await storage_guarded(route(service, peer, message), config.retry_after_s)

    nonces = (NonceCheck(config.signatures, lambda: app[STORAGE], clock)
              if codec.verifier is not None else None)

    async def check_signed(peer: Peer, verification: Verification) -> None:
        assert nonces is not None
        await storage_guarded(nonces(peer, verification), config.retry_after_s)

    certificates = (None if config.tls_ca is None else
                    CertificatePath(ca=config.tls_ca, crl=config.tls_crl, clock=clock))
    connections = app[CONNECTIONS] = Connections(per_peer=config.max_connections_per_peer,
                                                 exempt=config.trusted_proxy_fingerprints,
                                                 revoked=_revoked_now(config, certificates))
    identify = PeerIdentity(_proxy_trust(config, certificates))
    limits = install_limits(app, LimitSettings(
        per_s=config.rate_limit_per_s, burst=config.rate_limit_burst,
        max_in_flight=config.max_in_flight,
        bytes_per_s=config.byte_budget_per_s, bytes_burst=config.byte_budget_burst,
        cpu_per_s=config.cpu_budget_per_s, cpu_burst_s=config.cpu_budget_burst_s),
        identify=identify)
    budgets = limits.budgets
    push_targets = PushTargets.allowing(config.push_allow_private_targets)
    caps = DocumentCaps(max_metadata_reports=config.max_metadata_reports,
                        max_report_descriptions=config.max_report_descriptions,
                        max_report_points=config.max_report_points)
    intake = (SignedIntake(codec, config.signatures, clock, charge_cpu=budgets.charge_cpu)
              if nonces is not None else None)
    if intake is not None:
        app.middlewares.append(intake.middleware(identify))
    exchange = add_routes(app, codec, guarded_route, TransportSettings(
        max_body_bytes=config.max_body_bytes, body_timeout_s=config.body_timeout_s,
        identify=identify, charge_cpu=budgets.charge_cpu,
        check_signed=check_signed if nonces is not None else None,
        decode=intake.decode if intake is not None else None, on_refused=metrics.refused))
    if intake is None and identify.proxy is None:  # vtn/fastpath.py: where it is off
        app[FAST_PATH] = FastPath(
            exchange=exchange, limits=limits, metrics=metrics, identify=identify,
            middlewares=tuple(app.middlewares), head_limits=HeadLimits(
                max_line_size=config.max_line_size, max_field_size=config.max_field_size,
                max_headers=config.max_headers, max_body_bytes=config.max_body_bytes))

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        storage = await open_storage(config.storage_url, observe=metrics.transaction,
                                     pool_wait=metrics.pool_wait,
                                     lock_timeout_s=config.database_lock_timeout_s,
                                     statement_timeout_s=config.database_statement_timeout_s)
        try:
            ctx = ServiceContext(
                storage=storage, codec=codec,
                # one build cache: an event published (encoded to store) is sent from that build
                store_codec=Codec(schema=codec.schema, event_cache=codec.event_cache),
                vtn_id=config.vtn_id, poll_frequency=config.poll_frequency,
                policy=RegistrationPolicy(allowed_fingerprints=config.allowed_fingerprints),
                handlers=handlers or Handlers(), clock=clock,
                auto_subscribe=config.auto_subscribe_reports,
                default_granularity=config.default_report_granularity,
                cancelled_event_retention=config.cancelled_event_retention,
                offer_metadata=config.offer_metadata, caps=caps, push_targets=push_targets,
            )
            app[STORAGE] = storage
            app[SERVICES] = ctx
            routers[:] = [make_router(ctx)]
            xmpp = _xmpp_transport(config, codec, guarded_route, budgets, metrics)
            if xmpp is not None:
                ctx.transports = (TransportName.SIMPLE_HTTP, TransportName.XMPP)
                app[XMPP] = xmpp
            push = PushDelivery(ctx, route, ssl_context=_push_context(config),
                                timeout_s=config.push_timeout_s, retry_s=config.push_retry_s,
                                targets=push_targets, max_reply_bytes=config.max_body_bytes,
                                on_retry=metrics.push_retried,
                                xmpp=xmpp.send if xmpp is not None else None)
            ctx.on_enqueued = push.wake
            ctx.on_enrolled = push.enrolled
            ctx.close_connections = connections.close_peer
            app[PUSH] = push
            async with contextlib.AsyncExitStack() as stack:
                if xmpp is not None:
                    await stack.enter_async_context(xmpp.running())
                await stack.enter_async_context(push.running())
                await stack.enter_async_context(
                    _closing_revoked(config, certificates, connections))
                yield
        finally:
            await storage.close()

    app.cleanup_ctx.append(lifetime)
    return app


def _xmpp_transport(config: VtnConfig, codec: Codec, route: Router, budgets: VenBudgets,
                    metrics: VtnMetrics) -> XmppTransport | None:
    """The XMPP face for ``[xmpp]`` (None without it): the VTN's own certificate, the same
    budgets as HTTP, a rate limit of the same settings."""
    if config.xmpp is None:
        return None
    if config.tls_cert is None or config.tls_key is None or config.tls_ca is None:
        raise ValueError("[xmpp] needs tls cert, key and ca: the VTN logs in with its certificate")
    limiter = (None if config.rate_limit_per_s is None else
               RateLimiter(per_s=config.rate_limit_per_s, burst=config.rate_limit_burst))
    return XmppTransport(
        config.xmpp, codec=codec, max_body_bytes=config.max_body_bytes,
        respond=ServiceResponder(codec=codec, route=route, budgets=budgets,
                                 on_refused=metrics.refused),
        fingerprint=fingerprint_from_pem(config.tls_cert.read_bytes()),
        ssl_context=push_client_context(cert=config.tls_cert, key=config.tls_key,
                                        ca=config.tls_ca, profile=config.tls_profile),
        budgets=budgets, limiter=limiter, max_in_flight=config.max_in_flight)


def _proxy_trust(config: VtnConfig, certificates: CertificatePath | None) -> ProxyTrust | None:
    if config.trusted_cert_header is None:
        return None
    if certificates is None:
        raise ValueError("trusted_cert_header needs tls_ca to check the forwarded certificates")
    return ProxyTrust(header=config.trusted_cert_header, certificates=certificates,
                      fingerprints=frozenset(f.upper() for f in config.trusted_proxy_fingerprints),
                      networks=tuple(ip_network(a) for a in config.trusted_proxy_addresses))


def _revoked_now(config: VtnConfig, certificates: CertificatePath | None
                 ) -> Callable[[bytes], bool] | None:
    """With a CRL: whether the CRL file, re-read if it changed, revokes a certificate (DER)."""
    if config.tls_crl is None or certificates is None:
        return None
    paths = certificates

    def revoked(der: bytes) -> bool:
        paths.refresh()
        return paths.revoked(der)

    return revoked


@contextlib.asynccontextmanager
async def _closing_revoked(config: VtnConfig, certificates: CertificatePath | None,
                           connections: Connections) -> AsyncIterator[None]:
    """While the app runs, every ``crl_check_interval_s``: when the CRL file changed, close each
    open connection whose certificate it now revokes (the handshake checked the list in force
    then; a keep-alive connection must not outlive a revocation)."""
    if config.tls_crl is None or certificates is None:
        yield
        return

    async def watch(paths: CertificatePath) -> None:
        seen = paths.generation
        while True:
            await asyncio.sleep(config.crl_check_interval_s)
            paths.refresh()
            if paths.generation != seen:
                seen = paths.generation
                closed = connections.close_where(paths.revoked)
                _log.info("CRL changed: %d connection(s) of revoked certificates closed", closed)

    task = asyncio.get_running_loop().create_task(watch(certificates))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _push_context(config: VtnConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None or config.tls_ca is None:
        return None
    # no host name check: push pins the VEN's own certificate instead (vtn/push.py)
    return push_client_context(cert=config.tls_cert, key=config.tls_key, ca=config.tls_ca,
                               profile=config.tls_profile, check_hostname=False)
