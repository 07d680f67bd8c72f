"""Erasure by crypto-shredding, notices per recipient, and raw-data retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest

import privacy
from cbp.cli import main
from privacy import IdentityVault, RawSample, SqliteRawDataStore

from .conftest import Household, add_household

TSO = "TSO:TENNET-NL"
NOW = datetime(2025, 3, 14, 14, 0, tzinfo=UTC)


def test_erasure_makes_recomputation_impossible(
    vault: IdentityVault, household: Household, tmp_path: Path
) -> None:
    keep = add_household(vault, 2)
    device = household.device.device_uuid
    march = vault.pseudonym_of(device, TSO, "balancing-validation", "2025-03")
    february = vault.pseudonym_of(device, TSO, "balancing-validation", "2025-02")
    store = SqliteRawDataStore(tmp_path / "raw.sqlite")
    store.add(RawSample(device_uuid=d, at=NOW, kw=Decimal("7.5"))
              for d in (device, keep.device.device_uuid))  # fmt: skip

    notices = privacy.erase_prosumer(
        vault, household.prosumer.prosumer_id, privacy.PrivacyConfig(),
        now=NOW, requested_by="test", raw_store=store,
    )  # fmt: skip

    (notice,) = notices
    assert notice.recipient == TSO and notice.month == "2025-03"
    listed = dict(notice.pseudonyms)
    assert listed["balancing-validation"] == (march,)
    assert len(listed[privacy.GCP_PURPOSE]) == 1
    with pytest.raises(privacy.UnknownIdentity):
        vault.pseudonym_of(device, TSO, "balancing-validation", "2025-03")
    for name, month in ((march, "2025-03"), (february, "2025-02")):
        with pytest.raises(privacy.UnknownIdentity):
            vault.resolve(name, TSO, "balancing-validation", month, requested_by="test")
    assert store.count() == 1  # only the other household's sample is left
    assert vault.device(keep.device.device_uuid) == keep.device
    assert household.device.salt not in Path(vault.path).read_bytes()
    assert "erase" in [e.action for e in vault.audit_log()]
    store.close()


def test_cli_erase_writes_one_notice_per_recipient(
    vault: IdentityVault, household: Household, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"1:{bytes(range(32)).hex()}\n")
    config = tmp_path / "crowdflex.toml"
    config.write_text(
        "[privacy]\n"
        '[[privacy.recipients]]\nname = "TSO:TENNET-NL"\npurposes = ["balancing-validation"]\n'
        '[[privacy.recipients]]\nname = "DSO:STEDIN"\npurposes = ["congestion"]\n'
        '[privacy.legal_basis]\ncongestion = "Art. 6(1)(e) GDPR"\n'
    )
    notices = tmp_path / "notices"
    code = main([
        "privacy", "erase", "--vault", str(vault.path), "--prosumer", "P-0001",
        "--key-file", str(key_file), "--notice-dir", str(notices), "--config", str(config),
    ])  # fmt: skip
    assert code == 0
    written = sorted(notices.glob("*.json"))
    assert len(written) == 2
    bodies = [json.loads(p.read_text()) for p in written]
    assert {b["recipient"] for b in bodies} == {"TSO:TENNET-NL", "DSO:STEDIN"}
    for body in bodies:
        (entry,) = body["delete"]
        assert all(privacy.is_pseudonym(p) for p in entry["pseudonyms"])
        text = json.dumps(body)
        assert str(household.device.device_uuid) not in text and "P-0001" not in text
    assert main([
        "privacy", "erase", "--vault", str(vault.path), "--prosumer", "P-0001",
        "--key-file", str(key_file), "--notice-dir", str(notices),
    ]) == 2  # fmt: skip


def test_retention_purges_only_older_than_the_configured_age(tmp_path: Path) -> None:
    device = uuid4()
    with SqliteRawDataStore(tmp_path / "raw.sqlite") as store:
        ages = (timedelta(days=101), timedelta(days=100, seconds=1), timedelta(days=99))
        store.add(RawSample(device_uuid=device, at=NOW - a, kw=Decimal("1.2")) for a in ages)
        assert privacy.apply_retention(store, now=NOW) == 2
        (left,) = store.samples(device, NOW - timedelta(days=200), NOW)
        assert left.at == NOW - timedelta(days=99) and left.kw == Decimal("1.2")
        assert privacy.apply_retention(store, now=NOW, retention=timedelta(days=10)) == 1
        assert store.count() == 0
