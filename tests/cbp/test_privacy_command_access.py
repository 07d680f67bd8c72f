"""A data subject's access request: `crowdflex privacy access` prints what the vault holds on the
prosumer and, per recipient, every pseudonym that recipient may hold their data under (every
month since onboarding, configured and used scopes), and the audit log records who asked and why
without a clear identifier."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import FileKeyProvider, IdentityVault
from privacy.keys import new_key_line
from tests.kit.vaults import WHO, add_household

ONBOARDED = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
TSO = "TSO:TENNET-NL"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    key_file = tmp_path / "vault.key"
    key_file.write_text(new_key_line(1))
    return tmp_path / "vault.db", key_file


def test_access_prints_the_vault_record_and_every_pseudonym_per_recipient(
        files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, key_file = files
    at = ONBOARDED
    with IdentityVault(path, FileKeyProvider(key_file), clock=lambda: at) as vault:
        one, other = add_household(vault, 1), add_household(vault, 2)
        # a scope outside the configured ones, used once: its recipient is listed too
        dso = vault.pseudonyms.of(one.device.device_uuid, "DSO:STEDIN", "congestion", "2025-12",
                                  **WHO)
        expected = {
            (TSO, purpose, month): vault.pseudonyms.of(one.device.device_uuid, TSO, purpose,
                                                       month, **WHO)
            for purpose in ("balancing-validation", privacy.GCP_PURPOSE)
            for month in ("2025-11", "2025-12", "2026-01")}
        neighbour = vault.pseudonyms.of(other.device.device_uuid, TSO, "balancing-validation",
                                        "2025-12", **WHO)
        entries = len(vault.audit.entries())
    capsys.readouterr()
    code = main(["privacy", "access", "--vault", str(path), "--key-file", str(key_file),
                 "--prosumer", one.prosumer.prosumer_id, "--reason", "request A-7"])
    out = capsys.readouterr().out
    assert code == 0, out
    p, d = one.prosumer, one.device
    for value in (p.name, p.postcode, p.ean, p.contract_id, str(d.device_uuid), d.serial):
        assert value in out
    assert "consent flexibility-service: given 2025-11-20T12:00:00+00:00, live" in out
    assert f"{TSO} holds no identity" in out and "DSO:STEDIN holds no identity" in out
    listed = {line.split()[-1] for line in out.splitlines() if line.startswith("  ")}
    # the months run from onboarding to today (NOW is past 2026-01), so these are all in it
    assert set(expected.values()) | {dso} <= listed
    assert neighbour not in listed and other.prosumer.name not in out
    assert d.salt.hex() not in out and p.gcp_salt.hex() not in out

    with IdentityVault(path, FileKeyProvider(key_file), clock=lambda: NOW) as vault:
        added = vault.audit.entries()[entries:]
        assert vault.audit.verify().intact
    assert {e.action for e in added} == {"prosumer", "devices", "issued_pseudonyms"}
    assert all(e.reason == "request A-7" and e.requested_by.startswith("cli:") for e in added)
    logged = repr([e.detail for e in added])
    assert p.prosumer_id not in logged and str(d.device_uuid) not in logged
    assert not any(name in logged for name in listed)


def test_access_refuses_without_a_reason_and_for_an_unknown_prosumer(
        files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, key_file = files
    with IdentityVault(path, FileKeyProvider(key_file)) as vault:
        add_household(vault, 1)
    with pytest.raises(SystemExit) as exited:
        main(["privacy", "access", "--vault", str(path), "--key-file", str(key_file),
              "--prosumer", "P-0001"])
    assert exited.value.code == 2
    capsys.readouterr()
    assert main(["privacy", "access", "--vault", str(path), "--key-file", str(key_file),
                 "--prosumer", "P-9999", "--reason", "request A-8"]) == 2
    assert "no prosumer 'P-9999'" in capsys.readouterr().err


def test_withdraw_records_the_withdrawal_and_refuses_what_it_cannot_do(
        files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, key_file = files
    with IdentityVault(path, FileKeyProvider(key_file)) as vault:
        household = add_household(vault, 1)
    command = ["privacy", "withdraw", "--vault", str(path), "--key-file", str(key_file),
               "--purpose", "balancing-validation", "--prosumer"]
    assert main([*command, "P-0001"]) == 0
    assert "withdrawn" in capsys.readouterr().out
    with IdentityVault(path, FileKeyProvider(key_file)) as vault:  # read from the file
        with pytest.raises(privacy.ConsentMissing):
            vault.consents.require(household.device.device_uuid, "balancing-validation")
        vault.consents.require(household.device.device_uuid, privacy.ONBOARDING_PURPOSE)
        (gone,) = [c for c in vault.consents.of("P-0001") if c.purpose == "balancing-validation"]
        assert gone.withdrawn_at is not None
    assert main([*command, "P-0001"]) == 2  # nothing live any more: said, not silently "done"
    assert "no live consent" in capsys.readouterr().err
    assert main([*command, "P-9999"]) == 2
    assert "no prosumer 'P-9999'" in capsys.readouterr().err
    report = privacy.render_markdown(privacy.PrivacyConfig())
    assert "`crowdflex privacy withdraw --vault FILE --prosumer ID --purpose PURPOSE`" in report
