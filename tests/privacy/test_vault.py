"""The identity vault: sealed at rest, consent-gated, disputes resolved by recomputation."""

from __future__ import annotations

import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

import privacy
from privacy import IdentityVault, identities
from tests.kit.vaults import WHO, Household, add_household, key_provider

TSO = "TSO:TENNET-NL"


def test_raw_file_holds_no_identity(vault: IdentityVault, household: Household) -> None:
    raw = Path(vault.path).read_bytes()
    for secret in (
        household.prosumer.ean, household.prosumer.name, household.device.serial,
        household.prosumer.postcode, household.prosumer.contract_id,
        household.device.salt.hex(),
    ):  # fmt: skip
        assert secret.encode() not in raw, secret
    assert household.device.salt not in raw
    # ...yet the vault reads them back with the key.
    assert vault.devices.get(household.device.device_uuid, **WHO) == household.device
    assert vault.prosumers.get(household.prosumer.prosumer_id, **WHO) == household.prosumer


def test_wrong_key_cannot_read(tmp_path: Path, vault: IdentityVault, household: Household) -> None:
    with pytest.raises(privacy.VaultCorrupt, match="fails its MAC"):
        IdentityVault(vault.path, key_provider(bytes(32)))


def test_sealed_blob_moved_to_another_record_does_not_decrypt(
    vault: IdentityVault, household: Household
) -> None:
    other = add_household(vault, 2)
    db = sqlite3.connect(vault.path)
    with db:
        row = db.execute(
            "SELECT nonce, sealed FROM devices WHERE device_uuid = ?",
            (str(household.device.device_uuid),),
        ).fetchone()
        db.execute(
            "UPDATE devices SET nonce = ?, sealed = ? WHERE device_uuid = ?",
            (*row, str(other.device.device_uuid)),
        )
    db.close()
    with pytest.raises(privacy.VaultCorrupt):
        vault.devices.get(other.device.device_uuid, **WHO)


def test_old_key_versions_stay_readable_after_rotation(
    tmp_path: Path, vault: IdentityVault, household: Household
) -> None:
    rotated = key_provider(bytes(range(32)), bytes(range(1, 33)))
    with IdentityVault(vault.path, rotated) as after:
        assert after.devices.get(household.device.device_uuid, **WHO) == household.device
        newer = add_household(after, 3)
        assert after.devices.get(newer.device.device_uuid, **WHO) == newer.device


def test_no_consent_no_onboarding(vault: IdentityVault) -> None:
    vault.prosumers.add(
        prosumer_id="P-9", name="Bram", postcode="1011 AA", ean="871687120000099999",
        contract_id="C-9",
    )  # fmt: skip
    with pytest.raises(privacy.ConsentMissing, match="P-9"):
        vault.devices.onboard(
            prosumer_id="P-9", serial="S-1", device_class="HEAT_PUMP",
            rated_kw=Decimal("2.5"), zone="NL",
        )  # fmt: skip
    assert list(vault.devices.of("P-9", **WHO)) == []


def test_a_prosumer_id_is_added_once(vault: IdentityVault, household: Household) -> None:
    add_household(vault, 0)  # added later, listed first
    with pytest.raises(ValueError, match="already in the vault"):
        vault.prosumers.add(prosumer_id=household.prosumer.prosumer_id, name="Bram",
                            postcode="1011 AA", ean="871687120000099999", contract_id="C-9")
    assert vault.prosumers.ids() == ("P-0000", "P-0001")
    assert vault.prosumers.get("P-0001", **WHO) == household.prosumer  # the first stays


def test_withdrawal_stops_data_at_the_next_check(
    vault: IdentityVault, household: Household
) -> None:
    device = household.device.device_uuid
    vault.consents.require(device, "balancing-validation")
    vault.consents.withdraw(household.prosumer.prosumer_id, "balancing-validation")
    with pytest.raises(privacy.ConsentMissing, match="balancing-validation"):
        vault.consents.require(device, "balancing-validation")
    history = vault.consents.of(household.prosumer.prosumer_id)
    assert [c.live for c in history if c.purpose == "balancing-validation"] == [False]
    with pytest.raises(privacy.ConsentMissing):
        vault.consents.require(device, "marketing")


def test_consenting_lets_through_what_require_would(
    vault: IdentityVault, household: Household
) -> None:
    others = [add_household(vault, n) for n in range(2, 6)]
    vault.consents.withdraw(others[1].prosumer.prosumer_id, "balancing-validation")
    unknown = uuid.UUID(int=7)  # not in the vault
    devices = [h.device.device_uuid for h in (household, *others)] + [unknown]

    def required(device: uuid.UUID, purpose: str) -> bool:
        try:
            vault.consents.require(device, purpose)
        except privacy.ConsentMissing:
            return False
        return True

    for purpose in ("balancing-validation", privacy.ONBOARDING_PURPOSE, "marketing"):
        assert vault.consents.consenting(devices, purpose) == {
            d for d in devices if required(d, purpose)}
    assert others[1].device.device_uuid not in vault.consents.consenting(
        devices, "balancing-validation")
    assert vault.consents.consenting([], "balancing-validation") == frozenset()


def test_consenting_reads_a_statement_per_chunk_not_per_device(
    vault: IdentityVault, household: Household, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identities, "_IDS_PER_STATEMENT", 2)
    devices = [household.device.device_uuid] + [
        add_household(vault, n).device.device_uuid for n in range(2, 6)]
    statements: list[str] = []
    vault._db.set_trace_callback(statements.append)  # the vault's own connection
    assert vault.consents.consenting(devices, "balancing-validation") == set(devices)
    vault._db.set_trace_callback(None)
    # five devices, five owners, two ids a statement: three for the owners, three for consent
    assert len(statements) == 6, statements


def test_a_vault_without_the_consent_index_gets_it_when_opened(
    vault: IdentityVault, household: Household, keys: privacy.KeyProvider
) -> None:
    def plan() -> str:
        db = sqlite3.connect(vault.path)
        try:
            return str(db.execute("EXPLAIN QUERY PLAN SELECT * FROM consents WHERE prosumer_id = ?",
                                  ("P-0001",)).fetchall())
        finally:
            db.close()

    assert "consents_prosumer" in plan()
    db = sqlite3.connect(vault.path)
    with db:
        db.execute("DROP INDEX consents_prosumer")  # as a vault made before the index
    db.close()
    assert "consents_prosumer" not in plan()
    IdentityVault(vault.path, keys).close()
    assert "consents_prosumer" in plan()


def test_resolve_recomputes_and_logs(vault: IdentityVault, household: Household) -> None:
    others = [add_household(vault, n) for n in range(2, 6)]
    target = others[2].device.device_uuid
    name = vault.pseudonyms.of(target, TSO, "balancing-validation", "2025-03", **WHO)
    assert vault.pseudonyms.resolve(name, TSO, "balancing-validation", "2025-03",
                                    requested_by="disputes", reason="dispute D-7") == target
    with pytest.raises(privacy.UnknownIdentity):
        # the same pseudonym means nothing in another month
        vault.pseudonyms.resolve(name, TSO, "balancing-validation", "2025-04",
                                 requested_by="disputes", reason="dispute D-7")
    log = vault.audit.entries()
    assert [e.action for e in log] == ["pseudonym_of", "resolve", "resolve"]
    assert log[1].requested_by == "disputes" and log[1].reason == "dispute D-7"
    assert log[1].detail["result"].startswith("v1:") and log[2].detail["result"] == "not found"
    assert log[1].detail["pseudonym"] == log[2].detail["pseudonym"] != name
    assert vault.audit.verify().intact


def test_gcp_has_its_own_pseudonym(vault: IdentityVault, household: Household) -> None:
    device = household.device.device_uuid
    gcp = vault.pseudonyms.of(device, TSO, privacy.GCP_PURPOSE, "2025-03", **WHO)
    assert gcp != vault.pseudonyms.of(device, TSO, "balancing-validation", "2025-03", **WHO)
    assert household.prosumer.ean not in gcp
    found = vault.pseudonyms.resolve(gcp, TSO, privacy.GCP_PURPOSE, "2025-03", **WHO)
    assert found == household.prosumer.gcp_uuid


def test_ean_must_be_18_digits(vault: IdentityVault) -> None:
    with pytest.raises(ValueError, match="18 digits"):
        vault.prosumers.add(
            prosumer_id="P-X", name="X", postcode="1011 AA", ean="8716", contract_id="C"
        )
