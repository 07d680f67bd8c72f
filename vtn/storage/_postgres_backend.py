"""The PostgreSQL :class:`~vtn.storage.backend.Backend`: SQL sent by asyncpg, no ORM, no greenlet
hop per statement. asyncpg prepares each statement once per connection and caches it.

Invariants:
- A fixed pool of :data:`POOL_SIZE` connections, opened with the storage and never churned (no
  pre-ping round trip, no overflow connections opened and closed under load); a connection that
  died (PostgreSQL restarted) is replaced by asyncpg's pool when it is next handed out; a call
  that meets one the server ended before asyncpg saw it close fails with StorageUnavailable.
- Batches are bound as arrays and expanded with ``unnest``: one statement, one round trip, for
  a report's points, a fan-out's outbox rows or an event's targets.
- The writes of different VENs that wait together share one statement and one commit, each kind
  its own (:mod:`._postgres_groups`): poll deliveries (:mod:`._postgres_deliveries`),
  oadrCreatedEvent answers (:mod:`._postgres_answers`), report updates
  (:mod:`._postgres_reports`).
- Concurrency with other workers: an outbox claim takes its row with ``FOR UPDATE SKIP LOCKED``
  and re-checks it, an event write locks the event's row first, and every transaction that
  queues outbox rows notifies every worker's poll index on commit (:mod:`.notify`).
- Times: a naive datetime is refused with ``ValueError`` before anything is sent
  (:mod:`._postgres_rows`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from time import perf_counter
from typing import Any, Final, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import URL

from ._engine import PoolWaitObserver, TransactionObserver, session_settings
from ._postgres_answers import Answer, Outcome, check_and_store
from ._postgres_deliveries import Delivered, deliver, give_back
from ._postgres_groups import Groups
from ._postgres_reports import Result, Update, points_of, store
from ._postgres_rows import (
    ACK_CHANGES,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    aware,
    delivery_of,
    event_of,
    item_of,
    maybe,
    registration_of,
)
from .backend import (
    EVENT_KIND,
    CheckNewer,
    Distribution,
    Enrolment,
    Queue,
    Refuse,
    StoredEvent,
    TargetQuery,
    answers_current,
)
from .notify import OUTBOX_CHANNEL, VENS_CHANNEL, enqueued_payload
from .records import (
    Delivery,
    EventAck,
    EventRecord,
    EventStatus,
    OutboxItem,
    PollDelivery,
    ReportData,
    StorageBusy,
    StorageConflict,
    StorageUnavailable,
    TargetKind,
    TargetRef,
    VenRegistration,
)

__all__ = ["POOL_SIZE", "PostgresBackend"]

T = TypeVar("T")
W = TypeVar("W")
R = TypeVar("R")

#: connections of the hot-path pool, all opened at start (a worker serves one core; report
#: updates waiting together share one statement, so a few connections keep the core busy)
POOL_SIZE: Final = 4

_NOTIFY: Final = "SELECT pg_notify($1, $2)"
_SEEN: Final = (
    "INSERT INTO nonces (nonce, seen_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING"
    " RETURNING 1"
)
_POLL_LOOKUP: Final = (
    "SELECT ven_id, registration_id, fingerprint, ven_name, profile_name, transport_name,"
    " transport_address, http_pull_model, report_only, xml_signature, created_at, cancelled_at,"
    " EXISTS (SELECT 1 FROM outbox WHERE outbox.ven_id = vens.ven_id"
    " AND outbox.delivered_at IS NULL) FROM vens WHERE fingerprint = $1"
)
_VEN_COLUMNS: Final = (
    "ven_id, registration_id, fingerprint, ven_name, profile_name, transport_name,"
    " transport_address, http_pull_model, report_only, xml_signature, created_at, cancelled_at"
)
_REGISTER: Final = (
    f"INSERT INTO vens ({_VEN_COLUMNS}) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    " ON CONFLICT (fingerprint) DO UPDATE SET registration_id = excluded.registration_id,"
    " ven_name = excluded.ven_name, profile_name = excluded.profile_name,"
    " transport_name = excluded.transport_name, transport_address = excluded.transport_address,"
    " http_pull_model = excluded.http_pull_model, report_only = excluded.report_only,"
    " xml_signature = excluded.xml_signature, cancelled_at = excluded.cancelled_at"
    f" RETURNING {_VEN_COLUMNS}"
)
_QUEUE_ONE: Final = (
    "INSERT INTO outbox (ven_id, kind, payload, dedup_key, enqueued_at)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ven_id, dedup_key) DO NOTHING"
)
_TARGETING_VEN: Final = (
    "SELECT DISTINCT e.event_id FROM events e JOIN event_targets t ON t.event_id = e.event_id"
    " WHERE e.status = ANY($1::text[]) AND (e.ends_at IS NULL OR e.ends_at > $2)"
    " AND ((t.kind = $3 AND t.value = $4) OR (t.kind, t.value) IN"
    " (SELECT kind, value FROM ven_memberships WHERE ven_id = $4)) ORDER BY e.event_id"
)
_RESOLVE: Final = (
    "SELECT ven_id FROM vens WHERE cancelled_at IS NULL AND (ven_id = ANY($1::text[])"
    " OR ven_id IN (SELECT m.ven_id FROM ven_memberships m"
    " JOIN unnest($2::text[], $3::text[]) AS w(kind, value)"
    " ON m.kind = w.kind AND m.value = w.value)) ORDER BY ven_id"
)
_LOCK_EVENT: Final = (
    "SELECT modification_number, payload FROM events WHERE event_id = $1 FOR UPDATE"
)
_PUT_EVENT: Final = (
    f"INSERT INTO events ({EVENT_COLUMNS}, untargeted)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (event_id) DO UPDATE SET modification_number = excluded.modification_number,"
    " status = excluded.status, market_context = excluded.market_context,"
    " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
    " response_required = excluded.response_required, payload = excluded.payload,"
    " updated_at = excluded.updated_at, untargeted = excluded.untargeted"
)
# One statement replaces an event's targets; its parts see the same snapshot, so it deletes
# only the targets not wanted any more and inserts only the new ones.
_TARGETS: Final = (
    "WITH wanted AS (SELECT * FROM unnest($2::text[], $3::text[]) AS t(kind, value)),"
    " gone AS (DELETE FROM event_targets e WHERE e.event_id = $1"
    " AND (e.kind, e.value) NOT IN (SELECT kind, value FROM wanted))"
    " INSERT INTO event_targets (event_id, kind, value) SELECT $1, kind, value FROM wanted"
    " ON CONFLICT DO NOTHING"
)
_NO_TARGETS: Final = "DELETE FROM event_targets WHERE event_id = $1"
# WITH ORDINALITY ... ORDER BY: the outbox seq follows the caller's order of VENs.
_QUEUE_SELECT: Final = (
    "INSERT INTO outbox (ven_id, kind, payload, dedup_key, enqueued_at)"
    " SELECT v, $2, $3, $4, $5 FROM unnest($1::text[]) WITH ORDINALITY AS q(v, n) ORDER BY n"
)
_QUEUE: Final = (
    f"WITH added AS ({_QUEUE_SELECT} ON CONFLICT (ven_id, dedup_key) DO NOTHING RETURNING 1)"
    " SELECT count(*) FROM added"
)
_QUEUE_ALL: Final = f"WITH added AS ({_QUEUE_SELECT} RETURNING 1) SELECT count(*) FROM added"
_HITS: Final = (
    "SELECT event_id, kind, value FROM event_targets WHERE kind = $1 AND value = $2"
    " UNION SELECT t.event_id, t.kind, t.value FROM ven_memberships m"
    " JOIN event_targets t ON t.kind = m.kind AND t.value = m.value WHERE m.ven_id = $2"
)
_ADDRESSED: Final = (
    f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.status = ANY($1::text[])"
    " AND (e.event_id = ANY($2::text[])"
    " OR e.untargeted) AND (e.status != $3 OR e.updated_at >= $4)"
    " AND (e.status = $3 OR e.ends_at IS NULL OR e.ends_at > $5) ORDER BY e.event_id"
)
_DELIVERED: Final = (
    "INSERT INTO event_deliveries (event_id, ven_id, delivered_modification_number,"
    " delivered_at) SELECT e, $2, n, $4 FROM unnest($1::text[], $3::int[]) AS d(e, n)"
    " ON CONFLICT (event_id, ven_id) DO UPDATE SET"
    " delivered_modification_number = excluded.delivered_modification_number,"
    " delivered_at = excluded.delivered_at"
)
_OUTBOX_DELIVERED: Final = (
    "UPDATE outbox SET delivered_at = $1, claimed_until = NULL"
    " WHERE seq = $2 AND delivered_at IS NULL RETURNING ven_id"
)
_CLAIMABLE: Final = (
    "ven_id = $2 AND delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $1)"
)
# The row is re-checked by the UPDATE itself: PostgreSQL re-evaluates the conditions on the
# latest version if another claim committed meanwhile, so an item is never taken twice.
_OLDEST: Final = (
    f" WHERE seq = (SELECT seq FROM outbox WHERE {_CLAIMABLE} ORDER BY seq LIMIT 1"
    f" FOR UPDATE SKIP LOCKED) AND {_CLAIMABLE}"
    " RETURNING seq, ven_id, kind, payload, dedup_key, enqueued_at"
)
_CLAIM: Final = "UPDATE outbox SET claimed_until = $3" + _OLDEST
# SKIP LOCKED: an item another worker holds is that worker's to hand out; waiting for it, two
# workers pushing to one VEN at once could each wait for the other's (as in _postgres_deliveries).
_SUPERSEDE: Final = (
    "UPDATE outbox SET delivered_at = $1, claimed_until = NULL WHERE seq IN (SELECT seq"
    " FROM outbox WHERE ven_id = $2 AND kind = $3 AND seq != $4 AND delivered_at IS NULL"
    " FOR UPDATE SKIP LOCKED)"
)
_BEHIND: Final = f"SELECT EXISTS (SELECT 1 FROM outbox WHERE {_CLAIMABLE} AND seq > $3)"
# The row changes only as ACK_CHANGES says (vtn.storage.events).
_ACK: Final = (
    "INSERT INTO event_deliveries (event_id, ven_id, ack_modification_number, ack_opt_type,"
    " ack_response_code, ack_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id, ven_id)"
    " DO UPDATE SET ack_modification_number = excluded.ack_modification_number,"
    " ack_opt_type = excluded.ack_opt_type, ack_response_code = excluded.ack_response_code,"
    f" ack_at = excluded.ack_at WHERE {ACK_CHANGES} RETURNING {DELIVERY_COLUMNS}"
)
_DELIVERY: Final = (
    f"SELECT {DELIVERY_COLUMNS} FROM event_deliveries WHERE event_id = $1 AND ven_id = $2"
)
_ACTIVE_VEN: Final = (
    "SELECT 1 FROM vens WHERE fingerprint = $1 AND ven_id = $2 AND cancelled_at IS NULL"
)
_VERSIONS: Final = (
    "SELECT e.event_id, e.modification_number FROM events e JOIN event_deliveries d"
    " ON d.event_id = e.event_id WHERE d.ven_id = $1 AND e.event_id = ANY($2::text[])"
)
_DELIVERED_TO: Final = (
    "SELECT event_id, ven_id FROM event_deliveries WHERE event_id = ANY($1::text[])"
    " ORDER BY event_id, ven_id"
)


# InternalClientError: asyncpg lost track of the connection's protocol, as when the server's
# last error (it ended the connection) is read while the connection is idle, before its close.
_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError,
                         asyncpg.InternalClientError, OSError, TimeoutError)
# SQLSTATE classes that mean "the database is not there for us now", not "this call is wrong":
# connection exception, insufficient resources (disk full, too many connections), operator
# intervention (shutdown, cannot connect now); 55000: a database not accepting connections.
_UNAVAILABLE_CLASSES: Final = ("08", "53", "57")
# lock_timeout ran out (VtnConfig.database_lock_timeout_s): this statement only, rolled back
_LOCK_NOT_AVAILABLE: Final = "55P03"


def _raise_unavailable(exc: BaseException) -> None:
    """Raise :class:`StorageUnavailable` from ``exc`` when it means the database is not there
    for us now (the caller answers 503 and the VEN retries); otherwise return, and the caller
    re-raises ``exc`` as it is (a bug stays a bug)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state == _LOCK_NOT_AVAILABLE:
            raise StorageBusy(f"{type(exc).__name__}: {exc}") from exc
        if state[:2] not in _UNAVAILABLE_CLASSES and state != "55000":
            return
    elif isinstance(exc, asyncpg.InterfaceError) and "closed" not in str(exc):
        return  # misuse of the driver
    raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc


async def _unchanged(_conn: asyncpg.Connection) -> None:
    """A pooled connection needs no reset: no session state outlives its transaction."""


class PostgresBackend:
    """Built with :meth:`open`; closed by the Storage."""

    def __init__(self, pool: asyncpg.Pool, observe: TransactionObserver,
                 pool_wait: PoolWaitObserver) -> None:
        self._pool = pool
        self._observe = observe
        self._pool_wait = pool_wait
        self._reports: Groups[Update, Result] = Groups(lambda group: store(self._fetch, group))
        self._deliveries: Groups[Distribution, Delivered] = Groups(
            lambda group: deliver(self._fetch, group),
            lambda poll, delivered: give_back(self._fetch, poll, delivered))
        self._answers: Groups[Answer, Outcome] = Groups(
            lambda group: check_and_store(self._fetch, group))

    @classmethod
    async def open(cls, url: URL, observe: TransactionObserver, pool_wait: PoolWaitObserver,
                   *, lock_timeout_s: float | None = None,
                   statement_timeout_s: float | None = None) -> PostgresBackend:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        pool = await asyncpg.create_pool(
            dsn, min_size=POOL_SIZE, max_size=POOL_SIZE,
            server_settings=session_settings(lock_timeout_s, statement_timeout_s),
            # never retire a connection for its age or its query count (asyncpg's defaults:
            # 5 minutes idle, 50,000 queries), and skip asyncpg's reset round trip on every
            # release: these connections never LISTEN, SET or lock beyond their transaction
            max_queries=2**62, max_inactive_connection_lifetime=0, reset=_unchanged)
        return cls(pool, observe, pool_wait)

    @property
    def pool(self) -> asyncpg.Pool:
        """The hot paths' connections (:data:`POOL_SIZE`), for tests and metrics."""
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; how long it was waited for goes to ``pool_wait``. What goes
        wrong on it comes out as the storage's errors: a constraint violation as
        StorageConflict, an unreachable server as StorageUnavailable."""
        asked = perf_counter()
        try:
            async with self._pool.acquire() as conn:
                self._pool_wait(perf_counter() - asked)
                try:
                    yield conn
                except asyncpg.InternalClientError:
                    conn.terminate()  # its protocol state is lost: the pool opens another
                    raise
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise StorageConflict(str(exc)) from exc
        except _DRIVER_ERRORS as exc:
            _raise_unavailable(exc)
            raise

    async def _run(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *,
                   write: bool) -> T:
        """``work(connection)`` in one transaction."""
        started = perf_counter()
        try:
            async with self._connection() as conn, conn.transaction():
                return await work(conn)
        finally:
            self._observe(write=write, seconds=perf_counter() - started)

    async def _one(self, sql: str, *args: object, write: bool) -> Any:
        """One statement (its own transaction): its first row."""
        started = perf_counter()
        try:
            async with self._connection() as conn:
                return await conn.fetchrow(sql, *args)
        finally:
            self._observe(write=write, seconds=perf_counter() - started)

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        """One statement (its own transaction): all its rows."""
        async with self._connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def _all(self, sql: str, *args: object, write: bool) -> list[Any]:
        """:meth:`_fetch`, observed."""
        started = perf_counter()
        try:
            return await self._fetch(sql, *args)
        finally:
            self._observe(write=write, seconds=perf_counter() - started)

    async def _grouped(self, groups: Groups[W, R], write: W, ven_id: str) -> R:
        """``write`` sent with the writes of other VENs waiting with it, observed."""
        started = perf_counter()
        try:
            return await groups.run(write, ven_id)
        finally:
            self._observe(write=True, seconds=perf_counter() - started)

    async def nonce_seen(self, nonce: str, timestamp: datetime) -> bool:
        return await self._one(_SEEN, nonce, aware(timestamp), write=True) is None

    async def poll_lookup(self, fingerprint: str) -> tuple[VenRegistration | None, bool]:
        row = await self._one(_POLL_LOOKUP, fingerprint, write=False)
        return (None, False) if row is None else (registration_of(row), bool(row[12]))

    async def register(self, enrolment: Enrolment) -> tuple[VenRegistration, tuple[str, ...]]:
        reg, at = enrolment.registration, aware(enrolment.now)
        values = (reg.ven_id, reg.registration_id, reg.fingerprint, reg.ven_name,
                  reg.profile_name, reg.transport_name, reg.transport_address,
                  reg.http_pull_model, reg.report_only, reg.xml_signature,
                  aware(reg.created_at), maybe(reg.cancelled_at))

        async def work(conn: asyncpg.Connection) -> tuple[VenRegistration, tuple[str, ...]]:
            stored = registration_of(await conn.fetchrow(_REGISTER, *values))
            # every worker forgets this certificate's registration, on commit
            await conn.execute(_NOTIFY, VENS_CHANNEL, reg.fingerprint)
            queued = [(q.kind, q.payload, q.dedup_key) for q in enrolment.queued]
            affected: tuple[str, ...] = ()
            if enrolment.live:
                affected = tuple(r[0] for r in await conn.fetch(
                    _TARGETING_VEN, [s.value for s in enrolment.live], at, TargetKind.VEN.value,
                    stored.ven_id))
                if affected:  # like a publish: the queued item only says "your list changed"
                    queued.append((EVENT_KIND, b"", None))
            if queued:
                await conn.executemany(_QUEUE_ONE, [(stored.ven_id, *q, at) for q in queued])
                await conn.execute(_NOTIFY, OUTBOX_CHANNEL, enqueued_payload([stored.ven_id]))
            return stored, affected

        return await self._run(work, write=True)

    async def resolve_targets(
        self, queries: Sequence[TargetQuery]
    ) -> tuple[tuple[str, ...], ...]:
        async def work(conn: asyncpg.Connection) -> tuple[tuple[str, ...], ...]:
            found = []
            for direct, indirect in queries:
                if not direct and not indirect:
                    found.append(())
                    continue
                rows = await conn.fetch(_RESOLVE, direct, [k for k, _ in indirect],
                                        [v for _, v in indirect])
                found.append(tuple(r[0] for r in rows))
            return tuple(found)

        return await self._run(work, write=False)

    async def put_events(self, items: Sequence[tuple[EventRecord, Queue]],
                         check_newer: CheckNewer) -> tuple[bool, ...]:
        async def work(conn: asyncpg.Connection) -> tuple[bool, ...]:
            changed, notified = [], []
            for event, queue in items:
                found = await conn.fetchrow(_LOCK_EVENT, event.event_id)
                if found is not None and not check_newer(event, StoredEvent(*found)):
                    changed.append(False)
                    continue
                targets = list(dict.fromkeys(event.targets))
                await conn.execute(_PUT_EVENT, event.event_id, event.modification_number,
                                   event.status.value, event.market_context,
                                   maybe(event.starts_at), maybe(event.ends_at),
                                   event.response_required, event.payload,
                                   aware(event.updated_at), not targets)
                if targets:
                    await conn.execute(_TARGETS, event.event_id,
                                       [t.kind.value for t in targets], [t.value for t in targets])
                else:
                    await conn.execute(_NO_TARGETS, event.event_id)
                ven_ids = list(dict.fromkeys(queue.ven_ids))
                if ven_ids and await conn.fetchval(_QUEUE, ven_ids, EVENT_KIND, queue.payload,
                                                   queue.dedup_key, event.updated_at):
                    notified += ven_ids
                changed.append(True)
            if notified:  # every worker's poll index hears it on commit
                await conn.execute(_NOTIFY, OUTBOX_CHANNEL,
                                   enqueued_payload(list(dict.fromkeys(notified))))
            return tuple(changed)

        return await self._run(work, write=True)

    async def enqueue(self, ven_ids: tuple[str, ...], payload: bytes, kind: str,
                      dedup_key: str | None, at: datetime) -> int:
        targets = list(dict.fromkeys(ven_ids))
        sql = _QUEUE_ALL if dedup_key is None else _QUEUE

        async def work(conn: asyncpg.Connection) -> int:
            added = int(await conn.fetchval(sql, targets, kind, payload, dedup_key, aware(at)))
            if added:
                await conn.execute(_NOTIFY, OUTBOX_CHANNEL, enqueued_payload(targets))
            return added

        return await self._run(work, write=True)

    async def _distribute(self, conn: asyncpg.Connection,
                          query: Distribution) -> tuple[EventRecord, ...]:
        ven_id, now = query.ven_id, aware(query.now)
        by_event: dict[str, list[TargetRef]] = {}
        for event_id, kind, value in sorted(
                await conn.fetch(_HITS, TargetKind.VEN.value, ven_id),
                key=lambda row: (row[1], row[2])):
            by_event.setdefault(event_id, []).append(
                TargetRef(kind=TargetKind(kind), value=value))
        rows = await conn.fetch(_ADDRESSED, [s.value for s in query.statuses], list(by_event),
                                EventStatus.CANCELLED.value, aware(query.cancelled_since), now)
        events = tuple(event_of(row, by_event.get(row[0], ())) for row in rows)[: query.limit]
        if events:
            await conn.execute(_DELIVERED, [e.event_id for e in events], ven_id,
                               [e.modification_number for e in events], now)
        if query.outbox_seq is not None:
            await conn.execute(_OUTBOX_DELIVERED, now, query.outbox_seq)
        return events

    async def distribute(self, query: Distribution) -> tuple[EventRecord, ...]:
        return await self._run(lambda conn: self._distribute(conn, query), write=True)

    async def deliver_next(self, event_list: Distribution) -> tuple[PollDelivery | None, bool]:
        """Taken with the polls of other VENs waiting with it, by one statement
        (:mod:`._postgres_deliveries`)."""
        aware(event_list.now)  # a naive time fails its own call, not a group
        aware(event_list.cancelled_since)
        return await self._grouped(self._deliveries, event_list, event_list.ven_id)

    async def claim(self, ven_id: str, now: datetime, until: datetime,
                    supersede: str | None) -> OutboxItem | None:
        return await self._run(
            lambda conn: self._claim(conn, ven_id, now, until, supersede), write=True)

    async def claim_next(self, event_list: Distribution,
                         until: datetime) -> PollDelivery | None:
        async def work(conn: asyncpg.Connection) -> PollDelivery | None:
            item = await self._claim(conn, event_list.ven_id, event_list.now, until, EVENT_KIND)
            if item is None:
                return None
            return PollDelivery(item=item, events=await self._distribute(conn, event_list)
                                if item.kind == EVENT_KIND else ())

        return await self._run(work, write=True)

    @staticmethod
    async def _claim(conn: asyncpg.Connection, ven_id: str, now: datetime, until: datetime,
                     supersede: str | None) -> OutboxItem | None:
        row = await conn.fetchrow(_CLAIM, aware(now), ven_id, aware(until))
        if row is None:
            return None
        if supersede is not None and row[2] == supersede:
            await conn.execute(_SUPERSEDE, now, ven_id, supersede, row[0])
        return item_of(row, bool(await conn.fetchval(_BEHIND, now, ven_id, row[0])), until)

    async def mark_delivered(self, seq: int, at: datetime) -> str | None:
        row = await self._one(_OUTBOX_DELIVERED, aware(at), seq, write=True)
        return None if row is None else str(row[0])

    async def _acks(self, conn: asyncpg.Connection,
                    acks: tuple[EventAck, ...]) -> tuple[Delivery, ...]:
        stored = []
        for ack in acks:
            key = (ack.event_id, ack.ven_id)
            row = await conn.fetchrow(_ACK, *key, ack.modification_number, ack.opt_type.value,
                                      ack.response_code, aware(ack.at))
            # No row back: an ack for a newer modificationNumber, or this very answer, stays;
            # read what is stored.
            stored.append(delivery_of(row or await conn.fetchrow(_DELIVERY, *key)))
        return tuple(stored)

    async def record_acks(self, acks: tuple[EventAck, ...]) -> tuple[Delivery, ...]:
        return await self._run(lambda conn: self._acks(conn, acks), write=True)

    async def record_answer(self, ven_id: str, fingerprint: str, acks: tuple[EventAck, ...],
                            refuse: Refuse,
                            event_ids: list[str]) -> tuple[Delivery, ...] | None:
        """Checked and stored with the answers of other VENs waiting with it, by one statement
        (:mod:`._postgres_answers`), unless one event is answered twice: one upsert cannot
        touch a row twice, so those acks go one by one in a transaction of their own."""
        if len(event_ids) < len(acks):
            return await self._run(lambda conn: self._answer(
                conn, ven_id, fingerprint, acks, refuse, event_ids), write=True)
        for ack in acks:
            aware(ack.at)  # a naive time fails its own call, not a group
        outcome = await self._grouped(
            self._answers, Answer(ven_id=ven_id, fingerprint=fingerprint, acks=acks), ven_id)
        if outcome.active and outcome.stored is None:
            refuse(outcome.delivered)
        return outcome.stored

    async def _answer(self, conn: asyncpg.Connection, ven_id: str, fingerprint: str,
                      acks: tuple[EventAck, ...], refuse: Refuse,
                      event_ids: list[str]) -> tuple[Delivery, ...] | None:
        if await conn.fetchval(_ACTIVE_VEN, fingerprint, ven_id) is None:
            return None
        delivered = {r[0]: r[1] for r in await conn.fetch(_VERSIONS, ven_id, event_ids)}
        if not answers_current(acks, delivered):
            refuse(delivered)
        return await self._acks(conn, acks)

    async def delivered_versions(self, ven_id: str, event_ids: list[str]) -> dict[str, int]:
        async def work(conn: asyncpg.Connection) -> dict[str, int]:
            return {r[0]: r[1] for r in await conn.fetch(_VERSIONS, ven_id, event_ids)}

        return await self._run(work, write=False)

    async def delivered_to(self, event_ids: list[str]) -> dict[str, tuple[str, ...]]:
        async def work(conn: asyncpg.Connection) -> dict[str, tuple[str, ...]]:
            grouped: dict[str, list[str]] = {}
            for event_id, ven_id in await conn.fetch(_DELIVERED_TO, event_ids):
                grouped.setdefault(event_id, []).append(ven_id)
            return {event_id: tuple(vens) for event_id, vens in grouped.items()}

        return await self._run(work, write=False)

    async def store_update(self, ven_id: str, reports: Sequence[ReportData], wanted: list[str],
                           fingerprint: str | None) -> tuple[int, tuple[str, ...]] | None:
        update = Update(ven_id=ven_id, fingerprint=fingerprint,
                        points=points_of(reports, aware), wanted=wanted)
        return await self._grouped(self._reports, update, ven_id)
