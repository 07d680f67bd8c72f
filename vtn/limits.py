"""Request limits on the VEN-facing port: a token bucket per VEN and a global in-flight cap.

Both run as one aiohttp middleware *before* the handler reads the body, so a refused request
costs the VTN neither a body read, nor an XML parse, nor a database query.

- **Per-VEN rate** *(config: ``rate_limit_per_s``, ``rate_limit_burst``)*: one token bucket per
  client-certificate fingerprint (the same identity the services bind venIDs to, DESIGN.md
  section 2). A VEN may send ``burst`` requests at once (a poll loop draining its queue polls again
  at once) and ``per_s`` a second after that. Over the limit: **HTTP 429 with Retry-After** (whole
  seconds until a token is back), and the connection is closed after that answer, so a VEN
  drawing 429s does not keep a connection slot (:mod:`vtn.site`) while it waits.
- **Global in-flight cap** *(config: ``max_in_flight``)*: at most that many requests are being
  handled at a time, counting slow bodies still arriving. Over the cap: **HTTP 503 with
  Retry-After: 1**; the server is busy, not the client at fault.

Why HTTP codes and not an OpenADR 469 in an oadrResponse: OpenADR 2.0b has no back-pressure code
and an oadrResponse cannot say *when* to come back; a 469 inside HTTP 200 reads to a VEN as an
answered request. 429/503 with Retry-After are what every HTTP client (openleadr's, ours) already
treats as "nothing happened, try later" -- and nothing did happen: no state was read or written.

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
from vtn.transport import PeerIdentity

__all__ = ["LimitSettings", "RateLimiter", "install_limits", "limits_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_UNIDENTIFIED: Final = "-"  # one shared bucket for requests without a usable certificate


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    """``per_s``/``max_in_flight`` None switch that limit off."""

    per_s: float | None = 20.0
    burst: int = 100
    max_in_flight: int | None = 1024
    max_tracked: int = 100_000

    def __post_init__(self) -> None:
        if self.per_s is not None and self.per_s <= 0:
            raise ValueError("rate_limit_per_s must be positive (or None for no limit)")
        if self.burst < 1:
            raise ValueError("rate_limit_burst must be at least 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 (or None for no cap)")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True, kw_only=True)
class RateLimiter:
    """Token buckets by key; :meth:`take` answers 0.0 (go) or the seconds until a token is back."""

    per_s: float
    burst: int
    max_tracked: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str) -> float:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), at=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_s)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_s

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


def _peer_key(request: web.Request, identify: PeerIdentity) -> str:
    """The client-certificate fingerprint, or a shared key when there is none (the transport
    refuses those requests anyway; they still pay from one common bucket)."""
    try:
        return identify(request).fingerprint
    except NotRegistered:
        return _UNIDENTIFIED


def limits_middleware(settings: LimitSettings, *, identify: PeerIdentity,
                      clock: Callable[[], float] = time.monotonic) -> Middleware:
    """The middleware enforcing ``settings``; each call has its own buckets and counter."""
    limiter = (None if settings.per_s is None else
               RateLimiter(per_s=settings.per_s, burst=settings.burst,
                           max_tracked=settings.max_tracked, clock=clock))
    in_flight = 0

    @web.middleware
    async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if limiter is not None:
            wait = limiter.take(_peer_key(request, identify))
            if wait > 0.0:
                refused = web.Response(
                    status=429, text="request rate over this VEN's limit; retry later",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))})
                refused.force_close()  # a connection drawing 429s holds no slot
                return refused
        if settings.max_in_flight is not None and in_flight >= settings.max_in_flight:
            raise web.HTTPServiceUnavailable(
                text="the VTN is at its in-flight request cap; retry later",
                headers={"Retry-After": "1"})
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return limits


def install_limits(app: web.Application, settings: LimitSettings, *, identify: PeerIdentity,
                   clock: Callable[[], float] = time.monotonic) -> None:
    """Put the limits in front of every route of ``app`` (call before the app starts);
    ``identify`` is the transport's, so both name a VEN the same way."""
    app.middlewares.append(limits_middleware(settings, identify=identify, clock=clock))
