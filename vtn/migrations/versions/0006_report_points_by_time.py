"""report_points keyed (ven_id, dtstart, r_id, report_specifier_id, report_request_id): the
primary key serves the reads by VEN and time, so ix_report_points_ven_id_dtstart goes.

The same natural key in another column order. Each stored point went into three B-trees (the
rows, the primary key's index, ix_report_points_ven_id_dtstart); it now goes into two, which cut
the SQLite writer's CPU per 10-point report (bench/README.md, "report writes"). A VEN's points
by time, the only read that used the index, is a prefix of the new key, in the order it asks.

PostgreSQL swaps the primary key constraint in place. SQLite cannot alter a primary key: the
table is copied into a new one and the old one dropped, which cascades nowhere (no table
references report_points; the points keep their reference to vens).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_TIME = ("ven_id", "dtstart", "r_id", "report_specifier_id", "report_request_id")
_BY_REPORT = ("ven_id", "report_specifier_id", "report_request_id", "r_id", "dtstart")
_INDEX = "ix_report_points_ven_id_dtstart"


def _key(primary_key: Sequence[str]) -> None:
    with op.batch_alter_table("report_points") as batch:
        batch.drop_constraint("pk_report_points", type_="primary")
        batch.create_primary_key("pk_report_points", list(primary_key))


def upgrade() -> None:
    op.drop_index(_INDEX, table_name="report_points")
    _key(_BY_TIME)


def downgrade() -> None:
    _key(_BY_REPORT)
    op.create_index(_INDEX, "report_points", ["ven_id", "dtstart"])
