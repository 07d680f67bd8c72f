"""Erasure by crypto-shredding: every pseudonym ever issued is listed first, the data key is
destroyed, a copy of the vault file taken before is useless, consent history stays minimal."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import privacy
from privacy import IdentityVault, RawSample, SqliteRawDataStore
from privacy.keys import MasterKey, domain_key
from tests.kit.clock import Clock
from tests.kit.vaults import WHO, add_household, key_provider

TSO = "TSO:TENNET-NL"
PURPOSE = "balancing-validation"
NOW = datetime(2025, 3, 14, 14, 0, tzinfo=UTC)
MASTER = bytes(range(32))


def _unwrapped_keys(keyring: Path) -> list[AESGCM]:
    """Every data key an attacker holding the master key and the current keyring can get."""
    wrap = AESGCM(domain_key(MasterKey(version=1, secret=MASTER), "wrap"))
    ring = sqlite3.connect(keyring)
    rows = ring.execute("SELECT prosumer_id, key_version, nonce, wrapped FROM data_keys")
    keys = []
    for prosumer_id, version, nonce, wrapped in rows:
        aad = f'["cbp-vault-v2", "data-key", "{prosumer_id}", {version}]'.encode()
        keys.append(AESGCM(wrap.decrypt(nonce, wrapped, aad)))
    ring.close()
    return keys


def test_erasure_lists_every_month_then_shreds_so_an_old_copy_is_useless(tmp_path: Path) -> None:
    clock = Clock(datetime(2025, 1, 10, 9, 0, tzinfo=UTC))
    path = tmp_path / "vault.sqlite"
    vault = IdentityVault(path, key_provider(MASTER), clock=clock)
    household, keep = add_household(vault, 1), add_household(vault, 2)
    device = household.device.device_uuid
    issued = {}
    for month, day in (("2025-01", datetime(2025, 1, 20, tzinfo=UTC)),
                       ("2025-02", datetime(2025, 2, 20, tzinfo=UTC)),
                       ("2025-03", NOW)):
        clock.now = day
        issued[month] = (vault.pseudonyms.of(device, TSO, PURPOSE, month, **WHO),
                         vault.pseudonyms.of(device, TSO, privacy.GCP_PURPOSE, month, **WHO))
    store = SqliteRawDataStore(tmp_path / "raw.sqlite")
    store.add(RawSample(device_uuid=d, at=NOW, kw=Decimal("7.5"))
              for d in (device, keep.device.device_uuid))  # fmt: skip
    backup, keyring_backup = tmp_path / "backup.sqlite", tmp_path / "keyring-backup"
    shutil.copyfile(path, backup)
    shutil.copyfile(vault.keyring_path, keyring_backup)

    pending = privacy.erase_prosumer(vault, household.prosumer.prosumer_id,
                                     privacy.PrivacyConfig(), raw_store=store, **WHO)

    (item,) = pending
    notice = item.notice
    assert notice.recipient == TSO and notice.months == ("2025-01", "2025-02", "2025-03")
    listed = dict(notice.pseudonyms)
    # February (and January) are listed: they can never be recomputed after this.
    assert set(listed[PURPOSE]) == {device_name for device_name, _ in issued.values()}
    assert set(listed[privacy.GCP_PURPOSE]) == {gcp for _, gcp in issued.values()}
    assert item.devices == (device,)
    assert vault.erasure.pending(TSO, **WHO) == pending
    for month, (name, _) in issued.items():
        with pytest.raises(privacy.UnknownIdentity):
            vault.pseudonyms.resolve(name, TSO, PURPOSE, month, **WHO)
    with pytest.raises(privacy.UnknownIdentity):
        vault.pseudonyms.of(device, TSO, PURPOSE, "2025-03", **WHO)
    assert store.count() == 1  # only the other household's sample is left
    assert vault.devices.get(keep.device.device_uuid, **WHO) == keep.device
    for file in (path, vault.keyring_path):
        assert household.device.salt not in file.read_bytes()
    vault.close()

    # The copy taken before: its rows are there, sealed under a key that no longer exists.
    with IdentityVault(backup, key_provider(MASTER), keyring=path.with_name(
            path.name + ".keyring")) as old:
        with pytest.raises(privacy.UnknownIdentity, match="no data key"):
            old.devices.get(device, **WHO)
        assert old.devices.get(keep.device.device_uuid, **WHO) == keep.device
    copy = sqlite3.connect(backup)
    nonce, sealed = copy.execute("SELECT nonce, sealed FROM devices WHERE device_uuid = ?",
                                 (str(device),)).fetchone()
    copy.close()
    for key in _unwrapped_keys(path.with_name(path.name + ".keyring")):
        with pytest.raises(InvalidTag):
            key.decrypt(nonce, sealed, None)
        aad = f'["cbp-vault-v2", "devices", "P-0001", "{device}", "device"]'.encode()
        with pytest.raises(InvalidTag):
            key.decrypt(nonce, sealed, aad)
    # Why the keyring is kept with the keys, out of data backups: an old copy of it would undo this.
    with IdentityVault(backup, key_provider(MASTER), keyring=keyring_backup) as undone:
        assert undone.devices.get(device, **WHO) == household.device
    store.close()


def test_in_wal_mode_no_keyring_frame_keeps_the_destroyed_key(tmp_path: Path) -> None:
    with IdentityVault(tmp_path / "v.sqlite", key_provider(MASTER), clock=lambda: NOW,
                       synchronous="normal") as vault:
        add_household(vault, 1)
        add_household(vault, 2)
        ring = sqlite3.connect(vault.keyring_path)
        (wrapped,) = ring.execute(
            "SELECT wrapped FROM data_keys WHERE prosumer_id = 'P-0001'").fetchone()
        ring.close()
        wal = vault.keyring_path.with_name(vault.keyring_path.name + "-wal")
        assert wal.exists() and wrapped in wal.read_bytes()  # WAL mode: the key is in a frame
        privacy.erase_prosumer(vault, "P-0001", privacy.PrivacyConfig(), **WHO)
        for file in (vault.keyring_path, wal):
            assert not file.exists() or wrapped not in file.read_bytes(), file


def test_consent_history_survives_erasure_without_identifying_anything(tmp_path: Path) -> None:
    clock = Clock(NOW)
    with IdentityVault(tmp_path / "v.sqlite", key_provider(MASTER), clock=clock) as vault:
        household = add_household(vault, 1)
        clock.now = NOW + timedelta(days=1)
        vault.consents.withdraw("P-0001", PURPOSE)
        clock.now = NOW + timedelta(days=2)
        privacy.erase_prosumer(vault, "P-0001", privacy.PrivacyConfig(), **WHO)
        history = {h.purpose: h for h in vault.consents.history()}
        assert history[PURPOSE].granted_at == NOW
        assert history[PURPOSE].withdrawn_at == NOW + timedelta(days=1)
        assert history[privacy.ONBOARDING_PURPOSE].withdrawn_at == NOW + timedelta(days=2)
        assert len({h.erasure_id for h in history.values()}) == 1
        assert vault.consents.of("P-0001") == ()
        rows = sqlite3.connect(vault.path).execute("SELECT * FROM consents").fetchall()
        assert "P-0001" not in str(rows) and str(household.device.device_uuid) not in str(rows)


def test_acknowledging_a_notice_drops_its_pseudonyms_for_good(tmp_path: Path) -> None:
    with IdentityVault(tmp_path / "v.sqlite", key_provider(MASTER), clock=lambda: NOW) as vault:
        household = add_household(vault, 1)
        name = vault.pseudonyms.of(household.device.device_uuid, TSO, PURPOSE, "2025-03", **WHO)
        (item,) = privacy.erase_prosumer(vault, "P-0001", privacy.PrivacyConfig(), **WHO)
        vault.erasure.acknowledge(item.notice.notice_id, NOW + timedelta(minutes=1))
        assert vault.erasure.pending(**WHO) == ()
        (record,) = vault.erasure.notices()
        assert record.acknowledged_at == NOW + timedelta(minutes=1) and record.pseudonyms == 2
        assert name.encode() not in Path(vault.path).read_bytes()


def test_in_wal_mode_no_vault_frame_keeps_an_acknowledged_notice_or_erased_row(
        tmp_path: Path) -> None:
    """The sealed notice opens with the master key alone (no data key): once acknowledged, no
    frame of the vault's WAL may still hold it, nor the erased prosumer's sealed rows."""
    with IdentityVault(tmp_path / "v.sqlite", key_provider(MASTER), clock=lambda: NOW,
                       synchronous="normal") as vault:
        add_household(vault, 1)
        add_household(vault, 2)
        db = sqlite3.connect(vault.path)
        (identity,) = db.execute(
            "SELECT sealed FROM prosumers WHERE prosumer_id = 'P-0001'").fetchone()
        (item,) = privacy.erase_prosumer(vault, "P-0001", privacy.PrivacyConfig(), **WHO)
        (notice,) = db.execute("SELECT sealed FROM erasures").fetchone()
        db.close()
        vault.erasure.acknowledge(item.notice.notice_id, NOW + timedelta(minutes=1))
        raw = b"".join(f.read_bytes() for f in tmp_path.glob("v.sqlite*")
                       if not f.name.startswith("v.sqlite.keyring"))
        assert notice[:32] not in raw and identity[:32] not in raw


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
