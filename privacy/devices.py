"""The vault's devices: onboarded only with the owner's live consent, read back only audited.

A device's record (serial, class, rated power, zone and its random salt, from which every
pseudonym of the device is derived) is sealed under its owner's data key
(:mod:`privacy.identities`). Onboarding is refused with :class:`ConsentMissing` unless the owner
consents to the onboarding purpose at that moment. Reading one device writes an audit entry
``device``, reading a list writes one entry ``devices`` (:mod:`privacy.auditlog`).
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from typing import Final
from uuid import UUID

from .auditlog import AuditLog
from .consents import ConsentRows
from .errors import ConsentMissing
from .identities import SALT_BYTES, IdentityRows
from .records import Device

__all__ = ["ONBOARDING_PURPOSE", "Devices"]

#: the purpose a device is onboarded for: its owner's consent to it is checked first
ONBOARDING_PURPOSE: Final = "flexibility-service"


class Devices:
    """``vault.devices``: onboard a device (consent first), read records (audited)."""

    __slots__ = ("_consents", "_log", "_rows")

    def __init__(self, rows: IdentityRows, consents: ConsentRows, log: AuditLog) -> None:
        self._rows = rows
        self._consents = consents
        self._log = log

    def onboard(
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
        self._rows.prosumer(prosumer_id)
        if not self._consents.live(prosumer_id, purpose):
            raise ConsentMissing(f"prosumer {prosumer_id!r} has no live consent for {purpose!r}")
        device = Device(
            device_uuid=device_uuid or uuid.uuid4(),
            prosumer_id=prosumer_id,
            serial=serial,
            device_class=device_class,
            rated_kw=rated_kw,
            zone=zone,
            salt=os.urandom(SALT_BYTES),
        )
        self._rows.add_device(device)
        return device

    def get(self, device_uuid: UUID, *, requested_by: str, reason: str) -> Device:
        """A device's record (serial, salt...); audited."""
        self._log.record("device", requested_by=requested_by, reason=reason,
                         detail={"device": self._log.ref(str(device_uuid))})
        return self._rows.device(device_uuid)

    def of(self, prosumer_id: str | None = None, *, requested_by: str,
           reason: str) -> tuple[Device, ...]:
        """Every device's record, or one prosumer's; audited (one entry)."""
        found = self._rows.devices(prosumer_id)
        scope = "all" if prosumer_id is None else self._log.ref(prosumer_id)
        self._log.record("devices", requested_by=requested_by, reason=reason,
                         detail={"prosumer": scope, "count": str(len(found))})
        return found
