"""Durable ReplayProtect nonce store (OpenADR 2.0b spec 11.2: oadr:ReplayProtect carries a nonce
and a timestamp; a message whose nonce was already seen inside the window is a replay).

:meth:`NonceRepository.seen` is one INSERT ... ON CONFLICT DO NOTHING: the unique key decides
atomically, so two VTN workers sharing PostgreSQL cannot both accept the same nonce.

How the VTN uses it: the codec is synchronous and its replay hook (``NonceStore.seen(nonce,
timestamp) -> bool`` in ``schemas.replay``) cannot await. The VTN therefore runs the codec's
timestamp-window check with an in-memory or no-op store, takes the verified ReplayProtect nonce
and timestamp from the decoded message, and then awaits ``storage.nonces.seen(...)`` before
handling it; True means replay, answered with the ReplayProtect error code. A periodic task calls
:meth:`purge` with ``now - window``: a nonce older than the window is refused by the timestamp
check anyway, so forgetting it is safe.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from ._engine import Database
from ._models import NonceRow
from .backend import Backend

__all__ = ["NonceRepository"]

class NonceRepository:
    def __init__(self, db: Database, backend: Backend) -> None:
        self._db = db
        self._backend = backend

    async def seen(self, nonce: str, timestamp: datetime) -> bool:
        """Record ``nonce``; True if it had been recorded before (a replay), else False."""
        return await self._backend.nonce_seen(nonce, timestamp)

    async def purge(self, older_than: datetime) -> int:
        """Forget nonces whose message timestamp is before ``older_than``; returns how many."""
        stmt = delete(NonceRow).where(NonceRow.seen_at < older_than)
        async with self._db.write() as session:
            return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
