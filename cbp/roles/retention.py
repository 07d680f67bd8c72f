"""Retention in the running nodes: every store that holds device data is purged at its age.

A node lists its stores as :class:`RetentionRule`s (what, how old, how to purge); the ages come
from :func:`privacy.retention_schedule` of the ``[privacy]`` settings it runs with, the very list
``crowdflex privacy dpia`` prints, so the DPIA states the ages the nodes purge at.
:class:`RetentionTask` runs every rule once when the node starts (a node that was down past an
age purges at once, not an ``interval`` later) and then every ``interval``, reading "now" from
the node's clock, so a test moves that clock and calls :meth:`RetentionTask.run_once`. A rule
that fails is logged and retried at the next run; it never stops the node or the other rules.
The database stores purge in batches of rows, each its own transaction
(:mod:`vtn.storage._batches`), so a run never holds up the node's own writes for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from privacy import PSEUDONYM_PREFIX, Holder, PrivacyConfig, Store, retention_schedule
from vtn.capture import purge_captures
from vtn.storage import Storage

__all__ = ["RetentionRule", "RetentionTask", "aggregator_rules", "tso_rules"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionRule:
    """``purge(cutoff)`` deletes everything of ``store`` older than ``cutoff``, returns a count."""

    store: Store
    age: timedelta
    purge: Callable[[datetime], Awaitable[int]]


class RetentionTask:
    """Runs the rules at start and every ``interval``; serve it with :meth:`lifetime`."""

    def __init__(self, rules: tuple[RetentionRule, ...], *, clock: Callable[[], datetime],
                 interval: timedelta = timedelta(hours=1)) -> None:
        if interval <= timedelta(0):
            raise ValueError("the retention interval must be positive")
        self.rules, self._clock, self.interval = rules, clock, interval
        #: set after every pass over the rules (the first runs as the node starts)
        self.passed = asyncio.Event()

    async def run_once(self) -> dict[Store, int]:
        """Purge every store once; returns what each rule deleted (-1 where it failed)."""
        now = self._clock()
        purged: dict[Store, int] = {}
        for rule in self.rules:
            try:
                purged[rule.store] = await rule.purge(now - rule.age)
            except Exception:  # one store's failure must not keep the others' data
                log.exception("retention of %s failed; retried at the next run", rule.store)
                purged[rule.store] = -1
            else:
                if purged[rule.store]:
                    log.info("retention: %d item(s) of the %s older than %d days deleted",
                             purged[rule.store], rule.store, rule.age.days)
        self.passed.set()
        return purged

    async def _forever(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval.total_seconds())

    async def lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        """An aiohttp ``cleanup_ctx`` entry: append it after the VTN's own (storage is open)."""
        task = asyncio.get_running_loop().create_task(self._forever(), name="retention")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _ages(settings: PrivacyConfig, holder: Holder) -> dict[Store, timedelta]:
    return {entry.store: entry.age for entry in retention_schedule(settings)
            if entry.holder is holder and entry.age is not None}


def aggregator_rules(settings: PrivacyConfig, storage: Callable[[], Storage]
                     ) -> tuple[RetentionRule, ...]:
    """The aggregator's raw device telemetry (its downstream VTN's report points, keyed by
    device certificate), and the devices' ended events and delivered messages."""
    ages = _ages(settings, Holder.AGGREGATOR)

    async def raw(cutoff: datetime) -> int:
        return await storage().reports.purge_points(cutoff)

    async def events(cutoff: datetime) -> int:
        ended = await storage().events.purge_ended(cutoff)
        return ended + await storage().outbox.purge_delivered(cutoff)

    return (RetentionRule(store=Store.RAW_TELEMETRY, age=ages[Store.RAW_TELEMETRY], purge=raw),
            RetentionRule(store=Store.DEVICE_EVENTS, age=ages[Store.DEVICE_EVENTS],
                          purge=events))


def tso_rules(settings: PrivacyConfig, storage: Callable[[], Storage],
              capture_dir: Path | None) -> tuple[RetentionRule, ...]:
    """The TSO's per-device rows (rID a pseudonym) and its captured aggregator messages;
    pool-level rows stay (no person in them, and settlement records outlive device data)."""
    ages = _ages(settings, Holder.TSO)

    async def devices(cutoff: datetime) -> int:
        return await storage().reports.purge_points(cutoff, r_id_prefix=PSEUDONYM_PREFIX)

    rules = [RetentionRule(store=Store.TSO_DEVICE_ROWS, age=ages[Store.TSO_DEVICE_ROWS],
                           purge=devices)]
    if capture_dir is not None:
        folder = capture_dir

        async def captures(cutoff: datetime) -> int:
            return await asyncio.to_thread(purge_captures, folder, cutoff)

        rules.append(RetentionRule(store=Store.CAPTURES, age=ages[Store.CAPTURES],
                                   purge=captures))
    return tuple(rules)
