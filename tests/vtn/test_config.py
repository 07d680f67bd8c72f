"""TOML configuration and the `crowdflex vtn` command's refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.identity import TlsProfile
from tests.kit.examples import EXAMPLES, example_in
from vtn.app import CODEC, create_app
from vtn.config import ConfigError, load_config, parse_config
from vtn.signing import SignatureSettings


def test_example_file_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("CROWDFLEX_ADMIN_TOKEN", "from-the-environment-123")
    example = example_in(tmp_path, "vtn.toml")
    config = load_config(example)
    assert config.vtn_id == "CROWDFLEX-VTN"
    assert config.poll_frequency == timedelta(seconds=10)
    assert config.tls_profile is TlsProfile.TLS13
    assert config.tls_ca == tmp_path / "certs/dev/ca.pem"
    assert config.storage_url == f"sqlite:///{example.parent / 'vtn.db'}"
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


def test_signatures_table_becomes_signature_settings(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs/ca.pem").write_text("")
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_text("")
    config = parse_config({"signatures": {
        "trusted": ["certs/ca.pem", str(elsewhere)], "require": True, "sign_replies": True,
        "bind_to_peer": False, "replay_window_s": 120, "max_future_s": 5.5}}, base=tmp_path)
    settings = config.signatures
    assert settings.trusted == ((tmp_path / "certs/ca.pem").resolve(), elsewhere)
    assert settings.require and settings.sign_replies and not settings.bind_to_peer
    assert settings.replay_window == timedelta(seconds=120)
    assert settings.replay_max_future == timedelta(seconds=5.5)
    assert parse_config({}, base=tmp_path).signatures == SignatureSettings()


@pytest.mark.parametrize(("table", "key"), [
    ({"require": True}, "require"),                      # nothing to verify signatures with
    ({"trusted": "ca.pem"}, "trusted"),                  # a string, not a list
    ({"trusted": ["missing.pem"]}, "trusted"),           # no such file
    ({"trusted": ["ca.pem"], "require": "yes"}, "require"),
    ({"trusted": ["ca.pem"], "replay_window_s": 0}, "replay_window_s"),
    ({"trusted": ["ca.pem"], "max_future_s": True}, "max_future_s"),
    ({"trusted": ["ca.pem"], "replay_windw_s": 60}, "replay_windw_s"),     # typo
])
def test_bad_signatures_tables_are_refused(table, key, tmp_path):
    (tmp_path / "ca.pem").write_text("")
    with pytest.raises(ConfigError, match=f"signatures.{key}"):
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
                           "max_line_size": 4096, "max_field_size": 2048, "max_headers": 40,
                           "database_lock_timeout_s": 0.5, "database_statement_timeout_s": 12},
                          base=tmp_path)
    assert (config.retry_after_s, config.rate_limit_per_s, config.rate_limit_burst,
            config.max_in_flight) == (3, 2.5, 7, 50)
    assert (config.keepalive_timeout_s, config.max_line_size, config.max_field_size,
            config.max_headers) == (20.0, 4096, 2048, 40)
    assert config.database_lock_timeout_s == 0.5
    assert config.database_statement_timeout_s == 12


@pytest.mark.parametrize("data", [{"keepalive_timeout_s": 0}, {"max_line_size": -1},
                                  {"max_headers": "many"}])
def test_nonsense_connection_limits_are_refused(data, tmp_path):
    with pytest.raises(ConfigError):
        parse_config(data, base=tmp_path)


def test_example_signatures_block_loads_when_uncommented(monkeypatch, tmp_path):
    """The commented [signatures] block in examples/vtn.toml is valid once uncommented."""
    text = (EXAMPLES / "vtn.toml").read_text()
    start = text.index("# [signatures]")
    end = text.index("[admin]", start)
    block = [line.removeprefix("# ") for line in text[start:end].splitlines()
             if line.startswith("# [signatures]") or "=" in line]
    uncommented = text[:start] + "\n".join(block) + "\n\n" + text[end:]
    path = example_in(tmp_path, "vtn.toml", text=uncommented)
    monkeypatch.setenv("CROWDFLEX_ADMIN_TOKEN", "from-the-environment-123")
    settings = load_config(path).signatures
    assert settings.require and settings.sign_replies and settings.bind_to_peer
    assert settings.trusted == (tmp_path / "certs/dev/ca.pem",)
    assert settings.replay_window == timedelta(seconds=300)


@pytest.mark.parametrize(("toml", "says"), [
    ('port = "abc"', "port: expected an integer from 0 to 65535, got 'abc'"),
    ("port = 70000", "port: expected an integer from 0 to 65535, got 70000"),
    ("[admin]\nport = -1", "admin.port: expected an integer from 0 to 65535, got -1"),
    ('[tls]\ncert = "nowhere/vtn.pem"',
     "tls.cert: no such file {dir}/nowhere/vtn.pem"),
    ('[tls]\nprofile = "tls9"', "tls.profile: expected 'tls1.3' or"),
    ("poll_frequency_s = -1", "poll_frequency_s: expected a positive number of seconds"),
    ("max_connections = true", "max_connections: expected an integer of at least 0, got True"),
    ("keepalive_timeout_s = 0", "keepalive_timeout_s: expected a positive number, got 0.0"),
    ("database_lock_timeout_s = 0",
     "database_lock_timeout_s: expected a positive number, got 0.0"),
    ("database_statement_timeout_s = 0",
     "database_statement_timeout_s: expected a positive number, got 0.0"),
    ('vtn_id = ""', "vtn_id: expected a non-empty string"),
    ('allowed_fingerprints = "AA:BB"', "allowed_fingerprints: expected a list of non-empty"),
    ("tls = 3", "tls: expected a table [tls], got 3"),
    ('[reports]\nauto_subscribe = "TELEMETRY_USAGE"', "reports.auto_subscribe: expected a list"),
    ('[admin]\ntoken = "short"', "admin.token: expected a bearer token of at least 16"),
    ("vtn_idd = 1\n[tls]\ncafile = 2", "unknown keys tls.cafile, vtn_idd"),
])
def test_every_config_error_names_the_file_the_key_and_what_is_expected(toml, says, tmp_path):
    """#12: a config error names its cause; no '[Errno 2]' without a path, no 'Servname not
    supported' for a port that is not a number."""
    path = tmp_path / "vtn.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, admin=False)
    assert str(caught.value).startswith(f"{path}: " + says.format(dir=tmp_path))


def test_a_cbp_roles_vtn_table_is_named_in_its_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^tso.toml: vtn.port: expected an integer"):
        parse_config({"port": "abc"}, base=tmp_path, source="tso.toml", section="vtn")
    with pytest.raises(ConfigError, match=r"^tso.toml: vtn.admin_token: expected a bearer"):
        parse_config({"admin_token": "short"}, base=tmp_path, source="tso.toml", section="vtn")
