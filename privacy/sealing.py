"""Per-prosumer data keys, the keyring crypto-shredding destroys, and row authentication.

Each prosumer gets a random 256-bit *data key*; their identity row and their devices' rows (salts
included) are sealed under it with AES-256-GCM, a fresh 96-bit nonce per write and associated
data binding the table, the ``prosumer_id``, the record id and the row's purpose, so a sealed blob
moved to another row, another prosumer or another purpose does not open (:class:`VaultCorrupt`).

The data key is stored only wrapped (AES-256-GCM under the master key's ``wrap`` domain,
:func:`privacy.keys.domain_key`), in the :class:`Keyring`: a SQLite file of its own, never inside
the vault file. Erasure deletes the prosumer's wrapped key from the keyring (``secure_delete``;
a WAL, if any, is checkpointed and truncated at once, or at the next checkpoint while another
connection is reading), so a copy of the vault file taken before the erasure (a backup, old WAL
frames) holds ciphertext that no key left can open. The keyring
is key material: keep it with the master keys, not in the data backups (a keyring copy older
than an erasure would undo it). Rotation (:meth:`Keyring.rewrap`) re-wraps every data key under
the current master version.

:class:`Integrity` authenticates clear rows (consents, pseudonym epochs, the audit chain) with
HMAC-SHA256 under the ``integrity`` domain of the master version the row names.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import UnknownIdentity, VaultCorrupt
from .keys import KEY_BYTES, KeyProvider, domain_key

__all__ = ["Integrity", "Keyring", "row_aad"]

_LABEL: Final = "cbp-vault-v2"
_LOG: Final = logging.getLogger("crowdflex.privacy.keyring")
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS data_keys (
    prosumer_id TEXT PRIMARY KEY, key_version INTEGER NOT NULL, nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL);
"""


def row_aad(table: str, prosumer_id: str, record_id: str, purpose: str) -> bytes:
    """Associated data of a sealed row: JSON, so no field can run into the next."""
    return json.dumps([_LABEL, table, prosumer_id, record_id, purpose]).encode()


def _wrap_aad(prosumer_id: str, version: int) -> bytes:
    return json.dumps([_LABEL, "data-key", prosumer_id, version]).encode()


class Keyring:
    """Wrapped data keys, one per prosumer, in their own file. Close it with the vault."""

    __slots__ = ("_db", "_keys", "_wrappers", "path")

    def __init__(self, path: Path, keys: KeyProvider, *,
                 synchronous: Literal["full", "normal"] = "full") -> None:
        """``synchronous`` as the vault's: ``"normal"`` (bulk onboarding) uses WAL without an
        fsync per commit; :meth:`destroy` then checkpoints and truncates the WAL, so no frame
        with the destroyed key is left in it."""
        self.path = Path(path)
        self._keys = keys
        self._wrappers: dict[int, AESGCM] = {}
        self._db = sqlite3.connect(self.path)
        journal = "WAL" if synchronous == "normal" else "DELETE"
        self._db.execute(f"PRAGMA journal_mode = {journal}")
        self._db.execute("PRAGMA synchronous = " + synchronous.upper())
        self._db.execute("PRAGMA secure_delete = ON")
        with self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def wrapper(self, version: int) -> AESGCM:
        """The ``wrap`` domain cipher of a master version (also seals pending notices)."""
        if version not in self._wrappers:
            self._wrappers[version] = AESGCM(domain_key(self._keys.get(version), "wrap"))
        return self._wrappers[version]

    def _wrapped(self, prosumer_id: str, secret: bytes) -> tuple[int, bytes, bytes]:
        version = self._keys.current().version
        nonce = os.urandom(12)
        return version, nonce, self.wrapper(version).encrypt(
            nonce, secret, _wrap_aad(prosumer_id, version))

    def create(self, prosumer_id: str) -> AESGCM:
        """A fresh random data key for a new prosumer, stored wrapped."""
        secret = os.urandom(KEY_BYTES)
        version, nonce, wrapped = self._wrapped(prosumer_id, secret)
        with self._db:
            self._db.execute("INSERT INTO data_keys VALUES (?, ?, ?, ?)",
                             (prosumer_id, version, nonce, wrapped))
        return AESGCM(secret)

    def _unwrap(self, prosumer_id: str) -> bytes:
        row = self._db.execute(
            "SELECT key_version, nonce, wrapped FROM data_keys WHERE prosumer_id = ?",
            (prosumer_id,)).fetchone()
        if row is None:
            raise UnknownIdentity(f"no data key for prosumer {prosumer_id!r} in {self.path} "
                                  "(erased, or not this vault's keyring)")
        version, nonce, wrapped = row
        try:
            secret: bytes = self.wrapper(version).decrypt(
                nonce, wrapped, _wrap_aad(prosumer_id, version))
        except InvalidTag:
            raise VaultCorrupt(f"data key of prosumer {prosumer_id!r} does not unwrap") from None
        return secret

    def data_key(self, prosumer_id: str) -> AESGCM:
        """Unwrapped at every use, never cached: an erasure made through another connection to
        the keyring (``crowdflex privacy erase`` beside a running node) takes effect at once."""
        return AESGCM(self._unwrap(prosumer_id))

    def destroy(self, prosumer_id: str) -> None:
        """Delete the prosumer's data key: everything sealed under it is unreadable for good."""
        with self._db:
            self._db.execute("DELETE FROM data_keys WHERE prosumer_id = ?", (prosumer_id,))
        busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]  # no WAL: 0
        if busy:
            _LOG.warning("keyring %s: another connection is reading; the WAL frame with the "
                         "destroyed key goes at the next checkpoint", self.path)

    def rewrap(self) -> int:
        """Re-wrap every data key under the current master version; how many were re-wrapped."""
        ids = [r[0] for r in self._db.execute("SELECT prosumer_id FROM data_keys")]
        rows = []
        for prosumer_id in ids:
            version, nonce, wrapped = self._wrapped(prosumer_id, self._unwrap(prosumer_id))
            rows.append((version, nonce, wrapped, prosumer_id))
        with self._db:
            self._db.executemany("UPDATE data_keys SET key_version = ?, nonce = ?, wrapped = ? "
                                 "WHERE prosumer_id = ?", rows)
        return len(rows)

    def versions(self) -> tuple[int, ...]:
        """The master versions some data key is wrapped under (empty when there are none)."""
        return tuple(r[0] for r in self._db.execute(
            "SELECT DISTINCT key_version FROM data_keys ORDER BY key_version"))


class Integrity:
    """HMAC-SHA256 over JSON-encoded fields, under the ``integrity`` domain of a master version."""

    __slots__ = ("_keys", "_macs")

    def __init__(self, keys: KeyProvider) -> None:
        self._keys = keys
        self._macs: dict[int, bytes] = {}

    def current_version(self) -> int:
        return self._keys.current().version

    def _key(self, version: int) -> bytes:
        if version not in self._macs:
            self._macs[version] = domain_key(self._keys.get(version), "integrity")
        return self._macs[version]

    def mac(self, version: int, *fields: object) -> bytes:
        return hmac.digest(self._key(version), json.dumps(fields).encode(), "sha256")

    def verify(self, version: int, tag: bytes, *fields: object) -> bool:
        return hmac.compare_digest(self.mac(version, *fields), tag)
