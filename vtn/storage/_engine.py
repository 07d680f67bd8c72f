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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, cast

from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ._models import Base
from .records import StorageConflict

__all__ = ["Database", "create_engine_for"]

WRITE_OPTION: Final = "crowdflex_write"
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
# asyncpg allows 32767 bind parameters per statement; older SQLite builds 32766.
MAX_BIND_PARAMS: Final = 30_000

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


def create_engine_for(url: str) -> AsyncEngine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed)
        _configure_sqlite(engine)
        return engine
    # pre-ping: a worker survives a PostgreSQL restart without handing out dead connections.
    return create_async_engine(parsed, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """Session factories shared by the repositories of one :class:`~vtn.storage.Storage`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
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
        try:
            async with self._reader() as session, session.begin():
                yield session
        except StatementError as exc:
            _reraise_value_error(exc)
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction, committed on exit; a unique/foreign-key violation becomes
        :class:`StorageConflict` (the only place driver errors are translated)."""
        try:
            async with self._turn(), self._writer() as session, session.begin():
                yield session
        except IntegrityError as exc:
            raise StorageConflict(str(exc.orig)) from exc
        except StatementError as exc:
            _reraise_value_error(exc)
            raise

    def _turn(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._write_turn if self._write_turn is not None else contextlib.nullcontext()

    @property
    def postgres(self) -> bool:
        return self.dialect == "postgresql"

    def insert(self, model: type[Base]) -> Any:
        """An INSERT into ``model``'s table that supports ON CONFLICT on this engine (both
        dialects spell it alike). Core, not ORM: rows are plain dicts, many per statement."""
        table = cast(Table, model.__table__)
        if self.postgres:
            return postgresql.insert(table)
        return sqlite.insert(table)


def _reraise_value_error(exc: StatementError) -> None:
    """A value our column types refused (e.g. a naive datetime) is the caller's ValueError."""
    if isinstance(exc.orig, ValueError):
        raise ValueError(str(exc.orig)) from exc


def chunks(
    rows: Sequence[Mapping[str, Any]], columns: int
) -> Iterator[Sequence[Mapping[str, Any]]]:
    """Split a multi-row VALUES list so no statement exceeds the bind-parameter limit; 1,000 rows of
    up to 30 columns stay in one statement, one round trip."""
    size = max(1, MAX_BIND_PARAMS // max(1, columns))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def as_tuple(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(values or ())
