"""TOML configuration and the `crowdflex vtn` command's refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cbp.cli import main
from schemas.identity import TlsProfile
from vtn.app import CODEC, create_app
from vtn.config import ConfigError, load_config, parse_config
from vtn.signing import SignatureSettings

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
    assert (config.retry_after_s, config.max_in_flight) == (10, 1024)
    assert config.keepalive_timeout_s == 75
    assert config.signatures == SignatureSettings()  # the [signatures] block is commented out


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


def test_signatures_table_becomes_signature_settings(tmp_path):
    config = parse_config({"signatures": {
        "trusted": ["certs/ca.pem", "/abs/ven.pem"], "require": True, "sign_replies": True,
        "bind_to_peer": False, "replay_window_s": 120, "max_future_s": 5.5}}, base=tmp_path)
    settings = config.signatures
    assert settings.trusted == ((tmp_path / "certs/ca.pem").resolve(), Path("/abs/ven.pem"))
    assert settings.require and settings.sign_replies and not settings.bind_to_peer
    assert settings.replay_window == timedelta(seconds=120)
    assert settings.replay_max_future == timedelta(seconds=5.5)
    assert parse_config({}, base=tmp_path).signatures == SignatureSettings()


@pytest.mark.parametrize("table", [
    {"require": True},                                   # nothing to verify signatures with
    {"trusted": "ca.pem"},                               # a string, not a list
    {"trusted": ["ca.pem"], "require": "yes"},
    {"trusted": ["ca.pem"], "replay_window_s": 0},
    {"trusted": ["ca.pem"], "max_future_s": True},
    {"trusted": ["ca.pem"], "replay_windw_s": 60},       # typo
])
def test_bad_signatures_tables_are_refused(table, tmp_path):
    with pytest.raises(ConfigError, match="signatures"):
        parse_config({"signatures": table}, base=tmp_path)


def test_signatures_from_toml_reach_the_vtn_codec(pki, tmp_path):
    config = parse_config({"tls": {"cert": str(pki.vtn.cert), "key": str(pki.vtn.key)},
                           "signatures": {"trusted": [str(pki.ca_cert)], "require": True,
                                          "sign_replies": True}}, base=tmp_path)
    codec = create_app(config)[CODEC]
    assert codec.verifier is not None and codec.signer is not None and codec.require_signature


def test_limit_fault_and_connection_keys_load(tmp_path):
    config = parse_config({"retry_after_s": 3, "rate_limit_per_s": 2.5, "rate_limit_burst": 7,
                           "max_in_flight": 50, "keepalive_timeout_s": 20.0,
                           "max_line_size": 4096, "max_field_size": 2048, "max_headers": 40},
                          base=tmp_path)
    assert (config.retry_after_s, config.rate_limit_per_s, config.rate_limit_burst,
            config.max_in_flight) == (3, 2.5, 7, 50)
    assert (config.keepalive_timeout_s, config.max_line_size, config.max_field_size,
            config.max_headers) == (20.0, 4096, 2048, 40)


@pytest.mark.parametrize("data", [{"keepalive_timeout_s": 0}, {"max_line_size": -1},
                                  {"max_headers": "many"}])
def test_nonsense_connection_limits_are_refused(data, tmp_path):
    with pytest.raises(ConfigError):
        parse_config(data, base=tmp_path)


def test_example_signatures_block_loads_when_uncommented(monkeypatch, tmp_path):
    """The commented [signatures] block in examples/vtn.toml is valid once uncommented."""
    text = EXAMPLE.read_text()
    start = text.index("# [signatures]")
    end = text.index("[admin]", start)
    block = [line.removeprefix("# ") for line in text[start:end].splitlines()
             if line.startswith("# [signatures]") or "=" in line]
    uncommented = text[:start] + "\n".join(block) + "\n\n" + text[end:]
    path = tmp_path / "vtn.toml"
    path.write_text(uncommented)
    monkeypatch.setenv("CROWDFLEX_ADMIN_TOKEN", "from-the-environment-123")
    settings = load_config(path).signatures
    assert settings.require and settings.sign_replies and settings.bind_to_peer
    assert settings.trusted == ((tmp_path / "../certs/dev/ca.pem").resolve(),)
    assert settings.replay_window == timedelta(seconds=300)
