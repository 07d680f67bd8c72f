"""The privacy report states only what runs: each setting it prints comes from the settings the
nodes read, and the statements that promise behaviour are held against the code here and in
``tests/cbp/test_roles_retention.py`` (retention ages, per-device rows, raw data keys)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import privacy
from cbp.cli import main
from privacy import MeteringScope, PrivacyConfig, Recipient, render_markdown

from .conftest import add_household, key_provider


@pytest.mark.parametrize(("change", "text"), [
    (dict(k_threshold=23), "k-threshold (smallest group reported separately): 23"),
    (dict(raw_retention=timedelta(days=61)), "raw device telemetry at the aggregator: 61 days"),
    (dict(tso_device_retention=timedelta(days=45)), "per-device rows at the TSO: 45 days"),
    (dict(capture_retention=timedelta(days=9)), "captured aggregator->TSO messages: 9 days"),
    (dict(month_timezone="Europe/Brussels"), "pseudonym month calendar: Europe/Brussels"),
    (dict(recipients=(Recipient(name="TSO:ELIA-BE", purposes=("balancing-validation",)),)),
     "TSO:ELIA-BE"),
])  # fmt: skip
def test_every_setting_is_printed_as_the_nodes_read_it(change: dict[str, object],
                                                        text: str) -> None:
    default = render_markdown(PrivacyConfig())
    changed = render_markdown(replace(PrivacyConfig(), **change))  # type: ignore[arg-type]
    assert text in changed and text not in default


def test_the_metering_scope_is_printed_from_the_profile() -> None:
    scope = MeteringScope(sample_period=timedelta(seconds=2), before=timedelta(seconds=60),
                          after=timedelta(seconds=30), tracking_lag=timedelta(seconds=4),
                          share_step=Decimal("0.05"))
    text = render_markdown(PrivacyConfig(), scope)
    assert ("2-s samples as shares of the device's rated power in steps of 0.05, from 60 s "
            "before an activation to 30 s after it") in text
    # (60 + 900 + 4 + 30) / 2 samples for a 15-minute activation
    assert f"{scope.samples_per_device(timedelta(minutes=15))} samples" in text
    assert scope.samples_per_device(timedelta(minutes=15)) == 497


def test_each_purpose_has_exactly_one_legal_basis() -> None:
    bases = PrivacyConfig().legal_basis
    assert all(text.count("6(1)(") == 1 for text in bases.values())
    text = render_markdown(PrivacyConfig())
    for purpose, basis in bases.items():
        assert f"| {purpose} |" in text and basis in text
    two = dict(bases) | {"balancing-validation": "Art. 6(1)(a) consent and Art. 6(1)(c) law"}
    with pytest.raises(privacy.PrivacyConfigError, match="exactly one legal basis"):
        PrivacyConfig(legal_basis=two)  # type: ignore[arg-type]


def test_the_master_key_is_never_in_the_vault_file(tmp_path: Path) -> None:
    secret = bytes(range(100, 132))
    path = tmp_path / "vault.sqlite"
    with privacy.IdentityVault(path, key_provider(secret)) as vault:
        household = add_household(vault, 1)
        vault.pseudonym_of(household.device.device_uuid, "TSO:TENNET-NL", "gcp", "2025-03",
                           requested_by="test", reason="the report's claim")
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret not in stored and secret.hex().encode() not in stored


def test_the_report_command_joins_the_nodes_tables_and_refuses_a_disagreement(
        tmp_path: Path) -> None:
    tso, aggregator = tmp_path / "tso.toml", tmp_path / "aggregator.toml"
    tso.write_text("[privacy]\ntso_device_retention_days = 44\n[profile]\nname = 'compressed'\n")
    aggregator.write_text("[privacy]\nraw_retention_days = 55\n")
    out = tmp_path / "report"
    assert main(["privacy", "report", "--config", str(tso), "--config", str(aggregator),
                 "--out", str(out)]) == 0
    text = (out / "privacy-report.md").read_text()
    assert "per-device rows at the TSO: 44 days" in text
    assert "raw device telemetry at the aggregator: 55 days" in text
    assert "from 8 s before an activation" in text  # the compressed profile's window
    aggregator.write_text("[privacy]\ntso_device_retention_days = 45\n")
    assert main(["privacy", "report", "--config", str(tso), "--config", str(aggregator),
                 "--out", str(tmp_path / "again")]) == 2
    assert not (tmp_path / "again").exists()
