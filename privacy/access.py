"""A data subject's access request (GDPR art. 15): what the aggregator holds, and where else.

:func:`subject_access` gathers, for one prosumer, the identity record, consents and devices the
vault holds, and per recipient every pseudonym under which that recipient may hold the
prosumer's data (every month since onboarding, every scope configured or ever used: the same
list an erasure notice would carry). A recipient holds no identity, so it can answer for its
part (per-device rows, captures) only from such a list; the aggregator hands it over. Every
read is audited in the vault with who asked and why. Salts and keys are never part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import PrivacyConfig
from .records import Consent, Device, Holdings, Prosumer
from .vault import IdentityVault

__all__ = ["SubjectAccess", "subject_access"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectAccess:
    prosumer: Prosumer
    consents: tuple[Consent, ...]
    devices: tuple[Device, ...]
    held_by: tuple[Holdings, ...]


def subject_access(vault: IdentityVault, prosumer_id: str, config: PrivacyConfig, *,
                   requested_by: str, reason: str) -> SubjectAccess:
    """Everything the vault holds on the prosumer and, per recipient, the pseudonyms under
    which it may hold their data; audited."""
    return SubjectAccess(
        prosumer=vault.prosumers.get(prosumer_id, requested_by=requested_by, reason=reason),
        consents=vault.consents.of(prosumer_id),
        devices=vault.devices.of(prosumer_id, requested_by=requested_by, reason=reason),
        held_by=vault.pseudonyms.issued(prosumer_id, scopes=config.scopes(),
                                        requested_by=requested_by, reason=reason))
