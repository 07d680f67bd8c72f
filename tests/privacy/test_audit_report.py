"""The run audit (planted leaks fail and are named, clean folders pass) and the data-flow report."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import privacy
import schemas
from cbp.cli import main
from privacy import IdentityVault
from schemas import Report, ReportInterval, ReportPayload, UpdateReport

from .conftest import WHO, Household

AT = datetime(2025, 3, 14, 14, 3, tzinfo=UTC)


def _message(rid: str, request_id: str = "req-1") -> bytes:
    report = Report(
        report_request_id="rr-1", report_specifier_id="TELEMETRY", created_date_time=AT,
        report_name="TELEMETRY_USAGE",
        intervals=(ReportInterval(dtstart=AT, duration=timedelta(seconds=4),
                                  payloads=(ReportPayload(r_id=rid, value=7.5),)),),
    )  # fmt: skip
    return schemas.encode(UpdateReport(request_id=request_id, reports=(report,), ven_id="AGG"))


@pytest.fixture
def run_dir(tmp_path: Path, vault: IdentityVault, household: Household) -> Path:
    captures = tmp_path / "run" / privacy.CAPTURE_SUBDIR
    captures.mkdir(parents=True)
    psn = vault.pseudonym_of(household.device.device_uuid, "TSO:TENNET-NL", "gcp", "2025-03", **WHO)
    for n in range(3):
        (captures / f"{n:04d}-oadrUpdateReport.xml").write_bytes(_message(psn, f"req-{n}"))
    return tmp_path / "run"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(f"1:{bytes(range(32)).hex()}\n")
    return path


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
    leaked.write_bytes(_message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", household.prosumer.ean))
    assert main(_cli_audit(run_dir, vault, key_file)) == 1
    out = capsys.readouterr().out
    leak_lines = [line for line in out.splitlines() if line.startswith("LEAK")]
    assert leak_lines and all("0001-oadrUpdateReport.xml" in line for line in leak_lines)
    assert any("vault EAN" in line for line in leak_lines)
    assert any("EAN-shaped" in line for line in leak_lines)
    assert household.prosumer.ean not in out


def test_without_vault_the_shapes_still_catch_an_ean(run_dir: Path) -> None:
    leaked = run_dir / privacy.CAPTURE_SUBDIR / "0002-oadrUpdateReport.xml"
    leaked.write_bytes(_message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", "871687120000012345"))
    result = privacy.audit_run(run_dir)
    assert not result.passed
    assert [f.where for f in result.findings] == [str(leaked.relative_to(run_dir))]


def test_hidden_and_hashed_values_are_found(
    run_dir: Path, vault: IdentityVault, household: Household
) -> None:
    folder = run_dir / privacy.CAPTURE_SUBDIR
    uuid = household.device.device_uuid
    # digits written as character references still decode to the EAN
    escaped = "".join(f"&#{ord(c)};" for c in household.prosumer.ean)
    (folder / "a.xml").write_bytes(
        _message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(b"req-1", escaped.encode())
    )
    (folder / "b.xml").write_bytes(_message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", f"urn:uuid:{uuid}"))
    md5 = hashlib.md5(household.device.serial.encode()).hexdigest()
    (folder / "c.xml").write_bytes(_message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa", md5))
    result = privacy.audit_run(run_dir, vault.identity_values(**WHO))
    by_file: dict[str, str] = {}
    for f in result.findings:
        by_file[f.where.rsplit("/", 1)[-1]] = by_file.get(f.where.rsplit("/", 1)[-1], "") + f.what
    assert "vault EAN" in by_file["a.xml"]
    assert "device_uuid" in by_file["b.xml"]
    assert "unkeyed md5 of vault serial" in by_file["c.xml"]


def test_an_attribute_value_is_searched_as_the_parser_reads_it(
    run_dir: Path, vault: IdentityVault, household: Household
) -> None:
    """Tried: the postcode split by a newline inside an attribute, in a plain ASCII file (whose
    text nodes the raw search covers). The parser reads the newline as a space, so the vault
    postcode is found; the same with the outbound filter's detector passed in."""
    folder = run_dir / privacy.CAPTURE_SUBDIR
    number, letters = household.prosumer.postcode.split(" ")
    message = _message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(
        b"<oadr:oadrUpdateReport", f'<oadr:oadrUpdateReport x="{number}\n{letters}"'.encode(), 1)
    assert message.isascii() and b"&" not in message and f"{number}\n".encode() in message
    (folder / "d.xml").write_bytes(message)
    outbound = privacy.OutboundFilter(privacy.OutboundPolicy(pool_ids=()), vault=vault)
    for result in (privacy.audit_run(run_dir, vault.identity_values(**WHO)),
                   privacy.audit_run(run_dir, detector=outbound.current_detector())):
        assert [f.where.rsplit("/", 1)[-1] for f in result.findings
                if "vault postcode" in f.what] == ["d.xml"]


def test_values_in_comments_processing_instructions_and_names_are_found(
    run_dir: Path, vault: IdentityVault, household: Household
) -> None:
    """Tried: the EAN in a comment before the root element, as a processing instruction's target
    after it, as the name of an attribute and in an unused namespace declared inside: each file
    is named."""
    folder = run_dir / privacy.CAPTURE_SUBDIR
    ean = household.prosumer.ean
    body = _message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa")
    root_at = body.index(b"<oadr:")
    (folder / "e.xml").write_bytes(body[:root_at] + f"<!-- {ean} -->".encode() + body[root_at:])
    (folder / "f.xml").write_bytes(body + f"<?x{ean} y?>".encode())
    (folder / "g.xml").write_bytes(body.replace(
        b"<oadr:oadrPayload", f'<oadr:oadrPayload e{ean}="1"'.encode(), 1))
    (folder / "h.xml").write_bytes(body.replace(
        b"<oadr:oadrPayload", f'<oadr:oadrPayload xmlns:z="urn:{ean}"'.encode(), 1))
    result = privacy.audit_run(run_dir, vault.identity_values(**WHO))
    named = {f.where.rsplit("/", 1)[-1] for f in result.findings if "vault EAN" in f.what}
    assert named == {"e.xml", "f.xml", "g.xml", "h.xml"}


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
    (folder / "fp.xml").write_bytes(_message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa",
                                             fingerprint.replace(":", "").lower()))
    (folder / "pid.xml").write_bytes(_message("psn1_aaaaaaaaaaaaaaaaaaaaaaaaaa",
                                              household.prosumer.prosumer_id))
    assert main(["privacy", "audit", str(run_dir), "--no-vault", "--devices", str(devices)]) == 1
    leaks = [line for line in capsys.readouterr().out.splitlines() if line.startswith("LEAK")]
    assert any("fp.xml" in line and "fingerprint" in line for line in leaks)
    assert any("pid.xml" in line and "prosumer_id" in line for line in leaks)
    # the vault alone knows prosumer ids too
    assert main(_cli_audit(run_dir, vault, key_file)) == 1
    assert "pid.xml" in capsys.readouterr().out


def test_report_uses_configuration_and_escapes_html(tmp_path: Path) -> None:
    config = tmp_path / "crowdflex.toml"
    config.write_text(
        "[privacy]\nk_threshold = 25\nraw_retention_days = 60\n"
        '[[privacy.recipients]]\nname = "TSO:<b>TENNET</b>-NL"\n'
        'purposes = ["balancing-validation", "gcp"]\n'
    )
    out = tmp_path / "report"
    assert main(["privacy", "report", "--config", str(config), "--out", str(out)]) == 0
    markdown = (out / "privacy-report.md").read_text()
    page = (out / "privacy-report.html").read_text()
    for text in (markdown, page):
        assert "k-threshold (smallest group reported separately): 25" in text
        assert "raw device telemetry at the aggregator: 60 days" in text
        assert "Art. 6(1)" in text and "balancing-validation" in text
    assert "<b>TENNET" not in page and "&lt;b&gt;TENNET" in page
    assert "| Data |" in markdown


def test_report_refuses_a_purpose_without_legal_basis(tmp_path: Path) -> None:
    config = tmp_path / "crowdflex.toml"
    config.write_text('[[privacy.recipients]]\nname = "X"\npurposes = ["profiling"]\n')
    assert main(["privacy", "report", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "privacy-report.md").exists()
    with pytest.raises(privacy.PrivacyConfigError, match="legal basis"):
        privacy.load_config(config)
