"""The identity records the vault holds, as frozen dataclasses that validate when built.

Invariants: an EAN is 18 digits (GS1 EAN-18 connection code, Dutch ones start with 871); a salt is
at least 16 random bytes and never appears in ``repr``; ids are strings exactly as given; times are
timezone-aware UTC. One prosumer has one grid connection point (GCP), whose EAN lives on the
prosumer record together with the random uuid and salt its own pseudonym (purpose ``gcp``) is
derived from, so the GCP is never identified by its EAN outside the vault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final
from uuid import UUID

from .pseudonym import MIN_SALT_BYTES

__all__ = [
    "Consent", "ConsentHistory", "Device", "ErasureNotice", "Holdings", "PendingErasure",
    "Prosumer",
]

_EAN: Final = re.compile(r"\d{18}")


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _salt(value: bytes) -> None:
    if len(value) < MIN_SALT_BYTES:
        raise ValueError(f"salt must be at least {MIN_SALT_BYTES} bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Prosumer:
    """A household under contract, with its grid connection point."""

    prosumer_id: str
    name: str
    postcode: str
    ean: str
    contract_id: str
    gcp_uuid: UUID
    gcp_salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.prosumer_id:
            raise ValueError("prosumer_id must not be empty")
        if _EAN.fullmatch(self.ean) is None:
            raise ValueError("ean must be 18 digits")
        _salt(self.gcp_salt)


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A flexible device (EV charger, heat pump, battery) behind a prosumer's connection."""

    device_uuid: UUID
    prosumer_id: str
    serial: str
    device_class: str
    rated_kw: Decimal
    zone: str
    salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.serial:
            raise ValueError("serial must not be empty")
        if self.rated_kw <= 0:
            raise ValueError("rated_kw must be positive")
        _salt(self.salt)


@dataclass(frozen=True, slots=True, kw_only=True)
class Consent:
    """A prosumer's consent to one purpose; live while ``withdrawn_at`` is None."""

    prosumer_id: str
    purpose: str
    granted_at: datetime
    withdrawn_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware("granted_at", self.granted_at)
        _aware("withdrawn_at", self.withdrawn_at)

    @property
    def live(self) -> bool:
        return self.withdrawn_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentHistory:
    """What stays of an erased prosumer's consent (GDPR art. 7(1)): purpose and times, under the
    erasure's random id; nothing that names or links to the prosumer."""

    erasure_id: str
    purpose: str
    granted_at: datetime
    withdrawn_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErasureNotice:
    """What one recipient is told to delete: every pseudonym it was ever given for the erased
    prosumer (all months since onboarding), by purpose; never a uuid or the prosumer."""

    notice_id: str
    recipient: str
    issued_at: datetime
    months: tuple[str, ...]
    pseudonyms: tuple[tuple[str, tuple[str, ...]], ...]

    def __post_init__(self) -> None:
        _aware("issued_at", self.issued_at)

    def all_pseudonyms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for _, names in self.pseudonyms for p in names))


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdings:
    """Every pseudonym under which one recipient may hold a prosumer's data (per purpose), and
    the months they cover: what a data subject's access request needs to reach that recipient."""

    recipient: str
    months: tuple[str, ...]
    pseudonyms: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingErasure:
    """A notice not yet acknowledged, with the aggregator-local device ids its node must still
    unlink from its own stores (never sent)."""

    notice: ErasureNotice
    devices: tuple[UUID, ...]
