"""TOML configuration of the VEN and `crowdflex ven`, down to a real run against a VTN."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas.identity import TlsProfile
from tests.kit.examples import example_in
from ven.config import ConfigError, TransportMode, load_config, parse_config

REQUIRED = {"vtn_url": "https://vtn.example:8443", "ven_name": "v"}


def test_example_file_loads(tmp_path: Path) -> None:
    example = example_in(tmp_path, "ven.toml")
    config = load_config(example)
    assert config.vtn_url == "https://127.0.0.1:8443"
    assert config.ven_name == "heat-pump-42"
    assert config.outbox_path == example.parent / "ven-outbox.sqlite"
    assert config.poll_interval == timedelta(seconds=10)
    assert config.mode is TransportMode.PULL and config.transport_address is None
    assert config.tls_ca == tmp_path / "certs/dev/ca.pem"
    assert config.tls_profile is TlsProfile.TLS13
    assert config.backoff_cap == timedelta(seconds=300)


def test_push_mode_and_defaults(tmp_path: Path) -> None:
    config = parse_config({**REQUIRED, "mode": "push", "push": {"host": "10.0.0.5", "port": 8444},
                           "tls": {"profile": "openadr-tls1.2"}}, base=tmp_path)
    assert config.transport_address == "https://10.0.0.5:8444"
    assert config.tls_profile is TlsProfile.OPENADR_TLS12
    plain = parse_config(REQUIRED, base=tmp_path)
    assert plain.poll_interval is None  # the VTN's requested frequency then
    assert plain.opt == "optIn"


@pytest.mark.parametrize("data", [
    {**REQUIRED, "ven_nmae": "typo"},
    {**REQUIRED, "tls": {"cafile": "x"}},
    {**REQUIRED, "backoff": {"base": 1}},
    {**REQUIRED, "push": {"port": 1, "hots": "x"}, "mode": "push"},
    {"ven_name": "no-url"},
    {**REQUIRED, "vtn_url": "ftp://x"},
    {**REQUIRED, "mode": "carrier-pigeon"},
    {**REQUIRED, "mode": "push"},                      # push needs a port
    {**REQUIRED, "push": {"port": 8444}},              # a listener in pull mode
    {**REQUIRED, "poll_interval_s": "ten"},
    {**REQUIRED, "poll_interval_s": 0},
    {**REQUIRED, "opt": "maybe"},
    {**REQUIRED, "tls": {"profile": "ssl3"}},
    {**REQUIRED, "signatures": {"require": True}},       # nothing to verify with
    {**REQUIRED, "signatures": {"sign": "yes"}},
    {**REQUIRED, "signatures": {"trusted": "ca.pem"}},   # a list, not one path
    {**REQUIRED, "signatures": {"sing": True}},
])
def test_bad_configurations_are_errors(data: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        parse_config(data, base=tmp_path)


def test_signatures_table(tmp_path: Path) -> None:
    for name in ("ca.pem", "s.pem", "s.key"):
        (tmp_path / name).write_text("")
    config = parse_config({**REQUIRED, "signatures": {
        "sign": True, "trusted": ["ca.pem"], "require": True, "replay_window_s": 60,
        "cert": "s.pem", "key": "s.key"}}, base=tmp_path)
    assert config.sign_payloads and config.require_signatures
    assert config.trusted_signers == ((tmp_path / "ca.pem").resolve(),)
    assert (config.signing_cert, config.signing_key) == ((tmp_path / "s.pem").resolve(),
                                                          (tmp_path / "s.key").resolve())
    assert config.replay_window == timedelta(seconds=60)
    assert not parse_config(REQUIRED, base=tmp_path).sign_payloads  # off by default


@pytest.mark.parametrize(("toml", "says"), [
    ('[tls]\nca = "nowhere/ca.pem"',
     "tls.ca: no such file {dir}/nowhere/ca.pem"),
    ('mode = "push"\n[push]\nport = "abc"',
     "push.port: expected an integer from 1 to 65535, got 'abc'"),
    ('poll_interval_s = "ten"',
     "poll_interval_s: expected a positive number of seconds, got 'ten'"),
    ('[signatures]\nkey = "gone.key"', "signatures.key: no such file"),
    ('mode = "carrier-pigeon"', "mode: expected 'pull' or 'push' or 'xmpp', got 'carrier-pigeon'"),
    ("backoff = []", "backoff: expected a table [backoff], got []"),
    ("[backoff]\nbase = 1", "unknown key backoff.base"),
])
def test_every_config_error_names_the_file_the_key_and_what_is_expected(
        toml: str, says: str, tmp_path: Path) -> None:
    """#12: a config error names its cause (the file, the key, what is expected)."""
    path = tmp_path / "ven.toml"
    path.write_text('vtn_url = "https://vtn.example:8443"\nven_name = "v"\n' + toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: " + says.format(dir=tmp_path))
