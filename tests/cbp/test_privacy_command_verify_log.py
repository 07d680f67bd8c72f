"""Re-identification is always audited: every identity path writes a chained entry with who, why
and what (no clear identifiers); the verifier names the first broken entry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import IdentityVault
from tests.kit.vaults import Household


@pytest.mark.parametrize(("tamper", "broken"), [
    ("UPDATE audit_log SET reason = 'routine' WHERE entry = 2", 2),
    ("UPDATE audit_log SET requested_by = 'someone else' WHERE entry = 3", 3),
    ("DELETE FROM audit_log WHERE entry = 2", 3),
    ("UPDATE audit_log SET chain = (SELECT chain FROM audit_log WHERE entry = 1) "
     "WHERE entry = 4", 4),
])
def test_a_tampered_chain_is_detected_and_its_first_broken_entry_named(
    vault: IdentityVault, household: Household, tmp_path: Path, tamper: str, broken: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for n in range(5):
        vault.devices.get(household.device.device_uuid, requested_by="desk", reason=f"case {n}")
    assert vault.audit.verify().intact and vault.audit.verify().entries == 5
    key_file = tmp_path / "keys"
    key_file.write_text(f"1:{bytes(range(32)).hex()}\n")
    command = ["privacy", "verify-log", "--vault", str(vault.path), "--key-file", str(key_file)]
    assert main(command) == 0
    db = sqlite3.connect(vault.path)
    with db:
        db.execute(tamper)
    db.close()
    check = vault.audit.verify()
    assert check.first_broken == broken and not check.intact
    capsys.readouterr()
    assert main(command) == 1
    assert f"BROKEN at entry {broken}" in capsys.readouterr().out


def test_without_a_key_file_the_keys_come_from_the_environment_variable(
    vault: IdentityVault, household: Household, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vault.devices.get(household.device.device_uuid, requested_by="desk", reason="dispute 1")
    command = ["privacy", "verify-log", "--vault", str(vault.path)]
    monkeypatch.delenv(privacy.DEFAULT_KEY_ENV, raising=False)
    assert main(command) == 2
    assert f"environment variable {privacy.DEFAULT_KEY_ENV} is not set" in capsys.readouterr().err
    monkeypatch.setenv(privacy.DEFAULT_KEY_ENV, f"1:{bytes(range(32)).hex()}")
    assert main(command) == 0
    assert "1 entries checked" in capsys.readouterr().out
    monkeypatch.setenv(privacy.DEFAULT_KEY_ENV, f"1:{bytes(range(1, 33)).hex()}")  # another key
    assert main(command) != 0


def test_without_a_key_file_the_keys_come_from_the_environment(
    vault: IdentityVault, household: Household, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README: the privacy commands take --key-file, "or without it read the keys from the
    CROWDFLEX_PSEUDONYM_KEYS environment variable (--key-env names another)"."""
    vault.devices.get(household.device.device_uuid, requested_by="desk", reason="case 1")
    command = ["privacy", "verify-log", "--vault", str(vault.path)]
    keys = f"1:{bytes(range(32)).hex()}"
    monkeypatch.delenv("CROWDFLEX_PSEUDONYM_KEYS", raising=False)
    assert main(command) == 2  # no key anywhere: refused, saying which variable
    assert "CROWDFLEX_PSEUDONYM_KEYS" in capsys.readouterr().err
    monkeypatch.setenv("CROWDFLEX_PSEUDONYM_KEYS", keys)
    assert main(command) == 0
    monkeypatch.delenv("CROWDFLEX_PSEUDONYM_KEYS")
    monkeypatch.setenv("VAULT_KEYS", keys)
    assert main([*command, "--key-env", "VAULT_KEYS"]) == 0
    monkeypatch.setenv("VAULT_KEYS", f"1:{bytes(range(1, 33)).hex()}")  # another master key
    assert main([*command, "--key-env", "VAULT_KEYS"]) != 0
