"""Pending erasure notices in the vault file, until each recipient acknowledges.

A notice's pseudonym list and the erased devices' local ids are sealed (AES-256-GCM under the
master key's ``wrap`` domain, associated data binding notice id and recipient): they cannot be
recomputed once the prosumer's data key is gone, so they are kept until delivery. On
acknowledgement both are dropped for good (``secure_delete``); what stays is the notice id,
recipient, when it was issued and acknowledged, and how many pseudonyms it listed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

from cryptography.exceptions import InvalidTag

from .errors import VaultCorrupt
from .keys import KeyProvider
from .records import ErasureNotice, PendingErasure
from .sealing import Keyring, row_aad

__all__ = ["NOTICE_SCHEMA", "NoticeRecord", "NoticeRows"]

NOTICE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS erasures (
    notice_id TEXT PRIMARY KEY, recipient TEXT NOT NULL, issued_at TEXT NOT NULL,
    pseudonyms INTEGER NOT NULL, acknowledged_at TEXT, key_version INTEGER,
    nonce BLOB, sealed BLOB);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoticeRecord:
    """What the vault keeps about a notice once it is acknowledged (and before)."""

    notice_id: str
    recipient: str
    issued_at: datetime
    pseudonyms: int
    acknowledged_at: datetime | None


class NoticeRows:
    """The erasures table of a vault connection; writes join the caller's transaction."""

    __slots__ = ("_db", "_keyring", "_keys")

    def __init__(self, db: sqlite3.Connection, keyring: Keyring, keys: KeyProvider) -> None:
        self._db = db
        self._keyring = keyring
        self._keys = keys

    def put(self, item: PendingErasure) -> None:
        notice = item.notice
        version = self._keys.current().version
        nonce = os.urandom(12)
        plain = json.dumps({"months": notice.months, "pseudonyms": notice.pseudonyms,
                            "devices": [str(d) for d in item.devices]}).encode()
        sealed = self._keyring.wrapper(version).encrypt(
            nonce, plain, row_aad("erasures", "", notice.notice_id, notice.recipient))
        self._db.execute("INSERT OR REPLACE INTO erasures VALUES (?, ?, ?, ?, NULL, ?, ?, ?)", (
            notice.notice_id, notice.recipient, notice.issued_at.isoformat(),
            len(notice.all_pseudonyms()), version, nonce, sealed))

    def pending(self, recipient: str | None = None) -> tuple[PendingErasure, ...]:
        rows = self._db.execute(
            "SELECT notice_id, recipient, issued_at, key_version, nonce, sealed FROM erasures "
            "WHERE acknowledged_at IS NULL AND (? IS NULL OR recipient = ?) ORDER BY issued_at",
            (recipient, recipient)).fetchall()
        found = []
        for notice_id, to, issued, version, nonce, sealed in rows:
            try:
                plain = self._keyring.wrapper(version).decrypt(
                    nonce, sealed, row_aad("erasures", "", notice_id, to))
            except InvalidTag:
                raise VaultCorrupt(f"erasure notice {notice_id} does not decrypt") from None
            body = json.loads(plain)
            found.append(PendingErasure(notice=ErasureNotice(
                notice_id=notice_id, recipient=to, issued_at=datetime.fromisoformat(issued),
                months=tuple(body["months"]),
                pseudonyms=tuple((p, tuple(names)) for p, names in body["pseudonyms"])),
                devices=tuple(UUID(d) for d in body["devices"])))
        return tuple(found)

    def acknowledge(self, notice_id: str, at: datetime) -> None:
        self._db.execute("UPDATE erasures SET acknowledged_at = ?, key_version = NULL, "
                         "nonce = NULL, sealed = NULL WHERE notice_id = ?",
                         (at.isoformat(), notice_id))

    def records(self) -> tuple[NoticeRecord, ...]:
        return tuple(NoticeRecord(notice_id=n, recipient=r, issued_at=datetime.fromisoformat(i),
                                  pseudonyms=c,
                                  acknowledged_at=None if a is None else datetime.fromisoformat(a))
                     for n, r, i, c, a in self._db.execute(
                         "SELECT notice_id, recipient, issued_at, pseudonyms, acknowledged_at "
                         "FROM erasures ORDER BY issued_at"))
