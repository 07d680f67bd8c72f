"""Schema migrations of the VTN database, with Alembic configured in code (no alembic.ini).

:func:`upgrade` runs at VTN start (from :func:`vtn.storage.open_storage`) and brings any database,
empty or older, to the head revision inside one transaction. Several VTN workers may start at once
on one PostgreSQL: a transaction-scoped advisory lock lets one migrate while the others wait and
then find nothing to do. On SQLite the migration transaction begins IMMEDIATE (a write lock), which
serialises concurrent starters the same way.

Adding a revision (the models in :mod:`vtn.storage._models` changed)::

    import asyncio
    from vtn.migrations import new_revision
    asyncio.run(new_revision("sqlite+aiosqlite:///scratch.db", "add foo"))

then read and edit the generated file in ``vtn/migrations/versions/``; a test checks that the
migrated schema matches the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from vtn.storage._engine import create_engine_for

__all__ = ["HEAD", "alembic_config", "head_revisions", "new_revision", "revisions", "upgrade"]

HEAD: Final = "head"
_HERE: Final = Path(__file__).resolve().parent
# Any constant works; it only has to be the same in every worker ("crowdflex" in ASCII, truncated).
_ADVISORY_LOCK_KEY: Final = 0x63726F7764666C


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at this package, optionally bound to an open connection."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def _upgrade_sync(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = HEAD) -> None:
    """Migrate the database behind ``engine`` to ``revision`` in one transaction."""
    # "crowdflex_write" makes the SQLite begin hook issue BEGIN IMMEDIATE (see vtn.storage._engine).
    async with engine.execution_options(crowdflex_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            # waits as long as another worker's migration takes, and runs as long as it must,
            # whatever lock_timeout and statement_timeout the engine's sessions start with
            # (vtn.storage._engine.session_settings)
            await conn.execute(text("SET LOCAL lock_timeout = 0"))
            await conn.execute(text("SET LOCAL statement_timeout = 0"))
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
            )
        await conn.run_sync(_upgrade_sync, revision)


def head_revisions() -> frozenset[str]:
    """The revisions a fully migrated database is at (one, unless branches were merged)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _current_sync(connection: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


async def revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revisions the database behind ``engine`` is at (empty: never migrated); raises
    what the driver raises when the database does not answer."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)


def _revision_sync(connection: Connection, message: str) -> None:
    command.revision(alembic_config(connection), message=message, autogenerate=True)


async def new_revision(url: str, message: str) -> None:
    """Developer helper: autogenerate a revision file by diffing the models against ``url``."""
    engine = create_engine_for(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            await conn.run_sync(_revision_sync, message)
    finally:
        await engine.dispose()
