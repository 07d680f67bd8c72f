"""Alembic environment: always runs on a connection handed in by :mod:`vtn.migrations`.

There is no URL-based or offline mode: the storage layer owns engine creation (SQLite pragmas,
pool settings), so migrations reuse its connection and its open transaction.
"""

from __future__ import annotations

from alembic import context

from vtn.storage._models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "vtn.migrations runs only through vtn.migrations.upgrade() or new_revision()"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables in future revisions.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
