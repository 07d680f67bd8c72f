"""Erasure (GDPR art. 17) by crypto-shredding, with notices that reach every recipient (art. 19).

Order matters (:meth:`IdentityVault.erase_prosumer`): every pseudonym the prosumer's devices and
GCP were ever issued (each month since onboarding, each configured scope and each scope ever
used) goes into pending notices *first*, one per recipient (a combined list would let recipients
link their pseudonyms to each other's); then the prosumer's data key is destroyed and the rows
deleted; then raw samples go. Nobody, the aggregator included, can recompute those pseudonyms
afterwards, which is why they must be listed before.

A notice names pseudonyms only, never the prosumer or a device_uuid. It is delivered by the
running aggregator node (:mod:`cbp.roles.erasure`: an ``x-ERASURE`` oadrUpdateReport to the TSO,
which deletes every row of those pseudonyms and acknowledges); until a recipient acknowledges,
the notice stays pending in the vault.
"""

from __future__ import annotations

from .config import PrivacyConfig
from .records import PendingErasure
from .retention import RawDataStore
from .vault import IdentityVault

__all__ = ["erase_prosumer"]


def erase_prosumer(
    vault: IdentityVault,
    prosumer_id: str,
    config: PrivacyConfig,
    *,
    requested_by: str,
    reason: str,
    raw_store: RawDataStore | None = None,
) -> tuple[PendingErasure, ...]:
    """Erase a prosumer; returns the pending notices, one per recipient."""
    devices = vault.devices(prosumer_id, requested_by=requested_by, reason=reason)
    pending = vault.erase_prosumer(prosumer_id, scopes=config.scopes(),
                                   requested_by=requested_by, reason=reason)
    if raw_store is not None:
        raw_store.erase_devices(d.device_uuid for d in devices)
    return pending
