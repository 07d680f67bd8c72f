"""Vault keys: separate domains, per-prosumer data keys, rotation by epoch, authenticated rows,
and the refusal of first-format files."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import IdentityVault
from privacy.keys import MasterKey, domain_key
from privacy.pseudonym import pseudonym_in_scope, scope_key

from .conftest import WHO, Household, add_household, key_provider

TSO = "TSO:TENNET-NL"
PURPOSE = "balancing-validation"
V1 = bytes(range(32))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_each_domain_has_its_own_key_and_pseudonyms_do_not_use_the_master_key(
    vault: IdentityVault, household: Household
) -> None:
    master = MasterKey(version=1, secret=V1)
    domains = {d: domain_key(master, d) for d in ("wrap", "integrity", "pseudonym")}
    assert len(set(domains.values()) | {V1}) == 4
    device = household.device
    issued = vault.pseudonym_of(device.device_uuid, TSO, PURPOSE, "2025-03", **WHO)
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
        vault.device(household.device.device_uuid, **WHO)


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
    vault.withdraw_consent(prosumer, privacy.ONBOARDING_PURPOSE)
    db = sqlite3.connect(vault.path)
    with db:
        db.execute(tamper)
    db.close()
    with pytest.raises(privacy.VaultCorrupt, match="consent row"):
        vault.consents(prosumer)
    with pytest.raises(privacy.VaultCorrupt):
        vault.require_consent(household.device.device_uuid, privacy.ONBOARDING_PURPOSE)


def test_rotation_rewraps_and_switches_pseudonyms_only_at_the_next_month(tmp_path: Path) -> None:
    clock = Clock(datetime(2025, 3, 14, 12, 0, tzinfo=UTC))
    path = tmp_path / "vault.sqlite"
    with IdentityVault(path, key_provider(V1), clock=clock) as before:
        household = add_household(before, 1)
        device = household.device.device_uuid
        march = before.pseudonym_of(device, TSO, PURPOSE, "2025-03", **WHO)
        april_old_key = before.pseudonym_of(device, TSO, PURPOSE, "2025-04", **WHO)
    key_file = tmp_path / "keys"
    key_file.write_text(f"1:{V1.hex()}\n")
    assert main(["privacy", "keygen", "--key-file", str(key_file)]) == 0
    v2 = bytes.fromhex(key_file.read_text().splitlines()[1].split(":")[1])
    with IdentityVault(path, key_provider(V1, v2), clock=clock) as rotated:
        assert rotated.pseudonym_of(device, TSO, PURPOSE, "2025-03", **WHO) == march
    assert main(["privacy", "rotate", "--vault", str(path), "--key-file", str(key_file),
                 "--reason", "yearly rotation"]) == 0
    with IdentityVault(path, key_provider(V1, v2), clock=clock) as rotated:
        assert rotated.audit_log()[-1].reason == "yearly rotation"
        assert rotated.pseudonym_of(device, TSO, PURPOSE, "2025-03", **WHO) == march
        april = rotated.pseudonym_of(device, TSO, PURPOSE, "2025-04", **WHO)
        assert april != april_old_key
    ring = sqlite3.connect(path.with_name(path.name + ".keyring"))
    assert ring.execute("SELECT DISTINCT key_version FROM data_keys").fetchall() == [(2,)]
    ring.close()
    only_new = privacy.EnvKeyProvider(environ={privacy.DEFAULT_KEY_ENV: f"2:{v2.hex()}"})
    with IdentityVault(path, only_new, clock=clock) as retired:
        assert retired.device(device, **WHO) == household.device  # re-wrapped: v1 not needed
        assert retired.consents("P-0001")  # re-authenticated under v2
        assert retired.verify_audit_log().first_broken == 1  # old entries name v1: kept as is
        assert retired.pseudonym_of(device, TSO, PURPOSE, "2025-04", **WHO) == april
        with pytest.raises(privacy.KeyUnavailable):
            retired.pseudonym_of(device, TSO, PURPOSE, "2025-03", **WHO)  # March is v1's


def test_a_first_format_vault_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE prosumers (prosumer_id TEXT PRIMARY KEY, key_version INTEGER, "
               "nonce BLOB, sealed BLOB)")
    db.close()
    with pytest.raises(privacy.VaultOutdated, match=r"format-1.*--onboard"):
        IdentityVault(path, key_provider(V1))
