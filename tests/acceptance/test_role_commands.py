"""Acceptance (issue 5): `crowdflex tso`, `crowdflex aggregator` and `crowdflex device` run as
separate processes from TOML configs and work together over mutual TLS, through a consent
refusal and an aggregator restart (the README's walkthrough itself, run verbatim, is
tests/acceptance/test_walkthrough.py).

Everything goes through the installed ``crowdflex`` console script: ``certs`` makes the PKI,
``privacy keygen`` the vault key, ``aggregator --onboard`` imports the onboarding records (one
prosumer without consent). The configs are ``examples/*.toml`` with only paths, ports and the
profile changed, and every runtime file in the test's folder (``--state-dir``). The TSO and the
aggregator bind port 0 and report the port they got in
their ``--status-file``; the test reads those files (polling under a timeout) to learn the URLs
and to follow the run: the devices register (the one without consent is refused), the aggregator
registers its pool of exactly those devices with the TSO, offers, the TSO awards at gate closure
and activates the award (``[operation] activate_awards``), the aggregator dispatches setpoints to
the devices and every device acknowledges them. The aggregator is then restarted (SIGTERM, same
port and database): the devices, which keep running and never register again, still count as
registered, the pool reaches the TSO again and the devices' telemetry reaches the new process
(it offers). Then every process gets SIGTERM and must exit 0, mark its status ``"state":
"stopped"`` and leave SQLite files that pass ``PRAGMA integrity_check``; the privacy audit of the
captured aggregator->TSO messages must pass.
"""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from devpki import CertificateAuthority, Role

ROOT = Path(__file__).resolve().parents[2]
CROWDFLEX = Path(sys.executable).with_name("crowdflex")
PROCESSES, PER_PROCESS = 2, 25  # 50 devices: enough flex for the 0.1 MW minimum offer
T = TypeVar("T")


class Node:
    """One ``crowdflex`` node process, its log and its status file."""

    def __init__(self, name: str, directory: Path, *args: str) -> None:
        self.name = name
        self.status_file = directory / f"{name}.status.json"
        self.log = directory / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CROWDFLEX), *args, "--status-file", str(self.status_file),
                 "--state-dir", str(directory)],
                cwd=directory, stdout=log, stderr=subprocess.STDOUT)

    def status(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads(self.status_file.read_text())
        except FileNotFoundError:
            return {}
        return loaded

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-3000:]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL only if it never comes)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in reversed(started):  # devices first, the TSO last
        if node.process.poll() is None:
            node.process.terminate()
    for node in started:
        try:
            node.process.wait(30)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


def wait_for(check: Callable[[], T | None], what: str, nodes: list[Node],
             timeout: float) -> T:
    """Poll ``check`` until it returns something truthy; fail early if a node exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for node in nodes:
            if node.process.poll() is not None:
                pytest.fail(f"{node.name} exited ({node.process.returncode}) while waiting for "
                            f"{what}\n" + "\n".join(n.tail() for n in nodes))
        time.sleep(0.2)  # re-check interval, bounded by the deadline
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(n.tail() for n in nodes))


def crowdflex(*args: str, cwd: Path) -> str:
    done = subprocess.run([str(CROWDFLEX), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def make_pki(tmp: Path, names: list[str]) -> dict[str, str]:
    """The role certificates through ``crowdflex certs``; the device certificates (many) from the
    same CA through devpki. Returns each device's fingerprint by name."""
    certs = tmp / "certs"
    crowdflex("certs", "init", "--dir", str(certs), cwd=tmp)  # ca, vtn (the TSO), ven
    crowdflex("certs", "issue", "--dir", str(certs), "--name", "aggregator-vtn", "--role", "vtn",
              cwd=tmp)
    authority = CertificateAuthority.load(certs / "ca.pem", certs / "ca.key")
    (certs / "devices").mkdir()
    fingerprints = {}
    for name in names:
        issued = authority.issue(name, Role.VEN)
        issued.write(certs / "devices")
        fingerprints[name] = issued.fingerprint
    return fingerprints


def write_onboarding(path: Path, fingerprints: dict[str, str], refused: str) -> None:
    classes = ("ev_charger", "heat_pump", "battery")
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("ven_id", "prosumer_id", "name", "postcode", "ean", "contract_id",
                         "serial", "device_class", "rated_kw", "consent"))
        for i, (name, fingerprint) in enumerate(sorted(fingerprints.items())):
            writer.writerow((fingerprint, f"P{i:05d}", f"Prosumer {i}", f"{1000 + i} AB",
                             f"871{i:015d}", f"C-{i:05d}", f"SN-{i:08d}", classes[i % 3],
                             "7.4", "no" if name == refused else "yes"))


def toml_text(table: dict[str, Any], prefix: str = "") -> str:
    """TOML for the plain values the configs use (JSON's literals are TOML's)."""
    head = f"[{prefix[:-1]}]\n" if prefix else ""
    plain = "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()
                    if not isinstance(v, dict))
    return head + plain + "".join(toml_text(v, f"{prefix}{k}.") for k, v in table.items()
                                  if isinstance(v, dict))


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def from_example(tmp: Path, name: str, changes: dict[str, Any], out: str = "") -> Path:
    """examples/<name>.toml with ``changes`` (paths into tmp, port 0, the compressed timing):
    every other key is the example's own, so a wrong key there fails here."""
    example = tomllib.loads((ROOT / "examples" / f"{name}.toml").read_text())
    path = tmp / (out or f"{name}.toml")
    path.write_text(toml_text(merged(example, changes)))
    return path


def vtn_changes(db: str, cert: str) -> dict[str, Any]:
    return {"storage_url": f"sqlite:///{db}", "host": "127.0.0.1", "port": 0,
            "tls": {"cert": f"certs/{cert}.pem", "key": f"certs/{cert}.key",
                    "ca": "certs/ca.pem"}}


COMPRESSED = {"name": "compressed"}


def tso_toml(tmp: Path) -> Path:
    return from_example(tmp, "tso", {"vtn": vtn_changes("tso.db", "vtn"), "profile": COMPRESSED,
                                     "operation": {"activate_awards": True}})


def aggregator_toml(tmp: Path, tso_url: str) -> Path:
    return from_example(tmp, "aggregator", {
        "vtn": {**vtn_changes("aggregator.db", "aggregator-vtn"), "poll_frequency_s": 4},
        "tso": {"url": tso_url, "cert": "certs/ven.pem", "key": "certs/ven.key",
                "ca": "certs/ca.pem"},
        "vault": {"key_file": "vault-master.key"}, "profile": COMPRESSED})


def device_toml(tmp: Path, index: int, url: str, names: list[str]) -> Path:
    return from_example(tmp, "device", {
        "aggregator": {"url": url, "ca": "certs/ca.pem"},
        "fleet": {"certs": "certs/devices", "names": names, "seed": index + 1,
                  "outbox": f"devices-{index}-outbox.db"},
        "profile": COMPRESSED}, out=f"device-{index}.toml")


def serving(node: Node) -> dict[str, Any] | None:
    status = node.status()
    return status if status.get("state") == "serving" else None


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def onboard(tmp: Path, config: Path, expected: int) -> None:
    """``aggregator --onboard`` imports every consenting device once; a second run adds none."""
    said = crowdflex("aggregator", "--config", str(config), "--onboard",
                     str(tmp / "onboarding.csv"), "--state-dir", str(tmp), cwd=tmp)
    assert f"onboarded {expected} device(s)" in said and "1 refused" in said, said
    again = crowdflex("aggregator", "--config", str(config), "--onboard",
                      str(tmp / "onboarding.csv"), "--state-dir", str(tmp), cwd=tmp)
    assert "onboarded 0 device(s)" in again, again


def start_devices(tmp: Path, nodes: list[Node], url: str, groups: list[list[str]]
                  ) -> tuple[list[Node], list[dict[str, Any]]]:
    fleets = [Node(f"devices-{i}", tmp, "device", "--config",
                   str(device_toml(tmp, i, url, group)))
              for i, group in enumerate(groups)]
    nodes.extend(fleets)

    def running() -> list[dict[str, Any]] | None:
        found = [f.status() for f in fleets]
        return found if all(s.get("state") == "running" for s in found) else None

    return fleets, wait_for(running, "every device process to register", nodes, 180)


def pool_registered(tso: Node, aggregator: Node, nodes: list[Node], ven_id: str,
                    wanted: int, onboarded: int) -> None:
    """The TSO holds the aggregator's pool of ``wanted`` devices, and the aggregator says so."""
    wait_for(lambda: tso.status().get("pools", {}).get(ven_id) == {"VDB-AFRR-01": wanted},
             f"the TSO's registration of a pool of {wanted} devices", nodes, 60)
    # each node rewrites its status file at most once a second: wait for it to catch up
    agg = wait_for(lambda: (s := aggregator.status()).get("pool", {}).get(
        "registered_devices") == wanted and s, "the aggregator's pool status", nodes, 30)
    assert agg["devices"] == {"onboarded": onboarded, "registered": wanted}


def acked_activation(tso: Node, aggregator: Node, nodes: list[Node]) -> dict[str, Any]:
    """Wait for an activation the aggregator acknowledged (at the TSO) and every device it
    dispatched acknowledged (at the aggregator); that activation's status at the aggregator."""
    def acked() -> dict[str, Any] | None:
        for event_id, activation in tso.status().get("activations", {}).items():
            downstream = aggregator.status().get("activations", {}).get(event_id)
            if activation["acks"] and downstream and downstream["all_acked"]:
                return {"event_id": event_id, **downstream}
        return None

    return wait_for(acked, "an activation acknowledged by the aggregator and by every "
                    "dispatched device", nodes, 300)


def restart_aggregator(tmp: Path, nodes: list[Node], old: Node, port: int, wanted: int
                       ) -> Node:
    """SIGTERM the aggregator, start it again on the same port and database: the devices (still
    running, never registering again) count as registered, the pool goes to the TSO again and
    the devices' telemetry reaches the new process (it offers again)."""
    assert old.stop() == 0, old.tail()
    assert integrity(tmp / "aggregator.db") == "ok"
    config = tmp / "aggregator.toml"
    data = tomllib.loads(config.read_text())
    data["vtn"]["port"] = port
    config.write_text(toml_text(data))
    new = Node("aggregator-restarted", tmp, "aggregator", "--config", str(config))
    nodes[nodes.index(old)] = new
    wait_for(lambda: serving(new), "the restarted aggregator to serve", nodes, 60)
    wait_for(lambda: new.status().get("pool", {}).get("registered_devices") == wanted,
             f"the restarted aggregator to register its pool of {wanted} devices", nodes, 60)
    offers = wait_for(lambda: new.status().get("offers"), "an offer from the restarted "
                      "aggregator (the devices' telemetry reached it)", nodes, 120)
    # an ISP offered before the restart may be offered again: the TSO keeps the first offer
    assert all(o["accepted"] or o["earlier_offer_stands"] for o in offers.values()), offers
    return new


def test_tso_aggregator_and_device_processes_register_offer_activate_and_ack(
        tmp_path: Path, nodes: list[Node]) -> None:
    names = [f"device-{i:05d}" for i in range(PROCESSES * PER_PROCESS + 1)]
    refused, wanted = names[-1], PROCESSES * PER_PROCESS  # the last owner gives no consent
    fingerprints = make_pki(tmp_path, names)
    crowdflex("privacy", "keygen", "--key-file", str(tmp_path / "vault-master.key"), cwd=tmp_path)
    write_onboarding(tmp_path / "onboarding.csv", fingerprints, refused)

    tso = Node("tso", tmp_path, "tso", "--config", str(tso_toml(tmp_path)))
    nodes.append(tso)
    tso_url = wait_for(lambda: serving(tso), "the TSO to serve", nodes, 60)["url"]
    agg_config = aggregator_toml(tmp_path, tso_url)
    onboard(tmp_path, agg_config, wanted)
    aggregator = Node("aggregator", tmp_path, "aggregator", "--config", str(agg_config))
    nodes.append(aggregator)
    served = wait_for(lambda: serving(aggregator), "the aggregator to serve", nodes, 60)
    ven_id = served["ven_id"]
    pool_registered(tso, aggregator, nodes, ven_id, 0, wanted)  # no device has registered yet

    groups = [names[i * PER_PROCESS:(i + 1) * PER_PROCESS] for i in range(PROCESSES)]
    groups[-1].append(refused)
    fleets, statuses = start_devices(tmp_path, nodes, served["url"], groups)
    assert sum(s["registered"] for s in statuses) == wanted
    assert sum(s["refused"] for s in statuses) == 1
    assert (f"device registration refused: venID {fingerprints[refused]} is not onboarded"
            in aggregator.log.read_text())  # the log names the device and the reason
    assert (f"device {refused} (venID {fingerprints[refused]}) not registered"
            in fleets[-1].log.read_text())
    pool_registered(tso, aggregator, nodes, ven_id, wanted, wanted)

    activation = acked_activation(tso, aggregator, nodes)
    assert 0 < activation["devices"] <= wanted
    assert activation["acked"] == activation["devices"]
    assert any(o["accepted"] for o in aggregator.status()["offers"].values())
    assert tso.status()["activations"][activation["event_id"]]["ven_id"] == ven_id

    restart_aggregator(tmp_path, nodes, aggregator, served["port"], wanted)
    for node in reversed(nodes):  # devices, aggregator, TSO: SIGTERM and a clean exit
        assert node.stop() == 0, node.tail()
        assert node.status()["state"] == "stopped", node.tail()
    assert sum(f.status()["setpoint_events"] for f in fleets) >= activation["devices"]
    assert tso.status()["activations"][activation["event_id"]]["acks"] >= 1  # kept at stop
    for db in ("tso.db", "aggregator.db", "aggregator-outbox.db", "vault.db",
               "devices-0-outbox.db", "devices-1-outbox.db"):
        assert integrity(tmp_path / db) == "ok", db
    audit = subprocess.run(
        [str(CROWDFLEX), "privacy", "audit", str(tmp_path), "--vault", str(tmp_path / "vault.db"),
         "--key-file", str(tmp_path / "vault-master.key")],
        capture_output=True, text=True, timeout=120, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
