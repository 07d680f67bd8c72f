"""Vault keys: separate domains, per-prosumer data keys, rotation by epoch, authenticated rows,
and the refusal of first-format files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import privacy
from privacy import IdentityVault
from privacy.keys import MasterKey, domain_key
from privacy.pseudonym import pseudonym_in_scope, scope_key
from tests.kit.vaults import WHO, Household, add_household, key_provider

TSO = "TSO:TENNET-NL"
PURPOSE = "balancing-validation"
V1 = bytes(range(32))


def test_each_domain_has_its_own_key_and_pseudonyms_do_not_use_the_master_key(
    vault: IdentityVault, household: Household
) -> None:
    master = MasterKey(version=1, secret=V1)
    domains = {d: domain_key(master, d) for d in ("wrap", "integrity", "pseudonym")}
    assert len(set(domains.values()) | {V1}) == 4
    device = household.device
    issued = vault.pseudonyms.of(device.device_uuid, TSO, PURPOSE, "2025-03", **WHO)
    from_root = scope_key(domains["pseudonym"], TSO, PURPOSE, "2025-03")
    assert issued == pseudonym_in_scope(from_root, device.device_uuid, device.salt)
    from_master = scope_key(V1, TSO, PURPOSE, "2025-03")
    assert issued != pseudonym_in_scope(from_master, device.device_uuid, device.salt)


def test_each_prosumer_has_a_data_key_outside_the_vault_file(
    vault: IdentityVault, household: Household
) -> None:
    add_household(vault, 2)
    ring = sqlite3.connect(vault.keyring_path)
    rows = ring.execute(
        "SELECT prosumer_id, wrapped FROM data_keys ORDER BY prosumer_id").fetchall()
    ring.close()
    assert [r[0] for r in rows] == ["P-0001", "P-0002"] and rows[0][1] != rows[1][1]
    assert b"data_keys" not in Path(vault.path).read_bytes()


def test_a_device_row_moved_to_another_prosumer_does_not_decrypt(
    vault: IdentityVault, household: Household
) -> None:
    other = add_household(vault, 2)
    db = sqlite3.connect(vault.path)
    with db:
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("UPDATE devices SET prosumer_id = ? WHERE device_uuid = ?",
                   (other.prosumer.prosumer_id, str(household.device.device_uuid)))
    db.close()
    with pytest.raises(privacy.VaultCorrupt):
        vault.devices.get(household.device.device_uuid, **WHO)


@pytest.mark.parametrize("tamper", [
    "UPDATE consents SET withdrawn_at = NULL",
    "UPDATE consents SET purpose = 'balancing-validation'",
    "INSERT INTO consents VALUES ('forged', 'P-0001', NULL, 'marketing', "
    "'2025-03-01T00:00:00+00:00', NULL, 1, x'00')",
])
def test_a_tampered_consent_row_is_detected(
    vault: IdentityVault, household: Household, tamper: str
) -> None:
    prosumer = household.prosumer.prosumer_id
    vault.consents.withdraw(prosumer, privacy.ONBOARDING_PURPOSE)
    db = sqlite3.connect(vault.path)
    with db:
        db.execute(tamper)
    db.close()
    with pytest.raises(privacy.VaultCorrupt, match="consent row"):
        vault.consents.of(prosumer)
    with pytest.raises(privacy.VaultCorrupt):
        vault.consents.require(household.device.device_uuid, privacy.ONBOARDING_PURPOSE)
    with pytest.raises(privacy.VaultCorrupt):
        vault.consents.consenting((household.device.device_uuid,), privacy.ONBOARDING_PURPOSE)


def test_a_first_format_vault_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE prosumers (prosumer_id TEXT PRIMARY KEY, key_version INTEGER, "
               "nonce BLOB, sealed BLOB)")
    db.close()
    with pytest.raises(privacy.VaultOutdated, match=r"format-1.*--onboard"):
        IdentityVault(path, key_provider(V1))
