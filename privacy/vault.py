"""The identity vault: the only place where a device meets its owner, EAN, serial and salt.

Aggregator only. One SQLite file (stdlib ``sqlite3``, synchronous: the vault is small and touched
on onboarding, consent changes, erasure and disputes, never per sample) plus its keyring file
(:mod:`privacy.sealing`, default ``<vault>.keyring``).

:class:`IdentityVault` opens and closes the file, refuses an older format, rotates keys and
composes one object per concern, all sharing its connection, keyring and audit log:
``vault.prosumers`` (:mod:`privacy.prosumers`), ``vault.consents`` (:mod:`privacy.consents`),
``vault.devices`` (:mod:`privacy.devices`), ``vault.pseudonyms`` (:mod:`privacy.pseudonyms`),
``vault.erasure`` (:mod:`privacy.erasure`) and ``vault.audit`` (:mod:`privacy.auditlog`), which
only reads and verifies the log: the writer stays with the concern objects.

Invariants:
- Identity rows (name, postcode, EAN, contract, GCP salt) and device rows (serial, class, rating,
  zone, salt) are sealed under their prosumer's own data key (:mod:`privacy.identities`). Only
  opaque ids, consent rows, pseudonym epochs, pending erasure notices (sealed) and the audit log
  are outside a data key.
- Three key domains per master version (:func:`privacy.keys.domain_key`): data keys are wrapped
  under ``wrap``, clear rows authenticated under ``integrity``, pseudonyms keyed from
  ``pseudonym``. A consent row or epoch that fails its MAC raises :class:`VaultCorrupt`.
- Pseudonym epochs (:mod:`privacy.epochs`): each month's pseudonyms use the master version whose
  epoch covers the month.
  A new master version starts its epoch on the *next* month (Europe/Amsterdam by default), so a
  rotation never switches pseudonyms mid-month; keep the old version until that month is over
  (and as long as its months' disputes may need resolving). :meth:`IdentityVault.rotate`
  re-wraps every data key and re-authenticates every clear row under the current version.
- Every path from a pseudonym or a device_uuid to identity (``vault.pseudonyms.resolve``,
  ``.pseudonyms.of``, ``.pseudonyms.issued``, ``.devices.get``, ``.devices.of``,
  ``.prosumers.get``, ``.erasure.pending``, :meth:`IdentityVault.identity_values`) and every
  erasure writes an audit entry (:mod:`privacy.auditlog`) naming who and why; there is no
  unaudited public way to them.
- Erasure (``vault.erasure.erase``, :mod:`privacy.erasure`) lists every pseudonym first, then
  destroys the data key, then deletes the rows, and truncates the WAL.
- Consent is read from the file on every check, so a withdrawal takes effect at the next check.
- A file of the first format (one key for everything) is refused with :class:`VaultOutdated`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from schemas import utc_now

from .auditlog import AUDIT_SCHEMA, AuditLog, AuditTrail
from .consents import CONSENT_SCHEMA, ConsentRows, Consents
from .devices import Devices
from .epochs import EPOCH_SCHEMA, Epochs
from .erasure import Erasure
from .errors import VaultOutdated
from .gcp import GcpPseudonyms
from .identities import IDENTITY_SCHEMA, IdentityRows
from .keys import KeyProvider
from .notices import NOTICE_SCHEMA, NoticeRows
from .prosumers import Prosumers
from .pseudonyms import Derivation, Pseudonyms
from .sealing import Integrity, Keyring

__all__ = ["IdentityValue", "IdentityVault"]

_FORMAT: Final = 2
_SCHEMA: Final = IDENTITY_SCHEMA + AUDIT_SCHEMA + CONSENT_SCHEMA + NOTICE_SCHEMA + EPOCH_SCHEMA


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
        integrity = Integrity(keys)
        self._consent_rows = ConsentRows(self._db, integrity)
        self._notices = NoticeRows(self._db, self._keyring, keys)
        self._epochs = Epochs(self._db, keys, integrity)
        self._epochs.open(clock(), month_zone)
        self._rows = IdentityRows(self._db, self._keyring, clock=clock, month_zone=month_zone)
        derivation = Derivation(self._rows, self._epochs, gcp=gcp, aggregator=aggregator,
                                month_zone=month_zone)
        # the writer stays with the concerns; callers get the read-only trail
        self._log = AuditLog(self._db, integrity, clock)
        #: the hash-chained log of every audited access, to read and verify (never to write)
        self.audit = AuditTrail(self._db, integrity)
        self.prosumers = Prosumers(self._rows, self._log)
        self.consents = Consents(self._db, self._consent_rows, self._rows, clock)
        self.devices = Devices(self._rows, self._consent_rows, self._log)
        self.pseudonyms = Pseudonyms(derivation, self._rows, self._epochs, self._log, clock)
        self.erasure = Erasure(self._db, self.path, identities=self._rows, derivation=derivation,
                               consents=self._consent_rows, notices=self._notices,
                               keyring=self._keyring, log=self._log, clock=clock)

    def close(self) -> None:
        self._keyring.close()
        self._db.close()

    def __enter__(self) -> IdentityVault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def generation(self) -> int:
        """Rises on every identity write (onboarding, erasure); caches of identity values
        compare it."""
        return self._rows.generation

    def identity_values(self, *, requested_by: str, reason: str) -> tuple[IdentityValue, ...]:
        """Every identifying value held (prosumers' and devices'), for the outbound filter and
        the audit to look for; audited."""
        values: list[IdentityValue] = []
        for prosumer_id in self._rows.prosumer_ids():
            p = self._rows.prosumer(prosumer_id)
            values += [IdentityValue(kind=kind, value=value) for kind, value in (
                ("prosumer_id", p.prosumer_id), ("name", p.name), ("postcode", p.postcode),
                ("EAN", p.ean), ("contract", p.contract_id), ("gcp_uuid", str(p.gcp_uuid)))]
        for d in self._rows.devices():
            values.append(IdentityValue(kind="serial", value=d.serial))
            values.append(IdentityValue(kind="device_uuid", value=str(d.device_uuid)))
        self._log.record("identity_values", requested_by=requested_by, reason=reason,
                         detail={"count": str(len(values))})
        return tuple(values)

    def rotate(self, *, requested_by: str, reason: str) -> int:
        """Re-wrap every data key and re-authenticate every clear row under the current master
        version (pseudonyms switch only at the epoch the new version opened: next month).
        Returns how many data keys were re-wrapped; older versions may then be retired once no
        epoch still in use needs them."""
        rewrapped = self._keyring.rewrap()
        pending = self._notices.pending()
        with self._db:
            self._consent_rows.reauthenticate()
            self._epochs.reauthenticate()
            for item in pending:
                self._notices.put(item)
            self._log.write("rotate", requested_by=requested_by, reason=reason,
                            detail={"data_keys": str(rewrapped)})
        return rewrapped
