"""GCP pseudonyms from a pseudonymisation entity: equal across aggregators (the TSO sees one
connection point offered twice), not computable from an EAN by an aggregator or the TSO."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

import privacy
from privacy import PseudonymisationEntity
from privacy.keys import MasterKey, domain_key
from privacy.pseudonym import pseudonym_in_scope, scope_key
from tests.kit.vaults import WHO, mandated_vault

TSO = "TSO:TENNET-NL"
EAN = "871687120000012345"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
PE_KEY = bytes(range(100, 132))


def test_neither_an_aggregator_nor_the_tso_can_compute_it_from_an_ean(tmp_path: Path) -> None:
    pe = PseudonymisationEntity(PE_KEY)
    vault, device = mandated_vault(
        tmp_path / "a.sqlite", bytes(range(32)), pe, "AGG-A", ean=EAN, now=NOW)
    gcp = vault.pseudonyms.of(device.device_uuid, TSO, privacy.GCP_PURPOSE, "2025-03", **WHO)
    # a dictionary over EANs (the true one included) with everything the aggregator holds
    master = MasterKey(version=1, secret=bytes(range(32)))
    candidates = [f"8716871200000{n:05d}" for n in range(12_300, 12_400)]
    for secret in (master.secret, *(domain_key(master, d) for d in ("wrap", "integrity",
                                                                    "pseudonym"))):
        key = scope_key(secret, TSO, privacy.GCP_PURPOSE, "2025-03")
        guesses = {pseudonym_in_scope(key, device.device_uuid, ean.encode()[:16].ljust(16, b"0"))
                   for ean in candidates}
        assert gcp not in guesses
    for ean in candidates:  # unkeyed hashes, as a TSO might try
        for digest in (hashlib.sha256(ean.encode()), hashlib.md5(ean.encode())):
            assert digest.hexdigest()[:26] != gcp.removeprefix("psn1_")
    assert PseudonymisationEntity(bytes(32)).gcp_pseudonym(
        EAN, TSO, "2025-03", aggregator="AGG-A") != gcp  # another key: another pseudonym
    vault.close()


def test_the_entity_answers_only_for_mandated_eans_and_reads_its_own_key_file(
    tmp_path: Path
) -> None:
    key_file = tmp_path / "pe.key"
    key_file.write_text(f"1:{bytes(32).hex()}\n2:{PE_KEY.hex()}\n")
    pe = PseudonymisationEntity.from_key_file(
        key_file, mandates=lambda aggregator, ean: (aggregator, ean) == ("AGG-A", EAN))
    assert pe.gcp_pseudonym(EAN, TSO, "2025-03", aggregator="AGG-A") == (
        PseudonymisationEntity(PE_KEY).gcp_pseudonym(EAN, TSO, "2025-03", aggregator="x"))
    with pytest.raises(privacy.NoMandate):
        pe.gcp_pseudonym(EAN, TSO, "2025-03", aggregator="AGG-B")
    with pytest.raises(privacy.NoMandate):
        pe.gcp_pseudonym("871687120000099999", TSO, "2025-03", aggregator="AGG-A")
    assert pe.answers == {"AGG-A": 1}


def test_erasure_lists_the_entitys_gcp_pseudonyms(tmp_path: Path) -> None:
    pe = PseudonymisationEntity(PE_KEY)
    vault, device = mandated_vault(
        tmp_path / "a.sqlite", bytes(range(32)), pe, "AGG-A", ean=EAN, now=NOW)
    gcp = vault.pseudonyms.of(device.device_uuid, TSO, privacy.GCP_PURPOSE, "2025-03", **WHO)
    (item,) = privacy.erase_prosumer(vault, "P-1", privacy.PrivacyConfig(), **WHO)
    assert dict(item.notice.pseudonyms)[privacy.GCP_PURPOSE] == (gcp,)
    vault.close()
