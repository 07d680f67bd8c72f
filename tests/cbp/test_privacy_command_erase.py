"""Erasure by crypto-shredding: every pseudonym ever issued is listed first, the data key is
destroyed, a copy of the vault file taken before is useless, consent history stays minimal."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cbp.cli import main
from privacy import IdentityVault, RawSample, SqliteRawDataStore
from tests.kit.vaults import WHO, add_household, key_provider

MASTER = bytes(range(32))
TSO = "TSO:TENNET-NL"


def test_cli_erase_queues_one_notice_per_recipient_for_the_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with IdentityVault(tmp_path / "v.sqlite", key_provider(MASTER)) as vault:
        household, other = add_household(vault, 1), add_household(vault, 2)
        path, keyring = vault.path, vault.keyring_path
    raw = tmp_path / "raw.sqlite"
    with SqliteRawDataStore(raw) as store:
        store.add(RawSample(device_uuid=h.device.device_uuid, at=datetime(2025, 3, 1, tzinfo=UTC),
                            kw=Decimal("7.5")) for h in (household, other))  # fmt: skip
    key_file = tmp_path / "keys"
    key_file.write_text(f"1:{MASTER.hex()}\n")
    config = tmp_path / "crowdflex.toml"
    config.write_text(
        "[privacy]\n"
        '[[privacy.recipients]]\nname = "TSO:TENNET-NL"\npurposes = ["balancing-validation"]\n'
        '[[privacy.recipients]]\nname = "DSO:STEDIN"\npurposes = ["congestion"]\n'
        '[privacy.legal_basis]\ncongestion = "Art. 6(1)(e) GDPR"\n'
    )
    erase = ["privacy", "erase", "--vault", str(path), "--prosumer", "P-0001",
             "--key-file", str(key_file), "--config", str(config), "--reason", "request R-1",
             "--raw-store", str(raw)]
    assert main(erase) == 0
    out = capsys.readouterr().out
    # README: "--raw-store FILE deletes their raw samples from that store"
    with SqliteRawDataStore(raw) as store:
        assert store.count() == 1
        assert store.samples(other.device.device_uuid, datetime(2025, 3, 1, tzinfo=UTC),
                             datetime(2025, 3, 2, tzinfo=UTC))
    # README: an old copy of the keyring would undo erasures, "erase says so each time"
    assert f"any copy of the keyring {keyring} taken before now still holds the destroyed key" \
        in out
    assert out.count("pending until the recipient acknowledges") == 2
    assert str(household.device.device_uuid) not in out
    assert list(tmp_path.glob("*.json")) == []  # nothing is left for a human to carry
    with IdentityVault(path, key_provider(MASTER)) as vault:
        pending = vault.erasure.pending(**WHO)
        assert {p.notice.recipient for p in pending} == {TSO, "DSO:STEDIN"}
        assert [e.reason for e in vault.audit.entries() if e.action == "erase"] == ["request R-1"]
    assert main(["privacy", "erasures", "--vault", str(path), "--key-file", str(key_file)]) == 0
    assert capsys.readouterr().out.count("pending") == 2
    assert main(erase) == 2  # already erased
