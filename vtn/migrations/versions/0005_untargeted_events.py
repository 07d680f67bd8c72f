"""Events flagged untargeted, with a partial index: a VEN's event list finds the events for
every VEN without looking for target rows event by event.

Choosing a VEN's list looked for untargeted events with a ``NOT EXISTS`` over event_targets for
every stored event (an aggregator holding one event per device scanned them all for each
device's push). Existing events get the flag from their target rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ALTER TABLE ADD COLUMN, not a batch: on SQLite a batch copies the table and drops the
    # old one, and the drop would cascade to every event's targets and deliveries.
    op.add_column("events", sa.Column("untargeted", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute("UPDATE events SET untargeted = NOT EXISTS"
               " (SELECT 1 FROM event_targets t WHERE t.event_id = events.event_id)")
    op.create_index("ix_events_untargeted", "events", ["event_id"],
                    postgresql_where=sa.text("untargeted"), sqlite_where=sa.text("untargeted"))


def downgrade() -> None:
    op.drop_index("ix_events_untargeted", table_name="events")
    op.drop_column("events", "untargeted")
