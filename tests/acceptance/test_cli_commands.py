"""Acceptance (issue 12): every ``crowdflex`` command explains itself and is quiet in normal use.

Each command and sub-command answers ``--help`` (in a fresh interpreter) with exit 0 and nothing
on stderr; every option carries help text; ``--version`` names the installed version. Each one-shot
command's normal use (certs, privacy, conformance, settle, onboarding) runs in a subprocess in a
fresh folder holding unchanged copies of ``examples/`` and writes nothing to stderr -- no
``CryptographyDeprecationWarning`` from a library import, no traceback (``privacy keygen`` into a
folder that does not exist yet included). ``crowdflex vtn`` and ``crowdflex ven`` from the example
TOMLs register with each other and stop on SIGTERM, and on SIGINT, with no warning, no traceback,
no alembic line and no access-log line in their logs, their database and outbox in ``./state``;
``--log-level debug`` brings those lines back. The TSO, aggregator and device nodes are checked
the same way by tests/acceptance/test_walkthrough.py. The README's "Admin API" shell blocks run
with curl and jq against that VTN and VEN, each command as written but for the VTN's address and
token.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from cbp.cli import build_parser
from cbp.devices import build_pool
from schemas.conformance import corpus_dir
from tests.acceptance import ROOT

CROWDFLEX = str(Path(sys.executable).with_name("crowdflex"))
NOISE = re.compile(r"Traceback|\w+Warning:")


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub-)command path and its parser, the top level first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


ALL = [path for path, _ in commands(build_parser())]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([CROWDFLEX, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"crowdflex {' '.join(args)}: {done.stdout}{done.stderr}"
    assert done.stderr == "", f"crowdflex {' '.join(args)} said on stderr: {done.stderr}"
    return done


def test_every_option_and_sub_command_has_help_text() -> None:
    missing = []
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{' '.join((*path, n))}" for n in action.choices if n not in helped]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


# Every --help in one fresh interpreter (each would import the same modules): exit code 0 each,
# one usage per command on stdout, nothing on stderr.
_EVERY_HELP = """
import json, sys
from cbp.cli import main
for path in json.loads(sys.argv[1]):
    try:
        main([*path, "--help"])
    except SystemExit as done:
        assert done.code == 0, (path, done.code)
    else:
        raise AssertionError(f"{path}: --help did not exit")
"""


def test_help_of_every_command_exits_0_with_nothing_on_stderr(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _EVERY_HELP, json.dumps(ALL)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.count("usage: crowdflex") == len(ALL)
    # crowdflex, its 10 commands, the certs (3), privacy (9) and conformance (3) actions
    assert len(ALL) == 26


def test_the_readme_command_list_names_every_command_and_action() -> None:
    """The README's "The command line" block shows every command and every action of one."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## The command line\n\n```sh\n(.*?)^```", readme, re.M | re.S)
    assert found is not None, "no command block under '## The command line' in README.md"
    shown: set[tuple[str, ...]] = set()
    for line in found[1].splitlines():
        words = line.split("#")[0].split()
        if words[:1] != ["crowdflex"]:
            continue
        command = words[1] if len(words) > 1 else ""
        shown.add((command,))
        if len(words) > 2:
            shown.update((command, action) for action in words[2].split("|"))
    missing = [" ".join(path) for path in ALL if path and path not in shown]
    assert missing == [], f"README.md's command list leaves out: {missing}"


def test_a_listing_whose_reader_has_gone_ends_without_a_traceback() -> None:
    """`crowdflex conformance vtn --list | head -3`: the pipe closes under the listing."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run([CROWDFLEX, "conformance", "vtn", "--list"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_version_names_the_installed_distribution(tmp_path: Path) -> None:
    assert run("--version", cwd=tmp_path).stdout.strip() == f"crowdflex {version('crowdflex')}"


def test_certs_issue_takes_the_same_default_folder_as_certs_init(tmp_path: Path) -> None:
    run("certs", "init", cwd=tmp_path)
    run("certs", "issue", "--name", "ven-42", cwd=tmp_path)
    assert (tmp_path / "certs" / "dev" / "ven-42.pem").is_file()


def test_privacy_keygen_makes_the_missing_key_folder_owner_only(tmp_path: Path) -> None:
    said = run("privacy", "keygen", "--key-file", "keys/vault-master.key", cwd=tmp_path).stdout
    assert "key version 1 added to keys/vault-master.key" in said
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "vault-master.key").stat().st_mode) == 0o600


def _series(path: Path, values: list[str]) -> Path:
    rows = [f"2030-01-01T12:{4 * i // 60:02d}:{4 * i % 60:02d}+00:00,{v}"
            for i, v in enumerate(values)]
    path.write_text("timestamp,mw\n" + "\n".join(rows) + "\n")
    return path


def test_the_one_shot_commands_say_nothing_on_stderr(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    key = ("--key-file", "keys/vault-master.key")
    run("certs", "init", "--dir", "certs/dev", cwd=tmp_path)
    run("certs", "fleet", "--dir", "certs/dev", "--devices", "3", "--csv", "state/onb.csv",
        cwd=tmp_path)
    run("privacy", "keygen", *key, cwd=tmp_path)
    onboarded = run("aggregator", "--config", "examples/aggregator.toml", "--onboard",
                    "state/onb.csv", cwd=tmp_path).stdout
    assert "onboarded 3 device(s)" in onboarded
    with (tmp_path / "state" / "devices.csv").open() as rows:  # as the simulators of seed 1
        classes = [row["device_class"] for row in csv.DictReader(rows)]
    assert classes == [d.device_class.value for d in build_pool(3, 1).devices]
    assert {p.name for p in (tmp_path / "state").iterdir()} >= {"vault.db", "devices.csv"}
    run("privacy", "erase", "--vault", "state/vault.db", "--prosumer", "P00000", *key,
        "--reason", "request 1", cwd=tmp_path)
    run("privacy", "erasures", "--vault", "state/vault.db", *key, cwd=tmp_path)
    run("privacy", "verify-log", "--vault", "state/vault.db", *key, cwd=tmp_path)
    run("privacy", "dpia", "--config", "examples/tso.toml", "--config",
        "examples/aggregator.toml", "--out", "dpia", cwd=tmp_path)
    captures = tmp_path / "run" / "captures" / "aggregator-tso"
    captures.mkdir(parents=True)
    shutil.copy(corpus_dir() / "valid" / "oadrPoll.xml", captures)
    assert "PASS" in run("privacy", "audit", "run", "--vault", "state/vault.db", *key,
                         cwd=tmp_path).stdout
    run("conformance", "schemas", cwd=tmp_path)
    setpoints = _series(tmp_path / "s.csv", ["0.2"] * 15)
    measured = _series(tmp_path / "m.csv", ["0.8"] * 15)
    baseline = _series(tmp_path / "b.csv", ["1.0"] * 15)
    run("settle", "--setpoints", str(setpoints), "--measured", str(measured), "--baseline",
        str(baseline), "--clearing-price", "212.40", "--bid-price", "180", cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == sorted(
        p.name for p in (ROOT / "examples").iterdir())


def _wait_for(log: Path, pattern: str, processes: list[subprocess.Popen[bytes]]
              ) -> re.Match[str]:
    deadline = time.monotonic() + 60
    while not (found := re.search(pattern, log.read_text())):
        assert all(p.poll() is None for p in processes), log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)  # re-read interval, bounded by the deadline
    return found


def _start_example_vtn_and_ven(tmp_path: Path, token: str,
                               started: list[subprocess.Popen[bytes]]) -> tuple[str, str]:
    """In ``tmp_path``: copies of ``examples/``, ``certs init``, then ``crowdflex vtn`` (ports 0)
    and ``crowdflex ven`` from the example TOMLs, logging to vtn.log and ven.log and appended to
    ``started``; returns the admin API's URL and the venID once the VEN has registered."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    run("certs", "init", "--dir", "certs/dev", cwd=tmp_path)
    env = {**os.environ, "CROWDFLEX_ADMIN_TOKEN": token}
    vtn_log, ven_log = tmp_path / "vtn.log", tmp_path / "ven.log"
    with vtn_log.open("wb") as out:
        started.append(subprocess.Popen(
            [CROWDFLEX, "vtn", "--config", "examples/vtn.toml", "--port", "0",
             "--admin-port", "0"], cwd=tmp_path, env=env, stdout=out, stderr=out))
    port = _wait_for(vtn_log, r"serving on https://127\.0\.0\.1:(\d+) ", started)[1]
    admin_url = _wait_for(vtn_log, r"admin API on (http://127\.0\.0\.1:\d+)", started)[1]
    with ven_log.open("wb") as out:
        started.append(subprocess.Popen(
            [CROWDFLEX, "ven", "--config", "examples/ven.toml", "--vtn-url",
             f"https://127.0.0.1:{port}"], cwd=tmp_path, env=env, stdout=out, stderr=out))
    ven_id = _wait_for(ven_log, r"registered with VTN CROWDFLEX-VTN as venID (\S+)", started)[1]
    return admin_url, ven_id


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_vtn_and_ven_from_the_examples_run_quietly(tmp_path: Path, stop: signal.Signals) -> None:
    vtn_log, ven_log = tmp_path / "vtn.log", tmp_path / "ven.log"
    started: list[subprocess.Popen[bytes]] = []
    try:
        _start_example_vtn_and_ven(tmp_path, "walkthrough-admin-token-0123", started)
    finally:
        for process in reversed(started):
            process.send_signal(stop)
        codes = [process.wait(30) for process in started]
    assert codes == [0, 0]
    logged = vtn_log.read_text() + ven_log.read_text()
    assert not NOISE.search(logged), logged
    assert "alembic" not in logged and "aiohttp.access" not in logged, logged
    # their database and outbox went to the state directory, not next to the example TOMLs
    assert {p.name for p in (tmp_path / "state").iterdir()} >= {"vtn.db", "ven-outbox.sqlite"}
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == sorted(
        p.name for p in (ROOT / "examples").iterdir())


def _admin_script(token: str, admin_url: str) -> str:
    """The README's "Admin API" blocks as one bash script: its own token and address set in place
    of the README's, `$VEN` as the README picks it, changed.json as the README shows it (written
first, as the PUT needs it); every
    curl also prints ` HTTP<status>` after the reply."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Admin API\n"):readme.index("\n## Privacy\n")]
    parts: list[str] = []
    for lang, code in re.findall(r"^```(\w*)\n(.*?)^```", section, re.M | re.S):
        if lang == "json":
            parts.insert(0, f"cat > changed.json <<'JSON'\n{code}JSON")  # before its PUT
            continue
        assert lang == "sh", f"a {lang} block in the README's Admin API section"
        if "export CROWDFLEX_ADMIN_TOKEN=" in code:
            code = code.replace("=$(openssl rand -hex 24)", f"={token}", 1)
            code = re.sub(r"^A=http://127\.0\.0\.1:8081$", f"A={admin_url}", code, count=1,
                          flags=re.M)
            (pick,) = re.findall(r"`(VEN=\$\(curl .*?\))`", section)
            code += f"{pick}\ncurl() {{ command curl -sS -w ' HTTP%{{http_code}}\\n' \"$@\"; }}\n"
        parts.append(code)
    return "set -eo pipefail\n" + "\n".join(parts)  # -u would stop at the unset $RRID


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq") and shutil.which("openssl")),
                    reason="the README's admin commands need curl, jq and openssl")
def test_the_readme_admin_commands_run_as_written_against_the_example_vtn(tmp_path: Path
                                                                          ) -> None:
    token = subprocess.run(["bash", "-c", "openssl rand -hex 24"], capture_output=True,
                           text=True, check=True).stdout.strip()  # as the README makes one
    started: list[subprocess.Popen[bytes]] = []
    try:
        admin_url, ven_id = _start_example_vtn_and_ven(tmp_path, token, started)
        ven = started[-1]
        ven.send_signal(signal.SIGTERM)  # registered; stopped so that no poll races the script
        assert ven.wait(30) == 0
        done = subprocess.run(["bash", "-c", _admin_script(token, admin_url)], cwd=tmp_path,
                              env={**os.environ, "CROWDFLEX_ADMIN_TOKEN": token},
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    assert done.returncode == 0, done.stdout + done.stderr
    replies = re.findall(r"^(.*) HTTP(\d{3})$", done.stdout, re.M)
    statuses = [int(status) for _, status in replies]
    assert statuses == [200, 200, 202, 202, 200, 200,  # VENs: list .. evict, opts
                        201, 200, 200, 200, 200,  # events: create, list, one, change, cancel
                        200, 400, 404, 200], done.stdout  # reports (see below)  # fmt: skip
    body = [json.loads(text) if text.startswith("{") else text for text, _ in replies]
    assert body[0]["vens"][0]["ven_id"] == ven_id
    assert body[1] == {"ven_id": ven_id, "memberships": 2, "events_changed": []}
    assert body[4]["evicted"] == ven_id
    assert body[6] == {"event_id": "act-2030-01-01-1200", "modification_number": 0,
                       "targeted": []}  # the one VEN of pool-1 was evicted
    assert [body[n]["modification_number"] for n in (6, 9, 10)] == [0, 1, 2]
    assert body[10]["status"] == "cancelled"
    # crowdflex ven offers no reports: the README's subscription is refused with the reason, so
    # there is no $RRID to cancel, and no data
    assert body[11] == {"registered": [], "subscriptions": []}
    assert body[12] == (f"bad request: VEN '{ven_id}' never offered report 'TELEMETRY-1' "
                        "(it offered: none)")
    assert body[14] == {"points": []}


def test_log_level_debug_in_any_case_brings_back_the_access_log_and_migrations() -> None:
    from cbp.cli._process import configure_logging

    chatty = [logging.getLogger(name) for name in ("alembic", "aiohttp.access")]
    try:
        configure_logging(build_parser().parse_args(["vtn", "--config", "x.toml"]).log_level)
        assert not any(logger.isEnabledFor(logging.INFO) for logger in chatty)
        args = build_parser().parse_args(["vtn", "--config", "x.toml", "--log-level", "debug"])
        configure_logging(args.log_level)
        assert all(logger.isEnabledFor(logging.INFO) for logger in chatty)
        configure_logging("ERROR")  # never chattier than the level asked for
        assert not any(logger.isEnabledFor(logging.WARNING) for logger in chatty)
    finally:
        for logger in chatty:
            logger.setLevel(logging.NOTSET)


def refused(*args: str, cwd: Path) -> str:
    done = subprocess.run([CROWDFLEX, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert not NOISE.search(done.stderr), done.stderr
    return done.stderr


def test_a_node_without_its_files_names_each_key_and_path_before_starting(tmp_path: Path
                                                                          ) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    certs = tmp_path / "certs" / "dev"
    said = refused("tso", "--config", "examples/tso.toml", cwd=tmp_path)
    assert f"examples/tso.toml: vtn.tls.cert: no such file {certs / 'tso.pem'}" in said
    said = refused("device", "--config", "examples/device.toml", cwd=tmp_path)
    assert "examples/device.toml: aggregator.ca: no such file" in said
    run("certs", "init", cwd=tmp_path)
    for name, role in (("tso", "vtn"), ("aggregator-vtn", "vtn"), ("aggregator", "ven")):
        run("certs", "issue", "--name", name, "--role", role, cwd=tmp_path)
    said = refused("aggregator", "--config", "examples/aggregator.toml", cwd=tmp_path)
    assert said.strip() == (f"crowdflex aggregator: examples/aggregator.toml: vault.key_file: "
                            f"no such file {tmp_path / 'keys' / 'vault-master.key'}")
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_every_command_names_itself_in_its_errors(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from cbp.cli import main

    cases = {("conformance", "schemas", str(tmp_path / "none.xml")): "crowdflex conformance: ",
             ("privacy", "audit", str(tmp_path), "--vault", str(tmp_path / "v.db")):
                 "crowdflex privacy: ",
             ("certs", "issue", "--dir", str(tmp_path), "--name", "x"): "crowdflex certs: ",
             ("tso", "--config", str(tmp_path / "none.toml")): "crowdflex tso: "}
    for argv, prefix in cases.items():
        assert main(list(argv)) != 0
        assert capsys.readouterr().err.startswith(prefix), argv
