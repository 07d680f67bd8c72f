"""The vault file's sealed identity tables: prosumers and devices, unaudited, inside the vault.

Each row is sealed under its prosumer's own data key (:class:`privacy.sealing.Keyring`) with
AES-256-GCM, a fresh 96-bit nonce and associated data binding table, prosumer_id, record id and
purpose (:func:`privacy.sealing.row_aad`), so a blob moved to another row does not open
(:class:`VaultCorrupt`). Only the opaque ids (prosumer_id, device_uuid) are outside the seal.

Nothing here writes the audit log: :class:`IdentityRows` is held privately by the vault and its
concerns, and every public way to what it reads (:mod:`privacy.prosumers`,
:mod:`privacy.devices`, :mod:`privacy.pseudonyms`, :mod:`privacy.erasure`) is audited there.
Each row also keeps the month it was added (``since``): erasure lists pseudonyms from it on.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from cryptography.exceptions import InvalidTag

from .errors import UnknownIdentity, VaultCorrupt
from .pseudonym import month_of
from .records import Device, Prosumer
from .sealing import Keyring, row_aad

__all__ = ["IDENTITY_SCHEMA", "SALT_BYTES", "IdentityRows", "in_chunks"]

#: random bytes of each new GCP and device salt
SALT_BYTES: Final = 16
#: ids bound per statement when many rows are read at once (older SQLite builds allow 999)
_IDS_PER_STATEMENT: Final = 500

IDENTITY_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS prosumers (
    prosumer_id TEXT PRIMARY KEY, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_uuid TEXT PRIMARY KEY, prosumer_id TEXT NOT NULL REFERENCES prosumers(prosumer_id),
    nonce BLOB NOT NULL, sealed BLOB NOT NULL);
"""

_DeviceRow = tuple[str, str, bytes, bytes]


def in_chunks(ids: Sequence[str]) -> Iterator[tuple[str, Sequence[str]]]:
    """``ids`` for ``WHERE column IN (...)``, a statement's worth at a time: the ``?`` marks
    and the ids they bind."""
    for i in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[i:i + _IDS_PER_STATEMENT]
        yield ",".join("?" * len(chunk)), chunk


class IdentityRows:
    """The prosumers and devices tables of a vault connection.

    ``generation`` rises on every identity write (a prosumer or device added, a prosumer
    deleted): caches of identity values compare it."""

    __slots__ = ("_clock", "_db", "_keyring", "_zone", "generation")

    def __init__(self, db: sqlite3.Connection, keyring: Keyring, *,
                 clock: Callable[[], datetime], month_zone: str) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock
        self._zone = month_zone
        self.generation = 0

    def _seal(self, table: str, prosumer_id: str, record_id: str, purpose: str,
              fields: dict[str, Any]) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        plain = json.dumps(fields, sort_keys=True).encode()
        key = self._keyring.data_key(prosumer_id)
        return nonce, key.encrypt(nonce, plain, row_aad(table, prosumer_id, record_id, purpose))

    def _open(self, table: str, prosumer_id: str, record_id: str, purpose: str, nonce: bytes,
              sealed: bytes) -> dict[str, Any]:
        key = self._keyring.data_key(prosumer_id)
        try:
            plain = key.decrypt(nonce, sealed, row_aad(table, prosumer_id, record_id, purpose))
        except InvalidTag:
            raise VaultCorrupt(f"{table} record {record_id} does not decrypt") from None
        loaded: dict[str, Any] = json.loads(plain)
        return loaded

    # ------------------------------------------------------------ prosumers

    def add_prosumer(self, prosumer: Prosumer) -> None:
        """Give a new prosumer a data key and seal their row under it; a known id is refused."""
        prosumer_id = prosumer.prosumer_id
        if self._db.execute("SELECT 1 FROM prosumers WHERE prosumer_id = ?",
                            (prosumer_id,)).fetchone():
            raise ValueError(f"prosumer {prosumer_id!r} is already in the vault")
        self._keyring.create(prosumer_id)
        fields = {
            "name": prosumer.name,
            "postcode": prosumer.postcode,
            "ean": prosumer.ean,
            "contract_id": prosumer.contract_id,
            "gcp_uuid": str(prosumer.gcp_uuid),
            "gcp_salt": prosumer.gcp_salt.hex(),
            "since": month_of(self._clock(), self._zone),
        }
        nonce, sealed = self._seal("prosumers", prosumer_id, prosumer_id, "identity", fields)
        with self._db:
            self._db.execute("INSERT INTO prosumers VALUES (?, ?, ?)",
                             (prosumer_id, nonce, sealed))
        self.generation += 1

    def _prosumer_fields(self, prosumer_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT nonce, sealed FROM prosumers WHERE prosumer_id = ?", (prosumer_id,)
        ).fetchone()
        if row is None:
            raise UnknownIdentity(f"no prosumer {prosumer_id!r} in the vault")
        return self._open("prosumers", prosumer_id, prosumer_id, "identity", *row)

    def prosumer(self, prosumer_id: str) -> Prosumer:
        """The prosumer's record; :class:`UnknownIdentity` when absent or erased."""
        f = self._prosumer_fields(prosumer_id)
        return Prosumer(
            prosumer_id=prosumer_id,
            name=f["name"],
            postcode=f["postcode"],
            ean=f["ean"],
            contract_id=f["contract_id"],
            gcp_uuid=UUID(f["gcp_uuid"]),
            gcp_salt=bytes.fromhex(f["gcp_salt"]),
        )

    def since(self, prosumer_id: str) -> str:
        """The month the prosumer was added."""
        return str(self._prosumer_fields(prosumer_id)["since"])

    def prosumer_ids(self) -> tuple[str, ...]:
        rows = self._db.execute("SELECT prosumer_id FROM prosumers ORDER BY prosumer_id")
        return tuple(r[0] for r in rows)

    def delete(self, prosumer_id: str) -> None:
        """Delete the prosumer's row and their devices' rows (inside the caller's transaction)."""
        self._db.execute("DELETE FROM devices WHERE prosumer_id = ?", (prosumer_id,))
        self._db.execute("DELETE FROM prosumers WHERE prosumer_id = ?", (prosumer_id,))
        self.generation += 1

    # ------------------------------------------------------------ devices

    def add_device(self, device: Device) -> None:
        fields = {
            "serial": device.serial,
            "device_class": device.device_class,
            "rated_kw": str(device.rated_kw),
            "zone": device.zone,
            "salt": device.salt.hex(),
            "since": month_of(self._clock(), self._zone),
        }
        record_id = str(device.device_uuid)
        nonce, sealed = self._seal("devices", device.prosumer_id, record_id, "device", fields)
        with self._db:
            self._db.execute("INSERT INTO devices VALUES (?, ?, ?, ?)",
                             (record_id, device.prosumer_id, nonce, sealed))
        self.generation += 1

    def _device(self, row: _DeviceRow) -> Device:
        record_id, prosumer_id, nonce, sealed = row
        f = self._open("devices", prosumer_id, record_id, "device", nonce, sealed)
        return Device(
            device_uuid=UUID(record_id),
            prosumer_id=prosumer_id,
            serial=f["serial"],
            device_class=f["device_class"],
            rated_kw=Decimal(f["rated_kw"]),
            zone=f["zone"],
            salt=bytes.fromhex(f["salt"]),
        )

    def device(self, device_uuid: UUID) -> Device:
        """The device's record; :class:`UnknownIdentity` when absent or erased."""
        row = self._db.execute(
            "SELECT * FROM devices WHERE device_uuid = ?", (str(device_uuid),)
        ).fetchone()
        if row is None:
            raise UnknownIdentity(f"no device {device_uuid} in the vault")
        return self._device((row[0], row[1], row[2], row[3]))

    def devices(self, prosumer_id: str | None = None) -> tuple[Device, ...]:
        """Every device's record, or one prosumer's, by device_uuid."""
        if prosumer_id is None:
            rows = self._db.execute("SELECT * FROM devices ORDER BY device_uuid").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM devices WHERE prosumer_id = ? ORDER BY device_uuid", (prosumer_id,)
            ).fetchall()
        return tuple(self._device(row) for row in rows)

    def owner(self, device_uuid: UUID) -> str | None:
        """The prosumer_id a device belongs to (its clear column: nothing is opened)."""
        return self.owners((device_uuid,)).get(device_uuid)

    def owners(self, device_uuids: Collection[UUID]) -> dict[UUID, str]:
        """:meth:`owner` of many devices; those not in the vault are left out."""
        wanted = {str(device): device for device in device_uuids}
        found: dict[UUID, str] = {}
        for marks, chunk in in_chunks(tuple(wanted)):
            found.update((wanted[device], str(owner)) for device, owner in self._db.execute(
                f"SELECT device_uuid, prosumer_id FROM devices WHERE device_uuid IN ({marks})",
                chunk))
        return found
