"""A key provider from an in-memory environment and a small populated identity vault."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

import pytest

import privacy
from privacy import IdentityVault

__all__ = [
    "T0", "WHO", "Household", "add_household", "household", "key_file", "key_provider", "keys",
    "mandated_vault", "vault",
]

T0 = datetime(2025, 3, 14, 13, 0, tzinfo=UTC)
#: who asks and why, for the vault's audited identity paths
WHO: Final = {"requested_by": "test", "reason": "unit test"}


def key_provider(*secrets: bytes) -> privacy.KeyProvider:
    value = ",".join(f"{n}:{s.hex()}" for n, s in enumerate(secrets, start=1))
    return privacy.EnvKeyProvider(environ={privacy.DEFAULT_KEY_ENV: value})


@dataclass(frozen=True, slots=True, kw_only=True)
class Household:
    prosumer: privacy.Prosumer
    device: privacy.Device


@pytest.fixture
def keys() -> privacy.KeyProvider:
    return key_provider(bytes(range(32)))


@pytest.fixture
def vault(tmp_path: Path, keys: privacy.KeyProvider) -> Iterator[IdentityVault]:
    with IdentityVault(tmp_path / "vault.sqlite", keys, clock=lambda: T0) as opened:
        yield opened


def add_household(vault: IdentityVault, n: int, *, consent: bool = True) -> Household:
    prosumer = vault.prosumers.add(
        prosumer_id=f"P-{n:04d}",
        name=f"Anna de Vries-{n}",
        postcode="3511 AB",
        ean=f"8716871200000{n:05d}",
        contract_id=f"CONTRACT-{n:06d}",
    )
    if consent:
        vault.consents.grant(prosumer.prosumer_id, privacy.ONBOARDING_PURPOSE)
        vault.consents.grant(prosumer.prosumer_id, "balancing-validation")
    device = vault.devices.onboard(
        prosumer_id=prosumer.prosumer_id,
        serial=f"WBX-EVC-{n:07d}",
        device_class="EV_CHARGER",
        rated_kw=Decimal("11"),
        zone="NL",
    )
    return Household(prosumer=prosumer, device=device)


@pytest.fixture
def household(vault: IdentityVault) -> Household:
    return add_household(vault, 1)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A key file holding the ``keys`` fixture's one master key, as ``--key-file`` reads it."""
    path = tmp_path / "keys"
    path.write_text(f"1:{bytes(range(32)).hex()}\n")
    return path


def mandated_vault(path: Path, master: bytes, pe: privacy.PseudonymisationEntity, aggregator: str,
                   *, ean: str, now: datetime) -> tuple[IdentityVault, privacy.Device]:
    """An aggregator's vault with one consenting prosumer at ``ean`` and one heat pump, whose
    GCP pseudonyms ``pe`` answers (the entity has the aggregator's mandate for ``ean``)."""
    vault = IdentityVault(path, key_provider(master), clock=lambda: now, gcp=pe,
                          aggregator=aggregator)
    vault.prosumers.add(prosumer_id="P-1", name="Anna", postcode="3511 AB", ean=ean,
                        contract_id=f"C-{aggregator}")
    vault.consents.grant("P-1", privacy.ONBOARDING_PURPOSE)
    device = vault.devices.onboard(prosumer_id="P-1", serial=f"SN-{aggregator}",
                                   device_class="HEAT_PUMP", rated_kw=Decimal("3"), zone="NL")
    return vault, device
