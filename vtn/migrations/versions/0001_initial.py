"""Initial VTN schema: VENs, events and deliveries, outbox, reports, opts, nonces.

Types are spelled out here (not imported from the models) so this revision keeps describing the
schema it created even after the models move on. Constraint names follow
``vtn.storage._models.NAMING``.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def _id(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=False)


def _ven_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["ven_id"], ["vens.ven_id"], name=f"fk_{table}_ven_id_vens", ondelete="CASCADE"
    )


def _event_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["event_id"], ["events.event_id"], name=f"fk_{table}_event_id_events", ondelete="CASCADE"
    )


def _vens() -> None:
    op.create_table(
        "vens",
        _id("ven_id"),
        _id("registration_id"),
        _id("fingerprint"),
        _id("ven_name"),
        _id("profile_name"),
        _id("transport_name"),
        sa.Column("transport_address", sa.String(), nullable=True),
        sa.Column("http_pull_model", sa.Boolean(), nullable=False),
        sa.Column("report_only", sa.Boolean(), nullable=False),
        sa.Column("xml_signature", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("cancelled_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("ven_id", name="pk_vens"),
        sa.UniqueConstraint("fingerprint", name="uq_vens_fingerprint"),
        sa.UniqueConstraint("registration_id", name="uq_vens_registration_id"),
    )
    op.create_table(
        "ven_memberships",
        _id("ven_id"),
        _id("kind"),
        _id("value"),
        _ven_fk("ven_memberships"),
        sa.PrimaryKeyConstraint("ven_id", "kind", "value", name="pk_ven_memberships"),
    )
    op.create_index("ix_ven_memberships_kind_value", "ven_memberships", ["kind", "value"])


def _events() -> None:
    op.create_table(
        "events",
        _id("event_id"),
        sa.Column("modification_number", sa.Integer(), nullable=False),
        _id("status"),
        sa.Column("market_context", sa.String(), nullable=True),
        sa.Column("starts_at", _TIME, nullable=True),
        sa.Column("ends_at", _TIME, nullable=True),
        sa.Column("response_required", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
    )
    op.create_table(
        "event_targets",
        _id("event_id"),
        _id("kind"),
        _id("value"),
        _event_fk("event_targets"),
        sa.PrimaryKeyConstraint("event_id", "kind", "value", name="pk_event_targets"),
    )
    op.create_table(
        "event_deliveries",
        _id("event_id"),
        _id("ven_id"),
        sa.Column("delivered_modification_number", sa.Integer(), nullable=True),
        sa.Column("delivered_at", _TIME, nullable=True),
        sa.Column("ack_modification_number", sa.Integer(), nullable=True),
        sa.Column("ack_opt_type", sa.String(), nullable=True),
        sa.Column("ack_response_code", sa.Integer(), nullable=True),
        sa.Column("ack_at", _TIME, nullable=True),
        _event_fk("event_deliveries"),
        _ven_fk("event_deliveries"),
        sa.PrimaryKeyConstraint("event_id", "ven_id", name="pk_event_deliveries"),
    )
    op.create_index("ix_event_deliveries_ven_id", "event_deliveries", ["ven_id"])


def _outbox() -> None:
    op.create_table(
        "outbox",
        # SQLite auto-increments only an INTEGER PRIMARY KEY (the rowid alias).
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        _id("ven_id"),
        _id("kind"),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("dedup_key", sa.String(), nullable=True),
        sa.Column("enqueued_at", _TIME, nullable=False),
        sa.Column("claimed_until", _TIME, nullable=True),
        sa.Column("delivered_at", _TIME, nullable=True),
        _ven_fk("outbox"),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("ven_id", "dedup_key", name="uq_outbox_ven_id"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["ven_id", "seq"],
        postgresql_where=sa.text("delivered_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL"),
    )


def _reports() -> None:
    op.create_table(
        "report_descriptions",
        _id("ven_id"),
        _id("report_specifier_id"),
        _id("report_name"),
        sa.Column("r_ids", sa.JSON(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("registered_at", _TIME, nullable=False),
        _ven_fk("report_descriptions"),
        sa.PrimaryKeyConstraint("ven_id", "report_specifier_id", name="pk_report_descriptions"),
    )
    op.create_table(
        "report_requests",
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
        _ven_fk("report_requests"),
        sa.PrimaryKeyConstraint("ven_id", "report_request_id", name="pk_report_requests"),
    )
    op.create_table(
        "report_points",
        _id("ven_id"),
        _id("report_specifier_id"),
        _id("report_request_id"),
        _id("r_id"),
        sa.Column("dtstart", _TIME, nullable=False),
        sa.Column("duration", sa.Interval(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("data_quality", sa.String(), nullable=True),
        sa.Column("received_at", _TIME, nullable=False),
        _ven_fk("report_points"),
        sa.PrimaryKeyConstraint(
            "ven_id",
            "report_specifier_id",
            "report_request_id",
            "r_id",
            "dtstart",
            name="pk_report_points",
        ),
    )
    op.create_index("ix_report_points_ven_id_dtstart", "report_points", ["ven_id", "dtstart"])


def _opts_and_nonces() -> None:
    op.create_table(
        "opt_schedules",
        _id("ven_id"),
        _id("opt_id"),
        _id("opt_type"),
        _id("opt_reason"),
        sa.Column("market_context", sa.String(), nullable=True),
        sa.Column("resource_id", sa.String(), nullable=True),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("cancelled_at", _TIME, nullable=True),
        _ven_fk("opt_schedules"),
        sa.PrimaryKeyConstraint("ven_id", "opt_id", name="pk_opt_schedules"),
    )
    op.create_table(
        "opt_windows",
        _id("ven_id"),
        _id("opt_id"),
        sa.Column("starts_at", _TIME, nullable=False),
        sa.Column("duration", sa.Interval(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ven_id", "opt_id"],
            ["opt_schedules.ven_id", "opt_schedules.opt_id"],
            name="fk_opt_windows_ven_id_opt_schedules",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ven_id", "opt_id", "starts_at", name="pk_opt_windows"),
    )
    op.create_table(
        "nonces",
        _id("nonce"),
        sa.Column("seen_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name="pk_nonces"),
    )
    op.create_index("ix_nonces_seen_at", "nonces", ["seen_at"])


def upgrade() -> None:
    _vens()
    _events()
    _outbox()
    _reports()
    _opts_and_nonces()


def downgrade() -> None:
    for table in (
        "nonces",
        "opt_windows",
        "opt_schedules",
        "report_points",
        "report_requests",
        "report_descriptions",
        "outbox",
        "event_deliveries",
        "event_targets",
        "events",
        "ven_memberships",
        "vens",
    ):
        op.drop_table(table)
