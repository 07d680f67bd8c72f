"""Engine and session setup for both engines, and the one place database errors are translated.

Invariants:
- SQLite runs in WAL mode with foreign keys on and a busy timeout. Write transactions begin
  IMMEDIATE: a deferred transaction that reads first and writes later fails with SQLITE_BUSY
  (not waited for) when another connection committed in between; taking the write lock up front
  makes concurrent writers queue on the busy timeout instead. Read transactions stay deferred, so
  WAL readers never wait for writers.
- ``synchronous=NORMAL`` in WAL mode keeps every committed transaction across a process crash
  (SIGKILL); only an operating-system crash or power loss can lose the last commits.
- In-memory SQLite is refused: each pooled connection would see its own empty database.
- Every unit of work is one transaction; repositories return only after it committed, so a reply
  built from their result describes committed state.
- The repositories' hot paths belong to a :class:`~vtn.storage.backend.Backend` (on PostgreSQL
  asyncpg SQL on a pool of its own); what remains runs a whole transaction as one synchronous
  function over a Core ``Connection`` (:meth:`Database.run_read` / :meth:`Database.run_write`).
  On SQLite that function runs on a thread of this Database (the stdlib ``sqlite3`` driver):
  one thread hop per *transaction*, where aiosqlite pays a queue put, a loop wake-up and a
  greenlet switch per *statement*. One writer thread means writes never contend with each
  other for SQLite's lock; reads run on their own threads in WAL snapshots. On PostgreSQL the
  same function runs under ``run_sync`` on an asyncpg connection. Both engines thus execute the
  same Core statements (SQLAlchemy caches their SQL).
- The hottest SQLite paths (poll, claim, delivery, nonces) skip SQLAlchemy's execution layer:
  :meth:`Database.run_sqlite` hands ``work`` a stdlib ``sqlite3`` connection itself, because one
  Core transaction cost ~0.6 ms of CPU there against ~15 us for the same SQL on ``sqlite3``.
  Those connections are opened through the synchronous engine's pool (same pragmas and connect
  hooks) but then kept outside it (:class:`SqliteConnections`): a pool checkout and return cost
  about as much as a small transaction's statements. Such ``work`` binds and reads times with
  :func:`sqlite_time` / :func:`from_sqlite_time`, the exact text :class:`UtcDateTime` stores.
- Such writes (``run_sqlite(write=True)``) that wait for the writer thread together commit
  together (:mod:`._groupcommit`): each caller is still answered only after the commit holding
  its work, with its own result or exception, and a failing write never takes others with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from time import perf_counter
from typing import Final, Protocol, TypeVar, cast

from sqlalchemy import Connection, Engine, Executable, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from ._groupcommit import GroupCommit, settle
from ._models import Base
from .records import StorageConflict

__all__ = ["Database", "PoolWaitObserver", "TransactionObserver", "Upsert", "create_engine_for",
           "session_settings"]

T = TypeVar("T")
# An INSERT that takes ON CONFLICT clauses: the two dialects spell them alike (Database.insert).
Upsert = postgresql.Insert | sqlite.Insert

WRITE_OPTION: Final = "crowdflex_write"
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
# asyncpg allows 32767 bind parameters per statement; older SQLite builds 32766.
MAX_BIND_PARAMS: Final = 30_000

# Reads wait on disk and on each other's statements, not on the writer (WAL): two threads let a
# slow read (an admin listing) not hold up the polls behind it.
SQLITE_READER_THREADS: Final = 2
# PostgreSQL: the connections of the SQLAlchemy engine, which serves what is not a hot path.
ENGINE_POOL_SIZE: Final = 4

_DRIVERS: Final = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalise_url(url: str) -> URL:
    """Fill in the asyncio drivers for ``sqlite:///x.db`` and ``postgresql://...`` URLs."""
    parsed = make_url(url)
    parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            "in-memory SQLite is not supported: give a file path, e.g. sqlite:///vtn.db"
        )
    return parsed


def session_settings(lock_timeout_s: float | None,
                     statement_timeout_s: float | None) -> dict[str, str]:
    """What every PostgreSQL session of the VTN's pools starts with: ``lock_timeout`` (a
    statement that waited longer for a lock is cancelled and rolled back, and its request is
    answered 503: :class:`~vtn.storage.StorageBusy`) and ``statement_timeout`` (one that ran
    longer is cancelled and rolled back, and answered 503); None leaves the server's setting."""
    timeouts = {"lock_timeout": lock_timeout_s, "statement_timeout": statement_timeout_s}
    return {name: f"{max(1, round(seconds * 1000))}ms"
            for name, seconds in timeouts.items() if seconds is not None}


def create_engine_for(url: str, *, lock_timeout_s: float | None = None,
                      statement_timeout_s: float | None = None) -> AsyncEngine:
    """The SQLAlchemy engine for ``url``; on PostgreSQL its sessions start with
    :func:`session_settings`."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed)
        _configure_sqlite(engine)
        return engine
    # The hot paths have a pool of their own (vtn.storage._postgres_backend). This one is fixed
    # too: no overflow connections opened and closed under load, no pre-ping round trip per
    # transaction. After a PostgreSQL restart the first use of a dead connection fails (a 503
    # the VEN retries) and SQLAlchemy then discards every connection of the pool.
    return create_async_engine(
        parsed, pool_size=ENGINE_POOL_SIZE, max_overflow=0,
        connect_args={"server_settings": session_settings(lock_timeout_s, statement_timeout_s)})


def sync_sqlite_engine(url: URL) -> Engine:
    """The stdlib-``sqlite3`` engine behind :meth:`Database.run_read`/``run_write`` on SQLite:
    same file, same pragmas and begin hook as the asyncio engine."""
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        # Connections move between this Database's threads (never used by two at once: the pool
        # hands each to one transaction), so sqlite3's same-thread check does not apply.
        connect_args={"check_same_thread": False},
        pool_size=SQLITE_READER_THREADS + 1,
        max_overflow=0,
        # The connection returned last is handed out next. In WAL mode a connection drops its
        # whole page cache when it begins after another connection committed; taken in turn
        # (the pool's default), every write began on a connection the previous writes had made
        # stale and read its pages again. Sequential transactions now share one warm connection.
        pool_use_lifo=True,
        # Every use is a ``begin()`` block that commits or rolls back: nothing to reset.
        pool_reset_on_return=None,
    )
    _configure_sqlite_sync(engine, raw_begin=True)
    return engine


def insert_many(conn: Connection, stmt: Executable, rows: Sequence[Mapping[str, object]]
                ) -> int:
    """Execute an INSERT ... ON CONFLICT DO NOTHING RETURNING <a column> for ``rows`` (a list of
    parameter sets: one cached compiled statement, sent as multi-row VALUES batches by
    SQLAlchemy's insertmanyvalues); returns how many rows were inserted. Compiling a fresh
    ``values([...])`` statement per call cost ~4x more CPU for ten rows."""
    if not rows:
        return 0
    return len(conn.execute(stmt, list(rows)).all())


_UTC_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
NAIVE_EPOCH: Final = datetime(1970, 1, 1)


def sqlite_time(value: datetime) -> str:
    """``value`` as SQLite stores it (naive UTC text, SQLAlchemy's DATETIME format, so it sorts and
    compares with what the Core paths wrote); a naive datetime is refused like UtcDateTime does."""
    if value.tzinfo is not UTC and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"naive datetime {value!r}: storage takes timezone-aware UTC only")
    # The naive UTC instant by arithmetic: an aware difference counts the offset, whatever the
    # zone, and the two operations cost a tenth or less of replace(tzinfo=None) (a keyword call)
    # or astimezone: 1.9-4.4 -> 1.0-1.8 us a time (bench/README.md). isoformat pads the year to
    # four digits as SQLAlchemy does (strftime's %Y may not), and costs a third of strftime.
    return (NAIVE_EPOCH + (value - _UTC_EPOCH)).isoformat(" ", "microseconds")


def from_sqlite_time(value: str | None) -> datetime | None:
    """Stored SQLite time text back to an aware UTC datetime."""
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _configure_sqlite(engine: AsyncEngine) -> None:
    _configure_sqlite_sync(engine.sync_engine)


def _configure_sqlite_sync(sync_engine: Engine, *, raw_begin: bool = False) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the driver so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows (an erasure, a retention purge) are overwritten with zeros in their pages
        # and in pages going to the freelist, not left readable in the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        sql = "BEGIN IMMEDIATE" if write else "BEGIN"
        if raw_begin:  # straight to sqlite3: a whole SQLAlchemy execution per BEGIN is costly
            driver = conn.connection.driver_connection
            assert driver is not None  # a connection that begins is checked out
            driver.execute(sql)
        else:
            conn.exec_driver_sql(sql)


class SqliteConnections:
    """The stdlib connections :meth:`Database.run_sqlite` runs its transactions on, held outside
    SQLAlchemy's pool: taking one is a list pop under a lock, where a pool checkout and return
    cost ~15-60 us a transaction. At most one per database thread is ever open, since each
    thread runs one transaction at a time and gives its connection back after it.

    - The connection given back last is taken next: in WAL mode a connection drops its page
      cache when it begins after another one committed, so transactions that run one after
      another (a write, then a read) share one warm connection.
    - Each is opened through ``engine``'s pool, so it runs the engine's ``connect`` hooks (the
      pragmas of :func:`sync_sqlite_engine`, a test's), then detached from the pool.
    - Disposing of ``engine`` closes them as it closes the pool's: the idle ones at once, the
      ones in use when given back; the next transaction opens a new one.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._generation = 0  # counts the engine's disposals
        event.listen(engine, "engine_disposed", self._disposed)

    def take(self) -> tuple[sqlite3.Connection, int]:
        """An idle connection or a new one, and the generation to give it back with."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), self._generation
            generation = self._generation
        pooled = self._engine.raw_connection()
        conn = cast(sqlite3.Connection, pooled.driver_connection)
        pooled.detach()
        return conn, generation

    def give_back(self, conn: sqlite3.Connection, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._idle.append(conn)
                return
        conn.close()

    def _disposed(self, _engine: Engine) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for conn in idle:
            conn.close()


class TransactionObserver(Protocol):
    """Told of every transaction: a write or a read, and the seconds from asking (waits for a
    connection or the writer thread included) to committed or failed."""

    def __call__(self, *, write: bool, seconds: float) -> None: ...


class PoolWaitObserver(Protocol):
    """Told, on PostgreSQL, how long each transaction waited to get its pooled connection (a
    free one, or a new one opened, and its liveness ping); SQLite's transactions queue for this
    Database's threads instead, which the TransactionObserver's seconds include."""

    def __call__(self, seconds: float) -> None: ...


def _unobserved(*, write: bool, seconds: float) -> None:
    pass


def _unobserved_wait(seconds: float) -> None:
    pass


class Database:
    """Session factories shared by the repositories of one :class:`~vtn.storage.Storage`."""

    def __init__(self, engine: AsyncEngine, observe: TransactionObserver | None = None,
                 pool_wait: PoolWaitObserver | None = None) -> None:
        self.engine = engine
        self._observe = self.observe = observe or _unobserved
        self._pool_wait = self.pool_wait = pool_wait or _unobserved_wait
        self.dialect: str = engine.dialect.name
        self.sync_engine: Engine | None = None
        self._sync_writer: Engine | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._write_groups: GroupCommit | None = None
        self._connections: SqliteConnections | None = None
        if self.dialect == "sqlite":
            self.sync_engine = sync_sqlite_engine(engine.url)
            self._connections = SqliteConnections(self.sync_engine)
            self._sync_writer = self.sync_engine.execution_options(**{WRITE_OPTION: True})
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="crowdflex-db-write")
            self._read_threads = ThreadPoolExecutor(
                SQLITE_READER_THREADS, thread_name_prefix="crowdflex-db-read")
            self._write_groups = GroupCommit(self._write_thread, self._sqlite_transaction)
        self._reader = async_sessionmaker(engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        # SQLite admits one writer at a time anyway; queueing writers here, in order, replaces
        # its busy handler's sleep-and-retry, which under hundreds of concurrent writers starves
        # some past the busy timeout ("database is locked") and exhausts the connection pool.
        self._write_turn = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        started = perf_counter()
        try:
            async with self._reader() as session, session.begin():
                await self._pooled(session)
                yield session
        except StatementError as exc:
            _reraise_value_error(exc)
            raise
        finally:
            self._observe(write=False, seconds=perf_counter() - started)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction, committed on exit; a unique/foreign-key violation becomes
        :class:`StorageConflict` (the only place driver errors are translated)."""
        started = perf_counter()
        try:
            async with self._turn(), self._writer() as session, session.begin():
                await self._pooled(session)
                yield session
        except IntegrityError as exc:
            raise StorageConflict(str(exc.orig)) from exc
        except StatementError as exc:
            _reraise_value_error(exc)
            raise
        finally:
            self._observe(write=True, seconds=perf_counter() - started)

    async def run_read(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` inside one read transaction (a consistent snapshot)."""
        started = perf_counter()
        try:
            return await self._run_read(work)
        finally:
            self._observe(write=False, seconds=perf_counter() - started)

    async def _run_read(self, work: Callable[[Connection], T]) -> T:
        if self.sync_engine is None:
            return await self._run_async(work, write=False)
        sync_engine = self.sync_engine

        def transaction() -> T:
            with sync_engine.begin() as conn:
                return work(conn)

        return await self._on_thread(self._read_threads, transaction)

    async def run_write(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` inside one write transaction, committed before this returns;
        a unique/foreign-key violation becomes :class:`StorageConflict`, nothing written."""
        started = perf_counter()
        try:
            return await self._run_write(work)
        finally:
            self._observe(write=True, seconds=perf_counter() - started)

    async def _run_write(self, work: Callable[[Connection], T]) -> T:
        if self._sync_writer is None:
            return await self._run_async(work, write=True)
        writer = self._sync_writer

        def transaction() -> T:
            with writer.begin() as conn:
                return work(conn)

        return await self._on_thread(self._write_thread, transaction)

    @property
    def queued_writes(self) -> int:
        """SQLite: write jobs waiting for the writer thread; 0 on PostgreSQL."""
        return self._write_groups.queued if self._write_groups is not None else 0

    async def run_sqlite(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """SQLite only: ``work(sqlite3 connection)`` in a transaction on this Database's writer
        thread (``write``: BEGIN IMMEDIATE, committed before this returns; writes waiting
        together share one transaction, see :mod:`._groupcommit`) or in one on a reader thread.
        Errors surface as on the Core paths: StorageConflict for a constraint violation,
        ValueError for a refused value, SQLAlchemy's DBAPIError for the rest."""
        assert self.sync_engine is not None, "run_sqlite is for SQLite storage only"
        started = perf_counter()
        try:
            if write:
                assert self._write_groups is not None
                return await self._write_groups.run(work)
            assert self._read_threads is not None
            return await _hop(self._read_threads, lambda: self._sqlite_transaction(work, "BEGIN"))
        finally:
            self._observe(write=write, seconds=perf_counter() - started)

    async def checkpoint(self) -> bool:
        """SQLite: copy the WAL into the file and truncate it (``wal_checkpoint(TRUNCATE)``), so
        no older frame keeps a page as it was before a delete; False when a reader held the
        WAL (its frames go at the next checkpoint). PostgreSQL: nothing to do here, False."""
        if self.sync_engine is None:
            return False
        engine = self.sync_engine

        def truncate() -> bool:
            pooled = engine.raw_connection()
            try:
                conn = cast(sqlite3.Connection, pooled.driver_connection)
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                return not busy
            finally:
                pooled.close()

        return await self._on_thread(self._write_thread, truncate)

    def _sqlite_transaction(self, work: Callable[[sqlite3.Connection], T],
                            begin: str = "BEGIN IMMEDIATE") -> T:
        """``work`` in one transaction on a stdlib connection (runs on a db thread)."""
        assert self._connections is not None
        conn, generation = self._connections.take()
        try:
            conn.execute(begin)
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also after a failed COMMIT (e.g. disk full)
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.IntegrityError as exc:
            raise StorageConflict(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc
        finally:
            self._connections.give_back(conn, generation)

    async def _on_thread(self, pool: ThreadPoolExecutor | None, call: Callable[[], T]) -> T:
        assert pool is not None  # SQLite's threads; PostgreSQL has none
        try:
            return await _hop(pool, call)
        except IntegrityError as exc:
            raise StorageConflict(str(exc.orig)) from exc
        except StatementError as exc:
            _reraise_value_error(exc)
            raise

    async def _run_async(self, work: Callable[[Connection], T], *, write: bool) -> T:
        try:
            asked = perf_counter()
            async with self.engine.connect() as conn:
                self._pool_wait(perf_counter() - asked)
                async with conn.begin():
                    return await conn.run_sync(work)
        except IntegrityError as exc:
            if not write:
                raise
            raise StorageConflict(str(exc.orig)) from exc
        except StatementError as exc:
            _reraise_value_error(exc)
            raise

    async def _pooled(self, session: AsyncSession) -> None:
        """PostgreSQL: take the session's pooled connection now and report the wait for it
        (a session otherwise takes it at its first statement)."""
        if self.postgres:
            asked = perf_counter()
            await session.connection()
            self._pool_wait(perf_counter() - asked)

    async def close(self) -> None:
        """Finish the transactions under way, then close every connection."""
        for pool in (self._write_thread, self._read_threads):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown)
        if self.sync_engine is not None:
            self.sync_engine.dispose()
        await self.engine.dispose()

    def _turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._write_turn if self._write_turn is not None else contextlib.nullcontext()

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    def insert(self, model: type[Base]) -> Upsert:
        """An INSERT into ``model``'s table that supports ON CONFLICT on this engine (both
        dialects spell it alike). Core, not ORM: rows are plain dicts, many per statement."""
        table = cast(Table, model.__table__)
        if self.postgres:
            return postgresql.insert(table)
        return sqlite.insert(table)


async def _hop(pool: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    """``call()`` on one of ``pool``'s threads, its result or exception handed back to the loop
    by one callback: ~18 us of CPU a round trip against ~31 for ``run_in_executor``, which chains
    a second future to the executor's through callbacks on both threads (bench/README.md,
    uvloop). As there, a call whose caller was cancelled before it started is skipped."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        if answer.cancelled():
            return
        outcome: T | None = None
        error: BaseException | None = None
        try:
            outcome = call()
        except BaseException as exc:  # the caller's, as run_in_executor hands it over
            error = exc
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, answer, outcome, error)

    pool.submit(run)
    return await answer


def _reraise_value_error(exc: StatementError) -> None:
    """A value our column types refused (e.g. a naive datetime) is the caller's ValueError."""
    if isinstance(exc.orig, ValueError):
        raise ValueError(str(exc.orig)) from exc


def chunks(rows: Sequence[T], columns: int) -> Iterator[Sequence[T]]:
    """Split a multi-row VALUES list so no statement exceeds the bind-parameter limit; 1,000 rows of
    up to 30 columns stay in one statement, one round trip."""
    size = max(1, MAX_BIND_PARAMS // max(1, columns))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def as_tuple(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(values or ())
