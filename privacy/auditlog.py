"""The vault's re-identification log: hash-chained, keyed, and free of clear identifiers.

Every path from a pseudonym or a device_uuid to identity (and every erasure) writes one entry:
when, which action, who asked (``requested_by``), why (``reason``, required and non-empty) and
what (``detail``). Identifiers in ``detail`` are keyed references (:meth:`AuditLog.ref`), never
the pseudonym, device_uuid or prosumer_id itself, so the log can outlive an erasure.

Each entry carries ``chain = HMAC(integrity key, previous chain || the entry's fields)`` (the
first entry's previous chain is 32 zero bytes) and the master version of that key. Changing,
deleting or reordering an entry breaks every chain from it on; :func:`verify_chain` names the
first broken entry. Cutting entries off the end leaves a shorter valid chain: compare the
verifier's ``head`` and ``entries`` with a copy kept elsewhere to detect that. Without the master
key nobody can forge a chain that verifies.

Two faces of one table: :class:`AuditLog` appends (held by the vault's concern objects only) and
:class:`AuditTrail` reads and verifies (``vault.audit``); no public attribute of the vault leads
to a writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .errors import KeyUnavailable
from .sealing import Integrity

__all__ = ["AUDIT_SCHEMA", "AuditEntry", "AuditLog", "AuditTrail", "ChainCheck"]

_GENESIS: Final = bytes(32)
AUDIT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit_log (
    entry INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, action TEXT NOT NULL,
    requested_by TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
    key_version INTEGER NOT NULL, chain BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    entry: int
    at: datetime
    action: str
    requested_by: str
    reason: str
    detail: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainCheck:
    """The verifier's verdict: ``first_broken`` is None when every entry chains."""

    entries: int
    head: str
    first_broken: int | None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def _link(integrity: Integrity, previous: bytes, version: int,
          fields: tuple[object, ...]) -> bytes:
    return integrity.mac(version, previous.hex(), *fields)


class AuditLog:
    """The writer: appends to the chain in the vault's SQLite connection, for every concern of
    the vault."""

    __slots__ = ("_clock", "_db", "_integrity")

    def __init__(self, db: sqlite3.Connection, integrity: Integrity,
                 clock: Callable[[], datetime]) -> None:
        self._db = db
        self._integrity = integrity
        self._clock = clock

    def write(self, action: str, *, requested_by: str, reason: str,
              detail: Mapping[str, str]) -> None:
        """Append one entry (inside the caller's transaction when there is one)."""
        if not requested_by.strip() or not reason.strip():
            raise ValueError("an audited access needs who asks (requested_by) and why (reason)")
        at = self._clock().isoformat()
        text = json.dumps(dict(detail), sort_keys=True)
        version = self._integrity.current_version()
        cursor = self._db.execute(
            "INSERT INTO audit_log (at, action, requested_by, reason, detail, key_version, chain)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (at, action, requested_by, reason, text, version, b""))
        entry = cursor.lastrowid
        previous = self._db.execute(
            "SELECT chain FROM audit_log WHERE entry < ? ORDER BY entry DESC LIMIT 1",
            (entry,)).fetchone()
        chain = _link(self._integrity, bytes(previous[0]) if previous else _GENESIS, version,
                      (entry, at, action, requested_by, reason, text))
        self._db.execute("UPDATE audit_log SET chain = ? WHERE entry = ?", (chain, entry))

    def record(self, action: str, *, requested_by: str, reason: str,
               detail: Mapping[str, str]) -> None:
        """Append one entry in a transaction of its own (an audited read)."""
        with self._db:
            self.write(action, requested_by=requested_by, reason=reason, detail=detail)

    def ref(self, value: str) -> str:
        """A keyed reference to a value, for ``detail``: comparable, not reversible without the
        key."""
        version = self._integrity.current_version()
        return f"v{version}:" + self._integrity.mac(version, "ref", value)[:12].hex()


class AuditTrail:
    """``vault.audit``: reads the chain back and verifies it; it has no way to append."""

    __slots__ = ("_db", "_integrity")

    def __init__(self, db: sqlite3.Connection, integrity: Integrity) -> None:
        self._db = db
        self._integrity = integrity

    def entries(self) -> tuple[AuditEntry, ...]:
        rows = self._db.execute(
            "SELECT entry, at, action, requested_by, reason, detail FROM audit_log ORDER BY entry")
        return tuple(AuditEntry(entry=e, at=datetime.fromisoformat(a), action=act,
                                requested_by=who, reason=why, detail=json.loads(d))
                     for e, a, act, who, why, d in rows)

    def verify(self) -> ChainCheck:
        previous, count = _GENESIS, 0
        rows = self._db.execute("SELECT entry, at, action, requested_by, reason, detail, "
                                "key_version, chain FROM audit_log ORDER BY entry")
        for entry, at, action, who, why, detail, version, chain in rows:
            count += 1
            try:
                expected = _link(self._integrity, previous, version,
                                 (entry, at, action, who, why, detail))
            except KeyUnavailable as exc:  # an unknown key version is a break, not a crash
                return ChainCheck(entries=count, head=previous.hex(), first_broken=entry,
                                  problem=f"cannot check: {exc}")
            if bytes(chain) != expected:
                return ChainCheck(entries=count, head=previous.hex(), first_broken=entry,
                                  problem="entry altered, or an entry before it removed")
            previous = expected
        return ChainCheck(entries=count, head=previous.hex(), first_broken=None)
