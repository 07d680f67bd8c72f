"""ORM models of the VTN database. Private: rows never leave :mod:`vtn.storage`.

Invariants:
- Times are stored as UTC. :class:`UtcDateTime` refuses naive datetimes on the way in and returns
  aware UTC datetimes on the way out; on SQLite (no zone support) it stores naive UTC text, which
  sorts correctly as a string.
- Every natural key that makes a re-sent message idempotent is a primary key or unique constraint,
  so duplicates are refused by the database, not by a racy read-then-write.
- Constraint names follow :data:`NAMING`, so Alembic migrations can name them portably.
- The schema itself is created by the Alembic revisions in :mod:`vtn.migrations`; these classes
  must match them (a test compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: storage takes timezone-aware UTC only")
        value = value.astimezone(UTC)
        # SQLite has no zone type: keep naive UTC so stored text compares chronologically.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012  (SQLAlchemy reads it at class time)
        datetime: UtcDateTime(),
        timedelta: Interval(),
        bytes: LargeBinary(),
        str: String(),
    }


_VEN_FK = "vens.ven_id"


class VenRow(Base):
    __tablename__ = "vens"

    ven_id: Mapped[str] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(unique=True)
    fingerprint: Mapped[str] = mapped_column(unique=True)
    ven_name: Mapped[str]
    profile_name: Mapped[str]
    transport_name: Mapped[str]
    transport_address: Mapped[str | None]
    http_pull_model: Mapped[bool] = mapped_column(Boolean())
    report_only: Mapped[bool] = mapped_column(Boolean())
    xml_signature: Mapped[bool] = mapped_column(Boolean())
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class VenMembershipRow(Base):
    """A VEN's group/resource/party memberships, matched against event targets."""

    __tablename__ = "ven_memberships"
    __table_args__ = (Index("ix_ven_memberships_kind_value", "kind", "value"),)

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(primary_key=True)


class EventRow(Base):
    """An event; ``untargeted`` says it has no target rows, so it is every VEN's (a VEN's event
    list finds those through the partial index instead of looking for targets event by event)."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_untargeted",
            "event_id",
            postgresql_where="untargeted",
            sqlite_where="untargeted",
        ),
    )

    event_id: Mapped[str] = mapped_column(primary_key=True)
    modification_number: Mapped[int]
    status: Mapped[str]
    market_context: Mapped[str | None]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    response_required: Mapped[bool] = mapped_column(Boolean())
    payload: Mapped[bytes]
    updated_at: Mapped[datetime]
    untargeted: Mapped[bool] = mapped_column(Boolean(), server_default=false())


class EventTargetRow(Base):
    __tablename__ = "event_targets"
    __table_args__ = (Index("ix_event_targets_kind_value", "kind", "value"),)

    event_id: Mapped[str] = mapped_column(
        ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(primary_key=True)


class EventDeliveryRow(Base):
    __tablename__ = "event_deliveries"
    __table_args__ = (Index("ix_event_deliveries_ven_id", "ven_id"),)

    event_id: Mapped[str] = mapped_column(
        ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True
    )
    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    delivered_modification_number: Mapped[int | None]
    delivered_at: Mapped[datetime | None]
    ack_modification_number: Mapped[int | None]
    ack_opt_type: Mapped[str | None]
    ack_response_code: Mapped[int | None]
    ack_at: Mapped[datetime | None]


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("ven_id", "dedup_key"),
        Index(
            "ix_outbox_pending",
            "ven_id",
            "seq",
            postgresql_where="delivered_at IS NULL",
            sqlite_where="delivered_at IS NULL",
        ),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"))
    kind: Mapped[str]
    payload: Mapped[bytes]
    dedup_key: Mapped[str | None]
    enqueued_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class ReportDescriptionRow(Base):
    __tablename__ = "report_descriptions"

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    report_specifier_id: Mapped[str] = mapped_column(primary_key=True)
    report_name: Mapped[str]
    r_ids: Mapped[list[str]] = mapped_column(JSON())
    payload: Mapped[bytes]
    registered_at: Mapped[datetime]


class ReportRequestRow(Base):
    __tablename__ = "report_requests"

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    report_request_id: Mapped[str] = mapped_column(primary_key=True)
    report_specifier_id: Mapped[str]
    r_ids: Mapped[list[str]] = mapped_column(JSON())
    granularity: Mapped[timedelta | None]
    report_back_duration: Mapped[timedelta | None]
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    status: Mapped[str]
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
    refusal_code: Mapped[int | None]
    refusal_reason: Mapped[str | None]


class ReportPointRow(Base):
    """Received interval values; the primary key is the natural key of a re-send, led by
    (ven_id, dtstart) so that it also serves a VEN's points by time: each point goes into one
    index besides the table (migration 0006)."""

    __tablename__ = "report_points"
    __table_args__ = (PrimaryKeyConstraint(
        "ven_id", "dtstart", "r_id", "report_specifier_id", "report_request_id"),)

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"))
    report_specifier_id: Mapped[str]
    report_request_id: Mapped[str]
    r_id: Mapped[str]
    dtstart: Mapped[datetime]
    duration: Mapped[timedelta | None]
    value: Mapped[float | None] = mapped_column(Float())
    confidence: Mapped[int | None]
    accuracy: Mapped[float | None] = mapped_column(Float())
    data_quality: Mapped[str | None]
    received_at: Mapped[datetime]


class OptScheduleRow(Base):
    __tablename__ = "opt_schedules"

    ven_id: Mapped[str] = mapped_column(ForeignKey(_VEN_FK, ondelete="CASCADE"), primary_key=True)
    opt_id: Mapped[str] = mapped_column(primary_key=True)
    opt_type: Mapped[str]
    opt_reason: Mapped[str]
    market_context: Mapped[str | None]
    resource_id: Mapped[str | None]
    event_id: Mapped[str | None]
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class OptWindowRow(Base):
    __tablename__ = "opt_windows"
    __table_args__ = (
        ForeignKeyConstraint(
            ["ven_id", "opt_id"],
            ["opt_schedules.ven_id", "opt_schedules.opt_id"],
            ondelete="CASCADE",
        ),
    )

    ven_id: Mapped[str] = mapped_column(primary_key=True)
    opt_id: Mapped[str] = mapped_column(primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    duration: Mapped[timedelta]


class NonceRow(Base):
    """ReplayProtect nonces already accepted (OpenADR 2.0b spec 11.2, oadr:ReplayProtect)."""

    __tablename__ = "nonces"

    nonce: Mapped[str] = mapped_column(primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)
