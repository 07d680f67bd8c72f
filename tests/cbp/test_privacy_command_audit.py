"""The run audit (planted leaks fail and are named, clean folders pass) and the DPIA."""

from __future__ import annotations

from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import IdentityVault
from tests.kit.runs import captured_report
from tests.kit.vaults import Household


def _cli_audit(run_dir: Path, vault: IdentityVault, key_file: Path) -> list[str]:
    return ["privacy", "audit", str(run_dir), "--vault", str(vault.path),
            "--key-file", str(key_file)]  # fmt: skip


def test_clean_folder_passes(
    run_dir: Path, vault: IdentityVault, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_cli_audit(run_dir, vault, key_file)) == 0
    out = capsys.readouterr().out
    assert "files checked: 3" in out and "vault values: 8" in out and "PASS" in out
    assert "EAN shape" in out and "postcode shape" in out


def test_planted_ean_fails_and_is_named(
    run_dir: Path, vault: IdentityVault, household: Household, key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    leaked = run_dir / privacy.CAPTURE_SUBDIR / "0001-oadrUpdateReport.xml"
    leaked.write_bytes(captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", household.prosumer.ean))
    assert main(_cli_audit(run_dir, vault, key_file)) == 1
    out = capsys.readouterr().out
    leak_lines = [line for line in out.splitlines() if line.startswith("LEAK")]
    assert leak_lines and all("0001-oadrUpdateReport.xml" in line for line in leak_lines)
    assert any("vault EAN" in line for line in leak_lines)
    assert any("EAN-shaped" in line for line in leak_lines)
    assert household.prosumer.ean not in out


def test_empty_or_missing_capture_folder_proves_nothing(tmp_path: Path) -> None:
    assert main(["privacy", "audit", str(tmp_path), "--no-vault"]) == 2
    assert not privacy.audit_run(tmp_path).passed


def test_audit_without_a_vault_refuses_unless_told_no_vault(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["privacy", "audit", str(run_dir)]) == 2
    assert "--no-vault" in capsys.readouterr().err
    assert main(["privacy", "audit", str(run_dir), "--no-vault"]) == 0
    assert "vault values: 0" in capsys.readouterr().out


def test_audit_finds_certificate_fingerprints_and_prosumer_ids(
    run_dir: Path, vault: IdentityVault, household: Household, key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD"
    devices = run_dir / "devices.csv"
    devices.write_text("ven_id,device_uuid,prosumer_id,device_class,power_bucket,rated_kw\n"
                       f"{fingerprint},{household.device.device_uuid},"
                       f"{household.prosumer.prosumer_id},EV_CHARGER,11kW+,11\n")
    folder = run_dir / privacy.CAPTURE_SUBDIR
    (folder / "fp.xml").write_bytes(captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa",
                                             fingerprint.replace(":", "").lower()))
    (folder / "pid.xml").write_bytes(captured_report("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa",
                                              household.prosumer.prosumer_id))
    assert main(["privacy", "audit", str(run_dir), "--no-vault", "--devices", str(devices)]) == 1
    leaks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("LEAK")]
    assert any("fp.xml" in line and "fingerprint" in line for line in leaks)
    assert any("pid.xml" in line and "prosumer_id" in line for line in leaks)
    # the vault alone knows prosumer ids too
    assert main(_cli_audit(run_dir, vault, key_file)) == 1
    assert "pid.xml" in capsys.readouterr().out


def test_dpia_uses_configuration_and_escapes_html(tmp_path: Path) -> None:
    config = tmp_path / "crowdflex.toml"
    config.write_text(
        "[privacy]\nk_threshold = 25\nraw_retention_days = 60\n"
        '[[privacy.recipients]]\nname = "TSO:<b>TENNET</b>-NL"\n'
        'purposes = ["balancing-validation", "gcp"]\n'
    )
    out = tmp_path / "dpia"
    assert main(["privacy", "dpia", "--config", str(config), "--out", str(out)]) == 0
    markdown = (out / "dpia.md").read_text()
    page = (out / "dpia.html").read_text()
    for text in (markdown, page):
        assert "k-threshold (smallest group reported separately): 25" in text
        assert "raw device telemetry at the aggregator: 60 days" in text
        assert "Art. 6(1)" in text and "balancing-validation" in text
    assert "<b>TENNET" not in page and "&lt;b&gt;TENNET" in page
    assert "| Data |" in markdown


def test_dpia_refuses_a_purpose_without_legal_basis(tmp_path: Path) -> None:
    config = tmp_path / "crowdflex.toml"
    config.write_text('[[privacy.recipients]]\nname = "X"\npurposes = ["profiling"]\n')
    assert main(["privacy", "dpia", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "dpia.md").exists()
    with pytest.raises(privacy.PrivacyConfigError, match="legal basis"):
        privacy.load_config(config)
