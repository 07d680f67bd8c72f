"""An index on event_targets (kind, value): a VEN's poll finds the events addressed to it directly.

Without it, choosing a VEN's event list visited every live event (an aggregator holding one
event per device read all of them for every device's poll).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_event_targets_kind_value", "event_targets", ["kind", "value"])


def downgrade() -> None:
    op.drop_index("ix_event_targets_kind_value", table_name="event_targets")
