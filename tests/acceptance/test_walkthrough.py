"""Acceptance (issue 12): the README's role walkthrough runs exactly as written and reaches
settlement.

The README shows ``examples/walkthrough.sh`` in full; the first test checks that the README's
block is that file, byte for byte. The second runs the file, unchanged, in a fresh folder holding
nothing but unchanged copies of ``examples/`` (as a fresh clone does), with ``crowdflex`` on the
PATH and ``TSO_PORT``/``AGGREGATOR_PORT`` set to ports the kernel just handed out (the script's
own variables, shown in the README: no fixed port must be free). It must exit 0 having:
minted the PKI and 100 device certificates, onboarded them, run the TSO, the aggregator and the
fleet until the aggregator holds the TSO's settlement statement, stopped every node cleanly
(``"state": "stopped"``, exit 0, SQLite files intact) and passed the privacy audit -- with no
Python warning and no traceback on its output, no runtime file left in ``examples/``, and no
"TSO is unreachable" warning (the script waits for the TSO to listen before the aggregator
starts). When the TSO cannot start (its port taken), the script stops at once and says what it
was waiting for.

The third starts the same example configs with a single device, the aggregator before the TSO:
the aggregator waits for the TSO, saying so; then its pool is under the minimum offer, and its
log says so with the figures; the TSO's log says that a gate closed with no offer to award.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance import ROOT
from tests.kit.net import free_port

SCRIPT = ROOT / "examples" / "walkthrough.sh"
BIN = Path(sys.executable).parent
NOISE = re.compile(r"Traceback|\w+Warning:")
WALKTHROUGH_TIMEOUT_S = 330  # 1-min ISPs: the first settlement comes 2-3 minutes after start


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def fresh_clone(tmp: Path) -> Path:
    """A folder with unchanged copies of examples/ (no certs, keys or state yet)."""
    shutil.copytree(ROOT / "examples", tmp / "examples")
    return tmp


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def two_ports() -> tuple[int, int]:
    """Two distinct ports the kernel just handed out."""
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def status(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_the_readme_shows_the_walkthrough_script_verbatim() -> None:
    assert SCRIPT.read_text() in readme_blocks()


def test_the_readme_walkthrough_runs_as_written_and_reaches_settlement(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path)
    examples_before = sorted(p.name for p in (clone / "examples").iterdir())
    out, err = clone / "walkthrough.out", clone / "walkthrough.err"
    tso_port, aggregator_port = two_ports()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        script = subprocess.Popen(
            ["bash", "examples/walkthrough.sh"], cwd=clone, stdout=stdout, stderr=stderr,
            env=environment(TSO_PORT=str(tso_port), AGGREGATOR_PORT=str(aggregator_port)),
            start_new_session=True)
        try:
            code = script.wait(WALKTHROUGH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
            pytest.fail("the walkthrough did not finish\n" + err.read_text()[-4000:])
    said, logged = out.read_text(), err.read_text()
    assert code == 0, said[-2000:] + logged[-4000:]
    assert not NOISE.search(said + logged), logged
    assert "the TSO is unreachable" not in logged, logged  # started after the TSO listened

    state = clone / "state"
    tso, aggregator = status(state / "tso.status.json"), status(state / "aggregator.status.json")
    devices = status(state / "device.status.json")
    assert {tso["state"], aggregator["state"], devices["state"]} == {"stopped"}
    assert devices["registered"] == 100 and devices["refused"] == 0
    assert aggregator["pool"]["registered_devices"] == 100
    assert any(o["accepted"] and float(o["mw"]) >= 0.1 for o in aggregator["offers"].values())
    settled = [e for e, a in tso["activations"].items() if a["settled"]]
    assert settled and set(settled) <= set(aggregator["statements"])
    assert "PASS" in said  # the privacy audit of the captured aggregator->TSO messages
    assert not (state / "onboarding.csv").exists()  # the identities live in the vault only
    for db in ("tso.db", "aggregator.db", "aggregator-outbox.db", "vault.db",
               "devices-outbox.db"):
        assert integrity(state / db) == "ok", db
    assert sorted(p.name for p in (clone / "examples").iterdir()) == examples_before


def test_the_walkthrough_stops_saying_why_when_the_tso_cannot_listen(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        tso_port = taken.getsockname()[1]
        finished = subprocess.run(
            ["bash", "examples/walkthrough.sh"], cwd=clone, capture_output=True, text=True,
            env=environment(TSO_PORT=str(tso_port), AGGREGATOR_PORT=str(free_port())),
            timeout=WALKTHROUGH_TIMEOUT_S)
    assert finished.returncode == 1
    assert finished.stderr.splitlines()[-1] == (
        "walkthrough: a node ended while waiting for the TSO to listen"), finished.stderr
    assert not (clone / "state" / "aggregator.status.json").exists()  # never started


def test_a_pool_under_the_minimum_offer_logs_why_it_does_not_offer(tmp_path: Path) -> None:
    """One device (the README before issue 12): nothing is offered, and the log says why."""
    clone = fresh_clone(tmp_path)
    env = environment()
    for command in (["certs", "init"], ["certs", "issue", "--name", "tso", "--role", "vtn"],
                    ["certs", "issue", "--name", "aggregator-vtn", "--role", "vtn"],
                    ["certs", "issue", "--name", "aggregator", "--role", "ven"],
                    ["certs", "fleet", "--devices", "1", "--csv", "state/onboarding.csv"],
                    ["privacy", "keygen", "--key-file", "keys/vault-master.key"],
                    ["aggregator", "--config", "examples/aggregator.toml", "--onboard",
                     "state/onboarding.csv"]):
        subprocess.run(["crowdflex", *command], cwd=clone, env=env, check=True,
                       capture_output=True, timeout=120)
    one = clone / "one-device.toml"
    one.write_text((clone / "examples" / "device.toml").read_text()
                   .replace('certs = "../certs/dev"', f'certs = "{clone / "certs/dev"}"')
                   .replace('ca = "../certs/dev/ca.pem"', f'ca = "{clone / "certs/dev/ca.pem"}"')
                   .replace("count = 100", "count = 1"))
    tso_port, aggregator_port = two_ports()
    log = clone / "aggregator.log"
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> None:
        with (clone / f"{args[0]}.log").open("wb") as output:
            started.append(subprocess.Popen(["crowdflex", *args], cwd=clone, env=env,
                                            stdout=output, stderr=output))

    def wait_for(pattern: str, timeout: float, log: Path = log) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, log.read_text())):
            assert all(p.poll() is None for p in started), log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)  # re-read interval, bounded by the deadline
        return found

    try:
        start("aggregator", "--config", "examples/aggregator.toml", "--port",
              str(aggregator_port), "--tso-url", f"https://127.0.0.1:{tso_port}")
        wait_for(r"the TSO is unreachable .*; trying again in", 60)  # it waits for the TSO
        start("tso", "--config", "examples/tso.toml", "--port", str(tso_port))
        wait_for(r"no offer for ISP \S+: no device has registered yet \(1 onboarded\)", 60)
        start("device", "--config", str(one), "--aggregator-url",
              f"https://127.0.0.1:{aggregator_port}")
        found = wait_for(r"no offer for ISP \S+: (\S+) MW available .* < 0\.1 MW minimum, "
                         r"from 1 registered device", 120)
        assert float(found.group(1)) < 0.1
        # the TSO says why nothing happens at its next gate closure (one-minute ISPs)
        wait_for(r"gate closed for ISP \S+: no offer at or under 212.40 EUR/MWh to award", 90,
                 clone / "tso.log")
    finally:
        for process in reversed(started):
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in started]
    assert codes == [0] * len(started)
