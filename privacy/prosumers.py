"""The vault's prosumers: added at onboarding, read back only through the audit log.

A prosumer's record (name, postcode, EAN, contract, the GCP's random uuid and salt) is sealed
under the prosumer's own data key (:mod:`privacy.identities`). Reading one writes an audit entry
``prosumer`` naming who asked and why (:mod:`privacy.auditlog`); the list of ids is opaque and
is not audited.
"""

from __future__ import annotations

import os
import uuid

from .auditlog import AuditLog
from .identities import SALT_BYTES, IdentityRows
from .records import Prosumer

__all__ = ["Prosumers"]


class Prosumers:
    """``vault.prosumers``: add a household, read its identity record (audited)."""

    __slots__ = ("_log", "_rows")

    def __init__(self, rows: IdentityRows, log: AuditLog) -> None:
        self._rows = rows
        self._log = log

    def add(
        self, *, prosumer_id: str, name: str, postcode: str, ean: str, contract_id: str
    ) -> Prosumer:
        """A new prosumer with a fresh data key and a random GCP uuid and salt; an id already
        in the vault raises ValueError."""
        prosumer = Prosumer(
            prosumer_id=prosumer_id,
            name=name,
            postcode=postcode,
            ean=ean,
            contract_id=contract_id,
            gcp_uuid=uuid.uuid4(),
            gcp_salt=os.urandom(SALT_BYTES),
        )
        self._rows.add_prosumer(prosumer)
        return prosumer

    def get(self, prosumer_id: str, *, requested_by: str, reason: str) -> Prosumer:
        """A prosumer's identity record; audited."""
        self._log.record("prosumer", requested_by=requested_by, reason=reason,
                         detail={"prosumer": self._log.ref(prosumer_id)})
        return self._rows.prosumer(prosumer_id)

    def ids(self) -> tuple[str, ...]:
        """Every prosumer_id in the vault, sorted."""
        return self._rows.prosumer_ids()
