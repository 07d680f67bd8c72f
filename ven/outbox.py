"""The VEN's durable outbox: encoded payloads wait in a SQLite file until the VTN has taken them.

Invariants: items leave in the order they were put (a monotonically increasing sequence); an item is
removed only after the VTN answered it, so a crash or an unreachable VTN loses nothing, and a resend
after a crash between the VTN's commit and our delete is absorbed by the VTN's idempotency keys
(report data is unique per VEN, report and interval). One outbox file serves one VEN process; each
item names the VTN it is for, so one VEN can talk to several VTNs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

__all__ = ["Outbox", "OutboxItem"]

_SCRUB_ATTEMPTS = 3  # a checkpoint that meets a running statement is tried again
_SCRUB_RETRY_S = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vtn TEXT NOT NULL,
    service TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_vtn_seq ON outbox (vtn, seq);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    seq: int
    vtn: str
    service: str
    payload: bytes


class Outbox:
    """Open with :meth:`open`; close with :meth:`close` (or ``async with``)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: Path | str) -> Outbox:
        connection = await aiosqlite.connect(str(path))
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=NORMAL")
        # a delivered item's bytes (reports naming pseudonyms) are zeroed, not left in free pages
        await connection.execute("PRAGMA secure_delete=ON")
        await connection.executescript(_SCHEMA)
        await connection.commit()
        return cls(connection)

    async def close(self) -> None:
        await self._db.close()

    async def scrub(self) -> bool:
        """Copy the WAL into the file and truncate it, so no older frame keeps a delivered
        item's bytes (after an erasure); False when another reader held the WAL, or a statement
        of this connection was still running (its frames go at a later checkpoint)."""
        for attempt in range(_SCRUB_ATTEMPTS):
            try:
                async with self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                    row = await cursor.fetchone()
            except sqlite3.OperationalError as exc:  # "database table is locked": busy now
                if "locked" not in str(exc):
                    raise
                if attempt + 1 < _SCRUB_ATTEMPTS:
                    await asyncio.sleep(_SCRUB_RETRY_S)  # let the running statement finish
                continue
            return row is not None and not row[0]
        return False

    async def __aenter__(self) -> Outbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def put(self, vtn: str, service: str, payload: bytes) -> int:
        """Store one payload durably (committed before return); its sequence number."""
        cursor = await self._db.execute(
            "INSERT INTO outbox (vtn, service, payload) VALUES (?, ?, ?)", (vtn, service, payload)
        )
        await self._db.commit()
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def pending(self, vtn: str, limit: int = 100) -> Sequence[OutboxItem]:
        """The oldest items for ``vtn``, in order."""
        async with self._db.execute(
            "SELECT seq, vtn, service, payload FROM outbox WHERE vtn = ? ORDER BY seq LIMIT ?",
            (vtn, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return tuple(OutboxItem(seq=r[0], vtn=r[1], service=r[2], payload=r[3]) for r in rows)

    async def done(self, seq: int) -> None:
        """The VTN answered item ``seq``: remove it."""
        await self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        await self._db.commit()

    async def count(self, vtn: str) -> int:
        async with self._db.execute("SELECT COUNT(*) FROM outbox WHERE vtn = ?", (vtn,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
