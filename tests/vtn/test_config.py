"""TOML configuration and the `crowdflex vtn` command's refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cbp.cli import main
from schemas.identity import TlsProfile
from vtn.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vtn.toml"


def test_example_file_loads(monkeypatch):
    monkeypatch.setenv("CROWDFLEX_ADMIN_TOKEN", "from-the-environment-123")
    config = load_config(EXAMPLE)
    assert config.vtn_id == "CROWDFLEX-VTN"
    assert config.poll_frequency == timedelta(seconds=10)
    assert config.tls_profile is TlsProfile.TLS13
    assert config.tls_ca == (EXAMPLE.parent / "../certs/dev/ca.pem").resolve()
    assert config.storage_url == f"sqlite:///{(EXAMPLE.parent / 'vtn.db').resolve()}"
    assert config.admin_token == "from-the-environment-123"
    assert config.auto_subscribe_reports == ("TELEMETRY_USAGE", "TELEMETRY_STATUS")


def test_keys_and_overrides(tmp_path):
    config = parse_config({"vtn_id": "X", "allowed_fingerprints": ["AA:BB"],
                           "admin": {"token": "t" * 20, "port": 9999},
                           "reports": {"default_granularity_s": 4}}, base=tmp_path)
    assert config.allowed_fingerprints == frozenset({"AA:BB"})
    assert config.admin_port == 9999 and config.admin_token == "t" * 20
    assert config.default_report_granularity == timedelta(seconds=4)


@pytest.mark.parametrize("data", [{"vtn_idd": "typo"}, {"tls": {"cafile": "x"}},
                                  {"admin": {"tokn": "x"}}, {"port": "not-a-port", "bogus": 1}])
def test_unknown_keys_are_errors(data, tmp_path):
    with pytest.raises(ConfigError):
        parse_config(data, base=tmp_path)


def test_cli_refuses_admin_without_token_and_bad_files(tmp_path, capsys):
    path = tmp_path / "vtn.toml"
    path.write_text('vtn_id = "X"\n')
    assert main(["vtn", "--config", str(path)]) == 2
    assert "token" in capsys.readouterr().err
    path.write_text("vtn_id = = broken\n")
    assert main(["vtn", "--config", str(path)]) == 2
    assert main(["vtn", "--config", str(tmp_path / "missing.toml")]) == 2
