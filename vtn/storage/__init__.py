"""VTN storage: SQLAlchemy 2.0 asyncio, SQLite file (WAL) by default, PostgreSQL by URL.

>>> storage = await open_storage("sqlite:///vtn.db")          # doctest: +SKIP
>>> await storage.vens.register(registration)                  # doctest: +SKIP
>>> await storage.close()                                      # doctest: +SKIP

Owns the VTN's durable state: registrations, events and per-VEN delivery/ack state, per-VEN
outbound queues, report registrations, requests and data, the reports the VTN offers to VENs
(:mod:`vtn.storage.offered`), opt schedules, ReplayProtect nonces.

Invariants:
- Repositories take and return the frozen dataclasses of :mod:`vtn.storage.records`; ORM rows
  never leave this package, and nothing here imports :mod:`schemas`.
- Every repository call is one transaction and returns after it committed, so a reply built on its
  result describes durable state (a VTN killed with SIGKILL and restarted loses none of it).
- No module globals: each :class:`Storage` owns its engine; several can live in one process.
- A SQLite file is served by one Storage (one VTN process) at a time: it keeps a poll index in
  memory that another writer of the same file would not update. Several VTN workers share a
  PostgreSQL database instead (docs/architecture.md#storage-and-scale); there each Storage's
  poll index is kept true by the others' notifications (:mod:`vtn.storage.notify`) and is
  suspended, every poll reading the database, while they may be missed.
- :func:`open_storage` migrates the database to the head revision before returning.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from ._engine import Database, PoolWaitObserver, TransactionObserver, create_engine_for
from ._postgres_backend import PostgresBackend
from ._sqlite_backend import SqliteBackend
from .backend import Backend, Enrolment, Queued
from .events import EventRepository
from .nonces import NonceRepository
from .notify import Listener
from .offered import OfferedReport, OfferedReportRepository, OfferedRequest, OfferedSend
from .opts import OptRepository
from .outbox import DEFAULT_LEASE, OutboxRepository
from .pollindex import PollIndex
from .records import (
    Delivery,
    EventAck,
    EventRecord,
    EventStatus,
    OptSchedule,
    OptType,
    OptWindow,
    OutboxItem,
    PointRow,
    PollDelivery,
    ReportData,
    ReportDescription,
    ReportPoint,
    ReportRequest,
    ReportRequestStatus,
    StaleModification,
    StorageBusy,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    TargetKind,
    TargetRef,
    VenRegistration,
)
from .reports import ReportRepository
from .stats import StorageStats, read_stats
from .vens import VenRepository

__all__ = [
    "DEFAULT_LEASE",
    "Backend",
    "Delivery",
    "Enrolment",
    "EventAck",
    "EventRecord",
    "EventRepository",
    "EventStatus",
    "NonceRepository",
    "OfferedReport",
    "OfferedReportRepository",
    "OfferedRequest",
    "OfferedSend",
    "OptRepository",
    "OptSchedule",
    "OptType",
    "OptWindow",
    "OutboxItem",
    "OutboxRepository",
    "PointRow",
    "PollDelivery",
    "PoolWaitObserver",
    "Queued",
    "ReportData",
    "ReportDescription",
    "ReportPoint",
    "ReportRepository",
    "ReportRequest",
    "ReportRequestStatus",
    "StaleModification",
    "Storage",
    "StorageBusy",
    "StorageConflict",
    "StorageError",
    "StorageStats",
    "StorageUnavailable",
    "TargetKind",
    "TargetRef",
    "TransactionObserver",
    "VenRegistration",
    "VenRepository",
    "open_storage",
]


class Storage:
    """One database: its engine, its :class:`~vtn.storage.backend.Backend` (the hot paths) and a
    repository per aggregate. Build with :func:`open_storage`."""

    def __init__(self, db: Database, backend: Backend) -> None:
        self._db = db
        self._engine = db.engine
        self._backend = backend
        # SQLite: this process is the file's only writer, so empty polls can be answered from
        # memory. PostgreSQL: the index is live only while the listener hears every other
        # worker's changes (vtn.storage.pollindex, vtn.storage.notify).
        index = self._index = PollIndex(live=not db.postgres)
        self._listener = Listener(db.engine.url, index) if db.postgres else None
        self.vens = VenRepository(db, backend, index)
        self.events = EventRepository(db, backend, index)
        self.outbox = OutboxRepository(db, backend, index)
        self.reports = ReportRepository(db, backend)
        self.offered = OfferedReportRepository(db)  # reports the VTN offers to VENs
        self.opts = OptRepository(db)
        self.nonces = NonceRepository(db, backend)

    @property
    def backend(self) -> Backend:
        """The hot paths' implementation for this database's engine, chosen when it opened."""
        return self._backend

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for health checks and metrics; repositories are the way to the data."""
        return self._engine

    async def stats(self) -> StorageStats:
        """Registrations and queue figures for metrics, read in one transaction."""
        return await read_stats(self._db)

    @property
    def sqlite_engine(self) -> Engine | None:
        """On SQLite, the synchronous engine the repositories' hot paths run on (its own
        threads); None on PostgreSQL, where everything goes through :attr:`engine`."""
        return self._db.sync_engine

    @property
    def poll_index_live(self) -> bool:
        """Whether a quiet VEN's poll is answered from memory now (SQLite: always; PostgreSQL:
        while the listener hears the other workers), rather than by a database read."""
        return self._index.live

    @property
    def listener(self) -> Listener | None:
        """PostgreSQL: the connection that hears other workers' changes; None on SQLite."""
        return self._listener

    def _start(self) -> None:
        if self._listener is not None:
            self._listener.start()

    async def scrub(self) -> bool:
        """After deleting personal data (an erasure, a retention purge): on SQLite, whose
        connections zero deleted content (``secure_delete``), checkpoint and truncate the WAL so
        no older copy of a page survives in it; True when done, False when a reader held the
        WAL (done at a later checkpoint). On PostgreSQL deleted rows stay in the table's pages
        until VACUUM reuses them: returns False."""
        return await self._db.checkpoint()

    async def close(self) -> None:
        """Close every pooled connection; the Storage is unusable afterwards."""
        if self._listener is not None:
            await self._listener.close()
        await self._backend.close()
        await self._db.close()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def open_storage(url: str, *, migrate: bool = True,
                       observe: TransactionObserver | None = None,
                       pool_wait: PoolWaitObserver | None = None,
                       lock_timeout_s: float | None = None,
                       statement_timeout_s: float | None = None) -> Storage:
    """Open the database at ``url`` and (by default) migrate it to the head revision;
    ``observe`` is told how long each transaction took, ``pool_wait`` (PostgreSQL) how long
    each waited for its pooled connection. On PostgreSQL, a statement that waits longer than
    ``lock_timeout_s`` for a lock (None: no limit) raises :class:`StorageBusy`, and one that runs
    longer than ``statement_timeout_s`` (None: no limit) :class:`StorageUnavailable`; nothing of
    either is committed.

    ``sqlite:///path/vtn.db`` (WAL, foreign keys, busy timeout) or
    ``postgresql://user@host/db``; the asyncio drivers (aiosqlite, asyncpg) are filled in.
    """
    from vtn.migrations import upgrade  # here, not at import: migrations import the models

    engine = create_engine_for(url, lock_timeout_s=lock_timeout_s,
                               statement_timeout_s=statement_timeout_s)
    try:
        if migrate:
            await upgrade(engine)
        db = Database(engine, observe, pool_wait)
        backend: Backend = (await PostgresBackend.open(engine.url, db.observe, db.pool_wait,
                                                       lock_timeout_s=lock_timeout_s,
                                                       statement_timeout_s=statement_timeout_s)
                            if db.postgres else SqliteBackend(db))
    except BaseException:
        await engine.dispose()
        raise
    storage = Storage(db, backend)
    storage._start()
    return storage
