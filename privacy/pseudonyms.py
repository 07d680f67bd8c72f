"""The vault's pseudonyms: issued per (recipient, purpose, month), resolved by recomputation.

The vault keeps no table from pseudonym to device: a pseudonym is recomputed from a device's
uuid and salt (:func:`privacy.pseudonym.pseudonym_in_scope`) under the key of the month's epoch
(:mod:`privacy.epochs`), and resolving one recomputes every candidate's until one matches. A
GCP's pseudonym (purpose ``gcp``) comes from the pseudonymisation entity when the vault has one
(:mod:`privacy.gcp`: equal across aggregators, so the TSO sees a GCP offered twice), else from
the prosumer's random GCP uuid and salt.

:class:`Pseudonyms` (``vault.pseudonyms``) is the public way in, and each of its reads writes an
audit entry naming who asked and why (``pseudonym_of``, ``resolve``, ``issued_pseudonyms``);
issuing a pseudonym also notes its scope, so an erasure lists every scope ever used.
:class:`Derivation` is the unaudited computation behind it and behind erasure notices, held
privately by the vault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Final
from uuid import UUID

from .auditlog import AuditLog
from .epochs import Epochs
from .errors import UnknownIdentity
from .gcp import GcpPseudonyms
from .identities import IdentityRows
from .pseudonym import month_of, pseudonym_in_scope, validate_month
from .records import Device, Holdings, Prosumer

__all__ = ["GCP_PURPOSE", "Derivation", "Pseudonyms"]

#: the purpose of a grid connection point's pseudonym
GCP_PURPOSE: Final = "gcp"


class Derivation:
    """Recomputes the pseudonyms of the vault's devices and GCPs; never audited itself."""

    __slots__ = ("_aggregator", "_epochs", "_gcp", "_rows", "_zone")

    def __init__(self, rows: IdentityRows, epochs: Epochs, *, gcp: GcpPseudonyms | None,
                 aggregator: str, month_zone: str) -> None:
        self._rows = rows
        self._epochs = epochs
        self._gcp = gcp
        self._aggregator = aggregator
        self._zone = month_zone

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

    def of(self, device: Device, recipient: str, purpose: str, month: str) -> str:
        """The device's pseudonym, or its GCP's for purpose ``gcp``."""
        if purpose == GCP_PURPOSE:
            return self._gcp_pseudonym(self._rows.prosumer(device.prosumer_id), recipient, month)
        return self._device_pseudonym(device, recipient, purpose, month)

    def candidates(self, recipient: str, purpose: str, month: str
                   ) -> Iterator[tuple[UUID, str]]:
        """Every device's (or, for purpose ``gcp``, every GCP's) uuid and pseudonym."""
        if purpose == GCP_PURPOSE:
            for prosumer_id in self._rows.prosumer_ids():
                owner = self._rows.prosumer(prosumer_id)
                yield owner.gcp_uuid, self._gcp_pseudonym(owner, recipient, month)
        else:
            for device in self._rows.devices():
                yield device.device_uuid, self._device_pseudonym(device, recipient, purpose, month)

    def _issued(self, prosumer_id: str, recipient: str, purposes: Sequence[str], now: datetime
                ) -> Holdings:
        """Every month and, per purpose, every pseudonym the prosumer's devices and GCP were
        issued for ``recipient`` since onboarding (and in any other month the scope was used)."""
        owner = self._rows.prosumer(prosumer_id)
        devices = self._rows.devices(prosumer_id)
        since, current = self._rows.since(prosumer_id), month_of(now, self._zone)
        listed, all_months = [], set[str]()
        for purpose in purposes:
            months = self._epochs.months(recipient, purpose, since, current)
            all_months.update(months)
            names = ([self._gcp_pseudonym(owner, recipient, m) for m in months]
                     if purpose == GCP_PURPOSE else
                     [self._device_pseudonym(d, recipient, purpose, m)
                      for m in months for d in devices])
            listed.append((purpose, tuple(dict.fromkeys(names))))
        return Holdings(recipient=recipient, months=tuple(sorted(all_months)),
                        pseudonyms=tuple(listed))

    def held(self, prosumer_id: str, scopes: Sequence[tuple[str, str]], now: datetime
             ) -> tuple[Holdings, ...]:
        """Per recipient of ``scopes`` and of every scope ever used, every pseudonym under which
        it may hold the prosumer's data (what an erasure notice lists)."""
        by_recipient: dict[str, list[str]] = {}
        for recipient, purpose in dict.fromkeys([*scopes, *self._epochs.used_scopes()]):
            by_recipient.setdefault(recipient, []).append(purpose)
        return tuple(self._issued(prosumer_id, recipient, purposes, now)
                     for recipient, purposes in by_recipient.items())


class Pseudonyms:
    """``vault.pseudonyms``: a device's pseudonym, the device behind one, a prosumer's list;
    every one audited."""

    __slots__ = ("_clock", "_derivation", "_epochs", "_log", "_rows")

    def __init__(self, derivation: Derivation, rows: IdentityRows, epochs: Epochs,
                 log: AuditLog, clock: Callable[[], datetime]) -> None:
        self._derivation = derivation
        self._rows = rows
        self._epochs = epochs
        self._log = log
        self._clock = clock

    def of(self, device_uuid: UUID, recipient: str, purpose: str, month: str, *,
           requested_by: str, reason: str) -> str:
        """A device's pseudonym (or its GCP's, for purpose ``gcp``) for one month, under that
        month's epoch key; audited, and the scope noted for erasure."""
        validate_month(month)
        device = self._rows.device(device_uuid)
        self._epochs.note_issued(recipient, purpose, month)
        self._log.record("pseudonym_of", requested_by=requested_by, reason=reason, detail={
            "device": self._log.ref(str(device_uuid)), "scope": f"{recipient}|{purpose}|{month}"})
        return self._derivation.of(device, recipient, purpose, month)

    def resolve(self, pseudonym: str, recipient: str, purpose: str, month: str, *,
                requested_by: str, reason: str) -> UUID:
        """The device (or GCP) uuid behind a pseudonym, found by recomputation; always audited.

        Raises :class:`UnknownIdentity` when nothing matches (never issued, or the owner was
        erased: crypto-shredded).
        """
        self._epochs.scope_key(recipient, purpose, month)  # an unknown month is refused first
        found = next((subject for subject, name
                      in self._derivation.candidates(recipient, purpose, month)
                      if name == pseudonym), None)
        detail = {"pseudonym": self._log.ref(pseudonym),
                  "scope": f"{recipient}|{purpose}|{month}",
                  "result": "not found" if found is None else self._log.ref(str(found))}
        self._log.record("resolve", requested_by=requested_by, reason=reason, detail=detail)
        if found is None:
            raise UnknownIdentity(f"pseudonym {pseudonym} resolves to no device in the vault")
        return found

    def issued(self, prosumer_id: str, *, scopes: Sequence[tuple[str, str]],
               requested_by: str, reason: str) -> tuple[Holdings, ...]:
        """Per recipient (of ``scopes`` and of every scope ever used), every pseudonym under
        which it may hold the prosumer's data: for a data subject's access request (GDPR art.
        15); audited."""
        found = self._derivation.held(prosumer_id, scopes, self._clock())
        self._log.record("issued_pseudonyms", requested_by=requested_by, reason=reason, detail={
            "prosumer": self._log.ref(prosumer_id), "recipients": str(len(found))})
        return found
