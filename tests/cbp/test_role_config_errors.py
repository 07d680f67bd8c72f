"""`crowdflex tso` and `crowdflex device` read their TOML through tomlconfig: a wrong value or an
unknown key stops the command before anything starts, with an error that names the file, the key
and what was expected (examples/*.toml, one change each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbp.cli import main
from tests.kit.examples import EXAMPLES, example_in

TSO_ERRORS = [
    ("activate_awards = true", 'activate_awards = "yes"',
     "operation.activate_awards: expected true or false, got 'yes'"),
    ('name = "compressed"', 'name = "compresed"',
     "profile.name: expected 'standard' or 'compressed', got 'compresed'"),
    ('clearing_price_eur_per_mwh = "212.40"', "clearing_price_eur_per_mwh = 212.40",
     "profile.clearing_price_eur_per_mwh: expected a decimal number as a string"),
    ("capture_dir = ", "capture_dri = ", "unknown key capture_dri"),
    ("tso_device_retention_days = 90", "tso_device_retention_days = 0",
     "privacy.tso_device_retention_days: expected an integer from 1 to 36500, got 0"),
]


@pytest.mark.parametrize(("written", "changed", "says"), TSO_ERRORS, ids=[e[2] for e in TSO_ERRORS])
def test_tso_config_errors_name_the_file_the_key_and_what_is_expected(
        written: str, changed: str, says: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    text = (EXAMPLES / "tso.toml").read_text()
    assert written in text
    path = example_in(tmp_path, "tso.toml", text=text.replace(written, changed, 1))
    state = tmp_path / "state"
    assert main(["tso", "--config", str(path), "--state-dir", str(state)]) == 2
    assert f"crowdflex tso: {path}: {says}" in capsys.readouterr().err
    assert not state.exists()  # refused before anything started


def test_device_config_errors_name_the_file_the_key_and_what_is_expected(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (EXAMPLES / "device.toml").read_text()
    path = example_in(tmp_path, "device.toml",
                      text=text.replace('url = "https://', 'url = "http://', 1))
    assert main(["device", "--config", str(path), "--state-dir", str(tmp_path / "state")]) == 2
    assert (f"crowdflex device: {path}: aggregator.url: expected an https:// URL, got "
            "'http://127.0.0.1:9443'") in capsys.readouterr().err
