"""Databases for tests: ``storage_url`` on every engine the VTN supports, ``storage`` open on it.

``storage_url`` is parametrised over a SQLite file in ``tmp_path`` and a fresh PostgreSQL database
created for the one test (and dropped after it), so tests never see each other's rows, even when
several test runs share the server. The server is ``$CROWDFLEX_TEST_POSTGRES_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``; that database is only used to create and
drop the per-test ones). When it cannot be reached the PostgreSQL case is skipped, naming the URL;
with ``CROWDFLEX_REQUIRE_POSTGRES=1`` (as in CI) it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from vtn.storage import Storage, open_storage

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_S = 5.0

__all__ = [
    "DEFAULT_POSTGRES_URL", "fresh_postgres_database", "postgres_url", "storage", "storage_url",
]


def postgres_url() -> str:
    return os.environ.get("CROWDFLEX_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _dsn(url: str) -> str:
    """SQLAlchemy URL -> libpq-style DSN for asyncpg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_connection(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_dsn(url), timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = make_url(url).render_as_string(hide_password=True)
        reason = f"PostgreSQL at {shown} is unreachable: {exc!r}"
        if os.environ.get("CROWDFLEX_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (CROWDFLEX_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)


async def fresh_postgres_database() -> AsyncIterator[str]:
    """The URL of a PostgreSQL database made for the caller, dropped when it is done."""
    base = postgres_url()
    admin = await _admin_connection(base)
    name = f"crowdflex_test_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a test that failed may have left connections open.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty database: SQLite file, or a PostgreSQL database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}"
        return
    async for url in fresh_postgres_database():
        yield url


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """An open, migrated :class:`Storage` on ``storage_url``."""
    opened = await open_storage(storage_url)
    try:
        yield opened
    finally:
        await opened.close()
