"""The SQLite :class:`~vtn.storage.backend.Backend`: each hot path is the plain ``sqlite3``
function next to its repository (:mod:`._sqlite_events`, :func:`.outbox.claim_sqlite`, ...) run
in one transaction on this process's database threads (:meth:`._engine.Database.run_sqlite`:
writes on the writer thread, group-committed; reads on the reader threads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from . import _sqlite_events
from ._engine import Database, sqlite_time
from .backend import CheckNewer, Distribution, Enrolment, Queue, Refuse, TargetQuery
from .outbox import _DELIVERED_SQLITE, claim_sqlite, enqueue_in
from .records import (
    Delivery,
    EventAck,
    EventRecord,
    OutboxItem,
    PollDelivery,
    ReportData,
    VenRegistration,
)
from .reports import _sqlite_values, _store_update_sqlite
from .vens import _poll_lookup_sqlite, _register_sqlite, _resolve_targets_sqlite

__all__ = ["SqliteBackend"]

_SEEN: str = "INSERT INTO nonces (nonce, seen_at) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING"


class SqliteBackend:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def nonce_seen(self, nonce: str, timestamp: datetime) -> bool:
        params = (nonce, sqlite_time(timestamp))
        return await self._db.run_sqlite(
            lambda conn: conn.execute(_SEEN, params).rowcount == 0, write=True)

    async def poll_lookup(self, fingerprint: str) -> tuple[VenRegistration | None, bool]:
        return await self._db.run_sqlite(
            lambda conn: _poll_lookup_sqlite(conn, fingerprint), write=False)

    async def register(self, enrolment: Enrolment) -> tuple[VenRegistration, tuple[str, ...]]:
        return await self._db.run_sqlite(lambda conn: _register_sqlite(conn, enrolment),
                                         write=True)

    async def resolve_targets(
        self, queries: Sequence[TargetQuery]
    ) -> tuple[tuple[str, ...], ...]:
        return await self._db.run_sqlite(lambda conn: tuple(
            _resolve_targets_sqlite(conn, *query) for query in queries), write=False)

    async def put_events(self, items: Sequence[tuple[EventRecord, Queue]],
                         check_newer: CheckNewer) -> tuple[bool, ...]:
        return await self._db.run_sqlite(lambda conn: tuple(
            _sqlite_events.put(conn, event, check_newer, queue) for event, queue in items),
            write=True)

    async def enqueue(self, ven_ids: tuple[str, ...], payload: bytes, kind: str,
                      dedup_key: str | None, at: datetime) -> int:
        return await self._db.run_write(lambda conn: enqueue_in(
            self._db, conn, ven_ids, payload=payload, kind=kind, dedup_key=dedup_key, at=at))

    async def distribute(self, query: Distribution) -> tuple[EventRecord, ...]:
        return await self._db.run_sqlite(
            lambda conn: _sqlite_events.distribute(conn, query), write=True)

    async def deliver_next(self, event_list: Distribution) -> tuple[PollDelivery | None, bool]:
        return await self._db.run_sqlite(
            lambda conn: _sqlite_events.deliver_next(conn, event_list), write=True)

    async def claim_next(self, event_list: Distribution,
                         until: datetime) -> PollDelivery | None:
        return await self._db.run_sqlite(
            lambda conn: _sqlite_events.claim_next(conn, event_list, until), write=True)

    async def claim(self, ven_id: str, now: datetime, until: datetime,
                    supersede: str | None) -> OutboxItem | None:
        return await self._db.run_sqlite(
            lambda conn: claim_sqlite(conn, ven_id, now, until, supersede), write=True)

    async def mark_delivered(self, seq: int, at: datetime) -> str | None:
        params = (sqlite_time(at), seq)
        row = await self._db.run_sqlite(
            lambda conn: conn.execute(_DELIVERED_SQLITE, params).fetchone(), write=True)
        return None if row is None else str(row[0])

    async def record_acks(self, acks: tuple[EventAck, ...]) -> tuple[Delivery, ...]:
        return await self._db.run_sqlite(
            lambda conn: _sqlite_events.record_acks(conn, acks), write=True)

    async def record_answer(self, ven_id: str, fingerprint: str, acks: tuple[EventAck, ...],
                            refuse: Refuse,
                            event_ids: list[str]) -> tuple[Delivery, ...] | None:
        return await self._db.run_sqlite(lambda conn: _sqlite_events.record_answer(
            conn, ven_id, fingerprint, acks, refuse, event_ids), write=True)

    async def delivered_versions(self, ven_id: str, event_ids: list[str]) -> dict[str, int]:
        return await self._db.run_sqlite(
            lambda conn: _sqlite_events.delivered_versions(conn, ven_id, event_ids),
            write=False)

    async def delivered_to(self, event_ids: list[str]) -> dict[str, tuple[str, ...]]:
        return await self._db.run_sqlite(
            lambda conn: _sqlite_events.delivered_to(conn, event_ids), write=False)

    async def store_update(self, ven_id: str, reports: Sequence[ReportData], wanted: list[str],
                           fingerprint: str | None) -> tuple[int, tuple[str, ...]] | None:
        raw = _sqlite_values(reports)
        return await self._db.run_sqlite(
            lambda conn: _store_update_sqlite(conn, ven_id, fingerprint, raw, wanted),
            write=True)

    async def close(self) -> None:
        """Nothing of its own: the Database's threads and engine are closed with it."""
