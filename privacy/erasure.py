"""Erasure (GDPR art. 17) by crypto-shredding, with notices that reach every recipient (art. 19).

Order matters (:meth:`Erasure.erase`, ``vault.erasure.erase``): every pseudonym the prosumer's
devices and GCP were ever issued (each month since onboarding, each configured scope and each
scope ever used) goes into pending notices *first*, one per recipient (a combined list would let
recipients link their pseudonyms to each other's); then the prosumer's data key is destroyed and
the rows deleted; then raw samples go (:func:`erase_prosumer`). Nobody, the aggregator included,
can recompute those pseudonyms afterwards, which is why they must be listed before. Consent
history stays in a minimal form (:mod:`privacy.consents`). ``PRAGMA secure_delete`` zeroes
deleted content; in WAL mode the WAL is truncated after an erasure and after an
acknowledgement, so no older frame keeps what was deleted.

A notice names pseudonyms only, never the prosumer or a device_uuid. It is delivered by the
running aggregator node (:mod:`cbp.roles.erasure`: an ``x-ERASURE`` oadrUpdateReport to the TSO,
which deletes every row of those pseudonyms and acknowledges); until a recipient acknowledges,
the notice stays pending in the vault, and reading pending notices (they pair pseudonyms with
device uuids) is audited.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .auditlog import AuditLog
from .config import PrivacyConfig
from .consents import ConsentRows
from .identities import IdentityRows
from .notices import NoticeRecord, NoticeRows
from .pseudonyms import Derivation
from .records import ErasureNotice, PendingErasure
from .retention import RawDataStore
from .sealing import Keyring

if TYPE_CHECKING:
    from .vault import IdentityVault

__all__ = ["Erasure", "erase_prosumer"]

_LOG: Final = logging.getLogger("crowdflex.privacy.vault")


class Erasure:
    """``vault.erasure``: erase a prosumer, read and acknowledge the pending notices."""

    __slots__ = ("_clock", "_consents", "_db", "_derivation", "_identities", "_keyring", "_log",
                 "_notices", "_path")

    def __init__(self, db: sqlite3.Connection, path: Path, *, identities: IdentityRows,
                 derivation: Derivation, consents: ConsentRows, notices: NoticeRows,
                 keyring: Keyring, log: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._path = path
        self._identities = identities
        self._derivation = derivation
        self._consents = consents
        self._notices = notices
        self._keyring = keyring
        self._log = log
        self._clock = clock

    def erase(self, prosumer_id: str, *, scopes: Sequence[tuple[str, str]],
              requested_by: str, reason: str) -> tuple[PendingErasure, ...]:
        """Erase a prosumer: pending notices first (every pseudonym ever issued, for every
        recipient of ``scopes`` and of the scopes ever used), then the data key, then the rows.
        Returns the pending notices, one per recipient; audited (``erase``)."""
        devices = tuple(d.device_uuid for d in self._identities.devices(prosumer_id))
        now = self._clock()
        pending = tuple(PendingErasure(notice=ErasureNotice(
            notice_id=str(uuid.uuid4()), recipient=held.recipient, issued_at=now,
            months=held.months, pseudonyms=held.pseudonyms), devices=devices)
            for held in self._derivation.held(prosumer_id, scopes, now))
        erasure_id = str(uuid.uuid4())
        with self._db:
            for item in pending:
                self._notices.put(item)
            self._log.write("erase", requested_by=requested_by, reason=reason, detail={
                "prosumer": self._log.ref(prosumer_id), "devices": str(len(devices)),
                "notices": str(len(pending)), "erasure_id": erasure_id})
        self._keyring.destroy(prosumer_id)
        with self._db:
            self._consents.forget_prosumer(prosumer_id, erasure_id, now)
            self._identities.delete(prosumer_id)
        self._truncate_wal()
        return pending

    def pending(self, recipient: str | None = None, *, requested_by: str,
                reason: str) -> tuple[PendingErasure, ...]:
        """Notices not yet acknowledged (for ``recipient``, or all), oldest first. They pair
        pseudonyms with device uuids, so reading any is audited (an empty answer is not)."""
        pending = self._notices.pending(recipient)
        if pending:
            self._log.record("pending_erasures", requested_by=requested_by, reason=reason,
                             detail={"notices": str(len(pending))})
        return pending

    def acknowledge(self, notice_id: str, at: datetime) -> None:
        """The recipient confirmed: keep when, drop the pseudonym list and local ids for good
        (zeroed in the file, and in WAL mode the WAL truncated, so no older frame keeps them)."""
        with self._db:
            self._notices.acknowledge(notice_id, at)
        self._truncate_wal()

    def notices(self) -> tuple[NoticeRecord, ...]:
        """Every notice issued, pending or acknowledged (no pseudonyms)."""
        return self._notices.records()

    def _truncate_wal(self) -> None:
        """Checkpoint and truncate the WAL (nothing to do in rollback-journal mode)."""
        if self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
            _LOG.warning("vault %s: another connection is reading; the WAL frames of deleted "
                         "rows go at the next checkpoint", self._path)


def erase_prosumer(
    vault: IdentityVault,
    prosumer_id: str,
    config: PrivacyConfig,
    *,
    requested_by: str,
    reason: str,
    raw_store: RawDataStore | None = None,
) -> tuple[PendingErasure, ...]:
    """Erase a prosumer (:meth:`Erasure.erase` for ``config``'s scopes) and, with
    ``raw_store``, their devices' raw samples; returns the pending notices, one per recipient."""
    devices = vault.devices.of(prosumer_id, requested_by=requested_by, reason=reason)
    pending = vault.erasure.erase(prosumer_id, scopes=config.scopes(),
                                  requested_by=requested_by, reason=reason)
    if raw_store is not None:
        raw_store.erase_devices(d.device_uuid for d in devices)
    return pending
