"""`crowdflex ven`: its help, its refusals, and a real run against a VTN."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from cbp.cli import main
from cbp.cli.ven import _register_until_done
from schemas.logtext import MAX_LOGGED_CHARS
from tests.kit.pki import Pki
from tests.kit.vtn import running_vtn
from ven import Backoff, VtnRefused
from vtn.services.registration import cancel_from_vtn
from vtn.signing import SignatureSettings

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from cbp.cli import main; sys.exit(main(sys.argv[1:]))"


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


@pytest.mark.parametrize(("signed", "stopped_by"),
                         [(False, "SIGTERM"), (True, "SIGTERM"), (False, "the VTN")])
async def test_crowdflex_ven_registers_and_stops_on_sigterm(pki: Pki, tmp_path: Path,
                                                           signed: bool, stopped_by: str) -> None:
    """Signed: the VTN requires signed payloads and signs its own, the VEN's TOML turns
    signing and verification on; the registration only lands if both sides' signatures hold.
    Stopped by the VTN: it cancels the registration, and the VEN says so and ends (exit 0)."""
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
        log = tmp_path / "ven.stderr"
        with log.open("wb") as stderr:  # a file, not a pipe: a chatty VEN never blocks on it
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLI, "ven", "--config", str(config), "--state-dir",
                str(tmp_path), cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
        try:
            async with asyncio.timeout(20):
                while (await vtn.ctx.storage.vens.get(ven.fingerprint)) is None:
                    await asyncio.sleep(0.05)  # polling the database, bounded by the timeout
            registration = await vtn.ctx.storage.vens.get(ven.fingerprint)
            assert registration is not None and registration.ven_name == "cli-ven"
            if stopped_by == "SIGTERM":
                process.send_signal(signal.SIGTERM)
            else:
                await cancel_from_vtn(vtn.ctx, ven.fingerprint)
            async with asyncio.timeout(15):
                code = await process.wait()
            assert code == 0, log.read_text()
            if stopped_by == "the VTN":
                assert "the VTN cancelled this VEN's registration" in log.read_text()
            assert (tmp_path / "outbox.sqlite").exists()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_a_refused_registration_is_logged_escaped_and_capped(
        caplog: pytest.LogCaptureFixture) -> None:
    """The VTN chooses the refusal's description: the retry line keeps it on one line and cuts
    it at MAX_LOGGED_CHARS characters."""
    stop = asyncio.Event()

    class Refused:
        async def register(self) -> None:
            stop.set()  # one attempt: the wait before the retry ends at once
            raise VtnRefused(461, "x" * 3000 + "\n2026-12-07 01:00:00,000 ERROR forged")

    caplog.set_level(logging.WARNING, "crowdflex.ven")
    await _register_until_done(Refused(), Backoff(), stop)  # type: ignore[arg-type]
    (line,) = [r.getMessage() for r in caplog.records if "registration failed" in r.getMessage()]
    assert line.isprintable() and "x" * 100 in line and "characters)" in line, line[-200:]
    assert len(line) < MAX_LOGGED_CHARS + 100, len(line)
