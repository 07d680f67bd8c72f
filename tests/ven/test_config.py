"""TOML configuration of the VEN and `crowdflex ven`, down to a real run against a VTN."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from cbp.cli import main
from schemas.identity import TlsProfile
from tests.conftest import Pki
from tests.vtn.harness import running_vtn
from ven.config import ConfigError, TransportMode, load_config, parse_config
from vtn.signing import SignatureSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ven.toml"
ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"
REQUIRED = {"vtn_url": "https://vtn.example:8443", "ven_name": "v"}


def example_in(root: Path) -> Path:
    """examples/ven.toml copied under ``root``, beside the certificate files it names
    (``crowdflex certs init`` writes them into certs/dev)."""
    certs = root / "certs" / "dev"
    certs.mkdir(parents=True)
    for name in ("ven.pem", "ven.key", "ca.pem"):
        (certs / name).write_text("")
    path = root / "examples" / "ven.toml"
    path.parent.mkdir()
    path.write_text(EXAMPLE.read_text())
    return path


def test_example_file_loads(tmp_path: Path) -> None:
    example = example_in(tmp_path)
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


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ven", "--help"])
    text = capsys.readouterr().out
    for word in ("vtn_url", "outbox", "poll_interval_s", "push", "pull", "ven_name", "profile",
                 "cert", "SIGTERM", "[signatures]"):
        assert word in text


def test_cli_refuses_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ven.toml"
    path.write_text('vtn_url = "https://x:1"\nven_name = "v"\n')
    assert main(["ven", "--config", str(path)]) == 2
    assert "[tls]" in capsys.readouterr().err
    path.write_text("ven_name = = broken\n")
    assert main(["ven", "--config", str(path)]) == 2
    assert main(["ven", "--config", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.parametrize("signed", [False, True])
async def test_crowdflex_ven_registers_and_stops_on_sigterm(pki: Pki, tmp_path: Path,
                                                           signed: bool) -> None:
    """Signed: the VTN requires signed payloads and signs its own, the VEN's TOML turns
    signing and verification on; the registration only lands if both sides' signatures hold."""
    ven = pki.vens[2]
    overrides = {"signatures": SignatureSettings(trusted=(pki.ca_cert,), require=True,
                                                 sign_replies=True)} if signed else {}
    signing = (f'[signatures]\nsign = true\nrequire = true\ntrusted = ["{pki.ca_cert}"]\n'
               if signed else "")
    async with running_vtn(pki, f"sqlite+aiosqlite:///{tmp_path / 'vtn.db'}",
                           **overrides) as vtn:
        root = vtn.url.split("/OpenADR2")[0]
        config = tmp_path / "ven.toml"
        config.write_text(
            f'vtn_url = "{root}"\nven_name = "cli-ven"\noutbox = "outbox.sqlite"\n'
            f"poll_interval_s = 0.2\n[tls]\ncert = \"{ven.cert}\"\nkey = \"{ven.key}\"\n"
            f'ca = "{pki.ca_cert}"\n[backoff]\nbase_s = 0.05\ncap_s = 0.5\n' + signing)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLI, "ven", "--config", str(config), "--state-dir",
            str(tmp_path), cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(20):
                while (await vtn.ctx.storage.vens.get(ven.fingerprint)) is None:
                    await asyncio.sleep(0.05)  # polling the database, bounded by the timeout
            registration = await vtn.ctx.storage.vens.get(ven.fingerprint)
            assert registration is not None and registration.ven_name == "cli-ven"
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                code = await process.wait()
            assert code == 0, (await process.stderr.read()).decode() if process.stderr else ""
            assert (tmp_path / "outbox.sqlite").exists()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
