"""What a VTN counts for Prometheus: one :class:`VtnMetrics` (its own ``CollectorRegistry``) per VTN
app, so two VTNs in one process never add to each other's figures.

Counted as it happens: requests by service and HTTP status (429: over a VEN's rate limit, 503: the
in-flight cap or the database away), their latency per service, OpenADR refusals by response code,
signature and replay refusals, push retries, database transaction latency and, on PostgreSQL, the
wait for a pooled connection. Read when scraped (:meth:`VtnMetrics.observe_state`): VENs
registered, VENs connected (distinct client certificates among the open connections), open
connections, queue depth and the age of the oldest queued item, whether the database answered the
scrape's query, whether the poll index is live, how many notifications of other workers' changes it
has heard and how long a probe notification took to arrive (PostgreSQL).

Invariants: metric names are the ones docs/deploy.md's alert rules use; label values come from
closed sets (the five service names, HTTP status numbers, OpenADR response codes), never from what
a peer writes, so a peer cannot grow the registry.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.metrics_core import Metric

from schemas import RemoteProtocolError, ReplayRefused, Service, SignatureInvalid
from vtn.storage import StorageStats

__all__ = ["CLIENT_GONE", "CONTENT_TYPE", "VtnMetrics"]

#: the Prometheus text exposition format, version 0.0.4
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# A poll takes ~0.2 ms on SQLite and ~1.5 ms on PostgreSQL; Prometheus' default buckets start at
# 5 ms and would put nearly every request in the first one.
_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0)
_SERVICES = frozenset(s.value for s in Service)
_NO_SERVICE = "none"  # a path that is not one of the five services
#: the status counted for a request whose client went away before it was answered (nginx's code)
CLIENT_GONE = 499
_BOUNDS = (*_SECONDS_BUCKETS, math.inf)
_BOUND_LABELS = (*map(repr, _SECONDS_BUCKETS), "+Inf")  # as prometheus_client writes them
_REQUESTS = "crowdflex_vtn_requests"
_LATENCY = "crowdflex_vtn_request_duration_seconds"


class _Latency:
    """One service's latency histogram: the count in each bucket (not cumulative) and the sum."""

    __slots__ = ("buckets", "created", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(_BOUNDS)
        self.total = 0.0
        self.created = time.time()


class _Answered:
    """The requests answered, by service and HTTP status, and their latency by service, kept as
    plain numbers (counted per request: no lock, no child to look up) and exposed when scraped
    as a prometheus_client ``Counter`` and ``Histogram`` expose theirs: the same names, help,
    types, labels, values, ``_created`` samples and order."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = {s: _Latency() for s in (*_SERVICES, _NO_SERVICE)}
        self.counts: dict[tuple[str, int], int] = {}
        self.created: dict[tuple[str, int], float] = {}
        registry.register(self)

    def answered(self, service: str, status: int, seconds: float) -> None:
        latency = self.latency[service]
        latency.buckets[bisect_left(_BOUNDS, seconds)] += 1  # the first bound >= seconds
        latency.total += seconds
        key = (service, status)
        count = self.counts.get(key)
        if count is None:
            self.created[key] = time.time()
            count = 0
        self.counts[key] = count + 1

    def collect(self) -> Iterator[Metric]:
        created = prometheus_metrics._use_created  # as PROMETHEUS_DISABLE_CREATED_SERIES sets it
        requests = Metric(_REQUESTS, "VEN-facing requests answered, by service and HTTP status",
                          "counter")
        for (service, status), count in list(self.counts.items()):
            labels = {"service": service, "status": str(status)}
            requests.add_sample(f"{_REQUESTS}_total", labels, float(count))
            if created:
                requests.add_sample(f"{_REQUESTS}_created", labels, self.created[service, status])
        yield requests
        latency = Metric(_LATENCY, "Time to answer a VEN-facing request", "histogram")
        for service, of in self.latency.items():
            cumulative = 0.0
            for bound, count in zip(_BOUND_LABELS, list(of.buckets), strict=True):
                cumulative += count
                latency.add_sample(f"{_LATENCY}_bucket", {"service": service, "le": bound},
                                   cumulative)
            latency.add_sample(f"{_LATENCY}_count", {"service": service}, cumulative)
            latency.add_sample(f"{_LATENCY}_sum", {"service": service}, of.total)
            if created:
                latency.add_sample(f"{_LATENCY}_created", {"service": service}, of.created)
        yield latency


class VtnMetrics:
    """The instruments of one VTN and the registry that exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._answered = _Answered(r)
        self._refusals = Counter(
            "crowdflex_vtn_refusals", "Requests answered with an OpenADR error code",
            ("service", "code"), registry=r)
        self._signatures = Counter(
            "crowdflex_vtn_signature_refusals",
            "Payloads refused for their XML signature (reason=signature) or ReplayProtect "
            "(reason=replay)", ("reason",), registry=r)
        self._push_retries = Counter(
            "crowdflex_vtn_push_retries", "Push deliveries that failed and will be retried",
            registry=r)
        self._transactions = Histogram(
            "crowdflex_vtn_db_transaction_duration_seconds",
            "Database transactions, from asking to committed (waits for a connection or the "
            "writer included)", ("kind",), buckets=_SECONDS_BUCKETS, registry=r)
        self._pool_waits = Histogram(
            "crowdflex_vtn_db_pool_wait_seconds",
            "PostgreSQL: time a transaction waited for its pooled connection (a free one, or a "
            "new one opened, and its liveness ping)", buckets=_SECONDS_BUCKETS, registry=r)
        self._vens_registered = Gauge(
            "crowdflex_vtn_vens_registered", "VENs with an active registration", registry=r)
        self._vens_connected = Gauge(
            "crowdflex_vtn_vens_connected",
            "Distinct VEN client certificates among the open connections", registry=r)
        self._connections = Gauge(
            "crowdflex_vtn_connections_open", "Open connections on the VEN-facing port",
            registry=r)
        self._queued = Gauge(
            "crowdflex_vtn_queue_depth", "Outbox items not yet delivered, all VENs", registry=r)
        self._oldest = Gauge(
            "crowdflex_vtn_queue_oldest_age_seconds",
            "Age of the oldest undelivered outbox item (0 when none)", registry=r)
        self._index_live = Gauge(
            "crowdflex_vtn_poll_index_live",
            "1 while quiet VENs' polls are answered from memory (SQLite; PostgreSQL while "
            "this worker hears the others' notifications), 0 while every poll reads",
            registry=r)
        self._heard = Counter(
            "crowdflex_vtn_notifications_heard",
            "PostgreSQL notifications of other workers' changes applied to the poll index",
            registry=r)
        self._heard_so_far = 0
        self._lag = Gauge(
            "crowdflex_vtn_notification_lag_seconds",
            "PostgreSQL: at the last scrape that could measure it, seconds from committing a "
            "probe notification to this worker hearing it", registry=r)
        self._database_up = Gauge(
            "crowdflex_vtn_database_up",
            "1 when the database answered this scrape's query, else 0", registry=r)
        self._reads = self._transactions.labels("read")
        self._writes = self._transactions.labels("write")

    # ------------------------------------------------------------ counted as it happens
    def answered(self, service: str, status: int, seconds: float) -> None:
        """A VEN-facing request to the path segment ``service`` (any text: what is no service
        counts as "none") was answered ``status`` after ``seconds``."""
        self._answered.answered(service if service in _SERVICES else _NO_SERVICE, status,
                                seconds)

    def middleware(self) -> Middleware:
        """Counts and times every request of the app it is installed on; install it first, so
        the answers of the limits (429, 503) are counted too."""
        answered = self.answered

        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500  # what aiohttp answers for an exception that is not an HTTP answer
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                status = CLIENT_GONE
                raise
            finally:
                answered(request.match_info.get("service", _NO_SERVICE), status,
                         time.perf_counter() - started)

        return measure

    def refused(self, service: Service, error: RemoteProtocolError) -> None:
        """A request was answered with ``error``'s OpenADR code (the transport's hook)."""
        self._refusals.labels(service.value, str(error.response_code)).inc()
        if isinstance(error, ReplayRefused):
            self._signatures.labels("replay").inc()
        elif isinstance(error, SignatureInvalid):
            self._signatures.labels("signature").inc()

    def push_retried(self) -> None:
        """A push failed; the item was released for a later attempt."""
        self._push_retries.inc()

    def transaction(self, *, write: bool, seconds: float) -> None:
        """A database transaction ended after ``seconds`` (storage's observer)."""
        (self._writes if write else self._reads).observe(seconds)

    def pool_wait(self, seconds: float) -> None:
        """A transaction got its pooled connection after ``seconds`` (storage's observer)."""
        self._pool_waits.observe(seconds)

    # ------------------------------------------------------------ read when scraped
    def observe_state(self, stats: StorageStats | None, *, now: datetime, connections: int,
                      vens_connected: int, index_live: bool, heard: int,
                      lag: float | None = None) -> None:
        """Set the gauges from what a scrape read (``heard``: notifications the listener has
        applied so far; ``lag``: the probe's, None when not measured, which keeps the last);
        ``stats`` None: the database did not answer (its gauges keep their last values and
        ``database_up`` is 0)."""
        if lag is not None:
            self._lag.set(lag)
        self._heard.inc(max(0, heard - self._heard_so_far))
        self._heard_so_far = max(heard, self._heard_so_far)
        self._index_live.set(1 if index_live else 0)
        self._connections.set(connections)
        self._vens_connected.set(vens_connected)
        self._database_up.set(0 if stats is None else 1)
        if stats is None:
            return
        self._vens_registered.set(stats.vens_registered)
        self._queued.set(stats.queued)
        oldest = stats.oldest_queued_at
        self._oldest.set(0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
