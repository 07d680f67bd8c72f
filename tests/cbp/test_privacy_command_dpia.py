"""The DPIA states only what runs: each setting it prints comes from the settings the
nodes read, and the statements that promise behaviour are held against the code here and in
``tests/cbp/test_roles_retention.py`` (retention ages, per-device rows, raw data keys)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import PrivacyConfig, render_markdown
from privacy.keys import new_key_line
from tests.kit.vaults import add_household


def test_the_dpia_command_joins_the_nodes_tables_and_refuses_a_disagreement(
        tmp_path: Path) -> None:
    tso, aggregator = tmp_path / "tso.toml", tmp_path / "aggregator.toml"
    tso.write_text("[privacy]\ntso_device_retention_days = 44\n[profile]\nname = 'compressed'\n")
    aggregator.write_text("[privacy]\nraw_retention_days = 55\n")
    out = tmp_path / "dpia"
    assert main(["privacy", "dpia", "--config", str(tso), "--config", str(aggregator),
                 "--out", str(out)]) == 0
    text = (out / "dpia.md").read_text()
    assert "per-device rows at the TSO: 44 days" in text
    assert "raw device telemetry at the aggregator: 55 days" in text
    assert "from 8 s before an activation" in text  # the compressed timing's window
    aggregator.write_text("[privacy]\ntso_device_retention_days = 45\n")
    assert main(["privacy", "dpia", "--config", str(tso), "--config", str(aggregator),
                 "--out", str(tmp_path / "again")]) == 2
    assert not (tmp_path / "again").exists()


def test_the_keyring_is_a_store_of_its_own_and_erase_warns_about_its_copies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The threat (a keyring copy older than an erasure undoes it) is in the DPIA's retention
    table and in what `crowdflex privacy erase` prints; and it is real: such a copy, with the
    master key and a vault copy, gives the erased household back."""
    (row,) = [e for e in privacy.retention_schedule(PrivacyConfig())
              if e.store is privacy.Store.KEYRING]
    assert "never in data backups" in row.kept and row.age is None
    assert "| vault keyring |" in render_markdown(PrivacyConfig())
    key_file, path = tmp_path / "vault.key", tmp_path / "vault.db"
    key_file.write_text(new_key_line(1))
    with privacy.IdentityVault(path, privacy.FileKeyProvider(key_file)) as vault:
        household = add_household(vault, 1)
        keyring = vault.keyring_path
    shutil.copyfile(path, tmp_path / "vault-copy.db")
    shutil.copyfile(keyring, tmp_path / "keyring-copy")
    capsys.readouterr()
    assert main(["privacy", "erase", "--vault", str(path), "--key-file", str(key_file),
                 "--prosumer", household.prosumer.prosumer_id, "--reason", "request E-1"]) == 0
    out = capsys.readouterr().out
    assert f"any copy of the keyring {keyring} taken before now still holds" in out
    with privacy.IdentityVault(tmp_path / "vault-copy.db", privacy.FileKeyProvider(key_file),
                               keyring=tmp_path / "keyring-copy") as old:
        back = old.prosumers.get(household.prosumer.prosumer_id, requested_by="test",
                                 reason="the threat is real")
    assert back.name == household.prosumer.name
