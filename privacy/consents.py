"""Consent rows: authenticated, read on every check, kept in a minimal form after erasure.

Each row (purpose, granted, withdrawn, and either its ``prosumer_id`` or, once the prosumer is
erased, the erasure's random id) carries an HMAC under the master key's ``integrity`` domain
(:class:`privacy.sealing.Integrity`). A row whose fields were altered (a withdrawal removed, a
purpose changed, a grant forged without the key) raises :class:`VaultCorrupt` on the next read.
After erasure only purpose and times remain (GDPR art. 7(1): the aggregator can still show that
past processing had consent), under an id that links to nothing.

:class:`Consents` is ``vault.consents``: grant and withdraw for a prosumer in the vault, and the
check before a device's data is used (:meth:`Consents.require`). Consent is read from the file
on every check, so a withdrawal takes effect at the next check.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Final
from uuid import UUID

from .errors import ConsentMissing, VaultCorrupt
from .identities import IdentityRows, in_chunks
from .records import Consent, ConsentHistory
from .sealing import Integrity

__all__ = ["CONSENT_SCHEMA", "ConsentRows", "Consents"]

CONSENT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS consents (
    consent_id TEXT PRIMARY KEY, prosumer_id TEXT, erasure_id TEXT, purpose TEXT NOT NULL,
    granted_at TEXT NOT NULL, withdrawn_at TEXT, key_version INTEGER NOT NULL, mac BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS consents_prosumer ON consents (prosumer_id);
"""

_Row = tuple[str, str | None, str | None, str, str, str | None]


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class ConsentRows:
    """The consents table of a vault connection; writes join the caller's transaction."""

    __slots__ = ("_db", "_integrity")

    def __init__(self, db: sqlite3.Connection, integrity: Integrity) -> None:
        self._db = db
        self._integrity = integrity

    def _mac(self, version: int, row: _Row) -> bytes:
        return self._integrity.mac(version, "consent", *row)

    def _put(self, row: _Row) -> None:
        version = self._integrity.current_version()
        self._db.execute("INSERT OR REPLACE INTO consents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (*row, version, self._mac(version, row)))

    def _rows(self, where: str, args: Sequence[object]) -> list[_Row]:
        """Rows matching ``where``, each checked against its MAC."""
        rows: list[_Row] = []
        for *fields, version, mac in self._db.execute(
                "SELECT consent_id, prosumer_id, erasure_id, purpose, granted_at, withdrawn_at, "
                f"key_version, mac FROM consents WHERE {where} ORDER BY granted_at", args):
            row: _Row = tuple(fields)
            if mac != self._mac(version, row):
                raise VaultCorrupt(f"consent row {row[0]} fails its MAC (altered)")
            rows.append(row)
        return rows

    def grant(self, prosumer_id: str, purpose: str, at: datetime) -> Consent:
        self._put((str(uuid.uuid4()), prosumer_id, None, purpose, at.isoformat(), None))
        return Consent(prosumer_id=prosumer_id, purpose=purpose, granted_at=at)

    def withdraw(self, prosumer_id: str, purpose: str, at: datetime) -> int:
        """End every live consent of the prosumer for ``purpose``; how many there were."""
        rows = self._rows("prosumer_id = ? AND purpose = ? AND withdrawn_at IS NULL",
                          (prosumer_id, purpose))
        for cid, pid, eid, p, granted, _ in rows:
            self._put((cid, pid, eid, p, granted, at.isoformat()))
        return len(rows)

    def of(self, prosumer_id: str) -> tuple[Consent, ...]:
        return tuple(Consent(prosumer_id=prosumer_id, purpose=p,
                             granted_at=datetime.fromisoformat(g), withdrawn_at=_at(w))
                     for _, _, _, p, g, w in self._rows("prosumer_id = ?", (prosumer_id,)))

    def live(self, prosumer_id: str, purpose: str) -> bool:
        """Every row of the prosumer is checked, so a tampered row of any purpose is noticed."""
        return prosumer_id in self.live_among((prosumer_id,), purpose)

    def live_among(self, prosumer_ids: Sequence[str], purpose: str) -> frozenset[str]:
        """The prosumers of ``prosumer_ids`` with a live consent to ``purpose``; as :meth:`live`,
        every row of each is checked."""
        live: set[str] = set()
        for marks, chunk in in_chunks(prosumer_ids):
            live.update(str(owner) for _, owner, _, p, _, withdrawn in self._rows(
                f"prosumer_id IN ({marks})", chunk) if p == purpose and withdrawn is None)
        return frozenset(live)

    def forget_prosumer(self, prosumer_id: str, erasure_id: str, at: datetime) -> None:
        """Keep only purpose and times, under ``erasure_id``; a live consent ends at ``at``."""
        for cid, _, _, purpose, granted, withdrawn in self._rows("prosumer_id = ?",
                                                                 (prosumer_id,)):
            self._put((cid, None, erasure_id, purpose, granted, withdrawn or at.isoformat()))

    def history(self) -> tuple[ConsentHistory, ...]:
        return tuple(ConsentHistory(erasure_id=str(e), purpose=p,
                                    granted_at=datetime.fromisoformat(g), withdrawn_at=_at(w))
                     for _, _, e, p, g, w in self._rows("prosumer_id IS NULL", ()))

    def reauthenticate(self) -> None:
        """Re-MAC every row under the current master version (key rotation)."""
        for row in self._rows("1 = 1", ()):
            self._put(row)


class Consents:
    """``vault.consents``: a prosumer's consents per purpose, and the check before use."""

    __slots__ = ("_clock", "_db", "_identities", "_rows")

    def __init__(self, db: sqlite3.Connection, rows: ConsentRows, identities: IdentityRows,
                 clock: Callable[[], datetime]) -> None:
        self._db = db
        self._rows = rows
        self._identities = identities
        self._clock = clock

    def grant(self, prosumer_id: str, purpose: str) -> Consent:
        """Record a consent given now; an unknown prosumer raises :class:`UnknownIdentity`."""
        self._identities.prosumer(prosumer_id)
        with self._db:
            return self._rows.grant(prosumer_id, purpose, self._clock())

    def withdraw(self, prosumer_id: str, purpose: str) -> int:
        """Withdraw every live consent for the purpose; effective at the next consent check.
        Returns how many were live (0: nothing to withdraw); an unknown prosumer raises
        :class:`UnknownIdentity`."""
        self._identities.prosumer(prosumer_id)
        with self._db:
            return self._rows.withdraw(prosumer_id, purpose, self._clock())

    def of(self, prosumer_id: str) -> tuple[Consent, ...]:
        """The prosumer's consents, live and withdrawn."""
        return self._rows.of(prosumer_id)

    def history(self) -> tuple[ConsentHistory, ...]:
        """The consent records of erased prosumers, kept without anything identifying."""
        return self._rows.history()

    def require(self, device_uuid: UUID, purpose: str) -> None:
        """Raise :class:`ConsentMissing` unless the device's owner consents to ``purpose`` now.

        Call it before sending any of the device's data (onboarding checks the owner's consent
        itself: :meth:`privacy.devices.Devices.onboard`).
        """
        owner = self._identities.owner(device_uuid)
        if owner is None:
            raise ConsentMissing(f"device {device_uuid} is not in the vault: no consent")
        if not self._rows.live(owner, purpose):
            raise ConsentMissing(f"no live consent for purpose {purpose!r} on device {device_uuid}")

    def consenting(self, device_uuids: Collection[UUID], purpose: str) -> frozenset[UUID]:
        """The devices of ``device_uuids`` whose owner consents to ``purpose`` now: what
        :meth:`require` would let through, read with one statement per 500 devices and one per
        500 owners instead of two per device (an activation asks this of every device)."""
        owners = self._identities.owners(device_uuids)
        live = self._rows.live_among(tuple(dict.fromkeys(owners.values())), purpose)
        return frozenset(device for device, owner in owners.items() if owner in live)
