"""A report request the VEN refused: its responseCode and responseDescription.

A VEN answering oadrCreateReport with an error code leaves the request ``refused`` (not pending
for ever), with the code and reason it gave.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("report_requests") as table:
        table.add_column(sa.Column("refusal_code", sa.Integer(), nullable=True))
        table.add_column(sa.Column("refusal_reason", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("report_requests") as table:
        table.drop_column("refusal_reason")
        table.drop_column("refusal_code")
