"""PostgreSQL for ``python -m bench vtn --storage postgresql``: a database of the run's own, and
the CPU of the PostgreSQL backends that serve it.

:func:`fresh_database` creates an empty database on the server named by the admin URL (by
default ``postgresql://postgres@127.0.0.1:5432/test``, trust auth; that database is only used to
create and drop others) and drops it, connections and all, afterwards.

:class:`BackendCpu` is the CPU of every backend connected to that database, read from
``/proc/<pid>/stat`` (user + system time): the server must run on this machine. A backend that
exits between two readings keeps the CPU of its last reading, so a pool that opens and closes
connections under load would be under-counted: :attr:`BackendCpu.started` counts the backends
seen, so the table shows whether that happened.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

__all__ = ["DEFAULT_ADMIN_URL", "BackendCpu", "fresh_database"]

DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[tuple[str, BackendCpu]]:
    """An empty database of its own on ``admin_url``'s server: yields its URL and the meter of
    its backends' CPU (which reads through the one admin connection held meanwhile)."""
    admin = await asyncpg.connect(_dsn(admin_url), timeout=10)
    name = f"crowdflex_bench_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        yield url, BackendCpu(admin, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _process_cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime, stime


class BackendCpu:
    """CPU seconds of the backends serving ``database`` (see the module docstring), found
    through ``admin``, a connection to another database of the same server."""

    def __init__(self, admin: asyncpg.Connection, database: str) -> None:
        self._admin = admin
        self._database = database
        self._last: dict[int, float] = {}

    @property
    def started(self) -> int:
        """Backends seen so far."""
        return len(self._last)

    async def cpu_s(self) -> float:
        for row in await self._admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self._database):
            seen = _process_cpu_s(row["pid"])
            if seen is not None:
                self._last[row["pid"]] = seen
        return sum(self._last.values())
