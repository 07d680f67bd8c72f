"""Which master key version each month's pseudonyms use, and which scopes pseudonyms were issued in.

Epochs: a row ``(from_month, version)`` says that pseudonyms of ``from_month`` and later use the
``pseudonym`` domain of that master version, until the next epoch. A new master version opens its
epoch on the month *after* the one it appears in, so a rotation never switches a device's
pseudonym in the middle of a month (the TSO validates per device within a month). Each row is
authenticated (:class:`privacy.sealing.Integrity`); an altered one raises :class:`VaultCorrupt`.

Issued scopes: every (recipient, purpose, month) a pseudonym was computed for, so an erasure can
list the pseudonyms of every scope and month ever used, not only the configured ones.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Final

from .errors import UnknownIdentity, VaultCorrupt
from .keys import KeyProvider, domain_key
from .pseudonym import month_of, months_between, next_month, scope_key, validate_month
from .sealing import Integrity

__all__ = ["EPOCH_SCHEMA", "Epochs"]

_FIRST: Final = "1970-01"
EPOCH_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS pseudonym_epochs (
    from_month TEXT PRIMARY KEY, pseudonym_version INTEGER NOT NULL,
    key_version INTEGER NOT NULL, mac BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS issued_scopes (
    recipient TEXT NOT NULL, purpose TEXT NOT NULL, month TEXT NOT NULL,
    PRIMARY KEY (recipient, purpose, month));
"""


class Epochs:
    """The epochs and issued scopes of a vault connection."""

    __slots__ = ("_cache", "_db", "_integrity", "_issued", "_keys", "_roots")

    def __init__(self, db: sqlite3.Connection, keys: KeyProvider, integrity: Integrity) -> None:
        self._db = db
        self._keys = keys
        self._integrity = integrity
        self._roots: dict[int, bytes] = {}
        self._issued: set[tuple[str, str, str]] = set()
        self._cache: list[tuple[str, int]] | None = None

    def _epochs(self) -> list[tuple[str, int]]:
        if self._cache is None:
            epochs = []
            for month, version, mac_version, mac in self._db.execute(
                    "SELECT from_month, pseudonym_version, key_version, mac "
                    "FROM pseudonym_epochs ORDER BY from_month"):
                if not self._integrity.verify(mac_version, mac, "epoch", month, version):
                    raise VaultCorrupt(f"pseudonym epoch from {month} fails its MAC (altered)")
                epochs.append((month, version))
            self._cache = epochs
        return self._cache

    def _put(self, month: str, version: int) -> None:
        self._cache = None
        mac_version = self._integrity.current_version()
        self._db.execute("INSERT OR REPLACE INTO pseudonym_epochs VALUES (?, ?, ?, ?)", (
            month, version, mac_version,
            self._integrity.mac(mac_version, "epoch", month, version)))

    def open(self, now: datetime, zone: str) -> None:
        """Give the current master version an epoch if it has none: from next month."""
        current = self._keys.current().version
        epochs = self._epochs()
        if epochs and max(v for _, v in epochs) >= current:
            return
        start = next_month(month_of(now, zone)) if epochs else _FIRST
        with self._db:
            self._put(start, current)

    def reauthenticate(self) -> None:
        """Re-MAC every epoch under the current master version (inside the caller's
        transaction)."""
        for month, version in self._epochs():
            self._put(month, version)

    def scope_key(self, recipient: str, purpose: str, month: str) -> bytes:
        """The pseudonym key of one (recipient, purpose, month), under the month's epoch."""
        validate_month(month)
        version = max((v for m, v in self._epochs() if m <= month), default=None)
        if version is None:
            raise UnknownIdentity(f"no pseudonym epoch covers {month}")
        if version not in self._roots:
            self._roots[version] = domain_key(self._keys.get(version), "pseudonym")
        return scope_key(self._roots[version], recipient, purpose, month)

    def note_issued(self, recipient: str, purpose: str, month: str) -> None:
        if (recipient, purpose, month) not in self._issued:
            with self._db:
                self._db.execute("INSERT OR IGNORE INTO issued_scopes VALUES (?, ?, ?)",
                                 (recipient, purpose, month))
            self._issued.add((recipient, purpose, month))

    def used_scopes(self) -> list[tuple[str, str]]:
        return [(r, p) for r, p in self._db.execute(
            "SELECT DISTINCT recipient, purpose FROM issued_scopes ORDER BY recipient, purpose")]

    def months(self, recipient: str, purpose: str, since: str, now: str) -> tuple[str, ...]:
        """Every month from ``since`` to ``now``, and any other month the scope was issued in."""
        issued = {r[0] for r in self._db.execute(
            "SELECT month FROM issued_scopes WHERE recipient = ? AND purpose = ?",
            (recipient, purpose))}
        return tuple(sorted(issued.union(months_between(since, now))))
