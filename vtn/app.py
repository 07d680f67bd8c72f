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
  separate header timeout), and refuses over-long request lines and header fields with 400.
- State is reached through typed :class:`web.AppKey` s (``STORAGE``, ``SERVICES``, ...).
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from schemas import Codec, Message, Verification, utc_now
from schemas.identity import TlsProfile
from vtn.faults import storage_guarded
from vtn.httplog import http_logger
from vtn.limits import LimitSettings, install_limits
from vtn.metrics import VtnMetrics
from vtn.push import PushDelivery
from vtn.revocation import reloading_server_context
from vtn.services import Handlers, RegistrationPolicy, ServiceContext, make_dispatcher
from vtn.signing import NonceCheck, SignatureSettings, SignedIntake, signing_codec
from vtn.storage import Storage, open_storage
from vtn.tls import push_client_context, server_context
from vtn.transport import (
    Dispatcher,
    Peer,
    PeerIdentity,
    Service,
    TransportSettings,
    add_routes,
)

__all__ = [
    "CODEC",
    "CONFIG",
    "METRICS",
    "PUSH",
    "SERVICES",
    "STORAGE",
    "VtnConfig",
    "create_app",
    "server_ssl_context",
    "serving_loop_factory",
    "tune_serving_process",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class VtnConfig:
    """Everything a VTN deployment can set; :func:`vtn.config.load_config` reads it from TOML."""

    vtn_id: str = "CROWDFLEX-VTN"  # openleadr refuses lowercase vtnIDs (452)
    storage_url: str = "sqlite:///vtn.db"
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_crl: Path | None = None
    tls_profile: TlsProfile = TlsProfile.TLS13
    poll_frequency: timedelta = timedelta(seconds=10)
    max_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 10.0
    trusted_cert_header: str | None = None
    allowed_fingerprints: frozenset[str] | None = None
    auto_subscribe_reports: tuple[str, ...] = ("TELEMETRY_USAGE", "TELEMETRY_STATUS")
    default_report_granularity: timedelta = timedelta(minutes=1)
    cancelled_event_retention: timedelta = timedelta(days=1)
    offer_metadata: bool = True
    push_timeout_s: float = 10.0
    push_retry_s: float = 5.0
    admin_enabled: bool = True
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    admin_token: str | None = None
    # payload signatures and ReplayProtect (vtn/signing.py); off by default
    signatures: SignatureSettings = field(default_factory=SignatureSettings)
    # Retry-After of the 503 answered while the database is unavailable or full (vtn/faults.py)
    retry_after_s: int = 10
    # request limits (vtn/limits.py): None switches a limit off
    rate_limit_per_s: float | None = 20.0
    rate_limit_burst: int = 100
    max_in_flight: int | None = 1024
    # connection limits (aiohttp's server; see the module docstring). 75 s outlasts the keep-alive
    # of crowdflex's VEN (60 s) and openleadr's (15 s), so they, not we, close idle connections
    # and never race a reused connection being closed under them.
    keepalive_timeout_s: float = 75.0
    # the listening socket (vtn/site.py): TLS handshake deadline, established-connection cap
    tls_handshake_timeout_s: float = 10.0
    max_connections: int | None = 10_000
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 128


CONFIG = web.AppKey("crowdflex.vtn.config", VtnConfig)
CODEC = web.AppKey("crowdflex.vtn.codec", Codec)
STORAGE = web.AppKey("crowdflex.vtn.storage", Storage)
SERVICES = web.AppKey("crowdflex.vtn.services", ServiceContext)
PUSH = web.AppKey("crowdflex.vtn.push", PushDelivery)
METRICS = web.AppKey("crowdflex.vtn.metrics", VtnMetrics)


# With SQLite the event loop hands work to the database threads and back on every request; at
# CPython's default 5 ms switch interval a thread that wants the GIL back waits for the other to
# give it up. Measured (bench vtn, 100 VENs, 3 runs each): poll CPU 0.80-1.13 -> 0.73-0.90 ms,
# report CPU 2.97-3.05 -> 2.37-2.96 ms.
_SERVING_SWITCH_INTERVAL_S = 0.0005
# CPython collects its youngest generation every 700 net new container objects. With a hundred
# requests in flight most of those are still alive, so each collection promotes them and the older
# generations, the whole heap at last, are scanned again and again. Measured (bench vtn, 100 VENs,
# 8 s of polls then 8 s of reports, one run each): 271 collections costing 0.33 s of CPU -> 6
# costing 0.01 s.
_SERVING_GC_YOUNG_THRESHOLD = 5000

_EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def tune_serving_process() -> None:
    """Opt-in for a process whose job is serving a VTN (``crowdflex vtn`` calls it, once its
    imports are done): a shorter GIL switch interval; what is alive now (modules, compiled
    schemas) moved out of the collector's sight with :func:`gc.freeze`, and the youngest
    generation collected less often. Process-wide, so a library never does this behind its
    host's back."""
    sys.setswitchinterval(_SERVING_SWITCH_INTERVAL_S)
    gc.freeze()
    _young, *older = gc.get_threshold()
    gc.set_threshold(_SERVING_GC_YOUNG_THRESHOLD, *older)


def serving_loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop a serving process runs on (``asyncio.Runner(loop_factory=...)``).

    ``"uvloop"``: uvloop's, whose TLS transport and I/O are compiled; asyncio's TLS runs in
    Python (``asyncio.sslproto``), a quarter of a keep-alive poll's CPU. Measured (bench vtn,
    100 VENs, 6 interleaved runs each): VTN CPU per poll 0.138 -> 0.114 ms, per 10-point report
    0.664 -> 0.646 ms. ``"asyncio"``: the standard library's. ``"auto"``: uvloop when it
    is installed (a dependency everywhere it builds), else asyncio's. TLS settings, certificate
    checks and every limit are the same on either: the ``ssl.SSLContext`` does the TLS.
    """
    if name not in _EVENT_LOOPS:
        raise ValueError(f"event loop {name!r}: choose one of {', '.join(_EVENT_LOOPS)}")
    if name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ValueError("event loop 'uvloop': uvloop is not installed") from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


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
                                   clock=clock, crl=config.tls_crl)
    app[CONFIG] = config
    app[CODEC] = codec
    metrics = app[METRICS] = VtnMetrics()
    app.middlewares.append(metrics.middleware())  # first: it sees the limits' answers too

    dispatchers: list[Dispatcher] = []  # built once, at startup (it needs the storage)

    async def dispatch(service: Service, peer: Peer, message: Message) -> Message:
        return await dispatchers[0](service, peer, message)

    async def guarded_dispatch(service: Service, peer: Peer, message: Message) -> Message:
        return await storage_guarded(dispatch(service, peer, message), config.retry_after_s)

    nonces = (NonceCheck(config.signatures, lambda: app[STORAGE], clock)
              if codec.verifier is not None else None)

    async def check_signed(peer: Peer, verification: Verification) -> None:
        assert nonces is not None
        await storage_guarded(nonces(peer, verification), config.retry_after_s)

    identify = PeerIdentity(config.trusted_cert_header)
    install_limits(app, LimitSettings(
        per_s=config.rate_limit_per_s, burst=config.rate_limit_burst,
        max_in_flight=config.max_in_flight), identify=identify)
    intake = SignedIntake(codec, config.signatures, clock) if nonces is not None else None
    if intake is not None:
        app.middlewares.append(intake.middleware(identify))
    add_routes(app, codec, guarded_dispatch, TransportSettings(
        max_body_bytes=config.max_body_bytes, body_timeout_s=config.body_timeout_s,
        identify=identify,
        check_signed=check_signed if nonces is not None else None,
        decode=intake.decode if intake is not None else None, on_refused=metrics.refused))

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        storage = await open_storage(config.storage_url, observe=metrics.transaction)
        try:
            ctx = ServiceContext(
                storage=storage, codec=codec, store_codec=Codec(schema=codec.schema),
                vtn_id=config.vtn_id, poll_frequency=config.poll_frequency,
                policy=RegistrationPolicy(allowed_fingerprints=config.allowed_fingerprints),
                handlers=handlers or Handlers(), clock=clock,
                auto_subscribe=config.auto_subscribe_reports,
                default_granularity=config.default_report_granularity,
                cancelled_event_retention=config.cancelled_event_retention,
                offer_metadata=config.offer_metadata,
            )
            app[STORAGE] = storage
            app[SERVICES] = ctx
            dispatchers[:] = [make_dispatcher(ctx)]
            push = PushDelivery(ctx, dispatch, ssl_context=_push_context(config),
                                timeout_s=config.push_timeout_s, retry_s=config.push_retry_s,
                                on_retry=metrics.push_retried)
            ctx.on_enqueued = push.wake
            app[PUSH] = push
            async with push.running():
                yield
        finally:
            await storage.close()

    app.cleanup_ctx.append(lifetime)
    return app


def _push_context(config: VtnConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None or config.tls_ca is None:
        return None
    return push_client_context(cert=config.tls_cert, key=config.tls_key, ca=config.tls_ca,
                               profile=config.tls_profile)
