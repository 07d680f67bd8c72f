"""Reports the VTN offers to VENs: its METADATA per VEN, the VENs' requests, the data it sent.

Types are spelled out here (not imported from the models), as in 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def _id(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=False)


def _ven_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["ven_id"], ["vens.ven_id"], name=f"fk_{table}_ven_id_vens", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "offered_reports",
        _id("ven_id"),
        _id("report_specifier_id"),
        _id("report_name"),
        sa.Column("r_ids", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("offered_at", _TIME, nullable=False),
        _ven_fk("offered_reports"),
        sa.PrimaryKeyConstraint("ven_id", "report_specifier_id", name="pk_offered_reports"),
    )
    op.create_table(
        "offered_requests",
        _id("ven_id"),
        _id("report_request_id"),
        _id("report_specifier_id"),
        sa.Column("r_ids", sa.JSON(), nullable=False),
        sa.Column("granularity", sa.Interval(), nullable=True),
        sa.Column("report_back_duration", sa.Interval(), nullable=True),
        sa.Column("starts_at", _TIME, nullable=True),
        sa.Column("ends_at", _TIME, nullable=True),
        _id("status"),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("cancelled_at", _TIME, nullable=True),
        _ven_fk("offered_requests"),
        sa.PrimaryKeyConstraint("ven_id", "report_request_id", name="pk_offered_requests"),
    )
    op.create_table(
        "offered_sends",
        _id("ven_id"),
        _id("request_id"),
        _id("report_request_id"),
        sa.Column("queued_at", _TIME, nullable=False),
        sa.Column("answered_at", _TIME, nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        _ven_fk("offered_sends"),
        sa.PrimaryKeyConstraint("ven_id", "request_id", name="pk_offered_sends"),
    )


def downgrade() -> None:
    for table in ("offered_sends", "offered_requests", "offered_reports"):
        op.drop_table(table)
