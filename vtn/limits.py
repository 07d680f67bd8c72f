"""Request limits on the VEN-facing port: a token bucket per VEN, budgets per VEN for the bytes it
sends and the CPU its documents cost, a global in-flight cap, and caps on what one document holds.

The first three are one :class:`RequestLimits`, asked *before* the body is read (by an aiohttp
middleware, and by the VTN's own HTTP/1.1 path, :mod:`vtn.fastpath`, once a request is whole), so a
refused request costs the VTN neither an XML parse nor a database query.

- **Per-VEN rate** *(config: ``rate_limit_per_s``, ``rate_limit_burst``)*: one token bucket per
  client-certificate fingerprint (the same identity the services bind venIDs to,
  docs/architecture.md#a-messages-life). A VEN may send ``burst`` requests at once (a poll loop
  draining its queue polls again at once) and ``per_s`` a second after that. Over the limit: **HTTP
  429 with Retry-After** (whole seconds until a token is back), and the connection is closed after
  that answer, so a VEN drawing 429s does not keep a connection slot (:mod:`vtn.site`) while it
  waits.
- **Per-VEN budgets** *(config: ``byte_budget_per_s``/``byte_budget_burst``,
  ``cpu_budget_per_s``/``cpu_budget_burst_s``)*: a request count says little when one valid
  document can be a megabyte that costs a third of a second to decode. Each VEN has a bucket of
  request-body bytes and one of VTN CPU seconds (the event-loop thread's CPU spent decoding its
  documents and encoding the replies, :mod:`vtn.transport`). A request is charged what it cost
  once it is done, so a bucket can go into debt; while either is in debt the VEN's requests are
  answered **HTTP 429 with Retry-After** (whole seconds until it is out of debt), before the body
  is read, and the connection is closed after it. Other VENs' buckets are untouched.
- **Global in-flight cap** *(config: ``max_in_flight``)*: at most that many requests are being
  handled at a time, counting slow bodies still arriving. Over the cap: **HTTP 503 with
  Retry-After: 1**; the server is busy, not the client at fault.

Why HTTP codes and not an OpenADR 469 in an oadrResponse: OpenADR 2.0b has no back-pressure code
and an oadrResponse cannot say *when* to come back; a 469 inside HTTP 200 reads to a VEN as an
answered request. 429/503 with Retry-After are what every HTTP client (openleadr's, ours) already
treats as "nothing happened, try later" -- and nothing did happen: no state was read or written.

**Document caps** (:class:`DocumentCaps`, config ``max_metadata_reports``,
``max_report_descriptions``, ``max_report_points``): the services refuse an oadrRegisterReport or
oadrUpdateReport holding more than that with 454 before anything is stored; the codec caps the
length of identifiers (``max_id_chars``, :class:`schemas.IntakeLimits`).

Invariants: buckets are keyed by fingerprint, never by anything the payload says, so one VEN's
flood drains only its own bucket; the bucket table is bounded (``max_tracked``; refilled buckets
are forgotten first, then the oldest), so many identities cannot grow memory without bound; the
clock is injected (monotonic seconds) so tests need no sleeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from schemas import NotRegistered
from vtn.transport import Peer, PeerIdentity, identified

__all__ = [
    "DocumentCaps", "LimitSettings", "RateLimiter", "RequestLimits", "VenBudgets", "budget_key",
    "install_limits", "limits_middleware",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNIDENTIFIED: Final = "-"  # one shared bucket for requests without a usable certificate


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """``per_s``/``max_in_flight`` None switch that limit off."""

    per_s: float | None = 20.0
    burst: int = 100
    max_in_flight: int | None = 1024
    max_tracked: int = 100_000
    # request-body bytes per VEN: refill per second and bucket size (None: no byte budget)
    bytes_per_s: float | None = 256 * 1024
    bytes_burst: int = 4 * 1024 * 1024
    # VTN CPU seconds per VEN (decoding its documents, encoding the replies)
    cpu_per_s: float | None = 0.1
    cpu_burst_s: float = 1.0

    def __post_init__(self) -> None:
        if self.per_s is not None and self.per_s <= 0:
            raise ValueError("rate_limit_per_s must be positive (or None for no limit)")
        if self.burst < 1:
            raise ValueError("rate_limit_burst must be at least 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 (or None for no cap)")
        for name, rate, size in (("byte_budget", self.bytes_per_s, self.bytes_burst),
                                 ("cpu_budget", self.cpu_per_s, self.cpu_burst_s)):
            if rate is not None and (rate <= 0 or size <= 0):
                raise ValueError(f"{name} rate and burst must be positive (or rate None for "
                                 "no budget)")


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentCaps:
    """How much one valid document may hold; the services refuse more with 454, storing nothing.

    The defaults leave room for an aggregator registering a pool of a few thousand devices (one
    description each) and sending a minute of per-device metering in one report; a 1 MiB body
    holds about that much anyway.
    """

    max_metadata_reports: int = 100  # METADATA reports in one oadrRegisterReport
    max_report_descriptions: int = 5_000  # oadrReportDescriptions in one oadrRegisterReport
    max_report_points: int = 10_000  # oadrReportPayloads in one oadrUpdateReport

    def __post_init__(self) -> None:
        for name in ("max_metadata_reports", "max_report_descriptions", "max_report_points"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True, kw_only=True)
class RateLimiter:
    """Token buckets by key; :meth:`take` answers 0.0 (go) or the seconds until a token is back."""

    per_s: float
    burst: float
    max_tracked: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.burst = float(self.burst)  # once, not per refill (an int burst is allowed)

    def take(self, key: str) -> float:
        bucket = self._refilled(key)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_s

    def charge(self, key: str, amount: float) -> None:
        """Spend ``amount`` after the fact: the bucket may go into debt."""
        self._refilled(key).tokens -= amount

    def debt(self, key: str) -> float:
        """0.0 while the key's bucket holds something; else the seconds until it does again."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.tokens > 0.0:  # a refill only adds: no clock read, no refill
            return 0.0
        bucket = self._refilled(key)
        return 0.0 if bucket.tokens > 0.0 else (-bucket.tokens + 1e-9) / self.per_s

    def _refilled(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), at=now)
        tokens = bucket.tokens + (now - bucket.at) * self.per_s
        bucket.tokens = tokens if tokens < self.burst else self.burst
        bucket.at = now
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.max_tracked:
            return
        # A bucket that has refilled is indistinguishable from a fresh one: forget those first.
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.at) * self.per_s >= self.burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) >= self.max_tracked:  # dicts keep insertion order: oldest first
            del self._buckets[next(iter(self._buckets))]


class VenBudgets:
    """Each VEN's byte and CPU buckets (:class:`LimitSettings`); the middleware charges bytes,
    the transport CPU (:meth:`charge_cpu`, a :class:`vtn.transport.TransportSettings` hook)."""

    __slots__ = ("_bytes", "_cpu")

    def __init__(self, settings: LimitSettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bytes = (None if settings.bytes_per_s is None else RateLimiter(
            per_s=settings.bytes_per_s, burst=settings.bytes_burst,
            max_tracked=settings.max_tracked, clock=clock))
        self._cpu = (None if settings.cpu_per_s is None else RateLimiter(
            per_s=settings.cpu_per_s, burst=settings.cpu_burst_s,
            max_tracked=settings.max_tracked, clock=clock))

    def wait(self, key: str) -> float:
        """0.0 when the VEN may send; else the seconds until both its buckets are out of debt."""
        # asked before every request: spelled out, not max() over a generator (five calls less)
        wait = 0.0 if self._bytes is None else self._bytes.debt(key)
        if self._cpu is not None:
            cpu = self._cpu.debt(key)
            if cpu > wait:
                wait = cpu
        return wait

    def charge_bytes(self, key: str, count: int) -> None:
        if self._bytes is not None and count:
            self._bytes.charge(key, count)

    def charge_cpu(self, key: str, seconds: float) -> None:
        if self._cpu is not None and seconds > 0.0:
            self._cpu.charge(key, seconds)


def budget_key(peer: Peer | NotRegistered) -> str:
    """The client-certificate fingerprint, or a shared key when there is none (the transport
    refuses those requests anyway; they still pay from one common bucket)."""
    return peer.fingerprint if isinstance(peer, Peer) else _UNIDENTIFIED


def _too_many(text: str, wait: float) -> web.HTTPTooManyRequests:
    """429 with Retry-After, and the connection closed after it: a connection drawing 429s holds
    no slot (vtn.site)."""
    refused = web.HTTPTooManyRequests(text=text,
                                      headers={"Retry-After": str(max(1, math.ceil(wait)))})
    refused.force_close()
    return refused


class RequestLimits:
    """The per-VEN rate, the budgets' debt and the in-flight cap of :class:`LimitSettings`:
    :meth:`admit` before a request's body is read, :meth:`release` once it is answered. The
    aiohttp middleware (:func:`limits_middleware`) and the VTN's own HTTP/1.1 path
    (:mod:`vtn.fastpath`) both call the one object, so they share its buckets and its count."""

    __slots__ = ("_in_flight", "_limiter", "_max_in_flight", "budgets")

    def __init__(self, settings: LimitSettings, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limiter = (None if settings.per_s is None else
                         RateLimiter(per_s=settings.per_s, burst=settings.burst,
                                     max_tracked=settings.max_tracked, clock=clock))
        self.budgets = VenBudgets(settings, clock=clock)  # the transport charges CPU to them
        self._max_in_flight = settings.max_in_flight
        self._in_flight = 0

    def admit(self, key: str) -> None:
        """Count the request in flight, or raise its refusal: 429 over the VEN's rate or
        budgets (the connection closed after it), 503 at the in-flight cap."""
        if self._limiter is not None and (wait := self._limiter.take(key)) > 0.0:
            raise _too_many("request rate over this VEN's limit; retry later", wait)
        if (wait := self.budgets.wait(key)) > 0.0:
            raise _too_many("this VEN is over its byte or CPU budget; retry later", wait)
        if self._max_in_flight is not None and self._in_flight >= self._max_in_flight:
            raise web.HTTPServiceUnavailable(
                text="the VTN is at its in-flight request cap; retry later",
                headers={"Retry-After": "1"})
        self._in_flight += 1

    def release(self, key: str, body_bytes: int) -> None:
        """An admitted request is answered; ``body_bytes`` it sent are charged to its budget."""
        self._in_flight -= 1
        self.budgets.charge_bytes(key, body_bytes)


def limits_middleware(limits: RequestLimits, *, identify: PeerIdentity) -> Middleware:
    """The middleware putting ``limits`` in front of an app's handlers."""

    @web.middleware
    async def limited(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = budget_key(identified(identify, request))
        limits.admit(key)
        try:
            return await handler(request)
        finally:
            limits.release(key, request.content.total_bytes)

    return limited


def install_limits(app: web.Application, settings: LimitSettings, *, identify: PeerIdentity,
                   clock: Callable[[], float] = time.monotonic) -> RequestLimits:
    """Put the limits in front of every route of ``app`` (call before the app starts);
    ``identify`` is the transport's, so both name a VEN the same way. Returns them (their
    ``budgets``, for the transport to charge CPU to)."""
    limits = RequestLimits(settings, clock=clock)
    app.middlewares.append(limits_middleware(limits, identify=identify))
    return limits
