"""The identity vault: the only place where a device meets its owner, EAN, serial and salt.

Aggregator only. One SQLite file (stdlib ``sqlite3``, synchronous: the vault is small and touched
on onboarding, consent changes, erasure and disputes, never per sample) plus its keyring file
(:mod:`privacy.sealing`, default ``<vault>.keyring``).

Invariants:
- Identity rows (name, postcode, EAN, contract, GCP salt) and device rows (serial, class, rating,
  zone, salt) are sealed under their prosumer's own data key, with associated data binding
  table, prosumer_id, record id and purpose. Only opaque ids, consent rows, pseudonym epochs,
  pending erasure notices (sealed) and the audit log are outside a data key.
- Three key domains per master version (:func:`privacy.keys.domain_key`): data keys are wrapped
  under ``wrap``, clear rows authenticated under ``integrity``, pseudonyms keyed from
  ``pseudonym``. A consent row or epoch that fails its MAC raises :class:`VaultCorrupt`.
- A GCP's pseudonym comes from the pseudonymisation entity when the vault has one
  (:mod:`privacy.gcp`: equal across aggregators, so the TSO sees a GCP offered twice), else
  from the prosumer's random GCP uuid and salt.
- Pseudonym epochs (:mod:`privacy.epochs`): each month's pseudonyms use the master version whose
  epoch covers the month.
  A new master version starts its epoch on the *next* month (Europe/Amsterdam by default), so a
  rotation never switches pseudonyms mid-month; keep the old version until that month is over
  (and as long as its months' disputes may need resolving). :meth:`IdentityVault.rotate`
  re-wraps every data key and re-authenticates every clear row under the current version.
- Every path from a pseudonym or a device_uuid to identity (:meth:`resolve`,
  :meth:`pseudonym_of`, :meth:`device`, :meth:`devices`, :meth:`prosumer`,
  :meth:`identity_values`, :meth:`pending_erasures`, :meth:`issued_pseudonyms`) and every
  erasure writes an audit entry (:mod:`privacy.auditlog`) naming who and why; there is no
  unaudited public way to them.
- Erasure (:meth:`erase_prosumer`) first computes every pseudonym the prosumer's devices and GCP
  were issued (every month since onboarding, every scope configured or ever used) into pending
  notices, then destroys the data key, then deletes the rows; consent history stays in a minimal
  form. ``PRAGMA secure_delete`` zeroes deleted content; in WAL mode the WAL is truncated after
  an erasure and after an acknowledgement, so no older frame keeps what was deleted.
- Consent is read from the file on every check, so a withdrawal takes effect at the next check.
- A file of the first format (one key for everything) is refused with :class:`VaultOutdated`.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal
from uuid import UUID

from cryptography.exceptions import InvalidTag

from schemas import utc_now

from .auditlog import AUDIT_SCHEMA, AuditEntry, AuditLog, ChainCheck
from .consents import CONSENT_SCHEMA, ConsentRows
from .epochs import EPOCH_SCHEMA, Epochs
from .errors import ConsentMissing, UnknownIdentity, VaultCorrupt, VaultOutdated
from .gcp import GcpPseudonyms
from .keys import KeyProvider
from .notices import NOTICE_SCHEMA, NoticeRecord, NoticeRows
from .pseudonym import (
    month_of,
    pseudonym_in_scope,
    validate_month,
)
from .records import (
    Consent,
    ConsentHistory,
    Device,
    ErasureNotice,
    Holdings,
    PendingErasure,
    Prosumer,
)
from .sealing import Integrity, Keyring, row_aad

__all__ = ["GCP_PURPOSE", "ONBOARDING_PURPOSE", "AuditEntry", "IdentityValue", "IdentityVault"]

_LOG: Final = logging.getLogger("crowdflex.privacy.vault")
GCP_PURPOSE: Final = "gcp"
ONBOARDING_PURPOSE: Final = "flexibility-service"
_SALT_BYTES: Final = 16
_FORMAT: Final = 2

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS prosumers (
    prosumer_id TEXT PRIMARY KEY, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_uuid TEXT PRIMARY KEY, prosumer_id TEXT NOT NULL REFERENCES prosumers(prosumer_id),
    nonce BLOB NOT NULL, sealed BLOB NOT NULL);
""" + AUDIT_SCHEMA + CONSENT_SCHEMA + NOTICE_SCHEMA + EPOCH_SCHEMA


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityValue:
    """One identifying value held by the vault, with what kind it is (for findings)."""

    kind: str
    value: str


def _check_format(db: sqlite3.Connection, path: Path) -> None:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if tables and version != _FORMAT:
        raise VaultOutdated(
            f"{path} is a format-{version or 1} identity vault (one key for everything, no "
            f"per-prosumer data keys); this version reads format {_FORMAT} only and will not "
            "read it half-safely. Create a new vault and import the onboarding file again "
            "(crowdflex aggregator --config FILE --onboard CSV); then destroy the old file "
            "and its backups.")


class IdentityVault:
    """Sealed identity records in one SQLite file. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        path: Path,
        keys: KeyProvider,
        *,
        clock: Callable[[], datetime] = utc_now,
        synchronous: Literal["full", "normal"] = "full",
        keyring: Path | None = None,
        month_zone: str = "Europe/Amsterdam",
        gcp: GcpPseudonyms | None = None,
        aggregator: str = "aggregator",
    ) -> None:
        """Open (or create) the vault at ``path`` and its keyring (``<path>.keyring`` unless
        ``keyring`` names another file: keep it with the keys, out of data backups).

        ``synchronous="full"`` (the default) keeps SQLite's rollback journal with an fsync per
        commit. ``"normal"`` switches the file to WAL with ``synchronous=NORMAL``: a commit
        survives a process crash but the last commits may be lost on power failure; for bulk
        onboarding (thousands of devices at once), where one fsync per record dominates.

        ``gcp`` is the pseudonymisation entity GCP pseudonyms come from (:mod:`privacy.gcp`;
        it knows this aggregator as ``aggregator``). Without one, a GCP's pseudonym comes from a
        random uuid and salt of this vault: private, but no other aggregator's pseudonym of the
        same connection point will equal it, so the TSO cannot see it offered twice.
        """
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.path = Path(path)
        self._keys = keys
        self._clock = clock
        self._zone = month_zone
        self._gcp = gcp
        self._aggregator = aggregator
        self._db = sqlite3.connect(self.path)
        try:
            _check_format(self._db, self.path)
        except VaultOutdated:
            self._db.close()
            raise
        if synchronous == "normal":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA secure_delete = ON")
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {_FORMAT}")
        self.keyring_path = keyring or self.path.with_name(self.path.name + ".keyring")
        self._keyring = Keyring(self.keyring_path, keys, synchronous=synchronous)
        self._integrity = Integrity(keys)
        self._log = AuditLog(self._db, self._integrity, clock)
        self._consents = ConsentRows(self._db, self._integrity)
        self._notices = NoticeRows(self._db, self._keyring, keys)
        self._epochs = Epochs(self._db, keys, self._integrity)
        self._epochs.open(clock(), month_zone)
        #: rises on every identity write; caches of identity values compare it
        self.generation = 0

    def close(self) -> None:
        self._keyring.close()
        self._db.close()

    def __enter__(self) -> IdentityVault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ sealing

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
        if self._db.execute("SELECT 1 FROM prosumers WHERE prosumer_id = ?",
                            (prosumer_id,)).fetchone():
            raise ValueError(f"prosumer {prosumer_id!r} is already in the vault")
        self._keyring.create(prosumer_id)
        fields = {
            "name": name,
            "postcode": postcode,
            "ean": ean,
            "contract_id": contract_id,
            "gcp_uuid": str(prosumer.gcp_uuid),
            "gcp_salt": prosumer.gcp_salt.hex(),
            "since": month_of(self._clock(), self._zone),
        }
        nonce, sealed = self._seal("prosumers", prosumer_id, prosumer_id, "identity", fields)
        with self._db:
            self._db.execute("INSERT INTO prosumers VALUES (?, ?, ?)",
                             (prosumer_id, nonce, sealed))
        self.generation += 1
        return prosumer

    def _prosumer_fields(self, prosumer_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT nonce, sealed FROM prosumers WHERE prosumer_id = ?", (prosumer_id,)
        ).fetchone()
        if row is None:
            raise UnknownIdentity(f"no prosumer {prosumer_id!r} in the vault")
        return self._open("prosumers", prosumer_id, prosumer_id, "identity", *row)

    def _prosumer(self, prosumer_id: str) -> Prosumer:
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

    def prosumer(self, prosumer_id: str, *, requested_by: str, reason: str) -> Prosumer:
        """A prosumer's identity record; audited."""
        self._audit("prosumer", requested_by, reason, {"prosumer": self._ref(prosumer_id)})
        return self._prosumer(prosumer_id)

    def prosumer_ids(self) -> tuple[str, ...]:
        rows = self._db.execute("SELECT prosumer_id FROM prosumers ORDER BY prosumer_id")
        return tuple(r[0] for r in rows)

    def grant_consent(self, prosumer_id: str, purpose: str) -> Consent:
        self._prosumer_fields(prosumer_id)
        with self._db:
            return self._consents.grant(prosumer_id, purpose, self._clock())

    def withdraw_consent(self, prosumer_id: str, purpose: str) -> int:
        """Withdraw every live consent for the purpose; effective at the next consent check.
        Returns how many were live (0: nothing to withdraw); an unknown prosumer raises
        :class:`UnknownIdentity`."""
        self._prosumer_fields(prosumer_id)
        with self._db:
            return self._consents.withdraw(prosumer_id, purpose, self._clock())

    def consents(self, prosumer_id: str) -> tuple[Consent, ...]:
        return self._consents.of(prosumer_id)

    def consent_history(self) -> tuple[ConsentHistory, ...]:
        """The consent records of erased prosumers, kept without anything identifying."""
        return self._consents.history()

    def require_consent(self, device_uuid: UUID, purpose: str) -> None:
        """Raise :class:`ConsentMissing` unless the device's owner consents to ``purpose`` now.

        Call it before sending any of the device's data (and it is called before onboarding).
        """
        row = self._db.execute(
            "SELECT prosumer_id FROM devices WHERE device_uuid = ?", (str(device_uuid),)
        ).fetchone()
        if row is None:
            raise ConsentMissing(f"device {device_uuid} is not in the vault: no consent")
        if not self._consents.live(row[0], purpose):
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
        self._prosumer_fields(prosumer_id)
        if not self._consents.live(prosumer_id, purpose):
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
            "since": month_of(self._clock(), self._zone),
        }
        record_id = str(device.device_uuid)
        nonce, sealed = self._seal("devices", prosumer_id, record_id, "device", fields)
        with self._db:
            self._db.execute("INSERT INTO devices VALUES (?, ?, ?, ?)",
                             (record_id, prosumer_id, nonce, sealed))
        self.generation += 1
        return device

    def _device_fields(self, row: tuple[str, str, bytes, bytes]) -> dict[str, Any]:
        record_id, prosumer_id, nonce, sealed = row
        return self._open("devices", prosumer_id, record_id, "device", nonce, sealed)

    def _device_from_row(self, row: tuple[str, str, bytes, bytes]) -> Device:
        f = self._device_fields(row)
        return Device(
            device_uuid=UUID(row[0]),
            prosumer_id=row[1],
            serial=f["serial"],
            device_class=f["device_class"],
            rated_kw=Decimal(f["rated_kw"]),
            zone=f["zone"],
            salt=bytes.fromhex(f["salt"]),
        )

    def _device_row(self, device_uuid: UUID) -> tuple[str, str, bytes, bytes]:
        row = self._db.execute(
            "SELECT * FROM devices WHERE device_uuid = ?", (str(device_uuid),)
        ).fetchone()
        if row is None:
            raise UnknownIdentity(f"no device {device_uuid} in the vault")
        return (row[0], row[1], row[2], row[3])

    def _devices(self, prosumer_id: str | None = None) -> tuple[Device, ...]:
        if prosumer_id is None:
            rows = self._db.execute("SELECT * FROM devices ORDER BY device_uuid").fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM devices WHERE prosumer_id = ? ORDER BY device_uuid", (prosumer_id,)
            ).fetchall()
        return tuple(self._device_from_row(row) for row in rows)

    def device(self, device_uuid: UUID, *, requested_by: str, reason: str) -> Device:
        """A device's record (serial, salt...); audited."""
        self._audit("device", requested_by, reason, {"device": self._ref(str(device_uuid))})
        return self._device_from_row(self._device_row(device_uuid))

    def devices(self, prosumer_id: str | None = None, *, requested_by: str,
                reason: str) -> tuple[Device, ...]:
        """Every device's record, or one prosumer's; audited (one entry)."""
        found = self._devices(prosumer_id)
        scope = "all" if prosumer_id is None else self._ref(prosumer_id)
        self._audit("devices", requested_by, reason, {"prosumer": scope,
                                                      "count": str(len(found))})
        return found

    # ------------------------------------------------------------ pseudonyms and disputes

    def _gcp_pseudonym(self, owner: Prosumer, recipient: str, month: str) -> str:
        """From the pseudonymisation entity when there is one (equal across aggregators,
        :mod:`privacy.gcp`); else from this vault's random GCP uuid and salt."""
        if self._gcp is not None:
            return self._gcp.gcp_pseudonym(owner.ean, recipient, month,
                                           aggregator=self._aggregator)
        key = self._epochs.scope_key(recipient, GCP_PURPOSE, month)
        return pseudonym_in_scope(key, owner.gcp_uuid, owner.gcp_salt)

    def _device_pseudonym(self, device: Device, recipient: str, purpose: str, month: str) -> str:
        key = self._epochs.scope_key(recipient, purpose, month)
        return pseudonym_in_scope(key, device.device_uuid, device.salt)

    def pseudonym_of(self, device_uuid: UUID, recipient: str, purpose: str, month: str, *,
                     requested_by: str, reason: str) -> str:
        """A device's pseudonym (or its GCP's, for purpose ``gcp``) for one month, under that
        month's epoch key; audited, and the scope noted for erasure."""
        validate_month(month)
        device = self._device_from_row(self._device_row(device_uuid))
        self._epochs.note_issued(recipient, purpose, month)
        self._audit("pseudonym_of", requested_by, reason, {
            "device": self._ref(str(device_uuid)), "scope": f"{recipient}|{purpose}|{month}"})
        if purpose == GCP_PURPOSE:
            return self._gcp_pseudonym(self._prosumer(device.prosumer_id), recipient, month)
        return self._device_pseudonym(device, recipient, purpose, month)

    def _candidates(self, recipient: str, purpose: str, month: str) -> Iterable[tuple[UUID, str]]:
        if purpose == GCP_PURPOSE:
            for prosumer_id in self.prosumer_ids():
                owner = self._prosumer(prosumer_id)
                yield owner.gcp_uuid, self._gcp_pseudonym(owner, recipient, month)
        else:
            for device in self._devices():
                yield device.device_uuid, self._device_pseudonym(device, recipient, purpose, month)

    def resolve(self, pseudonym: str, recipient: str, purpose: str, month: str, *,
                requested_by: str, reason: str) -> UUID:
        """The device (or GCP) uuid behind a pseudonym, found by recomputation; always audited.

        Raises :class:`UnknownIdentity` when nothing matches (never issued, or the owner was
        erased: crypto-shredded).
        """
        self._epochs.scope_key(recipient, purpose, month)  # an unknown month is refused first
        found = next((subject for subject, name in self._candidates(recipient, purpose, month)
                      if name == pseudonym), None)
        detail = {"pseudonym": self._ref(pseudonym), "scope": f"{recipient}|{purpose}|{month}",
                  "result": "not found" if found is None else self._ref(str(found))}
        self._audit("resolve", requested_by, reason, detail)
        if found is None:
            raise UnknownIdentity(f"pseudonym {pseudonym} resolves to no device in the vault")
        return found

    def identity_values(self, *, requested_by: str, reason: str) -> tuple[IdentityValue, ...]:
        """Every identifying value held, for the outbound filter and the audit to look for."""
        values: list[IdentityValue] = []
        for prosumer_id in self.prosumer_ids():
            p = self._prosumer(prosumer_id)
            values += [IdentityValue(kind=kind, value=value) for kind, value in (
                ("prosumer_id", p.prosumer_id), ("name", p.name), ("postcode", p.postcode),
                ("EAN", p.ean), ("contract", p.contract_id), ("gcp_uuid", str(p.gcp_uuid)))]
        for d in self._devices():
            values.append(IdentityValue(kind="serial", value=d.serial))
            values.append(IdentityValue(kind="device_uuid", value=str(d.device_uuid)))
        self._audit("identity_values", requested_by, reason, {"count": str(len(values))})
        return tuple(values)

    # ------------------------------------------------------------ erasure

    def _issued(self, prosumer_id: str, recipient: str, purposes: Sequence[str], now: datetime
                ) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
        """Every month and, per purpose, every pseudonym the prosumer's devices and GCP were
        issued for ``recipient`` since onboarding (and in any other month the scope was used)."""
        owner = self._prosumer(prosumer_id)
        devices = self._devices(prosumer_id)
        since, current = str(self._prosumer_fields(prosumer_id)["since"]), month_of(now, self._zone)
        listed, all_months = [], set[str]()
        for purpose in purposes:
            months = self._epochs.months(recipient, purpose, since, current)
            all_months.update(months)
            names = ([self._gcp_pseudonym(owner, recipient, m) for m in months]
                     if purpose == GCP_PURPOSE else
                     [self._device_pseudonym(d, recipient, purpose, m)
                      for m in months for d in devices])
            listed.append((purpose, tuple(dict.fromkeys(names))))
        return tuple(sorted(all_months)), tuple(listed)

    def _by_recipient(self, scopes: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
        """``scopes`` and every scope ever used, purposes grouped by recipient."""
        by_recipient: dict[str, list[str]] = {}
        for recipient, purpose in dict.fromkeys([*scopes, *self._epochs.used_scopes()]):
            by_recipient.setdefault(recipient, []).append(purpose)
        return by_recipient

    def _notice(self, prosumer_id: str, recipient: str, purposes: Sequence[str],
                now: datetime) -> ErasureNotice:
        months, listed = self._issued(prosumer_id, recipient, purposes, now)
        return ErasureNotice(notice_id=str(uuid.uuid4()), recipient=recipient, issued_at=now,
                             months=months, pseudonyms=listed)

    def issued_pseudonyms(self, prosumer_id: str, *, scopes: Sequence[tuple[str, str]],
                          requested_by: str, reason: str) -> tuple[Holdings, ...]:
        """Per recipient (of ``scopes`` and of every scope ever used), every pseudonym under
        which it may hold the prosumer's data: for a data subject's access request (GDPR art.
        15); audited."""
        now = self._clock()
        found = []
        for recipient, purposes in self._by_recipient(scopes).items():
            months, listed = self._issued(prosumer_id, recipient, purposes, now)
            found.append(Holdings(recipient=recipient, months=months, pseudonyms=listed))
        self._audit("issued_pseudonyms", requested_by, reason, {
            "prosumer": self._ref(prosumer_id), "recipients": str(len(found))})
        return tuple(found)

    def erase_prosumer(self, prosumer_id: str, *, scopes: Sequence[tuple[str, str]],
                       requested_by: str, reason: str) -> tuple[PendingErasure, ...]:
        """Erase a prosumer: pending notices first (every pseudonym ever issued, for every
        recipient of ``scopes`` and of the scopes ever used), then the data key, then the rows.
        Returns the pending notices, one per recipient."""
        devices = self._devices(prosumer_id)
        now = self._clock()
        pending = tuple(PendingErasure(
            notice=self._notice(prosumer_id, recipient, purposes, now),
            devices=tuple(d.device_uuid for d in devices))
            for recipient, purposes in self._by_recipient(scopes).items())
        erasure_id = str(uuid.uuid4())
        with self._db:
            for item in pending:
                self._notices.put(item)
            self._log.write("erase", requested_by=requested_by, reason=reason, detail={
                "prosumer": self._ref(prosumer_id), "devices": str(len(devices)),
                "notices": str(len(pending)), "erasure_id": erasure_id})
        self._keyring.destroy(prosumer_id)
        with self._db:
            self._consents.forget_prosumer(prosumer_id, erasure_id, now)
            self._db.execute("DELETE FROM devices WHERE prosumer_id = ?", (prosumer_id,))
            self._db.execute("DELETE FROM prosumers WHERE prosumer_id = ?", (prosumer_id,))
        self._truncate_wal()
        self.generation += 1
        return pending

    def pending_erasures(self, recipient: str | None = None, *, requested_by: str,
                         reason: str) -> tuple[PendingErasure, ...]:
        """Notices not yet acknowledged (for ``recipient``, or all), oldest first. They pair
        pseudonyms with device uuids, so reading any is audited (an empty answer is not)."""
        pending = self._notices.pending(recipient)
        if pending:
            self._audit("pending_erasures", requested_by, reason, {"notices": str(len(pending))})
        return pending

    def acknowledge_erasure(self, notice_id: str, at: datetime) -> None:
        """The recipient confirmed: keep when, drop the pseudonym list and local ids for good
        (zeroed in the file, and in WAL mode the WAL truncated, so no older frame keeps them)."""
        with self._db:
            self._notices.acknowledge(notice_id, at)
        self._truncate_wal()

    def _truncate_wal(self) -> None:
        """Checkpoint and truncate the WAL (nothing to do in rollback-journal mode)."""
        if self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
            _LOG.warning("vault %s: another connection is reading; the WAL frames of deleted "
                         "rows go at the next checkpoint", self.path)

    def erasure_log(self) -> tuple[NoticeRecord, ...]:
        """Every notice issued, pending or acknowledged (no pseudonyms)."""
        return self._notices.records()

    # ------------------------------------------------------------ keys and the audit log

    def rotate(self, *, requested_by: str, reason: str) -> int:
        """Re-wrap every data key and re-authenticate every clear row under the current master
        version (pseudonyms switch only at the epoch the new version opened: next month).
        Returns how many data keys were re-wrapped; older versions may then be retired once no
        epoch still in use needs them."""
        rewrapped = self._keyring.rewrap()
        pending = self._notices.pending()
        with self._db:
            self._consents.reauthenticate()
            self._epochs.reauthenticate()
            for item in pending:
                self._notices.put(item)
            self._log.write("rotate", requested_by=requested_by, reason=reason,
                            detail={"data_keys": str(rewrapped)})
        return rewrapped

    def _ref(self, value: str) -> str:
        return self._integrity.ref(value)

    def _audit(self, action: str, requested_by: str, reason: str, detail: dict[str, str]) -> None:
        with self._db:
            self._log.write(action, requested_by=requested_by, reason=reason, detail=detail)

    def audit_log(self) -> tuple[AuditEntry, ...]:
        return self._log.entries()

    def verify_audit_log(self) -> ChainCheck:
        return self._log.verify()
