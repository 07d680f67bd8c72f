"""Raw device data and its retention: the 4-s samples the aggregator keeps, for 100 days by default.

Owns the :class:`RawDataStore` protocol (what the aggregator writes samples through) and
:class:`SqliteRawDataStore`, its embedded implementation, plus :func:`apply_retention`.

Invariants: samples are keyed by device_uuid (never identity), times are stored as UTC epoch
milliseconds so range deletes use an index; kW values are Decimal, stored as text so nothing is
rounded; writes are batched (one transaction per ``add``, docs/architecture.md#where-the-time-goes);
deletes zero the freed pages (``secure_delete``) so erased data is not left in the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final, Protocol
from uuid import UUID

__all__ = [
    "DEFAULT_RETENTION",
    "RawDataStore",
    "RawSample",
    "SqliteRawDataStore",
    "apply_retention",
]

DEFAULT_RETENTION: Final = timedelta(days=100)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawSample:
    device_uuid: UUID
    at: datetime
    kw: Decimal

    def __post_init__(self) -> None:
        if self.at.utcoffset() is None:
            raise ValueError("sample time must be timezone-aware")


class RawDataStore(Protocol):
    """Where raw per-device samples live inside the aggregator."""

    def add(self, samples: Iterable[RawSample]) -> int:
        """Store samples in one transaction; returns how many."""
        ...

    def samples(self, device_uuid: UUID, start: datetime, end: datetime) -> tuple[RawSample, ...]:
        """A device's samples with ``start <= at < end``, oldest first."""
        ...

    def purge_before(self, cutoff: datetime) -> int:
        """Delete every sample older than ``cutoff``; returns how many."""
        ...

    def erase_devices(self, device_uuids: Iterable[UUID]) -> int:
        """Delete every sample of these devices (erasure); returns how many."""
        ...


def _ms(at: datetime) -> int:
    if at.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    return round(at.timestamp() * 1000)


class SqliteRawDataStore:
    """:class:`RawDataStore` in one SQLite file (WAL)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(Path(path))
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA secure_delete = ON")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS samples (device_uuid TEXT NOT NULL, "
                "at_ms INTEGER NOT NULL, kw TEXT NOT NULL, PRIMARY KEY (device_uuid, at_ms))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS samples_at ON samples (at_ms)")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteRawDataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, samples: Iterable[RawSample]) -> int:
        rows = [(str(s.device_uuid), _ms(s.at), str(s.kw)) for s in samples]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)", rows)
        return len(rows)

    def samples(self, device_uuid: UUID, start: datetime, end: datetime) -> tuple[RawSample, ...]:
        rows = self._db.execute(
            "SELECT at_ms, kw FROM samples WHERE device_uuid = ? AND at_ms >= ? AND at_ms < ? "
            "ORDER BY at_ms",
            (str(device_uuid), _ms(start), _ms(end)),
        )
        return tuple(
            RawSample(
                device_uuid=device_uuid,
                at=datetime.fromtimestamp(at_ms / 1000, UTC),
                kw=Decimal(kw),
            )
            for at_ms, kw in rows
        )

    def purge_before(self, cutoff: datetime) -> int:
        with self._db:
            cursor = self._db.execute("DELETE FROM samples WHERE at_ms < ?", (_ms(cutoff),))
        return cursor.rowcount

    def erase_devices(self, device_uuids: Iterable[UUID]) -> int:
        with self._db:
            cursor = self._db.executemany(
                "DELETE FROM samples WHERE device_uuid = ?", [(str(u),) for u in device_uuids]
            )
        return cursor.rowcount

    def count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM samples").fetchone()
        return int(row[0])


def apply_retention(
    store: RawDataStore, *, now: datetime, retention: timedelta = DEFAULT_RETENTION
) -> int:
    """Purge raw data older than ``retention`` before ``now``; run it daily. Returns rows purged."""
    if retention <= timedelta(0):
        raise ValueError("retention must be positive")
    return store.purge_before(now - retention)
