"""The README's XMPP configuration examples are what the loaders read, and the Prosody settings it
shows are the ones the tests' server runs with."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from cbp.demo.prosody import TLS12_CIPHERS
from devpki import Role
from tests.kit.pki import Pki
from tomlconfig import ConfigError, document
from ven.config import TransportMode, VenXmpp
from ven.config import parse_config as parse_ven
from vtn.config import parse_config as parse_vtn
from vtn.settings import XmppSettings

from .server import XmppServer

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _block(marker: str) -> str:
    found = re.search(rf"<!-- {re.escape(marker)} -->\s*```\w*\n(.*?)^```", README, re.M | re.S)
    assert found is not None, f"no block after <!-- {marker} --> in README.md"
    return found.group(1)


def test_the_readme_vtn_example_configures_xmpp():
    config = parse_vtn(tomllib.loads(_block("xmpp: vtn")))
    assert config.xmpp == XmppSettings(host="127.0.0.1", port=5222, domain="xmpp.example",
                                       resource="openadr", request_timeout_s=10.0,
                                       max_sends_in_flight=64, sessions=4)


def test_a_vtn_with_signatures_and_xmpp_refuses_to_start(pki: Pki, tmp_path: Path):
    """SECURITY.md: payload signatures do not survive XMPP, so `crowdflex vtn` with both tables
    stops, saying why, before it opens its database (no XMPP server is needed to see it)."""
    config = tmp_path / "vtn.toml"
    config.write_text(
        f'storage_url = "sqlite:///vtn.db"\nport = 0\n'
        f'[tls]\ncert = "{pki.vtn.cert}"\nkey = "{pki.vtn.key}"\nca = "{pki.ca_cert}"\n'
        f'[signatures]\ntrusted = ["{pki.ca_cert}"]\n' + _block("xmpp: vtn"), encoding="utf-8")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("crowdflex")), "vtn", "--config", str(config),
         "--no-admin", "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip() == ("crowdflex vtn: [xmpp] cannot carry signed payloads (the XMPP "
                                   "library re-serialises them): serve XMPP without [signatures]")
    assert not (tmp_path / "state" / "vtn.db").exists()


@pytest.mark.parametrize("window", [0, -1, 2.5, True, "64"])
def test_the_send_window_is_a_positive_integer(window: object):
    with pytest.raises(ConfigError, match="max_sends_in_flight"):
        parse_vtn({"xmpp": {"max_sends_in_flight": window}})


@pytest.mark.parametrize("sessions", [0, -1, 17, 2.5, True, "4"])
def test_the_sessions_are_an_integer_from_1_to_16(sessions: object):
    with pytest.raises(ConfigError, match=r"sessions.*an integer from 1 to 16"):
        parse_vtn({"xmpp": {"sessions": sessions}})


def test_one_session_unless_configured():
    config = parse_vtn({"xmpp": {"domain": "xmpp.example"}})
    assert config.xmpp is not None and config.xmpp.sessions == 1
    assert parse_vtn({"xmpp": {"sessions": 16}}).xmpp == XmppSettings(sessions=16)


def test_the_readme_ven_example_configures_xmpp(tmp_path: Path):
    for name in ("ven.pem", "ven.key", "ca.pem"):  # the loader checks the files exist
        (tmp_path / "certs" / "dev").mkdir(parents=True, exist_ok=True)
        (tmp_path / "certs" / "dev" / name).write_text("")
    config = parse_ven(tomllib.loads(_block("xmpp: ven")), base=tmp_path)
    assert config.mode is TransportMode.XMPP and config.transport_address is None
    assert config.xmpp == VenXmpp(vtn_jid="0a1b2c3d4e5f60718293@xmpp.example/openadr",
                                  host="127.0.0.1", port=5222, domain="xmpp.example")


def test_xmpp_mode_and_table_go_together():
    with pytest.raises(ConfigError, match="xmpp"):
        parse_ven({"ven_name": "v", "mode": "xmpp"})
    with pytest.raises(ConfigError, match="vtn_jid"):
        parse_ven({"ven_name": "v", "mode": "xmpp", "xmpp": {"host": "x"}})
    with pytest.raises(ConfigError, match="xmpp"):
        parse_ven({"ven_name": "v", "vtn_url": "https://vtn", "xmpp": {"vtn_jid": "a@b/c"}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_vtn({"xmpp": {"hostname": "x"}})


def test_the_readme_prosody_settings_are_the_tests_server_settings(tmp_path: Path):
    server = XmppServer(cert=tmp_path / "c", key=tmp_path / "k", ca=tmp_path / "a")
    running = " ".join(server._config().split())
    shown = _block("not run: a server configuration; cbp/demo/prosody.py starts Prosody with "
                   "these settings")
    for setting in ('authentication = "openadr"', "c2s_require_encryption = true",
                    "allow_registration = false", 'gc = { mode = "generational" }',
                    'verify = { "peer", "client_once" }',
                    "verifyext = { lsec_continue = false, lsec_ignore_purpose = false }",
                    f'ciphers = "{TLS12_CIPHERS}"'):
        assert setting in " ".join(shown.split()), setting
        assert setting in running, setting
    assert '"s2s"' in shown and 'modules_disabled = { "s2s", "offline" }' in running


def test_a_device_fleet_reaches_its_aggregator_over_xmpp_when_configured(tmp_path: Path):
    from cbp.roles.fleetnode import demo_fleet_toml, fleet_config_from_table

    def read(text: str):
        path = tmp_path / "devices.toml"
        path.write_text(text)
        return fleet_config_from_table(document(path))

    xmpp = VenXmpp(vtn_jid="0a1b2c3d4e5f60718293@localhost/openadr", port=15222)
    text = demo_fleet_toml(url="https://127.0.0.1:9443", ca=tmp_path / "ca.pem",
                           certs=tmp_path, names=("device-00000",), seed=1,
                           outbox=tmp_path / "o.db", device_poll=timedelta(seconds=8),
                           telemetry_batch=timedelta(seconds=12), xmpp=xmpp)
    assert read(text).xmpp == xmpp
    plain = text.split("[aggregator]", 1)[1]
    assert read("[aggregator]" + plain).xmpp is None
    with pytest.raises(ConfigError, match="vtn_jid"):
        read('[xmpp]\nhost = "x"\n[aggregator]' + plain)


async def test_stop_kills_a_server_that_ignores_sigterm_and_removes_its_directory(
        tmp_path: Path) -> None:
    """A Prosody that does not end on SIGTERM in time is killed: a test's teardown never waits
    for ever on it (a process that ignores SIGTERM stands in for such a server)."""
    directory = tmp_path / "runtime"
    directory.mkdir()
    stubborn = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(flush=True); signal.pause()", stdout=asyncio.subprocess.PIPE)
    assert stubborn.stdout is not None
    async with asyncio.timeout(60):
        await stubborn.stdout.readline()  # SIGTERM is ignored from here on
    server = XmppServer(cert=tmp_path, key=tmp_path, ca=tmp_path, directory=directory,
                        _process=stubborn)
    await server.stop(timeout=0.5)
    assert stubborn.returncode == -signal.SIGKILL
    assert not directory.exists()


async def test_the_server_runs_with_the_collector_it_is_configured_with(
        xmpp_server: XmppServer, pki: Pki, tmp_path: Path) -> None:
    """Prosody takes the generational collector the README shows; a setting it does not take
    is logged as a failure (and the default kept), which is what the first half looks for."""
    assert xmpp_server.gc_mode == "generational"
    taken = (xmpp_server.directory / "prosody.log").read_text()
    assert "Failed to apply GC configuration" not in taken
    cert, key = pki.authority.issue("xmpp-gc", Role.VTN, hosts=("localhost",)).write(tmp_path)
    refused = XmppServer(cert=cert, key=key, ca=pki.ca_cert, gc_mode="no-such-mode")
    await refused.start()
    try:
        log = (refused.directory / "prosody.log").read_text()
    finally:
        await refused.stop()
    assert "Failed to apply GC configuration" in log
