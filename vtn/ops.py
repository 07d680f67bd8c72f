"""The operations endpoints a VTN serves on its admin port, without the admin token:

- ``GET /health``: 200 while the process runs and its event loop answers (liveness).
- ``GET /ready``: 200 when the database answers and its schema is at the head migration, else
  503 with the kind of reason (readiness: a load balancer sends VENs only to ready workers); the
  database driver's own words, which may name a host, a user or a file, go to the log only.
- ``GET /metrics``: every :class:`vtn.metrics.VtnMetrics` figure in the Prometheus text format.

They show counts and states, never a VEN, event or report, so they need no token; everything
else on the admin port still does (:func:`vtn.admin.create_admin_app`).

Invariants: each database look-up has a deadline (:data:`DATABASE_DEADLINE_S`), and a scrape's
two (the figures, the notification probe) run at once, so a database that hangs makes ``/ready``
answer 503 and ``/metrics`` answer without its database figures within one deadline, never hang
the probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web

from schemas.identity import certificate_fingerprint
from vtn.app import METRICS, SERVICES, STORAGE
from vtn.faults import storage_failure
from vtn.metrics import CONTENT_TYPE
from vtn.migrations import head_revisions, revisions
from vtn.storage import Storage, StorageStats

__all__ = ["DATABASE_DEADLINE_S", "ops_routes"]

log = logging.getLogger(__name__)

#: how long /ready and /metrics wait for the database
DATABASE_DEADLINE_S: Final = 5.0


def ops_routes(vtn_app: web.Application,
               vtn_server: Callable[[], web.Server | None]) -> list[web.RouteDef]:
    """The three routes for ``vtn_app``; ``vtn_server`` returns the server of its VEN-facing
    runner (its open connections are the "connected" figures), None before it started."""
    heads = head_revisions()  # the migration scripts do not change while the VTN runs

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="alive\n")

    async def ready(_request: web.Request) -> web.Response:
        reason = await _unready_because(vtn_app, heads)
        if reason is not None:
            return web.Response(status=503, text=f"not ready: {reason}\n")
        return web.Response(text="ready\n")

    async def metrics(_request: web.Request) -> web.Response:
        figures = vtn_app[METRICS]
        server = vtn_server()
        connections, vens = _connected(server) if server is not None else (0, 0)
        storage = vtn_app.get(STORAGE)
        # at once: a slow database delays the scrape by one deadline, not two
        stats, lag = await asyncio.gather(_stats(vtn_app), _lag(storage))
        figures.observe_state(stats, now=vtn_app[SERVICES].clock(),
                              connections=connections, vens_connected=vens,
                              index_live=storage is not None and storage.poll_index_live,
                              heard=_heard(storage), lag=lag)
        return web.Response(body=figures.exposition(),
                            headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/health", health), web.get("/ready", ready),
            web.get("/metrics", metrics)]


async def _unready_because(vtn_app: web.Application, heads: frozenset[str]) -> str | None:
    storage = vtn_app.get(STORAGE)
    if storage is None:
        return "starting: the database is not open yet"
    try:
        async with asyncio.timeout(DATABASE_DEADLINE_S):
            current = await revisions(storage.engine)
    except TimeoutError:
        return f"the database did not answer within {DATABASE_DEADLINE_S} s"
    except Exception as exc:  # whatever it is, the VTN cannot serve: say what kind it was
        log.warning("not ready: %r", exc)
        cause = storage_failure(exc)
        return f"database check failed ({type(exc).__name__})" if cause is None else cause.kind
    if current != heads:
        return (f"the database schema is at {', '.join(sorted(current)) or 'no revision'}, "
                f"this VTN needs {', '.join(sorted(heads))} (run the migrations)")
    return None


async def _stats(vtn_app: web.Application) -> StorageStats | None:
    storage = vtn_app.get(STORAGE)
    if storage is None:
        return None
    try:
        async with asyncio.timeout(DATABASE_DEADLINE_S):
            return await storage.stats()
    except Exception as exc:  # a scrape still answers; crowdflex_vtn_database_up says 0
        log.warning("metrics without database figures: %r", exc)
        return None


def _heard(storage: Storage | None) -> int:
    listener = None if storage is None else storage.listener
    return 0 if listener is None else listener.heard


async def _lag(storage: Storage | None) -> float | None:
    listener = None if storage is None else storage.listener
    if storage is None or listener is None:
        return None
    try:
        async with asyncio.timeout(DATABASE_DEADLINE_S):
            return await listener.lag(storage.engine)
    except Exception as exc:  # not listening or not heard in time: the gauge keeps its value
        log.warning("notification lag not measured: %r", exc)
        return None


def _connected(server: web.Server) -> tuple[int, int]:
    """Open connections, and the distinct client certificates among them."""
    fingerprints: set[str] = set()
    opened = 0
    for handler in server.connections:
        transport = handler.transport
        if transport is None:
            continue
        opened += 1
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            fingerprints.add(certificate_fingerprint(der))
    return opened, len(fingerprints)
