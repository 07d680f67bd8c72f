"""The identity vault: the only place where a device meets its owner, EAN, serial and salt.

Aggregator only. One SQLite file (stdlib ``sqlite3``, synchronous: the vault is small and touched
on onboarding, consent changes, erasure and disputes, never per sample).

Invariants:
- Identity fields (name, postcode, EAN, contract, serial, class, salts) are sealed with AES-256-GCM:
  a fresh random 96-bit nonce per write, associated data binding table, record id and key version,
  so a sealed blob moved to another row or relabelled does not decrypt (:class:`VaultCorrupt`).
  Only opaque ids (prosumer_id, device_uuid), consent rows and the audit log are in clear.
- The record key is derived from a master key version (HKDF, its own salt label), never stored.
- ``PRAGMA secure_delete`` zeroes deleted content, so erasure does not leave salts in free pages.
- Consent is read from the file on every check, so a withdrawal takes effect at the next check.
- Every dispute resolution and every erasure writes an audit log row.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from schemas import utc_now

from .errors import ConsentMissing, UnknownIdentity, VaultCorrupt
from .keys import KeyProvider
from .pseudonym import pseudonym_in_scope, scope_key, validate_month
from .records import Consent, Device, Prosumer

__all__ = ["GCP_PURPOSE", "ONBOARDING_PURPOSE", "AuditEntry", "IdentityValue", "IdentityVault"]

GCP_PURPOSE: Final = "gcp"
ONBOARDING_PURPOSE: Final = "flexibility-service"
_SALT_BYTES: Final = 16

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS prosumers (
    prosumer_id TEXT PRIMARY KEY, key_version INTEGER NOT NULL, nonce BLOB NOT NULL,
    sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_uuid TEXT PRIMARY KEY, prosumer_id TEXT NOT NULL REFERENCES prosumers(prosumer_id),
    key_version INTEGER NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS consents (
    prosumer_id TEXT NOT NULL, purpose TEXT NOT NULL, granted_at TEXT NOT NULL,
    withdrawn_at TEXT, PRIMARY KEY (prosumer_id, purpose, granted_at));
CREATE TABLE IF NOT EXISTS audit_log (
    entry INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, action TEXT NOT NULL,
    requested_by TEXT NOT NULL, detail TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityValue:
    """One identifying value held by the vault, with what kind it is (for findings)."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    at: datetime
    action: str
    requested_by: str
    detail: dict[str, str]


class IdentityVault:
    """Sealed identity records in one SQLite file. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        path: Path,
        keys: KeyProvider,
        *,
        clock: Callable[[], datetime] = utc_now,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        """Open (or create) the vault at ``path``.

        ``synchronous="full"`` (the default) keeps SQLite's rollback journal with an fsync per
        commit. ``"normal"`` switches the file to WAL with ``synchronous=NORMAL``: a commit
        survives a process crash but the last commits may be lost on power failure; for bulk
        onboarding (thousands of devices at once), where one fsync per record dominates.
        """
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.path = Path(path)
        self._keys = keys
        self._clock = clock
        self._record_keys: dict[int, AESGCM] = {}
        self._db = sqlite3.connect(self.path)
        if synchronous == "normal":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._db:
            self._db.executescript(_SCHEMA)
        #: rises on every identity write; caches of identity values compare it
        self.generation = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> IdentityVault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ sealing

    def _aead(self, version: int) -> AESGCM:
        if version not in self._record_keys:
            secret = self._keys.get(version).secret
            derived = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"cbp-vault-v1", info=b"record-seal"
            ).derive(secret)
            self._record_keys[version] = AESGCM(derived)
        return self._record_keys[version]

    @staticmethod
    def _aad(table: str, record_id: str, version: int) -> bytes:
        return f"cbp-vault-v1|{table}|{record_id}|{version}".encode()

    def _seal(self, table: str, record_id: str, fields: dict[str, Any]) -> tuple[int, bytes, bytes]:
        version = self._keys.current().version
        nonce = os.urandom(12)
        plain = json.dumps(fields, sort_keys=True).encode()
        return (
            version,
            nonce,
            self._aead(version).encrypt(nonce, plain, self._aad(table, record_id, version)),
        )

    def _open(
        self, table: str, record_id: str, version: int, nonce: bytes, sealed: bytes
    ) -> dict[str, Any]:
        try:
            plain = self._aead(version).decrypt(nonce, sealed, self._aad(table, record_id, version))
        except InvalidTag:
            raise VaultCorrupt(f"{table} record {record_id} does not decrypt") from None
        loaded: dict[str, Any] = json.loads(plain)
        return loaded

    # ------------------------------------------------------------ prosumers and consent

    def add_prosumer(
        self, *, prosumer_id: str, name: str, postcode: str, ean: str, contract_id: str
    ) -> Prosumer:
        prosumer = Prosumer(
            prosumer_id=prosumer_id,
            name=name,
            postcode=postcode,
            ean=ean,
            contract_id=contract_id,
            gcp_uuid=uuid.uuid4(),
            gcp_salt=os.urandom(_SALT_BYTES),
        )
        fields = {
            "name": name,
            "postcode": postcode,
            "ean": ean,
            "contract_id": contract_id,
            "gcp_uuid": str(prosumer.gcp_uuid),
            "gcp_salt": prosumer.gcp_salt.hex(),
        }
        version, nonce, sealed = self._seal("prosumers", prosumer_id, fields)
        with self._db:
            self._db.execute(
                "INSERT INTO prosumers VALUES (?, ?, ?, ?)", (prosumer_id, version, nonce, sealed)
            )
        self.generation += 1
        return prosumer

    def prosumer(self, prosumer_id: str) -> Prosumer:
        row = self._db.execute(
            "SELECT key_version, nonce, sealed FROM prosumers WHERE prosumer_id = ?",
            (prosumer_id,),
        ).fetchone()
        if row is None:
            raise UnknownIdentity(f"no prosumer {prosumer_id!r} in the vault")
        f = self._open("prosumers", prosumer_id, *row)
        return Prosumer(
            prosumer_id=prosumer_id,
            name=f["name"],
            postcode=f["postcode"],
            ean=f["ean"],
            contract_id=f["contract_id"],
            gcp_uuid=UUID(f["gcp_uuid"]),
            gcp_salt=bytes.fromhex(f["gcp_salt"]),
        )

    def prosumer_ids(self) -> tuple[str, ...]:
        rows = self._db.execute("SELECT prosumer_id FROM prosumers ORDER BY prosumer_id")
        return tuple(r[0] for r in rows)

    def grant_consent(self, prosumer_id: str, purpose: str) -> Consent:
        self.prosumer(prosumer_id)
        consent = Consent(prosumer_id=prosumer_id, purpose=purpose, granted_at=self._clock())
        with self._db:
            self._db.execute(
                "INSERT INTO consents VALUES (?, ?, ?, NULL)",
                (prosumer_id, purpose, consent.granted_at.isoformat()),
            )
        return consent

    def withdraw_consent(self, prosumer_id: str, purpose: str) -> None:
        """Withdraw every live consent for the purpose; effective at the next consent check."""
        with self._db:
            self._db.execute(
                "UPDATE consents SET withdrawn_at = ? WHERE prosumer_id = ? AND purpose = ? "
                "AND withdrawn_at IS NULL",
                (self._clock().isoformat(), prosumer_id, purpose),
            )

    def consents(self, prosumer_id: str) -> tuple[Consent, ...]:
        rows = self._db.execute(
            "SELECT purpose, granted_at, withdrawn_at FROM consents WHERE prosumer_id = ? "
            "ORDER BY granted_at",
            (prosumer_id,),
        )
        return tuple(
            Consent(
                prosumer_id=prosumer_id,
                purpose=p,
                granted_at=datetime.fromisoformat(g),
                withdrawn_at=None if w is None else datetime.fromisoformat(w),
            )
            for p, g, w in rows
        )

    def _has_live_consent(self, prosumer_id: str, purpose: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM consents WHERE prosumer_id = ? AND purpose = ? AND withdrawn_at IS NULL",
            (prosumer_id, purpose),
        ).fetchone()
        return row is not None

    def require_consent(self, device_uuid: UUID, purpose: str) -> None:
        """Raise :class:`ConsentMissing` unless the device's owner consents to ``purpose`` now.

        Call it before sending any of the device's data (and it is called before onboarding).
        """
        row = self._db.execute(
            "SELECT prosumer_id FROM devices WHERE device_uuid = ?", (str(device_uuid),)
        ).fetchone()
        if row is None:
            raise ConsentMissing(f"device {device_uuid} is not in the vault: no consent")
        if not self._has_live_consent(row[0], purpose):
            raise ConsentMissing(f"no live consent for purpose {purpose!r} on device {device_uuid}")

    # ------------------------------------------------------------ devices

    def onboard_device(
        self,
        *,
        prosumer_id: str,
        serial: str,
        device_class: str,
        rated_kw: Decimal,
        zone: str,
        purpose: str = ONBOARDING_PURPOSE,
        device_uuid: UUID | None = None,
    ) -> Device:
        """Add a device with a fresh random salt; refused without the owner's live consent."""
        self.prosumer(prosumer_id)
        if not self._has_live_consent(prosumer_id, purpose):
            raise ConsentMissing(f"prosumer {prosumer_id!r} has no live consent for {purpose!r}")
        device = Device(
            device_uuid=device_uuid or uuid.uuid4(),
            prosumer_id=prosumer_id,
            serial=serial,
            device_class=device_class,
            rated_kw=rated_kw,
            zone=zone,
            salt=os.urandom(_SALT_BYTES),
        )
        fields = {
            "serial": serial,
            "device_class": device_class,
            "rated_kw": str(rated_kw),
            "zone": zone,
            "salt": device.salt.hex(),
        }
        record_id = str(device.device_uuid)
        version, nonce, sealed = self._seal("devices", record_id, fields)
        with self._db:
            self._db.execute(
                "INSERT INTO devices VALUES (?, ?, ?, ?, ?)",
                (record_id, prosumer_id, version, nonce, sealed),
            )
        self.generation += 1
        return device

    def _device_from_row(self, row: tuple[str, str, int, bytes, bytes]) -> Device:
        record_id, prosumer_id, version, nonce, sealed = row
        f = self._open("devices", record_id, version, nonce, sealed)
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
        row = self._db.execute(
            "SELECT * FROM devices WHERE device_uuid = ?", (str(device_uuid),)
        ).fetchone()
        if row is None:
            raise UnknownIdentity(f"no device {device_uuid} in the vault")
        return self._device_from_row(row)

    def devices(self, prosumer_id: str | None = None) -> Iterator[Device]:
        if prosumer_id is None:
            rows = self._db.execute("SELECT * FROM devices ORDER BY device_uuid").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM devices WHERE prosumer_id = ? ORDER BY device_uuid", (prosumer_id,)
            ).fetchall()
        for row in rows:
            yield self._device_from_row(row)

    # ------------------------------------------------------------ pseudonyms and disputes

    def pseudonym_of(self, device_uuid: UUID, recipient: str, purpose: str, month: str) -> str:
        """A device's pseudonym (or its GCP's, for purpose ``gcp``) under the current key."""
        key = scope_key(self._keys.current().secret, recipient, purpose, month)
        device = self.device(device_uuid)
        if purpose == GCP_PURPOSE:
            owner = self.prosumer(device.prosumer_id)
            return pseudonym_in_scope(key, owner.gcp_uuid, owner.gcp_salt)
        return pseudonym_in_scope(key, device.device_uuid, device.salt)

    def _subjects(self, purpose: str) -> Iterator[tuple[UUID, bytes]]:
        if purpose == GCP_PURPOSE:
            for prosumer_id in self.prosumer_ids():
                owner = self.prosumer(prosumer_id)
                yield owner.gcp_uuid, owner.gcp_salt
        else:
            for device in self.devices():
                yield device.device_uuid, device.salt

    def resolve(
        self, pseudonym: str, recipient: str, purpose: str, month: str, *, requested_by: str
    ) -> UUID:
        """The device (or GCP) uuid behind a pseudonym, found by recomputation; always logged.

        Tries every available master key version. Raises :class:`UnknownIdentity` when nothing
        matches (never issued, or the owner was erased: crypto-shredded).
        """
        validate_month(month)
        scope_keys = [
            scope_key(self._keys.get(v).secret, recipient, purpose, month)
            for v in self._keys.versions()
        ]
        found = next(
            (
                subject
                for subject, salt in self._subjects(purpose)
                for key in scope_keys
                if pseudonym_in_scope(key, subject, salt) == pseudonym
            ),
            None,
        )
        detail = {
            "pseudonym": pseudonym,
            "recipient": recipient,
            "purpose": purpose,
            "month": month,
            "result": str(found) if found else "not found",
        }
        self._log("resolve", requested_by, detail)
        if found is None:
            raise UnknownIdentity(f"pseudonym {pseudonym} resolves to no device in the vault")
        return found

    # ------------------------------------------------------------ erasure and audit

    def erase_prosumer(self, prosumer_id: str, *, requested_by: str) -> tuple[UUID, ...]:
        """Delete the prosumer, their devices, salts and consents (crypto-shredding)."""
        self.prosumer(prosumer_id)
        rows = self._db.execute(
            "SELECT device_uuid FROM devices WHERE prosumer_id = ?", (prosumer_id,)
        ).fetchall()
        with self._db:
            self._db.execute("DELETE FROM devices WHERE prosumer_id = ?", (prosumer_id,))
            self._db.execute("DELETE FROM consents WHERE prosumer_id = ?", (prosumer_id,))
            self._db.execute("DELETE FROM prosumers WHERE prosumer_id = ?", (prosumer_id,))
        self.generation += 1
        self._log("erase", requested_by, {"prosumer_id": prosumer_id, "devices": str(len(rows))})
        return tuple(UUID(r[0]) for r in rows)

    def _log(self, action: str, requested_by: str, detail: dict[str, str]) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO audit_log (at, action, requested_by, detail) VALUES (?, ?, ?, ?)",
                (self._clock().isoformat(), action, requested_by, json.dumps(detail)),
            )

    def audit_log(self) -> tuple[AuditEntry, ...]:
        rows = self._db.execute(
            "SELECT at, action, requested_by, detail FROM audit_log ORDER BY entry"
        )
        return tuple(
            AuditEntry(at=datetime.fromisoformat(a), action=b, requested_by=r, detail=json.loads(d))
            for a, b, r, d in rows
        )

    def identity_values(self) -> tuple[IdentityValue, ...]:
        """Every identifying value held, for the outbound filter and the audit to look for."""
        values: list[IdentityValue] = []
        for prosumer_id in self.prosumer_ids():
            p = self.prosumer(prosumer_id)
            for kind, value in (
                ("name", p.name),
                ("postcode", p.postcode),
                ("EAN", p.ean),
                ("contract", p.contract_id),
                ("gcp_uuid", str(p.gcp_uuid)),
            ):
                values.append(IdentityValue(kind=kind, value=value))
        for d in self.devices():
            values.append(IdentityValue(kind="serial", value=d.serial))
            values.append(IdentityValue(kind="device_uuid", value=str(d.device_uuid)))
        return tuple(values)
