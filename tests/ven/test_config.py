"""TOML configuration of the VEN and `crowdflex ven`, down to a real run against a VTN."""

from __future__ import annotations

import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from schemas import Codec, OptType
from schemas.identity import TlsProfile
from schemas.xmpp import localpart_of
from tests.kit.examples import example_in
from tests.kit.pki import Pki
from ven import Backoff, Hooks
from ven.config import (
    ConfigError,
    TransportMode,
    VenXmpp,
    client_settings,
    load_config,
    parse_config,
)
from ven.xmpp import XmppLink

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


async def test_client_settings_carry_every_key_the_client_reads(pki: Pki, tmp_path: Path) -> None:
    """The one place a VenConfig becomes a client's settings: names, TLS, pace, push address,
    back-off, and in mode = "xmpp" the link to [xmpp]; the codec and hooks are the caller's."""
    tls = {"cert": str(pki.ven.cert), "key": str(pki.ven.key), "ca": str(pki.ca_cert),
           "profile": "openadr-tls1.2"}
    codec, hooks = Codec(), Hooks(on_event=lambda event: OptType.OPT_IN)
    config = parse_config({**REQUIRED, "mode": "push", "push": {"port": 8444},
                           "poll_interval_s": 0.2, "request_timeout_s": 7,
                           "backoff": {"base_s": 0.05, "cap_s": 0.5}, "tls": tls})
    settings = client_settings(config, codec=codec, hooks=hooks)
    connection = settings.connection
    assert (settings.ven_name, settings.hooks, settings.outbox_key) == ("v", hooks, None)
    assert (connection.vtn_url, connection.codec, connection.link) == (
        "https://vtn.example:8443", codec, None)
    assert isinstance(connection.ssl_context, ssl.SSLContext)
    assert connection.ssl_context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert connection.push_url == config.transport_address == "https://127.0.0.1:8444"
    assert (connection.poll_interval, connection.request_timeout) == (0.2, 7.0)
    assert connection.backoff == Backoff(base=0.05, cap=0.5)

    pulled = client_settings(parse_config({**REQUIRED, "tls": tls}), codec=codec, hooks=hooks)
    assert (pulled.connection.push_url, pulled.connection.poll_interval) == (None, None)
    assert pulled.connection.ssl_context is not None
    assert pulled.connection.ssl_context.minimum_version is ssl.TLSVersion.TLSv1_2

    jid = "vtn@xmpp.example/openadr"
    over_xmpp = parse_config({"ven_name": "v", "mode": "xmpp", "tls": tls, "xmpp": {
        "vtn_jid": jid, "domain": "xmpp.example", "resource": "heat"}})
    xmpp = client_settings(over_xmpp, codec=codec, hooks=hooks).connection
    assert isinstance(xmpp.link, XmppLink) and xmpp.vtn_url == jid
    assert (xmpp.link.vtn_jid, xmpp.link.codec) == (jid, codec)
    assert xmpp.link.address == f"{localpart_of(pki.ven.fingerprint)}@xmpp.example/heat"


async def test_an_xmpp_section_builds_the_link_for_a_given_certificate(pki: Pki) -> None:
    """``VenXmpp.link``, the one place ``[xmpp]`` becomes an XmppLink (``client_settings`` and
    the device fleet): the VEN's JID from its fingerprint, the section's domain and resource."""
    codec, jid = Codec(), "vtn@xmpp.example/openadr"
    link = VenXmpp(vtn_jid=jid, domain="xmpp.example", resource="fleet").link(
        fingerprint=pki.ven.fingerprint, ssl_context=pki.client_context(), codec=codec,
        request_timeout_s=5)
    assert (link.vtn_jid, link.codec) == (jid, codec)
    assert link.address == f"{localpart_of(pki.ven.fingerprint)}@xmpp.example/fleet"


def test_client_settings_need_the_tls_files() -> None:
    with pytest.raises(ConfigError, match=r"\[tls\] cert, key and ca are required"):
        client_settings(parse_config(REQUIRED), codec=Codec(), hooks=Hooks())


def test_reading_a_config_does_not_import_the_xmpp_library():
    """slixmpp is loaded by a VEN on XMPP only, once its link is built, not by every VEN that
    reads its TOML (a fresh interpreter: this one has imported it already)."""
    probe = "import sys, ven.config; print('slixmpp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert result.stdout.strip() == "False"
