"""The DPIA states only what runs: each setting it prints comes from the settings the
nodes read, and the statements that promise behaviour are held against the code here and in
``tests/cbp/test_roles_retention.py`` (retention ages, per-device rows, raw data keys)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import privacy
from privacy import MeteringScope, PrivacyConfig, Recipient, render_markdown
from tests.kit.vaults import add_household, key_provider


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
        vault.pseudonyms.of(household.device.device_uuid, "TSO:TENNET-NL", "gcp", "2025-03",
                            requested_by="test", reason="the DPIA's claim")
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret not in stored and secret.hex().encode() not in stored
    # "the households' data keys (wrapped, in the keyring file)": a file of its own
    keyring = sqlite3.connect(tmp_path / "vault.sqlite.keyring")
    assert keyring.execute("SELECT count(*) FROM data_keys").fetchone()[0] == 1
    keyring.close()
    assert "data_keys" not in str(sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master").fetchall())
    assert "households' data keys (wrapped, in the keyring file)" in render_markdown(
        PrivacyConfig())


def test_the_report_holds_the_rights_flows_and_the_risk_table() -> None:
    config = PrivacyConfig(k_threshold=17, month_timezone="Europe/Brussels",
                           recipients=(Recipient(name="TSO:ELIA-BE",
                                                 purposes=("balancing-validation",)),))
    scope = MeteringScope(before=timedelta(seconds=60), after=timedelta(seconds=30))
    sections = {s.title: s for s in privacy.dpia_sections(config, scope)}
    rights = " ".join(sections["Data-subject rights"].items)
    assert "crowdflex privacy access --vault FILE --prosumer ID --reason TEXT" in rights
    assert "recipient (TSO:ELIA-BE)" in rights and "crowdflex privacy erasures" in rights
    table = sections["Risks"].table
    assert table is not None
    assert table.columns == ("Risk", "Likelihood", "Severity", "Mitigation", "Residual")
    risks = [row[0] for row in table.rows]
    for topic in ("by load curve", "by order", "by attribute combination",
                  "Elimination after erasure", "Insider at the aggregator", "Key compromise",
                  "taken before an erasure"):
        assert sum(topic in r for r in risks) == 1, topic
    text = render_markdown(config, scope)
    assert "shared by at least k = 17 devices" in text and "(Europe/Brussels)" in text
    assert "only from 60 s before to 30 s after an activation" in text
    assert all(level in ("low", "medium", "high") for row in table.rows for level in row[1:3])


def test_the_vault_row_of_the_data_flows_says_what_is_encrypted_and_what_is_not(
        tmp_path: Path) -> None:
    path = tmp_path / "vault.sqlite"
    with privacy.IdentityVault(path, key_provider(bytes(range(32)))) as vault:
        household = add_household(vault, 1)
    raw = path.read_bytes()
    p, d = household.prosumer, household.device
    for secret in (p.name, p.postcode, p.ean, p.contract_id, d.serial, d.salt.hex()):
        assert secret.encode() not in raw, secret
    assert d.salt not in raw and p.gcp_salt not in raw
    for clear in (str(d.device_uuid), p.prosumer_id, "balancing-validation"):
        assert clear.encode() in raw, clear
    (row,) = [r for r in privacy.data_flows(PrivacyConfig()).rows if "vault" in r[1]]
    assert "device_uuid, prosumer id and consent records in clear" in row[1]
